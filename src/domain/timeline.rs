//! Replaying the history: where each student stood (status, school, grade, class) on a date.
//!
//! The rule: a student's placement on date `D` is the `after` facts of the latest event with
//! `effective_date <= D`, events ordered by effective date and, on the same date, by sequence
//! (recording order). A student whose first event (the admission, effective on the entry date)
//! is after `D` did not exist yet on `D`.
//!
//! "As of a date" always comes from the history, never from the current snapshot alone.

use crate::domain::{Date, Event, EventFacts, TransitionKind};

/// One event, reduced to what rosters and statistics need. The store keeps every student's steps
/// in one record, so a roster or a statistic reads one small record per student instead of every
/// event.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub seq: u64,
    pub kind: TransitionKind,
    pub date: Date,
    pub facts: EventFacts,
}

impl Step {
    pub fn of(e: &Event) -> Step {
        Step {
            seq: e.seq,
            kind: e.kind,
            date: e.effective_date,
            facts: e.after.clone(),
        }
    }
}

/// One student's placements over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub student: String,
    /// Ordered by `(date, seq)`.
    pub steps: Vec<Step>,
}

impl Timeline {
    pub fn new(student: String, mut steps: Vec<Step>) -> Timeline {
        steps.sort_by_key(|s| (s.date, s.seq));
        Timeline { student, steps }
    }

    pub fn from_events(student: String, events: impl IntoIterator<Item = Event>) -> Timeline {
        let steps = events.into_iter().map(|e| Step::of(&e)).collect();
        Timeline::new(student, steps)
    }

    /// The steps in force on or before `date`, in order.
    pub fn until(&self, date: Date) -> impl Iterator<Item = &Step> {
        self.steps.iter().take_while(move |s| s.date <= date)
    }

    /// The placement on `date`, or `None` if the student was not admitted yet.
    pub fn as_of(&self, date: Date) -> Option<&EventFacts> {
        self.until(date).last().map(|s| &s.facts)
    }

    /// The admission (the `admit` event; the first event of every chain).
    pub fn admission(&self) -> Option<&Step> {
        self.steps
            .iter()
            .find(|s| s.kind == TransitionKind::Admit)
            .or_else(|| self.steps.iter().min_by_key(|s| s.seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Status;
    use crate::domain::event::facts;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn step(seq: u64, kind: TransitionKind, date: &str, status: Status, class: &str) -> Step {
        Step {
            seq,
            kind,
            date: d(date),
            facts: facts(status, "s1", 1, Some(class)),
        }
    }

    #[test]
    fn placement_is_the_latest_effective_event() {
        let t = Timeline::new(
            "stu".into(),
            vec![
                step(
                    1,
                    TransitionKind::Admit,
                    "2024-09-01",
                    Status::Admitted,
                    "1",
                ),
                step(
                    2,
                    TransitionKind::Register,
                    "2024-09-02",
                    Status::Enrolled,
                    "1",
                ),
                // Recorded later, effective earlier than a later-recorded one.
                step(
                    4,
                    TransitionKind::ChangeClass,
                    "2025-03-01",
                    Status::Enrolled,
                    "3",
                ),
                step(
                    3,
                    TransitionKind::ChangeClass,
                    "2025-04-01",
                    Status::Enrolled,
                    "2",
                ),
            ],
        );
        assert_eq!(t.as_of(d("2024-08-31")), None);
        assert_eq!(
            t.as_of(d("2024-09-01")).map(|f| f.status),
            Some(Status::Admitted)
        );
        assert_eq!(
            t.as_of(d("2025-03-15")).and_then(|f| f.class.clone()),
            Some("3".into())
        );
        assert_eq!(
            t.as_of(d("2026-01-01")).and_then(|f| f.class.clone()),
            Some("2".into())
        );
        assert_eq!(t.admission().map(|s| s.seq), Some(1));
    }
}
