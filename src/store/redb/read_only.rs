//! The read-only view `xueji backup` takes of a store file that a running server keeps writing.

use ::redb::{DatabaseError, ReadOnlyDatabase, ReadableDatabase, TableError};
use std::path::Path;

use super::{ReadTxn, definition, shared_builder};
use crate::domain::merkle::Frontier;
use crate::store::backup::BackupSource;
use crate::store::tables::META;
use crate::store::{SCHEMA_VERSION, StoreError, decode, heads_in, kv};

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
        let meta = match txn.open_table(definition(META)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => {
                return Err(StoreError::NotAStore(shown.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let found = ::redb::ReadableTable::get(&meta, "schema_version")?
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
        heads_in(&ReadTxn(self.db.begin_read()?))
    }
}

impl BackupSource for ReadOnlyStore {
    fn snapshot(&self) -> Result<Box<dyn kv::ReadTxn + '_>, StoreError> {
        Ok(Box::new(ReadTxn(self.db.begin_read()?)))
    }
}
