//! Statistics of a school or a jurisdiction (optionally one area of it) as of a date, traced from
//! the history (see `docs/exchange.md` for every definition).
//!
//! - Counts: every student whose placement on the date (replayed from history) is at a school in
//!   scope, by status; those holding 学籍 (enrolled, suspended, dropped out) by grade and by class.
//! - 巩固率 of each entry cohort (entry year = year of the admission's effective date):
//!   `graduates ÷ (cohort + transfers_in − transfers_out)`, where `cohort` counts students who
//!   gained 学籍 at a school in scope, `transfers_in`/`transfers_out` count `transfer` events
//!   crossing the scope's boundary (and `transfer_out` 转出至系统外 from inside it), and
//!   `graduates` counts students whose placement on the date is 毕业 at a school in scope. While
//!   students of the cohort are still at school the rate is provisional (`finished: false`);
//!   `retained` = graduates + still at school, `retained_rate` = retained ÷ base.
//! - 辍学率 of the school year (starting 09-01) containing the date: students who dropped out in
//!   the year up to the date ÷ students at school (enrolled or suspended) at its start.

use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

use crate::domain::{Date, EventFacts, Level, School, Status, Timeline, TransitionKind};
use crate::service::{Result, Xueji};

/// What the statistics cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsScope {
    School(School),
    /// A jurisdiction, or one area (district/county bureau) inside it.
    Jurisdiction {
        id: String,
        area: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub school: Option<String>,
    pub jurisdiction: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub as_of: Date,
    /// Students placed in scope on the date, whatever their status.
    pub students: usize,
    /// Holding 学籍: enrolled, suspended or dropped out.
    pub with_xueji: usize,
    /// 在校生: enrolled or suspended (the 在校生名册).
    pub in_school: usize,
    pub by_status: BTreeMap<Status, usize>,
    pub by_grade: Vec<GradeCount>,
    pub by_class: Vec<ClassCount>,
    pub cohorts: Vec<Cohort>,
    pub dropout: Dropout,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub with_xueji: usize,
    pub in_school: usize,
    pub enrolled: usize,
    pub suspended: usize,
    pub dropped_out: usize,
}

impl Counts {
    fn add(&mut self, status: Status) {
        self.with_xueji += 1;
        match status {
            Status::Enrolled => self.enrolled += 1,
            Status::Suspended => self.suspended += 1,
            _ => self.dropped_out += 1,
        }
        self.in_school = self.enrolled + self.suspended;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GradeCount {
    pub level: Level,
    pub grade: u8,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassCount {
    pub school: String,
    pub grade: u8,
    pub class: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One entry cohort, traced from the history up to the date.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cohort {
    pub entry_year: i32,
    /// Gained 学籍 at a school in scope.
    pub cohort: usize,
    pub transfers_in: usize,
    pub transfers_out: usize,
    /// cohort + transfers_in − transfers_out.
    pub base: i64,
    /// Where the base stands on the date (these add up to `base`):
    pub graduates: usize,
    pub completed: usize,
    pub attended: usize,
    pub in_school: usize,
    pub dropped_out: usize,
    /// Withdrawn, expelled, revoked, deceased, or back to an admission status without 学籍.
    pub left_other: usize,
    /// 巩固率 = graduates ÷ base (4 decimals; null when the base is 0).
    pub rate: Option<f64>,
    /// graduates + in_school.
    pub retained: usize,
    pub retained_rate: Option<f64>,
    /// No student of the cohort is still at school in scope: `rate` is final.
    pub finished: bool,
    /// Admitted in scope in that year but never held 学籍 (e.g. admission forfeited).
    pub never_registered: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dropout {
    /// e.g. `2025-2026`.
    pub school_year: String,
    pub from: Date,
    pub to: Date,
    /// At school (enrolled or suspended) in scope on `from`.
    pub students_at_start: usize,
    /// Distinct students who dropped out (辍学) at a school in scope between `from` and `to`.
    pub dropouts: usize,
    /// 辍学率 = dropouts ÷ students_at_start (4 decimals).
    pub rate: Option<f64>,
}

fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| (n as f64 / d as f64 * 10_000.0).round() / 10_000.0)
}

pub fn stats(x: &Xueji, scope: &StatsScope, as_of: Date) -> Result<Stats> {
    let store = x.store();
    let (jurisdiction, area, school_id) = match scope {
        StatsScope::School(s) => (s.jurisdiction.clone(), None, Some(s.id.clone())),
        StatsScope::Jurisdiction { id, area } => (id.clone(), area.clone(), None),
    };
    let schools: Vec<School> = store
        .schools()?
        .into_iter()
        .filter(|s| {
            s.jurisdiction == jurisdiction
                && school_id.as_ref().is_none_or(|id| &s.id == id)
                && area.as_ref().is_none_or(|a| s.area.as_ref() == Some(a))
        })
        .collect();
    let levels: BTreeMap<&str, Level> = schools.iter().map(|s| (s.id.as_str(), s.level)).collect();
    let in_scope: HashSet<&str> = levels.keys().copied().collect();
    let inside = |f: &EventFacts| in_scope.contains(f.school.as_str());

    let mut students = 0;
    let mut by_status: BTreeMap<Status, usize> = BTreeMap::new();
    // Keyed by the level's declaration order (primary first), then grade.
    let mut grades: BTreeMap<(u8, u8), (Level, Counts)> = BTreeMap::new();
    let mut classes: BTreeMap<(String, u8, Option<String>), Counts> = BTreeMap::new();
    let mut cohorts: BTreeMap<i32, Cohort> = BTreeMap::new();
    let mut dropouts = DropoutTally::new(as_of);
    let mut count = |t: Timeline| {
        if let Some(f) = t.as_of(as_of).filter(|f| inside(f)) {
            students += 1;
            *by_status.entry(f.status).or_default() += 1;
            if f.status.has_xueji() {
                let level = levels
                    .get(f.school.as_str())
                    .copied()
                    .unwrap_or(Level::Primary);
                grades
                    .entry((level as u8, f.grade))
                    .or_insert_with(|| (level, Counts::default()))
                    .1
                    .add(f.status);
                classes
                    .entry((f.school.clone(), f.grade, f.class.clone()))
                    .or_default()
                    .add(f.status);
            }
        }
        trace_cohort(&t, &inside, as_of, &mut cohorts);
        dropouts.add(&t, &inside);
    };
    // A school's figures concern only the students ever placed there; a jurisdiction's or an
    // area's, every student of the jurisdiction (transfers between its schools included).
    match &school_id {
        Some(id) => store
            .timelines_of_school(&jurisdiction, id)?
            .into_iter()
            .for_each(&mut count),
        None => store.for_each_timeline(&jurisdiction, &mut count)?,
    }
    let mut out = Stats {
        school: school_id,
        jurisdiction,
        area,
        as_of,
        students,
        with_xueji: 0,
        in_school: 0,
        by_status,
        by_grade: Vec::new(),
        by_class: Vec::new(),
        cohorts: Vec::new(),
        dropout: dropouts.finish(),
    };
    out.with_xueji = grades.values().map(|(_, c)| c.with_xueji).sum();
    out.in_school = grades.values().map(|(_, c)| c.in_school).sum();
    out.by_grade = grades
        .into_iter()
        .map(|((_, grade), (level, counts))| GradeCount {
            level,
            grade,
            counts,
        })
        .collect();
    out.by_class = classes
        .into_iter()
        .map(|((school, grade, class), counts)| ClassCount {
            school,
            grade,
            class,
            counts,
        })
        .collect();
    out.cohorts = cohorts
        .into_values()
        .map(|mut c| {
            c.base = c.cohort as i64 + c.transfers_in as i64 - c.transfers_out as i64;
            c.retained = c.graduates + c.in_school;
            c.rate = ratio(c.graduates as i64, c.base);
            c.retained_rate = ratio(c.retained as i64, c.base);
            c.finished = c.in_school == 0;
            c
        })
        .filter(|c| c.cohort + c.transfers_in + c.never_registered > 0)
        .collect();
    Ok(out)
}

/// Adds one student's flows to the cohort of their entry year.
fn trace_cohort(
    t: &Timeline,
    inside: &impl Fn(&EventFacts) -> bool,
    as_of: Date,
    cohorts: &mut BTreeMap<i32, Cohort>,
) {
    let Some(admission) = t.admission().filter(|a| a.date <= as_of) else {
        return;
    };
    let entry_year = admission.date.year();
    let mut flows = Cohort::default();
    let mut gained = false;
    let mut prev: Option<&EventFacts> = None;
    for step in t.until(as_of) {
        let f = &step.facts;
        if !gained {
            if f.status.has_xueji() {
                gained = true;
                if inside(f) {
                    flows.cohort += 1;
                }
            }
        } else if let Some(p) = prev {
            if p.school != f.school {
                match (inside(p), inside(f)) {
                    (false, true) => flows.transfers_in += 1,
                    (true, false) => flows.transfers_out += 1,
                    _ => {}
                }
            }
            if step.kind == TransitionKind::TransferOut
                && f.status == Status::TransferredOut
                && p.status != Status::TransferredOut
                && inside(f)
            {
                flows.transfers_out += 1;
            }
        }
        prev = Some(f);
    }
    let Some(last) = prev else { return };
    if !gained {
        if inside(&admission.facts) {
            flows.never_registered += 1;
        } else {
            return;
        }
    } else if inside(last) {
        match last.status {
            Status::Graduated => flows.graduates += 1,
            Status::Completed => flows.completed += 1,
            Status::Attended => flows.attended += 1,
            Status::Enrolled | Status::Suspended => flows.in_school += 1,
            Status::DroppedOut => flows.dropped_out += 1,
            Status::TransferredOut => {}
            _ => flows.left_other += 1,
        }
    }
    let c = cohorts.entry(entry_year).or_insert_with(|| Cohort {
        entry_year,
        ..Cohort::default()
    });
    c.cohort += flows.cohort;
    c.transfers_in += flows.transfers_in;
    c.transfers_out += flows.transfers_out;
    c.graduates += flows.graduates;
    c.completed += flows.completed;
    c.attended += flows.attended;
    c.in_school += flows.in_school;
    c.dropped_out += flows.dropped_out;
    c.left_other += flows.left_other;
    c.never_registered += flows.never_registered;
}

/// The school year (from 09-01) containing `date`.
pub fn school_year_start(date: Date) -> Date {
    let y = date.year();
    match Date::from_ymd(y, 9, 1) {
        Some(start) if start <= date => start,
        _ => Date::from_ymd(y - 1, 9, 1).unwrap_or(date),
    }
}

/// Counts the 辍学率 of the school year containing the date, one student at a time.
struct DropoutTally {
    from: Date,
    to: Date,
    at_start: usize,
    dropouts: usize,
}

impl DropoutTally {
    fn new(as_of: Date) -> DropoutTally {
        DropoutTally {
            from: school_year_start(as_of),
            to: as_of,
            at_start: 0,
            dropouts: 0,
        }
    }

    fn add(&mut self, t: &Timeline, inside: &impl Fn(&EventFacts) -> bool) {
        if t.as_of(self.from)
            .is_some_and(|f| inside(f) && matches!(f.status, Status::Enrolled | Status::Suspended))
        {
            self.at_start += 1;
        }
        let mut prev: Option<Status> = None;
        let mut dropped = false;
        for s in t.until(self.to) {
            if s.date >= self.from
                && s.facts.status == Status::DroppedOut
                && prev != Some(Status::DroppedOut)
                && inside(&s.facts)
            {
                dropped = true;
            }
            prev = Some(s.facts.status);
        }
        self.dropouts += usize::from(dropped);
    }

    fn finish(self) -> Dropout {
        Dropout {
            school_year: format!("{}-{}", self.from.year(), self.from.year() + 1),
            from: self.from,
            to: self.to,
            students_at_start: self.at_start,
            dropouts: self.dropouts,
            rate: ratio(self.dropouts as i64, self.at_start as i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Step;
    use crate::domain::event::facts;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn step(seq: u64, kind: TransitionKind, date: &str, status: Status, school: &str) -> Step {
        Step {
            seq,
            kind,
            date: d(date),
            facts: facts(status, school, 1, Some("1")),
        }
    }

    /// The outcomes of a cohort always add up to its base.
    #[test]
    fn cohort_flows_balance() {
        use Status::*;
        use TransitionKind as K;
        let t = |id: &str, steps: Vec<Step>| Timeline::new(id.into(), steps);
        let all = vec![
            // Stays and graduates.
            t(
                "a",
                vec![
                    step(1, K::Admit, "2024-09-01", Admitted, "s1"),
                    step(2, K::Register, "2024-09-02", Enrolled, "s1"),
                    step(3, K::Graduate, "2025-07-01", Graduated, "s1"),
                ],
            ),
            // Transfers out, then back in, then leaves the system.
            t(
                "b",
                vec![
                    step(1, K::Admit, "2024-09-01", Admitted, "s1"),
                    step(2, K::Register, "2024-09-02", Enrolled, "s1"),
                    step(3, K::Transfer, "2025-01-01", Enrolled, "s2"),
                    step(4, K::Transfer, "2025-02-01", Enrolled, "s1"),
                    step(5, K::TransferOut, "2025-03-01", TransferredOut, "s1"),
                ],
            ),
            // Enters elsewhere, transfers in, drops out.
            t(
                "c",
                vec![
                    step(1, K::Admit, "2024-09-01", Admitted, "s2"),
                    step(2, K::Register, "2024-09-02", Enrolled, "s2"),
                    step(3, K::Transfer, "2025-01-01", Enrolled, "s1"),
                    step(4, K::DropOut, "2025-10-01", DroppedOut, "s1"),
                ],
            ),
            // Never registers.
            t(
                "d",
                vec![
                    step(1, K::Admit, "2024-09-01", Admitted, "s1"),
                    step(
                        2,
                        K::ForfeitAdmission,
                        "2024-09-20",
                        AdmissionForfeited,
                        "s1",
                    ),
                ],
            ),
        ];
        let inside = |f: &EventFacts| f.school == "s1";
        let mut cohorts = BTreeMap::new();
        for tl in &all {
            trace_cohort(tl, &inside, d("2025-12-31"), &mut cohorts);
        }
        let c = cohorts.get(&2024).cloned().unwrap_or_default();
        assert_eq!((c.cohort, c.transfers_in, c.transfers_out), (2, 2, 2));
        assert_eq!((c.graduates, c.dropped_out, c.never_registered), (1, 1, 1));
        let outcomes =
            c.graduates + c.completed + c.attended + c.in_school + c.dropped_out + c.left_other;
        assert_eq!(
            outcomes as i64,
            c.cohort as i64 + c.transfers_in as i64 - c.transfers_out as i64
        );
        let mut tally = DropoutTally::new(d("2025-12-31"));
        for tl in &all {
            tally.add(tl, &inside);
        }
        let drop = tally.finish();
        assert_eq!((drop.students_at_start, drop.dropouts), (1, 1));
        assert_eq!(drop.school_year, "2025-2026");
    }

    #[test]
    fn school_years_start_in_september() {
        assert_eq!(school_year_start(d("2026-03-01")), d("2025-09-01"));
        assert_eq!(school_year_start(d("2026-09-01")), d("2026-09-01"));
    }
}
