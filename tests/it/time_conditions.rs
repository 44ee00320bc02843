//! Issue #16, item 5: a suspension records its end (`params.until`, after the effective date),
//! and the resumption is decided against it (Yanhe 三.3(1): only once the suspension has ended).

use serde_json::json;

use super::helpers::*;
use xueji::domain::{
    Actor, Document, DocumentKind, IssuerLevel, Level, School, Status, TransitionInput,
    TransitionKind,
};
use xueji::engine::{Outcome, ServiceError};
use xueji::policy::builtin_packages;

fn admin() -> Actor {
    Actor {
        id: "tok_admin".into(),
        role: "admin".into(),
    }
}

fn doc(kind: DocumentKind) -> Document {
    Document {
        kind,
        issuer: None,
        issuer_level: None,
        hospital_grade: None,
        reference: None,
    }
}

/// Files a transition and approves every step it needs, in order.
fn drive(x: &xueji::engine::Xueji, student: &str, input: TransitionInput) -> Outcome {
    let out = x
        .transition(student, input, &registrar(), false)
        .expect("decides");
    if let Outcome::Pending { request, .. } = &out {
        for step in request.steps.clone() {
            x.approve(&request.id, step, &admin(), None)
                .expect("approves");
        }
    }
    out
}

#[test]
fn an_end_not_after_the_effective_date_is_refused() {
    let t = engine();
    let s = enrolled(&t.xueji, "休学生", 51);
    for until in ["2025-03-02", "2025-03-01"] {
        let mut input = TransitionInput::new(TransitionKind::Suspend, d("2025-03-02"));
        input.params.insert("until".into(), json!(until));
        let ServiceError::Invalid(e) = t
            .xueji
            .transition(&s.id, input, &registrar(), false)
            .expect_err("an end on or before the start")
        else {
            panic!("expected invalid input for {until}")
        };
        assert_eq!(
            e.errors[0].code, "until_not_after_effective_date",
            "{until}"
        );
        assert_eq!(e.errors[0].field, "params.until");
        assert!(
            e.errors[0].message.contains(until),
            "{}",
            e.errors[0].message
        );
    }
}

#[test]
fn yanhe_resumption_waits_for_the_recorded_end() {
    let t = engine_with(&builtin_packages());
    t.xueji
        .create_school(School {
            id: "yanhe-4".into(),
            name: "沿河县第四完全小学".into(),
            jurisdiction: "yanhe-primary".into(),
            area: Some("沿河县".into()),
            level: Level::Primary,
            kind: None,
            calendar: Vec::new(),
        })
        .expect("school");
    let mut f = form("休学生", &id_card("2016-05-01", 52));
    f.school = "yanhe-4".into();
    let admitted = match t.xueji.admit(f, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => student,
        other => panic!("admit: {other:?}"),
    };
    let mut register = TransitionInput::new(TransitionKind::Register, d("2024-09-02"));
    register
        .documents
        .push(doc(DocumentKind::GuardianSignature));
    drive(&t.xueji, &admitted.id, register);

    let mut suspend = TransitionInput::new(TransitionKind::Suspend, d("2025-03-02"));
    suspend.reason = Some(xueji::domain::Reason::Illness);
    suspend.params.insert("until".into(), json!("2026-03-01"));
    let mut diagnosis = doc(DocumentKind::HospitalDiagnosis);
    diagnosis.issuer_level = Some(IssuerLevel::County);
    suspend.documents = vec![
        diagnosis,
        doc(DocumentKind::TreatmentRecord),
        doc(DocumentKind::SuspensionForm),
    ];
    drive(&t.xueji, &admitted.id, suspend);
    let student = t.xueji.student(&admitted.id).expect("student");
    assert_eq!(student.status, Status::Suspended);
    let end = student
        .deadlines
        .iter()
        .find(|x| x.kind == "suspended_until")
        .map(|x| x.date);
    assert_eq!(end, Some(d("2026-03-01")), "{:?}", student.deadlines);
    // The sweep leaves a suspension's end alone: it takes nothing away.
    assert_eq!(
        student
            .deadlines
            .iter()
            .find(|x| x.kind == "suspended_until")
            .and_then(|x| x.on_expiry),
        None
    );

    let resume = |date: &str| {
        let mut input = TransitionInput::new(TransitionKind::Resume, d(date));
        input.documents.push(doc(DocumentKind::SuspensionForm));
        input
    };
    match t
        .xueji
        .transition(&admitted.id, resume("2026-02-28"), &registrar(), false)
        .expect("decides")
    {
        Outcome::Denied { decision } => {
            let rule = decision
                .rules
                .iter()
                .find(|r| r.id == "yanhe.resume.after_end")
                .expect("the end-date rule fired");
            assert!(rule.message.contains("2026-03-01"), "{}", rule.message);
        }
        other => panic!("a resumption before the end must be denied: {other:?}"),
    }
    match drive(&t.xueji, &admitted.id, resume("2026-03-01")) {
        Outcome::Pending { decision, .. } => {
            assert!(
                decision
                    .rules
                    .iter()
                    .any(|r| r.id == "yanhe.resume.after_end")
            );
        }
        other => panic!("a resumption on the end date goes to review: {other:?}"),
    }
    assert_eq!(
        t.xueji.student(&admitted.id).expect("student").status,
        Status::Enrolled
    );
}
