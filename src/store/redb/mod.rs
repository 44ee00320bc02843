//! The embedded backend: the store's tables in one redb file. A read transaction is one redb
//! snapshot; a write transaction one redb write transaction committed with an fsync
//! (`Durability::Immediate`). One process writes the file ([`Store::open`]); others may read it
//! meanwhile ([`ReadOnlyStore`], what `xueji backup` uses).

pub mod fault;
mod read_only;

use ::redb::{
    ConcurrencyMode, Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable,
    StorageBackend, TableDefinition, WriteTransaction,
};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use super::kv::{self, Entries};
use super::{Store, StoreError, private};
pub use read_only::ReadOnlyStore;

/// redb's page cache. Pages beyond it are read from the operating system's file cache, which
/// is shared and not counted in the process's memory; redb's default (1 GiB) would make a
/// district-sized store hold a gigabyte for pages it rarely reads again.
pub const CACHE_BYTES: usize = 128 << 20;

macro_rules! storage_from {
    ($($t:ty),*) => {$(impl From<$t> for StoreError {
        fn from(e: $t) -> Self { StoreError::Storage(e.to_string()) }
    })*};
}
storage_from!(
    ::redb::Error,
    ::redb::StorageError,
    ::redb::TableError,
    ::redb::TransactionError,
    ::redb::CommitError,
    ::redb::DatabaseError,
    ::redb::SetDurabilityError
);

fn definition(table: kv::Table) -> TableDefinition<'static, &'static str, &'static [u8]> {
    TableDefinition::new(table.name())
}

/// How every process opens the store file: one writer, any number of read-only processes.
fn shared_builder() -> ::redb::Builder {
    let mut builder = Database::builder();
    builder
        .set_concurrency_mode(ConcurrencyMode::SingleWriter)
        .set_cache_size(CACHE_BYTES);
    builder
}

/// A redb database as a [`kv::Backend`].
pub struct RedbBackend {
    db: Database,
}

impl RedbBackend {
    /// A new database in `path`, an empty file the caller has claimed (a backup's copy, the kv
    /// contract's tests), opened as redb's default: alone, without [`Store::open`]'s modes.
    pub fn create_file(path: &Path) -> Result<RedbBackend, StoreError> {
        Ok(RedbBackend {
            db: Database::create(path)?,
        })
    }

    /// A database on a custom redb storage backend, in the mode [`Store::open`] uses (one
    /// writer beside read-only processes). The backend must implement redb's byte-range locks.
    pub fn shared_with_backend(backend: impl StorageBackend) -> Result<RedbBackend, StoreError> {
        Ok(RedbBackend {
            db: shared_builder().create_with_backend(backend)?,
        })
    }

    /// A database on a custom redb storage backend, alone: redb's default
    /// [`ConcurrencyMode::ExclusiveWriter`] (one fsync a commit), which needs no locks from the
    /// backend; with [`Store::open`]'s cache.
    pub fn alone_with_backend(backend: impl StorageBackend) -> Result<RedbBackend, StoreError> {
        Ok(RedbBackend {
            db: Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create_with_backend(backend)?,
        })
    }
}

impl kv::Backend for RedbBackend {
    fn begin_read(&self) -> Result<Box<dyn kv::ReadTxn + '_>, StoreError> {
        Ok(Box::new(ReadTxn(self.db.begin_read()?)))
    }

    fn begin_write(&self) -> Result<Box<dyn kv::WriteTxn + '_>, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        Ok(Box::new(WriteTxn(txn)))
    }

    fn kind(&self) -> &'static str {
        "redb"
    }
}

/// One redb snapshot; also what a [`ReadOnlyStore`] reads through.
struct ReadTxn(ReadTransaction);

impl kv::ReadTxn for ReadTxn {
    fn open_table(&self, table: kv::Table) -> Result<Box<dyn kv::ReadTable + '_>, StoreError> {
        Ok(Box::new(Tbl(self.0.open_table(definition(table))?)))
    }
}

struct WriteTxn(WriteTransaction);

impl kv::WriteTxn for WriteTxn {
    fn open_table(&self, table: kv::Table) -> Result<Box<dyn kv::WriteTable + '_>, StoreError> {
        Ok(Box::new(Tbl(self.0.open_table(definition(table))?)))
    }

    /// Drops the table from the file (a legacy table leaves no trace); opening it again in the
    /// transaction makes it anew, empty.
    fn clear_table(&self, table: kv::Table) -> Result<(), StoreError> {
        self.0.delete_table(definition(table))?;
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        Ok(self.0.commit()?)
    }
}

/// A redb table, read-only or open for writing.
struct Tbl<T>(T);

impl<T: ReadableTable<&'static str, &'static [u8]>> kv::ReadTable for Tbl<T> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key)?.map(|g| g.value().to_vec()))
    }

    fn range(&self, start: Bound<&str>, end: Bound<&str>) -> Result<Entries<'_>, StoreError> {
        let range = self.0.range::<&str>((start, end))?;
        Ok(Box::new(range.map(|item| {
            let (k, v) = item?;
            Ok((k.value().to_owned(), v.value().to_vec()))
        })))
    }

    fn first(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .0
            .first()?
            .map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
    }

    fn last(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .0
            .last()?
            .map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
    }

    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.0.len()?)
    }
}

impl kv::WriteTable for Tbl<::redb::Table<'_, &'static str, &'static [u8]>> {
    fn insert(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.0.insert(key, value)?;
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.remove(key)?.map(|g| g.value().to_vec()))
    }
}

impl Store {
    /// Opens (or creates) the store file, as its one writer. Other processes may open it
    /// read-only meanwhile ([`ReadOnlyStore`], what `xueji backup` uses) and follow its commits:
    /// redb's [`ConcurrencyMode::SingleWriter`], which needs byte-range file locks (Linux, the
    /// Apple platforms, Windows).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // redb creates a missing file with the umask's mode (0644 as a rule) and initializes an
        // empty one: claim the file first as 0600, and tighten one an older version left open.
        private::options()
            .create(true)
            .truncate(false)
            .open(path)
            .and_then(|_| private::restrict(path))
            .map_err(|e| StoreError::Storage(format!("{}: {e}", path.display())))?;
        let db = shared_builder().create(path)?;
        Store::open_backend(Arc::new(RedbBackend { db }))
    }

    /// Opens a store on a custom redb storage backend (in-memory fuzzing), alone: redb's default
    /// [`ConcurrencyMode::ExclusiveWriter`], which needs no locks from the backend.
    pub fn open_with_backend(backend: impl StorageBackend) -> Result<Store, StoreError> {
        Store::open_backend(Arc::new(RedbBackend::alone_with_backend(backend)?))
    }

    /// Opens a store on a custom redb storage backend in the mode [`Store::open`] uses, so that
    /// a test sees the commits a served store does. The backend must implement redb's
    /// byte-range locks.
    pub fn open_shared_with_backend(backend: impl StorageBackend) -> Result<Store, StoreError> {
        Store::open_backend(Arc::new(RedbBackend::shared_with_backend(backend)?))
    }
}
