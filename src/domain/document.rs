//! Supporting documents (证明材料) filed with a transition.

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
pub enum DocumentKind {
    HospitalDiagnosis,
    TreatmentRecord,
    MajorEventProof,
    SuspensionForm,
    TransferForm,
    GuardianApplication,
    GuardianSignature,
    LeaveSurvey,
    HouseholdRegister,
    AdmissionLetter,
    LocalCertificate,
    EnlistmentNotice,
    DischargeCertificate,
    TuitionReceipt,
    BureauCertificate,
    StudentCard,
    WrittenReport,
    ReviewReport,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn zh(self) -> &'static str {
        use DocumentKind::*;
        match self {
            HospitalDiagnosis => "医院诊断证明",
            TreatmentRecord => "就诊或治疗记录",
            MajorEventProof => "重大变故证明",
            SuspensionForm => "休学申请表",
            TransferForm => "转学申请表",
            GuardianApplication => "监护人申请",
            GuardianSignature => "监护人签字",
            LeaveSurvey => "离校情况调查表",
            HouseholdRegister => "户口簿",
            AdmissionLetter => "录取通知书",
            LocalCertificate => "当地证明",
            EnlistmentNotice => "入伍通知书",
            DischargeCertificate => "退役证",
            TuitionReceipt => "缴费凭证",
            BureauCertificate => "教育行政部门证明",
            StudentCard => "学生证",
            WrittenReport => "书面报告",
            ReviewReport => "复查报告",
        }
    }
}

/// The level of the authority that issued a document, lowest first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    EnumString,
    IntoStaticStr,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum IssuerLevel {
    Township,
    County,
    City,
    Province,
    National,
}

/// 医院等级, lowest first: `2A` is 二级甲等.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    EnumString,
    IntoStaticStr,
    EnumIter,
)]
pub enum HospitalGrade {
    #[serde(rename = "1C")]
    #[strum(serialize = "1C")]
    G1C,
    #[serde(rename = "1B")]
    #[strum(serialize = "1B")]
    G1B,
    #[serde(rename = "1A")]
    #[strum(serialize = "1A")]
    G1A,
    #[serde(rename = "2C")]
    #[strum(serialize = "2C")]
    G2C,
    #[serde(rename = "2B")]
    #[strum(serialize = "2B")]
    G2B,
    #[serde(rename = "2A")]
    #[strum(serialize = "2A")]
    G2A,
    #[serde(rename = "3C")]
    #[strum(serialize = "3C")]
    G3C,
    #[serde(rename = "3B")]
    #[strum(serialize = "3B")]
    G3B,
    #[serde(rename = "3A")]
    #[strum(serialize = "3A")]
    G3A,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub kind: DocumentKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_level: Option<IssuerLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hospital_grade: Option<HospitalGrade>,
    /// The registrar's reference to the paper or scanned original.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_and_levels_order() {
        assert!(HospitalGrade::G2A > HospitalGrade::G2B);
        assert!(HospitalGrade::G3C > HospitalGrade::G2A);
        assert!(IssuerLevel::City > IssuerLevel::County);
        let d: Document = serde_json::from_str(
            r#"{"kind":"hospital_diagnosis","issuer_level":"county","hospital_grade":"2A","ref":"x"}"#,
        )
        .expect("parses");
        assert_eq!(d.hospital_grade, Some(HospitalGrade::G2A));
        assert!(
            serde_json::from_str::<Document>(r#"{"kind":"hospital_diagnosis","grade":"2A"}"#)
                .is_err()
        );
    }
}
