//! What one student adds to the statistics (counts, 巩固率, 辍学率) on a date, in terms of
//! schools rather than of a scope, so that the store can keep the sums for every scope at once.
//!
//! A student's contribution on date `D` ([`contribution`]) depends on `D` only through the
//! steps in force on `D`, so it changes only on the dates of their steps. [`dated_changes`]
//! lists those changes: for any `D`, the contribution on `D` is the sum of the changes dated on
//! or before `D`. The store keeps, per jurisdiction, the sum of every student's changes (the
//! totals, what holds on any date after the last step) and the changes by date; statistics on
//! `D` are the totals minus the changes dated after `D`. A recorded event (even a back-dated
//! one) moves the sums by [`change_between`] the student's timeline before and after it.
//!
//! Scope is applied when the sums are read: a counter names the schools it concerns, and
//! `exchange::stats` keeps the counters whose schools are inside the scope.

use std::collections::BTreeMap;

use crate::domain::{Date, EventFacts, Status, Step, Timeline, TransitionKind};

/// One thing a student counts for on a date.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Counter {
    /// Placed at `school` with this status, grade and class. `cohort` is the entry year once
    /// the student has held 学籍 (their outcome in the 巩固率 of that cohort), else `None`.
    Placed {
        school: String,
        status: Status,
        grade: u8,
        class: Option<String>,
        cohort: Option<i32>,
    },
    /// First gained 学籍 at `school`: one of the cohort of `cohort`.
    Gained { cohort: i32, school: String },
    /// Moved between schools after gaining 学籍 (a transfer into or out of a scope that contains
    /// one of the two).
    Moved {
        cohort: i32,
        from: String,
        to: String,
    },
    /// Transferred out of the system (转出至系统外) from `school`.
    LeftSystem { cohort: i32, school: String },
    /// Admitted at `school` but not (yet) holding 学籍.
    NeverRegistered { cohort: i32, school: String },
    /// Dropped out (辍学) at `school` in the school year starting on `year_start`; a student
    /// counts once per school and school year.
    DroppedOut { year_start: Date, school: String },
}

impl Counter {
    /// The schools the counter concerns (two for a move).
    pub fn schools(&self) -> impl Iterator<Item = &str> {
        let (first, second) = match self {
            Counter::Placed { school, .. }
            | Counter::Gained { school, .. }
            | Counter::LeftSystem { school, .. }
            | Counter::NeverRegistered { school, .. }
            | Counter::DroppedOut { school, .. } => (school.as_str(), None),
            Counter::Moved { from, to, .. } => (from.as_str(), Some(to.as_str())),
        };
        std::iter::once(first).chain(second)
    }
}

/// The school year (from 09-01) containing `date`.
pub fn school_year_start(date: Date) -> Date {
    let y = date.year();
    match Date::from_ymd(y, 9, 1) {
        Some(start) if start <= date => start,
        _ => Date::from_ymd(y - 1, 9, 1).unwrap_or(date),
    }
}

/// What a student counts for on `date`.
pub fn contribution(t: &Timeline, date: Date) -> Vec<Counter> {
    let mut state = TallyState::admitted(t, date);
    let mut out = Vec::new();
    for step in t.until(date) {
        state.take(step, &mut out);
    }
    out.extend(state.standing());
    out
}

/// Where a student's history stands after its steps so far (in date order): all the next step
/// needs to say what it adds. The store keeps it with each student, so that an event dated on or
/// after all of the student's others (nearly every event) changes the sums without the student's
/// timeline being read ([`TallyState::append`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TallyState {
    /// Entry year (the cohort) and school of the admission.
    admission: Option<(i32, String)>,
    /// Has held 学籍.
    gained: bool,
    /// The date and placement of the last step.
    last: Option<(Date, EventFacts)>,
    /// The school year (its start) and school of every dropout counted.
    dropped: Vec<(Date, String)>,
}

impl TallyState {
    /// Before any step, counting the admission if it is in force on `date`.
    fn admitted(t: &Timeline, date: Date) -> TallyState {
        TallyState {
            admission: t
                .admission()
                .filter(|a| a.date <= date)
                .map(|a| (a.date.year(), a.facts.school.clone())),
            ..TallyState::default()
        }
    }

    /// After every step of the timeline.
    pub fn of(t: &Timeline) -> TallyState {
        let mut state = match t.steps.last() {
            Some(last) => TallyState::admitted(t, last.date),
            None => TallyState::default(),
        };
        let mut ignored = Vec::new();
        for step in &t.steps {
            state.take(step, &mut ignored);
        }
        state
    }

    /// Takes the next step, adding what it counts for from now on (a cohort's flows, a dropout)
    /// to `out`.
    fn take(&mut self, step: &Step, out: &mut Vec<Counter>) {
        let f = &step.facts;
        let prev = self.last.as_ref().map(|(_, p)| p);
        if let Some((cohort, _)) = &self.admission {
            let cohort = *cohort;
            if !self.gained {
                if f.status.has_xueji() {
                    self.gained = true;
                    out.push(Counter::Gained {
                        cohort,
                        school: f.school.clone(),
                    });
                }
            } else if let Some(p) = prev {
                if p.school != f.school {
                    out.push(Counter::Moved {
                        cohort,
                        from: p.school.clone(),
                        to: f.school.clone(),
                    });
                }
                if step.kind == TransitionKind::TransferOut
                    && f.status == Status::TransferredOut
                    && p.status != Status::TransferredOut
                {
                    out.push(Counter::LeftSystem {
                        cohort,
                        school: f.school.clone(),
                    });
                }
            }
        }
        if f.status == Status::DroppedOut && prev.is_none_or(|p| p.status != Status::DroppedOut) {
            let year = (school_year_start(step.date), f.school.clone());
            if !self.dropped.contains(&year) {
                out.push(Counter::DroppedOut {
                    year_start: year.0,
                    school: year.1.clone(),
                });
                self.dropped.push(year);
            }
        }
        self.last = Some((step.date, f.clone()));
    }

    /// What the student counts for by where they stand: placed, or admitted but not registered.
    fn standing(&self) -> Vec<Counter> {
        let Some((_, last)) = &self.last else {
            return Vec::new();
        };
        let cohort = self.admission.as_ref().map(|(c, _)| *c);
        let mut out = Vec::with_capacity(2);
        if let (Some((cohort, school)), false) = (&self.admission, self.gained) {
            out.push(Counter::NeverRegistered {
                cohort: *cohort,
                school: school.clone(),
            });
        }
        out.push(Counter::Placed {
            school: last.school.clone(),
            status: last.status,
            grade: last.grade,
            class: last.class.clone(),
            cohort: cohort.filter(|_| self.gained),
        });
        out
    }

    /// A step dated on or after every step so far: what it changes in the sums (all on its
    /// date; [`change_between`] gives the same) and the state after it. `None` for a step dated
    /// earlier or for an admission, which need the whole timeline.
    pub fn append(&self, step: &Step) -> Option<(DatedCounts, TallyState)> {
        let (last_date, _) = self.last.as_ref()?;
        if step.date < *last_date || step.kind == TransitionKind::Admit {
            return None;
        }
        let mut next = self.clone();
        let mut added = Vec::new();
        next.take(step, &mut added);
        let mut change = counted(added);
        for c in next.standing() {
            *change.entry(c).or_default() += 1;
        }
        for c in self.standing() {
            *change.entry(c).or_default() -= 1;
        }
        let dated = change
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|(c, n)| ((step.date, c), n))
            .collect();
        Some((dated, next))
    }
}

/// Signed counts of counters.
pub type Counts = BTreeMap<Counter, i64>;

/// Signed counts of counters by the date they change on.
pub type DatedCounts = BTreeMap<(Date, Counter), i64>;

/// The sum of each counter's changes over all dates.
pub fn totals(changes: &DatedCounts) -> Counts {
    let mut out = Counts::new();
    for ((_, c), n) in changes {
        *out.entry(c.clone()).or_default() += n;
    }
    out.retain(|_, n| *n != 0);
    out
}

fn counted(counters: Vec<Counter>) -> Counts {
    let mut out = Counts::new();
    for c in counters {
        *out.entry(c).or_default() += 1;
    }
    out
}

/// How the student's contribution changes over time: on each date of their steps, what it
/// gains (+) and loses (−). Summing the changes dated on or before `D` gives
/// `contribution(t, D)`.
pub fn dated_changes(t: &Timeline) -> DatedCounts {
    changes_from(t, None)
}

/// The changes dated on or after `from` (all of them when `None`).
fn changes_from(t: &Timeline, from: Option<Date>) -> DatedCounts {
    let mut out = DatedCounts::new();
    let mut dates: Vec<Date> = t.steps.iter().map(|s| s.date).collect();
    dates.dedup();
    let first = from.map_or(0, |from| dates.partition_point(|d| *d < from));
    let mut before = match first.checked_sub(1) {
        Some(i) => counted(contribution(t, dates[i])),
        None => Counts::new(),
    };
    for &date in &dates[first..] {
        let now = counted(contribution(t, date));
        for (c, n) in &now {
            let delta = n - before.get(c).copied().unwrap_or(0);
            if delta != 0 {
                out.insert((date, c.clone()), delta);
            }
        }
        for (c, n) in &before {
            if !now.contains_key(c) {
                out.insert((date, c.clone()), -n);
            }
        }
        before = now;
    }
    out
}

/// What the sums kept for a jurisdiction must add when a student's timeline goes from `old` to
/// `new`: the changes of `new` minus those of `old`. Only the dates from the first step that
/// differs onwards can change, so a step dated after every other costs two evaluations a side.
pub fn change_between(old: &Timeline, new: &Timeline) -> DatedCounts {
    let same_prefix = old
        .steps
        .iter()
        .zip(&new.steps)
        .take_while(|(a, b)| a == b)
        .count();
    let first_changed = [old.steps.get(same_prefix), new.steps.get(same_prefix)]
        .into_iter()
        .flatten()
        .map(|s| s.date)
        .min();
    if first_changed.is_none() {
        return DatedCounts::new();
    }
    // The entry cohort comes from the admission, wherever it sits.
    let from = first_changed.filter(|_| old.admission() == new.admission());
    let mut out = changes_from(new, from);
    for (k, n) in changes_from(old, from) {
        *out.entry(k).or_default() -= n;
    }
    out.retain(|_, n| *n != 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Step;
    use crate::domain::event::facts;
    use proptest::prelude::*;

    const STATUSES: [Status; 6] = [
        Status::Admitted,
        Status::Enrolled,
        Status::Suspended,
        Status::DroppedOut,
        Status::TransferredOut,
        Status::Graduated,
    ];
    const KINDS: [TransitionKind; 5] = [
        TransitionKind::Register,
        TransitionKind::Transfer,
        TransitionKind::TransferOut,
        TransitionKind::DropOut,
        TransitionKind::Graduate,
    ];

    fn day(n: u16) -> Date {
        Date::from_ymd(2024, 8, 1)
            .and_then(|d| d.add_days(i64::from(n)))
            .unwrap_or_else(|| panic!("day {n}"))
    }

    /// A step: day offset (over two school years, so dates collide and cross 09-01), kind,
    /// status, school, class.
    fn step_strategy() -> impl Strategy<Value = (u16, usize, usize, usize, u8)> {
        (
            0u16..700,
            0..KINDS.len(),
            0..STATUSES.len(),
            0usize..3,
            1u8..3,
        )
    }

    fn timeline(admitted_on: u16, steps: &[(u16, usize, usize, usize, u8)]) -> Timeline {
        let mut all = vec![Step {
            seq: 1,
            kind: TransitionKind::Admit,
            date: day(admitted_on),
            facts: facts(Status::Admitted, "s0", 1, None),
        }];
        for (i, &(d, kind, status, school, class)) in steps.iter().enumerate() {
            all.push(Step {
                seq: i as u64 + 2,
                kind: KINDS[kind],
                date: day(d),
                facts: facts(
                    STATUSES[status],
                    &format!("s{school}"),
                    1,
                    Some(&class.to_string()),
                ),
            });
        }
        Timeline::new("stu".into(), all)
    }

    /// A timeline, and the same with one more step (the last recorded, dated anywhere).
    fn with_extra(
        admitted_on: u16,
        steps: &[(u16, usize, usize, usize, u8)],
        extra: (u16, usize, usize, usize, u8),
    ) -> (Timeline, Timeline) {
        let mut more = steps.to_vec();
        more.push(extra);
        (timeline(admitted_on, steps), timeline(admitted_on, &more))
    }

    fn sum_until(changes: &DatedCounts, date: Date) -> Counts {
        let mut out = Counts::new();
        for ((d, c), n) in changes {
            if *d <= date {
                *out.entry(c.clone()).or_default() += n;
            }
        }
        out.retain(|_, n| *n != 0);
        out
    }

    proptest! {
        /// The dated changes add up, on every date, to what the student counts for then.
        #[test]
        fn changes_add_up_to_the_contribution(
            admitted_on in 0u16..400,
            steps in proptest::collection::vec(step_strategy(), 0..7),
        ) {
            let t = timeline(admitted_on, &steps);
            let changes = dated_changes(&t);
            for d in (0u16..720).step_by(3).map(day) {
                prop_assert_eq!(sum_until(&changes, d), counted(contribution(&t, d)), "on {}", d);
            }
        }

        /// A new step, dated anywhere, moves the sums by exactly the difference of the changes.
        #[test]
        fn one_more_step_changes_the_sums_by_the_difference(
            admitted_on in 0u16..400,
            steps in proptest::collection::vec(step_strategy(), 0..6),
            extra in step_strategy(),
        ) {
            let (old, new) = with_extra(admitted_on, &steps, extra);
            let mut expected = dated_changes(&new);
            for (k, n) in dated_changes(&old) {
                *expected.entry(k).or_default() -= n;
            }
            expected.retain(|_, n| *n != 0);
            prop_assert_eq!(change_between(&old, &new), expected);
        }
    }

    proptest! {
        /// A step dated on or after all others changes the sums, from the stored state alone,
        /// exactly as the whole timeline says; and the state after it is the new timeline's.
        #[test]
        fn appending_from_the_state_is_the_timeline_difference(
            admitted_on in 0u16..400,
            steps in proptest::collection::vec(step_strategy(), 0..6),
            extra in step_strategy(),
        ) {
            let (old, new) = with_extra(admitted_on, &steps, extra);
            let seq = steps.len() as u64 + 2;
            let appended = new.steps.last().map(|s| s.seq) == Some(seq);
            let step = new.steps.iter().find(|s| s.seq == seq).cloned();
            let step = step.ok_or_else(|| TestCaseError::fail("the extra step"))?;
            match TallyState::of(&old).append(&step) {
                Some((change, state)) if appended => {
                    prop_assert_eq!(change, change_between(&old, &new));
                    prop_assert_eq!(state, TallyState::of(&new));
                }
                Some(_) => prop_assert!(false, "a step that is not last was appended"),
                None => prop_assert!(!appended, "a last step was refused"),
            }
        }
    }

    #[test]
    fn a_dropout_counts_once_per_school_and_school_year() {
        let t = timeline(
            0,
            &[
                (10, 0, 1, 0, 1),  // registered
                (40, 3, 3, 0, 1),  // dropped out (2024-2025)
                (50, 0, 1, 0, 1),  // back
                (60, 3, 3, 0, 1),  // dropped out again, same year and school
                (400, 0, 1, 0, 1), // back
                (420, 3, 3, 0, 1), // dropped out in 2025-2026
            ],
        );
        let dropouts: Vec<_> = contribution(&t, day(699))
            .into_iter()
            .filter_map(|c| match c {
                Counter::DroppedOut { year_start, .. } => Some(year_start.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(dropouts, ["2024-09-01", "2025-09-01"]);
    }

    #[test]
    fn school_years_start_in_september() {
        let d = |s: &str| Date::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(school_year_start(d("2026-03-01")), d("2025-09-01"));
        assert_eq!(school_year_start(d("2026-09-01")), d("2026-09-01"));
    }
}
