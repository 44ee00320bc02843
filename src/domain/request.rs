//! Approval requests: a transition waiting for the steps its decision named.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr};

use super::Actor;
use super::decision::Decision;
use super::student::TransitionInput;

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
// No `Ord`: the declaration order is the order the codes are listed in (`/v1/codes`, the OpenAPI
// enum), not the order steps are approved in; that is `in_routing_order`.
pub enum ApprovalStep {
    /// 校长/分管校领导 (教务处 at a university).
    School,
    /// 转入学校.
    ReceivingSchool,
    /// 区/县教育局.
    District,
    /// 市教育局.
    City,
    /// 转入地区/县教育局 (a transfer from another jurisdiction).
    ReceivingDistrict,
    /// 转入地市教育局 (a transfer from another jurisdiction).
    ReceivingCity,
}

impl ApprovalStep {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
    pub fn zh(self) -> &'static str {
        match self {
            ApprovalStep::School => "学校审核",
            ApprovalStep::ReceivingSchool => "转入学校审核",
            ApprovalStep::District => "区县教育局审核",
            ApprovalStep::City => "市教育局审核",
            ApprovalStep::ReceivingDistrict => "转入地区县教育局审核",
            ApprovalStep::ReceivingCity => "转入地市教育局审核",
        }
    }

    /// The step's place in the national routing of a change: the receiving school signs and
    /// files first (教基一〔2013〕7号 第十四条; Yanhe 三.1), then the receiving bureau when the
    /// student comes from another jurisdiction, then the sending school, then its bureau
    /// (district before city). api.md v1.1, "Transfers across jurisdictions".
    fn routing_rank(self) -> u8 {
        match self {
            ApprovalStep::ReceivingSchool => 0,
            ApprovalStep::ReceivingDistrict => 1,
            ApprovalStep::ReceivingCity => 2,
            ApprovalStep::School => 3,
            ApprovalStep::District => 4,
            ApprovalStep::City => 5,
        }
    }

    /// The step a receiving package's own step becomes in a transfer from another jurisdiction:
    /// its `school` is the receiving school, its bureau the receiving bureau.
    pub fn on_receiving_side(self) -> ApprovalStep {
        match self {
            ApprovalStep::School | ApprovalStep::ReceivingSchool => ApprovalStep::ReceivingSchool,
            ApprovalStep::District | ApprovalStep::ReceivingDistrict => {
                ApprovalStep::ReceivingDistrict
            }
            ApprovalStep::City | ApprovalStep::ReceivingCity => ApprovalStep::ReceivingCity,
        }
    }
}

/// Puts the steps a decision names in the order they are approved, each once. The one place that
/// order is decided: a decision's `approvals` and a new request's `steps` both come from here.
/// A request stored before this order keeps the order it was filed with (`steps` as stored):
/// its approvers were asked in that order, and re-ordering would strand an approval already given.
pub fn in_routing_order(steps: &mut Vec<ApprovalStep>) {
    // Stable, so equal ranks (none today) keep the policy's order.
    steps.sort_by_key(|s| s.routing_rank());
    steps.dedup();
}

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
pub enum RequestStatus {
    Pending,
    Applied,
    /// The policy in force at the last approval denied it.
    Denied,
    Rejected,
    /// Left pending longer than the policy's `request_expiry_days`; closed by the daily sweep.
    Expired,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn zh(self) -> &'static str {
        match self {
            RequestStatus::Pending => "待审批",
            RequestStatus::Applied => "已办理",
            RequestStatus::Denied => "政策不允许",
            RequestStatus::Rejected => "已驳回",
            RequestStatus::Expired => "超期未办结,已关闭",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub step: ApprovalStep,
    pub approved: bool,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub id: String,
    pub student: String,
    pub jurisdiction: String,
    pub school: String,
    /// The school a transfer goes to, whose leader approves the `receiving_school` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_school: Option<String>,
    /// The receiving school's jurisdiction, when it is another one than `jurisdiction`: its
    /// officers list the request and approve the `receiving_district`/`receiving_city` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiving_jurisdiction: Option<String>,
    pub input: TransitionInput,
    /// Steps in the order they must be approved.
    pub steps: Vec<ApprovalStep>,
    pub approvals: Vec<ApprovalRecord>,
    pub status: RequestStatus,
    pub opened_by: Actor,
    pub opened_at: String,
    /// The decision that opened the request.
    pub decision: Decision,
    /// The decision taken at the last approval, when it has been taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_decision: Option<Decision>,
    /// The student version when the request was opened.
    pub student_version: u64,
}

impl ApprovalRequest {
    /// The next step to approve, if the request is still pending.
    pub fn next_step(&self) -> Option<ApprovalStep> {
        if self.status != RequestStatus::Pending {
            return None;
        }
        self.steps
            .iter()
            .copied()
            .find(|s| !self.approvals.iter().any(|a| a.step == *s && a.approved))
    }
}
