//! The engine on PostgreSQL (issue #19): the same durable `change_class` transitions as the redb
//! tps part, through `Store::open_backend` over `store::postgres`, at 1, 16 and 64 writers;
//! PostgreSQL's own floor for the same rows; and the scale part (import, reads, roster,
//! statistics) on it.
//!
//! The server is the tests' throwaway cluster (`tests/it/pg_server.rs`: Debian's binaries,
//! `fsync=on`, `synchronous_commit` at its default `on`; the backend refuses a server whose
//! commits are not durable), or `XUEJI_TEST_POSTGRES`. Every store gets a fresh schema.
//!
//! The floor: the rows one `change_class` writes (`floor.rs`'s model of the writer: keys and
//! record sizes of a real transition) written by 64 connections, each request one transaction
//! sent as one simple-query message (`BEGIN; …; COMMIT`, one round trip), no application work.
//! That is how a service doing one transaction per request would use the same server at best;
//! every such transaction also updates the jurisdiction's log head and statistics rows, so a
//! second floor without those shared rows shows what their row locks cost.

use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_postgres::{NoTls, SimpleQueryMessage};
use xueji::policy::PackageSet;
use xueji::store::Store;
use xueji::store::postgres::PostgresBackend;

use super::floor::{JUR, RecordSizes, SCHOOL, class_key, key, student_id};
use super::pg_server::postgres_url;
use super::{Config, TpsRun, WRITER_COUNTS, engine_on, scale, tps_run};

/// Connections of the floor: one per request in flight, as 64 writers would hold.
const FLOOR_CONNECTIONS: usize = 64;
/// Connections of the read floor: the backend's pool for snapshots (`store::postgres`).
const READ_FLOOR_CONNECTIONS: usize = 16;

/// A store on a fresh schema of the server.
fn store() -> Result<Store, String> {
    let backend = PostgresBackend::connect(&postgres_url()).map_err(|e| e.to_string())?;
    Store::open_backend(Arc::new(backend)).map_err(|e| e.to_string())
}

/// Runs the part; `redb_64` (redb's run at 64 writers) and `fsync` are the redb figures and the
/// disk's fsync rate of the same run, for the ratios.
pub fn run(
    cfg: &Config,
    set: &PackageSet,
    sizes: RecordSizes,
    redb_64: &TpsRun,
    fsync: f64,
) -> Result<Vec<(String, f64, i32)>, String> {
    let redb_tps_64 = redb_64.tps;
    let mut figures = Vec::new();
    let mut runs: Vec<TpsRun> = Vec::new();
    for &w in &WRITER_COUNTS {
        let engine = engine_on(store()?, set)?;
        let r = tps_run(cfg, &engine, w)?;
        eprintln!(
            "  postgres {:>2} writers: {:>7.0} tps, {:>5.1} per commit, writer committing {:>3.0}% of the time",
            w,
            r.tps,
            r.per_commit,
            r.commit_share * 100.0
        );
        runs.push(r);
    }
    let students = FLOOR_CONNECTIONS * cfg.students_per_writer;
    let floor_64 = floor(sizes, students, true, cfg.tps_warmup, cfg.tps_window)?;
    let floor_64_unshared = floor(sizes, students, false, cfg.tps_warmup, cfg.tps_window)?;
    let read_floor_16 = read_floor(sizes, students, cfg.tps_warmup, cfg.tps_window)?;

    println!(
        "\nPostgreSQL backend (the same change_class transitions through Store::open_backend; \
         fsync=on, synchronous_commit=on)"
    );
    println!(
        "  {:>7} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9} {:>8} {:>12} {:>11}",
        "writers",
        "tps",
        "tx/commit",
        "committing",
        "lat p50µs",
        "lat p99µs",
        "cpu cores",
        "writer%",
        "server cores",
        "tps/fsync"
    );
    for r in &runs {
        println!(
            "  {:>7} {:>9.0} {:>9.1} {:>9.0}% {:>10.0} {:>10.0} {:>9.2} {:>7.0}% {:>12.2} {:>11.3}",
            r.writers,
            r.tps,
            r.per_commit,
            r.commit_share * 100.0,
            r.lat_p50_us,
            r.lat_p99_us,
            r.cpu_cores,
            r.writer_cpu * 100.0,
            r.server_cpu_cores,
            r.tps / fsync
        );
    }
    let run_64 = runs
        .iter()
        .find(|r| r.writers == 64)
        .ok_or("no PostgreSQL run at 64 writers")?;
    let tps_64 = run_64.tps;
    // What one transition costs the machine's cores: this process (the engine, its callers and
    // the client side of the round trips) and the server; with both on one machine, their sum
    // bounds the rate at its cores ÷ that sum.
    let per_transition_us = |cores: f64, tps: f64| cores / tps * 1e6;
    let client_us = per_transition_us(run_64.cpu_cores, tps_64);
    let server_us = per_transition_us(run_64.server_cpu_cores, tps_64);
    let redb_us = per_transition_us(redb_64.cpu_cores, redb_tps_64);
    let machine_cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let cpu_bound_tps = machine_cores / (client_us + server_us) * 1e6;
    // With the server on cores of its own (a province's database server), this process alone.
    let client_bound_tps = machine_cores / client_us * 1e6;
    println!(
        "  PostgreSQL alone, one transaction per request from {FLOOR_CONNECTIONS} connections, \
         same rows ({sizes}): {floor_64:.0} tps \
         ({floor_64_unshared:.0} without the log head and statistics rows every request shares); \
         xueji's group commit at 64 writers: {:.2}× that; {:.2}× redb's {redb_tps_64:.0} tps",
        tps_64 / floor_64,
        tps_64 / redb_tps_64
    );
    println!(
        "  PostgreSQL alone, a transition's snapshot reads (BEGIN REPEATABLE READ; SELECT 1; 4 \
         point reads one after another; ROLLBACK) from {READ_FLOOR_CONNECTIONS} connections: \
         {read_floor_16:.0} snapshots/s = {:.2}× redb's transitions/s; xueji at 64 writers \
         {:.2}× that",
        read_floor_16 / redb_tps_64,
        tps_64 / read_floor_16
    );
    println!(
        "  CPU per transition at 64 writers: this process {client_us:.0} µs and the server \
         {server_us:.0} µs (redb: {redb_us:.0} µs in all); {machine_cores} cores ÷ their sum = \
         {cpu_bound_tps:.0} tps, {:.2}× redb's; with the server on cores of its own, this \
         process's alone: {client_bound_tps:.0} tps, {:.2}× redb's",
        cpu_bound_tps / redb_tps_64,
        client_bound_tps / redb_tps_64
    );
    for r in &runs {
        let sfx = if r.writers == 1 {
            "1_writer".to_owned()
        } else {
            format!("{}_writers", r.writers)
        };
        figures.extend([
            (format!("pg_tps_{sfx}"), r.tps, 0),
            (format!("pg_tps_over_fsync_{sfx}"), r.tps / fsync, 3),
            (format!("pg_transitions_per_commit_{sfx}"), r.per_commit, 2),
            (
                format!("pg_writer_committing_share_{sfx}"),
                r.commit_share,
                2,
            ),
            (format!("pg_latency_p50_us_{sfx}"), r.lat_p50_us, 0),
            (format!("pg_latency_p99_us_{sfx}"), r.lat_p99_us, 0),
            (format!("pg_cpu_cores_{sfx}"), r.cpu_cores, 2),
            (format!("pg_writer_thread_cpu_{sfx}"), r.writer_cpu, 2),
            (format!("pg_server_cpu_cores_{sfx}"), r.server_cpu_cores, 2),
        ]);
    }
    figures.extend([
        ("pg_tps_64_vs_redb".to_owned(), tps_64 / redb_tps_64, 2),
        ("pg_floor_tps_64".to_owned(), floor_64, 0),
        ("pg_floor_tps_64_over_fsync".to_owned(), floor_64 / fsync, 3),
        (
            "pg_floor_tps_64_without_shared_rows".to_owned(),
            floor_64_unshared,
            0,
        ),
        ("pg_group_vs_floor_64".to_owned(), tps_64 / floor_64, 2),
        ("pg_read_floor_snapshots_16".to_owned(), read_floor_16, 0),
        ("pg_cpu_us_per_transition_64".to_owned(), client_us, 0),
        (
            "pg_server_cpu_us_per_transition_64".to_owned(),
            server_us,
            0,
        ),
        ("redb_cpu_us_per_transition_64".to_owned(), redb_us, 0),
        ("pg_cpu_bound_tps_64".to_owned(), cpu_bound_tps, 0),
        (
            "pg_cpu_bound_vs_redb".to_owned(),
            cpu_bound_tps / redb_tps_64,
            2,
        ),
        (
            "pg_client_bound_vs_redb".to_owned(),
            client_bound_tps / redb_tps_64,
            2,
        ),
        (
            "pg_read_floor_vs_redb".to_owned(),
            read_floor_16 / redb_tps_64,
            2,
        ),
        (
            "pg_tps_64_vs_read_floor".to_owned(),
            tps_64 / read_floor_16,
            2,
        ),
    ]);
    for (name, v, digits) in scale::run_on(cfg, store()?, set)? {
        figures.push((format!("pg_{name}"), v, digits));
    }
    Ok(figures)
}

/// `'\x…'`: bytes as a bytea literal.
fn bytea(len: usize, byte: u8) -> String {
    let mut out = String::with_capacity(2 * len + 4);
    out.push_str("'\\x");
    for _ in 0..len {
        let _ = write!(out, "{byte:02x}");
    }
    out.push('\'');
    out
}

/// The records' values as bytea literals, made once.
struct Values {
    student: String,
    event: String,
    context: String,
    step: String,
    state: String,
    leaf: String,
    frontier: String,
    stat_total: String,
    stat_change: String,
    empty: String,
}

impl Values {
    fn of(sizes: RecordSizes) -> Values {
        Values {
            student: bytea(sizes.student, b's'),
            event: bytea(sizes.event, b'e'),
            context: bytea(sizes.context, b'c'),
            step: bytea(sizes.step, b't'),
            state: bytea(sizes.tally_state, b'a'),
            leaf: bytea(sizes.leaf, b'l'),
            frontier: bytea(sizes.frontier, b'f'),
            stat_total: bytea(sizes.stat_total, b'n'),
            stat_change: bytea(sizes.stat_change, b'n'),
            empty: bytea(0, 0),
        }
    }
}

/// `INSERT … ON CONFLICT DO UPDATE` of one pair.
fn upsert(out: &mut String, table: &str, k: &str, v: &str) {
    let _ = write!(
        out,
        "INSERT INTO kv_{table} VALUES ('{JUR}', '{k}', {v}) \
         ON CONFLICT (jurisdiction, k) DO UPDATE SET v = excluded.v;"
    );
}

/// One request's transaction: the student read (locked, its version check) and rewritten, the
/// timeline step and tally state, the class index entry moved, the event and its context at
/// their place in the log, the log leaf, the school-membership lookup; with `shared`, also the
/// log head and the day's statistics rows, which every request of the jurisdiction writes.
fn transition_sql(
    values: &Values,
    n: usize,
    seq: u64,
    class: (u8, u8),
    log_index: &str,
    shared: bool,
) -> String {
    let id = student_id(n);
    let student = key(&[JUR, &id]);
    let mut sql = String::with_capacity(8192);
    let _ = write!(
        sql,
        "BEGIN; SELECT 1 FROM kv_students WHERE jurisdiction = '{JUR}' AND k = '{student}' FOR UPDATE; \
         UPDATE kv_students SET v = {} WHERE jurisdiction = '{JUR}' AND k = '{student}';",
        values.student
    );
    upsert(
        &mut sql,
        "timeline_steps",
        &key(&[JUR, &id, "~t"]),
        &values.state,
    );
    upsert(
        &mut sql,
        "timeline_steps",
        &key(&[JUR, &id, &format!("{seq:012}")]),
        &values.step,
    );
    let _ = write!(
        sql,
        "DELETE FROM kv_idx_class WHERE jurisdiction = '{JUR}' AND k = '{}';",
        class_key(&id, class.0)
    );
    upsert(
        &mut sql,
        "idx_class",
        &class_key(&id, class.1),
        &values.empty,
    );
    upsert(
        &mut sql,
        "log_leaves",
        &key(&[JUR, log_index]),
        &values.leaf,
    );
    upsert(
        &mut sql,
        "event_records",
        &key(&[JUR, log_index, "e"]),
        &values.event,
    );
    upsert(
        &mut sql,
        "event_records",
        &key(&[JUR, log_index, "c"]),
        &values.context,
    );
    let _ = write!(
        sql,
        "SELECT 1 FROM kv_idx_school_members WHERE jurisdiction = '{JUR}' AND k = '{}';",
        key(&[JUR, SCHOOL, &id])
    );
    if shared {
        upsert(&mut sql, "log_heads", JUR, &values.frontier);
        upsert(&mut sql, "stat_totals", JUR, &values.stat_total);
        upsert(
            &mut sql,
            "stat_changes",
            &key(&[JUR, "2025-03-02"]),
            &values.stat_change,
        );
    }
    sql.push_str("COMMIT;");
    sql
}

/// Transitions per second PostgreSQL commits from `FLOOR_CONNECTIONS` connections, each owning
/// `students / FLOOR_CONNECTIONS` students, one transaction per request, measured over `window`
/// after `warmup`.
fn floor(
    sizes: RecordSizes,
    students: usize,
    shared: bool,
    warmup: Duration,
    window: Duration,
) -> Result<f64, String> {
    let (url, runtime) = floor_schema()?;
    let values = Arc::new(Values::of(sizes));
    runtime.block_on(async move {
        let clients = connect_all(&url, FLOOR_CONNECTIONS).await?;
        let mut seed = String::new();
        for n in 0..students {
            let id = student_id(n);
            let _ = write!(
                seed,
                "INSERT INTO kv_students VALUES ('{JUR}', '{}', {});\
                 INSERT INTO kv_idx_class VALUES ('{JUR}', '{}', {});\
                 INSERT INTO kv_idx_school_members VALUES ('{JUR}', '{}', {});",
                key(&[JUR, &id]),
                values.student,
                class_key(&id, 4),
                values.empty,
                key(&[JUR, SCHOOL, &id]),
                values.empty
            );
        }
        clients[0]
            .batch_execute(&seed)
            .await
            .map_err(|e| format!("floor seed: {e}"))?;

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let per = students.div_ceil(FLOOR_CONNECTIONS);
        let tasks: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(c, client)| {
                let (stop, done, values) = (stop.clone(), done.clone(), values.clone());
                tokio::spawn(async move {
                    let mine: Vec<usize> = (c * per..((c + 1) * per).min(students)).collect();
                    let mut seq = vec![2u64; mine.len()];
                    let mut class = vec![4u8; mine.len()];
                    let mut i = 0usize;
                    while !stop.load(Ordering::Acquire) {
                        let j = i % mine.len();
                        seq[j] += 1;
                        let moved = (class[j], 9 - class[j]);
                        class[j] = moved.1;
                        let log_index = format!("{c:03}{i:09}");
                        i += 1;
                        let sql =
                            transition_sql(&values, mine[j], seq[j], moved, &log_index, shared);
                        let answer = client
                            .simple_query(&sql)
                            .await
                            .map_err(|e| format!("floor transaction: {e}"))?;
                        let rows = answer
                            .iter()
                            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                            .count();
                        // The student and their school membership were both there.
                        if rows != 2 {
                            return Err(format!("floor: {rows} of the 2 rows read were found"));
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        rate(warmup, window, &stop, &done, tasks).await
    })
}

/// Snapshots per second PostgreSQL serves from `READ_FLOOR_CONNECTIONS` connections when each
/// does what a transition's caller reads, and nothing else: `BEGIN ISOLATION LEVEL REPEATABLE
/// READ READ ONLY; SELECT 1` (one message, as `store::postgres` takes a snapshot), the student's
/// locator, the student, their school and their tally state, one prepared statement each, each
/// waiting for the one before (as the engine's reads do), then ROLLBACK. No application work and
/// no writes: what the callers' side of a transition costs the server at best.
fn read_floor(
    sizes: RecordSizes,
    students: usize,
    warmup: Duration,
    window: Duration,
) -> Result<f64, String> {
    let (url, runtime) = floor_schema()?;
    let values = Values::of(sizes);
    runtime.block_on(async move {
        let clients = connect_all(&url, READ_FLOOR_CONNECTIONS).await?;
        let mut seed = format!(
            "INSERT INTO kv_schools VALUES ('', '{SCHOOL}', {});",
            values.student
        );
        for n in 0..students {
            let id = student_id(n);
            let _ = write!(
                seed,
                "INSERT INTO kv_student_locator VALUES ('', '{id}', '\\x{}');\
                 INSERT INTO kv_students VALUES ('{JUR}', '{}', {});\
                 INSERT INTO kv_timeline_steps VALUES ('{JUR}', '{}', {});",
                JUR.bytes().map(|b| format!("{b:02x}")).collect::<String>(),
                key(&[JUR, &id]),
                values.student,
                key(&[JUR, &id, "~t"]),
                values.state,
            );
        }
        clients[0]
            .batch_execute(&seed)
            .await
            .map_err(|e| format!("read floor seed: {e}"))?;

        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(c, client)| {
                let (stop, done) = (stop.clone(), done.clone());
                tokio::spawn(async move {
                    let read = |table: &str| {
                        format!("SELECT v FROM kv_{table} WHERE jurisdiction = $1 AND k = $2")
                    };
                    let mut statements = Vec::new();
                    for table in ["student_locator", "students", "schools", "timeline_steps"] {
                        statements.push(
                            client
                                .prepare(&read(table))
                                .await
                                .map_err(|e| format!("read floor prepare: {e}"))?,
                        );
                    }
                    let mut i = c;
                    while !stop.load(Ordering::Acquire) {
                        let id = student_id(i % students);
                        i += READ_FLOOR_CONNECTIONS;
                        client
                            .batch_execute(
                                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1",
                            )
                            .await
                            .map_err(|e| format!("read floor begin: {e}"))?;
                        let keys = [
                            ("", id.clone()),
                            (JUR, key(&[JUR, &id])),
                            ("", SCHOOL.to_owned()),
                            (JUR, key(&[JUR, &id, "~t"])),
                        ];
                        for (statement, (jurisdiction, k)) in statements.iter().zip(&keys) {
                            let rows = client
                                .query(statement, &[jurisdiction, k])
                                .await
                                .map_err(|e| format!("read floor read: {e}"))?;
                            if rows.len() != 1 {
                                return Err(format!("read floor: {k:?} was not found"));
                            }
                        }
                        client
                            .batch_execute("ROLLBACK")
                            .await
                            .map_err(|e| format!("read floor rollback: {e}"))?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        rate(warmup, window, &stop, &done, tasks).await
    })
}

/// A fresh schema with the store's tables (the backend creates them, as the engine's store would
/// have them), and a runtime for a floor's connections.
fn floor_schema() -> Result<(String, tokio::runtime::Runtime), String> {
    let url = postgres_url();
    drop(PostgresBackend::connect(&url).map_err(|e| e.to_string())?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-pg-floor")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    Ok((url, runtime))
}

/// `n` connections to `url`, each driven by a task of the current runtime.
async fn connect_all(url: &str, n: usize) -> Result<Vec<tokio_postgres::Client>, String> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| format!("floor connection: {e}"))?;
        tokio::spawn(connection);
        clients.push(client);
    }
    Ok(clients)
}

/// What `tasks` count in `done` per second over `window`, after `warmup`; then stops them and
/// returns the first failure of any.
async fn rate(
    warmup: Duration,
    window: Duration,
    stop: &AtomicBool,
    done: &AtomicU64,
    tasks: Vec<tokio::task::JoinHandle<Result<(), String>>>,
) -> Result<f64, String> {
    tokio::time::sleep(warmup).await;
    let start_count = done.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let per_second =
        (done.load(Ordering::Relaxed) - start_count) as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    for task in tasks {
        task.await.map_err(|e| format!("floor task: {e}"))??;
    }
    Ok(per_second)
}

/// The redb side of the ratios when this part runs alone (`--only postgres`): the disk's fsync
/// rate and redb's tps at 64 writers, measured just before.
pub fn redb_side(cfg: &Config, root: &Path, set: &PackageSet) -> Result<(f64, TpsRun), String> {
    let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
    let (fsync, _) =
        super::fsync_rate(dir.path(), cfg.fsync_window / 2).map_err(|e| e.to_string())?;
    let redb = tps_run(cfg, &super::open_engine(root, set)?, 64)?;
    Ok((fsync, redb))
}
