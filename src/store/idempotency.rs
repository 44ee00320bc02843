//! Stored answers to writes sent with `Idempotency-Key`, kept for [`TTL_SECS`].
//!
//! The HTTP layer names each answer by a digest (of the token id, the request and the key), so
//! a key here is bounded whatever the request was. The table holds two key spaces:
//!
//! - `a␟digest` → version byte, the time stored (u64 seconds since 1970, big-endian), the answer;
//! - `e␟time(20 digits)␟digest` → empty: the answers in the order they expire, so purging reads
//!   only what has expired.
//!
//! Anything else in the table was written by an earlier version (keys holding the raw path and
//! key, answers holding the secret of a created token) and is removed when the store opens.

use std::ops::Bound::{Excluded, Included, Unbounded};

use super::StoreError;
use super::kv::{ReadTable, WriteTable};

use super::tables::{SEP, key};

/// How long an answer is replayed; after that a retry runs anew.
pub const TTL_SECS: u64 = 24 * 60 * 60;
/// Expired answers the writer removes each time it stores one: more than one, so the table
/// shrinks back after a burst, few enough that storing an answer stays cheap.
const PURGE_PER_PUT: usize = 8;
const FORMAT: u8 = 1;
const HEADER: usize = 9;

fn answer_key(digest: &str) -> String {
    key(&["a", digest])
}

fn expiry_key(at: u64, digest: &str) -> String {
    key(&["e", &format!("{at:020}"), digest])
}

fn encode(at: u64, answer: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + answer.len());
    v.push(FORMAT);
    v.extend_from_slice(&at.to_be_bytes());
    v.extend_from_slice(answer);
    v
}

/// The time an answer was stored, and the answer.
fn decode(bytes: &[u8]) -> Option<(u64, &[u8])> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) if rest.len() >= 8 => {
            let (at, answer) = rest.split_at(8);
            Some((u64::from_be_bytes(at.try_into().ok()?), answer))
        }
        _ => None,
    }
}

/// Seconds since 1970 by the system clock: when answers are stored and looked up.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether an answer stored at `at` is still replayed at `now`.
pub fn is_live(at: u64, now: u64) -> bool {
    now < at.saturating_add(TTL_SECS)
}

/// The answer stored under `digest`, unless it has expired by `now`.
pub(super) fn get(
    t: &(impl ReadTable + ?Sized),
    digest: &str,
    now: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(v) = t.get(answer_key(digest).as_str())? else {
        return Ok(None);
    };
    Ok(decode(v.as_slice())
        .filter(|(at, _)| is_live(*at, now))
        .map(|(_, answer)| answer.to_vec()))
}

/// Stores the first answer under `digest`; a live one is kept (the first answer wins), an
/// expired one replaced. Removes a few expired answers on the way.
pub(super) fn put(
    t: &mut (impl WriteTable + ?Sized),
    digest: &str,
    answer: &[u8],
    at: u64,
) -> Result<(), StoreError> {
    purge(t, at, Some(PURGE_PER_PUT))?;
    let k = answer_key(digest);
    let old = t
        .get(k.as_str())?
        .map(|v| decode(v.as_slice()).map(|(a, _)| a));
    match old {
        Some(Some(old_at)) if is_live(old_at, at) => return Ok(()),
        Some(Some(old_at)) => {
            t.remove(expiry_key(old_at, digest).as_str())?;
        }
        Some(None) | None => {}
    }
    t.insert(k.as_str(), encode(at, answer).as_slice())?;
    t.insert(expiry_key(at, digest).as_str(), [].as_slice())?;
    Ok(())
}

/// Removes the answers expired by `now`, oldest first, at most `limit` of them.
pub(super) fn purge(
    t: &mut (impl WriteTable + ?Sized),
    now: u64,
    limit: Option<usize>,
) -> Result<usize, StoreError> {
    let Some(cutoff) = now.checked_sub(TTL_SECS) else {
        return Ok(0);
    };
    // Expired: stored at or before `cutoff`, so every key below `e␟(cutoff + 1)`.
    let start = key(&["e", ""]);
    let end = key(&["e", &format!("{:020}", cutoff.saturating_add(1))]);
    let mut expired = Vec::new();
    for item in t.range(Included(start.as_str()), Excluded(end.as_str()))? {
        if limit.is_some_and(|l| expired.len() >= l) {
            break;
        }
        expired.push(item?.0);
    }
    for k in &expired {
        t.remove(k.as_str())?;
        let mut parts = k.splitn(3, SEP).skip(1);
        let (Some(at), Some(digest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let at = at.parse::<u64>().ok();
        let answer = answer_key(digest);
        // The answer may have been replaced since by a newer one, which stays.
        let stale = t
            .get(answer.as_str())?
            .is_some_and(|v| decode(v.as_slice()).is_none_or(|(a, _)| Some(a) == at));
        if stale {
            t.remove(answer.as_str())?;
        }
    }
    Ok(expired.len())
}

/// Removes every record not in this module's layout: what earlier versions stored.
pub(super) fn purge_legacy(t: &mut (impl WriteTable + ?Sized)) -> Result<usize, StoreError> {
    let a = key(&["a", ""]);
    let a_end = "a\u{20}".to_owned();
    let e = key(&["e", ""]);
    let e_end = "e\u{20}".to_owned();
    let mut legacy = Vec::new();
    for item in t.range(Unbounded, Excluded(a.as_str()))? {
        legacy.push(item?.0);
    }
    for item in t.range(Included(a_end.as_str()), Excluded(e.as_str()))? {
        legacy.push(item?.0);
    }
    for item in t.range(Included(e_end.as_str()), Unbounded)? {
        legacy.push(item?.0);
    }
    for k in &legacy {
        t.remove(k.as_str())?;
    }
    Ok(legacy.len())
}

/// How many answers are stored, and the bytes of the whole table (keys and values).
pub(super) fn usage(t: &(impl ReadTable + ?Sized)) -> Result<(u64, u64), StoreError> {
    let mut answers = 0;
    let mut bytes = 0;
    for item in t.iter()? {
        let (k, v) = item?;
        if k.as_str().starts_with("a\u{1f}") {
            answers += 1;
        }
        bytes += (k.as_str().len() + v.as_slice().len()) as u64;
    }
    Ok((answers, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_round_trips_with_its_time() {
        let v = encode(1_700_000_000, b"{\"a\":1}");
        assert_eq!(decode(&v), Some((1_700_000_000, b"{\"a\":1}".as_slice())));
        assert_eq!(
            decode(b"{\"status\":201}"),
            None,
            "an earlier version's answer"
        );
    }

    #[test]
    fn an_answer_lives_one_day() {
        assert!(is_live(1000, 1000));
        assert!(is_live(1000, 1000 + TTL_SECS - 1));
        assert!(!is_live(1000, 1000 + TTL_SECS));
    }
}
