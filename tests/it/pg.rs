//! The PostgreSQL backend (`store::postgres`) against a real server (`pg_server`): the kv
//! contract, a model test, serializable writers, paged scans, the schema on open, and calls from
//! inside async runtimes.

use std::ops::Bound;
use std::sync::mpsc;

use xueji::store::StoreError;
use xueji::store::kv::{Backend, Table};
use xueji::store::postgres::PostgresBackend;

use crate::kv_contract::{STUDENTS, agrees_with_a_btreemap, kv_contract};
use crate::pg_server::{postgres_url, run_sql};

fn connect(url: &str) -> PostgresBackend {
    PostgresBackend::connect(url).unwrap_or_else(|e| panic!("connect: {e}"))
}

fn put(backend: &dyn Backend, table: Table, pairs: &[(&str, &[u8])]) {
    let write = backend.begin_write().expect("begin_write");
    let mut t = write.open_table(table).expect("open");
    for (k, v) in pairs {
        t.insert(k, v).expect("insert");
    }
    drop(t);
    write.commit().expect("commit");
}

fn get(backend: &dyn Backend, table: Table, key: &str) -> Option<Vec<u8>> {
    let read = backend.begin_read().expect("begin_read");
    read.open_table(table).expect("open").get(key).expect("get")
}

#[test]
fn the_kv_contract_holds() {
    let backend = connect(&postgres_url());
    assert_eq!(backend.kind(), "postgres");
    kv_contract(&backend);
}

#[test]
fn reads_and_writes_agree_with_a_btreemap() {
    let backend = connect(&postgres_url());
    agrees_with_a_btreemap(&backend);
}

/// Two writers of one existing row: the second one's snapshot is older than the first one's
/// commit, so its locking read of the row after that commit fails as contended, and none of its
/// writes is visible. Each step waits for the one before it: without that, the second writer
/// could commit before the first had even read the row, and rightly succeed.
#[test]
fn a_second_writer_of_a_row_is_contended_and_leaves_nothing() {
    let backend = connect(&postgres_url());
    put(&backend, STUDENTS, &[("gd\u{1f}head", b"0")]);
    let (snapshot_taken, wait_for_snapshot) = mpsc::channel();
    let (first_committed, wait_for_first) = mpsc::channel();
    let shared = &backend;
    let contended = std::thread::scope(|scope| {
        let write = backend.begin_write().expect("begin_write");
        let mut t = write.open_table(STUDENTS).expect("open");
        assert_eq!(t.get("gd\u{1f}head").expect("get"), Some(b"0".to_vec()));
        let second = scope.spawn(move || {
            let write = shared.begin_write().expect("begin_write");
            let mut t = write.open_table(STUDENTS).expect("open");
            t.insert("gd\u{1f}second-only", b"x").expect("insert");
            // Its snapshot: taken by its first read.
            assert_eq!(t.get("gd\u{1f}other").expect("get"), None);
            snapshot_taken.send(()).expect("send");
            wait_for_first.recv().expect("the first writer's commit");
            let written = t
                .get("gd\u{1f}head")
                .and_then(|_| t.insert("gd\u{1f}head", b"2"));
            drop(t);
            written
                .and_then(|()| write.commit())
                .expect_err("the second writer commits nothing")
        });
        wait_for_snapshot
            .recv()
            .expect("the second writer's snapshot");
        t.insert("gd\u{1f}head", b"1").expect("insert");
        drop(t);
        write.commit().expect("the first writer commits");
        first_committed.send(()).expect("send");
        second.join().expect("the second writer")
    });
    assert!(
        matches!(contended, StoreError::Contended(_)),
        "{contended:?}"
    );
    assert_eq!(get(&backend, STUDENTS, "gd\u{1f}head"), Some(b"1".to_vec()));
    assert_eq!(get(&backend, STUDENTS, "gd\u{1f}second-only"), None);
}

/// Two writers creating the same key, both having seen it absent: the second commit fails as
/// contended, and its other write is not visible either.
#[test]
fn a_second_writer_creating_the_same_key_is_contended_at_commit() {
    let backend = connect(&postgres_url());
    let first = backend.begin_write().expect("begin_write");
    let second = backend.begin_write().expect("begin_write");
    for (txn, value) in [(&first, b"1"), (&second, b"2")] {
        let mut t = txn.open_table(STUDENTS).expect("open");
        assert_eq!(t.get("gd\u{1f}new").expect("get"), None);
        t.insert("gd\u{1f}new", value).expect("insert");
    }
    {
        let mut t = second.open_table(STUDENTS).expect("open");
        t.insert("bj\u{1f}second-only", b"x").expect("insert");
    }
    first.commit().expect("the first writer commits");
    let refused = second
        .commit()
        .expect_err("the second writer commits nothing");
    assert!(matches!(refused, StoreError::Contended(_)), "{refused:?}");
    assert_eq!(get(&backend, STUDENTS, "gd\u{1f}new"), Some(b"1".to_vec()));
    assert_eq!(get(&backend, STUDENTS, "bj\u{1f}second-only"), None);
}

/// A commit sends its writes and the COMMIT together: when one of its statements fails (here a
/// table the server does not have), the commit fails and none of its writes is stored, the
/// other tables' included; the connection goes on to serve the next transaction.
#[test]
fn a_commit_whose_one_statement_fails_stores_nothing() {
    let backend = connect(&postgres_url());
    put(&backend, STUDENTS, &[("gd\u{1f}kept", b"0")]);
    let write = backend.begin_write().expect("begin_write");
    {
        let mut students = write.open_table(STUDENTS).expect("open");
        students.insert("gd\u{1f}kept", b"1").expect("insert");
        students.insert("gd\u{1f}new", b"1").expect("insert");
        let mut missing = write.open_table(Table::new("no_such_table")).expect("open");
        missing.insert("gd\u{1f}x", b"1").expect("insert");
    }
    let refused = write
        .commit()
        .expect_err("a commit with a failing statement");
    assert!(
        matches!(&refused, StoreError::Storage(m) if m.contains("42P01")),
        "{refused:?}"
    );
    assert_eq!(get(&backend, STUDENTS, "gd\u{1f}kept"), Some(b"0".to_vec()));
    assert_eq!(get(&backend, STUDENTS, "gd\u{1f}new"), None);
    for _ in 0..8 {
        put(&backend, STUDENTS, &[("gd\u{1f}after", b"2")]);
    }
    assert_eq!(
        get(&backend, STUDENTS, "gd\u{1f}after"),
        Some(b"2".to_vec())
    );
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// 100,000 pairs of 2 KB (200 MB), written by the server itself so that this process never held
/// them: a scan reads them all, in order, with the process growing by far less than they weigh.
#[test]
fn a_scan_of_100k_pairs_holds_one_page_at_a_time() {
    let url = postgres_url();
    let backend = connect(&url);
    run_sql(
        &url,
        "INSERT INTO kv_students (jurisdiction, k, v) \
         SELECT 'gd', 'gd' || chr(31) || lpad(i::text, 8, '0'), \
                convert_to(lpad(i::text, 2000, 'x'), 'UTF8') \
         FROM generate_series(1, 100000) AS i",
    );
    let read = backend.begin_read().expect("begin_read");
    let table = read.open_table(STUDENTS).expect("open");
    let start = resident_bytes();
    let mut peak = start;
    let mut count = 0u32;
    let (from, to) = ("gd\u{1f}".to_string(), "gd ".to_string());
    for pair in table
        .range(Bound::Included(&from), Bound::Excluded(&to))
        .expect("range")
    {
        let (k, v) = pair.expect("pair");
        count += 1;
        assert_eq!(k, format!("gd\u{1f}{count:08}"));
        assert_eq!(v.len(), 2000);
        if count.is_multiple_of(5000) {
            peak = peak.max(resident_bytes());
        }
    }
    assert_eq!(count, 100_000);
    assert_eq!(table.len().expect("len"), 100_000);
    assert!(
        peak - start < 64 << 20,
        "the scan grew the process by {} MB",
        (peak - start) >> 20
    );
}

/// The engine calls the backend from async tasks' threads too: connecting, reading, writing and
/// dropping it there must not panic (no runtime started inside a runtime).
#[tokio::test(flavor = "current_thread")]
async fn the_backend_works_inside_a_current_thread_runtime() {
    let backend = connect(&postgres_url());
    put(&backend, STUDENTS, &[("gd\u{1f}s1", b"1")]);
    assert_eq!(get(&backend, STUDENTS, "gd\u{1f}s1"), Some(b"1".to_vec()));
    drop(backend);
}

/// Many calls from one task that never yields: tokio's cooperative budget (128 polls of its
/// resources per turn of a task) must not make the backend's waits spin once it is spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_inside_one_async_task_all_answer() {
    let backend = connect(&postgres_url());
    put(&backend, STUDENTS, &[("gd\u{1f}s1", b"1")]);
    // A spinning wait never returns to fail the test: a watcher on its own thread ends the
    // whole test process instead, saying why.
    let (done, finished) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if finished
            .recv_timeout(std::time::Duration::from_secs(120))
            .is_err()
        {
            eprintln!("many_calls_inside_one_async_task_all_answer: a wait spins (2 min)");
            std::process::exit(101);
        }
    });
    for _ in 0..600 {
        assert_eq!(get(&backend, STUDENTS, "gd\u{1f}s1"), Some(b"1".to_vec()));
    }
    done.send(()).expect("the watcher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_works_on_a_runtimes_blocking_pool() {
    let backend = std::sync::Arc::new(connect(&postgres_url()));
    let shared = backend.clone();
    tokio::task::spawn_blocking(move || put(&*shared, STUDENTS, &[("gd\u{1f}s1", b"1")]))
        .await
        .expect("the blocking write");
    assert_eq!(get(&*backend, STUDENTS, "gd\u{1f}s1"), Some(b"1".to_vec()));
}

/// Two nodes opening one new database at once: one creates the schema, the other waits for it
/// and finds it done; a reopening applies nothing; the data is there.
#[test]
fn the_schema_is_created_once_by_concurrent_opens() {
    let url = postgres_url();
    let opened: Vec<PostgresBackend> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3).map(|_| scope.spawn(|| connect(&url))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an opening"))
            .collect()
    });
    put(&opened[0], STUDENTS, &[("gd\u{1f}s1", b"1")]);
    drop(opened);
    let reopened = connect(&url);
    assert_eq!(get(&reopened, STUDENTS, "gd\u{1f}s1"), Some(b"1".to_vec()));
    // One row per step: a second application would have failed on its primary key.
    run_sql(
        &url,
        "DO $$ BEGIN IF (SELECT count(*) FROM xueji_schema) <> 1 THEN \
         RAISE 'steps recorded more than once'; END IF; END $$",
    );
}

#[test]
fn a_schema_written_by_a_newer_version_is_refused() {
    let url = postgres_url();
    drop(connect(&url));
    run_sql(&url, "INSERT INTO xueji_schema (version) VALUES (99)");
    match PostgresBackend::connect(&url) {
        Err(StoreError::NewerSchema(99)) => {}
        Err(e) => panic!("refused with {e}"),
        Ok(_) => panic!("a newer schema was opened"),
    }
}

#[test]
fn a_server_that_does_not_wait_for_its_disk_is_refused() {
    let url = format!("{}%20-csynchronous_commit%3Doff", postgres_url());
    match PostgresBackend::connect(&url) {
        Err(StoreError::Storage(message)) => {
            assert!(message.contains("synchronous_commit=off"), "{message}")
        }
        Err(e) => panic!("refused with {e}"),
        Ok(_) => panic!("a non-durable server was opened"),
    }
}

/// A key PostgreSQL cannot store (a NUL) fails the commit as a storage error whose message
/// quotes neither the key nor the value.
#[test]
fn a_storage_error_names_no_stored_data() {
    let backend = connect(&postgres_url());
    let write = backend.begin_write().expect("begin_write");
    let mut t = write.open_table(STUDENTS).expect("open");
    t.insert("gd\u{1f}110101199003077777\u{0}", b"name:Zhang San")
        .expect("insert");
    drop(t);
    match write.commit() {
        Err(StoreError::Storage(message)) => {
            assert!(!message.contains("110101"), "{message}");
            assert!(!message.contains("Zhang"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}
