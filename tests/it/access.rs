//! The role × endpoint × scope table, extended to approval steps and policy changes: every role
//! tries every step of a request at a school of 东区, and every policy-changing endpoint.

use serde_json::{Value, json};

use super::helpers::*;

pub(crate) const ROLES: [&str; 10] = [
    "admin",
    "officer_east",
    "officer_west",
    "officer_city",
    "officer_other_jurisdiction",
    "leader_s1",
    "leader_s2",
    "registrar_s1",
    "teacher_s1_4",
    "guardian",
];

/// A token per role of `ROLES`, the guardian's for `student`.
pub(crate) async fn tokens(s: &TestServer, student: &str) -> Vec<String> {
    let mut out = vec![s.admin.clone()];
    for body in [
        json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}),
        json!({"role": "district_officer", "jurisdiction": "test-district", "area": "西区"}),
        json!({"role": "district_officer", "jurisdiction": "test-district"}),
        json!({"role": "district_officer", "jurisdiction": "national-k12"}),
        json!({"role": "school_leader", "school": "s1"}),
        json!({"role": "school_leader", "school": "s2"}),
        json!({"role": "registrar", "school": "s1"}),
        json!({"role": "head_teacher", "school": "s1", "class": "4"}),
        json!({"role": "guardian", "student": student}),
    ] {
        out.push(s.token(body).await);
    }
    out
}

/// A fresh pending suspension (steps: school, then district) on a fresh student of s1.
fn pending_suspension(s: &TestServer, seq: u32) -> String {
    let student = enrolled(&s.xueji, &format!("学生{seq}"), seq);
    let mut input = xueji::domain::TransitionInput::new(
        xueji::domain::TransitionKind::Suspend,
        d("2025-03-02"),
    );
    input.params.insert("until".into(), json!("2026-03-01"));
    input.documents.push(xueji::domain::Document {
        kind: xueji::domain::DocumentKind::HospitalDiagnosis,
        issuer: None,
        issuer_level: None,
        hospital_grade: None,
        reference: None,
    });
    match s
        .xueji
        .transition(&student.id, input, &registrar(), false)
        .expect("suspend")
    {
        xueji::engine::Outcome::Pending { request, .. } => request.id,
        other => panic!("expected a pending request: {other:?}"),
    }
}

fn check(failures: &mut Vec<String>, what: &str, role: &str, want: u16, got: u16, v: &Value) {
    if want != got {
        failures.push(format!("{role} {what}: expected {want}, got {got} {v}"));
    }
}

/// A server with schools s1 (东区) and s2 (西区), and a token per role of `ROLES`.
async fn setup() -> (TestServer, Vec<String>) {
    let s = spawn_server().await;
    s.xueji
        .create_school(school("s1", Some("东区")))
        .expect("s1");
    s.xueji
        .create_school(school("s2", Some("西区")))
        .expect("s2");
    let guarded = enrolled(&s.xueji, "被监护人", 900);
    let tokens = tokens(&s, &guarded.id).await;
    (s, tokens)
}

#[tokio::test]
async fn approval_steps_by_role_and_scope() {
    let (s, tokens) = setup().await;
    let approve = |step: &str| json!({"step": step, "comment": "同意"});
    // (step, expected status per role in the order of ROLES). A step the caller may not take on
    // a request it can see is 403; a request outside its scope is 404 (head teachers and
    // guardians do not see requests at all).
    let table: [(&str, [u16; 10]); 2] = [
        ("school", [200, 403, 404, 403, 404, 200, 404, 403, 404, 404]),
        (
            "district",
            [200, 200, 404, 403, 404, 403, 404, 403, 404, 404],
        ),
    ];
    println!(
        "access: {} approval and rejection cells ({} steps × {} roles × approve, reject), a fresh request each",
        table.len() * ROLES.len() * 2,
        table.len(),
        ROLES.len()
    );
    let mut failures = Vec::new();
    let mut seq = 100;
    for (step, expected) in table {
        for ((role, token), want) in ROLES.iter().zip(&tokens).zip(expected) {
            seq += 1;
            let id = pending_suspension(&s, seq);
            if step == "district" {
                let (st, v) = s
                    .call(
                        "POST",
                        &format!("/v1/requests/{id}/approve"),
                        Some(&s.admin),
                        Some(approve("school")),
                    )
                    .await;
                assert_eq!(st, 200, "{v}");
            }
            let path = format!("/v1/requests/{id}/approve");
            let (got, v) = s
                .call("POST", &path, Some(token), Some(approve(step)))
                .await;
            check(
                &mut failures,
                &format!("approve {step}"),
                role,
                want,
                got,
                &v,
            );
            // Whatever the answer, a refused approval changed nothing.
            if got != 200 {
                let r = s.xueji.request(&id).expect("request");
                let done = if step == "district" { 1 } else { 0 };
                assert_eq!(
                    r.approvals.len(),
                    done,
                    "{role} approve {step} left a trace"
                );
            }
            // Rejections follow the same table (a fresh request each time).
            seq += 1;
            let id = pending_suspension(&s, seq);
            if step == "district" {
                s.call(
                    "POST",
                    &format!("/v1/requests/{id}/approve"),
                    Some(&s.admin),
                    Some(approve("school")),
                )
                .await;
            }
            let (got, v) = s
                .call(
                    "POST",
                    &format!("/v1/requests/{id}/reject"),
                    Some(token),
                    Some(json!({"step": step, "comment": "材料不全"})),
                )
                .await;
            check(
                &mut failures,
                &format!("reject {step}"),
                role,
                want,
                got,
                &v,
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn policy_changes_by_role_and_scope() {
    let (s, tokens) = setup().await;
    let upload = json!({ "files": test_upload() });
    // Uploads, impact replays and evaluations: an admin, or an officer of the whole jurisdiction
    // (no area). A replay reads every student of the jurisdiction and an evaluation may name any
    // of them (issue #14); a registrar tries a change with `?dry_run=true` on the transition.
    let may_change = [200, 403, 403, 200, 404, 403, 403, 403, 403, 403];
    let table: [(&str, &str, [u16; 10]); 3] = [
        ("PUT", "/v1/policies/test-district", may_change),
        ("POST", "/v1/policies/test-district/impact", may_change),
        ("POST", "/v1/policies/test-district/evaluate", may_change),
    ];
    let evaluate = json!({
        "student": { "status": "enrolled", "grade": 3 },
        "school": { "level": "primary" },
        "transition": { "kind": "change_class", "effective_date": "2025-03-02", "params": { "class": "5" } }
    });
    println!(
        "access: {} policy cells ({} operations × {} roles)",
        table.len() * ROLES.len(),
        table.len(),
        ROLES.len()
    );
    let mut failures = Vec::new();
    for (method, path, expected) in table {
        let body = if path.ends_with("evaluate") {
            evaluate.clone()
        } else {
            upload.clone()
        };
        for ((role, token), want) in ROLES.iter().zip(&tokens).zip(expected) {
            let before = s.xueji.policies().versions("test-district").len();
            let (got, v) = s.call(method, path, Some(token), Some(body.clone())).await;
            check(
                &mut failures,
                &format!("{method} {path}"),
                role,
                want,
                got,
                &v,
            );
            if got != 200 {
                assert_eq!(
                    s.xueji.policies().versions("test-district").len(),
                    before,
                    "{role} {path}"
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
