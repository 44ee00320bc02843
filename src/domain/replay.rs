//! A student's record replayed from their events, for `verify`: each recorded change applied with
//! [`Student::after_decision`], the function the engine applied when it recorded the event,
//! starting from the student as the admission's policy saw them (its decision context). Then
//! every field of the stored record is compared with the replay.
//!
//! Personal fields are in history only as salted digests ([`Event::personal`], or the redacted
//! values of an information change's input for events recorded before that): the stored value
//! stands in for the replay where its digest is the recorded one, so the replay applies it as
//! the engine did (an ID number change also sets a review flag), and a field whose stored value
//! is not what the last event setting it recorded is named, never echoed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use super::event::{DecisionContext, Event, EventFacts, facts};
use super::student::{PERSONAL_FIELDS, Student};

/// How the input of an information change records a personal value: this prefix, then the
/// value's salted digest.
pub const REDACTED_PREFIX: &str = "hmac-sha256:";

/// A field of the stored record that is not what the student's events made of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMismatch {
    /// A field of the student record (`status`, `grade`, `name`…), or `event[seq].after` when
    /// an event's recorded placement is not what replaying it gives.
    pub field: String,
    /// The values; absent for personal fields, which are named only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed: Option<Value>,
}

/// An index entry that disagrees with the student record it is derived from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexMismatch {
    /// The index table (`idx_status`, `idx_national_id`…).
    pub table: String,
    /// The entry's key (parts joined with `/`); absent for the identity indexes, whose keys are
    /// personal data (the national number, the ID number's place and birth date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub student: String,
    /// `index_missing` (the record implies the entry, the index lacks it), `index_extra` (no
    /// record implies the entry) or `duplicate_live` (an identity value lists a second live
    /// enrolment, this one, beside another: one person, one live 学籍).
    pub code: String,
}

/// What replaying came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The record as the events make it; a personal field the replay does not hold (not
    /// recorded, or recorded with another value) is the stored one, so that the indexes derived
    /// from it can still be checked.
    pub student: Student,
    pub mismatches: Vec<FieldMismatch>,
    /// Personal fields no event recorded (the student's history predates [`Event::personal`]),
    /// so the stored value cannot be checked against history.
    pub unrecorded: Vec<&'static str>,
}

#[derive(Clone, Copy, PartialEq)]
enum Known {
    /// The replay holds the value the events set.
    Replayed,
    /// The last event that set it recorded a digest the stored value does not have.
    Differs,
    /// No event recorded it.
    NotRecorded,
}

/// The digests of personal values an event recorded, by field.
fn recorded_digests(e: &Event) -> BTreeMap<String, String> {
    if !e.personal.is_empty() {
        return e.personal.clone();
    }
    // Older events: the information change's input, redacted as filed.
    e.input
        .params
        .get("fields")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(k, _)| PERSONAL_FIELDS.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let d = v.as_str()?.strip_prefix(REDACTED_PREFIX)?;
            Some((k.clone(), d.to_owned()))
        })
        .collect()
}

/// Sets a personal field of `to` from `from` (the admission's, which no input carries).
fn copy_personal(to: &mut Student, from: &Student, field: &str) {
    match field {
        "name" => to.name.clone_from(&from.name),
        "national_id" => to.national_id = from.national_id.clone(),
        "id_card" => to.id_card = from.id_card.clone(),
        "gender" => to.gender = from.gender,
        "birth_date" => to.birth_date = from.birth_date,
        "guardians" => to.guardians.clone_from(&from.guardians),
        "extra" => to.extra.clone_from(&from.extra),
        _ => {}
    }
}

fn placement(s: &Student) -> EventFacts {
    facts(s.status, &s.school, s.grade, s.class.as_deref())
}

/// Replays `events` (a sound chain, oldest first, the admission first) from `admission`, the
/// context the admission was decided on, and compares the result with `stored`. `digest` is the
/// salted digest events record of a personal value.
pub fn replay_record(
    admission: &DecisionContext,
    events: &[Event],
    stored: &Student,
    digest: impl Fn(&Value) -> String,
) -> Replay {
    // The admission's context is the policy's view: no name, ID number, national number or
    // guardians; gender, birth date and extra as admitted.
    let mut state = admission.student.clone();
    let mut known: BTreeMap<&'static str, Known> = PERSONAL_FIELDS
        .iter()
        .map(|f| {
            let k = if matches!(*f, "gender" | "birth_date" | "extra") {
                Known::Replayed
            } else {
                Known::NotRecorded
            };
            (*f, k)
        })
        .collect();
    let mut mismatches = Vec::new();
    for e in events {
        let creating = e.seq == 1;
        let mut input = e.input.clone();
        let mut fields = match input.params.remove("fields") {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        // Personal values are digests in history: none is applied as recorded.
        if let Some(m) = &mut fields {
            m.retain(|k, _| !PERSONAL_FIELDS.contains(&k.as_str()));
        }
        for (field, recorded) in recorded_digests(e) {
            let Some(f) = PERSONAL_FIELDS
                .iter()
                .copied()
                .find(|f| *f == field.as_str())
            else {
                continue;
            };
            let Some(value) = stored.personal_value(f) else {
                continue;
            };
            if digest(&value) != recorded {
                known.insert(f, Known::Differs);
                continue;
            }
            known.insert(f, Known::Replayed);
            if creating || f == "national_id" {
                copy_personal(&mut state, stored, f);
            } else {
                fields
                    .get_or_insert_with(Map::new)
                    .insert(f.to_owned(), value);
            }
        }
        if let Some(m) = fields {
            input.params.insert("fields".into(), Value::Object(m));
        }
        state = state.after_decision(&input, &e.decision, creating);
        state.head.clone_from(&e.hash);
        let replayed = placement(&state);
        if replayed != e.after {
            mismatches.push(FieldMismatch {
                field: format!("event[{}].after", e.seq),
                stored: serde_json::to_value(&e.after).ok(),
                replayed: serde_json::to_value(&replayed).ok(),
            });
        }
    }
    let as_map = |s: &Student| match serde_json::to_value(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let (stored_map, replayed_map) = (as_map(stored), as_map(&state));
    let mut keys: Vec<&String> = stored_map.keys().chain(replayed_map.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut unrecorded = Vec::new();
    for k in keys {
        let (s, r) = (stored_map.get(k), replayed_map.get(k));
        match PERSONAL_FIELDS.iter().copied().find(|f| *f == k.as_str()) {
            Some(f) => match known.get(f).copied().unwrap_or(Known::NotRecorded) {
                Known::Replayed if s == r => {}
                Known::Replayed | Known::Differs => mismatches.push(FieldMismatch {
                    field: f.to_owned(),
                    stored: None,
                    replayed: None,
                }),
                Known::NotRecorded => unrecorded.push(f),
            },
            None if s != r => mismatches.push(FieldMismatch {
                field: k.clone(),
                stored: s.cloned(),
                replayed: r.cloned(),
            }),
            None => {}
        }
    }
    for (f, k) in known {
        if k != Known::Replayed {
            copy_personal(&mut state, stored, f);
        }
    }
    Replay {
        student: state,
        mismatches,
        unrecorded,
    }
}
