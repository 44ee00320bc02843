//! Approval clocks: when each step of a request was opened and when it is due, in working days
//! of the national calendar (`domain::workdays`). Each party has N working days for its step
//! (教基一〔2013〕7号 第十四条: 10, unless the policy says otherwise), counted from the day the
//! step was reached: the filing for the first step, the previous step's approval for the others.
//!
//! Derived on read from what a request stores (its filing instant and its approval records), so
//! requests stored before clocks existed have them too, and whatever a step is called.

use chrono::Datelike;
use serde::Serialize;
use strum::IntoStaticStr;

use super::workdays::WorkCalendar;
use super::{Actor, ApprovalRequest, ApprovalStep, Date, RequestStatus};

/// The actor that closes a request left pending past the policy's `request_expiry_days`.
pub const EXPIRY_ACTOR: &str = "request_expiry";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum StepStatus {
    Approved,
    Rejected,
    /// The step the request waits for.
    Pending,
    /// A later step of a pending request, not reached yet.
    Waiting,
    /// The step the request waited for when the expiry closed it.
    Expired,
    /// Never reached: the request ended before it.
    Closed,
}

/// One step of a request with its clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepClock {
    pub step: ApprovalStep,
    pub status: StepStatus,
    /// The day the step was reached (in the service's time zone); none for a step not reached.
    pub opened: Option<Date>,
    /// `opened` + N working days: the last day of the step's time.
    pub due: Option<Date>,
    /// The count ran through a year the holiday table does not cover (Monday to Friday counted).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub due_estimated: bool,
    /// Who approved or rejected it, and when.
    pub by: Option<Actor>,
    pub at: Option<String>,
    pub comment: Option<String>,
}

/// The date of an RFC 3339 instant on the wall clock of `zone`.
pub fn date_of_instant(instant: &str, zone: chrono_tz::Tz) -> Option<Date> {
    let t = chrono::DateTime::parse_from_rfc3339(instant).ok()?;
    let d = t.with_timezone(&zone).date_naive();
    Date::from_ymd(d.year(), d.month(), d.day())
}

/// The steps of `r` with their clocks, in approval order. `working_days` gives N for a step
/// opened on a date (the policy in force then).
pub fn step_clocks(
    r: &ApprovalRequest,
    zone: chrono_tz::Tz,
    calendar: &WorkCalendar,
    working_days: impl Fn(Date) -> u32,
) -> Vec<StepClock> {
    let mut opened = date_of_instant(&r.opened_at, zone);
    let mut reached = true;
    let mut out = Vec::with_capacity(r.steps.len());
    for &step in &r.steps {
        let record = r.approvals.iter().rev().find(|a| a.step == step);
        let status = match record {
            Some(a) if a.approved => StepStatus::Approved,
            Some(a)
                if r.status == RequestStatus::Expired
                    && a.actor.id == Actor::system(EXPIRY_ACTOR).id =>
            {
                StepStatus::Expired
            }
            Some(_) => StepStatus::Rejected,
            None if !reached => {
                if r.status == RequestStatus::Pending {
                    StepStatus::Waiting
                } else {
                    StepStatus::Closed
                }
            }
            None if r.status == RequestStatus::Pending => StepStatus::Pending,
            None => StepStatus::Closed,
        };
        let this_opened = if reached { opened } else { None };
        let counted = this_opened.and_then(|o| calendar.add_working_days(o, working_days(o)));
        out.push(StepClock {
            step,
            status,
            opened: this_opened,
            due: counted.map(|c| c.date),
            due_estimated: counted.is_some_and(|c| c.estimated),
            by: record.map(|a| a.actor.clone()),
            at: record.map(|a| a.at.clone()),
            comment: record.and_then(|a| a.comment.clone()),
        });
        if status == StepStatus::Approved {
            opened = record.and_then(|a| date_of_instant(&a.at, zone));
        } else {
            reached = false;
        }
    }
    out
}

/// The step a request waits for past its due date as of `as_of` (the due day itself is still
/// on time), if any.
pub fn overdue_step(clocks: &[StepClock], as_of: Date) -> Option<&StepClock> {
    clocks
        .iter()
        .find(|c| c.status == StepStatus::Pending && c.due.is_some_and(|due| as_of > due))
}

/// Whether a request filed on `opened` has been pending longer than `expiry_days` calendar days
/// as of `as_of`.
pub fn expired(opened: Date, expiry_days: u32, as_of: Date) -> bool {
    opened.days_until(as_of) > i64::from(expiry_days)
}
