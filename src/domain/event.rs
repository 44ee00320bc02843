//! History events and the per-student hash chain.
//!
//! Encoding v1 (see `docs/design.md` and the vectors in `tests/vectors/`): the bytes
//! `xueji-event/1\n` followed by the compact JSON of the event without its `hash` field, fields
//! in declaration order, map keys sorted. `hash = hex(SHA-256(encoding))`, and each event's
//! `prev_hash` is the previous event's `hash` (64 zeros for the first). Events carry no raw
//! personal data: identity values in `input` are replaced by salted digests before recording.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::Actor;
use super::dates::Date;
use super::decision::Decision;
use super::status::{Status, TransitionKind};
use super::student::TransitionInput;

pub const ENCODING_V1: &[u8] = b"xueji-event/1\n";
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Everything a policy saw when it decided: the student as the policy sees it (no name, ID
/// number or guardians), the school, the recorded input and whether the sweep asked. Stored
/// beside the event; the event carries its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionContext {
    pub student: super::Student,
    pub school: super::School,
    pub input: TransitionInput,
    pub sweep: bool,
    /// The school a transfer from another jurisdiction goes to, as its package saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_school: Option<super::School>,
}

impl DecisionContext {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|e| panic!("context encoding: {e}"))
    }

    pub fn hash_of(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }
}

/// The placement of a student before or after an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFacts {
    pub status: Status,
    pub school: String,
    pub grade: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// 1 for the student's first event (the admission), then one more per event.
    pub seq: u64,
    pub student: String,
    pub jurisdiction: String,
    pub kind: TransitionKind,
    pub effective_date: Date,
    /// RFC 3339 UTC.
    pub recorded_at: String,
    pub actor: Actor,
    pub before: Option<EventFacts>,
    pub after: EventFacts,
    pub input: TransitionInput,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// SHA-256 of the [`DecisionContext`] the decision was taken on (stored beside the event),
    /// so `verify` can re-evaluate the decision and prove the context unaltered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Salted digests (hex) of the personal fields this event set, as the record holds them
    /// after it ([`super::student::PERSONAL_FIELDS`], [`super::Student::personal_value`]): all
    /// of them on an admission, those an information change sets. History carries no personal
    /// value, yet `verify` can tell whether the record still holds what the events set. Absent
    /// from events recorded before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub personal: BTreeMap<String, String>,
    pub prev_hash: String,
    pub hash: String,
}

/// The hashed part of an event: everything but `hash`, in the same order.
#[derive(Serialize)]
struct HashedEvent<'a> {
    seq: u64,
    student: &'a str,
    jurisdiction: &'a str,
    kind: TransitionKind,
    effective_date: Date,
    recorded_at: &'a str,
    actor: &'a Actor,
    before: &'a Option<EventFacts>,
    after: &'a EventFacts,
    input: &'a TransitionInput,
    decision: &'a Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: &'a Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    personal: &'a BTreeMap<String, String>,
    prev_hash: &'a str,
}

impl Event {
    /// The jurisdiction the student is in after this event: the receiving one for a transfer
    /// from another jurisdiction (the event is then in both logs), else the event's own.
    pub fn placed_in(&self) -> &str {
        match &self.decision.receiving_policy {
            Some(p) if self.kind == super::TransitionKind::Transfer => &p.jurisdiction,
            _ => &self.jurisdiction,
        }
    }

    /// The canonical bytes the hash covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let body = HashedEvent {
            seq: self.seq,
            student: &self.student,
            jurisdiction: &self.jurisdiction,
            kind: self.kind,
            effective_date: self.effective_date,
            recorded_at: &self.recorded_at,
            actor: &self.actor,
            before: &self.before,
            after: &self.after,
            input: &self.input,
            decision: &self.decision,
            request: &self.request,
            context: &self.context,
            personal: &self.personal,
            prev_hash: &self.prev_hash,
        };
        let mut out = ENCODING_V1.to_vec();
        // Serializing plain structs, strings and sorted maps into a Vec cannot fail.
        serde_json::to_writer(&mut out, &body).unwrap_or_else(|e| panic!("event encoding: {e}"));
        out
    }

    pub fn compute_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_bytes()))
    }

    /// Fills in `hash` from the rest of the event.
    pub fn seal(mut self) -> Event {
        self.hash = self.compute_hash();
        self
    }
}

/// The outcome of re-hashing one student's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    pub ok: bool,
    pub events: u64,
    /// Hash of the newest event (the chain head), or the genesis hash for an empty chain.
    pub head: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_bad: Option<BadEvent>,
    /// Fields of the student record that are not what replaying the events gives (`verify`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub record: Vec<super::replay::FieldMismatch>,
    /// Index entries that disagree with the replayed record (`verify`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<super::replay::IndexMismatch>,
    /// Personal fields no event of this student recorded (history written before events
    /// recorded their digests): their stored values could not be checked against history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unrecorded: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadEvent {
    pub seq: u64,
    /// `hash_mismatch`, `broken_link`, `sequence_gap` or `head_mismatch`; `verify` adds
    /// `timeline_mismatch`, `tally_state_mismatch` and `member_missing` (what rosters and statistics read disagrees with the events),
    /// `context_mismatch` (the admission's context is missing or altered: the record cannot be
    /// replayed), `record_mismatch` (the record is not what its events make of it, see
    /// [`ChainReport::record`]) and `index_mismatch` (see [`ChainReport::indexes`]).
    pub code: String,
    pub message: String,
}

/// Recomputes a chain from its first event and reports the first event that does not hold.
/// `expected_head` is the head recorded beside the chain (in the student record): a chain whose
/// last events were dropped still links, and only the recorded head reveals it.
pub fn verify_chain(events: &[Event], expected_head: Option<&str>) -> ChainReport {
    let mut prev = GENESIS_HASH.to_owned();
    let bad = |seq, code: &str, message: String| {
        Some(BadEvent {
            seq,
            code: code.into(),
            message,
        })
    };
    let mut first_bad = None;
    for (i, e) in events.iter().enumerate() {
        let expected_seq = i as u64 + 1;
        if e.seq != expected_seq {
            first_bad = bad(
                e.seq,
                "sequence_gap",
                format!("第 {expected_seq} 条事件缺失或顺序错乱"),
            );
            break;
        }
        if e.prev_hash != prev {
            first_bad = bad(
                e.seq,
                "broken_link",
                format!("第 {} 条事件与上一条不衔接", e.seq),
            );
            break;
        }
        let recomputed = e.compute_hash();
        if recomputed != e.hash {
            first_bad = bad(
                e.seq,
                "hash_mismatch",
                format!("第 {} 条事件内容被改动", e.seq),
            );
            break;
        }
        prev = e.hash.clone();
    }
    if first_bad.is_none()
        && let Some(head) = expected_head
        && head != prev
    {
        first_bad = bad(
            events.len() as u64 + 1,
            "head_mismatch",
            "学生记录中的最新事件与历史记录末尾不一致(事件可能被删除)".into(),
        );
    }
    ChainReport {
        ok: first_bad.is_none(),
        events: events.len() as u64,
        head: prev,
        first_bad,
        record: Vec::new(),
        indexes: Vec::new(),
        unrecorded: Vec::new(),
    }
}

/// Shorthand for building [`EventFacts`].
pub fn facts(status: Status, school: &str, grade: u8, class: Option<&str>) -> EventFacts {
    EventFacts {
        status,
        school: school.to_owned(),
        grade,
        class: class.map(str::to_owned),
    }
}
