//! Which jurisdiction a key belongs to, and which keys a range can reach.
//!
//! Every PostgreSQL table's primary key is `(jurisdiction, k)`. For the tables whose keys lead
//! with the jurisdiction (`store::tables`: students, their history, the class, status, deadline,
//! request-status and school-member indexes, policy versions, Merkle logs, statistics) the column
//! holds the key up to its first control character: the jurisdiction, which the separator U+001F
//! ends in every real key. The national tables (meta, schools, the student locator, the
//! national-number, ID-card and person indexes, requests and their open index, tokens and token
//! ids, idempotency, batches and their items, used certificates, problems and their open index)
//! hold `''`.
//!
//! Ending the jurisdiction at any control character (U+0000–U+001F), not only U+001F, makes
//! `(jurisdiction, k)` sort exactly as `k` does for every string: a jurisdiction has no control
//! character, and the keys of jurisdiction `J` are `J` and `J` followed by a control character,
//! which is the interval `[J, J + " ")` of keys. So a range across jurisdictions is a range of
//! the primary key too, compared as a row.

use std::ops::Bound;

use super::super::kv::Table;

/// Whether the keys of `table` lead with the jurisdiction.
fn leads_with_jurisdiction(table: Table) -> bool {
    matches!(
        table.name(),
        "students"
            | "event_records"
            | "timeline_steps"
            | "idx_class"
            | "idx_status"
            | "idx_deadline"
            | "idx_request_status"
            | "policy_versions"
            | "log_leaves"
            | "log_heads"
            | "idx_school_members"
            | "stat_totals"
            | "stat_changes"
    )
}

/// The jurisdiction column of `key` in `table`.
pub(super) fn jurisdiction(table: Table, key: &str) -> &str {
    if !leads_with_jurisdiction(table) {
        return "";
    }
    let end = key.find(|c: char| c < ' ').unwrap_or(key.len());
    &key[..end]
}

/// The jurisdiction every key of a range belongs to, when there is one: the range is then read
/// with `jurisdiction = …` (one jurisdiction's part of the primary key), otherwise across.
pub(super) fn only_jurisdiction<'k>(
    table: Table,
    start: Bound<&'k str>,
    end: Bound<&str>,
) -> Option<&'k str> {
    if !leads_with_jurisdiction(table) {
        return Some("");
    }
    let (Bound::Included(start) | Bound::Excluded(start)) = start else {
        return None;
    };
    let first = jurisdiction(table, start);
    // The keys of `first` are the interval [first, first + " "), and `start` is in it.
    let past = format!("{first} ");
    let within = match end {
        Bound::Included(end) => end < past.as_str(),
        Bound::Excluded(end) => end <= past.as_str(),
        Bound::Unbounded => false,
    };
    within.then_some(first)
}

/// A bound PostgreSQL can compare: text there holds no NUL, so no stored key does, and a bound
/// `p␀…` (the store starts a page past its cursor key `p` at `p␀`) falls between `p` and the
/// keys that extend it. As a lower bound it is `> p`, as an upper one `<= p`.
pub(super) fn without_nul(bound: Bound<&str>, lower: bool) -> Bound<String> {
    let (Bound::Included(key) | Bound::Excluded(key)) = bound else {
        return Bound::Unbounded;
    };
    match key.find('\0') {
        None => bound.map(str::to_owned),
        Some(nul) if lower => Bound::Excluded(key[..nul].to_owned()),
        Some(nul) => Bound::Included(key[..nul].to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STUDENTS: Table = Table::new("students");
    const TOKENS: Table = Table::new("tokens");

    fn bound(kind: u8, key: &str) -> Bound<&str> {
        match kind % 3 {
            0 => Bound::Included(key),
            1 => Bound::Excluded(key),
            _ => Bound::Unbounded,
        }
    }

    fn within(key: &str, start: Bound<&str>, end: Bound<&str>) -> bool {
        let above = match start {
            Bound::Included(s) => key >= s,
            Bound::Excluded(s) => key > s,
            Bound::Unbounded => true,
        };
        let below = match end {
            Bound::Included(e) => key <= e,
            Bound::Excluded(e) => key < e,
            Bound::Unbounded => true,
        };
        above && below
    }

    #[test]
    fn a_jurisdiction_is_the_key_up_to_its_first_separator_in_led_tables_only() {
        assert_eq!(jurisdiction(STUDENTS, "gd\u{1f}s1\u{1f}x"), "gd");
        assert_eq!(jurisdiction(STUDENTS, "gd"), "gd");
        assert_eq!(jurisdiction(STUDENTS, ""), "");
        assert_eq!(jurisdiction(TOKENS, "gd\u{1f}s1"), "");
    }

    #[test]
    fn a_prefix_range_of_one_jurisdiction_stays_in_it() {
        let (start, end) = crate::store::tables::prefix_range(&["gd"]);
        assert_eq!(
            only_jurisdiction(STUDENTS, Bound::Included(&start), Bound::Excluded(&end)),
            Some("gd")
        );
        let (start, end) = crate::store::tables::prefix_range(&["gd", "s1"]);
        assert_eq!(
            only_jurisdiction(STUDENTS, Bound::Included(&start), Bound::Excluded(&end)),
            Some("gd")
        );
        assert_eq!(
            only_jurisdiction(STUDENTS, Bound::Included("gd\u{1f}"), Bound::Unbounded),
            None
        );
        assert_eq!(
            only_jurisdiction(STUDENTS, Bound::Included("bj"), Bound::Excluded("gd")),
            None
        );
        assert_eq!(
            only_jurisdiction(TOKENS, Bound::Unbounded, Bound::Unbounded),
            Some("")
        );
    }

    proptest! {
        /// A bound with a NUL holds, of the keys PostgreSQL can store, exactly those it held.
        #[test]
        fn a_bound_without_its_nul_holds_the_same_keys(
            keys in proptest::collection::vec("[ab\u{1}]{0,4}", 1..12),
            start in "[ab\u{0}\u{1}]{0,4}",
            end in "[ab\u{0}\u{1}]{0,4}",
            kinds in (0u8..3, 0u8..3),
        ) {
            let (start, end) = (bound(kinds.0, &start), bound(kinds.1, &end));
            let lower = without_nul(start, true);
            let upper = without_nul(end, false);
            for key in &keys {
                prop_assert_eq!(
                    within(key, start, end),
                    within(key, lower.as_ref().map(String::as_str), upper.as_ref().map(String::as_str)),
                    "{:?} in {:?}..{:?}", key, start, end
                );
            }
        }

        /// The two facts the queries rest on, for any strings: a range given one jurisdiction
        /// holds no key of another, and the order of `(jurisdiction, k)` is the order of `k`.
        #[test]
        fn ranges_and_row_order_agree_with_the_keys(
            keys in proptest::collection::vec("[ab \u{1}\u{1f}]{0,4}", 1..12),
            start in "[ab \u{1}\u{1f}]{0,4}",
            end in "[ab \u{1}\u{1f}]{0,4}",
            kinds in (0u8..3, 0u8..3),
        ) {
            let (start, end) = (bound(kinds.0, &start), bound(kinds.1, &end));
            if let Some(only) = only_jurisdiction(STUDENTS, start, end) {
                for key in keys.iter().filter(|k| within(k, start, end)) {
                    prop_assert_eq!(jurisdiction(STUDENTS, key), only);
                }
            }
            for a in &keys {
                for b in &keys {
                    let rows = (jurisdiction(STUDENTS, a), a.as_str())
                        .cmp(&(jurisdiction(STUDENTS, b), b.as_str()));
                    prop_assert_eq!(rows, a.cmp(b));
                }
            }
        }
    }
}
