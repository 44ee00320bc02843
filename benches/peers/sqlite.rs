//! Peer baseline: the `tps_*` workload on SQLite (rusqlite, bundled SQLite), WAL with
//! `synchronous = FULL`, so every commit is made durable as xueji's `Durability::Immediate` is.
//!
//! The application work per transition is xueji's, done with the same library calls: read the
//! student and school rows (JSON), `TransitionInput::validate`, the state machine, the policy
//! in force from a `PolicyRegistry` compiled from the same `bench-district` package,
//! `policy::evaluate`, then the new student, the decision context and the sealed (SHA-256
//! chained) event, as `Xueji::transition` builds them. Only the storage differs: a relational
//! schema holding the same records and index entries (student row with a unique national id,
//! unique ID-card digest, class and status indexes; event row with its JSON; decision-context
//! row), written in one transaction that first re-reads the student's version.
//!
//! Two ways to write:
//! - [`Mode::PerConnection`], what a typical service does: one connection per writer thread,
//!   `BEGIN IMMEDIATE` per transition with a busy timeout (and a retry if it still times out).
//! - [`Mode::GroupCommit`], xueji's design: the threads queue their prepared transitions to one
//!   writer thread, which drains up to 512 of them into one transaction and one commit.
//!
//! In both, the JSON of the student and event is encoded by the thread that prepared the
//! transition (xueji's writer thread currently encodes it itself).

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use xueji::domain::event::{DecisionContext, facts};
use xueji::domain::{Actor, Event, NationalNumber, School, Student, TransitionInput};
use xueji::policy::{Case, PackageSet, PolicyRegistry, evaluate};

/// How the writer threads reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    PerConnection,
    GroupCommit,
}

/// Commands queued beyond this make submitters wait; the most one commit carries (as xueji).
const QUEUE_DEPTH: usize = 1024;
const MAX_BATCH: usize = 512;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = r#"
CREATE TABLE schools (
    id TEXT PRIMARY KEY,
    jurisdiction TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE TABLE students (
    id TEXT PRIMARY KEY,
    jurisdiction TEXT NOT NULL,
    school TEXT NOT NULL,
    grade INTEGER NOT NULL,
    class TEXT,
    status TEXT NOT NULL,
    national_id TEXT NOT NULL UNIQUE,
    id_card_digest TEXT UNIQUE,
    person_digest TEXT UNIQUE,
    version INTEGER NOT NULL,
    head TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE INDEX students_by_class ON students (jurisdiction, school, grade, class);
CREATE INDEX students_by_status ON students (jurisdiction, status);
CREATE TABLE deadlines (
    jurisdiction TEXT NOT NULL,
    date TEXT NOT NULL,
    student TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (jurisdiction, date, student, kind)
) WITHOUT ROWID;
CREATE TABLE events (
    jurisdiction TEXT NOT NULL,
    student TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    hash TEXT NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (jurisdiction, student, seq)
);
CREATE TABLE decision_contexts (
    jurisdiction TEXT NOT NULL,
    student TEXT NOT NULL,
    seq INTEGER NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (jurisdiction, student, seq)
);
"#;

/// Students admitted and registered by xueji itself (so the rows, histories and heads are
/// exactly the ones the xueji runs start from), copied into every fresh SQLite database.
pub struct Seed {
    school: School,
    students: Vec<SeedStudent>,
    events: usize,
}

struct SeedStudent {
    student: Student,
    id_card_digest: Option<String>,
    person_digest: Option<String>,
    events: Vec<(Event, Vec<u8>)>,
}

/// Enrols `count` students through an xueji engine and reads them back with their events.
pub fn seed(root: &Path, set: &PackageSet, count: usize) -> Result<Seed, String> {
    let engine = super::open_engine(root, set)?;
    let ids = super::enrol(&engine.xueji, count, 16)?;
    let x = &engine.xueji;
    let school = x.school("bench-school").map_err(|e| e.to_string())?;
    let mut students = Vec::with_capacity(ids.len());
    let mut events = 0;
    for id in &ids {
        let student = x.student(id).map_err(|e| e.to_string())?;
        let mut history = Vec::new();
        for e in x.events(id).map_err(|e| e.to_string())? {
            let ctx = x
                .store()
                .context(&e)
                .map_err(|e| e.to_string())?
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            history.push((e, ctx));
        }
        events += history.len();
        students.push(SeedStudent {
            id_card_digest: student
                .id_card
                .as_ref()
                .map(|c| x.store().digest("id_card", c.as_str())),
            person_digest: student
                .id_card
                .is_none()
                .then(|| x.store().person_digest(&student)),
            student,
            events: history,
        });
    }
    Ok(Seed {
        school,
        students,
        events,
    })
}

/// SQLite integers are signed; versions and sequence numbers stay far below `i64::MAX`.
fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn sql(e: rusqlite::Error) -> String {
    format!("sqlite: {e}")
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(v).map_err(|e| e.to_string())
}

fn connect(path: &Path) -> Result<Connection, String> {
    let c = Connection::open(path).map_err(sql)?;
    c.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    let mode: String = c
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("sqlite: journal_mode is {mode}, not wal"));
    }
    c.pragma_update(None, "synchronous", "FULL").map_err(sql)?;
    c.set_prepared_statement_cache_capacity(32);
    Ok(c)
}

/// A fresh database holding the seed: schema, school, students, their index rows and events.
fn create(path: &Path, seed: &Seed) -> Result<(), String> {
    let mut c = connect(path)?;
    c.execute_batch(SCHEMA).map_err(sql)?;
    let tx = c.transaction().map_err(sql)?;
    tx.execute(
        "INSERT INTO schools (id, jurisdiction, doc) VALUES (?1, ?2, ?3)",
        params![
            seed.school.id,
            seed.school.jurisdiction,
            json(&seed.school)?
        ],
    )
    .map_err(sql)?;
    for s in &seed.students {
        let st = &s.student;
        tx.execute(
            "INSERT INTO students (id, jurisdiction, school, grade, class, status, national_id, \
             id_card_digest, person_digest, version, head, doc) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                st.id,
                st.jurisdiction,
                st.school,
                st.grade,
                st.class,
                st.status.as_str(),
                st.national_id.as_str(),
                s.id_card_digest,
                s.person_digest,
                int(st.version),
                st.head,
                json(st)?
            ],
        )
        .map_err(sql)?;
        for d in &st.deadlines {
            tx.execute(
                "INSERT INTO deadlines (jurisdiction, date, student, kind) VALUES (?1, ?2, ?3, ?4)",
                params![st.jurisdiction, d.date.to_string(), st.id, d.kind],
            )
            .map_err(sql)?;
        }
        for (e, ctx) in &s.events {
            insert_event(&tx, e, &json(e)?, ctx)?;
        }
    }
    tx.commit().map_err(sql)?;
    Ok(())
}

fn insert_event(c: &Connection, e: &Event, doc: &[u8], ctx: &[u8]) -> Result<(), String> {
    c.prepare_cached(
        "INSERT INTO events (jurisdiction, student, seq, kind, hash, doc) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            e.jurisdiction,
            e.student,
            int(e.seq),
            e.kind.as_str(),
            e.hash,
            doc
        ])
    })
    .map_err(sql)?;
    c.prepare_cached(
        "INSERT INTO decision_contexts (jurisdiction, student, seq, doc) \
         VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![e.jurisdiction, e.student, int(e.seq), ctx]))
    .map_err(sql)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One transition: xueji's application work, then the SQL write
// ---------------------------------------------------------------------------------------------

/// A transition decided and built, ready to be written.
pub struct Prepared {
    before: Student,
    after: Student,
    event: Event,
    student_doc: Vec<u8>,
    event_doc: Vec<u8>,
    context: Vec<u8>,
}

/// The student as a policy sees it (service.rs `policy_view`): no name, ID number or
/// guardians, a placeholder national number of the same kind.
fn policy_view(s: &Student) -> Student {
    let placeholder = match s.national_id.as_str().as_bytes().first() {
        Some(b'J') => "J11010519491231002X",
        Some(b'L') => "L11010519491231AAAA",
        _ => "G11010519491231002X",
    };
    Student {
        name: String::new(),
        id_card: None,
        guardians: Vec::new(),
        national_id: NationalNumber::parse(placeholder).unwrap_or_else(|_| s.national_id.clone()),
        ..s.clone()
    }
}

/// What `Xueji::transition` does between loading the student and submitting the write, for a
/// transition the policy applies without approval: validate, state machine, policy in force,
/// evaluate, then the new student, decision context and sealed event (`apply_decision`). The
/// recorded input is the input itself: `redact_input` only rewrites `params.fields`, which a
/// class change does not have.
fn prepare(
    registry: &PolicyRegistry,
    student: Student,
    school: &School,
    input: &TransitionInput,
    actor: &Actor,
) -> Result<Prepared, String> {
    input.validate().map_err(|e| format!("{e:?}"))?;
    if !input.kind.allowed_from().contains(&student.status) {
        return Err(format!(
            "{} not allowed from {}",
            input.kind.as_str(),
            student.status.as_str()
        ));
    }
    let policy = registry
        .in_force(&student.jurisdiction, input.effective_date)
        .map_err(|e| e.to_string())?;
    let decision = evaluate(
        &policy,
        Case {
            student: &student,
            school,
            input,
            sweep: false,
        },
    )
    .map_err(|e| e.to_string())?;
    if !decision.allowed || !decision.approvals.is_empty() {
        return Err(format!(
            "the bench transition was not applied directly: {decision:?}"
        ));
    }
    let context = DecisionContext {
        student: policy_view(&student),
        school: school.clone(),
        input: input.clone(),
        sweep: false,
        receiving_school: None,
    }
    .to_bytes();
    // What the event does to the record: the engine's own function, so the peer does the same work.
    let mut after = student.after_decision(input, &decision, false);
    let event = Event {
        seq: after.version,
        student: student.id.clone(),
        jurisdiction: student.jurisdiction.clone(),
        kind: input.kind,
        effective_date: input.effective_date,
        recorded_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        actor: actor.clone(),
        before: Some(facts(
            student.status,
            &student.school,
            student.grade,
            student.class.as_deref(),
        )),
        after: facts(
            after.status,
            &after.school,
            after.grade,
            after.class.as_deref(),
        ),
        input: input.clone(),
        decision,
        request: None,
        context: Some(DecisionContext::hash_of(&context)),
        personal: Default::default(),
        prev_hash: student.head.clone(),
        hash: String::new(),
    }
    .seal();
    after.head.clone_from(&event.hash);
    Ok(Prepared {
        student_doc: json(&after)?,
        event_doc: json(&event)?,
        before: student,
        after,
        event,
        context,
    })
}

/// Why a write did not happen.
#[derive(Debug)]
enum WriteError {
    /// The student moved on since it was read: read again and decide again.
    Conflict,
    Busy,
    Other(String),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Conflict => f.write_str("version conflict"),
            WriteError::Busy => f.write_str("database busy"),
            WriteError::Other(e) => f.write_str(e),
        }
    }
}

impl From<rusqlite::Error> for WriteError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => WriteError::Busy,
            _ => WriteError::Other(sql(e)),
        }
    }
}

impl From<String> for WriteError {
    fn from(e: String) -> Self {
        WriteError::Other(e)
    }
}

/// The writes of one transition, inside an open transaction: check the version, update the
/// student row (SQLite maintains the class and status index entries), replace changed
/// deadline rows, insert the event and its decision context.
fn write_one(c: &Connection, p: &Prepared) -> Result<(), WriteError> {
    let (before, after) = (&p.before, &p.after);
    let current: Option<i64> = c
        .prepare_cached("SELECT version FROM students WHERE id = ?1")?
        .query_row([&before.id], |r| r.get(0))
        .optional()?;
    match current {
        None => return Err(WriteError::Other(format!("student {} is gone", before.id))),
        Some(v) if v != int(before.version) => return Err(WriteError::Conflict),
        Some(_) => {}
    }
    c.prepare_cached(
        "UPDATE students SET school = ?2, grade = ?3, class = ?4, status = ?5, version = ?6, \
         head = ?7, doc = ?8 WHERE id = ?1",
    )?
    .execute(params![
        after.id,
        after.school,
        after.grade,
        after.class,
        after.status.as_str(),
        int(after.version),
        after.head,
        p.student_doc
    ])?;
    if before.deadlines != after.deadlines {
        for d in before
            .deadlines
            .iter()
            .filter(|d| !after.deadlines.contains(d))
        {
            c.prepare_cached(
                "DELETE FROM deadlines WHERE jurisdiction = ?1 AND date = ?2 AND student = ?3 \
                 AND kind = ?4",
            )?
            .execute(params![
                after.jurisdiction,
                d.date.to_string(),
                after.id,
                d.kind
            ])?;
        }
        for d in after
            .deadlines
            .iter()
            .filter(|d| !before.deadlines.contains(d))
        {
            c.prepare_cached(
                "INSERT INTO deadlines (jurisdiction, date, student, kind) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                after.jurisdiction,
                d.date.to_string(),
                after.id,
                d.kind
            ])?;
        }
    }
    insert_event(c, &p.event, &p.event_doc, &p.context)?;
    Ok(())
}

fn run_sql(c: &Connection, stmt: &str) -> Result<(), rusqlite::Error> {
    c.prepare_cached(stmt)?.execute([])?;
    Ok(())
}

/// One transaction per transition on the caller's own connection; a busy timeout (or a busy
/// commit) rolls back and tries again. Returns how many times it had to.
fn write_own(c: &Connection, p: &Prepared) -> Result<u64, WriteError> {
    let mut retries = 0;
    loop {
        match run_sql(c, "BEGIN IMMEDIATE") {
            Ok(()) => {}
            Err(e) => match WriteError::from(e) {
                WriteError::Busy => {
                    retries += 1;
                    continue;
                }
                other => return Err(other),
            },
        }
        let result = write_one(c, p).and_then(|()| Ok(run_sql(c, "COMMIT")?));
        match result {
            Ok(()) => return Ok(retries),
            Err(e) => {
                let _ = run_sql(c, "ROLLBACK");
                match e {
                    WriteError::Busy => retries += 1,
                    other => return Err(other),
                }
            }
        }
    }
}

type Reply = Result<(), WriteError>;
type Job = (Prepared, mpsc::SyncSender<Reply>);

/// The group-commit writer: one transaction per batch of queued transitions, one commit, then
/// every caller of the batch gets its answer. A refused transition (version conflict) writes
/// nothing and the batch goes on; a storage error aborts the whole batch.
fn group_writer(
    path: &Path,
    jobs: mpsc::Receiver<Job>,
    commits: Arc<AtomicU64>,
) -> Result<(), String> {
    let c = connect(path)?;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let outcome = (|| -> Result<Vec<Reply>, WriteError> {
            run_sql(&c, "BEGIN IMMEDIATE")?;
            let mut replies = Vec::with_capacity(batch.len());
            for (p, _) in &batch {
                match write_one(&c, p) {
                    Err(WriteError::Conflict) => replies.push(Err(WriteError::Conflict)),
                    Err(e) => return Err(e),
                    Ok(()) => replies.push(Ok(())),
                }
            }
            run_sql(&c, "COMMIT")?;
            Ok(replies)
        })();
        commits.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(replies) => {
                for ((_, reply), r) in batch.into_iter().zip(replies) {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                let _ = run_sql(&c, "ROLLBACK");
                let msg = format!("batch aborted: {e}");
                for (_, reply) in batch {
                    let _ = reply.send(Err(WriteError::Other(msg.clone())));
                }
            }
        }
    }
    Ok(())
}

fn read_doc<T: serde::de::DeserializeOwned>(
    c: &Connection,
    stmt: &str,
    id: &str,
) -> Result<T, String> {
    let doc: Vec<u8> = c
        .prepare_cached(stmt)
        .and_then(|mut s| s.query_row([id], |r| r.get(0)))
        .map_err(sql)?;
    serde_json::from_slice(&doc).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Transitions per second
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct SqliteRun {
    pub writers: usize,
    pub mode: Mode,
    pub tps: f64,
    /// Commits per second and transitions per commit (1 in `PerConnection`).
    pub commits_per_s: f64,
    pub per_commit: f64,
    pub lat_p50_us: f64,
    pub lat_p99_us: f64,
    /// `BEGIN IMMEDIATE` or `COMMIT` still busy after the busy timeout, retried.
    pub busy_retries: u64,
    pub cpu_cores: f64,
    /// The group writer thread's share of one core (`GroupCommit` only).
    pub writer_cpu: f64,
}

/// `writers` threads doing `change_class` on their own students (`students_per_writer` each,
/// alternating class "5"/"4"), warm-up then the measured window, as the xueji `tps_run`.
pub fn tps_run(
    cfg: &super::Config,
    root: &Path,
    seed: &Seed,
    registry: &Arc<PolicyRegistry>,
    writers: usize,
    mode: Mode,
) -> Result<SqliteRun, String> {
    let per = cfg.students_per_writer;
    if seed.students.len() < writers * per {
        return Err(format!(
            "sqlite seed has {} students, {} needed",
            seed.students.len(),
            writers * per
        ));
    }
    let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
    let path = dir.path().join("bench.sqlite");
    create(&path, seed)?;

    let commits = Arc::new(AtomicU64::new(0));
    let (queue, writer) = match mode {
        Mode::PerConnection => (None, None),
        Mode::GroupCommit => {
            let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_DEPTH);
            let (p, commits) = (path.clone(), commits.clone());
            let h = std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || group_writer(&p, rx, commits))
                .map_err(|e| e.to_string())?;
            (Some(tx), Some(h))
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(writers + 1));
    let ids: Vec<String> = seed.students[..writers * per]
        .iter()
        .map(|s| s.student.id.clone())
        .collect();
    let handles: Vec<_> = ids
        .chunks(per)
        .map(|mine| {
            let mine = mine.to_vec();
            let (stop, measuring, barrier) = (stop.clone(), measuring.clone(), barrier.clone());
            let (registry, path, queue) = (registry.clone(), path.clone(), queue.clone());
            let commits = commits.clone();
            std::thread::spawn(move || -> Result<(u64, u64, Vec<u64>, u64), String> {
                let c = connect(&path)?;
                let actor = super::actor();
                let (mut done, mut applied, mut busy) = (0u64, 0u64, 0u64);
                let mut lat = Vec::new();
                let mut i = 0usize;
                barrier.wait();
                while !stop.load(Ordering::Acquire) {
                    let id = &mine[i % mine.len()];
                    let class = if (i / mine.len()).is_multiple_of(2) {
                        "5"
                    } else {
                        "4"
                    };
                    i += 1;
                    let input = super::change_class(class);
                    let was_measuring = measuring.load(Ordering::Acquire);
                    let t = Instant::now();
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let student: Student =
                            read_doc(&c, "SELECT doc FROM students WHERE id = ?1", id)?;
                        let school: School =
                            read_doc(&c, "SELECT doc FROM schools WHERE id = ?1", &student.school)?;
                        let p = prepare(&registry, student, &school, &input, &actor)?;
                        let r = match &queue {
                            None => write_own(&c, &p).map(|retries| {
                                busy += retries;
                                commits.fetch_add(1, Ordering::Relaxed);
                            }),
                            Some(q) => {
                                let (tx, rx) = mpsc::sync_channel(1);
                                q.send((p, tx)).map_err(|_| "sqlite writer stopped")?;
                                rx.recv().map_err(|_| "sqlite writer stopped".to_owned())?
                            }
                        };
                        match r {
                            Ok(()) => break,
                            Err(WriteError::Conflict) if attempt < 3 => continue,
                            Err(e) => return Err(format!("sqlite change_class: {e}")),
                        }
                    }
                    applied += 1;
                    let ns = t.elapsed().as_nanos() as u64;
                    if was_measuring && !stop.load(Ordering::Acquire) {
                        done += 1;
                        lat.push(ns);
                    }
                }
                Ok((done, applied, lat, busy))
            })
        })
        .collect();
    drop(queue);

    barrier.wait();
    std::thread::sleep(cfg.tps_warmup);
    let commits0 = commits.load(Ordering::Relaxed);
    let (cpu0, wcpu0) = (
        super::cpu_seconds(None),
        super::cpu_seconds(Some("sqlite-writer")),
    );
    let start = Instant::now();
    measuring.store(true, Ordering::Release);
    std::thread::sleep(cfg.tps_window);
    stop.store(true, Ordering::Release);
    let window = start.elapsed().as_secs_f64();
    let commits_in_window = commits.load(Ordering::Relaxed) - commits0;
    let (cpu1, wcpu1) = (
        super::cpu_seconds(None),
        super::cpu_seconds(Some("sqlite-writer")),
    );

    let (mut total, mut applied, mut busy) = (0u64, 0u64, 0u64);
    let mut lat = Vec::new();
    let mut failure = None;
    for h in handles {
        match h.join() {
            Ok(Ok((n, a, l, b))) => {
                total += n;
                applied += a;
                busy += b;
                lat.extend(l);
            }
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some("sqlite writer thread panicked".into()),
        }
    }
    if let Some(w) = writer {
        w.join()
            .map_err(|_| "sqlite group writer panicked".to_owned())??;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    check(&path, seed.events as u64 + applied)?;
    lat.sort_unstable();
    Ok(SqliteRun {
        writers,
        mode,
        tps: total as f64 / window,
        commits_per_s: commits_in_window as f64 / window,
        per_commit: if commits_in_window == 0 {
            f64::NAN
        } else {
            total as f64 / commits_in_window as f64
        },
        lat_p50_us: super::pct_us(&lat, 50.0),
        lat_p99_us: super::pct_us(&lat, 99.0),
        busy_retries: busy,
        cpu_cores: (cpu1 - cpu0) / window,
        writer_cpu: (wcpu1 - wcpu0) / window,
    })
}

/// After a run: every applied transition left exactly one event, and every student's version
/// and head match its newest event.
fn check(path: &Path, expected_events: u64) -> Result<(), String> {
    let c = connect(path)?;
    let events: i64 = c
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .map_err(sql)?;
    let contexts: i64 = c
        .query_row("SELECT count(*) FROM decision_contexts", [], |r| r.get(0))
        .map_err(sql)?;
    let bad: i64 = c
        .query_row(
            "SELECT count(*) FROM students s WHERE s.version != \
               (SELECT count(*) FROM events e WHERE e.jurisdiction = s.jurisdiction AND e.student = s.id) \
             OR s.head != (SELECT hash FROM events e WHERE e.jurisdiction = s.jurisdiction \
               AND e.student = s.id ORDER BY seq DESC LIMIT 1)",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    let expected = int(expected_events);
    if events != expected || contexts != expected || bad != 0 {
        return Err(format!(
            "sqlite store after the run: {events} events and {contexts} contexts \
             ({expected_events} expected), {bad} students out of step with their history"
        ));
    }
    Ok(())
}
