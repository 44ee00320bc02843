//! Consistent copies of the store, and the read-only view `xueji backup` takes of a store that a
//! running server keeps writing.
//!
//! Both backups, `POST /v1/backups` inside the server and `xueji backup` beside it, go through
//! [`write_copy`]: every table copied from ONE read transaction, so the copy is exactly the store
//! at one commit, whatever the writer does meanwhile.

use std::path::Path;

use super::kv::{self, Backend};
use super::redb::RedbBackend;
use super::tables::{ALL, IDEMPOTENCY};
use super::{Store, StoreError, heads_in};
use crate::domain::merkle::{self, Checkpoint};

/// Where a backup reads from: the serving [`Store`], or a [`super::ReadOnlyStore`] beside it.
pub trait BackupSource {
    /// A read transaction on the newest commit.
    fn snapshot(&self) -> Result<Box<dyn kv::ReadTxn + '_>, StoreError>;
}

impl BackupSource for Store {
    fn snapshot(&self) -> Result<Box<dyn kv::ReadTxn + '_>, StoreError> {
        self.backend.begin_read()
    }
}

/// Writes a consistent copy of the whole store to `dest`, a new file, from one read
/// transaction, while writers go on. The copy keeps the salt, so digests and indexes stay
/// valid. Returns the rows copied and the checkpoint of every jurisdiction's log in the copy.
/// `dest` is claimed atomically (an existing file is never overwritten) and removed again if
/// anything fails.
pub fn write_copy(
    source: &impl BackupSource,
    dest: &Path,
) -> Result<(u64, Vec<Checkpoint>), StoreError> {
    let snapshot = source.snapshot()?;
    match super::private::options().create_new(true).open(dest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(StoreError::AlreadyExists {
                what: "backup file".into(),
                id: dest.display().to_string(),
            });
        }
        Err(e) => {
            return Err(StoreError::Storage(format!("{}: {e}", dest.display())));
        }
    }
    let copied = copy_tables(&*snapshot, dest);
    if copied.is_err() {
        std::fs::remove_file(dest).ok();
    }
    let rows = copied?;
    let checkpoints = checkpoints_in(&*snapshot)?;
    Ok((rows, checkpoints))
}

/// Every jurisdiction's log as `snapshot` holds it, as checkpoints taken now.
pub(super) fn checkpoints_in(snapshot: &dyn kv::ReadTxn) -> Result<Vec<Checkpoint>, StoreError> {
    let taken_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(heads_in(snapshot)?
        .into_iter()
        .map(|(jurisdiction, f)| Checkpoint {
            jurisdiction,
            size: f.size,
            root: merkle::to_hex(&f.root()),
            taken_at: taken_at.clone(),
        })
        .collect())
}

/// Every table of `snapshot` into a new store file at `dest` (an empty file), in one durable
/// write transaction; but the idempotent answers: a retry's state for a day, not a record, and
/// each holds a whole answer (personal data included) that a backup would keep for years.
fn copy_tables(snapshot: &dyn kv::ReadTxn, dest: &Path) -> Result<u64, StoreError> {
    let copy = RedbBackend::create_file(dest)?;
    let txn = copy.begin_write()?;
    let mut rows = 0u64;
    for table in ALL.iter().filter(|t| **t != IDEMPOTENCY) {
        let from = snapshot.open_table(*table)?;
        let mut to = txn.open_table(*table)?;
        for item in from.iter()? {
            let (k, v) = item?;
            to.insert(&k, &v)?;
            rows += 1;
        }
    }
    txn.commit()?;
    Ok(rows)
}
