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
//! The student, event, context and step sizes are those of a real transition of the tps run
//! ([`RecordSizes::of`]); keep this model in step with the writer when it changes. PostgreSQL's
//! floor (`postgres.rs`) writes the same rows with these keys and sizes.

use redb::{ConcurrencyMode, Database, Durability, ReadableTable, TableDefinition};
use std::path::Path;
use std::time::{Duration, Instant};

use xueji::engine::Xueji;

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
/// A tally state and a log leaf's event name are tens of bytes; a frontier one 32-byte peak per
/// set bit of the log size (about 20 for a million events).
pub(super) const TALLY_STATE_BYTES: usize = 64;
pub(super) const LEAF_BYTES: usize = 32 + 40;
pub(super) const FRONTIER_BYTES: usize = 8 + 32 * 20;
pub(super) const STAT_BYTES: usize = 256;

/// Bytes of the records one transition writes, taken from the store of a real run.
#[derive(Debug, Clone, Copy)]
pub struct RecordSizes {
    pub student: usize,
    pub event: usize,
    pub context: usize,
    pub step: usize,
}

impl RecordSizes {
    /// The sizes of `student`'s record and of their last event, its context and its step, as
    /// the store encodes them.
    pub fn of(x: &Xueji, student: &str) -> Result<RecordSizes, String> {
        let s = x
            .store()
            .student(student)
            .map_err(|e| e.to_string())?
            .ok_or("floor: the sample student is gone")?;
        let events = x.store().events(student).map_err(|e| e.to_string())?;
        let last = events
            .last()
            .ok_or("floor: the sample student has no event")?;
        let context = x
            .store()
            .context(last)
            .map_err(|e| e.to_string())?
            .ok_or("floor: the sample event has no decision context")?;
        let f = &last.after;
        // A step as `records::with_log_index` stores it.
        let step = serde_json::to_vec(&(
            last.seq,
            last.kind,
            last.effective_date,
            f.status,
            f.school.as_str(),
            f.grade,
            f.class.as_deref(),
            1_000_000u64,
        ))
        .map_err(|e| e.to_string())?;
        let json_len =
            |v: serde_json::Result<Vec<u8>>| v.map(|b| b.len()).map_err(|e| e.to_string());
        Ok(RecordSizes {
            student: json_len(serde_json::to_vec(&s))?,
            event: json_len(serde_json::to_vec(last))?,
            context: context.to_bytes().len(),
            step: step.len(),
        })
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

/// Durable transitions per second that redb alone reaches with `batch` transitions a commit,
/// cycling over `students` students, for `window`.
pub fn tps(
    root: &Path,
    sizes: RecordSizes,
    students: usize,
    batch: usize,
    window: Duration,
) -> Result<f64, String> {
    measure(root, sizes, students, batch, window).map_err(|e| e.to_string())
}

fn measure(
    root: &Path,
    sizes: RecordSizes,
    students: usize,
    batch: usize,
    window: Duration,
) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir_in(root)?;
    let mut builder = Database::builder();
    builder
        .set_concurrency_mode(ConcurrencyMode::SingleWriter)
        .set_cache_size(xueji::store::redb::CACHE_BYTES);
    let db = builder.create(dir.path().join("floor.redb"))?;
    let student = vec![b's'; sizes.student];
    let event = vec![b'e'; sizes.event];
    let context = vec![b'c'; sizes.context];
    let step = vec![b't'; sizes.step];
    let state = [b'a'; TALLY_STATE_BYTES];
    let leaf = [b'l'; LEAF_BYTES];
    let frontier = [b'f'; FRONTIER_BYTES];
    let stat = [b'n'; STAT_BYTES];

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
                seq[n] += 1;
                t.insert(key(&[JUR, &id, "~t"]).as_str(), state.as_slice())?;
                t.insert(
                    key(&[JUR, &id, &format!("{:012}", seq[n])]).as_str(),
                    step.as_slice(),
                )?;
                let (old, new) = (class[n], 9 - class[n]);
                class[n] = new;
                c.remove(class_key(&id, old).as_str())?;
                c.insert(class_key(&id, new).as_str(), &[][..])?;
                let index = format!("{log_size:012}");
                log_size += 1;
                leaves.insert(key(&[JUR, &index]).as_str(), leaf.as_slice())?;
                heads.insert(JUR, frontier.as_slice())?;
                ev.insert(key(&[JUR, &index, "e"]).as_str(), event.as_slice())?;
                ev.insert(key(&[JUR, &index, "c"]).as_str(), context.as_slice())?;
                if m.get(key(&[JUR, SCHOOL, &id]).as_str())?.is_none() {
                    return Err("floor: a membership vanished".into());
                }
            }
            let mut totals = w.open_table(TOTALS)?;
            totals.insert(JUR, stat.as_slice())?;
            let mut changes = w.open_table(CHANGES)?;
            changes.insert(key(&[JUR, "2025-03-02"]).as_str(), stat.as_slice())?;
        }
        w.commit()?;
        done += batch as u64;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}
