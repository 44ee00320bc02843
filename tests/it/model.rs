//! Model-based test: random sequences of transitions, approvals, rejections, registrations,
//! deadline sweeps and policy swaps on a few students, checked after every step against a small
//! in-memory model of the state machine and the test package's rules. After every step the store
//! and the model agree (status, version, class, deadlines); terminal statuses stay terminal;
//! history only grows; every chain verifies. At the end every decision reproduces.
//!
//! Three students start enrolled; two start admitted with a report deadline (2024-09-05 and
//! 2024-09-12), which the sweep forfeits once two weeks have passed (`test.report.grace`). Sweep
//! dates are drawn mostly around those deadlines, so that sweeps find nothing due, find a
//! deadline and leave it (within the grace period), and forfeit admissions; the run counts each
//! and fails if any never happened.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use std::cell::RefCell;
use xueji::domain::{ApprovalStep, Date, Status, TransitionInput, TransitionKind};
use xueji::engine::{Outcome, ServiceError};

use super::helpers::*;

/// Students 0..3 start enrolled, 3 and 4 admitted.
const STUDENTS: usize = 5;
const ENROLLED: usize = 3;
/// The report deadlines of the admitted students.
const REPORT_BY: [&str; 2] = ["2024-09-05", "2024-09-12"];

#[derive(Debug, Clone)]
enum Op {
    ChangeClass {
        s: usize,
        class: Option<u8>,
    },
    Suspend {
        s: usize,
        proof: bool,
    },
    ApproveNext {
        s: usize,
    },
    Reject {
        s: usize,
    },
    Resume {
        s: usize,
    },
    Withdraw {
        s: usize,
    },
    Register {
        s: usize,
    },
    /// The deadline sweep at `as_of`, for every jurisdiction (`None`) or one.
    Sweep {
        as_of: Date,
        jurisdiction: Option<&'static str>,
    },
    Swap,
}

/// A sweep date: mostly from just before the first report deadline to two weeks after the
/// grace period of the second; sometimes a year and a half later, past the suspensions' end.
fn sweep_date() -> impl Strategy<Value = Date> {
    let from = |start: &'static str, days: i64| {
        (0..days).prop_map(move |n| d(start).add_days(n).expect("a date"))
    };
    prop_oneof![4 => from("2024-09-01", 40), 1 => from("2026-02-20", 20)]
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..STUDENTS;
    let sweep = (
        sweep_date(),
        prop_oneof![
            4 => Just(None),
            1 => Just(Some("test-district")),
            1 => Just(Some("national-k12")),
        ],
    )
        .prop_map(|(as_of, jurisdiction)| Op::Sweep {
            as_of,
            jurisdiction,
        });
    prop_oneof![
        1 => (s.clone(), proptest::option::of(1..9u8))
            .prop_map(|(s, class)| Op::ChangeClass { s, class }),
        1 => (s.clone(), any::<bool>()).prop_map(|(s, proof)| Op::Suspend { s, proof }),
        1 => s.clone().prop_map(|s| Op::ApproveNext { s }),
        1 => s.clone().prop_map(|s| Op::Reject { s }),
        1 => s.clone().prop_map(|s| Op::Resume { s }),
        1 => s.clone().prop_map(|s| Op::Withdraw { s }),
        1 => s.clone().prop_map(|s| Op::Register { s }),
        2 => sweep,
        1 => Just(Op::Swap),
    ]
}

#[derive(Debug, Clone)]
struct Model {
    status: Status,
    version: u64,
    class: String,
    /// The open suspension request and how many of its two steps are approved.
    open: Option<(String, usize)>,
    /// The report deadline, while the student is admitted.
    report_by: Option<Date>,
}

/// What the sweeps of a whole run did, to prove the sweep step is not vacuous.
#[derive(Debug, Default)]
struct Tally {
    sweeps: usize,
    /// Sweeps that found no deadline due.
    nothing_due: usize,
    /// Deadlines a sweep evaluated and left (within the grace period).
    kept: usize,
    /// Sweeps that forfeited at least one admission, and the admissions forfeited.
    applied: usize,
    forfeited: usize,
}

fn input(kind: TransitionKind, params: serde_json::Value, proof: bool) -> TransitionInput {
    let mut i = TransitionInput::new(kind, d("2025-03-02"));
    if let Some(p) = params.as_object() {
        i.params = p.clone();
    }
    if proof {
        i.documents
            .push(serde_json::from_value(json!({"kind": "hospital_diagnosis"})).expect("doc"));
    }
    i
}

/// What the sweep must do to a student at `as_of`: `None` when nothing is due, else whether it
/// forfeits the admission (two weeks after the report deadline, `test.report.grace`).
fn sweep_effect(m: &Model, as_of: Date) -> Option<bool> {
    let due = m
        .report_by
        .filter(|r| m.status == Status::Admitted && *r <= as_of)?;
    Some(as_of > due.add_weeks(2).expect("a date"))
}

#[test]
fn the_store_follows_the_model() {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        source_file: Some(file!()),
        ..Config::default()
    });
    let tally = RefCell::new(Tally::default());
    let outcome = runner.run(&proptest::collection::vec(op(), 1..30), |ops| {
        run(ops, &mut tally.borrow_mut())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let t = tally.into_inner();
    println!(
        "model: {} sweeps over the run: {} found nothing due, {} deadlines evaluated and kept \
         within the grace period, {} sweeps forfeited {} admissions",
        t.sweeps, t.nothing_due, t.kept, t.applied, t.forfeited
    );
    assert!(
        t.nothing_due > 0 && t.kept > 0 && t.applied > 0,
        "the generated sequences never reached a state where the sweep acts: {t:?}"
    );
}

fn run(ops: Vec<Op>, tally: &mut Tally) -> Result<(), TestCaseError> {
    let t = engine();
    let x = &t.xueji;
    let mut ids: Vec<String> = (0..ENROLLED)
        .map(|i| enrolled(x, &format!("学生{i}"), 40 + i as u32 * 2).id)
        .collect();
    let mut model: Vec<Model> = (0..ENROLLED)
        .map(|_| Model {
            status: Status::Enrolled,
            version: 2,
            class: "4".into(),
            open: None,
            report_by: None,
        })
        .collect();
    for (i, report_by) in REPORT_BY.iter().enumerate() {
        let mut f = form(
            &format!("新生{i}"),
            &id_card("2016-05-01", 60 + i as u32 * 2),
        );
        f.report_deadline = Some((*report_by).into());
        let Ok(Outcome::Applied { student, .. }) = x.admit(f, &registrar(), false) else {
            return Err(TestCaseError::fail("admission not applied"));
        };
        ids.push(student.id);
        model.push(Model {
            status: Status::Admitted,
            version: 1,
            class: "4".into(),
            open: None,
            report_by: Some(d(report_by)),
        });
    }
    let actor = registrar();
    let mut swaps = 0;
    let mut history: Vec<Vec<String>> = ids
        .iter()
        .map(|id| event_hashes(x, id))
        .collect::<Result<_, _>>()?;
    for op in ops {
        let before: Vec<Status> = model.iter().map(|m| m.status).collect();
        match op {
            Op::ChangeClass { s, class } => {
                let params = class.map_or(json!({}), |c| json!({"class": c.to_string()}));
                let r = x.transition(
                    &ids[s],
                    input(TransitionKind::ChangeClass, params, false),
                    &actor,
                    false,
                );
                let m = &mut model[s];
                match (m.status, class, r) {
                    (Status::Enrolled, Some(c), Ok(Outcome::Applied { .. })) => {
                        m.version += 1;
                        m.class = c.to_string();
                    }
                    (Status::Enrolled, None, Ok(Outcome::Denied { .. })) => {}
                    (st, _, Err(ServiceError::InvalidTransition { .. }))
                        if st != Status::Enrolled => {}
                    (st, c, other) => {
                        prop_assert!(false, "change_class from {st:?} class {c:?}: {other:?}")
                    }
                }
            }
            Op::Suspend { s, proof } => {
                let r = x.transition(
                    &ids[s],
                    input(
                        TransitionKind::Suspend,
                        json!({"until": "2026-03-01"}),
                        proof,
                    ),
                    &actor,
                    false,
                );
                let m = &mut model[s];
                match (m.status, proof, &m.open, r) {
                    (Status::Enrolled, true, None, Ok(Outcome::Pending { request, .. })) => {
                        m.open = Some((request.id.clone(), 0))
                    }
                    (
                        Status::Enrolled,
                        true,
                        Some(_),
                        Err(ServiceError::Conflict {
                            code: "open_request_exists",
                            ..
                        }),
                    ) => {}
                    (Status::Enrolled, false, _, Ok(Outcome::Denied { .. })) => {}
                    (st, _, _, Err(ServiceError::InvalidTransition { .. }))
                        if st != Status::Enrolled => {}
                    (st, p, o, other) => {
                        prop_assert!(false, "suspend from {st:?} proof {p} open {o:?}: {other:?}")
                    }
                }
            }
            Op::ApproveNext { s } => {
                let m = &mut model[s];
                let Some((req, done)) = m.open.clone() else {
                    continue;
                };
                let step = next_step(done);
                let r = x.approve(&req, step, &actor, None);
                match (done, m.status, r) {
                    (0, _, Ok(out)) => {
                        prop_assert_eq!(out.outcome, "pending");
                        m.open = Some((req, 1));
                    }
                    (1, Status::Enrolled, Ok(out)) => {
                        prop_assert_eq!(out.outcome, "applied");
                        m.status = Status::Suspended;
                        m.version += 1;
                        m.open = None;
                    }
                    // The student left `enrolled` meanwhile: the final approval is refused as
                    // `student_changed` (409, since #14) and the request stays pending, for an
                    // approver to reject.
                    (
                        1,
                        _,
                        Err(ServiceError::Conflict {
                            code: "student_changed",
                            ..
                        }),
                    ) => {}
                    (d, st, other) => {
                        prop_assert!(false, "approve step {d} from {st:?}: {other:?}")
                    }
                }
            }
            Op::Reject { s } => {
                let m = &mut model[s];
                let Some((req, done)) = m.open.clone() else {
                    continue;
                };
                let step = next_step(done);
                let out = x.reject(&req, step, &actor, "材料不全".into());
                prop_assert!(out.is_ok(), "{out:?}");
                m.open = None;
            }
            Op::Resume { s } => {
                let r = x.transition(
                    &ids[s],
                    input(TransitionKind::Resume, json!({}), false),
                    &actor,
                    false,
                );
                let m = &mut model[s];
                match (m.status, r) {
                    (Status::Suspended, Ok(Outcome::Applied { .. })) => {
                        m.status = Status::Enrolled;
                        m.version += 1;
                    }
                    (st, Err(ServiceError::InvalidTransition { .. }))
                        if st != Status::Suspended => {}
                    (st, other) => prop_assert!(false, "resume from {st:?}: {other:?}"),
                }
            }
            Op::Withdraw { s } => {
                let r = x.transition(
                    &ids[s],
                    input(TransitionKind::Withdraw, json!({}), false),
                    &actor,
                    false,
                );
                let m = &mut model[s];
                match (m.status, r) {
                    (Status::Enrolled | Status::Suspended, Ok(Outcome::Applied { .. })) => {
                        m.status = Status::Withdrawn;
                        m.version += 1;
                    }
                    (
                        Status::Admitted | Status::AdmissionForfeited | Status::Withdrawn,
                        Err(ServiceError::InvalidTransition { .. }),
                    ) => {}
                    (st, other) => prop_assert!(false, "withdraw from {st:?}: {other:?}"),
                }
            }
            Op::Register { s } => {
                let r = x.transition(
                    &ids[s],
                    input(TransitionKind::Register, json!({}), false),
                    &actor,
                    false,
                );
                let m = &mut model[s];
                match (m.status, r) {
                    // A change of status clears the deadlines of the old one.
                    (Status::Admitted, Ok(Outcome::Applied { .. })) => {
                        m.status = Status::Enrolled;
                        m.version += 1;
                        m.report_by = None;
                    }
                    (st, Err(ServiceError::InvalidTransition { .. })) if st != Status::Admitted => {
                    }
                    (st, other) => prop_assert!(false, "register from {st:?}: {other:?}"),
                }
            }
            Op::Sweep {
                as_of,
                jurisdiction,
            } => {
                let report = x
                    .sweep(as_of, jurisdiction)
                    .map_err(|e| TestCaseError::fail(format!("sweep: {e:?}")))?;
                // The model: admitted students of test-district with a deadline on or before
                // `as_of` are evaluated; those past the grace period are forfeited.
                let swept = jurisdiction.is_none_or(|j| j == "test-district");
                let mut evaluated = 0;
                let mut forfeited = Vec::new();
                for (i, m) in model.iter_mut().enumerate() {
                    let Some(forfeit) = sweep_effect(m, as_of).filter(|_| swept) else {
                        continue;
                    };
                    evaluated += 1;
                    if forfeit {
                        m.status = Status::AdmissionForfeited;
                        m.version += 1;
                        m.report_by = None;
                        forfeited.push(ids[i].clone());
                    }
                }
                prop_assert_eq!(
                    report.evaluated,
                    evaluated,
                    "sweep at {} ({:?})",
                    as_of,
                    jurisdiction
                );
                prop_assert!(report.failed.is_empty(), "{:?}", report.failed);
                let applied: Vec<String> =
                    report.applied.iter().map(|a| a.student.clone()).collect();
                let mut expected = forfeited.clone();
                expected.sort();
                let mut got = applied.clone();
                got.sort();
                prop_assert_eq!(got, expected, "sweep at {}", as_of);
                for a in &report.applied {
                    prop_assert_eq!(a.event.kind, TransitionKind::ForfeitAdmission);
                    prop_assert_eq!(a.event.effective_date, as_of);
                    prop_assert_eq!(a.event.actor.id.as_str(), "system:deadline_sweep");
                }
                tally.sweeps += 1;
                tally.kept += evaluated - forfeited.len();
                tally.forfeited += forfeited.len();
                if evaluated == 0 {
                    tally.nothing_due += 1;
                } else if !forfeited.is_empty() {
                    tally.applied += 1;
                }
            }
            Op::Swap => {
                swaps += 1;
                let mut files = test_packages().packages["test-district"].files.clone();
                files.insert(
                    "rules.rhai".into(),
                    format!("{TEST_RULES}\n// 修订 {swaps}\n"),
                );
                files.insert("tests/cases.toml".into(), TEST_CASES.into());
                let activated = x.activate(
                    "test-district",
                    &xueji::policy::PackageSource { files },
                    &xueji::domain::Actor::system("test"),
                );
                prop_assert!(matches!(activated, Ok(Ok(_))), "swap refused");
            }
        }
        for (i, id) in ids.iter().enumerate() {
            let st = x
                .student(id)
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let m = &model[i];
            prop_assert_eq!(st.status, m.status, "student {}", i);
            prop_assert_eq!(st.version, m.version, "student {}", i);
            prop_assert_eq!(st.class.as_deref(), Some(m.class.as_str()));
            let report_by = st
                .deadlines
                .iter()
                .find(|dl| dl.kind == "report_by")
                .map(|dl| dl.date);
            prop_assert_eq!(report_by, m.report_by, "student {} report deadline", i);
            // Terminal stays terminal.
            if before[i].is_terminal() {
                prop_assert_eq!(
                    st.status,
                    before[i],
                    "student {} left terminal {:?}",
                    i,
                    before[i]
                );
            }
            // History only grows: what was there is still there, unchanged, in order.
            let hashes = event_hashes(x, id)?;
            prop_assert_eq!(hashes.len() as u64, st.version, "one event per version");
            prop_assert!(
                hashes.starts_with(&history[i]),
                "student {}: history rewritten",
                i
            );
            history[i] = hashes;
            prop_assert!(
                x.verify_student(id)
                    .map_err(|e| TestCaseError::fail(format!("{e:?}")))?
                    .ok,
                "student {} chain",
                i
            );
        }
    }
    prop_assert!(x.verify_all().expect("verify").ok);
    let reproduced = x.reproduce_decisions(None).expect("reproduce");
    prop_assert!(reproduced.ok, "{:?}", reproduced);
    Ok(())
}

fn event_hashes(x: &xueji::engine::Xueji, id: &str) -> Result<Vec<String>, TestCaseError> {
    Ok(x.events(id)
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?
        .into_iter()
        .map(|e| e.hash)
        .collect())
}

/// The step a suspension request waits for after `done` approvals (school, then district).
fn next_step(done: usize) -> ApprovalStep {
    if done == 0 {
        ApprovalStep::School
    } else {
        ApprovalStep::District
    }
}
