//! The stored timelines, school members and statistics counters that rosters and statistics
//! read: they must say exactly what the events say, and a store written before them gets them on
//! open.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::json;
use std::collections::BTreeSet;
use xueji::domain::tally::{Counter, Counts, contribution};
use xueji::domain::{Actor, ApprovalStep, Date, Timeline, TransitionInput};
use xueji::engine::{Outcome, Xueji};

use crate::helpers::*;

type Raw = TableDefinition<'static, &'static str, &'static [u8]>;
const META: Raw = TableDefinition::new("meta");
/// The tables of schema 7 that `as_schema_7` writes.
const TIMELINES: Raw = TableDefinition::new("timeline_steps");
const LEGACY_TIMELINES: Raw = TableDefinition::new("timelines");
const MEMBERS: Raw = TableDefinition::new("idx_school_members");
const STAT_TOTALS: Raw = TableDefinition::new("stat_totals");
const STAT_CHANGES: Raw = TableDefinition::new("stat_changes");
const ID_CARDS: Raw = TableDefinition::new("idx_id_card");
const TALLY_STATES: Raw = TableDefinition::new("tally_states");
const JUR: &str = "test-district";

/// Applies a transition, approving every step it needs.
fn apply(x: &Xueji, student: &str, input: serde_json::Value) {
    let input: TransitionInput = serde_json::from_value(input).expect("input");
    match x.transition(student, input, &registrar(), false) {
        Ok(Outcome::Applied { .. }) => {}
        Ok(Outcome::Pending { request, .. }) => {
            let officer = Actor {
                id: "tok_officer".into(),
                role: "district_officer".into(),
            };
            for step in request.steps.clone() {
                let who = if step == ApprovalStep::District {
                    &officer
                } else {
                    &registrar()
                };
                x.approve(&request.id, step, who, None).expect("approve");
            }
            assert_eq!(
                x.student(student).expect("student").version,
                request.student_version + 1
            );
        }
        other => panic!("not applied: {other:?}"),
    }
}

/// Three students: one stays, one moves s1 → s2 → s1 with a back-dated class change recorded
/// last, one is admitted at s2 and never registers.
fn history(x: &Xueji) -> Vec<String> {
    let stays = enrolled(x, "甲", 1);
    let moves = enrolled(x, "乙", 2);
    let transfer = |to: &str, date: &str| {
        json!({"kind": "transfer", "effective_date": date, "reason": "household_move",
               "params": {"to_school": to}, "documents": [{"kind": "transfer_form"}]})
    };
    apply(x, &moves.id, transfer("s2", "2025-03-01"));
    apply(x, &moves.id, transfer("s1", "2025-05-01"));
    apply(
        x,
        &moves.id,
        json!({"kind": "change_class", "effective_date": "2025-04-01", "params": {"class": "9"}}),
    );
    let mut form = form("丙", &id_card("2016-05-01", 3));
    form.school = "s2".into();
    let never = match x.admit(form, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => student.id,
        other => panic!("{other:?}"),
    };
    vec![stays.id, moves.id, never]
}

/// Replaces text in one stored record, behind the store's back (the record must contain it).
fn rewrite_text(path: &std::path::Path, table: Raw, key: &str, from: &str, to: &str) {
    with_raw(path, |txn| {
        let mut t = txn.open_table(table).expect("table");
        let text = String::from_utf8(t.get(key).expect("get").expect("stored").value().to_vec())
            .expect("utf8");
        let changed = text.replace(from, to);
        assert_ne!(changed, text);
        t.insert(key, changed.as_bytes()).expect("insert");
    });
}

fn from_events(x: &Xueji, id: &str) -> Timeline {
    Timeline::from_events(id.to_owned(), x.store().events(id).expect("events"))
}

fn stored(x: &Xueji) -> Vec<Timeline> {
    let mut all = Vec::new();
    x.store()
        .for_each_timeline(JUR, |t| all.push(t))
        .expect("timelines");
    all
}

fn members(x: &Xueji, school: &str) -> BTreeSet<String> {
    x.store()
        .timelines_of_school(JUR, school)
        .expect("members")
        .into_iter()
        .map(|t| t.student)
        .collect()
}

fn assert_agree_with_events(x: &Xueji, ids: &[String]) {
    let all = stored(x);
    assert_eq!(all.len(), ids.len());
    for t in &all {
        assert_eq!(t, &from_events(x, &t.student), "{}", t.student);
    }
    for school in ["s1", "s2"] {
        let expected: BTreeSet<String> = ids
            .iter()
            .filter(|id| {
                x.store()
                    .events(id)
                    .expect("events")
                    .iter()
                    .any(|e| e.after.school == school)
            })
            .cloned()
            .collect();
        assert_eq!(members(x, school), expected, "members of {school}");
        for t in x.store().timelines_of_school(JUR, school).expect("school") {
            assert_eq!(t, from_events(x, &t.student));
        }
    }
}

#[test]
fn every_event_extends_the_timeline_and_the_schools_it_touches() {
    let t = engine();
    let ids = history(&t.xueji);
    assert_agree_with_events(&t.xueji, &ids);
    let moved = from_events(&t.xueji, &ids[1]);
    // Ordered by effective date: the back-dated class change sits between the two transfers.
    let dates: Vec<String> = moved.steps.iter().map(|s| s.date.to_string()).collect();
    assert_eq!(
        dates,
        [
            "2024-09-01",
            "2024-09-02",
            "2025-03-01",
            "2025-04-01",
            "2025-05-01"
        ]
    );
    assert_eq!(members(&t.xueji, "s1").len(), 2);
    assert_eq!(members(&t.xueji, "s2").len(), 2);
}

#[test]
fn a_store_written_before_the_timelines_gets_them_on_open() {
    let t = engine();
    let ids = history(&t.xueji);
    let before = stored(&t.xueji);
    let counters_before = counters_on(&t.xueji, &dates());
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, |txn| {
        as_schema_7(txn);
        for table in [TIMELINES, MEMBERS, STAT_TOTALS, STAT_CHANGES, TALLY_STATES] {
            txn.delete_table(table).expect("drop table");
        }
        txn.open_table(META)
            .expect("meta")
            .insert("schema_version", b"2".as_slice())
            .expect("schema 2");
    });
    let x = reopen(&path);
    assert_eq!(stored(&x), before);
    assert_agree_with_events(&x, &ids);
    assert_eq!(counters_on(&x, &dates()), counters_before);
    assert!(x.verify_all().expect("verify").ok);
    // The rebuilt tally states carry on: a later event keeps the counters right.
    carries_on(&x, &ids[0]);
    // The current schema is recorded, so the next open rebuilds nothing.
    let db_schema = {
        drop(x);
        let db = Database::open(&path).expect("open");
        let txn = db.begin_read().expect("read");
        let meta = txn.open_table(META).expect("meta");
        let v = meta.get("schema_version").expect("get").expect("set");
        String::from_utf8(v.value().to_vec()).expect("utf8")
    };
    assert_eq!(db_schema, "9");
}

/// A store that was moved or rebuilt on open takes a later event and still verifies: what it
/// rebuilt (tally states, counters, steps) carries on.
fn carries_on(x: &Xueji, student: &str) {
    apply(
        x,
        student,
        json!({"kind": "change_class", "effective_date": "2026-01-05", "params": {"class": "7"}}),
    );
    assert!(x.verify_all().expect("verify").ok);
}

/// Every day from before the first admission to after the last step, weekly.
fn dates() -> Vec<Date> {
    let start = Date::from_ymd(2024, 8, 1).expect("date");
    (0..120)
        .filter_map(|w| start.add_weeks(w))
        .chain([Date::today()])
        .collect()
}

fn counters_on(x: &Xueji, dates: &[Date]) -> Vec<Counts> {
    x.store().tallies_as_of(JUR, dates).expect("counters")
}

/// The counters a statistic reads, kept at write time, equal on every date what the timelines
/// say then, back-dated events included.
#[test]
fn the_counters_on_any_date_are_what_the_timelines_say_then() {
    let t = engine();
    history(&t.xueji);
    let timelines = stored(&t.xueji);
    let dates = dates();
    let kept = counters_on(&t.xueji, &dates);
    for (date, kept) in dates.iter().zip(kept) {
        let mut replayed = Counts::new();
        for tl in &timelines {
            for c in contribution(tl, *date) {
                *replayed.entry(c).or_default() += 1;
            }
        }
        assert_eq!(kept, replayed, "on {date}");
    }
    // The history moves through several states: the check compared more than empty sums.
    let distinct: BTreeSet<usize> = counters_on(&t.xueji, &dates)
        .iter()
        .map(|c| c.len())
        .collect();
    assert!(distinct.len() >= 4, "{distinct:?}");
}

#[test]
fn verify_reports_a_statistics_counter_that_disagrees_with_the_timelines() {
    let t = engine();
    history(&t.xueji);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, |txn| {
        let mut totals = txn.open_table(STAT_TOTALS).expect("totals");
        let (k, v) = {
            let first = totals.first().expect("first").expect("a counter");
            (first.0.value().to_owned(), first.1.value().to_vec())
        };
        let n = i64::from_le_bytes(v.try_into().expect("8 bytes"));
        totals
            .insert(k.as_str(), (n + 5).to_le_bytes().as_slice())
            .expect("insert");
    });
    let x = reopen(&path);
    let report = x.verify_all().expect("verify");
    assert!(!report.ok);
    assert!(report.failures.is_empty(), "the chains are intact");
    let [m] = report.stats_failures.as_slice() else {
        panic!("{:?}", report.stats_failures)
    };
    assert_eq!(
        (m.code, m.date, m.stored - m.replayed),
        ("stats_mismatch", None, 5)
    );
    // Keys sort by kind letter; with no dropout, the first is a cohort's `g`ained counter.
    assert!(
        matches!(m.counter, Counter::Gained { cohort: 2024, .. }),
        "{:?}",
        m.counter
    );
}

#[test]
fn verify_reports_a_timeline_that_disagrees_with_the_events() {
    let t = engine();
    let ids = history(&t.xueji);
    assert!(t.xueji.verify_all().expect("verify").ok);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    // The fifth event's step: the back-dated class change.
    let altered = record_key(&[JUR, &ids[1], "000000000005"]);
    // The class of the back-dated change, "9", becomes "8".
    rewrite_text(&path, TIMELINES, &altered, "\"9\"", "\"8\"");
    let x = reopen(&path);
    let report = x.verify_all().expect("verify");
    assert!(!report.ok);
    assert_eq!(report.failures.len(), 1);
    let (student, chain) = &report.failures[0];
    assert_eq!(student, &ids[1]);
    let bad = chain.first_bad.as_ref().expect("first bad");
    assert_eq!(bad.code, "timeline_mismatch");
    assert_eq!(bad.seq, 5, "the class change was the fifth event");
}

#[test]
fn verify_reports_a_school_that_lost_a_member() {
    let t = engine();
    let ids = history(&t.xueji);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, |txn| {
        txn.open_table(MEMBERS)
            .expect("members")
            .remove(format!("{JUR}\u{1f}s2\u{1f}{}", ids[1]).as_str())
            .expect("remove")
            .expect("the student was a member of s2");
    });
    let x = reopen(&path);
    let report = x.verify_all().expect("verify");
    assert_eq!(report.failures.len(), 1);
    let (student, chain) = &report.failures[0];
    assert_eq!(student, &ids[1]);
    let bad = chain.first_bad.as_ref().expect("first bad");
    assert_eq!(bad.code, "member_missing");
    assert_eq!(bad.seq, 3, "the transfer to s2 was the third event");
    assert!(bad.message.contains("s2"), "{}", bad.message);
}

/// Schema 5 keys the ID-number index by place and birth date first; an older store gets the index
/// rebuilt from its students on open, and it still refuses a second student with the same number.
#[test]
fn a_store_written_before_schema_5_gets_its_id_number_index_rebuilt() {
    let t = engine();
    let kept = enrolled(&t.xueji, "甲", 1);
    let id_card_of = crate::helpers::id_card;
    let id_card = kept.id_card.clone().expect("has an ID number");
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, |txn| {
        as_schema_7(txn);
        txn.delete_table(ID_CARDS).expect("drop the index");
        txn.open_table(META)
            .expect("meta")
            .insert("schema_version", b"4".as_slice())
            .expect("schema 4");
    });
    let x = reopen(&path);
    assert_eq!(
        x.store()
            .student_by_id_card(id_card.as_str())
            .expect("lookup"),
        Some(kept.id.clone())
    );
    // Another national number, so that only the ID-number index can tell.
    let mut same_person = form("甲", id_card.as_str());
    same_person.national_id = Some(format!("G{}", id_card_of("2016-05-01", 2)));
    let again = x.admit(same_person, &registrar(), false);
    match again {
        Err(xueji::engine::ServiceError::Duplicate { field, student, .. }) => {
            assert_eq!((field.as_str(), student), ("id_card", kept.id));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn verify_reports_a_tally_state_that_disagrees_with_the_events() {
    let t = engine();
    let ids = history(&t.xueji);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    let k = record_key(&[JUR, &ids[0], "~t"]);
    rewrite_text(&path, TIMELINES, &k, "\"gained\":true", "\"gained\":false");
    let x = reopen(&path);
    let report = x.verify_all().expect("verify");
    let [(student, chain)] = report.failures.as_slice() else {
        panic!("{:?}", report.failures)
    };
    assert_eq!(student, &ids[0]);
    let bad = chain.first_bad.as_ref().expect("first bad");
    assert_eq!(bad.code, "tally_state_mismatch");
}

/// Schemas 3 to 6 kept each student's steps in one array; schema 7 splits them into a record per
/// step on open, and the store carries on from there.
#[test]
fn a_store_with_timelines_in_one_record_gets_them_split_on_open() {
    let t = engine();
    let ids = history(&t.xueji);
    let before = stored(&t.xueji);
    let counters_before = counters_on(&t.xueji, &dates());
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, |txn| {
        as_schema_7(txn);
        // Rewrite the steps as schema 6 kept them: one JSON array per student.
        let mut arrays: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
            Default::default();
        {
            let steps = txn.open_table(TIMELINES).expect("steps");
            for item in steps.iter().expect("iter") {
                let (k, v) = item.expect("row");
                let (student_key, _) = k.value().rsplit_once('\u{1f}').expect("prefix");
                let step: serde_json::Value = serde_json::from_slice(v.value()).expect("json");
                arrays.entry(student_key.to_owned()).or_default().push(step);
            }
        }
        txn.delete_table(TIMELINES).expect("drop the steps");
        let mut legacy = txn.open_table(LEGACY_TIMELINES).expect("legacy");
        for (k, steps) in &arrays {
            let bytes = serde_json::to_vec(steps).expect("encode");
            legacy.insert(k.as_str(), bytes.as_slice()).expect("insert");
        }
        txn.open_table(META)
            .expect("meta")
            .insert("schema_version", b"6".as_slice())
            .expect("schema 6");
    });
    let x = reopen(&path);
    assert_eq!(stored(&x), before);
    assert_agree_with_events(&x, &ids);
    assert_eq!(counters_on(&x, &dates()), counters_before);
    carries_on(&x, &ids[1]);
    drop(x);
    let db = Database::open(&path).expect("open");
    let txn = db.begin_read().expect("read");
    assert!(
        txn.open_table(LEGACY_TIMELINES).is_err(),
        "the one-record timelines are gone"
    );
}

/// Schema 8 keeps each event beside its context and each tally state beside the last step; a
/// store in the layout of schema 7 (a table for each) is moved on open, reads the same, verifies
/// (chains, the log against a checkpoint taken before, counters) and carries on.
#[test]
fn a_store_in_the_layout_of_schema_7_is_moved_on_open() {
    let t = engine();
    let ids = history(&t.xueji);
    let before = stored(&t.xueji);
    let events_before: Vec<_> = ids
        .iter()
        .map(|id| t.xueji.store().events(id).expect("events"))
        .collect();
    let students_before: Vec<_> = ids
        .iter()
        .map(|id| t.xueji.student(id).expect("student"))
        .collect();
    let checkpoint = t.xueji.checkpoints().expect("checkpoints").remove(0);
    let counters_before = counters_on(&t.xueji, &dates());
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, as_schema_7);
    let x = reopen(&path);
    assert_eq!(stored(&x), before);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(x.store().events(id).expect("events"), events_before[i]);
        assert_eq!(x.student(id).expect("student"), students_before[i]);
    }
    assert_agree_with_events(&x, &ids);
    assert_eq!(counters_on(&x, &dates()), counters_before);
    assert!(x.verify_all().expect("verify").ok);
    assert!(x.verify_log(JUR, Some(&checkpoint)).expect("log").ok);
    carries_on(&x, &ids[1]);
    drop(x);
    let db = Database::open(&path).expect("open");
    let txn = db.begin_read().expect("read");
    for gone in ["events", "decision_contexts", "tally_states"] {
        let table: Raw = TableDefinition::new(gone);
        assert!(txn.open_table(table).is_err(), "{gone} is gone");
    }
}

/// An event that no log leaf names (added behind the log's back) has no place in schema 8's
/// layout: the move is refused with the event named, and the file stays as it was.
#[test]
fn a_store_with_an_event_outside_the_log_is_not_moved() {
    let t = engine();
    let ids = history(&t.xueji);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    let forged = record_key(&[JUR, &ids[0], "000000000099"]);
    with_raw(&path, |txn| {
        as_schema_7(txn);
        let events: Raw = TableDefinition::new("events");
        txn.open_table(events)
            .expect("events")
            .insert(forged.as_str(), b"{}".as_slice())
            .expect("insert");
    });
    let e = xueji::store::Store::open(&path).err().expect("refused");
    assert!(e.to_string().contains("000000000099"), "{e}");
    assert!(e.to_string().contains("xueji verify"), "{e}");
    let db = Database::open(&path).expect("open");
    let txn = db.begin_read().expect("read");
    let meta = txn.open_table(META).expect("meta");
    let schema = meta.get("schema_version").expect("get").expect("set");
    assert_eq!(schema.value(), b"7");
}
