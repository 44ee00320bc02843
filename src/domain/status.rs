//! Statuses, transitions and reasons exactly as named in `shared/domain.md`, and the state machine
//! the whole country shares. Policies decide whether a legal transition is allowed here, and
//! under which conditions; they cannot make an illegal one legal.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr};

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
pub enum Status {
    Admitted,
    AdmissionDeferred,
    AdmissionReserved,
    AdmissionForfeited,
    AdmissionCancelled,
    Enrolled,
    Suspended,
    DroppedOut,
    TransferredOut,
    Withdrawn,
    Expelled,
    Revoked,
    Graduated,
    Completed,
    Attended,
    Deceased,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn zh(self) -> &'static str {
        use Status::*;
        match self {
            Admitted => "已录取/待报到",
            AdmissionDeferred => "延缓入学/请假中",
            AdmissionReserved => "保留入学资格",
            AdmissionForfeited => "放弃入学资格",
            AdmissionCancelled => "取消入学资格",
            Enrolled => "在籍在校",
            Suspended => "休学",
            DroppedOut => "辍学",
            TransferredOut => "转出至系统外",
            Withdrawn => "退学",
            Expelled => "开除学籍",
            Revoked => "取消学籍",
            Graduated => "毕业",
            Completed => "结业",
            Attended => "肄业",
            Deceased => "死亡",
        }
    }

    /// Whether the student holds 学籍 in this status.
    pub fn has_xueji(self) -> bool {
        matches!(
            self,
            Status::Enrolled | Status::Suspended | Status::DroppedOut
        )
    }

    /// Whether this enrolment is live (在籍 or about to be): the person holds a place here, so no
    /// other enrolment of theirs may be live at the same time (一人一号, one live 学籍 at a
    /// time). The one definition: identity uniqueness, admissions and `allowed_from` use it.
    pub fn is_live(self) -> bool {
        LIVE.contains(&self)
    }

    /// No transition leaves a terminal status: corrections are new records, not reversals.
    pub fn is_terminal(self) -> bool {
        use Status::*;
        matches!(
            self,
            AdmissionForfeited
                | AdmissionCancelled
                | TransferredOut
                | Withdrawn
                | Expelled
                | Revoked
                | Graduated
                | Completed
                | Attended
                | Deceased
        )
    }
}

/// The live statuses (see [`Status::is_live`]): admitted, deferred, reserved, enrolled,
/// suspended, dropped out. Every other status has ended the enrolment for good.
pub const LIVE: &[Status] = &[
    Status::Admitted,
    Status::AdmissionDeferred,
    Status::AdmissionReserved,
    Status::Enrolled,
    Status::Suspended,
    Status::DroppedOut,
];

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
pub enum TransitionKind {
    Admit,
    Register,
    DeferAdmission,
    ReserveAdmission,
    ResumeAdmission,
    ForfeitAdmission,
    CancelAdmission,
    SemesterRegister,
    DeferSemesterRegister,
    Suspend,
    Resume,
    DropOut,
    ReturnFromDropout,
    Transfer,
    /// The receiving side of a transfer: what the receiving jurisdiction's package decides when a
    /// student comes from another jurisdiction (its rules are `on: ["transfer_in"]`). Never filed
    /// on its own: it is asked as part of a `transfer`.
    TransferIn,
    TransferOut,
    ChangeClass,
    Promote,
    RepeatGrade,
    ChangeKeyInfo,
    CorrectInfo,
    Withdraw,
    Expel,
    Revoke,
    Graduate,
    Complete,
    LeaveWithCertificate,
    RecordDeath,
    /// 佐证: a problem record settled by keeping the enrolment as it is, with proof.
    ConfirmRecord,
}

impl TransitionKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn zh(self) -> &'static str {
        use TransitionKind::*;
        match self {
            Admit => "录取建档",
            Register => "入学注册",
            DeferAdmission => "新生请假/延缓入学",
            ReserveAdmission => "保留入学资格",
            ResumeAdmission => "保留期满申请入学",
            ForfeitAdmission => "视为放弃入学资格",
            CancelAdmission => "取消入学资格",
            SemesterRegister => "学期注册",
            DeferSemesterRegister => "暂缓注册",
            Suspend => "休学",
            Resume => "复学",
            DropOut => "辍学",
            ReturnFromDropout => "辍学复学",
            Transfer => "转学",
            TransferIn => "转入",
            TransferOut => "转出至系统外",
            ChangeClass => "调班",
            Promote => "升级",
            RepeatGrade => "留级",
            ChangeKeyInfo => "关键信息变更",
            CorrectInfo => "非关键信息更正",
            Withdraw => "退学",
            Expel => "开除学籍",
            Revoke => "取消学籍",
            Graduate => "毕业",
            Complete => "结业",
            LeaveWithCertificate => "肄业",
            RecordDeath => "死亡",
            ConfirmRecord => "问题学籍佐证确认",
        }
    }

    /// The national change code (学籍变动代码) a registrar files this change under, where the
    /// national system has one; its label is [`national_change_label`].
    pub fn national_code(self) -> Option<&'static str> {
        use TransitionKind::*;
        match self {
            Admit => Some("11"),
            Resume => Some("12"),
            TransferIn => Some("13"),
            Graduate => Some("21"),
            Complete => Some("22"),
            Suspend => Some("23"),
            Withdraw => Some("24"),
            Expel => Some("25"),
            RecordDeath => Some("26"),
            Transfer | TransferOut => Some("27"),
            DropOut => Some("28"),
            Promote => Some("31"),
            ChangeClass => Some("32"),
            RepeatGrade => Some("33"),
            _ => None,
        }
    }

    /// The statuses this transition may start from (`admit` starts from no record at all).
    pub fn allowed_from(self) -> &'static [Status] {
        use Status::*;
        use TransitionKind::*;
        match self {
            Admit => &[],
            // An enrolment admitted on a transfer certificate, until the receiving side accepts
            // it (`Xueji::admit_by_certificate`); never filed by hand.
            TransferIn => &[Admitted],
            Register => &[Admitted, AdmissionDeferred],
            DeferAdmission => &[Admitted],
            ReserveAdmission => &[Admitted, AdmissionDeferred, Enrolled],
            ResumeAdmission => &[AdmissionReserved],
            ForfeitAdmission => &[Admitted, AdmissionDeferred, AdmissionReserved],
            CancelAdmission => &[Admitted, AdmissionDeferred, AdmissionReserved, Enrolled],
            SemesterRegister | DeferSemesterRegister | ChangeClass | Promote | RepeatGrade => {
                &[Enrolled]
            }
            Suspend => &[Enrolled],
            Resume => &[Suspended],
            DropOut => &[Enrolled, Suspended],
            ReturnFromDropout => &[DroppedOut],
            Transfer => &[Enrolled, Suspended],
            TransferOut | Withdraw => &[Enrolled, Suspended, DroppedOut],
            Expel => &[Enrolled, Suspended],
            Revoke => &[Enrolled, Suspended, DroppedOut],
            Graduate | Complete | LeaveWithCertificate => &[Enrolled],
            ChangeKeyInfo | CorrectInfo | RecordDeath | ConfirmRecord => LIVE,
        }
    }

    /// The status after the transition when the policy names no other; `None` keeps the status.
    pub fn default_target(self) -> Option<Status> {
        use Status::*;
        use TransitionKind::*;
        match self {
            Admit | ResumeAdmission => Some(Admitted),
            Register | TransferIn => Some(Enrolled),
            DeferAdmission => Some(AdmissionDeferred),
            ReserveAdmission => Some(AdmissionReserved),
            ForfeitAdmission => Some(AdmissionForfeited),
            CancelAdmission => Some(AdmissionCancelled),
            Suspend => Some(Suspended),
            Resume | ReturnFromDropout => Some(Enrolled),
            DropOut => Some(DroppedOut),
            TransferOut => Some(TransferredOut),
            Withdraw => Some(Withdrawn),
            Expel => Some(Expelled),
            Revoke => Some(Revoked),
            Graduate => Some(Graduated),
            Complete => Some(Completed),
            LeaveWithCertificate => Some(Attended),
            RecordDeath => Some(Deceased),
            SemesterRegister
            | DeferSemesterRegister
            | Transfer
            | ChangeClass
            | Promote
            | RepeatGrade
            | ChangeKeyInfo
            | CorrectInfo
            | ConfirmRecord => None,
        }
    }

    /// The `params` keys this transition accepts; any other key is refused, not ignored.
    pub fn allowed_params(self) -> &'static [&'static str] {
        use TransitionKind::*;
        match self {
            Admit => &[],
            DeferAdmission | ReserveAdmission | Suspend => &["until", "discharge_date"],
            Resume | ReturnFromDropout | ChangeClass | Promote | RepeatGrade => &["grade", "class"],
            Transfer | TransferIn => &["to_school", "to_grade", "to_class"],
            SemesterRegister | DeferSemesterRegister => &["term", "tuition_paid", "until"],
            Register => &["forms", "class"],
            ChangeKeyInfo | CorrectInfo => &["fields"],
            _ => &[],
        }
    }
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
pub enum Reason {
    Illness,
    MajorEvent,
    GuardianJobChange,
    HouseholdMove,
    OtherValid,
    Disaster,
    MilitaryService,
    Fraud,
    ReviewFailed,
    ForceMajeure,
    Personal,
    Discipline,
    Other,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn zh(self) -> &'static str {
        use Reason::*;
        match self {
            Illness => "因病",
            MajorEvent => "家庭重大变故等特殊原因",
            GuardianJobChange => "监护人工作调动",
            HouseholdMove => "户籍或居住地迁移",
            OtherValid => "其他正当理由",
            Disaster => "自然灾害",
            MilitaryService => "应征入伍",
            Fraud => "弄虚作假",
            ReviewFailed => "复查不合格",
            ForceMajeure => "不可抗力",
            Personal => "个人原因",
            Discipline => "违纪",
            Other => "其他",
        }
    }
}

/// Every national change code (学籍变动代码) with its label, including those no transition kind
/// files on this server (`13` 转入 is the receiving side of a transfer).
pub const NATIONAL_CHANGE_CODES: &[(&str, &str)] = &[
    ("11", "招生"),
    ("12", "复学"),
    ("13", "转入"),
    ("21", "毕业"),
    ("22", "结业"),
    ("23", "休学"),
    ("24", "退学"),
    ("25", "开除"),
    ("26", "死亡"),
    ("27", "转出"),
    ("28", "辍学"),
    ("31", "升级"),
    ("32", "调班"),
    ("33", "留级"),
];

/// The label of a national change code.
pub fn national_change_label(change_code: &str) -> Option<&'static str> {
    NATIONAL_CHANGE_CODES
        .iter()
        .find(|(c, _)| *c == change_code)
        .map(|(_, label)| *label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn no_transition_leaves_a_terminal_status() {
        for kind in TransitionKind::iter() {
            for from in kind.allowed_from() {
                assert!(!from.is_terminal(), "{kind:?} leaves terminal {from:?}");
            }
        }
    }

    #[test]
    fn an_enrolment_is_live_until_it_ends_for_good() {
        for s in Status::iter() {
            assert_eq!(s.is_live(), !s.is_terminal(), "{s:?}");
        }
        for kind in TransitionKind::iter() {
            for from in kind.allowed_from() {
                assert!(from.is_live(), "{kind:?} starts from ended {from:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in Status::iter() {
            assert_eq!(s.as_str().parse::<Status>().ok(), Some(s));
        }
        assert_eq!(
            "return_from_dropout".parse::<TransitionKind>().ok(),
            Some(TransitionKind::ReturnFromDropout)
        );
        assert!("suspended_months".parse::<TransitionKind>().is_err());
    }
}
