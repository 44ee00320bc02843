//! Transfers across servers (api.md v1.1): the sending server issues a signed certificate for an
//! enrolment that ended by `transfer_out`; the receiving server admits on it once, decides
//! `transfer_in` under its own package, and records the certificate's proof in the new
//! enrolment's first event.

use std::sync::Arc;

use super::{
    Actor, Admission, Outcome, Result, ServiceError, Status, TransitionInput, TransitionKind,
    Xueji, now_rfc3339, school_in, student_in,
};
use crate::domain::certificate::{
    CERTIFICATE_VERSION, CertificateCore, CertifiedAdmission, CertifiedEnrolment, CertifiedPerson,
    KeyRing, LogCheckpoint, Refusal, SignedCertificate,
};
use crate::domain::student::NewStudentForm;
use crate::domain::{School, Student, merkle};

fn refused(r: Refusal) -> ServiceError {
    ServiceError::Refused {
        code: r.code,
        message: r.message,
    }
}

impl Xueji {
    /// The service signs and checks transfer certificates with `ring`.
    pub fn with_keys(mut self, ring: KeyRing) -> Self {
        self.keys = Some(Arc::new(ring));
        self
    }

    /// The key ring, when the service has one (`xueji serve` always does).
    pub fn keys(&self) -> Option<&KeyRing> {
        self.keys.as_deref()
    }

    fn key_ring(&self) -> Result<&KeyRing> {
        self.keys().ok_or_else(|| ServiceError::Refused {
            code: "certificate_keys_missing",
            message: "本服务未配置转学证明密钥".into(),
        })
    }

    /// The signed transfer certificate of an enrolment that ended by `transfer_out`, for a caller
    /// who may see the student (`in_scope`, else not found). Every copy has the same `id`, so the
    /// enrolment is admitted elsewhere once, whichever copy is used.
    pub fn transfer_certificate(
        &self,
        id: &str,
        in_scope: impl Fn(&Student, &School) -> bool,
    ) -> Result<SignedCertificate> {
        let ring = self.key_ring()?;
        let snapshot = self.store.snapshot()?;
        let student = student_in(&snapshot, id)?;
        let school = school_in(&snapshot, &student.school)?;
        if !in_scope(&student, &school) {
            return Err(ServiceError::NotFound {
                what: "student",
                id: id.into(),
            });
        }
        if student.status != Status::TransferredOut {
            return Err(ServiceError::Conflict {
                code: "not_transferred_out",
                message: format!(
                    "学生当前状态为「{}」:办理转出(transfer_out)并审批通过后才能开具转学证明",
                    student.status.zh()
                ),
            });
        }
        let left_on = snapshot
            .last_event_date(&student)?
            .unwrap_or(student.entry_date);
        drop(snapshot);
        let log = self.store.log_head(&student.jurisdiction)?;
        let core = CertificateCore {
            version: CERTIFICATE_VERSION,
            id: format!(
                "cert_{}",
                &self.store.digest(
                    "certificate",
                    &format!("{}\u{1f}{}", student.id, student.head)
                )[..24]
            ),
            key_id: String::new(),
            issuer: String::new(),
            issued_at: now_rfc3339(),
            enrolment: CertifiedEnrolment {
                student: student.id.clone(),
                school: school.id.clone(),
                school_name: school.name.clone(),
                jurisdiction: student.jurisdiction.clone(),
                level: student.level,
                grade: student.grade,
                class: student.class.clone(),
                status: student.status,
                entry_date: student.entry_date,
                left_on,
            },
            history_head: student.head.clone(),
            history_length: student.version,
            checkpoint: LogCheckpoint {
                jurisdiction: student.jurisdiction.clone(),
                size: log.size,
                root: merkle::to_hex(&log.root()),
            },
        };
        let person = CertifiedPerson {
            nonce: hex::encode(rand::random::<[u8; 16]>()),
            national_id: student.national_id.as_str().to_owned(),
            name: student.name.clone(),
            gender: student.gender,
            birth_date: student.birth_date,
            id_card: student.id_card.as_ref().map(|c| c.as_str().to_owned()),
            guardians: student.guardians.clone(),
        };
        Ok(ring.sign(core, person))
    }

    /// Admits a student on a transfer certificate from another server (`POST /v1/students` with
    /// `transfer_certificate`): the certificate must be signed by a trusted key, intact, not used
    /// here before, and for a person with no live enrolment here; the admission keeps their
    /// national number and records the certificate's proof; then `transfer_in` is decided under
    /// this server's package: applied at once (the student is `enrolled`), or a request for the
    /// steps it names (the student `admitted` meanwhile). Denied → nothing stored.
    pub fn admit_by_certificate(
        &self,
        form: CertifiedAdmission,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<Outcome> {
        let proof = self
            .key_ring()?
            .verify(&form.transfer_certificate)
            .map_err(refused)?;
        if self.store.certificate_used(&proof.core.id)? {
            return Err(ServiceError::Refused {
                code: "certificate_used",
                message: "这份转学证明已经用于建档,不能再次使用".into(),
            });
        }
        let person = &form.transfer_certificate.certificate.person;
        let new = NewStudentForm {
            school: form.school,
            name: person.name.clone(),
            gender: person.gender.as_str().into(),
            birth_date: person.birth_date.to_string(),
            id_card: person.id_card.clone(),
            national_id: Some(person.national_id.clone()),
            grade: form.grade,
            class: form.class,
            entry_date: form.entry_date,
            report_deadline: None,
            guardians: person.guardians.clone(),
            extra: None,
        };
        let plan = match self.prepare_admission_on(new, actor, Some(&proof)) {
            Err(ServiceError::Duplicate { school, .. }) => {
                return Err(ServiceError::Refused {
                    code: "certificate_person_live",
                    message: format!(
                        "该学生在本服务器{}仍有在籍学籍,不能凭转学证明再建档",
                        school.map_or_else(String::new, |s| format!("「{}」", s.name))
                    ),
                });
            }
            other => other?,
        };
        let plan = match plan {
            Admission::Ready(plan) => plan,
            Admission::Refused(decision) if !decision.allowed => {
                return Ok(Outcome::Denied {
                    decision: *decision,
                });
            }
            Admission::Refused(_) => {
                return Err(ServiceError::Conflict {
                    code: "admit_needs_approval",
                    message: super::ADMIT_NEEDS_APPROVAL.into(),
                });
            }
        };
        // The receiving side's decision, on the student as the certificate describes them (their
        // level is the one they had), before anything is stored.
        let entering = TransitionInput::new(TransitionKind::TransferIn, plan.student.entry_date);
        let as_certified = Student {
            level: proof.core.enrolment.level,
            ..plan.student.clone()
        };
        let snapshot = self.store.snapshot()?;
        let school = school_in(&snapshot, &plan.student.school)?;
        let decision = self.decide(&snapshot, &as_certified, &school, &entering, false)?;
        drop(snapshot);
        if dry_run {
            return Ok(Outcome::DryRun { decision });
        }
        if !decision.allowed {
            return Ok(Outcome::Denied { decision });
        }
        let admitted = match self.store_admissions(vec![*plan]).pop() {
            Some(Ok(Outcome::Applied { student, .. })) => student,
            Some(Err(ServiceError::Conflict {
                code: "already_exists",
                ..
            })) => {
                return Err(ServiceError::Refused {
                    code: "certificate_used",
                    message: "这份转学证明已经用于建档,不能再次使用".into(),
                });
            }
            Some(Err(e)) => return Err(e),
            _ => return Err(ServiceError::Storage("no answer from the store".into())),
        };
        self.file_in_scope(&admitted.id, entering, actor, false, |_, _| true)
    }
}
