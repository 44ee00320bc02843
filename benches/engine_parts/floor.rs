//! The write path's floor: what redb alone commits per second when every commit carries the
//! records of `batch` `change_class` transitions, written by one thread that has nothing else to
//! do: no policy, no JSON, no hashing, no queue, no callers to wake.
//!
//! It answers whether a goal on durable transitions is out of reach of the store itself. With 64
//! closed-loop writers a commit can never carry more than 64 transitions, so the floor at a batch
//! of 64 is the most any design of the service on this redb file could commit on this machine.
//!
//! The records are a model of what `src/store/writer.rs` writes for one `change_class`, table by
//! table, with the same key shapes, opened as `Store` opens its file (one writer, shared with
//! read-only processes, `Durability::Immediate`):
//! - the student read (its version check) and rewritten;
//! - the new timeline step and the tally state beside it;
//! - the class index entry moved (removed under the old class, inserted under the new);
//! - the event and its decision context at their place in the log; the log leaf and head;
//! - the school-membership lookup;
//! - once per commit, the statistics totals and the day's changes.
//!
//! Every value's size is read from the store file of a real transition of the tps run
//! ([`RecordSizes::stored`]); keep this model's rows and keys in step with the writer when it
//! changes. PostgreSQL's floor (`postgres.rs`) writes the same rows with these keys and sizes.

use redb::{ConcurrencyMode, Database, Durability, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::metered::{MeteredBackend, Meters};

type Table = TableDefinition<'static, &'static str, &'static [u8]>;
const STUDENTS: Table = TableDefinition::new("students");
const TIMELINES: Table = TableDefinition::new("timeline_steps");
const CLASS: Table = TableDefinition::new("idx_class");
const EVENTS: Table = TableDefinition::new("event_records");
const LEAVES: Table = TableDefinition::new("log_leaves");
const HEADS: Table = TableDefinition::new("log_heads");
const MEMBERS: Table = TableDefinition::new("idx_school_members");
const TOTALS: Table = TableDefinition::new("stat_totals");
const CHANGES: Table = TableDefinition::new("stat_changes");

pub(super) const JUR: &str = "bench-district";
pub(super) const SCHOOL: &str = "bench-school";

/// Bytes of the values one transition writes, read from the store file of a real one: nothing
/// of the model is a constant, so a change of the writer's encodings moves the floor with it.
#[derive(Debug, Clone, Copy)]
pub struct RecordSizes {
    pub student: usize,
    pub event: usize,
    pub context: usize,
    pub step: usize,
    pub tally_state: usize,
    pub leaf: usize,
    pub frontier: usize,
    pub stat_total: usize,
    pub stat_change: usize,
}

impl RecordSizes {
    /// The stored values of `student` (whose last event is the jurisdiction's last) in the
    /// closed store `file`: their record, last event, its context, its step and their tally
    /// state; the log's last leaf and its head; the statistics rows, on average (a change of
    /// class may write none of them).
    pub fn stored(file: &Path, student: &str) -> Result<RecordSizes, String> {
        Self::read(file, student).map_err(|e| format!("floor: record sizes of {student}: {e}"))
    }

    fn read(file: &Path, student: &str) -> Result<RecordSizes, Box<dyn std::error::Error>> {
        use redb::{ReadableDatabase, TableHandle};
        let db = Database::open(file)?;
        let r = db.begin_read()?;
        let value = |table: Table, k: &str| -> Result<usize, Box<dyn std::error::Error>> {
            Ok(r.open_table(table)?
                .get(k)?
                .ok_or_else(|| format!("{} has no {k:?}", table.name()))?
                .value()
                .len())
        };
        // The last pair under `prefix` whose key ends in a number (a log index, a step's
        // sequence), passing over the tally state (`~t`) that sorts after a student's steps.
        let last_numbered = |table: Table,
                             prefix: &[&str]|
         -> Result<(String, usize), Box<dyn std::error::Error>> {
            let from = format!("{}\u{1f}", key(prefix));
            let to = format!("{}\u{20}", key(prefix));
            let t = r.open_table(table)?;
            for item in t.range(from.as_str()..to.as_str())?.rev() {
                let (k, v) = item?;
                let last_part = k.value().rsplit('\u{1f}').next().unwrap_or_default();
                if !last_part.is_empty() && last_part.bytes().all(|b| b.is_ascii_digit()) {
                    return Ok((k.value().to_owned(), v.value().len()));
                }
            }
            Err(format!("{} has nothing numbered under {prefix:?}", table.name()).into())
        };
        let average = |table: Table| -> Result<usize, Box<dyn std::error::Error>> {
            let t = r.open_table(table)?;
            let (mut n, mut bytes) = (0usize, 0usize);
            for item in t.iter()? {
                bytes += item?.1.value().len();
                n += 1;
            }
            Ok(if n == 0 { 0 } else { bytes.div_ceil(n) })
        };
        let (leaf_key, leaf) = last_numbered(LEAVES, &[JUR])?;
        let index = leaf_key.rsplit('\u{1f}').next().unwrap_or_default();
        let (_, step) = last_numbered(TIMELINES, &[JUR, student])?;
        Ok(RecordSizes {
            student: value(STUDENTS, &key(&[JUR, student]))?,
            event: value(EVENTS, &key(&[JUR, index, "e"]))?,
            context: value(EVENTS, &key(&[JUR, index, "c"]))?,
            step,
            tally_state: value(TIMELINES, &key(&[JUR, student, "~t"]))?,
            leaf,
            frontier: value(HEADS, JUR)?,
            stat_total: average(TOTALS)?,
            stat_change: average(CHANGES)?,
        })
    }
}

impl std::fmt::Display for RecordSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "student {} B, event {} B, context {} B, step {} B, tally state {} B, leaf {} B, \
             log head {} B, statistics {}/{} B",
            self.student,
            self.event,
            self.context,
            self.step,
            self.tally_state,
            self.leaf,
            self.frontier,
            self.stat_total,
            self.stat_change
        )
    }
}

pub(super) fn key(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

pub(super) fn student_id(n: usize) -> String {
    format!("S{n:09}")
}

pub(super) fn class_key(id: &str, class: u8) -> String {
    key(&[JUR, SCHOOL, "03", &class.to_string(), id])
}

/// How the floor lays out a transition's per-student records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As the writer stores them today: the step under the student's key in `timeline_steps`,
    /// the tally state beside it (`~t`).
    AsStored,
    /// The design of BENCHMARKS.md ("Where a transition's bytes go"): the step at its place in
    /// the log, as events are (appended at the right edge of the tree), and the tally state
    /// inside the student's record, which is rewritten anyway.
    StepsInLogOrder,
}

/// What the floor measured.
#[derive(Debug, Clone, Copy)]
pub struct FloorRun {
    pub tps: f64,
    /// Bytes redb wrote to the file per transition during the window.
    pub bytes_per_transition: f64,
}

/// Durable transitions per second that redb alone reaches with `batch` transitions a commit,
/// cycling over `students` students, for `window`.
pub fn tps(
    root: &Path,
    sizes: RecordSizes,
    students: usize,
    batch: usize,
    window: Duration,
) -> Result<f64, String> {
    run(root, sizes, students, batch, window, Layout::AsStored)
        .map(|r| r.tps)
        .map_err(|e| e.to_string())
}

/// [`tps`] with the records laid out as `layout` says, and the bytes written.
pub fn run(
    root: &Path,
    sizes: RecordSizes,
    students: usize,
    batch: usize,
    window: Duration,
    layout: Layout,
) -> Result<FloorRun, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir_in(root)?;
    let mut builder = Database::builder();
    builder
        .set_concurrency_mode(ConcurrencyMode::SingleWriter)
        .set_cache_size(xueji::store::redb::CACHE_BYTES);
    let meters = Meters::default();
    let db = builder.create_with_backend(MeteredBackend::create_in(dir.path(), meters.clone())?)?;
    let by_log = layout == Layout::StepsInLogOrder;
    // In log order the tally state rides in the student's record.
    let student_size = sizes.student + if by_log { sizes.tally_state } else { 0 };
    let student = vec![b's'; student_size];
    let event = vec![b'e'; sizes.event];
    let context = vec![b'c'; sizes.context];
    let step = vec![b't'; sizes.step];
    let state = vec![b'a'; sizes.tally_state];
    let leaf = vec![b'l'; sizes.leaf];
    let frontier = vec![b'f'; sizes.frontier];
    let stat_total = vec![b'n'; sizes.stat_total];
    let stat_change = vec![b'n'; sizes.stat_change];

    let w = db.begin_write()?;
    {
        let mut s = w.open_table(STUDENTS)?;
        let mut c = w.open_table(CLASS)?;
        let mut m = w.open_table(MEMBERS)?;
        for n in 0..students {
            let id = student_id(n);
            s.insert(key(&[JUR, &id]).as_str(), student.as_slice())?;
            c.insert(class_key(&id, 4).as_str(), &[][..])?;
            m.insert(key(&[JUR, SCHOOL, &id]).as_str(), &[][..])?;
        }
    }
    w.commit()?;

    let bytes_before = meters.bytes.load(Ordering::Relaxed);
    let mut seq = vec![2u64; students];
    let mut class = vec![4u8; students];
    let mut log_size = 0u64;
    let mut pick = 0x9e37_79b9_7f4a_7c15u64;
    let mut done = 0u64;
    let start = Instant::now();
    while start.elapsed() < window {
        let mut w = db.begin_write()?;
        w.set_durability(Durability::Immediate)?;
        {
            let mut s = w.open_table(STUDENTS)?;
            let mut t = w.open_table(TIMELINES)?;
            let mut c = w.open_table(CLASS)?;
            let mut ev = w.open_table(EVENTS)?;
            let mut leaves = w.open_table(LEAVES)?;
            let mut heads = w.open_table(HEADS)?;
            let m = w.open_table(MEMBERS)?;
            for _ in 0..batch {
                // In no order, as the writers' transitions reach a commit (xorshift64).
                pick ^= pick << 13;
                pick ^= pick >> 7;
                pick ^= pick << 17;
                let n = (pick % students as u64) as usize;
                let id = student_id(n);
                let k = key(&[JUR, &id]);
                if s.get(k.as_str())?.is_none() {
                    return Err("floor: a student vanished".into());
                }
                s.insert(k.as_str(), student.as_slice())?;
                let index = format!("{log_size:012}");
                log_size += 1;
                if by_log {
                    t.insert(key(&[JUR, &index]).as_str(), step.as_slice())?;
                } else {
                    seq[n] += 1;
                    t.insert(key(&[JUR, &id, "~t"]).as_str(), state.as_slice())?;
                    t.insert(
                        key(&[JUR, &id, &format!("{:012}", seq[n])]).as_str(),
                        step.as_slice(),
                    )?;
                }
                let (old, new) = (class[n], 9 - class[n]);
                class[n] = new;
                c.remove(class_key(&id, old).as_str())?;
                c.insert(class_key(&id, new).as_str(), &[][..])?;
                leaves.insert(key(&[JUR, &index]).as_str(), leaf.as_slice())?;
                heads.insert(JUR, frontier.as_slice())?;
                ev.insert(key(&[JUR, &index, "e"]).as_str(), event.as_slice())?;
                ev.insert(key(&[JUR, &index, "c"]).as_str(), context.as_slice())?;
                if m.get(key(&[JUR, SCHOOL, &id]).as_str())?.is_none() {
                    return Err("floor: a membership vanished".into());
                }
            }
            let mut totals = w.open_table(TOTALS)?;
            totals.insert(JUR, stat_total.as_slice())?;
            let mut changes = w.open_table(CHANGES)?;
            changes.insert(key(&[JUR, "2025-03-02"]).as_str(), stat_change.as_slice())?;
        }
        w.commit()?;
        done += batch as u64;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let bytes = meters.bytes.load(Ordering::Relaxed) - bytes_before;
    Ok(FloorRun {
        tps: done as f64 / elapsed,
        bytes_per_transition: bytes as f64 / done.max(1) as f64,
    })
}
