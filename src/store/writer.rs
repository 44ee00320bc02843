//! The single writer: drains queued commands into one write transaction per batch (group
//! commit), commits it durably, then answers every caller of the batch.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::Bound::{Excluded, Included};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::kv::{Backend, ReadAhead, Table, WriteTable, WriteTxn};

use super::records::{self, encode_step};
use super::tables::*;
use super::{
    CommandOutput, Job, PolicyRecord, Store, StoreError, decode, id_card_key, person_digest, tally,
};
use crate::auth::TokenRecord;
use crate::domain::merkle::{self, Frontier};
use crate::domain::problem::{Problem, ProblemStatus};
use crate::domain::tally::{DatedCounts, dated_changes};
use crate::domain::{ApprovalRequest, Event, RequestStatus, School, Step, Student, Timeline};

/// Commands queued beyond this make submitters wait (back-pressure).
pub const QUEUE_DEPTH: usize = 4096;
/// The most commands one commit carries. Interactive writers rarely queue more than their
/// number; a bulk import's stream (`Store::submit_all`) keeps this many in flight, and each
/// commit rewrites the pages it touches once however many rows share them: importing a million
/// students took 92 s with 4,096, 114 s with 1,024 (`BENCHMARKS.md`). The price: a transition
/// filed during an import waits behind the batch being committed and the one queued before it,
/// about 0.2 s each at the writer's 47 µs per new student.
pub const MAX_BATCH: usize = 4096;

/// A change to the store. Each is all-or-nothing: it checks every precondition before writing.
#[derive(Debug, Clone)]
pub enum Command {
    PutSchool {
        school: Box<School>,
        must_be_new: bool,
    },
    /// A new student with the first event of its chain (the admission).
    CreateStudent {
        student: Box<Student>,
        event: Box<Event>,
        context: Option<Vec<u8>>,
    },
    /// One recorded transition: the student moves from `before` to `after` and `event` is
    /// appended; `close_request` (already in its final state) is stored in the same transaction.
    RecordEvent {
        before: Box<Student>,
        after: Box<Student>,
        event: Box<Event>,
        context: Option<Vec<u8>>,
        close_request: Option<Box<ApprovalRequest>>,
    },
    /// A new pending request; the student must still be at `request.student_version`.
    OpenRequest {
        request: Box<ApprovalRequest>,
    },
    /// A request changed (an approval, a rejection, a denial at the last step); it must be
    /// pending with `expected_approvals` approvals in the store.
    UpdateRequest {
        request: Box<ApprovalRequest>,
        expected_approvals: usize,
    },
    PutToken {
        hash: String,
        record: Box<TokenRecord>,
    },
    PutPolicy {
        record: Box<PolicyRecord>,
    },
    /// The answer to a write sent with `Idempotency-Key`, under the digest the HTTP layer made
    /// of it, stored at `at` (seconds since 1970). The first live answer wins; expired ones are
    /// replaced and purged (`store::idempotency`).
    PutIdempotent {
        key: String,
        value: Vec<u8>,
        at: u64,
    },
    /// A batch job's record (`BATCHES`) and report items (`BATCH_ITEMS`, by place in the
    /// batch) that record no change of a student (denied, skipped), or a job's new status.
    PutBatch {
        batch: String,
        record: Option<Vec<u8>>,
        items: Vec<(u64, Vec<u8>)>,
    },
    /// `inner` (a `RecordEvent` or `OpenRequest` of one student of a batch) and that student's
    /// report item, in one transaction: an item is stored exactly when its change is, so a
    /// batch resumed after a crash knows every student it has done and never does one twice.
    ForBatch {
        inner: Box<Command>,
        batch: String,
        index: u64,
        item: Vec<u8>,
    },
    /// A new problem record; refused (`AlreadyExists`, naming the open one) while another open
    /// problem has its key.
    OpenProblem {
        problem: Box<Problem>,
    },
    /// A problem's resolution: it must be open in the store; when it ends resolved, its key is
    /// free again.
    UpdateProblem {
        problem: Box<Problem>,
    },
}

/// A command with what the submitting thread computed for it, so that the one writer thread
/// does only B-tree work: JSON encodings and index keys (with their HMAC digests) are made in
/// parallel by the callers, before queueing.
pub(super) struct Prepared {
    command: Command,
    encoded: Encoded,
}

enum Encoded {
    Nothing,
    NewStudent {
        student: Vec<u8>,
        event: Vec<u8>,
        index: IndexEntries,
        sealed: SealedEvent,
        tallies: DatedCounts,
    },
    Record {
        /// `before` as stored: equal bytes in the store prove the version without decoding.
        before: Vec<u8>,
        after: Vec<u8>,
        event: Vec<u8>,
        old_index: IndexEntries,
        new_index: IndexEntries,
        sealed: SealedEvent,
        /// How the event changes the statistics counters and the student's tally state after
        /// it, from what is stored with `before`; `None` when the store had already moved past
        /// `before` (the writer then refuses the command on its version anyway).
        tallies: Option<(DatedCounts, Vec<u8>)>,
    },
}

/// What the log and the timeline take from an event, made before it reaches the writer, so an
/// unsealed event is refused before anything is written.
pub(super) struct SealedEvent {
    hash: merkle::Hash,
    step: Vec<u8>,
}

impl SealedEvent {
    fn of(e: &Event) -> Result<SealedEvent, StoreError> {
        Ok(SealedEvent {
            hash: merkle::from_hex(&e.hash)
                .ok_or_else(|| StoreError::Storage("internal: event is not sealed".into()))?,
            step: encode_step(e)?,
        })
    }
}

impl Command {
    /// Runs on the submitting thread: everything that needs no write lock, including how the
    /// event changes the statistics counters (a student's whole timeline is decoded for it),
    /// so that the one writer thread does only B-tree work.
    pub(super) fn prepare(
        self,
        store: &Store,
        snapshot: Option<&super::Snapshot<'_>>,
    ) -> Result<Prepared, StoreError> {
        let encoded = encode(&self, store, snapshot)?;
        Ok(Prepared {
            command: self,
            encoded,
        })
    }
}

/// What the submitting thread computes for a command (see [`Command::prepare`]).
fn encode(
    command: &Command,
    store: &Store,
    snapshot: Option<&super::Snapshot<'_>>,
) -> Result<Encoded, StoreError> {
    let salt = &store.salt;
    Ok({
        match command {
            Command::CreateStudent { student, event, .. } => {
                let first = Timeline::new(student.id.clone(), vec![Step::of(event)]);
                Encoded::NewStudent {
                    student: serde_json::to_vec(student)?,
                    event: serde_json::to_vec(event)?,
                    index: index_entries(student, salt),
                    sealed: SealedEvent::of(event)?,
                    tallies: dated_changes(&first),
                }
            }
            Command::RecordEvent {
                before,
                after,
                event,
                ..
            } => {
                let before_json = serde_json::to_vec(before)?;
                let step = Step::of(event);
                let tallies = match snapshot {
                    Some(s) => Store::tally_change(&*s.txn, before, &before_json, &step)?,
                    None => {
                        Store::tally_change(&*store.snapshot()?.txn, before, &before_json, &step)?
                    }
                };
                Encoded::Record {
                    before: before_json,
                    after: serde_json::to_vec(after)?,
                    event: serde_json::to_vec(event)?,
                    old_index: index_entries(before, salt),
                    new_index: index_entries(after, salt),
                    sealed: SealedEvent::of(event)?,
                    tallies: tallies
                        .map(|(change, state)| {
                            Ok::<_, StoreError>((change, serde_json::to_vec(&state)?))
                        })
                        .transpose()?,
                }
            }
            Command::ForBatch { inner, .. } => encode(inner, store, snapshot)?,
            _ => Encoded::Nothing,
        }
    })
}

/// Commit counters, read by the metrics endpoint and the benchmarks.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub commits: AtomicU64,
    pub commands: AtomicU64,
    pub failed_commits: AtomicU64,
    /// Total and per-bucket commit latency; buckets are `COMMIT_BUCKETS_MICROS`.
    pub micros_total: AtomicU64,
    pub buckets: [AtomicU64; COMMIT_BUCKETS_MICROS.len()],
}

/// Upper bounds (µs) of the commit latency histogram.
pub const COMMIT_BUCKETS_MICROS: [u64; 8] =
    [250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000];

pub(super) fn run(backend: &dyn Backend, jobs: &mpsc::Receiver<Job>, stats: &CommitStats) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let outcome = commit_batch(backend, &batch);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .commands
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.micros_total.fetch_add(micros, Ordering::Relaxed);
        for (i, bound) in COMMIT_BUCKETS_MICROS.iter().enumerate() {
            if micros <= *bound {
                stats.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        if outcome.is_err() {
            stats.failed_commits.fetch_add(1, Ordering::Relaxed);
        }
        match outcome {
            Ok(results) => {
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, commands = batch.len(), "batch commit failed; nothing of it was written");
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

struct Tables<'t> {
    schools: Tbl<'t>,
    students: Tbl<'t>,
    events: Tbl<'t>,
    timelines: Tbl<'t>,
    locator: Tbl<'t>,
    national: Tbl<'t>,
    id_card: Tbl<'t>,
    person: Tbl<'t>,
    class: Tbl<'t>,
    status: Tbl<'t>,
    deadline: Tbl<'t>,
    requests: Tbl<'t>,
    open_request: Tbl<'t>,
    request_status: Tbl<'t>,
    tokens: Tbl<'t>,
    token_ids: Tbl<'t>,
    policies: Tbl<'t>,
    idempotency: Tbl<'t>,
    log_leaves: Tbl<'t>,
    log_heads: Tbl<'t>,
    school_members: Tbl<'t>,
    stat_totals: Tbl<'t>,
    stat_changes: Tbl<'t>,
    batches: Tbl<'t>,
    batch_items: Tbl<'t>,
    certificates_used: Tbl<'t>,
    problems: Tbl<'t>,
    open_problems: Tbl<'t>,
    /// The statistics changes of the batch's events by jurisdiction, added to the stored sums
    /// once, before the commit.
    pending_tallies: HashMap<String, DatedCounts>,
    /// The heads of the logs the batch appends to, as the batch leaves them: each is read once
    /// and written once, before the commit, however many of the batch's events it takes.
    log_frontiers: HashMap<String, Frontier>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t dyn WriteTxn) -> Result<Self, StoreError> {
        Ok(Tables {
            schools: txn.open_table(SCHOOLS)?,
            students: txn.open_table(STUDENTS)?,
            events: txn.open_table(EVENT_RECORDS)?,
            timelines: txn.open_table(TIMELINES)?,
            locator: txn.open_table(STUDENT_LOCATOR)?,
            national: txn.open_table(IDX_NATIONAL)?,
            id_card: txn.open_table(IDX_ID_CARD)?,
            person: txn.open_table(IDX_PERSON)?,
            class: txn.open_table(IDX_CLASS)?,
            status: txn.open_table(IDX_STATUS)?,
            deadline: txn.open_table(IDX_DEADLINE)?,
            requests: txn.open_table(REQUESTS)?,
            open_request: txn.open_table(IDX_OPEN_REQUEST)?,
            request_status: txn.open_table(IDX_REQUEST_STATUS)?,
            tokens: txn.open_table(TOKENS)?,
            token_ids: txn.open_table(TOKEN_IDS)?,
            policies: txn.open_table(POLICIES)?,
            idempotency: txn.open_table(IDEMPOTENCY)?,
            log_leaves: txn.open_table(LOG_LEAVES)?,
            log_heads: txn.open_table(LOG_HEADS)?,
            school_members: txn.open_table(IDX_SCHOOL_MEMBERS)?,
            stat_totals: txn.open_table(STAT_TOTALS)?,
            stat_changes: txn.open_table(STAT_CHANGES)?,
            batches: txn.open_table(BATCHES)?,
            batch_items: txn.open_table(BATCH_ITEMS)?,
            certificates_used: txn.open_table(CERTIFICATES_USED)?,
            problems: txn.open_table(PROBLEMS)?,
            open_problems: txn.open_table(IDX_OPEN_PROBLEM)?,
            pending_tallies: HashMap::new(),
            log_frontiers: HashMap::new(),
        })
    }
}

/// How many times a batch is run before contention fails it.
const COMMIT_TRIES: u32 = 10;

/// One write transaction for the whole batch, run again from the start on a fresh transaction
/// while the backend reports contention (another writer changed what it read): every command's
/// preconditions are checked anew each time, so the batch applies once, on what is then stored.
fn commit_batch(
    backend: &dyn Backend,
    batch: &[Job],
) -> Result<Vec<Result<CommandOutput, StoreError>>, StoreError> {
    let mut tries = 1;
    loop {
        match try_batch(backend, batch) {
            Err(StoreError::Contended(why)) if tries < COMMIT_TRIES => {
                tracing::warn!(tries, reason = %why, "batch contended; running it again");
                std::thread::sleep(Duration::from_millis(1 << tries.min(6)));
                tries += 1;
            }
            Err(StoreError::Contended(why)) => {
                return Err(StoreError::Storage(format!(
                    "still contended after {COMMIT_TRIES} tries: {why}"
                )));
            }
            outcome => return outcome,
        }
    }
}

/// The outer error aborts the batch (a storage failure); the inner results are each command's
/// own answer.
fn try_batch(
    backend: &dyn Backend,
    batch: &[Job],
) -> Result<Vec<Result<CommandOutput, StoreError>>, StoreError> {
    let txn = backend.begin_write()?;
    if txn.reads_ahead() {
        let mut keys = ReadAhead::new();
        for (prepared, _) in batch {
            reads_of(&prepared.command, &prepared.encoded, &mut keys);
        }
        txn.read_ahead(&keys)?;
    }
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut t = Tables::open(&*txn)?;
        for (prepared, _) in batch {
            match apply(&mut t, prepared) {
                Ok(out) => results.push(Ok(out)),
                Err(Refusal::Refused(e)) => results.push(Err(e)),
                Err(Refusal::Storage(e)) => return Err(e),
            }
        }
        let Tables {
            stat_totals,
            stat_changes,
            pending_tallies,
            log_heads,
            log_frontiers,
            ..
        } = &mut t;
        for (log, frontier) in log_frontiers.iter() {
            log_heads.insert(log, frontier.to_bytes().as_slice())?;
        }
        tally::add_changes(
            &*txn,
            &mut **stat_totals,
            &mut **stat_changes,
            pending_tallies,
        )?;
    }
    txn.commit()?;
    Ok(results)
}

/// The keys a command's point reads will ask for, as far as they are known before it runs (a
/// miss costs its own read, and a key read ahead for nothing costs little): the hot commands,
/// a transition, an admission and a request's moves, not the rare ones.
fn reads_of(command: &Command, encoded: &Encoded, keys: &mut ReadAhead) {
    let mut add = |table: Table, key: String| {
        keys.entry(table).or_default().insert(key);
    };
    match (command, encoded) {
        (Command::CreateStudent { student, event, .. }, Encoded::NewStudent { tallies, .. }) => {
            add(STUDENT_LOCATOR, student.id.clone());
            if let Some(certificate) = certificate_of(event) {
                add(CERTIFICATES_USED, certificate.to_owned());
            }
            log_reads(&mut add, event);
            tally::counters_read(event.placed_in(), tallies, keys);
        }
        (
            Command::RecordEvent {
                before,
                event,
                close_request,
                ..
            },
            Encoded::Record {
                old_index,
                new_index,
                tallies,
                ..
            },
        ) => {
            add(STUDENTS, key(&[&before.jurisdiction, &before.id]));
            let (stale, _) = old_index.minus(new_index);
            for (table, entry) in [
                (IDX_NATIONAL, Some(stale.national)),
                (IDX_ID_CARD, stale.id_card),
                (IDX_PERSON, stale.person),
                (IDX_CLASS, Some(stale.class)),
                (IDX_STATUS, Some(stale.status)),
            ] {
                if let Some(entry) = entry.filter(|e| !e.is_empty()) {
                    add(table, entry);
                }
            }
            for deadline in stale.deadlines {
                add(IDX_DEADLINE, deadline);
            }
            log_reads(&mut add, event);
            if let Some(r) = close_request {
                request_reads(&mut add, r);
            }
            // Counted where the event places the student; one who has been in several
            // jurisdictions is counted by school (`merge_by_school`), read when added.
            if let Some((dated, _)) = tallies {
                tally::counters_read(event.placed_in(), dated, keys);
            }
        }
        (Command::OpenRequest { request }, _) => {
            add(STUDENTS, key(&[&request.jurisdiction, &request.student]));
            request_reads(&mut add, request);
        }
        (Command::UpdateRequest { request, .. }, _) => request_reads(&mut add, request),
        (Command::ForBatch { inner, .. }, encoded) => reads_of(inner, encoded, keys),
        _ => {}
    }
}

/// What recording an event reads: the heads of the logs it goes into and its student's entry
/// among the members of the school it places them at.
fn log_reads(add: &mut impl FnMut(Table, String), e: &Event) {
    add(LOG_HEADS, e.jurisdiction.clone());
    add(LOG_HEADS, e.placed_in().to_owned());
    add(
        IDX_SCHOOL_MEMBERS,
        key(&[e.placed_in(), &e.after.school, &e.student]),
    );
}

/// What storing a request reads: the stored request, its open-request entry, and its
/// request-status entries while pending (the state a stored request moves from).
fn request_reads(add: &mut impl FnMut(Table, String), r: &ApprovalRequest) {
    add(REQUESTS, r.id.clone());
    add(IDX_OPEN_REQUEST, key(&[&r.student, r.input.kind.as_str()]));
    for jur in request_jurisdictions(r) {
        add(
            IDX_REQUEST_STATUS,
            key(&[jur, RequestStatus::Pending.as_str(), &r.id]),
        );
    }
}

/// Why a command did not apply: refused before writing (the batch goes on), or a storage
/// failure possibly mid-write (the whole batch is aborted).
enum Refusal {
    Refused(StoreError),
    Storage(StoreError),
}

impl<E: Into<StoreError>> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Storage(e.into())
    }
}

type Tbl<'t> = Box<dyn WriteTable + 't>;

fn get_str(t: &Tbl<'_>, k: &str) -> Result<Option<String>, Refusal> {
    Ok(t.get(k)?
        .map(|g| String::from_utf8_lossy(g.as_slice()).into_owned()))
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, Refusal> {
    Ok(serde_json::to_vec(v)?)
}

/// The index entries a student contributes, by table (what the writer keeps and `verify`
/// expects).
#[derive(Default, Clone, PartialEq, Eq)]
pub(super) struct IndexEntries {
    pub(super) national: String,
    pub(super) id_card: Option<String>,
    pub(super) person: Option<String>,
    pub(super) class: String,
    pub(super) status: String,
    pub(super) deadlines: Vec<String>,
}

impl IndexEntries {
    /// Whether the entries that must be unique across the store differ.
    fn unique_keys_differ(&self, new: &IndexEntries) -> bool {
        self.national != new.national || self.id_card != new.id_card || self.person != new.person
    }

    /// Splits a change into the entries to remove and those to add, leaving alone the ones that
    /// stay (a class change touches only the class key).
    fn minus(&self, new: &IndexEntries) -> (IndexEntries, IndexEntries) {
        let differ =
            |a: &Option<String>, b: &Option<String>| (a != b).then(|| (a.clone(), b.clone()));
        let mut stale = IndexEntries::default();
        let mut fresh = IndexEntries::default();
        if self.national != new.national {
            stale.national = self.national.clone();
            fresh.national = new.national.clone();
        }
        if let Some((a, b)) = differ(&self.id_card, &new.id_card) {
            (stale.id_card, fresh.id_card) = (a, b);
        }
        if let Some((a, b)) = differ(&self.person, &new.person) {
            (stale.person, fresh.person) = (a, b);
        }
        if self.class != new.class {
            stale.class = self.class.clone();
            fresh.class = new.class.clone();
        }
        if self.status != new.status {
            stale.status = self.status.clone();
            fresh.status = new.status.clone();
        }
        stale.deadlines = self
            .deadlines
            .iter()
            .filter(|d| !new.deadlines.contains(d))
            .cloned()
            .collect();
        fresh.deadlines = new
            .deadlines
            .iter()
            .filter(|d| !self.deadlines.contains(d))
            .cloned()
            .collect();
        (stale, fresh)
    }
}

/// The identity entries (`national`, `id_card`, `person`) end with the student's id: one value
/// may list several enrolments of a person (schema 9).
pub(super) fn index_entries(s: &Student, salt: &[u8; 32]) -> IndexEntries {
    IndexEntries {
        national: key(&[s.national_id.as_str(), &s.id]),
        id_card: s
            .id_card
            .as_ref()
            .map(|c| key(&[&id_card_key(salt, c.as_str()), &s.id])),
        person: s
            .id_card
            .is_none()
            .then(|| key(&[&person_digest(salt, s), &s.id])),
        class: key(&[
            &s.jurisdiction,
            &s.school,
            &grade_part(s.grade),
            s.class.as_deref().unwrap_or(""),
            &s.id,
        ]),
        status: key(&[&s.jurisdiction, s.status.as_str(), &s.id]),
        deadlines: s
            .deadlines
            .iter()
            .map(|d| key(&[&s.jurisdiction, &d.date.to_string(), &s.id, &d.kind]))
            .collect(),
    }
}

/// What the writer reads of another enrolment listed under an identity value.
#[derive(serde::Deserialize)]
struct Holder {
    status: crate::domain::Status,
    national_id: String,
}

/// The other enrolments listed under the identity value of `entry` (the entry without its
/// student part), with what the check needs of each.
fn holders(
    t: &Tables<'_>,
    tbl: &Tbl<'_>,
    entry: &str,
    own: &str,
) -> Result<Vec<(String, Holder)>, Refusal> {
    let value = entry.rsplit_once(SEP).map_or(entry, |(v, _)| v);
    let (start, end) = prefix_range(&[value]);
    let mut out = Vec::new();
    for item in tbl.range(Included(start.as_str()), Excluded(end.as_str()))? {
        let (k, _) = item?;
        let id = k.as_str().rsplit(SEP).next().unwrap_or_default().to_owned();
        if id == own {
            continue;
        }
        let Some(jur) = get_str(&t.locator, &id)? else {
            continue;
        };
        let sk = key(&[&jur, &id]);
        let Some(g) = t.students.get(sk.as_str())? else {
            continue;
        };
        // A damaged record refuses this command alone; `verify` names the record.
        let holder: Holder =
            super::decode_at(STUDENTS, &sk, g.as_slice()).map_err(Refusal::Refused)?;
        out.push((id, holder));
    }
    Ok(out)
}

/// Refuses a live enrolment whose national number, ID number or (without one) name, gender and
/// birth date another live enrolment holds (一人一号: one live 学籍 per person), and an ID number
/// whose earlier enrolments are another national number's (a person keeps their number for
/// life; another number under the same ID number is another person's claim to it). Ended
/// enrolments stay listed and do not block. Runs in the writer, against what the transaction
/// holds so far, so two admissions of one person, or an admission and an ending, cannot both
/// see the person free.
fn check_unique(t: &Tables<'_>, s: &Student, e: &IndexEntries) -> Result<(), Refusal> {
    let duplicate = |field: &str, student: String| {
        Err(Refusal::Refused(StoreError::Duplicate {
            field: field.into(),
            student,
        }))
    };
    if !s.status.is_live() {
        return Ok(());
    }
    for (id, h) in holders(t, &t.national, &e.national, &s.id)? {
        if h.status.is_live() {
            return duplicate("national_id", id);
        }
    }
    if let Some(k) = &e.id_card {
        for (id, h) in holders(t, &t.id_card, k, &s.id)? {
            if h.status.is_live() || h.national_id != s.national_id.as_str() {
                return duplicate("id_card", id);
            }
        }
    }
    if let Some(k) = &e.person {
        for (id, h) in holders(t, &t.person, k, &s.id)? {
            if h.status.is_live() {
                return duplicate("name_gender_birth_date", id);
            }
        }
    }
    Ok(())
}

/// Removes the entries named (empty keys stand for "unchanged" and are skipped).
fn remove_index(t: &mut Tables<'_>, e: &IndexEntries) -> Result<(), Refusal> {
    if !e.national.is_empty() {
        t.national.remove(e.national.as_str())?;
    }
    if let Some(k) = &e.id_card {
        t.id_card.remove(k.as_str())?;
    }
    if let Some(k) = &e.person {
        t.person.remove(k.as_str())?;
    }
    if !e.class.is_empty() {
        t.class.remove(e.class.as_str())?;
    }
    if !e.status.is_empty() {
        t.status.remove(e.status.as_str())?;
    }
    for d in &e.deadlines {
        t.deadline.remove(d.as_str())?;
    }
    Ok(())
}

/// Inserts the entries named (empty keys stand for "unchanged" and are skipped).
fn insert_index(t: &mut Tables<'_>, e: &IndexEntries) -> Result<(), Refusal> {
    if !e.national.is_empty() {
        t.national.insert(e.national.as_str(), &[][..])?;
    }
    if let Some(k) = &e.id_card {
        t.id_card.insert(k.as_str(), &[][..])?;
    }
    if let Some(k) = &e.person {
        t.person.insert(k.as_str(), &[][..])?;
    }
    if !e.class.is_empty() {
        t.class.insert(e.class.as_str(), &[][..])?;
    }
    if !e.status.is_empty() {
        t.status.insert(e.status.as_str(), &[][..])?;
    }
    for d in &e.deadlines {
        t.deadline.insert(d.as_str(), &[][..])?;
    }
    Ok(())
}

/// The id of the transfer certificate an admission was made on (`input.params.certificate`).
fn certificate_of(e: &Event) -> Option<&str> {
    e.input
        .params
        .get("certificate")?
        .get("core")?
        .get("id")?
        .as_str()
}

/// What the writer stores of one event, besides the student.
struct Recorded<'a> {
    event: &'a Event,
    event_json: &'a [u8],
    context: Option<&'a [u8]>,
    sealed: &'a SealedEvent,
    tallies: &'a DatedCounts,
    /// `None` for a new student (see `TIMELINES`).
    tally_state: Option<&'a [u8]>,
    /// The student has been in more than one jurisdiction: each statistics counter goes to the
    /// jurisdiction of the school it names, not all to the student's.
    tallies_by_school: bool,
}

/// Appends an event to a jurisdiction's Merkle log and stores it with its context at that
/// place of the log, so that a batch's events fill the same few leaves; returns the place.
/// An event is in its own jurisdiction's log; a transfer from another jurisdiction is also in
/// the receiving one's, as the same leaf, with a copy of the event and context at that place.
fn append_to_log(t: &mut Tables<'_>, r: &Recorded<'_>, log: &str) -> Result<u64, Refusal> {
    let e = r.event;
    let frontier = match t.log_frontiers.entry(log.to_owned()) {
        Entry::Occupied(batch) => batch.into_mut(),
        Entry::Vacant(first) => first.insert(match t.log_heads.get(log)? {
            Some(g) => Frontier::from_bytes(g.as_slice())
                .ok_or_else(|| StoreError::Storage("undecodable log head".into()))?,
            None => Frontier::default(),
        }),
    };
    let index = frontier.size;
    frontier.push(merkle::leaf_hash(&r.sealed.hash));
    let mut leaf = r.sealed.hash.to_vec();
    leaf.extend_from_slice(records::event_name(e).as_bytes());
    t.log_leaves.insert(
        key(&[log, &log_index_part(index)]).as_str(),
        leaf.as_slice(),
    )?;
    t.events
        .insert(records::event_key(log, index).as_str(), r.event_json)?;
    if let Some(c) = r.context {
        t.events
            .insert(records::context_key(log, index).as_str(), c)?;
    }
    Ok(index)
}

/// Stores an event (see [`append_to_log`]) and what derives from it, in its transaction.
fn record_event(t: &mut Tables<'_>, r: &Recorded<'_>) -> Result<(), Refusal> {
    let e = r.event;
    let mut index = append_to_log(t, r, &e.jurisdiction)?;
    let home = e.placed_in();
    if home != e.jurisdiction {
        index = append_to_log(t, r, home)?;
    }
    record_step(t, r, home, index)
}

/// Appends an event's step to its student's timeline (kept under `home`, the student's
/// jurisdiction after the event), records the school it places the student at, and adds how
/// the student's statistics change to the batch's, in the transaction that stores the event.
fn record_step(
    t: &mut Tables<'_>,
    r: &Recorded<'_>,
    home: &str,
    log_index: u64,
) -> Result<(), Refusal> {
    let e = r.event;
    if let Some(state) = r.tally_state {
        t.timelines
            .insert(records::tally_state_key(home, &e.student).as_str(), state)?;
    }
    let step = records::with_log_index(&r.sealed.step, log_index)?;
    t.timelines.insert(
        records::step_key(home, &e.student, e.seq).as_str(),
        step.as_slice(),
    )?;
    if r.tallies_by_school {
        merge_by_school(t, home, r.tallies)?;
    } else {
        tally::merge_into(&mut t.pending_tallies, home, r.tallies);
    }
    let member = key(&[home, &e.after.school, &e.student]);
    if t.school_members.get(member.as_str())?.is_none() {
        t.school_members.insert(member.as_str(), &[][..])?;
    }
    Ok(())
}

/// Adds each counter of a student who has been in several jurisdictions to the sums of the
/// jurisdiction of the school it names (both, for a move between two); a school no longer
/// stored counts in `home`.
fn merge_by_school(t: &mut Tables<'_>, home: &str, dated: &DatedCounts) -> Result<(), Refusal> {
    let mut jurisdiction_of: HashMap<String, String> = HashMap::new();
    let mut split: HashMap<String, DatedCounts> = HashMap::new();
    for ((date, counter), n) in dated {
        let mut owners: Vec<String> = Vec::with_capacity(2);
        for school in counter.schools() {
            if !jurisdiction_of.contains_key(school) {
                let jur = match t.schools.get(school)? {
                    Some(g) => decode::<School>(g.as_slice())?.jurisdiction,
                    None => home.to_owned(),
                };
                jurisdiction_of.insert(school.to_owned(), jur);
            }
            let jur = &jurisdiction_of[school];
            if !owners.contains(jur) {
                owners.push(jur.clone());
            }
        }
        for jur in owners {
            *split
                .entry(jur)
                .or_default()
                .entry((*date, counter.clone()))
                .or_default() += n;
        }
    }
    for (jur, counts) in &split {
        tally::merge_into(&mut t.pending_tallies, jur, counts);
    }
    Ok(())
}

/// Moves a student's timeline (steps and tally state) from `from` to `to`, each step naming
/// the log of `from` its event is in (or the one it named already), in a transfer's
/// transaction.
fn move_timeline(t: &mut Tables<'_>, from: &str, to: &str, student: &str) -> Result<(), Refusal> {
    let (start, end) = prefix_range(&[from, student]);
    let mut records = Vec::new();
    for item in t
        .timelines
        .range(Included(start.as_str()), Excluded(end.as_str()))?
    {
        let (k, v) = item?;
        records.push((k.as_str().to_owned(), v.as_slice().to_vec()));
    }
    for (k, v) in records {
        t.timelines.remove(k.as_str())?;
        match records::parse_timeline_key(&k) {
            Some((_, _, records::TimelineRecord::Step(seq))) => {
                let moved = records::step_moved_from(&v, from)?;
                t.timelines.insert(
                    records::step_key(to, student, seq).as_str(),
                    moved.as_slice(),
                )?;
            }
            // The state after the transfer is written with the transfer's step.
            Some((_, _, records::TimelineRecord::TallyState)) => {}
            // After this command's first writes: the whole batch is aborted, not this command.
            None => {
                return Err(Refusal::Storage(StoreError::Storage(format!(
                    "undecodable record key {}",
                    k.replace(SEP, "/")
                ))));
            }
        }
    }
    Ok(())
}

fn put_request(
    t: &mut Tables<'_>,
    old: Option<&ApprovalRequest>,
    r: &ApprovalRequest,
) -> Result<(), Refusal> {
    if let Some(o) = old {
        for jur in request_jurisdictions(o) {
            t.request_status
                .remove(key(&[jur, o.status.as_str(), &o.id]).as_str())?;
        }
    }
    let open_key = key(&[&r.student, r.input.kind.as_str()]);
    if r.status == RequestStatus::Pending {
        t.open_request.insert(open_key.as_str(), r.id.as_bytes())?;
    } else {
        t.open_request.remove(open_key.as_str())?;
    }
    for jur in request_jurisdictions(r) {
        t.request_status
            .insert(key(&[jur, r.status.as_str(), &r.id]).as_str(), &[][..])?;
    }
    t.requests.insert(r.id.as_str(), json(r)?.as_slice())?;
    Ok(())
}

/// The jurisdictions that list a request: its own, and the receiving one of a transfer from it.
fn request_jurisdictions(r: &ApprovalRequest) -> impl Iterator<Item = &str> {
    std::iter::once(r.jurisdiction.as_str()).chain(r.receiving_jurisdiction.as_deref())
}

fn stored_request(t: &Tables<'_>, id: &str) -> Result<Option<ApprovalRequest>, Refusal> {
    match t.requests.get(id)? {
        Some(g) => Ok(Some(decode(g.as_slice())?)),
        None => Ok(None),
    }
}

fn refused<T>(e: StoreError) -> Result<T, Refusal> {
    Err(Refusal::Refused(e))
}

/// Only the version is read back from a stored student whose bytes differ from `before`.
#[derive(serde::Deserialize)]
struct StoredVersion {
    version: u64,
}

/// The version of a stored student record. A stored record never changes without a new version,
/// so the same bytes as `before` prove `before`'s version without decoding; anything else (a
/// newer version, or a record written in another encoding) is decoded, its version only.
pub(super) fn stored_version(
    stored: &[u8],
    before_json: &[u8],
    before_version: u64,
) -> Result<u64, StoreError> {
    if stored == before_json {
        return Ok(before_version);
    }
    Ok(decode::<StoredVersion>(stored)?.version)
}

fn apply(t: &mut Tables<'_>, prepared: &Prepared) -> Result<CommandOutput, Refusal> {
    apply_command(t, &prepared.command, &prepared.encoded)
}

fn apply_command(
    t: &mut Tables<'_>,
    command: &Command,
    encoded: &Encoded,
) -> Result<CommandOutput, Refusal> {
    match (command, encoded) {
        (
            Command::PutSchool {
                school,
                must_be_new,
            },
            _,
        ) => {
            if *must_be_new && t.schools.get(school.id.as_str())?.is_some() {
                return refused(StoreError::AlreadyExists {
                    what: "school".into(),
                    id: school.id.clone(),
                });
            }
            t.schools
                .insert(school.id.as_str(), json(school)?.as_slice())?;
        }
        (
            Command::CreateStudent {
                student,
                event,
                context,
            },
            Encoded::NewStudent {
                student: student_json,
                event: event_json,
                index: entries,
                sealed,
                tallies,
            },
        ) => {
            if t.locator.get(student.id.as_str())?.is_some() {
                return refused(StoreError::AlreadyExists {
                    what: "student".into(),
                    id: student.id.clone(),
                });
            }
            check_unique(t, student, entries)?;
            // An admission on a transfer certificate uses it up, in the same transaction.
            if let Some(certificate) = certificate_of(event) {
                if t.certificates_used.get(certificate)?.is_some() {
                    return refused(StoreError::AlreadyExists {
                        what: "certificate".into(),
                        id: certificate.to_owned(),
                    });
                }
                t.certificates_used
                    .insert(certificate, student.id.as_bytes())?;
            }
            // INVARIANT: every student has exactly the events 1..=version, written with it.
            debug_assert_eq!(event.seq, student.version);
            t.locator
                .insert(student.id.as_str(), student.jurisdiction.as_bytes())?;
            t.students.insert(
                key(&[&student.jurisdiction, &student.id]).as_str(),
                student_json.as_slice(),
            )?;
            insert_index(t, entries)?;
            // A new student's tally state is their admission step alone: it is stored with
            // their second event, which reads their one-step timeline instead.
            record_event(
                t,
                &Recorded {
                    event,
                    event_json,
                    context: context.as_deref(),
                    sealed,
                    tallies,
                    tally_state: None,
                    tallies_by_school: false,
                },
            )?;
        }
        (
            Command::RecordEvent {
                before,
                after,
                event,
                context,
                close_request,
            },
            Encoded::Record {
                before: before_json,
                after: after_json,
                event: event_json,
                old_index,
                new_index,
                sealed,
                tallies,
            },
        ) => {
            let k = key(&[&before.jurisdiction, &before.id]);
            let current_version = match t.students.get(k.as_str())? {
                Some(g) => stored_version(g.as_slice(), before_json, before.version)?,
                None => {
                    return refused(StoreError::NotFound {
                        what: "student".into(),
                        id: before.id.clone(),
                    });
                }
            };
            if current_version != before.version {
                return refused(StoreError::VersionConflict {
                    expected: before.version,
                    current: current_version,
                });
            }
            // A student changes jurisdiction only by a transfer the receiving package decided.
            let moves = after.jurisdiction != before.jurisdiction;
            if event.seq != before.version + 1
                || after.version != event.seq
                || event.jurisdiction != before.jurisdiction
                || event.placed_in() != after.jurisdiction
            {
                return refused(StoreError::Storage(
                    "internal: event does not follow the student's chain".into(),
                ));
            }
            let old_request = match close_request {
                Some(r) => match stored_request(t, &r.id)? {
                    Some(o) if o.status == RequestStatus::Pending => Some(o),
                    _ => return refused(StoreError::RequestNotPending(r.id.clone())),
                },
                None => None,
            };
            let Some((tallies, tally_state)) = tallies else {
                return refused(StoreError::Storage(
                    "internal: the statistics of an event were prepared against another version"
                        .into(),
                ));
            };
            if old_index.unique_keys_differ(new_index)
                || (after.status.is_live() && !before.status.is_live())
            {
                check_unique(t, after, new_index)?;
            }
            let (stale, fresh) = old_index.minus(new_index);
            remove_index(t, &stale)?;
            insert_index(t, &fresh)?;
            if moves {
                t.students.remove(k.as_str())?;
                t.locator
                    .insert(after.id.as_str(), after.jurisdiction.as_bytes())?;
                move_timeline(t, &before.jurisdiction, &after.jurisdiction, &before.id)?;
            }
            t.students.insert(
                key(&[&after.jurisdiction, &after.id]).as_str(),
                after_json.as_slice(),
            )?;
            record_event(
                t,
                &Recorded {
                    event,
                    event_json,
                    context: context.as_deref(),
                    sealed,
                    tallies,
                    tally_state: Some(tally_state),
                    tallies_by_school: !after.former_jurisdictions.is_empty(),
                },
            )?;
            if let (Some(r), Some(o)) = (close_request, old_request) {
                put_request(t, Some(&o), r)?;
            }
        }
        (Command::OpenRequest { request }, _) => {
            let open_key = key(&[&request.student, request.input.kind.as_str()]);
            if let Some(existing) = get_str(&t.open_request, &open_key)? {
                return refused(StoreError::OpenRequestExists {
                    student: request.student.clone(),
                    kind: request.input.kind.as_str().into(),
                    request: existing,
                });
            }
            let current: Student = match t
                .students
                .get(key(&[&request.jurisdiction, &request.student]).as_str())?
            {
                Some(g) => decode(g.as_slice())?,
                None => {
                    return refused(StoreError::NotFound {
                        what: "student".into(),
                        id: request.student.clone(),
                    });
                }
            };
            if current.version != request.student_version {
                return refused(StoreError::VersionConflict {
                    expected: request.student_version,
                    current: current.version,
                });
            }
            if t.requests.get(request.id.as_str())?.is_some() {
                return refused(StoreError::AlreadyExists {
                    what: "request".into(),
                    id: request.id.clone(),
                });
            }
            put_request(t, None, request)?;
        }
        (
            Command::UpdateRequest {
                request,
                expected_approvals,
            },
            _,
        ) => {
            let old = match stored_request(t, &request.id)? {
                Some(o)
                    if o.status == RequestStatus::Pending
                        && o.approvals.len() == *expected_approvals =>
                {
                    o
                }
                _ => return refused(StoreError::RequestNotPending(request.id.clone())),
            };
            put_request(t, Some(&old), request)?;
        }
        (Command::PutToken { hash, record }, _) => {
            if let Some(old_hash) = get_str(&t.token_ids, &record.id)?
                && old_hash != *hash
            {
                return refused(StoreError::AlreadyExists {
                    what: "token".into(),
                    id: record.id.clone(),
                });
            }
            t.token_ids.insert(record.id.as_str(), hash.as_bytes())?;
            t.tokens.insert(hash.as_str(), json(record)?.as_slice())?;
        }
        (Command::PutPolicy { record }, _) => {
            let k = key(&[
                &record.jurisdiction,
                &record.effective_from.to_string(),
                &record.content_hash,
            ]);
            if t.policies.get(k.as_str())?.is_none() {
                t.policies.insert(k.as_str(), json(record)?.as_slice())?;
            }
        }
        (Command::CreateStudent { .. } | Command::RecordEvent { .. }, _) => {
            return refused(StoreError::Storage(
                "internal: command queued without its encoding".into(),
            ));
        }
        (Command::PutIdempotent { key: k, value, at }, _) => {
            super::idempotency::put(&mut *t.idempotency, k, value, *at)?;
        }
        (
            Command::PutBatch {
                batch,
                record,
                items,
            },
            _,
        ) => {
            if let Some(r) = record {
                t.batches.insert(batch.as_str(), r.as_slice())?;
            }
            for (index, item) in items {
                t.batch_items
                    .insert(batch_item_key(batch, *index).as_str(), item.as_slice())?;
            }
        }
        (
            Command::ForBatch {
                inner,
                batch,
                index,
                item,
            },
            encoded,
        ) => {
            if matches!(**inner, Command::ForBatch { .. }) {
                return refused(StoreError::Storage(
                    "internal: a batch item inside a batch item".into(),
                ));
            }
            // The student's change checks all its preconditions first: refused, no item.
            apply_command(t, inner, encoded)?;
            t.batch_items
                .insert(batch_item_key(batch, *index).as_str(), item.as_slice())?;
        }
        (Command::OpenProblem { problem }, _) => {
            if let Some(existing) = get_str(&t.open_problems, &problem.key)? {
                return refused(StoreError::AlreadyExists {
                    what: "problem".into(),
                    id: existing,
                });
            }
            if t.problems.get(problem.id.as_str())?.is_some() {
                return refused(StoreError::AlreadyExists {
                    what: "problem".into(),
                    id: problem.id.clone(),
                });
            }
            t.problems
                .insert(problem.id.as_str(), json(problem)?.as_slice())?;
            if problem.status == ProblemStatus::Open {
                t.open_problems
                    .insert(problem.key.as_str(), problem.id.as_bytes())?;
            }
        }
        (Command::UpdateProblem { problem }, _) => {
            let stored: Option<Problem> = match t.problems.get(problem.id.as_str())? {
                Some(g) => Some(decode(g.as_slice())?),
                None => None,
            };
            match stored {
                Some(old) if old.status == ProblemStatus::Open && old.key == problem.key => {}
                _ => return refused(StoreError::RequestNotPending(problem.id.clone())),
            }
            t.problems
                .insert(problem.id.as_str(), json(problem)?.as_slice())?;
            if problem.status != ProblemStatus::Open {
                t.open_problems.remove(problem.key.as_str())?;
            }
        }
    }
    Ok(CommandOutput::Done)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU32;

    use super::*;
    use crate::store::kv::{ReadTxn, Table};
    use crate::store::redb::RedbBackend;

    /// A redb store whose commits report contention, as PostgreSQL's serialization failures
    /// would, the next `contentions` times (the transaction is dropped: nothing of it lands).
    struct Contending {
        inner: RedbBackend,
        contentions: AtomicU32,
    }

    struct ContendingTxn<'a> {
        inner: Box<dyn WriteTxn + 'a>,
        contentions: &'a AtomicU32,
    }

    impl Backend for Contending {
        fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
            self.inner.begin_read()
        }
        fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
            Ok(Box::new(ContendingTxn {
                inner: self.inner.begin_write()?,
                contentions: &self.contentions,
            }))
        }
        fn kind(&self) -> &'static str {
            "contending"
        }
    }

    impl WriteTxn for ContendingTxn<'_> {
        fn open_table(&self, table: Table) -> Result<Box<dyn WriteTable + '_>, StoreError> {
            self.inner.open_table(table)
        }
        fn clear_table(&self, table: Table) -> Result<(), StoreError> {
            self.inner.clear_table(table)
        }
        fn commit(self: Box<Self>) -> Result<(), StoreError> {
            let contended = self
                .contentions
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if contended {
                return Err(StoreError::Contended("injected".into()));
            }
            self.inner.commit()
        }
    }

    fn school(id: &str) -> Command {
        Command::PutSchool {
            school: Box::new(
                serde_json::from_value(serde_json::json!({
                    "id": id, "name": "一中", "jurisdiction": "j", "area": null,
                    "level": "junior", "kind": null,
                }))
                .expect("school"),
            ),
            must_be_new: true,
        }
    }

    fn contending_store(dir: &tempfile::TempDir) -> (Store, Arc<Contending>) {
        let backend = Arc::new(Contending {
            inner: RedbBackend::create_file(&dir.path().join("xueji.redb")).expect("file"),
            contentions: AtomicU32::new(0),
        });
        let store = Store::open_backend(backend.clone()).expect("opens");
        (store, backend)
    }

    #[test]
    fn a_contended_batch_runs_again_and_applies_once() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, backend) = contending_store(&dir);
        backend.contentions.store(1, Ordering::SeqCst);
        // The first run wrote the school, then lost its commit: were any of it left, the second
        // run would find the school there and refuse a new one.
        assert_eq!(store.submit(school("s1")), Ok(CommandOutput::Done));
        assert_eq!(backend.contentions.load(Ordering::SeqCst), 0);
        assert_eq!(store.schools().expect("schools").len(), 1);
        assert_eq!(store.commit_stats().commits.load(Ordering::SeqCst), 1);
        assert!(matches!(
            store.submit(school("s1")),
            Err(StoreError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn a_batch_contended_every_time_fails_as_storage_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, backend) = contending_store(&dir);
        backend.contentions.store(COMMIT_TRIES, Ordering::SeqCst);
        let e = store.submit(school("s1")).expect_err("fails");
        assert!(
            matches!(&e, StoreError::Storage(m) if m.contains("contended")),
            "{e}"
        );
        assert!(store.schools().expect("schools").is_empty());
        assert_eq!(store.submit(school("s1")), Ok(CommandOutput::Done));
    }
}
