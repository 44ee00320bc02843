//! The statistics counters kept at write time (see `domain::tally`): their key layout, how a
//! batch's changes are added, and reading them as of dates.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound::{Excluded, Included};

use super::kv::{ReadAhead, WriteTable, WriteTxn};
use super::records::each_timeline;
use super::tables::{SCHOOLS, SEP, STAT_CHANGES, STAT_TOTALS, TIMELINES, key, prefix_range};
use super::{Store, StoreError};
use crate::domain::tally::{Counter, Counts, DatedCounts, dated_changes};
use crate::domain::{Date, School, Status};

/// A counter as the last parts of a key: a one-letter kind, then its fields. An absent class or
/// cohort is an empty part (a class is never empty text).
pub(super) fn counter_key(c: &Counter) -> String {
    match c {
        Counter::Placed {
            school,
            status,
            grade,
            class,
            cohort,
        } => key(&[
            "p",
            school,
            status.as_str(),
            &grade.to_string(),
            class.as_deref().unwrap_or(""),
            &cohort.map(|y| y.to_string()).unwrap_or_default(),
        ]),
        Counter::Gained { cohort, school } => key(&["g", &cohort.to_string(), school]),
        Counter::Moved { cohort, from, to } => key(&["m", &cohort.to_string(), from, to]),
        Counter::LeftSystem { cohort, school } => key(&["x", &cohort.to_string(), school]),
        Counter::NeverRegistered { cohort, school } => key(&["n", &cohort.to_string(), school]),
        Counter::DroppedOut { year_start, school } => key(&["d", &year_start.to_string(), school]),
    }
}

fn parse_counter(parts: &[&str]) -> Option<Counter> {
    let year = |s: &str| s.parse::<i32>().ok();
    Some(match parts {
        ["p", school, status, grade, class, cohort] => Counter::Placed {
            school: (*school).to_owned(),
            status: status.parse::<Status>().ok()?,
            grade: grade.parse().ok()?,
            class: (!class.is_empty()).then(|| (*class).to_owned()),
            cohort: if cohort.is_empty() {
                None
            } else {
                Some(year(cohort)?)
            },
        },
        ["g", cohort, school] => Counter::Gained {
            cohort: year(cohort)?,
            school: (*school).to_owned(),
        },
        ["m", cohort, from, to] => Counter::Moved {
            cohort: year(cohort)?,
            from: (*from).to_owned(),
            to: (*to).to_owned(),
        },
        ["x", cohort, school] => Counter::LeftSystem {
            cohort: year(cohort)?,
            school: (*school).to_owned(),
        },
        ["n", cohort, school] => Counter::NeverRegistered {
            cohort: year(cohort)?,
            school: (*school).to_owned(),
        },
        ["d", year_start, school] => Counter::DroppedOut {
            year_start: Date::parse(year_start).ok()?,
            school: (*school).to_owned(),
        },
        _ => return None,
    })
}

fn undecodable(k: &str) -> StoreError {
    StoreError::Storage(format!(
        "undecodable statistics counter {}",
        k.replace(SEP, "/")
    ))
}

fn value(bytes: &[u8], k: &str) -> Result<i64, StoreError> {
    bytes
        .try_into()
        .map(i64::from_le_bytes)
        .map_err(|_| undecodable(k))
}

/// A `STAT_TOTALS` entry: the counter after the jurisdiction.
pub(super) fn decode_total(k: &str, v: &[u8]) -> Result<(Counter, i64), StoreError> {
    let parts: Vec<&str> = k.split(SEP).collect();
    let c = parts
        .get(1..)
        .and_then(parse_counter)
        .ok_or_else(|| undecodable(k))?;
    Ok((c, value(v, k)?))
}

/// A `STAT_CHANGES` entry: the date, then the counter, after the jurisdiction.
pub(super) fn decode_change(k: &str, v: &[u8]) -> Result<(Date, Counter, i64), StoreError> {
    let parts: Vec<&str> = k.split(SEP).collect();
    let date = parts.get(1).and_then(|d| Date::parse(d).ok());
    let c = parts.get(2..).and_then(parse_counter);
    match (date, c) {
        (Some(d), Some(c)) => Ok((d, c, value(v, k)?)),
        _ => Err(undecodable(k)),
    }
}

/// Adds `delta` to a stored sum, removing it when it comes to zero.
fn add(table: &mut (impl WriteTable + ?Sized), k: &str, delta: i64) -> Result<(), StoreError> {
    let current = match table.get(k)? {
        Some(g) => value(g.as_slice(), k)?,
        None => 0,
    };
    let sum = current.saturating_add(delta);
    if sum == 0 {
        table.remove(k)?;
    } else {
        table.insert(k, sum.to_le_bytes().as_slice())?;
    }
    Ok(())
}

/// Adds the changes of every student of a batch (by jurisdiction) to the stored sums, one
/// update per counter and date however many students share it; the counters are read ahead
/// together first (`WriteTxn::read_ahead`).
pub(super) fn add_changes(
    txn: &dyn WriteTxn,
    totals: &mut (impl WriteTable + ?Sized),
    changes: &mut (impl WriteTable + ?Sized),
    pending: &HashMap<String, DatedCounts>,
) -> Result<(), StoreError> {
    let mut change_sums: BTreeMap<String, i64> = BTreeMap::new();
    let mut total_sums: BTreeMap<String, i64> = BTreeMap::new();
    for (jur, dated) in pending {
        for ((date, c), n) in dated {
            if *n == 0 {
                continue;
            }
            let (change, total) = counter_keys(jur, *date, c);
            *change_sums.entry(change).or_default() += n;
            *total_sums.entry(total).or_default() += n;
        }
    }
    change_sums.retain(|_, n| *n != 0);
    total_sums.retain(|_, n| *n != 0);
    txn.read_ahead(&ReadAhead::from([
        (STAT_CHANGES, change_sums.keys().cloned().collect()),
        (STAT_TOTALS, total_sums.keys().cloned().collect()),
    ]))?;
    for (k, n) in change_sums {
        add(changes, &k, n)?;
    }
    for (k, n) in total_sums {
        add(totals, &k, n)?;
    }
    Ok(())
}

/// The keys of a counter's change on `date` and of its total, in jurisdiction `jur`.
fn counter_keys(jur: &str, date: Date, c: &Counter) -> (String, String) {
    let ck = counter_key(c);
    (key(&[jur, &date.to_string(), &ck]), key(&[jur, &ck]))
}

/// The counters that `dated` (one event's changes, counted in `jur`) will add to: the batch
/// reads them ahead with its other keys, before [`add_changes`] asks for them.
pub(super) fn counters_read(jur: &str, dated: &DatedCounts, keys: &mut ReadAhead) {
    for ((date, c), n) in dated {
        if *n != 0 {
            let (change, total) = counter_keys(jur, *date, c);
            keys.entry(STAT_CHANGES).or_default().insert(change);
            keys.entry(STAT_TOTALS).or_default().insert(total);
        }
    }
}

/// Adds one student's changes to a batch's pending sums.
pub(super) fn merge_into(
    pending: &mut HashMap<String, DatedCounts>,
    jur: &str,
    dated: &DatedCounts,
) {
    if dated.is_empty() {
        return;
    }
    let sums = pending.entry(jur.to_owned()).or_default();
    for (k, n) in dated {
        *sums.entry(k.clone()).or_default() += n;
    }
}

impl Store {
    /// What the statistics counters of a jurisdiction stood at on each of `dates`, all from one
    /// snapshot: the totals, minus the changes dated after each date. Reads the jurisdiction's
    /// counters once, and the changes dated after the earliest of the dates.
    pub fn tallies_as_of(
        &self,
        jurisdiction: &str,
        dates: &[Date],
    ) -> Result<Vec<Counts>, StoreError> {
        let txn = self.backend.begin_read()?;
        let totals = txn.open_table(STAT_TOTALS)?;
        let changes = txn.open_table(STAT_CHANGES)?;
        let (start, end) = prefix_range(&[jurisdiction]);
        let mut now = Counts::new();
        for item in totals.range(Included(start.as_str()), Excluded(end.as_str()))? {
            let (k, v) = item?;
            let (c, n) = decode_total(k.as_str(), v.as_slice())?;
            now.insert(c, n);
        }
        let mut out = vec![now; dates.len()];
        let Some(earliest) = dates.iter().min() else {
            return Ok(out);
        };
        // Everything dated after the earliest date: the key after `jur␟date␟…`.
        let after = format!("{}{SEP}{earliest}\u{20}", jurisdiction);
        for item in changes.range(Included(after.as_str()), Excluded(end.as_str()))? {
            let (k, v) = item?;
            let (date, c, n) = decode_change(k.as_str(), v.as_slice())?;
            for (counts, as_of) in out.iter_mut().zip(dates) {
                if date > *as_of {
                    let e = counts.entry(c.clone()).or_default();
                    *e -= n;
                }
            }
        }
        for counts in &mut out {
            counts.retain(|_, n| *n != 0);
        }
        Ok(out)
    }

    /// Every jurisdiction's counters as stored and as the timelines say they should be, from one
    /// snapshot: what `verify` compares. One pass over every timeline; each counter is owed to
    /// the jurisdiction of the school it names (both, for a move between two jurisdictions),
    /// which is the student's own unless they were transferred from another jurisdiction.
    pub fn tallies_to_check(&self) -> Result<BTreeMap<String, TallyCheck>, StoreError> {
        let txn = self.backend.begin_read()?;
        let mut checks: BTreeMap<String, TallyCheck> = BTreeMap::new();
        for item in txn.open_table(STAT_TOTALS)?.iter()? {
            let (k, v) = item?;
            let (jur, _) = k.as_str().split_once(SEP).unwrap_or_default();
            let (c, n) = decode_total(k.as_str(), v.as_slice())?;
            checks
                .entry(jur.to_owned())
                .or_default()
                .stored_totals
                .insert(c, n);
        }
        for item in txn.open_table(STAT_CHANGES)?.iter()? {
            let (k, v) = item?;
            let (jur, _) = k.as_str().split_once(SEP).unwrap_or_default();
            let (d, c, n) = decode_change(k.as_str(), v.as_slice())?;
            checks
                .entry(jur.to_owned())
                .or_default()
                .stored_changes
                .insert((d, c), n);
        }
        let mut school_jurisdiction: HashMap<String, String> = HashMap::new();
        for item in txn.open_table(SCHOOLS)?.iter()? {
            let (k, v) = item?;
            if let Ok(school) = super::decode::<School>(v.as_slice()) {
                school_jurisdiction.insert(k.as_str().to_owned(), school.jurisdiction);
            }
        }
        each_timeline(&*txn.open_table(TIMELINES)?, None, |home, t| {
            for (k, n) in dated_changes(&t) {
                let mut owners: Vec<&str> = Vec::with_capacity(2);
                for school in k.1.schools() {
                    let jur = school_jurisdiction.get(school).map_or(home, String::as_str);
                    if !owners.contains(&jur) {
                        owners.push(jur);
                    }
                }
                for jur in owners {
                    *checks
                        .entry(jur.to_owned())
                        .or_default()
                        .replayed_changes
                        .entry(k.clone())
                        .or_default() += n;
                }
            }
            Ok(())
        })?;
        for check in checks.values_mut() {
            check.replayed_changes.retain(|_, n| *n != 0);
        }
        Ok(checks)
    }
}

/// See [`Store::tallies_to_check`].
#[derive(Debug, Default)]
pub struct TallyCheck {
    pub stored_totals: Counts,
    pub stored_changes: DatedCounts,
    /// Every student's dated changes, summed.
    pub replayed_changes: DatedCounts,
}
