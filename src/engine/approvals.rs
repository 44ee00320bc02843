//! Approval requests: reading one, approving and rejecting a step in the package's order.

use super::*;

impl Xueji {
    pub fn request(&self, id: &str) -> Result<ApprovalRequest> {
        self.store
            .request(id)?
            .ok_or_else(|| ServiceError::NotFound {
                what: "request",
                id: id.into(),
            })
    }

    fn check_step(request: &ApprovalRequest, step: ApprovalStep) -> Result<()> {
        if request.status != RequestStatus::Pending {
            return Err(StoreError::RequestNotPending(request.id.clone()).into());
        }
        if !request.steps.contains(&step) {
            return Err(ServiceError::Conflict {
                code: "step_not_required",
                message: format!("此申请不需要「{}」", step.zh()),
            });
        }
        if request
            .approvals
            .iter()
            .any(|a| a.step == step && a.approved)
        {
            return Err(ServiceError::Conflict {
                code: "step_already_approved",
                message: format!("「{}」已审批", step.zh()),
            });
        }
        if request.next_step() != Some(step) {
            let next = request.next_step().map_or("", ApprovalStep::zh);
            return Err(ServiceError::Conflict {
                code: "step_out_of_order",
                message: format!("请先完成「{next}」"),
            });
        }
        Ok(())
    }

    /// Approves one step. The last approval re-evaluates the policy in force and applies the
    /// transition atomically with the request's closing.
    pub fn approve(
        &self,
        request_id: &str,
        step: ApprovalStep,
        actor: &Actor,
        comment: Option<String>,
    ) -> Result<ApprovalOutcome> {
        if let Some(c) = &comment {
            check_optional_text(c, "comment", 500)?;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self.request(request_id)?;
            Self::check_step(&request, step)?;
            let mut next = request.clone();
            next.approvals.push(ApprovalRecord {
                step,
                approved: true,
                actor: actor.clone(),
                comment: comment.clone(),
                at: now_rfc3339(),
            });
            let expected_approvals = request.approvals.len();
            if next.next_step().is_some() {
                return self.store_request(next, expected_approvals, "pending");
            }
            let snapshot = self.store.snapshot()?;
            let student = student_in(&snapshot, &request.student)?;
            let school = school_in(&snapshot, &student.school)?;
            let decision = match self.decide(&snapshot, &student, &school, &request.input, false) {
                // The student's status changed since the request was filed (a direct transition
                // won a race, or was filed meanwhile): the request no longer applies. It stays
                // pending, for an approver to reject.
                Err(ServiceError::InvalidTransition { kind, status }) => {
                    return Err(ServiceError::Conflict {
                        code: "student_changed",
                        message: format!(
                            "申请提交后学生状态已变为「{}」,不能再办理「{}」;请驳回此申请",
                            status.zh(),
                            kind.zh()
                        ),
                    });
                }
                other => other?,
            };
            next.final_decision = Some(decision.clone());
            if !decision.allowed {
                next.status = RequestStatus::Denied;
                return self.store_request(next, expected_approvals, "denied");
            }
            let missing: Vec<ApprovalStep> = decision
                .approvals
                .iter()
                .copied()
                .filter(|s| !next.steps.contains(s))
                .collect();
            if !missing.is_empty() {
                // The policy in force now asks for more steps than when the request was filed.
                // Every filed step is approved by now: they keep their order, and the new ones
                // follow, in routing order (`decision.approvals` is already in it).
                next.steps.extend(missing);
                return self.store_request(next, expected_approvals, "pending");
            }
            next.status = RequestStatus::Applied;
            let (after, event, context) = self.apply_decision(
                &student,
                &school,
                &request.input,
                &decision,
                actor,
                Some(&request.id),
                false,
                false,
            )?;
            let closed = ApprovalRequest {
                input: self.redact_input(&request.input),
                ..next
            };
            let result = self.store.submit_in(
                snapshot,
                Command::RecordEvent {
                    before: Box::new(student),
                    after: Box::new(after.clone()),
                    event: Box::new(event.clone()),
                    context: Some(context),
                    close_request: Some(Box::new(closed.clone())),
                },
            );
            match result.map_err(ServiceError::from) {
                Ok(_) => {
                    self.settle_problems_of(&closed, event.seq);
                    return Ok(ApprovalOutcome {
                        request: closed,
                        outcome: "applied",
                        event: Some(event),
                        student: Some(after),
                    });
                }
                Err(ServiceError::Conflict {
                    code: "version_conflict",
                    ..
                }) if attempt < CONFLICT_RETRIES => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Rejects the request at a step; it ends `rejected` and nothing changes on the student.
    pub fn reject(
        &self,
        request_id: &str,
        step: ApprovalStep,
        actor: &Actor,
        comment: String,
    ) -> Result<ApprovalOutcome> {
        check_text(&comment, "comment", 500)?;
        let request = self.request(request_id)?;
        Self::check_step(&request, step)?;
        let mut next = request.clone();
        next.approvals.push(ApprovalRecord {
            step,
            approved: false,
            actor: actor.clone(),
            comment: Some(comment),
            at: now_rfc3339(),
        });
        next.status = RequestStatus::Rejected;
        next.input = self.redact_input(&request.input);
        self.store_request(next, request.approvals.len(), "rejected")
    }

    /// Stores a request that changed without changing its student (an approval that leaves it
    /// pending, a denial, a rejection), if the store still holds it pending with
    /// `expected_approvals` approvals, and answers with `outcome`.
    fn store_request(
        &self,
        next: ApprovalRequest,
        expected_approvals: usize,
        outcome: &'static str,
    ) -> Result<ApprovalOutcome> {
        self.store.submit(Command::UpdateRequest {
            request: Box::new(next.clone()),
            expected_approvals,
        })?;
        Ok(ApprovalOutcome {
            request: next,
            outcome,
            event: None,
            student: None,
        })
    }
}
