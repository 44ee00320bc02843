//! The layout of a student's history (`EVENT_RECORDS` and `TIMELINES`, see the tables'
//! documentation): the key builders, the parser, the readers of timelines, and the migration of
//! the tables of schemas 7 and older.

use redb::{ReadableTable, WriteTransaction};

use super::tables::{
    EVENT_RECORDS, LOG_LEAVES, SEP, TIMELINES, key, legacy, prefix_range, seq_part,
};
use super::{StoreError, decode};
use crate::domain::{Date, Event, EventFacts, Status, Step, Timeline, TransitionKind};

/// What a key of `EVENT_RECORDS` or `TIMELINES` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    TallyState,
    Event(u64),
    Context(u64),
    Step(u64),
}

const TALLY_STATE: &str = "~t";
const EVENT: &str = "e";
const CONTEXT: &str = "c";

pub(crate) fn tally_state_key(jurisdiction: &str, student: &str) -> String {
    key(&[jurisdiction, student, TALLY_STATE])
}

pub(crate) fn event_key(jurisdiction: &str, student: &str, seq: u64) -> String {
    key(&[jurisdiction, student, &seq_part(seq), EVENT])
}

pub(crate) fn context_key(jurisdiction: &str, student: &str, seq: u64) -> String {
    key(&[jurisdiction, student, &seq_part(seq), CONTEXT])
}

pub(crate) fn step_key(jurisdiction: &str, student: &str, seq: u64) -> String {
    key(&[jurisdiction, student, &seq_part(seq)])
}

/// `(jurisdiction, student, what)` of a key of `EVENT_RECORDS` or `TIMELINES`; `None` for anything
/// else.
pub(crate) fn parse(k: &str) -> Option<(&str, &str, Record)> {
    let mut parts = k.split(SEP);
    let (jur, student, third) = (parts.next()?, parts.next()?, parts.next()?);
    let record = match (third, parts.next()) {
        (TALLY_STATE, None) => Record::TallyState,
        (seq, kind) => {
            if seq.len() != 12 || !seq.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let seq: u64 = seq.parse().ok()?;
            match kind {
                None => Record::Step(seq),
                Some(EVENT) => Record::Event(seq),
                Some(CONTEXT) => Record::Context(seq),
                Some(_) => return None,
            }
        }
    };
    parts.next().is_none().then_some((jur, student, record))
}

fn undecodable(k: &str) -> StoreError {
    StoreError::Storage(format!("undecodable record key {}", k.replace(SEP, "/")))
}

/// One step as stored: a JSON array (sequence, kind, date, status, school, grade, class), about
/// half the size of the same fields as an object.
pub(crate) fn encode_step(e: &Event) -> Result<Vec<u8>, StoreError> {
    let f = &e.after;
    Ok(serde_json::to_vec(&(
        e.seq,
        e.kind,
        e.effective_date,
        f.status,
        f.school.as_str(),
        f.grade,
        f.class.as_deref(),
    ))?)
}

pub(crate) type StoredStep = (
    u64,
    TransitionKind,
    Date,
    Status,
    String,
    u8,
    Option<String>,
);

fn step_of((seq, kind, date, status, school, grade, class): StoredStep) -> Step {
    Step {
        seq,
        kind,
        date,
        facts: EventFacts {
            status,
            school,
            grade,
            class,
        },
    }
}

pub(crate) fn decode_step(bytes: &[u8]) -> Result<Step, StoreError> {
    Ok(step_of(decode(bytes)?))
}

/// A student's timeline from their step records (`None` when they have none).
pub(crate) fn read_timeline(
    records: &impl ReadableTable<&'static str, &'static [u8]>,
    jurisdiction: &str,
    student: &str,
) -> Result<Option<Timeline>, StoreError> {
    let (start, end) = prefix_range(&[jurisdiction, student]);
    let mut out = Vec::new();
    for item in records.range(start.as_str()..end.as_str())? {
        let (k, v) = item?;
        if let Some((_, _, Record::Step(_))) = parse(k.value()) {
            out.push(decode_step(v.value())?);
        }
    }
    Ok((!out.is_empty()).then(|| Timeline::new(student.to_owned(), out)))
}

/// Calls `visit` with the jurisdiction and timeline of every student under `prefix` (a
/// jurisdiction, or none for all), in key order, one timeline in memory at a time.
pub(crate) fn each_timeline(
    records: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: Option<&str>,
    mut visit: impl FnMut(&str, Timeline) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let range = match prefix {
        Some(jur) => {
            let (start, end) = prefix_range(&[jur]);
            records.range(start.as_str()..end.as_str())?
        }
        None => records.range::<&str>(..)?,
    };
    // (jurisdiction, student, steps) of the student being read.
    let mut current: Option<(String, String, Vec<Step>)> = None;
    for item in range {
        let (k, v) = item?;
        let (jur, student, record) = parse(k.value()).ok_or_else(|| undecodable(k.value()))?;
        if !matches!(record, Record::Step(_)) {
            continue;
        }
        let step = decode_step(v.value())?;
        match current.as_mut() {
            Some((j, s, steps)) if j == jur && s == student => steps.push(step),
            _ => {
                if let Some((j, s, steps)) = current.take() {
                    visit(&j, Timeline::new(s, steps))?;
                }
                current = Some((jur.to_owned(), student.to_owned(), vec![step]));
            }
        }
    }
    if let Some((j, s, steps)) = current {
        visit(&j, Timeline::new(s, steps))?;
    }
    Ok(())
}

/// Moves a store written before schema 8 to its layout: events and their contexts into
/// `EVENT_RECORDS` (renaming the event each log leaf names), tally states into `TIMELINES`, and
/// the one-array timelines of schemas 3 to 6 (`legacy::TIMELINES`) into one record per step. The
/// older migrations run after this one, on the new layout.
pub(super) fn migrate_to_schema_8(txn: &WriteTransaction) -> Result<(), StoreError> {
    {
        let mut events = txn.open_table(EVENT_RECORDS)?;
        let mut timelines = txn.open_table(TIMELINES)?;
        let two_parts = |k: &str| -> Result<(String, String), StoreError> {
            let mut parts = k.split(SEP);
            match (parts.next(), parts.next(), parts.next()) {
                (Some(j), Some(s), None) => Ok((j.to_owned(), s.to_owned())),
                _ => Err(undecodable(k)),
            }
        };
        let three_parts = |k: &str| -> Result<(String, String, u64), StoreError> {
            let mut parts = k.split(SEP);
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(j), Some(s), Some(seq), None) => Ok((
                    j.to_owned(),
                    s.to_owned(),
                    seq.parse().map_err(|_| undecodable(k))?,
                )),
                _ => Err(undecodable(k)),
            }
        };
        for item in txn.open_table(legacy::EVENTS)?.iter()? {
            let (k, v) = item?;
            let (j, s, seq) = three_parts(k.value())?;
            events.insert(event_key(&j, &s, seq).as_str(), v.value())?;
        }
        for item in txn.open_table(legacy::CONTEXTS)?.iter()? {
            let (k, v) = item?;
            let (j, s, seq) = three_parts(k.value())?;
            events.insert(context_key(&j, &s, seq).as_str(), v.value())?;
        }
        for item in txn.open_table(legacy::TALLY_STATES)?.iter()? {
            let (k, v) = item?;
            let (j, s) = two_parts(k.value())?;
            timelines.insert(tally_state_key(&j, &s).as_str(), v.value())?;
        }
        for item in txn.open_table(legacy::TIMELINES)?.iter()? {
            let (k, v) = item?;
            let (j, s) = two_parts(k.value())?;
            for step in decode::<Vec<StoredStep>>(v.value())? {
                let bytes = serde_json::to_vec(&step)?;
                timelines.insert(step_key(&j, &s, step.0).as_str(), bytes.as_slice())?;
            }
        }
        let mut leaves = txn.open_table(LOG_LEAVES)?;
        let mut renamed = Vec::new();
        for item in leaves.iter()? {
            let (k, v) = item?;
            let bytes = v.value();
            let (hash, old) = bytes
                .split_first_chunk::<32>()
                .ok_or_else(|| undecodable(k.value()))?;
            let old = std::str::from_utf8(old).map_err(|_| undecodable(k.value()))?;
            let (j, s, seq) = three_parts(old)?;
            let mut leaf = hash.to_vec();
            leaf.extend_from_slice(event_key(&j, &s, seq).as_bytes());
            renamed.push((k.value().to_owned(), leaf));
        }
        for (k, leaf) in renamed {
            leaves.insert(k.as_str(), leaf.as_slice())?;
        }
    }
    for t in [
        legacy::EVENTS,
        legacy::CONTEXTS,
        legacy::TALLY_STATES,
        legacy::TIMELINES,
    ] {
        txn.delete_table(t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_and_a_student_sorts_after_its_events() {
        let cases = [
            (tally_state_key("j", "S1"), Record::TallyState),
            (event_key("j", "S1", 12), Record::Event(12)),
            (context_key("j", "S1", 12), Record::Context(12)),
            (step_key("j", "S1", 12), Record::Step(12)),
        ];
        for (k, want) in &cases {
            assert_eq!(parse(k), Some(("j", "S1", *want)), "{k:?}");
        }
        assert!(event_key("j", "S1", 999_999_999_999) < tally_state_key("j", "S1"));
        assert!(tally_state_key("j", "S1") < event_key("j", "S10", 1));
        assert_eq!(parse("j\u{1f}S1"), None);
        assert_eq!(parse("j\u{1f}S1\u{1f}000000000001\u{1f}x"), None);
        assert_eq!(parse("j\u{1f}S1\u{1f}12"), None);
        assert_eq!(parse("j\u{1f}S1\u{1f}~t\u{1f}e"), None);
        assert_eq!(parse("j\u{1f}S1\u{1f}~s"), None);
    }
}
