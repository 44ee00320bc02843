//! A storage seam backend that counts what the store writes through it, table by table: pairs
//! inserted and removed, and their bytes (key and value), with the commits. Wrapped around the
//! metered redb backend, it says where the bytes of a transition go: the logical bytes each
//! table receives beside the pages redb writes for them (issue #20, "where the bytes go").

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use xueji::store::StoreError;
use xueji::store::kv::{
    Backend, Entries, ReadAhead, ReadTable, ReadTxn, Table, WriteTable, WriteTxn,
};

/// What was written to one table.
#[derive(Debug, Clone, Copy, Default)]
pub struct Written {
    pub inserted: u64,
    pub removed: u64,
    /// Keys and values inserted, and keys removed.
    pub bytes: u64,
    /// Commits in which the table was written at least once.
    pub commits: u64,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub commits: AtomicU64,
    tables: Mutex<BTreeMap<&'static str, Written>>,
}

impl Counts {
    pub fn tables(&self) -> BTreeMap<&'static str, Written> {
        self.tables
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

pub struct CountedBackend<B> {
    inner: B,
    pub counts: Arc<Counts>,
}

impl<B: Backend> CountedBackend<B> {
    pub fn new(inner: B) -> CountedBackend<B> {
        CountedBackend {
            inner,
            counts: Arc::default(),
        }
    }
}

impl<B: Backend> Backend for CountedBackend<B> {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        self.inner.begin_read()
    }

    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
        Ok(Box::new(CountedWrite {
            inner: self.inner.begin_write()?,
            counts: &self.counts,
            pending: Mutex::default(),
        }))
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

/// A write transaction's counts, added to the backend's when it commits.
struct CountedWrite<'b> {
    inner: Box<dyn WriteTxn + 'b>,
    counts: &'b Counts,
    pending: Mutex<BTreeMap<&'static str, Written>>,
}

impl WriteTxn for CountedWrite<'_> {
    fn open_table(&self, table: Table) -> Result<Box<dyn WriteTable + '_>, StoreError> {
        Ok(Box::new(CountedTable {
            inner: self.inner.open_table(table)?,
            table,
            pending: &self.pending,
        }))
    }

    fn clear_table(&self, table: Table) -> Result<(), StoreError> {
        self.inner.clear_table(table)
    }

    fn read_ahead(&self, keys: &ReadAhead) -> Result<(), StoreError> {
        self.inner.read_ahead(keys)
    }

    fn reads_ahead(&self) -> bool {
        self.inner.reads_ahead()
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let CountedWrite {
            inner,
            counts,
            pending,
        } = *self;
        inner.commit()?;
        counts.commits.fetch_add(1, Ordering::Relaxed);
        let pending = pending.into_inner().unwrap_or_else(PoisonError::into_inner);
        let mut tables = counts.tables.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, w) in pending {
            let total = tables.entry(name).or_default();
            total.inserted += w.inserted;
            total.removed += w.removed;
            total.bytes += w.bytes;
            total.commits += 1;
        }
        Ok(())
    }
}

struct CountedTable<'t> {
    inner: Box<dyn WriteTable + 't>,
    table: Table,
    pending: &'t Mutex<BTreeMap<&'static str, Written>>,
}

impl CountedTable<'_> {
    fn count(&self, f: impl FnOnce(&mut Written)) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        f(pending.entry(self.table.name()).or_default());
    }
}

impl ReadTable for CountedTable<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn range(&self, start: Bound<&str>, end: Bound<&str>) -> Result<Entries<'_>, StoreError> {
        self.inner.range(start, end)
    }

    fn first(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.inner.first()
    }

    fn last(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.inner.last()
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.inner.len()
    }
}

impl WriteTable for CountedTable<'_> {
    fn insert(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.insert(key, value)?;
        self.count(|w| {
            w.inserted += 1;
            w.bytes += (key.len() + value.len()) as u64;
        });
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.inner.remove(key)?;
        self.count(|w| {
            w.removed += 1;
            w.bytes += key.len() as u64;
        });
        Ok(old)
    }
}
