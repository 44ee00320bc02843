//! Problem records (问题学籍): what the national system queues for a person to settle, with proof,
//! by 删除 (delete the enrolment held at the wrong school), 佐证 (confirm it with proof) or 变更
//! (correct key information), 教基一厅〔2015〕2号 (secondary). A problem never changes a student by
//! itself: its resolution is a transition, decided by the policy and recorded in history.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strum::{EnumIter, EnumString, IntoStaticStr};

use super::{Actor, Date};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    EnumString,
    IntoStaticStr,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ProblemKind {
    /// An admission refused because another enrolment of the person is live.
    DuplicateEnrolment,
    /// A temporary `L` national number, to be upgraded to `G` (or `J`).
    TemporaryNumber,
    /// A reporting deadline passed with the student neither reported nor moved by a rule:
    /// followed up (控辍保学), never forfeited by default.
    NotReported,
    /// A request step past its due date.
    OverdueRequest,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, EnumString, IntoStaticStr, EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ProblemStatus {
    Open,
    Resolved,
}

impl ProblemStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// How a problem is settled.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, EnumString, IntoStaticStr, EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ResolveAction {
    /// 删除: the enrolment is cancelled (`cancel_admission`, or `revoke` once registered).
    Delete,
    /// 佐证: the enrolment is kept, with proof (`confirm_record`).
    Confirm,
    /// 变更: key information is changed with proof (`change_key_info`).
    Correct,
}

impl ResolveAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What a resolution came to: the transition it filed and where that went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub action: ResolveAction,
    pub comment: String,
    pub by: Actor,
    pub at: String,
    /// `applied` (the problem is resolved) or `pending` (a request waits for approval; the
    /// problem stays open until a resolution applies).
    pub outcome: String,
    /// The history event that recorded it (the student's `seq`), once applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub id: String,
    pub kind: ProblemKind,
    /// The enrolment it concerns, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<String>,
    /// The school whose records it concerns (the holding school of a duplicate).
    pub school: String,
    pub jurisdiction: String,
    /// Other schools concerned, who see it too (the school whose admission a duplicate refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_schools: Vec<String>,
    /// The day it was opened (the sweep's `as_of` for what a sweep opens).
    pub opened: Date,
    pub opened_at: String,
    pub opened_by: Actor,
    /// What a registrar needs to settle it; never personal data (no names, ID numbers).
    pub details: Map<String, Value>,
    pub status: ProblemStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// What makes two problems the same (kind and what it is about): at most one open at once.
    pub key: String,
}
