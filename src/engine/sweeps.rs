//! Deadline sweeps: what falls due by a date (unreported pupils, suspensions ending, requests
//! expiring), each through the policy like a transition.

use super::*;

impl Xueji {
    /// Evaluates the deadline rules of every student with a deadline on or before `as_of` and
    /// applies what the policy decides without approval.
    pub fn sweep(&self, as_of: Date, jurisdiction: Option<&str>) -> Result<SweepReport> {
        self.sweep_in_scope(as_of, jurisdiction, |_, _| true)
    }

    /// [`Xueji::sweep`] for a caller who may act on only some students (`in_scope`, given the
    /// student and their school): the others are neither evaluated nor reported. A date after
    /// today (in the service's time zone) is refused: a deadline that has not come cannot lapse.
    pub fn sweep_in_scope(
        &self,
        as_of: Date,
        jurisdiction: Option<&str>,
        in_scope: impl Fn(&Student, &School) -> bool,
    ) -> Result<SweepReport> {
        let today = self.today();
        if as_of > today {
            return Err(FieldError::new(
                "date_in_future",
                "as_of",
                format!("期限处理日期 {as_of} 晚于今天({today}):未到期的期限不能处理"),
            )
            .into());
        }
        let jurisdictions: Vec<String> = match jurisdiction {
            Some(j) => vec![j.to_owned()],
            None => self
                .policies
                .all_latest()
                .iter()
                .map(|p| p.manifest.id.clone())
                .collect(),
        };
        let actor = Actor::system("deadline_sweep");
        let mut report = SweepReport {
            as_of,
            evaluated: 0,
            applied: Vec::new(),
            failed: Vec::new(),
            expired_requests: Vec::new(),
            problems: Vec::new(),
        };
        for jur in &jurisdictions {
            for (student_id, kind, _) in self.store.due_deadlines(jur, as_of)? {
                let snapshot = self.store.snapshot()?;
                let Some(student) = snapshot.student(&student_id)? else {
                    continue;
                };
                let Some(deadline) = student.deadlines.iter().find(|d| d.kind == kind) else {
                    continue;
                };
                let Some(on_expiry) = deadline.on_expiry else {
                    continue;
                };
                if !on_expiry.allowed_from().contains(&student.status) {
                    continue;
                }
                let input = TransitionInput::new(on_expiry, as_of);
                let school = school_in(&snapshot, &student.school)?;
                if !in_scope(&student, &school) {
                    continue;
                }
                report.evaluated += 1;
                let decision = match self.decide(&snapshot, &student, &school, &input, true) {
                    Ok(decision) => decision,
                    Err(ServiceError::Policy(e)) => {
                        report.failed.push(SweepFailure {
                            student: student_id.clone(),
                            code: e.code().into(),
                            message: e.to_string(),
                        });
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                // A default never takes a status away (#16): the sweep applies only what a rule
                // of the policy decided (an `allow` or a `change` fired). A reporting deadline
                // that no rule decides, or any in compulsory education (义务教育法 第五条、
                // 第十一条: the child is followed up, 控辍保学), opens a `not_reported` problem.
                use crate::domain::Effect;
                let fired =
                    |effects: &[Effect]| decision.rules.iter().any(|r| effects.contains(&r.effect));
                let decided = fired(&[Effect::Allow, Effect::Change, Effect::Deny]);
                let applies = decision.allowed
                    && decision.approvals.is_empty()
                    && fired(&[Effect::Allow, Effect::Change]);
                if on_expiry == TransitionKind::ForfeitAdmission
                    && (!decided || school.level.is_compulsory())
                {
                    let mut details = serde_json::Map::new();
                    details.insert("deadline".into(), Value::String(kind.clone()));
                    details.insert("date".into(), Value::String(deadline.date.to_string()));
                    details.insert(
                        "status".into(),
                        Value::String(student.status.as_str().into()),
                    );
                    details.insert("forfeited_here".into(), Value::Bool(applies));
                    let date = deadline.date.to_string();
                    if let Some(p) = self.open_problem(
                        crate::domain::problem::ProblemKind::NotReported,
                        Some(&student),
                        &school,
                        Vec::new(),
                        as_of,
                        details,
                        &[&student.id, &kind, &date],
                        &actor,
                    )? {
                        report.problems.push(p.id);
                    }
                }
                if !applies {
                    continue;
                }
                let (after, event, context) = self.apply_decision(
                    &student, &school, &input, &decision, &actor, None, false, true,
                )?;
                let command = Command::RecordEvent {
                    before: Box::new(student),
                    after: Box::new(after),
                    event: Box::new(event.clone()),
                    context: Some(context),
                    close_request: None,
                };
                // The sweep's one snapshot serves its next students: the command is queued in
                // it and waited for while it stays open.
                match self
                    .store
                    .queue_in(&snapshot, command)
                    .and_then(|receipt| receipt.wait())
                {
                    Ok(_) => report.applied.push(SweepApplied {
                        student: student_id,
                        event,
                    }),
                    // Someone changed the student meanwhile: the next sweep looks again.
                    Err(StoreError::VersionConflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.sweep_requests(as_of, &jurisdictions, &in_scope, &mut report)?;
        Ok(report)
    }
}
