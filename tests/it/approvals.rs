//! Issue #14, items 18 and 19: every approval step kind tried by every role (the receiving
//! school, the city bureau, a district step at a school without an area), and approvals racing
//! each other and a direct transition of the same student: exactly one wins, the rest get 409.

use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::access::{ROLES, tokens};
use super::helpers::*;
use xueji::domain::{Status, TransitionInput, TransitionKind};
use xueji::engine::Outcome;
use xueji::policy::{PackageSet, PackageSource};

/// The test district, plus: repeating a grade needs the school and the city bureau; graduation
/// is done by the school directly.
fn packages() -> PackageSet {
    let rules = format!(
        "{TEST_RULES}
// 第五条 留级由学校和市教育局审批
rule(#{{ id: \"test.repeat.city\", on: [\"repeat_grade\"], cites: \"t 第五条\", check: |c| {{
    approve([\"school\", \"city\"], \"留级须学校和市教育局审批\")
}}}});
// 第六条 毕业由学校办理
rule(#{{ id: \"test.graduate.direct\", on: [\"graduate\"], cites: \"t 第六条\", check: |c| {{
    allow(\"毕业由学校办理\")
}}}});
"
    );
    let mut set = test_packages();
    let files: BTreeMap<String, String> = [
        ("policy.toml".to_owned(), TEST_MANIFEST.to_owned()),
        ("rules.rhai".to_owned(), rules),
    ]
    .into();
    set.packages
        .insert("test-district".into(), PackageSource { files });
    set
}

/// Schools s1 (东区), s2 (西区) and s3 (no area), and a token per role of `ROLES`.
async fn setup() -> (TestServer, Vec<String>) {
    let s = spawn_server_with(&packages()).await;
    for (id, area) in [("s1", Some("东区")), ("s2", Some("西区")), ("s3", None)] {
        s.xueji.create_school(school(id, area)).expect("school");
    }
    let guarded = enrolled(&s.xueji, "被监护人", 900);
    let tokens = tokens(&s, &guarded.id).await;
    (s, tokens)
}

/// An enrolled student of `school` (class 4).
fn enrolled_at(s: &TestServer, school: &str, seq: u32) -> String {
    let mut f = form(&format!("学生{seq}"), &id_card("2016-05-01", seq));
    f.school = school.into();
    let admitted = match s.xueji.admit(f, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => student,
        other => panic!("admit not applied: {other:?}"),
    };
    let register = TransitionInput::new(TransitionKind::Register, d("2024-09-02"));
    s.xueji
        .transition(&admitted.id, register, &registrar(), false)
        .expect("register");
    admitted.id
}

fn file(s: &TestServer, student: &str, input: TransitionInput) -> String {
    match s
        .xueji
        .transition(student, input, &registrar(), false)
        .expect("file")
    {
        Outcome::Pending { request, .. } => request.id,
        other => panic!("expected a pending request: {other:?}"),
    }
}

fn suspension() -> TransitionInput {
    let mut input = TransitionInput::new(TransitionKind::Suspend, d("2025-03-02"));
    input.params.insert("until".into(), json!("2026-03-01"));
    input.documents.push(xueji::domain::Document {
        kind: xueji::domain::DocumentKind::HospitalDiagnosis,
        issuer: None,
        issuer_level: None,
        hospital_grade: None,
        reference: None,
    });
    input
}

/// A pending request on a fresh student whose next step is `step`: a transfer s1 → s2 for
/// `receiving_school`, a grade repetition at s1 for `city`, a suspension at s3 (no area) for
/// `district`. Earlier steps are approved by the admin (a transfer starts at `receiving_school`;
/// the other two at `school`, so each is reached only after an approval).
async fn pending_at_step(s: &TestServer, step: &str, seq: u32) -> String {
    let id = match step {
        "receiving_school" => {
            let student = enrolled_at(s, "s1", seq);
            let mut input = TransitionInput::new(TransitionKind::Transfer, d("2025-03-02"));
            input.params.insert("to_school".into(), json!("s2"));
            file(s, &student, input)
        }
        "city" => file(
            s,
            &enrolled_at(s, "s1", seq),
            TransitionInput::new(TransitionKind::RepeatGrade, d("2025-03-02")),
        ),
        "district" => file(s, &enrolled_at(s, "s3", seq), suspension()),
        other => panic!("no request for {other}"),
    };
    loop {
        let request = s.xueji.request(&id).expect("request");
        let next = request.next_step().expect("a step left");
        if next.as_str() == step {
            return id;
        }
        let (status, v) = s
            .call(
                "POST",
                &format!("/v1/requests/{id}/approve"),
                Some(&s.admin),
                Some(json!({ "step": next.as_str() })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
}

#[tokio::test]
async fn every_step_kind_by_every_role() {
    let (s, tokens) = setup().await;
    // (step, expected status per role in the order of ROLES). A step the caller may not take on
    // a request it can see is 403; a request outside its scope is 404.
    let table: [(&str, [u16; 10]); 3] = [
        // s1 (东区) → s2 (西区): both schools' staff and both areas' officers see the request;
        // only the receiving school's leader (or an admin) approves for the receiving school.
        (
            "receiving_school",
            [200, 403, 403, 403, 404, 403, 200, 403, 404, 404],
        ),
        // The city step: a jurisdiction-wide officer, never an area's.
        ("city", [200, 403, 404, 200, 404, 403, 404, 403, 404, 404]),
        // s3 has no area: its district step is the jurisdiction-wide officer's; no area officer
        // even sees it.
        (
            "district",
            [200, 404, 404, 200, 404, 404, 404, 404, 404, 404],
        ),
    ];
    let mut failures = Vec::new();
    let mut seq = 100;
    for (step, expected) in table {
        for ((role, token), want) in ROLES.iter().zip(&tokens).zip(expected) {
            for verb in ["approve", "reject"] {
                seq += 1;
                let id = pending_at_step(&s, step, seq).await;
                let before = s.xueji.request(&id).expect("request");
                let (got, v) = s
                    .call(
                        "POST",
                        &format!("/v1/requests/{id}/{verb}"),
                        Some(token),
                        Some(json!({ "step": step, "comment": "意见" })),
                    )
                    .await;
                if got != want {
                    failures.push(format!(
                        "{role} {verb} {step}: expected {want}, got {got} {v}"
                    ));
                }
                let after = s.xueji.request(&id).expect("request");
                if got == 200 {
                    assert_eq!(after.approvals.len(), before.approvals.len() + 1, "{v}");
                } else {
                    // A refused approval or rejection leaves no trace.
                    assert_eq!(after, before, "{role} {verb} {step} left a trace");
                }
            }
        }
    }
    println!(
        "approvals: {} cells (3 step kinds × {} roles × approve, reject)",
        3 * ROLES.len() * 2,
        ROLES.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Sends two calls at once and returns both answers.
async fn race(
    s: &TestServer,
    a: (&str, String, &str, Value),
    b: (&str, String, &str, Value),
) -> [(u16, Value); 2] {
    let (first, second) = tokio::join!(
        s.call(a.0, &a.1, Some(a.2), Some(a.3)),
        s.call(b.0, &b.1, Some(b.2), Some(b.3)),
    );
    [first, second]
}

/// Exactly one of two racing answers is a success, the other a 409; returns the winner's index.
fn one_wins(answers: &[(u16, Value); 2], success: u16, what: &str) -> usize {
    let statuses = [answers[0].0, answers[1].0];
    match statuses {
        [w, 409] if w == success => 0,
        [409, w] if w == success => 1,
        _ => panic!(
            "{what}: expected one {success} and one 409, got {statuses:?}: {} / {}",
            answers[0].1, answers[1].1
        ),
    }
}

const ROUNDS: u32 = 12;

#[tokio::test]
async fn the_same_step_approved_twice_at_once_is_approved_once() {
    let (s, tokens) = setup().await;
    let (leader, admin) = (&tokens[5], &s.admin);
    for round in 0..ROUNDS {
        let id = file(&s, &enrolled_at(&s, "s1", 200 + round), suspension());
        let path = format!("/v1/requests/{id}/approve");
        let body = json!({ "step": "school" });
        let answers = race(
            &s,
            ("POST", path.clone(), leader, body.clone()),
            ("POST", path, admin, body),
        )
        .await;
        one_wins(&answers, 200, "double approval");
        let request = s.xueji.request(&id).expect("request");
        assert_eq!(request.approvals.len(), 1, "{request:?}");
    }
}

#[tokio::test]
async fn an_approval_racing_a_rejection_one_of_them_decides() {
    let (s, tokens) = setup().await;
    let (leader, admin) = (&tokens[5], &s.admin);
    let mut wins = [0; 2];
    for round in 0..ROUNDS {
        let id = file(&s, &enrolled_at(&s, "s1", 300 + round), suspension());
        let answers = race(
            &s,
            (
                "POST",
                format!("/v1/requests/{id}/approve"),
                leader,
                json!({ "step": "school" }),
            ),
            (
                "POST",
                format!("/v1/requests/{id}/reject"),
                admin,
                json!({ "step": "school", "comment": "材料不全" }),
            ),
        )
        .await;
        let winner = one_wins(&answers, 200, "approve against reject");
        wins[winner] += 1;
        let request = s.xueji.request(&id).expect("request");
        assert_eq!(request.approvals.len(), 1, "{request:?}");
        let expected = if winner == 0 { "pending" } else { "rejected" };
        assert_eq!(request.status.as_str(), expected, "{request:?}");
    }
    println!("approve against reject: {wins:?} wins in {ROUNDS} rounds");
}

#[tokio::test]
async fn the_last_approval_racing_a_direct_transition_of_the_student_one_of_them_applies() {
    let (s, tokens) = setup().await;
    let (officer_east, registrar_s1) = (&tokens[1], &tokens[7]);
    let mut wins = [0; 2];
    for round in 0..ROUNDS {
        let student = enrolled_at(&s, "s1", 400 + round);
        let id = file(&s, &student, suspension());
        let (status, v) = s
            .call(
                "POST",
                &format!("/v1/requests/{id}/approve"),
                Some(&s.admin),
                Some(json!({ "step": "school" })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let version = s.xueji.student(&student).expect("student").version;
        // The district's approval suspends the student; the registrar graduates them, pinned to
        // the version they looked at.
        let answers = race(
            &s,
            (
                "POST",
                format!("/v1/requests/{id}/approve"),
                officer_east,
                json!({ "step": "district" }),
            ),
            (
                "POST",
                format!("/v1/students/{student}/transitions"),
                registrar_s1,
                json!({ "kind": "graduate", "effective_date": "2025-03-02", "expected_version": version }),
            ),
        )
        .await;
        let first_ok = answers[0].0 == 200;
        let winner = if first_ok {
            one_wins(&[answers[0].clone(), answers[1].clone()], 200, "approval")
        } else {
            one_wins(
                &[answers[1].clone(), answers[0].clone()],
                201,
                "direct transition",
            );
            1
        };
        wins[winner] += 1;
        let after = s.xueji.student(&student).expect("student");
        assert_eq!(after.version, version + 1, "exactly one change applied");
        let request = s.xueji.request(&id).expect("request");
        if winner == 0 {
            assert_eq!(after.status, Status::Suspended);
            assert_eq!(request.status.as_str(), "applied");
        } else {
            assert_eq!(after.status, Status::Graduated);
            assert_eq!(request.status.as_str(), "pending", "{request:?}");
            assert_eq!(answers[0].1["error"]["code"], "student_changed");
        }
    }
    println!("approval against direct transition: {wins:?} wins in {ROUNDS} rounds");

    // The direct transition first, however the races fell: the approval is then a 409 and the
    // request stays pending, for an approver to reject.
    let student = enrolled_at(&s, "s1", 499);
    let id = file(&s, &student, suspension());
    let approve = |step: &str, token: &str| {
        let (path, token, step) = (
            format!("/v1/requests/{id}/approve"),
            token.to_owned(),
            step.to_owned(),
        );
        let s = &s;
        async move {
            s.call("POST", &path, Some(&token), Some(json!({ "step": step })))
                .await
        }
    };
    assert_eq!(approve("school", &s.admin).await.0, 200);
    let (status, v) = s
        .call(
            "POST",
            &format!("/v1/students/{student}/transitions"),
            Some(registrar_s1),
            Some(json!({ "kind": "graduate", "effective_date": "2025-03-02" })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = approve("district", officer_east).await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (409, &json!("student_changed")),
        "{v}"
    );
    assert_eq!(
        s.xueji.student(&student).expect("student").status,
        Status::Graduated
    );
    assert_eq!(
        s.xueji.request(&id).expect("request").status.as_str(),
        "pending"
    );
}
