//! Problem records (问题学籍) on the service: opening them where the engine finds one, and
//! settling them through a transition the policy decides and history records.

use serde_json::{Map, Value, json};

use super::{Outcome, Result, ServiceError, Xueji, now_rfc3339, random_id};
use crate::domain::problem::{Problem, ProblemKind, ProblemStatus, Resolution, ResolveAction};
use crate::domain::student::check_text;
use crate::domain::{
    Actor, Date, Document, FieldError, School, Student, TransitionInput, TransitionKind,
};
use crate::store::{Command, StoreError};

/// How a problem is to be settled (`POST /v1/problems/{id}/resolve`).
#[derive(Debug, Clone)]
pub struct ResolveRequest {
    pub action: ResolveAction,
    pub comment: String,
    pub documents: Vec<Document>,
    /// The new values of a `correct` (`change_key_info`).
    pub fields: Option<Map<String, Value>>,
}

impl Xueji {
    /// Opens a problem of `kind` about `student` at `school`, unless one with the same key
    /// (the kind and `about`) is open: then nothing is written and `None` answers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_problem(
        &self,
        kind: ProblemKind,
        student: Option<&Student>,
        school: &School,
        other_schools: Vec<String>,
        opened: Date,
        details: Map<String, Value>,
        about: &[&str],
        actor: &Actor,
    ) -> Result<Option<Problem>> {
        let mut parts = vec![kind.as_str()];
        parts.extend_from_slice(about);
        let key = parts.join("\u{1f}");
        let problem = Problem {
            id: random_id("prb"),
            kind,
            student: student.map(|s| s.id.clone()),
            school: school.id.clone(),
            jurisdiction: school.jurisdiction.clone(),
            other_schools,
            opened,
            opened_at: now_rfc3339(),
            opened_by: actor.clone(),
            details,
            status: ProblemStatus::Open,
            resolution: None,
            key,
        };
        match self.store.submit(Command::OpenProblem {
            problem: Box::new(problem.clone()),
        }) {
            Ok(_) => Ok(Some(problem)),
            Err(StoreError::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// After an admission refused because `holder` (another live enrolment of the person) holds
    /// `field`: a `duplicate_enrolment` problem at the holding school, seen by the refused school
    /// too. Best effort: the refusal is the answer whatever happens here. Any other error is
    /// ignored (an import passes every refusal of a row).
    pub fn note_duplicate(&self, e: &ServiceError, refused_school: &str, actor: &Actor) {
        let ServiceError::Duplicate { field, student, .. } = e else {
            return;
        };
        let opened = (|| -> Result<()> {
            let Some(holder) = self.store.student(student)? else {
                return Ok(());
            };
            let Some(school) = self.store.school(&holder.school)? else {
                return Ok(());
            };
            let mut details = Map::new();
            details.insert("field".into(), json!(field));
            details.insert("holding_school".into(), json!(school.id));
            details.insert("refused_school".into(), json!(refused_school));
            let others = if refused_school == school.id {
                Vec::new()
            } else {
                vec![refused_school.to_owned()]
            };
            self.open_problem(
                ProblemKind::DuplicateEnrolment,
                Some(&holder),
                &school,
                others,
                self.today(),
                details,
                &[&holder.id, refused_school],
                actor,
            )?;
            Ok(())
        })();
        if let Err(err) = opened {
            tracing::warn!(error = %err, "duplicate enrolment problem not recorded");
        }
    }

    /// After an admission stored under a temporary `L` number: a `temporary_number` problem, to
    /// be settled by the upgrade (`correct` with the formal number). Best effort, like
    /// [`Xueji::note_duplicate`].
    pub(super) fn note_temporary_number(&self, student: &Student, actor: &Actor) {
        if !student.national_id.is_temporary() {
            return;
        }
        let opened = (|| -> Result<()> {
            let Some(school) = self.store.school(&student.school)? else {
                return Ok(());
            };
            let mut details = Map::new();
            details.insert("national_id_kind".into(), json!("L"));
            self.open_problem(
                ProblemKind::TemporaryNumber,
                Some(student),
                &school,
                Vec::new(),
                self.today(),
                details,
                &[&student.id],
                actor,
            )?;
            Ok(())
        })();
        if let Err(err) = opened {
            tracing::warn!(error = %err, "temporary number problem not recorded");
        }
    }

    /// After a request applied: the open problems whose resolution filed it are resolved, with
    /// the event that recorded it. Best effort: the approval stands whatever happens here.
    pub(super) fn settle_problems_of(&self, request: &crate::domain::ApprovalRequest, seq: u64) {
        let waiting = self.store.problems(None, usize::MAX, |p| {
            p.status == ProblemStatus::Open
                && p.student.as_deref() == Some(request.student.as_str())
                && p.resolution
                    .as_ref()
                    .is_some_and(|r| r.request.as_deref() == Some(request.id.as_str()))
        });
        for (_, mut p) in waiting.unwrap_or_default() {
            if let Some(r) = &mut p.resolution {
                r.outcome = "applied".into();
                r.event = Some(seq);
            }
            p.status = ProblemStatus::Resolved;
            if let Err(e) = self.store.submit(Command::UpdateProblem {
                problem: Box::new(p),
            }) {
                tracing::warn!(error = %e, "problem not settled after its request applied");
            }
        }
        if request.input.kind == TransitionKind::ChangeKeyInfo
            && let Ok(Some(after)) = self.store.student(&request.student)
        {
            let by = request
                .approvals
                .last()
                .map_or_else(|| request.opened_by.clone(), |a| a.actor.clone());
            self.settle_upgraded_number(&after, &by, seq, Some(&request.id));
        }
    }

    /// After a key-information change applied: a student who no longer holds a temporary
    /// number has their open `temporary_number` problem resolved, whoever filed the change (a
    /// resolution or a direct `change_key_info`). Best effort.
    pub(super) fn settle_upgraded_number(
        &self,
        after: &Student,
        by: &Actor,
        seq: u64,
        request: Option<&str>,
    ) {
        if after.national_id.is_temporary() {
            return;
        }
        let key = [ProblemKind::TemporaryNumber.as_str(), after.id.as_str()].join("\u{1f}");
        let Ok(Some(id)) = self.store.open_problem(&key) else {
            return;
        };
        let Ok(Some(mut p)) = self.store.problem(&id) else {
            return;
        };
        if p.resolution.as_ref().is_none_or(|r| r.event.is_none()) {
            p.resolution = Some(Resolution {
                action: ResolveAction::Correct,
                comment: p.resolution.as_ref().map_or_else(
                    || "临时学籍号已升级为正式学籍号".into(),
                    |r| r.comment.clone(),
                ),
                by: by.clone(),
                at: now_rfc3339(),
                outcome: "applied".into(),
                event: Some(seq),
                request: request.map(str::to_owned),
            });
        }
        p.status = ProblemStatus::Resolved;
        if let Err(e) = self.store.submit(Command::UpdateProblem {
            problem: Box::new(p),
        }) {
            tracing::warn!(error = %e, "temporary number problem not settled");
        }
    }

    pub fn problem(&self, id: &str) -> Result<Problem> {
        self.store
            .problem(id)?
            .ok_or_else(|| ServiceError::NotFound {
                what: "problem",
                id: id.into(),
            })
    }

    /// Settles an open problem: `delete` files `cancel_admission` (or `revoke` once the student
    /// holds 学籍), `confirm` files `confirm_record`, `correct` files `change_key_info` with the
    /// fields given; each as the caller, through the policy, recorded in the student's history.
    /// Applied → the problem is resolved; pending (the policy asks approvals) → it stays open
    /// with the request named; denied → nothing changes and the denial is the answer.
    pub fn resolve_problem(
        &self,
        id: &str,
        req: ResolveRequest,
        actor: &Actor,
        in_scope: impl Fn(&Student, &School) -> bool,
    ) -> Result<(Problem, Outcome)> {
        check_text(&req.comment, "comment", 500)?;
        let problem = self.problem(id)?;
        if problem.status != ProblemStatus::Open {
            return Err(ServiceError::Conflict {
                code: "problem_resolved",
                message: "该问题学籍已处理完毕".into(),
            });
        }
        let Some(student_id) = problem.student.clone() else {
            return Err(FieldError::new(
                "problem_without_student",
                "id",
                "该问题学籍没有对应的学生记录,无需办理",
            )
            .into());
        };
        let student = self.student(&student_id)?;
        let kind = match req.action {
            ResolveAction::Delete
                if TransitionKind::CancelAdmission
                    .allowed_from()
                    .contains(&student.status) =>
            {
                TransitionKind::CancelAdmission
            }
            ResolveAction::Delete => TransitionKind::Revoke,
            ResolveAction::Confirm => TransitionKind::ConfirmRecord,
            ResolveAction::Correct => TransitionKind::ChangeKeyInfo,
        };
        let mut input = TransitionInput::new(kind, self.today());
        input.documents = req.documents;
        match (req.action, req.fields) {
            (ResolveAction::Correct, Some(fields)) => {
                input.params.insert("fields".into(), Value::Object(fields));
            }
            (ResolveAction::Correct, None) => {
                return Err(FieldError::new(
                    "required",
                    "fields",
                    "变更(correct)须填写要变更的关键信息",
                )
                .into());
            }
            (_, Some(_)) => {
                return Err(FieldError::new(
                    "invalid_value",
                    "fields",
                    "只有变更(correct)可以填写 fields",
                )
                .into());
            }
            (_, None) => {}
        }
        let outcome = self.transition_in_scope(&student_id, input, actor, false, in_scope)?;
        let (outcome_name, event, request) = match &outcome {
            Outcome::Applied { event, .. } => ("applied", Some(event.seq), None),
            Outcome::Pending { request, .. } => ("pending", None, Some(request.id.clone())),
            Outcome::Denied { .. } | Outcome::DryRun { .. } => return Ok((problem, outcome)),
        };
        let mut next = problem.clone();
        next.resolution = Some(Resolution {
            action: req.action,
            comment: req.comment,
            by: actor.clone(),
            at: now_rfc3339(),
            outcome: outcome_name.into(),
            event,
            request,
        });
        if outcome_name == "applied" {
            next.status = ProblemStatus::Resolved;
        }
        match self.store.submit(Command::UpdateProblem {
            problem: Box::new(next.clone()),
        }) {
            Ok(_) => Ok((next, outcome)),
            // The transition itself settled it (a temporary number's upgrade), or someone else
            // did meanwhile: the problem as stored is the answer beside the outcome.
            Err(StoreError::RequestNotPending(_)) => Ok((self.problem(id)?, outcome)),
            Err(e) => Err(e.into()),
        }
    }
}
