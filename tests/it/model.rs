//! Model-based test: random sequences of transitions, approvals, rejections and policy swaps on
//! a few students, checked after every step against a small in-memory model of the state machine
//! and the test package's rules. Terminal statuses stay terminal, history only grows, every
//! chain verifies and every decision reproduces.

use proptest::prelude::*;
use serde_json::json;
use xueji::domain::{ApprovalStep, Status, TransitionInput, TransitionKind};
use xueji::service::{Outcome, ServiceError};

use crate::helpers::*;

#[derive(Debug, Clone)]
enum Op {
    ChangeClass { s: usize, class: Option<u8> },
    Suspend { s: usize, proof: bool },
    ApproveNext { s: usize },
    Reject { s: usize },
    Resume { s: usize },
    Withdraw { s: usize },
    Swap,
}

fn op() -> impl Strategy<Value = Op> {
    let s = 0..3usize;
    prop_oneof![
        (s.clone(), proptest::option::of(1..9u8))
            .prop_map(|(s, class)| Op::ChangeClass { s, class }),
        (s.clone(), any::<bool>()).prop_map(|(s, proof)| Op::Suspend { s, proof }),
        s.clone().prop_map(|s| Op::ApproveNext { s }),
        s.clone().prop_map(|s| Op::Reject { s }),
        s.clone().prop_map(|s| Op::Resume { s }),
        s.clone().prop_map(|s| Op::Withdraw { s }),
        Just(Op::Swap),
    ]
}

#[derive(Debug, Clone)]
struct Model {
    status: Status,
    version: u64,
    class: String,
    /// The open suspension request and how many of its two steps are approved.
    open: Option<(String, usize)>,
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_store_follows_the_model(ops in proptest::collection::vec(op(), 1..30)) {
        let t = engine();
        let x = &t.xueji;
        let ids: Vec<String> = (0..3).map(|i| enrolled(x, &format!("学生{i}"), 40 + i as u32 * 2).id).collect();
        let mut model: Vec<Model> = (0..3).map(|_| Model { status: Status::Enrolled, version: 2, class: "4".into(), open: None }).collect();
        let actor = registrar();
        let mut swaps = 0;
        for op in ops {
            match op {
                Op::ChangeClass { s, class } => {
                    let params = class.map_or(json!({}), |c| json!({"class": c.to_string()}));
                    let r = x.transition(&ids[s], input(TransitionKind::ChangeClass, params, false), &actor, false);
                    let m = &mut model[s];
                    match (m.status, class, r) {
                        (Status::Enrolled, Some(c), Ok(Outcome::Applied { .. })) => { m.version += 1; m.class = c.to_string(); }
                        (Status::Enrolled, None, Ok(Outcome::Denied { .. })) => {}
                        (st, _, Err(ServiceError::InvalidTransition { .. })) if st != Status::Enrolled => {}
                        (st, c, other) => prop_assert!(false, "change_class from {st:?} class {c:?}: {other:?}"),
                    }
                }
                Op::Suspend { s, proof } => {
                    let r = x.transition(&ids[s], input(TransitionKind::Suspend, json!({"until": "2026-03-01"}), proof), &actor, false);
                    let m = &mut model[s];
                    match (m.status, proof, &m.open, r) {
                        (Status::Enrolled, true, None, Ok(Outcome::Pending { request, .. })) => m.open = Some((request.id.clone(), 0)),
                        (Status::Enrolled, true, Some(_), Err(ServiceError::Conflict { code: "open_request_exists", .. })) => {}
                        (Status::Enrolled, false, _, Ok(Outcome::Denied { .. })) => {}
                        (st, _, _, Err(ServiceError::InvalidTransition { .. })) if st != Status::Enrolled => {}
                        (st, p, o, other) => prop_assert!(false, "suspend from {st:?} proof {p} open {o:?}: {other:?}"),
                    }
                }
                Op::ApproveNext { s } => {
                    let m = &mut model[s];
                    let Some((req, done)) = m.open.clone() else { continue };
                    let step = if done == 0 { ApprovalStep::School } else { ApprovalStep::District };
                    let r = x.approve(&req, step, &actor, None);
                    match (done, m.status, r) {
                        (0, _, Ok(out)) => { prop_assert_eq!(out.outcome, "pending"); m.open = Some((req, 1)); }
                        (1, Status::Enrolled, Ok(out)) => {
                            prop_assert_eq!(out.outcome, "applied");
                            m.status = Status::Suspended;
                            m.version += 1;
                            m.open = None;
                        }
                        // The student left `enrolled` meanwhile: the request stays pending.
                        (1, _, Err(ServiceError::InvalidTransition { .. })) => {}
                        (d, st, other) => prop_assert!(false, "approve step {d} from {st:?}: {other:?}"),
                    }
                }
                Op::Reject { s } => {
                    let m = &mut model[s];
                    let Some((req, done)) = m.open.clone() else { continue };
                    let step = if done == 0 { ApprovalStep::School } else { ApprovalStep::District };
                    let out = x.reject(&req, step, &actor, "材料不全".into());
                    prop_assert!(out.is_ok(), "{out:?}");
                    m.open = None;
                }
                Op::Resume { s } => {
                    let r = x.transition(&ids[s], input(TransitionKind::Resume, json!({}), false), &actor, false);
                    let m = &mut model[s];
                    match (m.status, r) {
                        (Status::Suspended, Ok(Outcome::Applied { .. })) => { m.status = Status::Enrolled; m.version += 1; }
                        (st, Err(ServiceError::InvalidTransition { .. })) if st != Status::Suspended => {}
                        (st, other) => prop_assert!(false, "resume from {st:?}: {other:?}"),
                    }
                }
                Op::Withdraw { s } => {
                    let r = x.transition(&ids[s], input(TransitionKind::Withdraw, json!({}), false), &actor, false);
                    let m = &mut model[s];
                    match (m.status, r) {
                        (Status::Enrolled | Status::Suspended, Ok(Outcome::Applied { .. })) => { m.status = Status::Withdrawn; m.version += 1; }
                        (Status::Withdrawn, Err(ServiceError::InvalidTransition { .. })) => {}
                        (st, other) => prop_assert!(false, "withdraw from {st:?}: {other:?}"),
                    }
                }
                Op::Swap => {
                    swaps += 1;
                    let mut files = test_packages().packages["test-district"].files.clone();
                    files.insert("rules.rhai".into(), format!("{TEST_RULES}\n// 修订 {swaps}\n"));
                    files.insert("tests/cases.toml".into(), TEST_CASES.into());
                    let activated = x.activate("test-district", &xueji::policy::PackageSource { files }, &xueji::domain::Actor::system("test"));
                    prop_assert!(matches!(activated, Ok(Ok(_))), "swap refused");
                }
            }
            for (i, id) in ids.iter().enumerate() {
                let st = x.student(id).expect("student");
                prop_assert_eq!(st.status, model[i].status, "student {}", i);
                prop_assert_eq!(st.version, model[i].version, "student {}", i);
                prop_assert_eq!(st.class.as_deref(), Some(model[i].class.as_str()));
                prop_assert_eq!(x.events(id).expect("events").len() as u64, st.version, "one event per version");
            }
        }
        prop_assert!(x.verify_all().expect("verify").ok);
        let reproduced = x.reproduce_decisions(None).expect("reproduce");
        prop_assert!(reproduced.ok, "{:?}", reproduced);
    }
}
