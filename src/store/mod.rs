//! Storage: one writer thread with group commit, readers on snapshots, over a [`kv::Backend`]
//! (the redb file by default, `store::redb`).
//!
//! The engine talks to storage only through [`Store`]: typed reads, and [`Command`]s submitted
//! to the writer. Each command checks its preconditions (versions, uniqueness, request status)
//! before writing anything, so a refused command leaves no trace; the writer packs the commands
//! waiting at that moment into one durable transaction (group commit) and answers each caller
//! only after that commit returned. See `docs/design.md`.

mod backup;
mod batches;
mod check;
mod copy;
pub mod idempotency;
pub mod kv;
mod location;
mod migrate;
pub mod postgres;
pub mod private;
mod problems;
mod records;
pub mod redb;
mod tables;
mod tally;
mod writer;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::mpsc;

pub use self::redb::ReadOnlyStore;
use crate::auth::TokenRecord;
use crate::domain::merkle::{self, Frontier};
use crate::domain::tally::{DatedCounts, TallyState, change_between};
use crate::domain::{
    ApprovalRequest, Date, Event, RequestStatus, School, Status, Step, Student, Timeline,
    TransitionKind,
};
pub use backup::{BackupSource, write_copy};
pub use check::DamagedRecord;
pub use copy::CopyReport;
use kv::{Backend, ReadTxn};
pub use location::{Location, STORE_FILE};
use records::{Logged, each_timeline, read_timeline};
use std::ops::Bound::{Excluded, Included, Unbounded};
use tables::*;
pub use tally::TallyCheck;
pub use writer::{COMMIT_BUCKETS_MICROS, Command, CommitStats};

/// The on-disk schema this build writes. A file of a newer schema is refused.
/// Schema 2 added the jurisdiction Merkle log, schema 3 the timelines and school members, schema 4
/// the statistics counters, schema 5 the ID-number index keyed by place and birth date first,
/// schema 6 the students' tally states, schema 7 one timeline record per step, schema 8 events and
/// their contexts in the order of the log (`EVENT_RECORDS`) and each tally state beside the
/// timeline's last step, schema 9 identity indexes keyed by value and student (a person's
/// enrolments, one live at a time); opening an older file builds what it lacks once.
pub const SCHEMA_VERSION: u64 = 9;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The storage failed (disk full, I/O error, corruption). Nothing of the batch was committed.
    #[error("storage error: {0}")]
    Storage(String),
    /// Another writer changed what the transaction read (PostgreSQL's serialization failure or
    /// deadlock): nothing was committed, and the writer runs the batch again.
    #[error("storage contention: {0}")]
    Contended(String),
    #[error("duplicate identity: {field} already belongs to student {student}")]
    Duplicate { field: String, student: String },
    #[error("version conflict: the record is at version {current}, not {expected}")]
    VersionConflict { expected: u64, current: u64 },
    #[error("student {student} already has an open {kind} request {request}")]
    OpenRequestExists {
        student: String,
        kind: String,
        request: String,
    },
    #[error("request {0} is no longer pending or changed meanwhile")]
    RequestNotPending(String),
    #[error("{what} {id} already exists")]
    AlreadyExists { what: String, id: String },
    #[error("{what} {id} not found")]
    NotFound { what: String, id: String },
    /// A stored record whose bytes do not decode (the file was damaged or altered): reported
    /// with its table and key, so that everything else keeps being served.
    #[error("record_damaged: table {table} key {key}")]
    Damaged { table: String, key: String },
    #[error("store_schema_newer: 学籍库由更新版本的 xueji 写入(schema {0}),本版本不能打开")]
    NewerSchema(u64),
    /// A read-only open found no store file: it never creates one.
    #[error("store_missing: 找不到学籍库 {0}(请检查 --data 数据目录)")]
    Missing(String),
    /// A read-only open found a file of an older schema: only a writer migrates it.
    #[error(
        "store_schema_older: 学籍库为旧版格式(schema {found},本版本为 {expected}),只读打开不做升级;请先用本版本启动一次 xueji serve 完成升级"
    )]
    OlderSchema { found: u64, expected: u64 },
    /// The file is not a xueji store (no `meta` table or no schema number).
    #[error("store_invalid: {0} 不是 xueji 学籍库")]
    NotAStore(String),
    /// Another process holds the file in a way that excludes readers (an older xueji that
    /// locks the whole file, or a command that is not the server).
    #[error(
        "store_locked: 学籍库 {0} 已被另一进程独占打开(旧版 xueji 或其他命令);请待其结束,或升级服务后重试"
    )]
    Locked(String),
    /// The file was not closed cleanly and no writer is running to recover it.
    #[error(
        "store_needs_recovery: 学籍库 {0} 上次未正常关闭,只读打开无法修复;请先启动一次 xueji serve(启动即修复),再备份"
    )]
    NeedsRecovery(String),
    /// `xueji migrate` copies only into a place that holds no store and no table rows.
    #[error("store_not_empty: 目标 {0} 已有数据;迁移只写入空的数据目录或空数据库,不会覆盖")]
    NotEmpty(String),
    /// A copy (`xueji migrate`) was cut short: what it wrote is not a whole store.
    #[error(
        "store_copy_incomplete: 该学籍库是一次中断了的迁移(xueji migrate),不完整,不能打开;请清空后重新迁移"
    )]
    CopyIncomplete,
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Storage(e.to_string())
    }
}

/// A policy version as stored: its files, and who activated it when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub jurisdiction: String,
    pub version: String,
    pub effective_from: Date,
    pub content_hash: String,
    /// The content hash of the base version it was compiled with, if it extends one.
    #[serde(default)]
    pub base_hash: Option<String>,
    pub files: std::collections::BTreeMap<String, String>,
    pub activated_by: String,
    pub activated_at: String,
}

/// What the writer answers a command with.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOutput {
    Done,
}

type Job = (
    writer::Prepared,
    tokio::sync::oneshot::Sender<Result<CommandOutput, StoreError>>,
);

/// A command queued to the writer whose answer has not been read yet: to wait for on a thread
/// ([`Receipt::wait`]) or to await on an async task, so a handler awaits the commit without
/// holding a thread, and the writer's answer wakes the task itself.
#[must_use = "the command is committed or refused whether or not its answer is read"]
pub struct Receipt(tokio::sync::oneshot::Receiver<Result<CommandOutput, StoreError>>);

impl Receipt {
    /// Blocks the calling thread until the writer answers. Unlike tokio's `blocking_recv` it
    /// does not panic on a runtime's thread, but it does block it: async code awaits instead.
    pub fn wait(self) -> Result<CommandOutput, StoreError> {
        futures_executor::block_on(self)
    }
}

impl std::future::Future for Receipt {
    type Output = Result<CommandOutput, StoreError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|answer| {
            answer.unwrap_or_else(|_| {
                Err(StoreError::Storage(
                    "writer stopped before answering".into(),
                ))
            })
        })
    }
}

pub struct Store {
    backend: Arc<dyn Backend>,
    jobs: Option<mpsc::SyncSender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    salt: [u8; 32],
    stats: Arc<CommitStats>,
}

pub(crate) fn digest(salt: &[u8; 32], purpose: &str, value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(salt)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(purpose.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The `IDX_ID_CARD` key of an ID number: its address code and birth date (its first 14
/// characters), then a keyed digest of the whole number. Students of one place and age (a
/// school's intake) sit together, so an import writes a few index leaves instead of one per row
/// (1M students: 78 s → 52 s, `BENCHMARKS.md`). The prefix says no more than the student record
/// (and the national number, `G` + the ID number) already holds.
pub(crate) fn id_card_key(salt: &[u8; 32], id_card: &str) -> String {
    let near = id_card.get(..14).unwrap_or(id_card);
    key(&[near, &digest(salt, "id_card", id_card)])
}

pub(crate) fn person_digest(salt: &[u8; 32], s: &Student) -> String {
    digest(
        salt,
        "person",
        &format!(
            "{}\u{1f}{}\u{1f}{}",
            s.name.trim(),
            s.gender.as_str(),
            s.birth_date
        ),
    )
}

/// Reads from one read transaction. In the served mode each read transaction takes and releases
/// byte-range file locks (so that `xueji backup` can read beside the server), so lookups that
/// belong together, like an admission's school and identity checks, share one.
pub struct Snapshot<'s> {
    store: &'s Store,
    txn: Box<dyn ReadTxn + 's>,
}

impl Snapshot<'_> {
    fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, StoreError> {
        let t = self.txn.open_table(table)?;
        let v = t.get(key)?;
        v.map(|g| decode_at(table, key, g.as_slice())).transpose()
    }

    fn get_str(&self, table: Table, key: &str) -> Result<Option<String>, StoreError> {
        let t = self.txn.open_table(table)?;
        let v = t.get(key)?;
        Ok(v.map(|g| String::from_utf8_lossy(g.as_slice()).into_owned()))
    }

    pub fn school(&self, id: &str) -> Result<Option<School>, StoreError> {
        self.get(SCHOOLS, id)
    }

    pub fn student(&self, id: &str) -> Result<Option<Student>, StoreError> {
        let Some(jur) = self.get_str(STUDENT_LOCATOR, id)? else {
            return Ok(None);
        };
        self.get(STUDENTS, &key(&[&jur, id]))
    }

    /// See [`Store::timelines_of_school`].
    pub fn timelines_of_school(
        &self,
        jurisdiction: &str,
        school: &str,
    ) -> Result<Vec<Timeline>, StoreError> {
        let (start, end) = prefix_range(&[jurisdiction, school]);
        let members = self.txn.open_table(IDX_SCHOOL_MEMBERS)?;
        let timelines = self.txn.open_table(TIMELINES)?;
        let mut out = Vec::new();
        for item in members.range(Included(start.as_str()), Excluded(end.as_str()))? {
            let (k, _) = item?;
            let student = k.as_str().rsplit(SEP).next().unwrap_or_default();
            if let Some(t) = read_timeline(&*timelines, jurisdiction, student)? {
                out.push(t);
            } else if let Some(home) = self.get_str(STUDENT_LOCATOR, student)?
                && home != jurisdiction
                && let Some(t) = read_timeline(&*timelines, &home, student)?
            {
                // Transferred to another jurisdiction since: their timeline moved with them.
                out.push(t);
            }
        }
        Ok(out)
    }

    /// The students (enrolments) an identity index lists under `value`, in id order (the order
    /// they were created in).
    fn holders(&self, table: Table, value: &str) -> Result<Vec<String>, StoreError> {
        let (start, end) = prefix_range(&[value]);
        let t = self.txn.open_table(table)?;
        let mut out = Vec::new();
        for item in t.range(Included(start.as_str()), Excluded(end.as_str()))? {
            let (k, _) = item?;
            out.push(k.as_str().rsplit(SEP).next().unwrap_or_default().to_owned());
        }
        Ok(out)
    }

    /// Of the students listed, the first whose enrolment is live.
    fn live_of(&self, ids: Vec<String>) -> Result<Option<String>, StoreError> {
        for id in ids {
            if self.student(&id)?.is_some_and(|s| s.status.is_live()) {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// The effective date of a student's newest step (their last event), from their timeline.
    pub fn last_event_date(&self, s: &Student) -> Result<Option<crate::domain::Date>, StoreError> {
        let timelines = self.txn.open_table(TIMELINES)?;
        Ok(read_timeline(&*timelines, &s.jurisdiction, &s.id)?
            .and_then(|t| t.steps.iter().max_by_key(|st| st.seq).map(|st| st.date)))
    }

    /// Every enrolment of the person with this national number, live or ended, oldest first.
    pub fn enrolments_of(&self, national_id: &str) -> Result<Vec<String>, StoreError> {
        self.holders(IDX_NATIONAL, national_id)
    }

    /// Every enrolment under this ID number, oldest first.
    pub fn enrolments_by_id_card(&self, id_card: &str) -> Result<Vec<String>, StoreError> {
        self.holders(IDX_ID_CARD, &id_card_key(&self.store.salt, id_card))
    }

    /// Every enrolment without an ID number under this name, gender and birth date.
    pub fn enrolments_by_person(&self, s: &Student) -> Result<Vec<String>, StoreError> {
        self.holders(IDX_PERSON, &self.store.person_digest(s))
    }

    /// The live enrolment under this national number, if any.
    pub fn student_by_national_id(&self, national_id: &str) -> Result<Option<String>, StoreError> {
        self.live_of(self.enrolments_of(national_id)?)
    }

    /// The live enrolment under this ID number, if any.
    pub fn student_by_id_card(&self, id_card: &str) -> Result<Option<String>, StoreError> {
        self.live_of(self.enrolments_by_id_card(id_card)?)
    }

    /// The live enrolment without an ID number under `s`'s name, gender and birth date.
    pub fn student_by_person(&self, s: &Student) -> Result<Option<String>, StoreError> {
        self.live_of(self.enrolments_by_person(s)?)
    }
}

/// What [`Store::history_of`] reads.
#[derive(Debug, Clone)]
pub struct StudentHistory {
    pub student: Student,
    pub events: Vec<Event>,
    /// The stored timeline (`None` if there is none).
    pub timeline: Option<Timeline>,
    /// The stored tally state (`None` if there is none).
    pub tally_state: Option<TallyState>,
    /// The schools of the events whose member index lists the student.
    pub listed_at: std::collections::BTreeSet<String>,
    /// The stored bytes of the admission's decision context (what `verify` replays the record
    /// from), and their key.
    pub admission_context: Option<(String, Vec<u8>)>,
}

/// One leaf of a jurisdiction's log: which event (its name, `jur␟student␟seq(12)`; the event
/// itself is stored at the leaf's index), and the event hash recorded when it was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLeaf {
    pub index: u64,
    pub event_hash: merkle::Hash,
    pub event_name: String,
}

fn decode_leaf(key: &str, value: &[u8]) -> Result<LogLeaf, StoreError> {
    let bad = || StoreError::Storage(format!("undecodable log leaf {key}"));
    let index = key
        .rsplit(SEP)
        .next()
        .and_then(|i| i.parse().ok())
        .ok_or_else(bad)?;
    let (hash, name) = value.split_first_chunk::<32>().ok_or_else(bad)?;
    Ok(LogLeaf {
        index,
        event_hash: *hash,
        event_name: String::from_utf8(name.to_vec()).map_err(|_| bad())?,
    })
}

fn heads_in(txn: &dyn ReadTxn) -> Result<Vec<(String, Frontier)>, StoreError> {
    let t = txn.open_table(LOG_HEADS)?;
    let mut out = Vec::new();
    for item in t.iter()? {
        let (k, v) = item?;
        let f = Frontier::from_bytes(v.as_slice())
            .ok_or_else(|| StoreError::Storage(format!("undecodable log head {}", k.as_str())))?;
        out.push((k.as_str().to_owned(), f));
    }
    Ok(out)
}

/// The key range of a page: everything under `prefix`, starting after the cursor key `after`.
fn page_bounds(prefix: &[&str], after: Option<&str>) -> (String, String) {
    let (start, end) = prefix_range(prefix);
    let start = match after {
        Some(a) if a > start.as_str() => format!("{a}\u{0}"),
        _ => start,
    };
    (start, end)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Storage(format!("undecodable record: {e}")))
}

/// Decodes the record at `key` of `table`; undecodable bytes are [`StoreError::Damaged`].
fn decode_at<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| damaged(table, key))
}

pub(crate) fn damaged(table: Table, key: &str) -> StoreError {
    StoreError::Damaged {
        table: table.name().to_owned(),
        key: key.replace(SEP, "/"),
    }
}

/// Keeps what decodes of a list: a damaged record is left out (and logged by table and key,
/// never its content), so one damaged record does not take the whole list down; `verify`
/// names it.
fn skip_damaged<T>(item: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match item {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Damaged { table, key }) => {
            tracing::warn!(%table, %key, "damaged record left out of a list");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl Store {
    /// Opens a store on a backend: migrates what it holds to this build's schema, then starts
    /// the writer.
    pub fn open_backend(backend: Arc<dyn Backend>) -> Result<Store, StoreError> {
        let salt = migrate::prepare(&*backend)?;
        let (tx, rx) = mpsc::sync_channel::<Job>(writer::QUEUE_DEPTH);
        let writer_backend = backend.clone();
        let stats = Arc::new(CommitStats::default());
        let writer_stats = stats.clone();
        let writer = std::thread::Builder::new()
            .name("xueji-writer".into())
            .spawn(move || writer::run(&*writer_backend, &rx, &writer_stats))
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        Ok(Store {
            backend,
            jobs: Some(tx),
            writer: Some(writer),
            salt,
            stats,
        })
    }

    /// Whether the store can still be read. After an I/O error redb latches the handle and
    /// refuses every later read and write (`Previous I/O error`) until the file is reopened.
    pub fn probe(&self) -> Result<(), StoreError> {
        let txn = self.backend.begin_read()?;
        txn.open_table(META)?;
        Ok(())
    }

    /// Commit counters of the writer (group commit: commands per commit, latency).
    pub fn commit_stats(&self) -> &CommitStats {
        &self.stats
    }

    /// Submits commands to the writer as one stream and waits until each is durably committed
    /// (or refused); the answers are in the order of the commands. At most
    /// `MAX_BATCH` (4,096) are in flight, so the writer packs full batches while this thread
    /// encodes the next ones, and a transition filed meanwhile waits behind two batches at most.
    pub fn submit_all(&self, commands: Vec<Command>) -> Vec<Result<CommandOutput, StoreError>> {
        type Answer = Result<Receipt, StoreError>;
        let receive = |a: Answer| a?.wait();
        let mut answers = Vec::with_capacity(commands.len());
        let mut in_flight: std::collections::VecDeque<Answer> = Default::default();
        for command in commands {
            if in_flight.len() >= writer::MAX_BATCH
                && let Some(oldest) = in_flight.pop_front()
            {
                answers.push(receive(oldest));
            }
            in_flight.push_back(self.send(command, None));
        }
        answers.extend(in_flight.into_iter().map(receive));
        answers
    }

    fn send(
        &self,
        command: Command,
        snapshot: Option<&Snapshot<'_>>,
    ) -> Result<Receipt, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| StoreError::Storage("store is closed".into()))?;
        let prepared = command.prepare(self, snapshot)?;
        jobs.send((prepared, reply))
            .map_err(|_| StoreError::Storage("writer stopped".into()))?;
        Ok(Receipt(answer))
    }

    /// How an event of `before` changes the statistics counters, and the student's tally state
    /// after it, from one snapshot: from the stored tally state alone when the event is dated on
    /// or after all the student's others, else from their whole timeline (a back-dated event).
    /// `None` when the stored student is no longer `before` (the writer refuses the event).
    fn tally_change(
        txn: &dyn ReadTxn,
        before: &Student,
        before_json: &[u8],
        step: &Step,
    ) -> Result<Option<(DatedCounts, TallyState)>, StoreError> {
        let (jur, id) = (before.jurisdiction.as_str(), before.id.as_str());
        let records = txn.open_table(TIMELINES)?;
        let Some(stored) = txn.open_table(STUDENTS)?.get(key(&[jur, id]).as_str())? else {
            return Ok(None);
        };
        if writer::stored_version(stored.as_slice(), before_json, before.version)? != before.version
        {
            return Ok(None);
        }
        let state: Option<TallyState> =
            match records.get(records::tally_state_key(jur, id).as_str())? {
                Some(g) => Some(decode(g.as_slice())?),
                None => None,
            };
        if let Some(appended) = state.and_then(|s| s.append(step)) {
            return Ok(Some(appended));
        }
        let old = read_timeline(&*records, jur, id)?
            .unwrap_or_else(|| Timeline::new(before.id.clone(), Vec::new()));
        let mut steps = old.steps.clone();
        steps.push(step.clone());
        let new = Timeline::new(before.id.clone(), steps);
        Ok(Some((change_between(&old, &new), TallyState::of(&new))))
    }

    /// Submits a command to the writer and waits until it is durably committed (or refused).
    pub fn submit(&self, command: Command) -> Result<CommandOutput, StoreError> {
        self.send(command, None)?.wait()
    }

    /// [`Store::submit`] for a command decided on what `snapshot` holds: what the command needs
    /// from the store before it is queued (how an event changes the statistics) is read from
    /// the same snapshot, one read transaction for the whole transition. The snapshot ends
    /// when the command is queued, before the wait for the commit: on PostgreSQL it holds one
    /// of the readers' pooled connections, which callers waiting on the writer would otherwise
    /// all hold, and so bound how many commands one commit can carry.
    pub fn submit_in(
        &self,
        snapshot: Snapshot<'_>,
        command: Command,
    ) -> Result<CommandOutput, StoreError> {
        let receipt = self.queue_in(&snapshot, command)?;
        drop(snapshot);
        receipt.wait()
    }

    /// A salted, keyed digest (HMAC-SHA256) of a personal value: ID numbers are never hashed bare.
    pub fn digest(&self, purpose: &str, value: &str) -> String {
        digest(&self.salt, purpose, value)
    }

    /// The digest under which a person without an ID number is indexed.
    pub fn person_digest(&self, s: &Student) -> String {
        person_digest(&self.salt, s)
    }

    /// One read transaction for several lookups that belong together.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, StoreError> {
        Ok(Snapshot {
            store: self,
            txn: self.backend.begin_read()?,
        })
    }

    fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, StoreError> {
        self.snapshot()?.get(table, key)
    }

    fn get_str(&self, table: Table, key: &str) -> Result<Option<String>, StoreError> {
        self.snapshot()?.get_str(table, key)
    }

    /// `(key, event)` of a jurisdiction's events in log order, after the cursor key `after`
    /// (exclusive), at most `limit`.
    pub fn events_of_jurisdiction(
        &self,
        jurisdiction: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Event)>, StoreError> {
        let (start, end) = page_bounds(&[jurisdiction], after);
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(EVENT_RECORDS)?;
        let mut out = Vec::new();
        for item in t.range(Included(start.as_str()), Excluded(end.as_str()))? {
            let (k, v) = item?;
            if let Some((_, _, Logged::Event)) = records::parse_event_key(k.as_str()) {
                out.push((
                    k.as_str().to_owned(),
                    decode_at(EVENT_RECORDS, k.as_str(), v.as_slice())?,
                ));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Keys under a prefix, after `after` (exclusive), at most `limit`.
    fn keys_under(
        &self,
        table: Table,
        prefix: &[&str],
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let (start, end) = page_bounds(prefix, after);
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(table)?;
        let mut out = Vec::new();
        for item in t.range(Included(start.as_str()), Excluded(end.as_str()))? {
            let (k, _) = item?;
            out.push(k.as_str().to_owned());
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn school(&self, id: &str) -> Result<Option<School>, StoreError> {
        self.snapshot()?.school(id)
    }

    pub fn schools(&self) -> Result<Vec<School>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(SCHOOLS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            if let Some(school) = skip_damaged(decode_at(SCHOOLS, k.as_str(), v.as_slice()))? {
                out.push(school);
            }
        }
        Ok(out)
    }

    /// `(id, school)` of the schools `keep` accepts, by id, after the id `after` (exclusive), at
    /// most `limit`, from one read transaction.
    pub fn schools_page(
        &self,
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&School) -> bool,
    ) -> Result<Vec<(String, School)>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(SCHOOLS)?;
        let range = match after {
            Some(a) => t.range(Excluded(a), Unbounded)?,
            None => t.iter()?,
        };
        let mut out = Vec::new();
        for item in range {
            if out.len() >= limit {
                break;
            }
            let (id, v) = item?;
            let school: School = decode(v.as_slice())?;
            if keep(&school) {
                out.push((id.as_str().to_owned(), school));
            }
        }
        Ok(out)
    }

    pub fn student_jurisdiction(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.get_str(STUDENT_LOCATOR, id)
    }

    /// The largest student id in the store (ids grow with time, see `service`).
    pub fn last_student_id(&self) -> Result<Option<String>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(STUDENT_LOCATOR)?;
        Ok(t.last()?.map(|(k, _)| k.as_str().to_owned()))
    }

    pub fn student(&self, id: &str) -> Result<Option<Student>, StoreError> {
        self.snapshot()?.student(id)
    }

    /// A student's record, events and stored timeline, and which of the schools its events
    /// place it at list it as a member: all from one snapshot, for `verify` to compare.
    pub fn history_of(&self, id: &str) -> Result<Option<StudentHistory>, StoreError> {
        let txn = self.backend.begin_read()?;
        let loc = txn.open_table(STUDENT_LOCATOR)?;
        let Some(jur) = loc
            .get(id)?
            .map(|g| String::from_utf8_lossy(g.as_slice()).into_owned())
        else {
            return Ok(None);
        };
        let student_key = key(&[&jur, id]);
        let Some(student) = txn
            .open_table(STUDENTS)?
            .get(student_key.as_str())?
            .map(|g| decode_at::<Student>(STUDENTS, &student_key, g.as_slice()))
            .transpose()?
        else {
            return Ok(None);
        };
        let timelines = txn.open_table(TIMELINES)?;
        let (steps, places): (Vec<Step>, Vec<records::LogPlace>) =
            records::read_steps(&*timelines, &jur, id)?
                .into_iter()
                .unzip();
        let event_records = txn.open_table(EVENT_RECORDS)?;
        let admission_context = match places.first() {
            Some(place) => {
                let k = records::context_key(place.log(&jur), place.index);
                event_records
                    .get(k.as_str())?
                    .map(|g| (k.clone(), g.as_slice().to_vec()))
            }
            None => None,
        };
        let events = records::events_at(&*event_records, &jur, &places)?;
        let state_key = records::tally_state_key(&jur, id);
        let tally_state = timelines
            .get(state_key.as_str())?
            .map(|g| decode_at::<TallyState>(TIMELINES, &state_key, g.as_slice()))
            .transpose()?;
        let timeline = (!steps.is_empty()).then(|| Timeline::new(id.to_owned(), steps));
        let members = txn.open_table(IDX_SCHOOL_MEMBERS)?;
        let mut listed_at = std::collections::BTreeSet::new();
        for e in &events {
            if members
                .get(key(&[e.placed_in(), &e.after.school, id]).as_str())?
                .is_some()
            {
                listed_at.insert(e.after.school.clone());
            }
        }
        Ok(Some(StudentHistory {
            student,
            events,
            timeline,
            tally_state,
            listed_at,
            admission_context,
        }))
    }

    pub fn student_by_national_id(&self, national_id: &str) -> Result<Option<String>, StoreError> {
        self.snapshot()?.student_by_national_id(national_id)
    }

    pub fn student_by_id_card(&self, id_card: &str) -> Result<Option<String>, StoreError> {
        self.snapshot()?.student_by_id_card(id_card)
    }

    pub fn student_by_person(&self, s: &Student) -> Result<Option<String>, StoreError> {
        self.snapshot()?.student_by_person(s)
    }

    /// Students of a school (optionally one grade and class), in grade, class, id order.
    /// `after` is the cursor: the last key returned by the previous page.
    pub fn students_of_school(
        &self,
        jurisdiction: &str,
        school: &str,
        grade: Option<u8>,
        class: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Student)>, StoreError> {
        let g = grade.map(grade_part);
        let mut prefix = vec![jurisdiction, school];
        if let Some(g) = &g {
            prefix.push(g);
            if let Some(c) = class {
                prefix.push(c);
            }
        }
        let keys = self.keys_under(IDX_CLASS, &prefix, after, limit)?;
        self.students_for_index_keys(keys)
    }

    /// Students with a status in a jurisdiction, by id.
    pub fn students_with_status(
        &self,
        jurisdiction: &str,
        status: Status,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Student)>, StoreError> {
        let keys = self.keys_under(IDX_STATUS, &[jurisdiction, status.as_str()], after, limit)?;
        self.students_for_index_keys(keys)
    }

    /// Every student of a jurisdiction, by id.
    pub fn students_of_jurisdiction(
        &self,
        jurisdiction: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Student)>, StoreError> {
        let (start, end) = page_bounds(&[jurisdiction], after);
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(STUDENTS)?;
        let mut out = Vec::new();
        for item in t
            .range(Included(start.as_str()), Excluded(end.as_str()))?
            .take(limit)
        {
            let (k, v) = item?;
            if let Some(s) = skip_damaged(decode_at(STUDENTS, k.as_str(), v.as_slice()))? {
                out.push((k.as_str().to_owned(), s));
            }
        }
        Ok(out)
    }

    fn students_for_index_keys(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Student)>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(STUDENTS)?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let mut parts = k.split(SEP);
            let jur = parts.next().unwrap_or_default();
            let Some(student) = k.rsplit(SEP).next() else {
                continue;
            };
            let student_key = key(&[jur, student]);
            if let Some(v) = t.get(student_key.as_str())?
                && let Some(s) = skip_damaged(decode_at(STUDENTS, &student_key, v.as_slice()))?
            {
                out.push((k.clone(), s));
            }
        }
        Ok(out)
    }

    /// `(student, deadline kind, date)` of every deadline on or before `as_of`.
    pub fn due_deadlines(
        &self,
        jurisdiction: &str,
        as_of: Date,
    ) -> Result<Vec<(String, String, Date)>, StoreError> {
        let (start, _) = prefix_range(&[jurisdiction]);
        let mut end = key(&[jurisdiction, &as_of.to_string()]);
        end.push('\u{20}');
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(IDX_DEADLINE)?;
        let mut out = Vec::new();
        for item in t.range(Included(start.as_str()), Excluded(end.as_str()))? {
            let (k, _) = item?;
            let parts: Vec<&str> = k.as_str().split(SEP).collect();
            if let [_, date, student, kind] = parts.as_slice()
                && let Ok(d) = Date::parse(date)
            {
                out.push(((*student).to_owned(), (*kind).to_owned(), d));
            }
        }
        Ok(out)
    }

    /// A student's events, oldest first: found from their timeline steps, which name each
    /// event's place in the jurisdiction's log.
    pub fn events(&self, student: &str) -> Result<Vec<Event>, StoreError> {
        let snapshot = self.snapshot()?;
        let Some(jur) = snapshot.get_str(STUDENT_LOCATOR, student)? else {
            return Ok(Vec::new());
        };
        let txn = &snapshot.txn;
        let steps = records::read_steps(&*txn.open_table(TIMELINES)?, &jur, student)?;
        records::events_at(
            &*txn.open_table(EVENT_RECORDS)?,
            &jur,
            steps.iter().map(|(_, place)| place),
        )
    }

    /// The context a recorded decision was taken on.
    pub fn context(
        &self,
        event: &Event,
    ) -> Result<Option<crate::domain::event::DecisionContext>, StoreError> {
        let snapshot = self.snapshot()?;
        // The student's steps are kept under their jurisdiction now (the event's, unless they
        // have moved since).
        let home = snapshot
            .get_str(STUDENT_LOCATOR, &event.student)?
            .unwrap_or_else(|| event.jurisdiction.clone());
        let step_key = records::step_key(&home, &event.student, event.seq);
        let Some(step) = snapshot.txn.open_table(TIMELINES)?.get(step_key.as_str())? else {
            return Ok(None);
        };
        let (_, place) = records::decode_step(step.as_slice())?;
        snapshot.get(
            EVENT_RECORDS,
            &records::context_key(place.log(&home), place.index),
        )
    }

    /// The timeline of every student ever placed at a school (by any event): what a roster of
    /// that school can contain, whatever its date.
    pub fn timelines_of_school(
        &self,
        jurisdiction: &str,
        school: &str,
    ) -> Result<Vec<Timeline>, StoreError> {
        self.snapshot()?.timelines_of_school(jurisdiction, school)
    }

    /// Calls `visit` with the timeline of every student of a jurisdiction, in student id order,
    /// all read from one snapshot. One timeline is in memory at a time.
    pub fn for_each_timeline(
        &self,
        jurisdiction: &str,
        mut visit: impl FnMut(Timeline),
    ) -> Result<(), StoreError> {
        let txn = self.backend.begin_read()?;
        each_timeline(&*txn.open_table(TIMELINES)?, Some(jurisdiction), |_, t| {
            visit(t);
            Ok(())
        })
    }

    /// The event at `index` of a jurisdiction's log.
    pub fn logged_event(
        &self,
        jurisdiction: &str,
        index: u64,
    ) -> Result<Option<Event>, StoreError> {
        self.get(EVENT_RECORDS, &records::event_key(jurisdiction, index))
    }

    /// The frontier of every jurisdiction's log.
    pub fn log_heads(&self) -> Result<Vec<(String, Frontier)>, StoreError> {
        heads_in(&*self.backend.begin_read()?)
    }

    /// The frontier of one jurisdiction's log (empty when it has no event).
    pub fn log_head(&self, jurisdiction: &str) -> Result<Frontier, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(LOG_HEADS)?;
        match t.get(jurisdiction)? {
            Some(g) => Frontier::from_bytes(g.as_slice())
                .ok_or_else(|| StoreError::Storage(format!("undecodable log head {jurisdiction}"))),
            None => Ok(Frontier::default()),
        }
    }

    /// Log leaves of a jurisdiction from `from` (an index), at most `limit`, in log order.
    pub fn log_leaves(
        &self,
        jurisdiction: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LogLeaf>, StoreError> {
        let (_, end) = prefix_range(&[jurisdiction]);
        let start = key(&[jurisdiction, &log_index_part(from)]);
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(LOG_LEAVES)?;
        let mut out = Vec::new();
        for item in t.range(Included(start.as_str()), Excluded(end.as_str()))? {
            let (k, v) = item?;
            out.push(decode_leaf(k.as_str(), v.as_slice())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The log index of every event stored for a jurisdiction (what the log must account for).
    pub fn logged_event_indices(&self, jurisdiction: &str) -> Result<Vec<u64>, StoreError> {
        let txn = self.backend.begin_read()?;
        let (start, end) = prefix_range(&[jurisdiction]);
        let mut out = Vec::new();
        for item in txn
            .open_table(EVENT_RECORDS)?
            .range(Included(start.as_str()), Excluded(end.as_str()))?
        {
            let (k, _) = item?;
            if let Some((_, index, Logged::Event)) = records::parse_event_key(k.as_str()) {
                out.push(index);
            }
        }
        Ok(out)
    }

    /// Whether a transfer certificate has been used for an admission here.
    pub fn certificate_used(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.get_str(CERTIFICATES_USED, id)?.is_some())
    }

    pub fn request(&self, id: &str) -> Result<Option<ApprovalRequest>, StoreError> {
        self.get(REQUESTS, id)
    }

    pub fn open_request(
        &self,
        student: &str,
        kind: TransitionKind,
    ) -> Result<Option<String>, StoreError> {
        self.get_str(IDX_OPEN_REQUEST, &key(&[student, kind.as_str()]))
    }

    /// Requests of a jurisdiction with a status, by id.
    pub fn requests_with_status(
        &self,
        jurisdiction: &str,
        status: RequestStatus,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ApprovalRequest)>, StoreError> {
        let keys = self.keys_under(
            IDX_REQUEST_STATUS,
            &[jurisdiction, status.as_str()],
            after,
            limit,
        )?;
        let mut out = Vec::new();
        for k in keys {
            if let Some(id) = k.rsplit(SEP).next()
                && let Some(r) = self.request(id)?
            {
                out.push((k.clone(), r));
            }
        }
        Ok(out)
    }

    pub fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        self.get(TOKENS, hash)
    }

    pub fn token_by_id(&self, id: &str) -> Result<Option<TokenRecord>, StoreError> {
        match self.get_str(TOKEN_IDS, id)? {
            Some(hash) => self.token(&hash),
            None => Ok(None),
        }
    }

    /// `(id, record)` of the tokens `keep` accepts, by id, after the id `after` (exclusive), at
    /// most `limit`, from one read transaction.
    pub fn tokens(
        &self,
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&TokenRecord) -> bool,
    ) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        let txn = self.backend.begin_read()?;
        let ids = txn.open_table(TOKEN_IDS)?;
        let records = txn.open_table(TOKENS)?;
        let range = match after {
            Some(a) => ids.range(Excluded(a), Unbounded)?,
            None => ids.iter()?,
        };
        let mut out = Vec::new();
        for item in range {
            if out.len() >= limit {
                break;
            }
            let (id, hash) = item?;
            let hash = String::from_utf8_lossy(hash.as_slice()).into_owned();
            let Some(v) = records.get(hash.as_str())? else {
                continue;
            };
            // A damaged record is left out; `verify` names it.
            let Some(record) = skip_damaged(decode_at::<TokenRecord>(TOKENS, &hash, v.as_slice()))?
            else {
                continue;
            };
            if keep(&record) {
                out.push((id.as_str().to_owned(), record));
            }
        }
        Ok(out)
    }

    pub fn has_tokens(&self) -> Result<bool, StoreError> {
        let txn = self.backend.begin_read()?;
        Ok(!txn.open_table(TOKENS)?.is_empty()?)
    }

    pub fn policy_versions(&self) -> Result<Vec<PolicyRecord>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(POLICIES)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            out.push(decode(v.as_slice())?);
        }
        Ok(out)
    }

    /// The answer stored under an idempotency digest, unless it expired by `now` (seconds since
    /// 1970).
    pub fn idempotent(&self, key: &str, now: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(IDEMPOTENCY)?;
        idempotency::get(&*t, key, now)
    }

    /// How many idempotent answers are stored (live or not yet purged).
    pub fn idempotent_answers(&self) -> Result<u64, StoreError> {
        let txn = self.backend.begin_read()?;
        Ok(idempotency::usage(&*txn.open_table(IDEMPOTENCY)?)?.0)
    }

    /// The bytes the idempotent answers take: keys and values of their table.
    pub fn idempotent_bytes(&self) -> Result<u64, StoreError> {
        let txn = self.backend.begin_read()?;
        Ok(idempotency::usage(&*txn.open_table(IDEMPOTENCY)?)?.1)
    }

    /// Ids of every student, by jurisdiction then id (for whole-store verification).
    pub fn all_student_ids(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(STUDENT_LOCATOR)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, _) = item?;
            out.push(k.as_str().to_owned());
        }
        Ok(out)
    }

    /// Stops the writer after the commands already queued, so every acknowledged write is on disk.
    pub fn close(&mut self) {
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store {
    /// The stored hash of a token id (for revocation).
    pub fn token_hash_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.get_str(TOKEN_IDS, id)
    }
}
