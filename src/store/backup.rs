//! Consistent copies of the store, and the read-only view `xueji backup` takes of a store that a
//! running server keeps writing.
//!
//! Both backups, `POST /v1/backups` inside the server and `xueji backup` beside it, go through
//! [`write_copy`]: every table copied from ONE read transaction, so the copy is exactly the store
//! at one commit, whatever the writer does meanwhile.

use redb::{
    DatabaseError, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, TableError, TableHandle,
};
use std::path::Path;

use super::tables::{ALL, IDEMPOTENCY, META};
use super::{SCHEMA_VERSION, Store, StoreError, decode, heads_in, shared_builder};
use crate::domain::merkle::{self, Checkpoint, Frontier};

/// Where a backup reads from: the serving [`Store`], or a [`ReadOnlyStore`] beside it.
pub trait BackupSource {
    /// A read transaction on the newest commit.
    fn snapshot(&self) -> Result<ReadTransaction, StoreError>;
}

impl BackupSource for Store {
    fn snapshot(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }
}

/// A store opened read-only, beside the process that writes it (redb's `SingleWriter` mode): no
/// writer thread, no migration, nothing written. Each read transaction sees the newest commit
/// the writer has made durable.
pub struct ReadOnlyStore {
    db: ReadOnlyDatabase,
}

impl ReadOnlyStore {
    /// Opens an existing store file read-only. Refuses, each with its code, a missing file
    /// (`store_missing`, nothing is created), a file of another schema (`store_schema_older`,
    /// `store_schema_newer`: only a writer migrates), a file that is not a store
    /// (`store_invalid`), a file locked against readers (`store_locked`) and an unclean file no
    /// writer is recovering (`store_needs_recovery`).
    pub fn open(path: &Path) -> Result<ReadOnlyStore, StoreError> {
        let shown = path.display().to_string();
        if !path.is_file() {
            return Err(StoreError::Missing(shown));
        }
        let db = shared_builder().open_read_only(path).map_err(|e| match e {
            DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
                StoreError::Locked(shown.clone())
            }
            DatabaseError::RepairAborted => StoreError::NeedsRecovery(shown.clone()),
            other => StoreError::NotAStore(format!("{shown}({other})")),
        })?;
        let store = ReadOnlyStore { db };
        store.check_schema(&shown)?;
        Ok(store)
    }

    fn check_schema(&self, shown: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => {
                return Err(StoreError::NotAStore(shown.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let found = meta
            .get("schema_version")?
            .map(|v| decode::<u64>(v.value()))
            .transpose()?
            .ok_or_else(|| StoreError::NotAStore(shown.to_owned()))?;
        match found {
            SCHEMA_VERSION => Ok(()),
            newer if newer > SCHEMA_VERSION => Err(StoreError::NewerSchema(newer)),
            older => Err(StoreError::OlderSchema {
                found: older,
                expected: SCHEMA_VERSION,
            }),
        }
    }

    /// The frontier of every jurisdiction's log, as of the newest commit.
    pub fn log_heads(&self) -> Result<Vec<(String, Frontier)>, StoreError> {
        heads_in(&self.db.begin_read()?)
    }
}

impl BackupSource for ReadOnlyStore {
    fn snapshot(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
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
    let copied = copy_tables(&snapshot, dest);
    if copied.is_err() {
        std::fs::remove_file(dest).ok();
    }
    let rows = copied?;
    let taken_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let checkpoints = heads_in(&snapshot)?
        .into_iter()
        .map(|(jurisdiction, f)| Checkpoint {
            jurisdiction,
            size: f.size,
            root: merkle::to_hex(&f.root()),
            taken_at: taken_at.clone(),
        })
        .collect();
    Ok((rows, checkpoints))
}

/// Every table of `snapshot` into a new database at `dest` (an empty file), in one durable
/// write transaction; but the idempotent answers: a retry's state for a day, not a record, and
/// each holds a whole answer (personal data included) that a backup would keep for years.
fn copy_tables(snapshot: &ReadTransaction, dest: &Path) -> Result<u64, StoreError> {
    let copy = redb::Database::create(dest)?;
    let txn = copy.begin_write()?;
    let mut rows = 0u64;
    for table in ALL.iter().filter(|t| t.name() != IDEMPOTENCY.name()) {
        let from = snapshot.open_table(*table)?;
        let mut to = txn.open_table(*table)?;
        for item in redb::ReadableTable::iter(&from)? {
            let (k, v) = item?;
            to.insert(k.value(), v.value())?;
            rows += 1;
        }
    }
    txn.commit()?;
    Ok(rows)
}
