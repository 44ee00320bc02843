//! Working days (工作日) as the national calendar has them: Monday to Friday, less the national
//! holidays, plus the official make-up working days (调休上班), from the dated table
//! `holidays.toml` beside this file (each year with the State Council General Office notice that
//! set it). Approval clocks count in these days (`domain::clock`).
//!
//! Outside the years the table covers, Monday to Friday count and the answer is marked an
//! estimate: holidays only ever add days off net of their make-up days, so an estimated due date
//! is never later than the true one (a step may be listed overdue early, never late).

use chrono::{Datelike, Weekday};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use super::Date;

/// The national holiday table, embedded at build time.
pub const TABLE: &str = include_str!("holidays.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    year: Vec<YearEntry>,
}

/// One covered year and the notice that set it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YearEntry {
    pub year: i32,
    /// 文号, when the text read carried it.
    #[serde(default)]
    pub notice: Option<String>,
    pub title: String,
    pub issued: Date,
    pub holidays: Vec<Holiday>,
    pub workdays: Vec<Date>,
}

/// A holiday's days off, both ends included.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    pub name: String,
    pub from: Date,
    pub to: Date,
}

/// A working-day calendar: which years it covers, their days off and make-up working days.
#[derive(Debug, Clone, Default)]
pub struct WorkCalendar {
    years: BTreeMap<i32, YearEntry>,
    days_off: BTreeSet<Date>,
    make_up: BTreeSet<Date>,
}

/// A date some working days after another, and whether any day counted lay outside the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub date: Date,
    pub estimated: bool,
}

/// Why a table does not load: the text, and where it is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError(pub String);

impl WorkCalendar {
    /// The national calendar of [`TABLE`]. The table is checked by the unit tests below, so an
    /// edit that breaks it fails the build's tests; should it still not load, no year is covered
    /// and every answer is an estimate.
    pub fn national() -> &'static WorkCalendar {
        static NATIONAL: LazyLock<WorkCalendar> =
            LazyLock::new(|| WorkCalendar::parse(TABLE).unwrap_or_default());
        &NATIONAL
    }

    /// Reads a table: each year once, each holiday and make-up day inside its year, a make-up day
    /// never inside a holiday.
    pub fn parse(text: &str) -> Result<WorkCalendar, TableError> {
        let file: TableFile = toml::from_str(text).map_err(|e| TableError(e.to_string()))?;
        let mut cal = WorkCalendar::default();
        for y in file.year {
            let inside = |d: Date| d.year() == y.year;
            for h in &y.holidays {
                if !inside(h.from) || !inside(h.to) || h.from > h.to {
                    return Err(TableError(format!("{} {}: 日期不在该年内", y.year, h.name)));
                }
                let mut d = h.from;
                loop {
                    cal.days_off.insert(d);
                    if d >= h.to {
                        break;
                    }
                    d = d
                        .add_days(1)
                        .ok_or_else(|| TableError(format!("{} {}: 日期无效", y.year, h.name)))?;
                }
            }
            for w in &y.workdays {
                if !inside(*w) || cal.days_off.contains(w) {
                    return Err(TableError(format!("{} 调休上班日 {w} 无效", y.year)));
                }
                cal.make_up.insert(*w);
            }
            let year = y.year;
            if cal.years.insert(year, y).is_some() {
                return Err(TableError(format!("{year} 年重复")));
            }
        }
        Ok(cal)
    }

    /// The years the table covers, each with its notice.
    pub fn years(&self) -> impl Iterator<Item = &YearEntry> {
        self.years.values()
    }

    pub fn covers(&self, d: Date) -> bool {
        self.years.contains_key(&d.year())
    }

    /// Whether `d` is a working day (outside the covered years: Monday to Friday).
    pub fn is_working_day(&self, d: Date) -> bool {
        if self.make_up.contains(&d) {
            return true;
        }
        if self.days_off.contains(&d) {
            return false;
        }
        !matches!(d.naive().weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The `n`th working day after `start` (`start` itself does not count: a step opened on a
    /// Friday with one working day is due the next working day). `None` past chrono's range.
    pub fn add_working_days(&self, start: Date, n: u32) -> Option<Counted> {
        let mut date = start;
        let mut left = n;
        let mut estimated = false;
        while left > 0 {
            date = date.add_days(1)?;
            estimated |= !self.covers(date);
            if self.is_working_day(date) {
                left -= 1;
            }
        }
        Some(Counted { date, estimated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_embedded_table_loads_and_cites_every_year() {
        let cal = WorkCalendar::parse(TABLE).unwrap_or_else(|e| panic!("{e:?}"));
        let years: Vec<i32> = cal.years().map(|y| y.year).collect();
        assert_eq!(years, [2024, 2025, 2026]);
        for y in cal.years() {
            assert!(y.title.starts_with("国务院办公厅关于"), "{}", y.year);
            assert!(y.issued.year() == y.year - 1, "{}", y.year);
        }
        assert_eq!(
            cal.years().next().and_then(|y| y.notice.as_deref()),
            Some("国办发明电〔2023〕7号")
        );
    }

    #[test]
    fn holidays_are_off_and_make_up_days_are_working() {
        let cal = WorkCalendar::national();
        // 2024 国庆: 10-01..07 off; Sunday 09-29 and Saturday 10-12 worked.
        assert!(!cal.is_working_day(d("2024-10-01")));
        assert!(!cal.is_working_day(d("2024-10-07")));
        assert!(cal.is_working_day(d("2024-10-08")));
        assert!(cal.is_working_day(d("2024-09-29")));
        assert!(cal.is_working_day(d("2024-10-12")));
        assert!(!cal.is_working_day(d("2024-10-13")));
        // An ordinary weekend and weekday.
        assert!(!cal.is_working_day(d("2024-11-02")));
        assert!(cal.is_working_day(d("2024-11-04")));
    }

    #[test]
    fn ten_working_days_across_the_2024_national_day_week() {
        // Opened Friday 2024-09-27: 09-29 (调休), 09-30, then 10-08..10-11, 10-12 (调休),
        // 10-14, 10-15, 10-16.
        let due = WorkCalendar::national().add_working_days(d("2024-09-27"), 10);
        assert_eq!(
            due,
            Some(Counted {
                date: d("2024-10-16"),
                estimated: false
            })
        );
        // Without the table the same count ends earlier, and says it is an estimate.
        let plain = WorkCalendar::default().add_working_days(d("2024-09-27"), 10);
        assert_eq!(
            plain,
            Some(Counted {
                date: d("2024-10-11"),
                estimated: true
            })
        );
    }

    #[test]
    fn the_spring_festival_week_of_2025_and_its_make_up_days() {
        // Opened Friday 2025-01-24: 01-26 (Sunday, 调休), 01-27, then 02-05..02-07, 02-08
        // (Saturday, 调休), 02-10.
        let due = WorkCalendar::national().add_working_days(d("2025-01-24"), 7);
        assert_eq!(due.map(|c| c.date), Some(d("2025-02-10")));
    }

    #[test]
    fn outside_the_table_weekdays_count_and_the_answer_is_an_estimate() {
        let cal = WorkCalendar::national();
        // 2027 is not covered: Friday 2027-01-01 is counted as a working day.
        let c = cal.add_working_days(d("2026-12-30"), 3);
        assert_eq!(
            c,
            Some(Counted {
                date: d("2027-01-04"),
                estimated: true
            })
        );
        assert!(!cal.covers(d("2023-06-01")));
    }

    #[test]
    fn a_table_with_a_make_up_day_inside_a_holiday_is_refused() {
        let bad = r#"
[[year]]
year = 2024
title = "国务院办公厅关于2024年部分节假日安排的通知"
issued = "2023-10-25"
holidays = [{ name = "国庆节", from = "2024-10-01", to = "2024-10-07" }]
workdays = ["2024-10-03"]
"#;
        assert!(WorkCalendar::parse(bad).is_err());
        let outside = bad.replace("\"2024-10-03\"", "\"2025-10-03\"");
        assert!(WorkCalendar::parse(&outside).is_err());
    }
}
