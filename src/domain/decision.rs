//! What a policy decided about one transition, with every rule that fired and what it cites.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr};

use super::dates::Date;
use super::request::ApprovalStep;
use super::status::Status;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    EnumString,
    IntoStaticStr,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Effect {
    /// The transition is refused.
    Deny,
    /// Documents are required; missing ones deny the transition.
    Require,
    /// Approval steps are required before the transition applies.
    Approve,
    /// The student's status, grade, class or school changes beyond the default.
    Change,
    /// A deadline is set on the student.
    Deadline,
    /// The rule permits the transition explicitly (recorded for the audit trail).
    Allow,
}

/// Which package version decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyRef {
    pub jurisdiction: String,
    pub version: String,
    pub content_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiredRule {
    /// `<jurisdiction>.<topic>.<rule>`, stable across versions.
    pub id: String,
    pub effect: Effect,
    /// Document title and article, e.g. `清华大学本科生学籍管理规定 第五条`.
    pub citation: String,
    /// What the rule means for this case, in Chinese.
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudentChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionDeadline {
    pub kind: String,
    pub date: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_expiry: Option<super::status::TransitionKind>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    pub policy: PolicyRef,
    pub rules: Vec<FiredRule>,
    pub required_documents: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_documents: Vec<String>,
    pub approvals: Vec<ApprovalStep>,
    pub changes: StudentChanges,
    pub deadlines: Vec<DecisionDeadline>,
    /// The receiving jurisdiction's package, for a transfer from another jurisdiction: `rules`
    /// then holds both sides' rules, and the student moves to this jurisdiction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_policy: Option<PolicyRef>,
}

impl Decision {
    /// The rules that denied, for the error shown to the registrar.
    pub fn denials(&self) -> impl Iterator<Item = &FiredRule> {
        self.rules.iter().filter(|r| r.effect == Effect::Deny)
    }

    /// One Chinese sentence explaining a denial, naming the rules and what they cite.
    pub fn denial_message(&self) -> String {
        let mut parts: Vec<String> = self
            .denials()
            .map(|r| format!("{}({})", r.message, r.citation))
            .collect();
        if !self.missing_documents.is_empty() {
            parts.push(format!(
                "缺少证明材料:{}",
                self.missing_documents.join("、")
            ));
        }
        if parts.is_empty() {
            "政策不允许此项变更".into()
        } else {
            parts.join(";")
        }
    }
}
