use serde_json::json;
use xueji::domain::{
    ApprovalStep, DocumentKind, RequestStatus, Status, TransitionInput, TransitionKind,
};
use xueji::engine::{Outcome, ServiceError};

use super::helpers::*;

fn suspend_input(with_proof: bool) -> TransitionInput {
    let mut input = TransitionInput::new(TransitionKind::Suspend, d("2025-03-02"));
    input.params.insert("until".into(), json!("2026-03-01"));
    if with_proof {
        input.documents.push(
            serde_json::from_value(json!({"kind": "hospital_diagnosis", "issuer_level": "county"}))
                .expect("doc"),
        );
    }
    input
}

#[test]
fn admission_creates_a_student_with_one_verified_event() {
    let t = engine();
    let s = admit(&t.xueji, "张三", 1);
    assert_eq!(s.status, Status::Admitted);
    assert_eq!(s.version, 1);
    assert_eq!(s.deadlines.len(), 1, "report_by deadline from the form");
    let events = t.xueji.events(&s.id).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].before, None);
    assert_eq!(events[0].hash, s.head);
    assert!(t.xueji.verify_student(&s.id).expect("verify").ok);
}

#[test]
fn transition_applied_pending_and_denied() {
    let t = engine();
    let s = enrolled(&t.xueji, "李四", 2);
    assert_eq!(s.status, Status::Enrolled);
    assert!(
        s.deadlines.is_empty(),
        "status change clears the report deadline"
    );

    // Denied: the policy requires a hospital diagnosis; nothing is stored.
    let out = t
        .xueji
        .transition(&s.id, suspend_input(false), &registrar(), false)
        .expect("evaluates");
    let Outcome::Denied { decision } = out else {
        panic!("expected denial, got {out:?}")
    };
    assert_eq!(decision.missing_documents, vec!["hospital_diagnosis"]);
    assert_eq!(t.xueji.student(&s.id).expect("student").version, s.version);

    // Pending: two approval steps.
    let out = t
        .xueji
        .transition(&s.id, suspend_input(true), &registrar(), false)
        .expect("evaluates");
    let Outcome::Pending { request, decision } = out else {
        panic!("expected pending, got {out:?}")
    };
    assert_eq!(
        decision.approvals,
        vec![ApprovalStep::School, ApprovalStep::District]
    );
    assert_eq!(request.status, RequestStatus::Pending);

    // A second request of the same kind is refused while one is open.
    let err = t
        .xueji
        .transition(&s.id, suspend_input(true), &registrar(), false)
        .expect_err("one open request");
    assert!(
        matches!(
            err,
            ServiceError::Conflict {
                code: "open_request_exists",
                ..
            }
        ),
        "{err:?}"
    );

    // Steps in order: district before school is refused.
    let officer = xueji::domain::Actor {
        id: "tok_officer".into(),
        role: "district_officer".into(),
    };
    let err = t
        .xueji
        .approve(&request.id, ApprovalStep::District, &officer, None)
        .expect_err("out of order");
    assert!(
        matches!(
            err,
            ServiceError::Conflict {
                code: "step_out_of_order",
                ..
            }
        ),
        "{err:?}"
    );
    let first = t
        .xueji
        .approve(
            &request.id,
            ApprovalStep::School,
            &registrar(),
            Some("同意".into()),
        )
        .expect("school approves");
    assert_eq!(first.outcome, "pending");
    assert_eq!(
        t.xueji.student(&s.id).expect("student").status,
        Status::Enrolled
    );
    let last = t
        .xueji
        .approve(&request.id, ApprovalStep::District, &officer, None)
        .expect("district approves");
    assert_eq!(last.outcome, "applied");
    assert_eq!(last.request.status, RequestStatus::Applied);
    let after = t.xueji.student(&s.id).expect("student");
    assert_eq!(after.status, Status::Suspended);
    // The base records the suspension's end; the test package its own `resume_by`.
    for kind in ["suspended_until", "resume_by"] {
        let dl = after.deadlines.iter().find(|x| x.kind == kind);
        assert_eq!(dl.map(|x| x.date), Some(d("2026-03-01")), "{kind}");
    }
    let events = t.xueji.events(&s.id).expect("events");
    assert_eq!(events.len(), 3);
    assert_eq!(events[2].request.as_deref(), Some(request.id.as_str()));
    // The base's rules fire first; the district's own rule cites its own article.
    let own = events[2]
        .decision
        .rules
        .iter()
        .find(|r| r.id == "test.suspend.proof")
        .map(|r| r.citation.as_str());
    assert_eq!(own, Some("测试区学籍管理办法 第一条"));

    // The request is closed: approving again is a conflict.
    let err = t
        .xueji
        .approve(&request.id, ApprovalStep::District, &officer, None)
        .expect_err("closed");
    assert!(
        matches!(
            err,
            ServiceError::Conflict {
                code: "request_not_pending",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(t.xueji.verify_all().expect("verify").ok);
}

#[test]
fn rejection_ends_the_request_and_changes_nothing() {
    let t = engine();
    let s = enrolled(&t.xueji, "王五", 3);
    let Outcome::Pending { request, .. } = t
        .xueji
        .transition(&s.id, suspend_input(true), &registrar(), false)
        .expect("pending")
    else {
        panic!("expected pending")
    };
    let out = t
        .xueji
        .reject(
            &request.id,
            ApprovalStep::School,
            &registrar(),
            "材料不全".into(),
        )
        .expect("reject");
    assert_eq!(out.request.status, RequestStatus::Rejected);
    assert_eq!(
        t.xueji.student(&s.id).expect("student").status,
        Status::Enrolled
    );
    // A new request may be filed once the old one is closed.
    assert!(matches!(
        t.xueji
            .transition(&s.id, suspend_input(true), &registrar(), false),
        Ok(Outcome::Pending { .. })
    ));
}

#[test]
fn dry_run_stores_nothing() {
    let t = engine();
    let s = enrolled(&t.xueji, "赵六", 4);
    let mut input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-03-02"));
    input.params.insert("class".into(), json!("5"));
    let out = t
        .xueji
        .transition(&s.id, input.clone(), &registrar(), true)
        .expect("dry run");
    assert!(matches!(out, Outcome::DryRun { ref decision } if decision.allowed));
    assert_eq!(
        t.xueji.student(&s.id).expect("student").class.as_deref(),
        Some("4")
    );
    let out = t
        .xueji
        .transition(&s.id, input, &registrar(), false)
        .expect("applies");
    let Outcome::Applied { student, .. } = out else {
        panic!("expected applied")
    };
    assert_eq!(student.class.as_deref(), Some("5"));
}

#[test]
fn a_student_out_of_scope_is_not_found_before_anything_is_decided() {
    let t = engine();
    let s = enrolled(&t.xueji, "钱八", 6);
    let seen = std::cell::RefCell::new(Vec::new());
    let other_school = |student: &xueji::domain::Student, school: &xueji::domain::School| {
        seen.borrow_mut()
            .push((student.id.clone(), school.id.clone()));
        school.id == "another-school"
    };
    // Resume from `enrolled` is refused by the state machine: an out-of-scope caller must not
    // learn that (it would reveal the student's status), only that there is no such student.
    for (kind, dry_run) in [
        (TransitionKind::ChangeClass, false),
        (TransitionKind::ChangeClass, true),
        (TransitionKind::Resume, false),
    ] {
        let mut input = TransitionInput::new(kind, d("2025-03-02"));
        if kind == TransitionKind::ChangeClass {
            input.params.insert("class".into(), json!("5"));
        }
        let err = t
            .xueji
            .transition_in_scope(&s.id, input, &registrar(), dry_run, other_school)
            .expect_err("out of scope");
        assert!(
            matches!(err, ServiceError::NotFound { what: "student", ref id } if *id == s.id),
            "{err:?}"
        );
    }
    assert_eq!(
        seen.borrow().first(),
        Some(&(s.id.clone(), s.school.clone())),
        "the scope is asked about the stored student and their school"
    );
    let stored = t.xueji.student(&s.id).expect("student");
    assert_eq!(
        (stored.version, stored.class.as_deref()),
        (s.version, Some("4"))
    );
    assert_eq!(t.xueji.events(&s.id).expect("events").len(), 2);

    let mut input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-03-02"));
    input.params.insert("class".into(), json!("5"));
    let own_school =
        |_: &xueji::domain::Student, school: &xueji::domain::School| school.id == s.school;
    let out = t
        .xueji
        .transition_in_scope(&s.id, input, &registrar(), false, own_school)
        .expect("in scope");
    assert!(
        matches!(out, Outcome::Applied { ref student, .. } if student.class.as_deref() == Some("5"))
    );
}

#[test]
fn state_machine_and_params_are_checked_before_the_policy() {
    let t = engine();
    let s = admit(&t.xueji, "孙七", 5);
    let err = t
        .xueji
        .transition(
            &s.id,
            TransitionInput::new(TransitionKind::Resume, d("2025-01-01")),
            &registrar(),
            false,
        )
        .expect_err("not suspended");
    assert!(matches!(
        err,
        ServiceError::InvalidTransition {
            kind: TransitionKind::Resume,
            status: Status::Admitted
        }
    ));
    let mut input = TransitionInput::new(TransitionKind::Suspend, d("2025-01-01"));
    input.params.insert("suspended_monts".into(), json!(3));
    let ServiceError::Invalid(e) = t
        .xueji
        .transition(&s.id, input, &registrar(), false)
        .expect_err("unknown param")
    else {
        panic!()
    };
    assert_eq!(e.errors[0].code, "unknown_param");
    assert_eq!(e.errors[0].field, "params.suspended_monts");
}

#[test]
fn expected_version_mismatch_is_a_conflict() {
    let t = engine();
    let s = enrolled(&t.xueji, "周八", 6);
    let mut input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-03-02"));
    input.params.insert("class".into(), json!("5"));
    input.expected_version = Some(s.version - 1);
    let err = t
        .xueji
        .transition(&s.id, input.clone(), &registrar(), false)
        .expect_err("stale");
    assert!(matches!(
        err,
        ServiceError::Conflict {
            code: "version_conflict",
            ..
        }
    ));
    input.expected_version = Some(s.version);
    assert!(matches!(
        t.xueji.transition(&s.id, input, &registrar(), false),
        Ok(Outcome::Applied { .. })
    ));
}

#[test]
fn duplicate_identities_are_refused_never_created() {
    let t = engine();
    let id = id_card("2016-05-01", 7);
    admit(&t.xueji, "吴九", 7);
    let err = t
        .xueji
        .admit(form("吴九", &id), &registrar(), false)
        .expect_err("same ID");
    assert!(
        matches!(err, ServiceError::Duplicate { ref field, .. } if field == "national_id" || field == "id_card"),
        "{err:?}"
    );

    // Same national number given explicitly with another ID.
    let mut f = form("郑十", &id_card("2016-05-02", 8));
    f.national_id = Some(format!("G{id}"));
    let err = t
        .xueji
        .admit(f, &registrar(), false)
        .expect_err("same national number");
    assert!(
        matches!(err, ServiceError::Duplicate { ref field, .. } if field == "national_id"),
        "{err:?}"
    );

    // Without an ID: same name, gender and birth date is the same person.
    let mut f = form("钱一", &id_card("2016-06-01", 9));
    f.id_card = None;
    f.national_id = Some("L11010520160601AB12".into());
    t.xueji
        .admit(f.clone(), &registrar(), false)
        .expect("first");
    f.national_id = Some("L11010520160601CD34".into());
    let err = t
        .xueji
        .admit(f, &registrar(), false)
        .expect_err("same person");
    assert!(
        matches!(err, ServiceError::Duplicate { ref field, .. } if field == "name_gender_birth_date"),
        "{err:?}"
    );
}

#[test]
fn invalid_forms_report_every_field_with_a_code() {
    let t = engine();
    let mut f = form("", "11010519491231002X");
    f.gender = "male".into();
    f.birth_date = "2016-02-30".into();
    f.grade = 9;
    let ServiceError::Invalid(e) = t.xueji.admit(f, &registrar(), false).expect_err("invalid")
    else {
        panic!()
    };
    let codes: Vec<(&str, &str)> = e
        .errors
        .iter()
        .map(|e| (e.field.as_str(), e.code.as_str()))
        .collect();
    assert!(codes.contains(&("name", "required")), "{codes:?}");
    assert!(codes.contains(&("birth_date", "invalid_date")), "{codes:?}");
    assert!(
        codes.contains(&("gender", "id_card_gender_mismatch")),
        "{codes:?}"
    );
    assert!(codes.contains(&("grade", "invalid_value")), "{codes:?}");
    let mut f = form("某", "11010519491231002X");
    f.id_card = Some("110105194912310021".into());
    let ServiceError::Invalid(e) = t
        .xueji
        .admit(f, &registrar(), false)
        .expect_err("bad check")
    else {
        panic!()
    };
    assert_eq!(e.errors[0].code, "id_card_check_character");
}

#[test]
fn sweep_applies_what_the_deadline_rule_decides_on_its_date() {
    let t = engine();
    let s = admit(&t.xueji, "冯二", 10); // report_by 2024-09-05
    let early = t.xueji.sweep(d("2024-09-10"), None).expect("sweep");
    assert_eq!(early.evaluated, 1);
    assert!(early.applied.is_empty(), "within two weeks of the deadline");
    let late = t
        .xueji
        .sweep(d("2024-09-20"), Some("test-district"))
        .expect("sweep");
    assert_eq!(late.applied.len(), 1);
    let after = t.xueji.student(&s.id).expect("student");
    assert_eq!(after.status, Status::AdmissionForfeited);
    assert_eq!(late.applied[0].event.actor.role, "system");
    // Terminal now, and its deadline is gone: the next sweep has nothing to do.
    let again = t.xueji.sweep(d("2024-10-01"), None).expect("sweep");
    assert_eq!(again.evaluated, 0);
}

#[test]
fn key_information_changes_are_recorded_without_raw_personal_data() {
    let t = engine();
    let s = enrolled(&t.xueji, "陈三", 11);
    let new_id = id_card("2016-05-01", 111);
    let mut input = TransitionInput::new(TransitionKind::ChangeKeyInfo, d("2025-03-02"));
    input
        .params
        .insert("fields".into(), json!({"id_card": new_id, "name": "陈叁"}));
    input
        .documents
        .push(serde_json::from_value(json!({"kind": "household_register"})).expect("doc"));
    // The national base asks the bureau to review key-information changes.
    let Outcome::Pending { request, .. } = t
        .xueji
        .transition(&s.id, input, &registrar(), false)
        .expect("filed")
    else {
        panic!("key information changes need the bureau's review")
    };
    assert_eq!(request.steps, vec![ApprovalStep::District]);
    let officer = xueji::domain::Actor {
        id: "tok_officer".into(),
        role: "district_officer".into(),
    };
    let approved = t
        .xueji
        .approve(&request.id, ApprovalStep::District, &officer, None)
        .expect("approves");
    let (Some(student), Some(event)) = (approved.student, approved.event) else {
        panic!("applied at the last approval")
    };
    let recorded_request = serde_json::to_string(&approved.request).expect("json");
    assert!(
        !recorded_request.contains(&new_id),
        "the closed request keeps no raw ID number"
    );
    assert_eq!(student.name, "陈叁");
    assert_eq!(
        student.id_card.as_ref().map(|c| c.as_str()),
        Some(new_id.as_str())
    );
    assert!(
        student
            .flags
            .contains(&"national_id_differs_from_id_card".to_owned())
    );
    assert_eq!(
        student.national_id, s.national_id,
        "the national number is kept as issued"
    );
    let recorded = serde_json::to_string(&event).expect("json");
    assert!(
        !recorded.contains(&new_id) && !recorded.contains("陈叁"),
        "raw values in history: {recorded}"
    );
    // The new ID number is now indexed: another student cannot take it.
    let err = t
        .xueji
        .admit(form("他人", &new_id), &registrar(), false)
        .expect_err("taken");
    assert!(matches!(err, ServiceError::Duplicate { .. }));
    assert_eq!(
        event
            .input
            .documents
            .iter()
            .map(|d| d.kind)
            .collect::<Vec<_>>(),
        [DocumentKind::HouseholdRegister],
        "the evidence is recorded with the change"
    );
}

#[test]
fn the_store_survives_a_reopen() {
    let t = engine();
    let s = enrolled(&t.xueji, "褚四", 12);
    drop(t.xueji);
    let store = t.store_at.open().expect("store reopens");
    let events = store.events(&s.id).expect("events");
    assert_eq!(events.len(), 2);
    let again = store.student(&s.id).expect("read").expect("present");
    assert_eq!(again.head, events[1].hash);
}

/// The engine retries a version conflict this many times in all (`service::CONFLICT_RETRIES`).
const CONFLICT_RETRIES: usize = 3;

#[test]
fn concurrent_writers_to_one_student_serialize_without_loss() {
    const WRITERS: usize = 8;
    let t = engine();
    let s = enrolled(&t.xueji, "卫五", 13);
    let answers: Vec<(usize, Result<Outcome, ServiceError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|i| {
                let x = &t.xueji;
                let id = s.id.clone();
                scope.spawn(move || {
                    let mut input =
                        TransitionInput::new(TransitionKind::ChangeClass, d("2025-03-02"));
                    input.params.insert("class".into(), json!(format!("{i}")));
                    (i, x.transition(&id, input, &registrar(), false))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    // Without expected_version the engine retries; with 8 racing writers a conflict may still
    // surface, and then nothing of that call is stored. Anything else is a failure.
    let mut applied = Vec::new();
    for (i, answer) in answers {
        match answer {
            Ok(Outcome::Applied { student, event, .. }) => applied.push((i, *student, *event)),
            Err(ServiceError::Conflict {
                code: "version_conflict",
                ..
            }) => {}
            other => panic!("writer {i}: unexpected {other:?}"),
        }
    }
    // A writer that gives up has lost each of its attempts to a commit made after it read the
    // student, a different commit each time: so either every writer landed, or at least as many
    // as one writer's attempts did. None landing is the regression this guards against.
    assert!(
        applied.len() >= CONFLICT_RETRIES.min(WRITERS),
        "only {} of {WRITERS} writers landed",
        applied.len()
    );
    let after = t.xueji.student(&s.id).expect("student");
    let events = t.xueji.events(&s.id).expect("events");
    assert_eq!(
        after.version,
        s.version + applied.len() as u64,
        "one version per acknowledged write, none for a refused one"
    );
    assert_eq!(
        after.version as usize,
        events.len(),
        "one event per version, no gaps"
    );
    // Each acknowledged write is stored as the event it was answered with, at its own version.
    let mut versions: Vec<u64> = applied.iter().map(|(_, st, _)| st.version).collect();
    versions.sort_unstable();
    assert_eq!(
        versions,
        (s.version + 1..=after.version).collect::<Vec<_>>(),
        "each acknowledged write has a version of its own"
    );
    for (i, student, event) in &applied {
        assert_eq!(event.seq, student.version, "writer {i}");
        assert_eq!(
            events[(event.seq - 1) as usize],
            *event,
            "writer {i}: the stored event is not the acknowledged one"
        );
        assert_eq!(event.input.params["class"], json!(format!("{i}")));
    }
    let (last_writer, ..) = applied
        .iter()
        .max_by_key(|(_, st, _)| st.version)
        .expect("at least one write landed");
    assert_eq!(
        after.class,
        Some(format!("{last_writer}")),
        "the newest write wins"
    );
    assert_eq!(after.head, events[events.len() - 1].hash);
    assert!(t.xueji.verify_student(&s.id).expect("verify").ok);
}

#[test]
fn many_students_concurrently_share_commits() {
    const WRITERS: u32 = 16;
    const EACH: u32 = 5;
    let t = engine();
    let stats = t.xueji.store().commit_stats();
    let load = |s: &std::sync::atomic::AtomicU64| s.load(std::sync::atomic::Ordering::SeqCst);
    let (commands0, failed0) = (load(&stats.commands), load(&stats.failed_commits));
    let admitted: Vec<xueji::domain::Student> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let x = &t.xueji;
                scope.spawn(move || {
                    (0..EACH)
                        .map(|i| admit(x, &format!("学生{w}-{i}"), 100 + w * 10 + i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer thread"))
            .collect()
    });
    let n = (WRITERS * EACH) as usize;
    let ids: std::collections::BTreeSet<&str> = admitted.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), n, "every admission is a student of its own");
    for s in &admitted {
        let stored = t.xueji.student(&s.id).expect("acknowledged student stored");
        assert_eq!(stored, *s, "stored as acknowledged");
        let events = t.xueji.events(&s.id).expect("events");
        assert_eq!(
            (s.version, events.len(), events[0].hash.as_str()),
            (1, 1, s.head.as_str()),
            "{}",
            s.id
        );
    }
    assert_eq!(
        load(&stats.commands) - commands0,
        n as u64,
        "one writer command per admission"
    );
    assert_eq!(load(&stats.failed_commits), failed0);
    let report = t.xueji.verify_all().expect("verify");
    assert_eq!((report.students, report.events), (n, n as u64));
    assert!(report.ok, "{report:?}");
    let logs = t.xueji.checkpoints().expect("checkpoints");
    assert_eq!(
        logs.iter().map(|c| c.size).sum::<u64>(),
        n as u64,
        "each admission is one leaf of the log"
    );
}

#[test]
fn the_demo_sample_shows_every_seed_jurisdiction_in_several_statuses() {
    let t = engine_with(&xueji::policy::builtin_packages());
    let path = xueji::demo::load(&t.xueji, t.dir.path())
        .expect("demo loads")
        .expect("empty store");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path)
                .expect("tokens")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let tokens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    assert!(tokens.as_object().expect("map").len() >= 18);
    let schools = t.xueji.store().schools().expect("schools");
    assert_eq!(schools.len(), 6);
    let mut statuses = std::collections::BTreeSet::new();
    let mut pending = 0;
    for s in &schools {
        let students = t
            .xueji
            .store()
            .students_of_school(&s.jurisdiction, &s.id, None, None, None, 100)
            .expect("students");
        assert_eq!(students.len(), 4, "{}", s.id);
        statuses.extend(students.iter().map(|(_, st)| st.status));
        pending += t
            .xueji
            .store()
            .requests_with_status(&s.jurisdiction, RequestStatus::Pending, None, 100)
            .expect("requests")
            .len();
    }
    for st in [Status::Admitted, Status::Enrolled, Status::Suspended] {
        assert!(
            statuses.contains(&st),
            "no {st:?} student in the demo: {statuses:?}"
        );
    }
    assert!(pending >= 1, "a pending request to approve");
    assert!(t.xueji.verify_all().expect("verify").ok);
    // A second start does not load it again.
    assert!(
        xueji::demo::load(&t.xueji, t.dir.path())
            .expect("demo")
            .is_none()
    );
}

/// Plans prepared before an identity was taken are checked again when stored: in one stream,
/// the first holder is stored, the later one is refused alone and leaves no trace.
#[test]
fn a_stream_of_admissions_refuses_an_overtaken_identity_alone() {
    use xueji::engine::Admission;
    let t = engine();
    let card = id_card("2016-05-01", 7);
    let plan = |name: &str| match t
        .xueji
        .prepare_admission(form(name, &card), &registrar())
        .expect("prepares")
    {
        Admission::Ready(plan) => *plan,
        Admission::Refused(d) => panic!("refused: {d:?}"),
    };
    let (first, second) = (plan("甲"), plan("甲"));
    // A different person after it, stored whatever happens to the second.
    let third = match t
        .xueji
        .prepare_admission(form("丙", &id_card("2016-05-01", 8)), &registrar())
        .expect("prepares")
    {
        Admission::Ready(plan) => *plan,
        Admission::Refused(d) => panic!("refused: {d:?}"),
    };
    let ids = [
        first.student().id.clone(),
        second.student().id.clone(),
        third.student().id.clone(),
    ];
    let answers = t.xueji.store_admissions(vec![first, second, third]);
    assert!(
        matches!(answers[0], Ok(Outcome::Applied { .. })),
        "{:?}",
        answers[0]
    );
    assert!(
        matches!(&answers[1], Err(ServiceError::Duplicate { field, student, .. }) if field == "national_id" && student == &ids[0]),
        "{:?}",
        answers[1]
    );
    assert!(
        matches!(answers[2], Ok(Outcome::Applied { .. })),
        "{:?}",
        answers[2]
    );
    assert!(t.xueji.store().events(&ids[1]).expect("events").is_empty());
    assert!(t.xueji.student(&ids[1]).is_err());
    assert_eq!(t.xueji.events(&ids[2]).expect("events").len(), 1);
}
