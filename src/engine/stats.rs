//! Statistics of a school or a jurisdiction (optionally one area of it) as of a date, from the
//! counters the store keeps at write time (`domain::tally` says what each student counts for;
//! see `docs/exchange.md` for every definition).
//!
//! - Counts: every student whose placement on the date (from their history) is at a school in
//!   scope, by status; those holding 学籍 (enrolled, suspended, dropped out) by grade and by class.
//! - 巩固率 of each entry cohort (entry year = year of the admission's effective date):
//!   `graduates ÷ (cohort + transfers_in − transfers_out)`, where `cohort` counts students who
//!   gained 学籍 at a school in scope, `transfers_in`/`transfers_out` count `transfer` events
//!   crossing the scope's boundary (and `transfer_out` 转出至系统外 from inside it), and
//!   `graduates` counts students whose placement on the date is 毕业 at a school in scope. While
//!   students of the cohort are still at school the rate is provisional (`finished: false`);
//!   `retained` = graduates + still at school, `retained_rate` = retained ÷ base.
//! - 辍学率 of the school year (starting 09-01) containing the date: students who dropped out in
//!   the year up to the date (once per student and school) ÷ students at school (enrolled or
//!   suspended) at its start.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

use crate::domain::tally::{Counter, Counts as Tallies, school_year_start};
use crate::domain::{Date, Level, School, Status};
use crate::engine::{Result, Xueji};

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
    fn add(&mut self, status: Status, n: usize) {
        self.with_xueji += n;
        match status {
            Status::Enrolled => self.enrolled += n,
            Status::Suspended => self.suspended += n,
            _ => self.dropped_out += n,
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

impl Stats {
    /// Nothing counted yet, for the scope and date.
    fn empty(
        school: Option<String>,
        jurisdiction: String,
        area: Option<String>,
        as_of: Date,
    ) -> Stats {
        let year_start = school_year_start(as_of);
        Stats {
            school,
            jurisdiction,
            area,
            as_of,
            students: 0,
            with_xueji: 0,
            in_school: 0,
            by_status: BTreeMap::new(),
            by_grade: Vec::new(),
            by_class: Vec::new(),
            cohorts: Vec::new(),
            dropout: Dropout {
                school_year: format!("{}-{}", year_start.year(), year_start.year() + 1),
                from: year_start,
                to: as_of,
                students_at_start: 0,
                dropouts: 0,
                rate: None,
            },
        }
    }
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
    let levels: HashMap<String, Level> = store
        .schools()?
        .into_iter()
        .filter(|s| {
            s.jurisdiction == jurisdiction
                && school_id.as_ref().is_none_or(|id| &s.id == id)
                && area.as_ref().is_none_or(|a| s.area.as_ref() == Some(a))
        })
        .map(|s| (s.id, s.level))
        .collect();
    let year_start = school_year_start(as_of);
    let mut read = store
        .tallies_as_of(&jurisdiction, &[as_of, year_start])?
        .into_iter();
    let (on_date, at_year_start) = (
        read.next().unwrap_or_default(),
        read.next().unwrap_or_default(),
    );
    Ok(figures(
        Stats::empty(school_id, jurisdiction, area, as_of),
        &levels,
        on_date,
        at_year_start,
    ))
}

/// The figures of the schools in `levels`, from the counters on the date and at the start of
/// its school year.
fn figures(
    mut out: Stats,
    levels: &HashMap<String, Level>,
    on_date: Tallies,
    at_year_start: Tallies,
) -> Stats {
    let year_start = out.dropout.from;
    let inside = |school: &str| levels.contains_key(school);
    // Keyed by the level's declaration order (primary first), then grade.
    let mut grades: BTreeMap<(u8, u8), (Level, Counts)> = BTreeMap::new();
    let mut classes: BTreeMap<(String, u8, Option<String>), Counts> = BTreeMap::new();
    let mut cohorts: BTreeMap<i32, Cohort> = BTreeMap::new();
    for (counter, n) in on_date {
        // A negative sum is a damaged store, which `verify` reports; it counts as none here.
        let n = usize::try_from(n).unwrap_or(0);
        match counter {
            Counter::Placed {
                school,
                status,
                grade,
                class,
                cohort,
            } if inside(&school) => {
                out.students += n;
                *out.by_status.entry(status).or_default() += n;
                if status.has_xueji() {
                    let level = levels.get(&school).copied().unwrap_or(Level::Primary);
                    grades
                        .entry((level as u8, grade))
                        .or_insert_with(|| (level, Counts::default()))
                        .1
                        .add(status, n);
                    classes
                        .entry((school, grade, class))
                        .or_default()
                        .add(status, n);
                }
                if let Some(year) = cohort {
                    let c = cohort_of(&mut cohorts, year);
                    match status {
                        Status::Graduated => c.graduates += n,
                        Status::Completed => c.completed += n,
                        Status::Attended => c.attended += n,
                        Status::Enrolled | Status::Suspended => c.in_school += n,
                        Status::DroppedOut => c.dropped_out += n,
                        Status::TransferredOut => {}
                        _ => c.left_other += n,
                    }
                }
            }
            Counter::Gained { cohort, school } if inside(&school) => {
                cohort_of(&mut cohorts, cohort).cohort += n;
            }
            Counter::Moved { cohort, from, to } => match (inside(&from), inside(&to)) {
                (false, true) => cohort_of(&mut cohorts, cohort).transfers_in += n,
                (true, false) => cohort_of(&mut cohorts, cohort).transfers_out += n,
                _ => {}
            },
            Counter::LeftSystem { cohort, school } if inside(&school) => {
                cohort_of(&mut cohorts, cohort).transfers_out += n;
            }
            Counter::NeverRegistered { cohort, school } if inside(&school) => {
                cohort_of(&mut cohorts, cohort).never_registered += n;
            }
            Counter::DroppedOut {
                year_start: year,
                school,
            } if year == year_start && inside(&school) => out.dropout.dropouts += n,
            _ => {}
        }
    }
    out.dropout.students_at_start = at_year_start
        .into_iter()
        .filter_map(|(c, n)| match c {
            Counter::Placed { school, status, .. }
                if inside(&school) && matches!(status, Status::Enrolled | Status::Suspended) =>
            {
                usize::try_from(n).ok()
            }
            _ => None,
        })
        .sum();
    out.dropout.rate = ratio(
        out.dropout.dropouts as i64,
        out.dropout.students_at_start as i64,
    );
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
    out
}

fn cohort_of(cohorts: &mut BTreeMap<i32, Cohort>, entry_year: i32) -> &mut Cohort {
    cohorts.entry(entry_year).or_insert_with(|| Cohort {
        entry_year,
        ..Cohort::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::facts;
    use crate::domain::tally::contribution;
    use crate::domain::{Step, Timeline, TransitionKind};

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

    fn tallies(all: &[Timeline], date: Date) -> Tallies {
        let mut out = Tallies::new();
        for t in all {
            for c in contribution(t, date) {
                *out.entry(c).or_default() += 1;
            }
        }
        out
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
        let as_of = d("2025-12-31");
        let from = school_year_start(as_of);
        let levels: HashMap<String, Level> = [("s1".to_owned(), Level::Primary)].into();
        let blank = Stats::empty(Some("s1".into()), "j".into(), None, as_of);
        let st = figures(blank, &levels, tallies(&all, as_of), tallies(&all, from));
        let c = st.cohorts.first().cloned().unwrap_or_default();
        assert_eq!(c.entry_year, 2024);
        assert_eq!((c.cohort, c.transfers_in, c.transfers_out), (2, 2, 2));
        assert_eq!((c.graduates, c.dropped_out, c.never_registered), (1, 1, 1));
        let outcomes =
            c.graduates + c.completed + c.attended + c.in_school + c.dropped_out + c.left_other;
        assert_eq!(
            outcomes as i64,
            c.cohort as i64 + c.transfers_in as i64 - c.transfers_out as i64
        );
        // Placed at s1 on the date: a (graduated), b (transferred out), c (dropped out), d.
        assert_eq!(st.students, 4);
        assert_eq!((st.with_xueji, st.in_school), (1, 0));
        assert_eq!((st.dropout.students_at_start, st.dropout.dropouts), (1, 1));
        assert_eq!(st.dropout.rate, Some(1.0));
    }
}
