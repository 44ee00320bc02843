//! A school portal embedding xueji as a library: open a store, create a school and a student,
//! file a suspension that needs approval, approve it, and print the decision with its citations
//! and the verified history.
//!
//! Run: `cargo run --example embed`

use anyhow::{Context, Result, bail};
use serde_json::json;
use std::sync::Arc;
use xueji::domain::student::NewStudentForm;
use xueji::domain::{Actor, ApprovalStep, Guardian, Level, School, TransitionInput};
use xueji::engine::{Outcome, Xueji};
use xueji::policy::{PolicyRegistry, builtin_packages};
use xueji::store::Store;

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("xueji.redb"))?;
    let policies =
        PolicyRegistry::from_packages(&builtin_packages()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let x = Xueji::new(store, Arc::new(policies));
    let registrar = Actor {
        id: "portal-registrar".into(),
        role: "registrar".into(),
    };

    x.create_school(School {
        id: "yanhe-no4".into(),
        name: "沿河县第四完全小学".into(),
        jurisdiction: "yanhe-primary".into(),
        area: Some("沿河县".into()),
        level: Level::Primary,
        kind: None,
        calendar: vec![],
    })?;

    let admitted = x.admit(
        NewStudentForm {
            school: "yanhe-no4".into(),
            name: "田小梅".into(),
            gender: "female".into(),
            birth_date: "2017-03-08".into(),
            id_card: Some("52222820170308002X".into()),
            national_id: None,
            grade: 3,
            class: Some("4".into()),
            entry_date: "2023-09-01".into(),
            report_deadline: None,
            guardians: vec![Guardian {
                name: "田大山".into(),
                relation: "父亲".into(),
                phone: "13800000000".into(),
            }],
            extra: None,
        },
        &registrar,
        false,
    )?;
    let Outcome::Applied { student, .. } = admitted else {
        bail!("admission not applied: {admitted:?}")
    };
    // 入学注册: the guardian signs the collected data (一.(二).4) and a school leader reviews (四.3).
    let register: TransitionInput = serde_json::from_value(json!({
        "kind": "register", "effective_date": "2023-09-01",
        "documents": [{"kind": "guardian_signature"}]
    }))?;
    let leader = Actor {
        id: "principal".into(),
        role: "school_leader".into(),
    };
    let Outcome::Pending { request, .. } =
        x.transition(&student.id, register, &registrar, false)?
    else {
        bail!("registration should wait for the school's review")
    };
    let registered = x.approve(
        &request.id,
        ApprovalStep::School,
        &leader,
        Some("同意注册".into()),
    )?;
    let Some(student) = registered.student else {
        bail!("registration not applied: {}", registered.outcome)
    };
    println!(
        "建档并注册:{} 年级 {} 班 {} 状态 {}",
        student.id,
        student.grade,
        student.class.as_deref().unwrap_or("-"),
        student.status.zh()
    );

    let input: TransitionInput = serde_json::from_value(json!({
        "kind": "suspend", "effective_date": "2026-03-02", "reason": "illness",
        "params": {"until": "2027-03-01"},
        "documents": [
            {"kind": "hospital_diagnosis", "issuer": "沿河县人民医院", "issuer_level": "county", "hospital_grade": "2A"},
            {"kind": "treatment_record"}, {"kind": "suspension_form"}, {"kind": "guardian_application"}
        ]
    }))?;
    let outcome = x.transition(&student.id, input, &registrar, false)?;
    let Outcome::Pending { request, decision } = outcome else {
        bail!("expected approvals, got {outcome:?}")
    };
    println!("\n休学申请 {} 待审批:{:?}", request.id, decision.approvals);
    for rule in &decision.rules {
        println!(
            "  [{}] {:?} — {}({})",
            rule.id, rule.effect, rule.message, rule.citation
        );
    }

    let bureau = Actor {
        id: "county-bureau".into(),
        role: "district_officer".into(),
    };
    for (step, who) in [
        (ApprovalStep::School, &leader),
        (ApprovalStep::District, &bureau),
    ] {
        if !request.steps.contains(&step) {
            continue;
        }
        let out = x.approve(&request.id, step, who, Some("同意".into()))?;
        println!("{} → {}", step.zh(), out.outcome);
    }

    let after = x.student(&student.id)?;
    println!(
        "\n现在状态:{}(期限 {:?})",
        after.status.zh(),
        after
            .deadlines
            .iter()
            .map(|d| format!("{} {}", d.kind, d.date))
            .collect::<Vec<_>>()
    );
    println!("\n学籍历史:");
    for e in x.events(&student.id)? {
        println!(
            "  #{} {} {} → {}  hash {}…",
            e.seq,
            e.effective_date,
            e.kind.zh(),
            e.after.status.zh(),
            &e.hash[..16]
        );
    }
    let report = x.verify_student(&student.id)?;
    println!(
        "校验:{}({} 条事件,链头 {}…)",
        if report.ok { "通过" } else { "失败" },
        report.events,
        &report.head[..16]
    );
    report.ok.then_some(()).context("history did not verify")
}
