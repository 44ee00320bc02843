//! Stored history: arbitrary bytes decoded as an `Event` (or a JSON array of them, a chain) or as
//! a `DecisionContext`. Decoding never panics; what decodes re-encodes to the same canonical
//! bytes after a storage round trip (so an untouched record always verifies); `verify_chain`
//! never panics, accepts a correctly sealed chain and names the first altered event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xueji::domain::Event;
use xueji::domain::event::{DecisionContext, ENCODING_V1, GENESIS_HASH, verify_chain};

const CODES: &[&str] = &[
    "hash_mismatch",
    "broken_link",
    "sequence_gap",
    "head_mismatch",
];

fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What the store does: write the JSON, read it back.
fn stored<T: serde::Serialize + serde::de::DeserializeOwned>(v: &T) -> T {
    let bytes = serde_json::to_vec(v).expect("a decoded record re-encodes");
    serde_json::from_slice(&bytes).expect("a re-encoded record decodes")
}

fn check_chain(events: &[Event]) {
    // Whatever the input says, the verifier answers with a report.
    for head in [
        None,
        Some(GENESIS_HASH),
        events.last().map(|e| e.hash.as_str()),
    ] {
        let r = verify_chain(events, head);
        assert_eq!(r.events, events.len() as u64);
        assert_eq!(r.ok, r.first_bad.is_none());
        if let Some(b) = &r.first_bad {
            assert!(CODES.contains(&b.code.as_str()), "code {}", b.code);
        }
        if r.ok {
            for e in events {
                assert_eq!(e.compute_hash(), e.hash);
            }
        }
    }

    // The same events sealed into a proper chain verify, before and after a storage round trip.
    let mut sealed = Vec::with_capacity(events.len());
    let mut prev = GENESIS_HASH.to_owned();
    for (i, e) in events.iter().enumerate() {
        let mut e = e.clone();
        e.seq = i as u64 + 1;
        e.prev_hash = prev;
        let e = e.seal();
        assert!(is_hash(&e.hash));
        assert!(e.canonical_bytes().starts_with(ENCODING_V1));
        prev = e.hash.clone();
        sealed.push(e);
    }
    let r = verify_chain(&sealed, Some(&prev));
    assert!(r.ok, "sealed chain fails: {:?}", r.first_bad);
    let reread: Vec<Event> = stored(&sealed);
    let r = verify_chain(&reread, Some(&prev));
    assert!(
        r.ok,
        "sealed chain fails after a storage round trip: {:?}",
        r.first_bad
    );

    // Altering any event is seen, at that event.
    if let Some(victim) = sealed.len().checked_sub(1) {
        let mut altered = sealed.clone();
        altered[victim].recorded_at.push('x');
        let r = verify_chain(&altered, Some(&prev));
        let bad = r.first_bad.expect("an altered event is seen");
        assert_eq!(bad.seq, victim as u64 + 1);
        assert_eq!(bad.code, "hash_mismatch");
        // Dropping the last event is seen through the recorded head.
        let r = verify_chain(&sealed[..victim], Some(&prev));
        assert_eq!(
            r.first_bad.map(|b| b.code).as_deref(),
            Some("head_mismatch")
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = serde_json::from_slice::<Event>(data) {
        let again = stored(&e);
        assert_eq!(
            String::from_utf8_lossy(&again.canonical_bytes()),
            String::from_utf8_lossy(&e.canonical_bytes()),
            "canonical bytes change across a storage round trip"
        );
        check_chain(std::slice::from_ref(&e));
    }
    if let Ok(events) = serde_json::from_slice::<Vec<Event>>(data) {
        if events.len() <= 64 {
            check_chain(&events);
        }
    }
    if let Ok(ctx) = serde_json::from_slice::<DecisionContext>(data) {
        // `verify` re-encodes the stored context and compares its hash with the event's.
        let again = stored(&ctx);
        assert_eq!(
            DecisionContext::hash_of(&again.to_bytes()),
            DecisionContext::hash_of(&ctx.to_bytes()),
            "context bytes change across a storage round trip"
        );
    }
});
