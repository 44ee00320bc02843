//! Issue #16, item 4: a transfer's steps are approved in the national order — the receiving
//! school signs and files first (教基一〔2013〕7号 第十四条; Yanhe 三.1), then the sending school,
//! then the bureau (api.md v1.1). A request stored in the old order keeps the order it was filed
//! with.

use serde_json::json;

use super::helpers::*;
use xueji::domain::{Actor, ApprovalStep, RequestStatus, TransitionInput, TransitionKind};
use xueji::engine::Outcome;

fn transfer() -> TransitionInput {
    let mut input = TransitionInput::new(TransitionKind::Transfer, d("2025-03-02"));
    input.params.insert("to_school".into(), json!("s2"));
    input
}

fn admin() -> Actor {
    Actor {
        id: "tok_admin".into(),
        role: "admin".into(),
    }
}

#[tokio::test]
async fn receiving_school_approves_before_the_sending_school() {
    let s = spawn_server().await;
    for (id, area) in [("s1", Some("东区")), ("s2", Some("东区"))] {
        s.xueji.create_school(school(id, area)).expect("school");
    }
    let student = enrolled(&s.xueji, "转学生", 41);
    let request = match s
        .xueji
        .transition(&student.id, transfer(), &registrar(), false)
        .expect("files")
    {
        Outcome::Pending { request, decision } => {
            assert_eq!(decision.approvals, request.steps);
            request
        }
        other => panic!("expected pending: {other:?}"),
    };
    assert_eq!(
        request.steps,
        vec![
            ApprovalStep::ReceivingSchool,
            ApprovalStep::School,
            ApprovalStep::District
        ]
    );
    let approve = |step: &str| {
        let path = format!("/v1/requests/{}/approve", request.id);
        let body = json!({ "step": step });
        let s = &s;
        async move { s.call("POST", &path, Some(&s.admin), Some(body)).await }
    };
    // The sending school first is out of order, and leaves no trace.
    let (status, v) = approve("school").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("step_out_of_order")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(ApprovalStep::ReceivingSchool.zh())),
        "{v}"
    );
    assert!(
        s.xueji
            .request(&request.id)
            .expect("request")
            .approvals
            .is_empty()
    );
    // In order it applies.
    for step in ["receiving_school", "school"] {
        let (status, v) = approve(step).await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, v) = approve("district").await;
    assert_eq!(status, 200, "{v}");
    let after = s.xueji.student(&student.id).expect("student");
    assert_eq!(after.school, "s2");
    assert_eq!(
        s.xueji.request(&request.id).expect("request").status,
        RequestStatus::Applied
    );
}

/// A request filed before the routing order (sending school first) is approved in the order it
/// was filed with: its approvers were asked in that order.
#[test]
fn a_request_filed_in_the_old_order_keeps_it() {
    let t = engine();
    let student = enrolled(&t.xueji, "转学生", 42);
    let Outcome::Pending { request, .. } = t
        .xueji
        .transition(&student.id, transfer(), &registrar(), false)
        .expect("files")
    else {
        panic!("expected pending")
    };
    let mut old = (*request).clone();
    old.steps = vec![
        ApprovalStep::School,
        ApprovalStep::ReceivingSchool,
        ApprovalStep::District,
    ];
    t.xueji
        .store()
        .submit(xueji::store::Command::UpdateRequest {
            request: Box::new(old),
            expected_approvals: 0,
        })
        .expect("stored in the old order");
    let err = t
        .xueji
        .approve(&request.id, ApprovalStep::ReceivingSchool, &admin(), None)
        .expect_err("out of its filed order");
    assert!(
        matches!(
            err,
            xueji::engine::ServiceError::Conflict {
                code: "step_out_of_order",
                ..
            }
        ),
        "{err:?}"
    );
    for step in [ApprovalStep::School, ApprovalStep::ReceivingSchool] {
        let out = t
            .xueji
            .approve(&request.id, step, &admin(), None)
            .expect("in filed order");
        assert_eq!(out.outcome, "pending");
    }
    let last = t
        .xueji
        .approve(&request.id, ApprovalStep::District, &admin(), None)
        .expect("district");
    assert_eq!(last.outcome, "applied");
    assert_eq!(t.xueji.student(&student.id).expect("student").school, "s2");
}
