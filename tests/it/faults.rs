//! A storage failure in the middle of a commit leaves the store exactly as it was, and the
//! caller gets an error instead of an acknowledgement. The store runs in the mode the server
//! opens its file in (redb `SingleWriter`), where a failed write or sync latches the handle:
//! every later read and write on it may be refused with `storage` (never a wrong answer) until
//! the file is reopened. Reopened, the store holds every acknowledged commit, the failed one
//! whole or not at all, and accepts writes.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use xueji::domain::{TransitionInput, TransitionKind};
use xueji::engine::{Outcome, ServiceError, Xueji};
use xueji::policy::PolicyRegistry;
use xueji::store::Store;
use xueji::store::redb::fault::{FaultPlan, FaultyBackend};

use crate::helpers::*;

struct Setup {
    x: Xueji,
    plan: Arc<FaultPlan>,
    student: xueji::domain::Student,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("dir");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.path().join("x.redb"))
        .expect("file");
    let plan = Arc::new(FaultPlan::default());
    let store =
        Store::open_shared_with_backend(FaultyBackend::new(file, plan.clone()).expect("backend"))
            .expect("store");
    let x = Xueji::new(
        store,
        Arc::new(PolicyRegistry::from_packages(&test_packages()).expect("policies")),
    );
    x.create_school(school("s1", None)).expect("school");
    let student = enrolled(&x, "甲", 1);
    Setup {
        x,
        plan,
        student,
        _dir: dir,
    }
}

fn class_change() -> TransitionInput {
    let mut input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-01-01"));
    input.params.insert("class".into(), json!("9"));
    input
}

#[test]
fn a_failed_write_or_sync_acknowledges_nothing_and_alters_nothing() {
    // Count the writes and syncs one transition's commit performs, then fail each in turn.
    let calibrate = setup();
    let (w0, s0) = (
        calibrate.plan.writes.load(Ordering::SeqCst),
        calibrate.plan.syncs.load(Ordering::SeqCst),
    );
    calibrate
        .x
        .transition(&calibrate.student.id, class_change(), &registrar(), false)
        .expect("applies");
    let writes = calibrate.plan.writes.load(Ordering::SeqCst) - w0;
    let syncs = calibrate.plan.syncs.load(Ordering::SeqCst) - s0;
    assert!(writes >= 1 && syncs >= 1, "writes={writes} syncs={syncs}");
    println!("storage faults: {writes} writes and {syncs} syncs per commit, each failed in turn");
    let faults = (1..=writes)
        .map(|n| (n, false))
        .chain((1..=syncs).map(|n| (n, true)));
    let (mut latched, mut published) = (0, 0);
    for (n, sync) in faults {
        let Setup {
            x,
            plan,
            student: s,
            _dir,
        } = setup();
        let input = class_change();
        if sync {
            plan.fail_nth_sync_from_now(n)
        } else {
            plan.fail_nth_write_from_now(n)
        }
        let err = x
            .transition(&s.id, input.clone(), &registrar(), false)
            .expect_err("injected fault must surface");
        assert!(
            matches!(err, ServiceError::Storage(_)),
            "fault {n} sync={sync}: {err:?}"
        );
        plan.disarm();

        // The same handle answers the old state or refuses; it never shows the failed commit.
        match x.student(&s.id) {
            Ok(after) => assert_eq!(
                (after.version, after.class.as_deref()),
                (s.version, Some("4")),
                "fault {n} sync={sync}"
            ),
            Err(e) => {
                assert!(matches!(e, ServiceError::Storage(_)), "{e:?}");
                // What `/healthz` asks: the server then answers 503 `storage_failed`.
                assert!(x.store().probe().is_err());
                latched += 1;
            }
        }
        let retried = match x.transition(&s.id, input.clone(), &registrar(), false) {
            Ok(Outcome::Applied { student, .. }) => {
                assert_eq!(student.version, s.version + 1);
                1
            }
            Ok(other) => panic!("fault {n} sync={sync}: {other:?}"),
            Err(e) => {
                assert!(matches!(e, ServiceError::Storage(_)), "{e:?}");
                0
            }
        };
        // Reopened from the file: the acknowledged state, plus the failed commit only if it was
        // already durable when its last header write or sync failed (redb then publishes it on
        // recovery, as after a crash between commit and answer): whole or not at all.
        drop(x);
        let x = reopen(&_dir);
        x.store().probe().expect("healthy once reopened");
        let after = x.student(&s.id).expect("readable once reopened");
        let applied = after.version - s.version;
        assert!(
            applied == retried || applied == retried + 1,
            "fault {n} sync={sync}: {applied} transitions in the file, {retried} acknowledged"
        );
        if applied > retried {
            published += 1;
        }
        assert_eq!(
            after.class.as_deref(),
            Some(if applied > 0 { "9" } else { "4" }),
            "fault {n} sync={sync}"
        );
        assert_eq!(x.events(&s.id).expect("events").len() as u64, after.version);
        match x.transition(&s.id, input, &registrar(), false) {
            Ok(Outcome::Applied { student, .. }) => assert_eq!(student.version, after.version + 1),
            other => panic!("fault {n} sync={sync}: the reopened store refused a write: {other:?}"),
        }
        assert!(x.verify_student(&s.id).expect("verify").ok);
        assert!(x.verify_logs(&[]).expect("logs").iter().all(|r| r.ok));
    }
    println!(
        "storage faults: {} injected; {latched} left the handle refusing reads until reopened; \
         {published} failed after the commit was durable and were published on reopen",
        writes + syncs
    );
}

/// The store file of a setup, opened again as the server opens it.
fn reopen(dir: &tempfile::TempDir) -> Xueji {
    Xueji::new(
        Store::open(&dir.path().join("x.redb")).expect("reopen"),
        Arc::new(PolicyRegistry::from_packages(&test_packages()).expect("policies")),
    )
}
