//! Calendar dates and the one rule every policy uses for durations (两周, 三个月, 一年).
//!
//! The rule, as written in `docs/design.md`:
//! - `add_days(d, n)` and `add_weeks(d, n)` count calendar days (一周 = 7 days).
//! - `add_months(d, n)` moves to the same day `n` months later; when that month is shorter the
//!   date is clamped to its last day (2026-01-31 + 1 month = 2026-02-28; in 2028, 2028-02-29).
//! - `add_years(d, n)` = `add_months(d, 12 n)`, so 2028-02-29 + 1 year = 2029-02-28.
//! - "within N after D" means up to and including `D + N`; the right lapses on the day after.

use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use super::error::FieldError;

/// The zone "today" is taken in unless the service is configured otherwise (`serve --tz`).
pub const DEFAULT_TIME_ZONE: chrono_tz::Tz = chrono_tz::Asia::Shanghai;

/// A calendar date, written `YYYY-MM-DD` everywhere (JSON, policies, CSV).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(NaiveDate);

impl Date {
    pub fn from_ymd(y: i32, m: u32, d: u32) -> Option<Date> {
        NaiveDate::from_ymd_opt(y, m, d).map(Date)
    }

    /// Parses `YYYY-MM-DD` strictly: exactly ten characters, a real calendar day.
    pub fn parse(s: &str) -> Result<Date, String> {
        let b = s.as_bytes();
        let shape_ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape_ok {
            return Err(format!("日期「{s}」格式应为 YYYY-MM-DD"));
        }
        // The shape is checked, so the digits are read directly (chrono's format parser costs
        // more than the rest of a date's decoding).
        let num =
            |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0'));
        NaiveDate::from_ymd_opt(num(0..4) as i32, num(5..7), num(8..10))
            .map(Date)
            .ok_or_else(|| format!("日期「{s}」不存在"))
    }

    /// Parses a date field of an input, reporting `invalid_date` on that field.
    pub fn parse_field(s: &str, field: &str) -> Result<Date, FieldError> {
        Date::parse(s).map_err(|m| FieldError::new("invalid_date", field, m))
    }

    /// Today in the default time zone ([`DEFAULT_TIME_ZONE`]); a service configured with
    /// another zone asks [`Date::today_in`].
    pub fn today() -> Date {
        Date::today_in(DEFAULT_TIME_ZONE)
    }

    /// Today's date on a wall clock in `zone`: a school's day starts at its local midnight, not
    /// at UTC's (eight hours later in China).
    pub fn today_in(zone: chrono_tz::Tz) -> Date {
        Date(chrono::Utc::now().with_timezone(&zone).date_naive())
    }

    pub fn year(self) -> i32 {
        self.0.year()
    }

    pub fn naive(self) -> NaiveDate {
        self.0
    }

    /// `None` when the result is not a date chrono can hold, however large `n` is (a policy can
    /// pass any integer; `Duration::days` would panic past ±2^63 ms).
    pub fn add_days(self, n: i64) -> Option<Date> {
        self.0
            .checked_add_signed(chrono::Duration::try_days(n)?)
            .map(Date)
    }

    pub fn add_weeks(self, n: i64) -> Option<Date> {
        self.add_days(n.checked_mul(7)?)
    }

    pub fn add_months(self, n: i64) -> Option<Date> {
        let months = Months::new(u32::try_from(n.unsigned_abs()).ok()?);
        if n >= 0 {
            self.0.checked_add_months(months)
        } else {
            self.0.checked_sub_months(months)
        }
        .map(Date)
    }

    pub fn add_years(self, n: i64) -> Option<Date> {
        self.add_months(n.checked_mul(12)?)
    }

    /// Whole days from `self` to `later` (negative when `later` is earlier).
    pub fn days_until(self, later: Date) -> i64 {
        (later.0 - self.0).num_days()
    }
}

impl Date {
    /// The date's `YYYY-MM-DD` text, made without allocating: decisions, event hashes and JSON
    /// write several dates each, and through `format!` each cost a fifth of a microsecond.
    pub fn text(self) -> DateText {
        let (y, m, d) = (self.0.year(), self.0.month(), self.0.day());
        match u32::try_from(y) {
            // Event hashes cover this text: it must stay chrono's `%Y-%m-%d`, which for years
            // 0..=9999 is the zero-padded numbers below.
            Ok(y) if y <= 9999 => {
                let mut b = *b"0000-00-00";
                for (at, value, width) in [(0, y, 4), (5, m, 2), (8, d, 2)] {
                    let mut v = value;
                    for i in (at..at + width).rev() {
                        // `v % 10` is below 10: the cast keeps it whole.
                        b[i] = b'0' + (v % 10) as u8;
                        v /= 10;
                    }
                }
                DateText::Short(b)
            }
            _ => DateText::Long(self.0.format("%Y-%m-%d").to_string()),
        }
    }
}

/// The text of a [`Date`] ([`Date::text`]).
pub enum DateText {
    /// Years 0..=9999: ten ASCII bytes.
    Short([u8; 10]),
    Long(String),
}

impl std::ops::Deref for DateText {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            // Only ASCII digits and dashes are ever written into it.
            DateText::Short(b) => std::str::from_utf8(b).unwrap_or_default(),
            DateText::Long(s) => s,
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Date::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).expect("test date")
    }

    #[test]
    fn month_end_is_clamped() {
        assert_eq!(d("2026-01-31").add_months(1), Some(d("2026-02-28")));
        assert_eq!(d("2028-01-31").add_months(1), Some(d("2028-02-29")));
        assert_eq!(d("2026-03-31").add_months(-1), Some(d("2026-02-28")));
        assert_eq!(d("2026-08-31").add_months(3), Some(d("2026-11-30")));
    }

    #[test]
    fn leap_day_plus_a_year_is_feb_28() {
        assert_eq!(d("2028-02-29").add_years(1), Some(d("2029-02-28")));
        assert_eq!(d("2028-02-29").add_years(4), Some(d("2032-02-29")));
    }

    #[test]
    fn two_weeks_is_fourteen_days_across_month_and_year_ends() {
        assert_eq!(d("2026-12-25").add_weeks(2), Some(d("2027-01-08")));
        assert_eq!(d("2028-02-20").add_weeks(2), Some(d("2028-03-05")));
    }

    #[test]
    fn strict_parsing() {
        assert!(Date::parse("2026-02-29").is_err());
        assert!(Date::parse("2026-2-1").is_err());
        assert!(Date::parse("2026/02/01").is_err());
        assert!(Date::parse("２０２６-02-01").is_err());
        assert_eq!(d("2024-02-29").to_string(), "2024-02-29");
        assert_eq!(d("2026-01-01").days_until(d("2026-03-01")), 59);
    }

    proptest::proptest! {
        /// The hand-written text and parsing agree with chrono's `%Y-%m-%d` for every day.
        #[test]
        fn text_is_chronos_format(days in -800_000i32..4_000_000) {
            let day = NaiveDate::from_num_days_from_ce_opt(days).expect("in chrono's range");
            let text = Date(day).to_string();
            proptest::prop_assert_eq!(&text, &day.format("%Y-%m-%d").to_string());
            if text.len() == 10 {
                proptest::prop_assert_eq!(Date::parse(&text), Ok(Date(day)));
            }
        }
    }
}
