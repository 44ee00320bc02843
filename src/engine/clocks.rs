//! Approval clocks on the service: each step's due date under the policy in force when it was
//! reached, the overdue listing, and the sweep's part for requests (overdue problems, expiry).

use serde_json::{Map, Value, json};

use super::{Result, SweepReport, Xueji, now_rfc3339};
use crate::domain::clock::{self, EXPIRY_ACTOR, StepClock};
use crate::domain::problem::ProblemKind;
use crate::domain::workdays::WorkCalendar;
use crate::domain::{Actor, ApprovalRecord, ApprovalRequest, Date, RequestStatus, School, Student};
use crate::store::{Command, StoreError};

/// Working days each party has for its step when the policy sets none (教基一〔2013〕7号
/// 第十四条, secondary).
pub const DEFAULT_APPROVAL_WORKING_DAYS: u32 = 10;
/// Calendar days a request may stay pending when the policy sets none (教基一司函〔2015〕86号,
/// secondary: transfer requests pending over half a year were purged).
pub const DEFAULT_REQUEST_EXPIRY_DAYS: u32 = 180;
/// The largest day count a policy setting is taken at (ten years); beyond, the default holds.
const MAX_SETTING_DAYS: i64 = 3_650;

impl Xueji {
    /// A day-count setting of the jurisdiction's policy in force on `on`, or `default` when the
    /// package sets none (or a value that is no positive whole number of at most ten years).
    fn days_setting(&self, jurisdiction: &str, on: Date, name: &str, default: u32) -> u32 {
        self.policies
            .in_force(jurisdiction, on)
            .ok()
            .and_then(|p| p.settings.get(name).and_then(|v| v.as_int().ok()))
            .filter(|n| (1..=MAX_SETTING_DAYS).contains(n))
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default)
    }

    /// The steps of a request with their clocks (`domain::clock`), N working days per step from
    /// the request's policy (`approval_working_days`) in force on the day the step was reached.
    pub fn step_clocks(&self, r: &ApprovalRequest) -> Vec<StepClock> {
        clock::step_clocks(r, self.time_zone, WorkCalendar::national(), |opened| {
            self.days_setting(
                &r.jurisdiction,
                opened,
                "approval_working_days",
                DEFAULT_APPROVAL_WORKING_DAYS,
            )
        })
    }

    /// The step of `r` that is overdue as of `as_of`, if any.
    pub fn overdue_step(&self, r: &ApprovalRequest, as_of: Date) -> Option<StepClock> {
        clock::overdue_step(&self.step_clocks(r), as_of).cloned()
    }

    /// The sweep's part for requests pending in `jurisdictions` whose student `in_scope` lets
    /// through: one filed longer ago than the policy's `request_expiry_days` is closed
    /// `expired` (by the system actor, with the step it waited for, like a rejection); one with
    /// an overdue step opens an `overdue_request` problem (once per request and step).
    pub(super) fn sweep_requests(
        &self,
        as_of: Date,
        jurisdictions: &[String],
        in_scope: &impl Fn(&Student, &School) -> bool,
        report: &mut SweepReport,
    ) -> Result<()> {
        const PAGE: usize = 500;
        let actor = Actor::system(EXPIRY_ACTOR);
        for jur in jurisdictions {
            let mut cursor: Option<String> = None;
            loop {
                let page = self.store.requests_with_status(
                    jur,
                    RequestStatus::Pending,
                    cursor.as_deref(),
                    PAGE,
                )?;
                let done = page.len() < PAGE;
                cursor = page.last().map(|(k, _)| k.clone());
                for (_, r) in page {
                    let (Some(student), Some(school)) = (
                        self.store.student(&r.student)?,
                        self.store.school(&r.school)?,
                    ) else {
                        continue;
                    };
                    if !in_scope(&student, &school) {
                        continue;
                    }
                    let Some(filed) = clock::date_of_instant(&r.opened_at, self.time_zone) else {
                        continue;
                    };
                    let expiry = self.days_setting(
                        &r.jurisdiction,
                        filed,
                        "request_expiry_days",
                        DEFAULT_REQUEST_EXPIRY_DAYS,
                    );
                    if clock::expired(filed, expiry, as_of) {
                        let Some(step) = r.next_step() else { continue };
                        let mut closed = r.clone();
                        closed.approvals.push(ApprovalRecord {
                            step,
                            approved: false,
                            actor: actor.clone(),
                            comment: Some(format!(
                                "申请自 {filed} 提交,超过 {expiry} 天未办结,按期限处理关闭"
                            )),
                            at: now_rfc3339(),
                        });
                        closed.status = RequestStatus::Expired;
                        closed.input = self.redact_input(&r.input);
                        match self.store.submit(Command::UpdateRequest {
                            request: Box::new(closed),
                            expected_approvals: r.approvals.len(),
                        }) {
                            Ok(_) => report.expired_requests.push(r.id.clone()),
                            // Approved or rejected meanwhile: nothing to expire.
                            Err(StoreError::RequestNotPending(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                        continue;
                    }
                    if let Some(late) = self.overdue_step(&r, as_of) {
                        let mut details = Map::new();
                        details.insert("request".into(), json!(r.id));
                        details.insert("kind".into(), json!(r.input.kind));
                        details.insert("step".into(), json!(late.step));
                        details.insert("opened".into(), json!(late.opened));
                        details.insert("due".into(), json!(late.due));
                        let mut others: Vec<String> = Vec::new();
                        if let Some(rs) = &r.receiving_school {
                            others.push(rs.clone());
                        }
                        let opened = self.open_problem(
                            ProblemKind::OverdueRequest,
                            Some(&student),
                            &school,
                            others,
                            as_of,
                            details,
                            &[&r.id, late.step.as_str()],
                            &Actor::system("deadline_sweep"),
                        )?;
                        if let Some(p) = opened {
                            report.problems.push(p.id);
                        }
                    }
                }
                if done {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The view of a step clock list, for answers.
pub fn clocks_json(clocks: &[StepClock]) -> Value {
    serde_json::to_value(clocks).unwrap_or(Value::Array(Vec::new()))
}
