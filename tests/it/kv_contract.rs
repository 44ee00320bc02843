//! What every storage backend promises (`store::kv`), as test bodies that take the backend, run
//! here on a redb file and in `pg` on PostgreSQL.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use xueji::store::kv::{Backend, ReadAhead, ReadTable, Table};
use xueji::store::redb::RedbBackend;

/// A table whose keys lead with the jurisdiction, and a national one.
pub const STUDENTS: Table = Table::new("students");
pub const TOKENS: Table = Table::new("tokens");

pub type Model = BTreeMap<String, Vec<u8>>;

/// Keys of several jurisdictions, one a prefix of another (`gd`, `gdx`), one with a space
/// (sorting between `gd␟…` and `gdx`), and a bare jurisdiction (`gd`, as `log_heads` has).
const KEYS: &[&str] = &[
    "bj\u{1f}s1",
    "gd",
    "gd\u{1f}s1",
    "gd\u{1f}s1\u{1f}000000000001",
    "gd\u{1f}s10",
    "gd\u{1f}s2",
    "gd x",
    "gdx\u{1f}s1",
    "sh\u{1f}a",
];

/// Bounds: the keys above, what falls between them, the prefix range of `gd` and of `gd␟s1`
/// (`tables::prefix_range`: `…␟` to `… `), and where a page after the cursor `gd␟s1` starts
/// (`gd␟s1␀`, a bound no stored key can equal).
const BOUNDS: &[&str] = &[
    "",
    "a",
    "bj",
    "gd",
    "gd\u{1f}",
    "gd\u{1f}s1",
    "gd\u{1f}s1\u{0}",
    "gd\u{1f}s1\u{1f}",
    "gd\u{1f}s1 ",
    "gd\u{1f}s10",
    "gd\u{1f}s2",
    "gd\u{1f}zz",
    "gd ",
    "gd x",
    "gdx",
    "sh\u{1f}a",
    "zz",
];

fn bounds_of(kind: usize, key: &str) -> Bound<&str> {
    match kind {
        0 => Bound::Included(key),
        1 => Bound::Excluded(key),
        _ => Bound::Unbounded,
    }
}

/// Whether `key` is within the bounds.
pub fn within(key: &str, start: Bound<&str>, end: Bound<&str>) -> bool {
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

/// Whether the bounds are in order (an inverted range is not asked of every backend).
fn ordered(start: Bound<&str>, end: Bound<&str>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s <= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => s < e,
        _ => true,
    }
}

fn pairs(table: &dyn ReadTable, start: Bound<&str>, end: Bound<&str>) -> Vec<(String, Vec<u8>)> {
    table
        .range(start, end)
        .expect("range")
        .collect::<Result<_, _>>()
        .expect("range pairs")
}

/// Every read of `table` against `model`: gets of present and absent keys, the whole table, first,
/// last, length, and a range for every pair of bounds of every kind.
pub fn assert_reads(table: &dyn ReadTable, model: &Model, context: &str) {
    for key in KEYS.iter().chain(BOUNDS) {
        assert_eq!(
            table.get(key).expect("get"),
            model.get(*key).cloned(),
            "{context}: get {key:?}"
        );
    }
    assert_eq!(
        pairs(table, Bound::Unbounded, Bound::Unbounded),
        model.clone().into_iter().collect::<Vec<_>>(),
        "{context}: the whole table"
    );
    let iterated: Vec<_> = table
        .iter()
        .expect("iter")
        .collect::<Result<_, _>>()
        .expect("iter pairs");
    assert_eq!(iterated.len(), model.len(), "{context}: iter");
    let first = model.iter().next().map(|(k, v)| (k.clone(), v.clone()));
    let last = model
        .iter()
        .next_back()
        .map(|(k, v)| (k.clone(), v.clone()));
    assert_eq!(table.first().expect("first"), first, "{context}: first");
    assert_eq!(table.last().expect("last"), last, "{context}: last");
    assert_eq!(
        table.len().expect("len"),
        model.len() as u64,
        "{context}: len"
    );
    assert_eq!(
        table.is_empty().expect("is_empty"),
        model.is_empty(),
        "{context}: is_empty"
    );
    for start_key in BOUNDS {
        for end_key in BOUNDS {
            for start_kind in 0..3 {
                for end_kind in 0..3 {
                    let start = bounds_of(start_kind, start_key);
                    let end = bounds_of(end_kind, end_key);
                    if !ordered(start, end) {
                        continue;
                    }
                    let expected: Vec<_> = model
                        .iter()
                        .filter(|(k, _)| within(k, start, end))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    assert_eq!(
                        pairs(table, start, end),
                        expected,
                        "{context}: range {start:?}..{end:?}"
                    );
                }
            }
        }
    }
}

fn value(key: &str, version: u8) -> Vec<u8> {
    let mut v = key.as_bytes().to_vec();
    v.push(version);
    v
}

/// The contract on an empty backend: reads of an empty table, a write transaction's reads of its
/// own writes (over two tables open at once), ranges of every kind in a snapshot, a snapshot
/// taken before a commit not seeing it, removal answering the old value, a dropped write
/// transaction leaving nothing, and emptying a table.
pub fn kv_contract(backend: &dyn Backend) {
    let empty = Model::new();
    {
        let read = backend.begin_read().expect("begin_read");
        assert_reads(&*read.open_table(STUDENTS).expect("open"), &empty, "empty");
    }

    let mut students = Model::new();
    let mut tokens = Model::new();
    {
        let write = backend.begin_write().expect("begin_write");
        let mut s = write.open_table(STUDENTS).expect("open students");
        let mut t = write.open_table(TOKENS).expect("open tokens");
        for key in KEYS {
            s.insert(key, &value(key, 1)).expect("insert");
            students.insert(key.to_string(), value(key, 1));
            assert_reads(&*s, &students, &format!("writing, after {key:?}"));
        }
        for key in ["t1", "t2", "gd\u{1f}t3"] {
            t.insert(key, &value(key, 1)).expect("insert");
            tokens.insert(key.to_string(), value(key, 1));
        }
        assert_reads(&*t, &tokens, "writing tokens");
        drop((s, t));
        write.commit().expect("commit");
    }
    {
        let read = backend.begin_read().expect("begin_read");
        assert_reads(
            &*read.open_table(STUDENTS).expect("open"),
            &students,
            "committed",
        );
        assert_reads(&*read.open_table(TOKENS).expect("open"), &tokens, "tokens");
    }

    // A snapshot taken now, read only after the next commit.
    let before = backend.begin_read().expect("begin_read");
    let committed_before = students.clone();
    {
        let write = backend.begin_write().expect("begin_write");
        let mut s = write.open_table(STUDENTS).expect("open");
        s.insert("gd\u{1f}s1", &value("gd\u{1f}s1", 2))
            .expect("overwrite");
        students.insert("gd\u{1f}s1".into(), value("gd\u{1f}s1", 2));
        for removed in ["bj\u{1f}s1", "sh\u{1f}a", "gd"] {
            assert_eq!(
                s.remove(removed).expect("remove"),
                Some(value(removed, 1)),
                "remove answers the value"
            );
            students.remove(removed);
        }
        assert_eq!(s.remove("gd\u{1f}none").expect("remove"), None);
        // Written, then removed in the same transaction.
        s.insert("gd\u{1f}s3", b"brief").expect("insert");
        assert_eq!(
            s.remove("gd\u{1f}s3").expect("remove"),
            Some(b"brief".to_vec())
        );
        s.insert("gd\u{1f}s3\u{1f}x", b"").expect("an empty value");
        students.insert("gd\u{1f}s3\u{1f}x".into(), Vec::new());
        assert_reads(&*s, &students, "writing over committed pairs");
        drop(s);
        write.commit().expect("commit");
    }
    assert_reads(
        &*before.open_table(STUDENTS).expect("open"),
        &committed_before,
        "a snapshot taken before the commit",
    );
    drop(before);
    {
        let read = backend.begin_read().expect("begin_read");
        assert_reads(
            &*read.open_table(STUDENTS).expect("open"),
            &students,
            "after the commit",
        );
    }

    {
        let write = backend.begin_write().expect("begin_write");
        let mut s = write.open_table(STUDENTS).expect("open");
        s.insert("gd\u{1f}dropped", b"x").expect("insert");
        s.remove("gd\u{1f}s2").expect("remove");
        drop(s);
        let mut t = write.open_table(TOKENS).expect("open");
        t.insert("t9", b"x").expect("insert");
        // Dropped without a commit.
    }
    {
        let read = backend.begin_read().expect("begin_read");
        assert_reads(
            &*read.open_table(STUDENTS).expect("open"),
            &students,
            "after a rollback",
        );
        assert_reads(
            &*read.open_table(TOKENS).expect("open"),
            &tokens,
            "tokens after a rollback",
        );
    }

    {
        let write = backend.begin_write().expect("begin_write");
        let mut s = write.open_table(STUDENTS).expect("open");
        s.insert("gd\u{1f}before-clear", b"x").expect("insert");
        drop(s);
        write.clear_table(STUDENTS).expect("clear_table");
        let mut s = write.open_table(STUDENTS).expect("open");
        assert_reads(&*s, &empty, "cleared");
        s.insert("gd\u{1f}after-clear", b"y").expect("insert");
        students = Model::from([("gd\u{1f}after-clear".to_string(), b"y".to_vec())]);
        assert_reads(&*s, &students, "written after the clear");
        drop(s);
        write.commit().expect("commit");
    }
    let read = backend.begin_read().expect("begin_read");
    assert_reads(
        &*read.open_table(STUDENTS).expect("open"),
        &students,
        "a cleared table",
    );
    assert_reads(
        &*read.open_table(TOKENS).expect("open"),
        &tokens,
        "the table beside it",
    );
}

/// One step of a write transaction of the model test.
#[derive(Debug, Clone)]
enum Op {
    Insert(String, u8),
    Remove(String),
    Get(String),
    /// A hint that changes no answer: keys read ahead, then read or written, answer as before.
    ReadAhead(Vec<String>),
}

/// A write transaction of the model test: its steps, then a commit or a drop.
#[derive(Debug, Clone)]
struct Plan {
    ops: Vec<Op>,
    commit: bool,
}

/// Runs `plans` on `STUDENTS` (emptied first) and on a `BTreeMap`, comparing every answer: each
/// write transaction's reads of its own writes, removals, and at the end the given ranges of a
/// snapshot. A range may be inverted (its start past its end): it holds nothing.
fn against_model(backend: &dyn Backend, plans: &[Plan], ranges: &[(Bound<String>, Bound<String>)]) {
    let clear = backend.begin_write().expect("begin_write");
    clear.clear_table(STUDENTS).expect("clear_table");
    // As a migration does: the table emptied, then opened again (redb drops it until then).
    drop(clear.open_table(STUDENTS).expect("open"));
    clear.commit().expect("commit");
    let mut committed = Model::new();
    for (n, plan) in plans.iter().enumerate() {
        let write = backend.begin_write().expect("begin_write");
        let mut table = write.open_table(STUDENTS).expect("open");
        let mut model = committed.clone();
        for op in &plan.ops {
            match op {
                Op::Insert(key, v) => {
                    table.insert(key, &[*v]).expect("insert");
                    model.insert(key.clone(), vec![*v]);
                }
                Op::Remove(key) => {
                    assert_eq!(
                        table.remove(key).expect("remove"),
                        model.remove(key),
                        "remove {key:?}"
                    );
                }
                Op::Get(key) => {
                    assert_eq!(
                        table.get(key).expect("get"),
                        model.get(key).cloned(),
                        "get {key:?}"
                    );
                }
                Op::ReadAhead(keys) => {
                    write
                        .read_ahead(&ReadAhead::from([(
                            STUDENTS,
                            keys.iter().cloned().collect(),
                        )]))
                        .expect("read_ahead");
                    for key in keys {
                        assert_eq!(
                            table.get(key).expect("get"),
                            model.get(key).cloned(),
                            "get {key:?} read ahead"
                        );
                    }
                }
            }
        }
        let context = format!("transaction {n}");
        assert_eq!(
            pairs(&*table, Bound::Unbounded, Bound::Unbounded),
            model.clone().into_iter().collect::<Vec<_>>(),
            "{context}: own writes"
        );
        assert_eq!(
            table.len().expect("len"),
            model.len() as u64,
            "{context}: len"
        );
        assert_eq!(
            table.last().expect("last"),
            model
                .iter()
                .next_back()
                .map(|(k, v)| (k.clone(), v.clone())),
            "{context}: last"
        );
        check_ranges(&*table, &model, ranges, &context);
        drop(table);
        if plan.commit {
            write.commit().expect("commit");
            committed = model;
        }
    }
    let read = backend.begin_read().expect("begin_read");
    let table = read.open_table(STUDENTS).expect("open");
    assert_eq!(
        table.first().expect("first"),
        committed.iter().next().map(|(k, v)| (k.clone(), v.clone())),
        "first"
    );
    check_ranges(&*table, &committed, ranges, "the snapshot");
    // Each key twice (a backend may answer a snapshot's second read of a key from memory), and
    // every key a plan touched, whether it ended stored or not.
    let touched = plans.iter().flat_map(|p| &p.ops).filter_map(|op| match op {
        Op::Insert(key, _) | Op::Remove(key) | Op::Get(key) => Some(key),
        Op::ReadAhead(_) => None,
    });
    for key in touched.chain(committed.keys()) {
        for read in ["first", "second"] {
            assert_eq!(
                table.get(key).expect("get"),
                committed.get(key).cloned(),
                "the snapshot's {read} read of {key:?}"
            );
        }
    }
}

fn check_ranges(
    table: &dyn ReadTable,
    model: &Model,
    ranges: &[(Bound<String>, Bound<String>)],
    context: &str,
) {
    for (start, end) in ranges {
        let (start, end) = (
            start.as_ref().map(String::as_str),
            end.as_ref().map(String::as_str),
        );
        let expected: Vec<_> = model
            .iter()
            .filter(|(k, _)| within(k, start, end))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(
            pairs(table, start, end),
            expected,
            "{context}: range {start:?}..{end:?}"
        );
    }
}

fn key() -> impl Strategy<Value = String> {
    // Control characters below the separator and a space around it, prefixes of one another:
    // what decides which jurisdiction a key and a range belong to.
    "[ab \u{1}\u{1f}]{0,3}"
}

fn bound() -> impl Strategy<Value = Bound<String>> {
    (0u8..3, key()).prop_map(|(kind, key)| match kind {
        0 => Bound::Included(key),
        1 => Bound::Excluded(key),
        _ => Bound::Unbounded,
    })
}

/// Random write transactions, committed or dropped, and random ranges read after them
/// (`against_model`), on one backend.
pub fn agrees_with_a_btreemap(backend: &dyn Backend) {
    // A key read may hold a NUL, which no stored key does (PostgreSQL's text cannot).
    let read_key = || prop_oneof![4 => key(), 1 => key().prop_map(|k| format!("{k}\0"))];
    let op = prop_oneof![
        3 => (key(), any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
        1 => key().prop_map(Op::Remove),
        1 => read_key().prop_map(Op::Get),
        1 => proptest::collection::vec(read_key(), 0..12).prop_map(Op::ReadAhead),
    ];
    let plan = (proptest::collection::vec(op, 0..12), any::<bool>())
        .prop_map(|(ops, commit)| Plan { ops, commit });
    let case = (
        proptest::collection::vec(plan, 1..4),
        proptest::collection::vec((bound(), bound()), 1..8),
    );
    TestRunner::new(Config::with_cases(48))
        .run(&case, |(plans, ranges)| {
            against_model(backend, &plans, &ranges);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A new redb file with the contract's tables, as the store's migration creates every table
/// when it opens a backend (on PostgreSQL the schema has them all).
fn redb_file(dir: &tempfile::TempDir) -> RedbBackend {
    let backend = RedbBackend::create_file(&dir.path().join("kv.redb")).expect("a redb file");
    let write = backend.begin_write().expect("begin_write");
    for table in [STUDENTS, TOKENS] {
        drop(write.open_table(table).expect("open"));
    }
    write.commit().expect("commit");
    backend
}

#[test]
fn the_kv_contract_holds_on_redb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = redb_file(&dir);
    assert_eq!(backend.kind(), "redb");
    kv_contract(&backend);
}

#[test]
fn reads_and_writes_on_redb_agree_with_a_btreemap() {
    let dir = tempfile::tempdir().expect("temp dir");
    agrees_with_a_btreemap(&redb_file(&dir));
}
