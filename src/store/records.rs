//! The layout of the history (`EVENT_RECORDS` and `TIMELINES`, see the tables' documentation):
//! the key builders and parsers, the step encoding, and the readers of timelines.

use std::ops::Bound::{Excluded, Included, Unbounded};

use super::kv::ReadTable;
use super::tables::{EVENT_RECORDS, SEP, TIMELINES, key, log_index_part, prefix_range, seq_part};
use super::{StoreError, decode, decode_at};
use crate::domain::{Date, Event, EventFacts, Status, Step, Timeline, TransitionKind};

/// What an `EVENT_RECORDS` key holds: the event at a place in its jurisdiction's log, or the
/// context that event was decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logged {
    Event,
    Context,
}

/// What a `TIMELINES` key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimelineRecord {
    Step(u64),
    TallyState,
}

const TALLY_STATE: &str = "~t";
const EVENT: &str = "e";
const CONTEXT: &str = "c";

/// The event at `index` of a jurisdiction's log.
pub(crate) fn event_key(jurisdiction: &str, index: u64) -> String {
    key(&[jurisdiction, &log_index_part(index), EVENT])
}

/// The decision context of the event at `index` of a jurisdiction's log.
pub(crate) fn context_key(jurisdiction: &str, index: u64) -> String {
    key(&[jurisdiction, &log_index_part(index), CONTEXT])
}

pub(crate) fn step_key(jurisdiction: &str, student: &str, seq: u64) -> String {
    key(&[jurisdiction, student, &seq_part(seq)])
}

pub(crate) fn tally_state_key(jurisdiction: &str, student: &str) -> String {
    key(&[jurisdiction, student, TALLY_STATE])
}

/// The name a log leaf records for its event, whatever the layout: `jur␟student␟seq(12)`.
pub(crate) fn event_name(e: &Event) -> String {
    key(&[&e.jurisdiction, &e.student, &seq_part(e.seq)])
}

fn twelve_digits(part: &str) -> Option<u64> {
    (part.len() == 12 && part.bytes().all(|b| b.is_ascii_digit()))
        .then(|| part.parse().ok())
        .flatten()
}

/// `(jurisdiction, log index, what)` of an `EVENT_RECORDS` key; `None` for anything else.
pub(crate) fn parse_event_key(k: &str) -> Option<(&str, u64, Logged)> {
    let mut parts = k.split(SEP);
    let (jur, index, kind) = (parts.next()?, parts.next()?, parts.next()?);
    let what = match kind {
        EVENT => Logged::Event,
        CONTEXT => Logged::Context,
        _ => return None,
    };
    let index = twelve_digits(index)?;
    parts.next().is_none().then_some((jur, index, what))
}

/// `(jurisdiction, student, what)` of a `TIMELINES` key; `None` for anything else.
pub(crate) fn parse_timeline_key(k: &str) -> Option<(&str, &str, TimelineRecord)> {
    let mut parts = k.split(SEP);
    let (jur, student, last) = (parts.next()?, parts.next()?, parts.next()?);
    let what = match last {
        TALLY_STATE => TimelineRecord::TallyState,
        seq => TimelineRecord::Step(twelve_digits(seq)?),
    };
    parts.next().is_none().then_some((jur, student, what))
}

fn undecodable(k: &str) -> StoreError {
    StoreError::Storage(format!("undecodable record key {}", k.replace(SEP, "/")))
}

/// A step as the submitting thread prepares it, before the writer knows the event's place in
/// the log: a JSON array (sequence, kind, date, status, school, grade, class), about half the
/// size of the same fields as an object.
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

/// A prepared step with the event's log index appended as the array's last element: what
/// `TIMELINES` stores, so that a student's events are found from their steps.
pub(crate) fn with_log_index(step: &[u8], index: u64) -> Result<Vec<u8>, StoreError> {
    let Some(open) = step.strip_suffix(b"]") else {
        return Err(StoreError::Storage(
            "internal: a step is not a JSON array".into(),
        ));
    };
    let mut out = Vec::with_capacity(step.len() + 14);
    out.extend_from_slice(open);
    out.extend_from_slice(format!(",{index}]").as_bytes());
    Ok(out)
}

/// A step as schemas 7 and older stored it (no log index).
pub(crate) type StoredStepV7 = (
    u64,
    TransitionKind,
    Date,
    Status,
    String,
    u8,
    Option<String>,
);

type StoredStep = (
    u64,
    TransitionKind,
    Date,
    Status,
    String,
    u8,
    Option<String>,
    u64,
);

/// A step of a student transferred from another jurisdiction, recorded while they were there:
/// its event is in that jurisdiction's log, named last.
type StoredStepElsewhere = (
    u64,
    TransitionKind,
    Date,
    Status,
    String,
    u8,
    Option<String>,
    u64,
    String,
);

/// Where a step's event is: its index in a jurisdiction's log, that of the student's own
/// jurisdiction unless `jurisdiction` names another (a step recorded before a transfer from it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogPlace {
    pub jurisdiction: Option<String>,
    pub index: u64,
}

impl LogPlace {
    /// The jurisdiction whose log holds the event, for a student stored under `home`.
    pub(crate) fn log<'a>(&'a self, home: &'a str) -> &'a str {
        self.jurisdiction.as_deref().unwrap_or(home)
    }
}

/// A stored step and the place of its event.
pub(crate) fn decode_step(bytes: &[u8]) -> Result<(Step, LogPlace), StoreError> {
    let (seq, kind, date, status, school, grade, class, index, jurisdiction) = match decode::<
        StoredStep,
    >(bytes)
    {
        Ok((seq, kind, date, status, school, grade, class, index)) => {
            (seq, kind, date, status, school, grade, class, index, None)
        }
        Err(_) => {
            let (seq, kind, date, status, school, grade, class, index, jur): StoredStepElsewhere =
                decode(bytes)?;
            (
                seq,
                kind,
                date,
                status,
                school,
                grade,
                class,
                index,
                Some(jur),
            )
        }
    };
    Ok((
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
        },
        LogPlace {
            jurisdiction,
            index,
        },
    ))
}

/// A stored step (`TIMELINES` value) as it is kept once its student has moved out of `home`:
/// naming `home`'s log unless it already names another.
pub(crate) fn step_moved_from(bytes: &[u8], home: &str) -> Result<Vec<u8>, StoreError> {
    let (step, place) = decode_step(bytes)?;
    let f = &step.facts;
    Ok(serde_json::to_vec(&(
        step.seq,
        step.kind,
        step.date,
        f.status,
        f.school.as_str(),
        f.grade,
        f.class.as_deref(),
        place.index,
        place.log(home),
    ))?)
}

/// A student's steps with their events' places, in sequence order.
pub(crate) fn read_steps(
    timelines: &(impl ReadTable + ?Sized),
    jurisdiction: &str,
    student: &str,
) -> Result<Vec<(Step, LogPlace)>, StoreError> {
    let (start, end) = prefix_range(&[jurisdiction, student]);
    let mut out = Vec::new();
    for item in timelines.range(Included(start.as_str()), Excluded(end.as_str()))? {
        let (k, v) = item?;
        match parse_timeline_key(k.as_str()) {
            Some((_, _, TimelineRecord::Step(_))) => out.push(
                decode_step(v.as_slice()).map_err(|_| super::damaged(TIMELINES, k.as_str()))?,
            ),
            Some((_, _, TimelineRecord::TallyState)) => {}
            None => return Err(undecodable(k.as_str())),
        }
    }
    Ok(out)
}

/// The events at the given places of the logs (of `jurisdiction`'s unless a place names
/// another), in that order; a place holding no event is skipped (the chain check then reports
/// the gap).
pub(crate) fn events_at<'p>(
    event_records: &(impl ReadTable + ?Sized),
    jurisdiction: &str,
    places: impl IntoIterator<Item = &'p LogPlace>,
) -> Result<Vec<Event>, StoreError> {
    let mut out = Vec::new();
    for place in places {
        let k = event_key(place.log(jurisdiction), place.index);
        if let Some(g) = event_records.get(k.as_str())? {
            out.push(decode_at(EVENT_RECORDS, &k, g.as_slice())?);
        }
    }
    Ok(out)
}

/// A student's timeline from their step records (`None` when they have none).
pub(crate) fn read_timeline(
    timelines: &(impl ReadTable + ?Sized),
    jurisdiction: &str,
    student: &str,
) -> Result<Option<Timeline>, StoreError> {
    let steps: Vec<Step> = read_steps(timelines, jurisdiction, student)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    Ok((!steps.is_empty()).then(|| Timeline::new(student.to_owned(), steps)))
}

/// Calls `visit` with the jurisdiction and timeline of every student under `prefix` (a
/// jurisdiction, or none for all), in key order, one timeline in memory at a time.
pub(crate) fn each_timeline(
    timelines: &(impl ReadTable + ?Sized),
    prefix: Option<&str>,
    mut visit: impl FnMut(&str, Timeline) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let range = match prefix {
        Some(jur) => {
            let (start, end) = prefix_range(&[jur]);
            timelines.range(Included(start.as_str()), Excluded(end.as_str()))?
        }
        None => timelines.range(Unbounded, Unbounded)?,
    };
    // (jurisdiction, student, steps) of the student being read.
    let mut current: Option<(String, String, Vec<Step>)> = None;
    for item in range {
        let (k, v) = item?;
        let (jur, student, record) =
            parse_timeline_key(k.as_str()).ok_or_else(|| undecodable(k.as_str()))?;
        if record == TimelineRecord::TallyState {
            continue;
        }
        let (step, _) = decode_step(v.as_slice())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        assert_eq!(
            parse_event_key(&event_key("j", 12)),
            Some(("j", 12, Logged::Event))
        );
        assert_eq!(
            parse_event_key(&context_key("j", 12)),
            Some(("j", 12, Logged::Context))
        );
        assert_eq!(
            parse_timeline_key(&step_key("j", "S1", 3)),
            Some(("j", "S1", TimelineRecord::Step(3)))
        );
        assert_eq!(
            parse_timeline_key(&tally_state_key("j", "S1")),
            Some(("j", "S1", TimelineRecord::TallyState))
        );
        // The last step and the tally state sit side by side; another student's records after.
        assert!(step_key("j", "S1", 999_999_999_999) < tally_state_key("j", "S1"));
        assert!(tally_state_key("j", "S1") < step_key("j", "S10", 1));
        assert_eq!(parse_event_key("j\u{1f}000000000001\u{1f}x"), None);
        assert_eq!(parse_event_key("j\u{1f}12\u{1f}e"), None);
        assert_eq!(parse_timeline_key("j\u{1f}S1\u{1f}12"), None);
        assert_eq!(parse_timeline_key("j\u{1f}S1\u{1f}~t\u{1f}e"), None);
    }

    #[test]
    fn a_prepared_step_takes_its_log_index_last() {
        let step = br#"[3,"change_class","2025-03-02","enrolled","s1",3,"5"]"#;
        let stored = with_log_index(step, 41).expect("array");
        let (step, place) = decode_step(&stored).expect("decodes");
        assert_eq!((step.seq, place.index, place.log("j")), (3, 41, "j"));
        assert_eq!(step.facts.class.as_deref(), Some("5"));
        assert!(with_log_index(b"{}", 1).is_err());
    }

    #[test]
    fn a_step_of_a_moved_student_names_the_log_it_was_recorded_in() {
        let step = br#"[3,"change_class","2025-03-02","enrolled","s1",3,"5"]"#;
        let stored = with_log_index(step, 41).expect("array");
        let moved = step_moved_from(&stored, "yanhe").expect("moves");
        let (again, place) = decode_step(&moved).expect("decodes");
        assert_eq!(place.log("zhuhai"), "yanhe");
        assert_eq!(place.index, 41);
        assert_eq!(again.facts.school, "s1");
        // A second move keeps the log the step was recorded in.
        let twice = step_moved_from(&moved, "zhuhai").expect("moves");
        assert_eq!(
            decode_step(&twice).expect("decodes").1.log("rencheng"),
            "yanhe"
        );
    }
}
