//! The history chain: published test vectors, and tampering detected precisely.

use redb::{Database, ReadableTable};
use xueji::domain::Event;
use xueji::domain::event::verify_chain;

use crate::helpers::*;

#[test]
fn published_vectors_hash_as_documented() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/event-v1.json"
    ))
    .expect("vectors");
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).expect("json");
    assert!(vectors.len() >= 2);
    let mut chain = Vec::new();
    for v in &vectors {
        let event: Event = serde_json::from_value(v["event"].clone()).expect("event");
        let bytes = event.canonical_bytes();
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            v["canonical"].as_str().expect("canonical")
        );
        assert_eq!(
            event.compute_hash(),
            v["event"]["hash"].as_str().expect("hash")
        );
        chain.push(event);
    }
    let report = verify_chain(&chain, Some(&chain[chain.len() - 1].hash));
    assert!(report.ok, "{report:?}");
}

/// Rewrites the stored events through redb directly, as an attacker with the file would.
fn tamper(path: &std::path::Path, f: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) {
    let db = Database::open(path).expect("open");
    let txn = db.begin_write().expect("txn");
    {
        let mut t = txn.open_table(EVENT_RECORDS).expect("table");
        let mut rows: Vec<(String, Vec<u8>)> = t
            .iter()
            .expect("iter")
            .map(|r| {
                r.map(|(k, v)| (k.value().to_owned(), v.value().to_vec()))
                    .expect("row")
            })
            .filter(|(k, _)| k.ends_with("\u{1f}e"))
            .collect();
        for (k, _) in &rows {
            t.remove(k.as_str()).expect("remove");
        }
        f(&mut rows);
        for (k, v) in &rows {
            t.insert(k.as_str(), v.as_slice()).expect("insert");
        }
    }
    txn.commit().expect("commit");
}

#[test]
fn a_modified_event_is_reported_with_its_sequence_number() {
    let t = engine();
    let s = enrolled(&t.xueji, "甲", 1);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    tamper(&path, |rows| {
        let (_, v) = rows
            .iter_mut()
            // The first event is the log's first.
            .find(|(k, _)| k.ends_with("000000000000\u{1f}e"))
            .expect("first event");
        *v = String::from_utf8(v.clone())
            .expect("utf-8")
            .replace("\"grade\":3", "\"grade\":2")
            .into_bytes();
    });
    let store = xueji::store::Store::open(&path).expect("reopen");
    let student = store.student(&s.id).expect("read").expect("present");
    let report = verify_chain(&store.events(&s.id).expect("events"), Some(&student.head));
    let bad = report.first_bad.expect("detected");
    assert_eq!((bad.seq, bad.code.as_str()), (1, "hash_mismatch"));
}

#[test]
fn a_dropped_last_event_is_reported_against_the_recorded_head() {
    let t = engine();
    let s = enrolled(&t.xueji, "乙", 2);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    tamper(&path, |rows| {
        rows.retain(|(k, _)| !k.ends_with("000000000001\u{1f}e"))
    });
    let store = xueji::store::Store::open(&path).expect("reopen");
    let student = store.student(&s.id).expect("read").expect("present");
    let report = verify_chain(&store.events(&s.id).expect("events"), Some(&student.head));
    assert_eq!(report.first_bad.expect("detected").code, "head_mismatch");
}
