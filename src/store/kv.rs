//! The storage seam: ordered key-value tables, read in one snapshot and written in one durable
//! transaction. Everything above it (the writer's commands and their preconditions, the records
//! of the history, the Merkle logs, the statistics counters, verify's checks, the migrations) is
//! written once against these traits; a backend only stores ordered pairs:
//!
//! - `store::redb`: the embedded file (the default);
//! - `store::postgres`: PostgreSQL, one table per logical table, keys led by the jurisdiction.
//!
//! Keys are UTF-8 strings compared bytewise (redb's `&str` order, PostgreSQL's `COLLATE "C"`);
//! values are bytes. The key layouts are in `store::tables`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::StoreError;

/// A logical table: its name is the redb table's name and, prefixed, the PostgreSQL table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table(&'static str);

impl Table {
    pub const fn new(name: &'static str) -> Table {
        Table(name)
    }

    pub const fn name(self) -> &'static str {
        self.0
    }
}

/// Keys a write transaction will read, by table (see [`WriteTxn::read_ahead`]).
pub type ReadAhead = BTreeMap<Table, BTreeSet<String>>;

/// Pairs of a range, ascending by key.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<(String, Vec<u8>), StoreError>> + 'a>;

/// One table as one snapshot sees it.
pub trait ReadTable {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The pairs with keys within the bounds, ascending.
    fn range(&self, start: Bound<&str>, end: Bound<&str>) -> Result<Entries<'_>, StoreError>;
    /// The pair with the smallest key.
    fn first(&self) -> Result<Option<(String, Vec<u8>)>, StoreError>;
    /// The pair with the largest key.
    fn last(&self) -> Result<Option<(String, Vec<u8>)>, StoreError>;
    /// How many pairs the table holds.
    fn len(&self) -> Result<u64, StoreError>;

    fn iter(&self) -> Result<Entries<'_>, StoreError> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.first()?.is_none())
    }
}

/// One table inside a write transaction: reads see the transaction's own writes.
pub trait WriteTable: ReadTable {
    fn insert(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes a pair; its value, if it was there.
    fn remove(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A consistent snapshot: every table opened from it sees the same committed state.
pub trait ReadTxn {
    fn open_table(&self, table: Table) -> Result<Box<dyn ReadTable + '_>, StoreError>;
}

/// A write transaction. Several tables may be open at once; nothing is visible to others, and
/// nothing is durable, before `commit` returns.
pub trait WriteTxn {
    fn open_table(&self, table: Table) -> Result<Box<dyn WriteTable + '_>, StoreError>;
    /// Empties a table (a migration rebuilding it).
    fn clear_table(&self, table: Table) -> Result<(), StoreError>;
    /// Reads these keys now, in as few round trips as the backend can, for the point reads of
    /// this transaction that follow: a hint, which changes no answer. A backend whose reads are
    /// local (redb) ignores it; PostgreSQL reads them with one statement per table, all sent
    /// at once, instead of one round trip per later `get`.
    fn read_ahead(&self, keys: &ReadAhead) -> Result<(), StoreError> {
        let _ = keys;
        Ok(())
    }
    /// Whether [`WriteTxn::read_ahead`] does anything: the writer gathers a batch's keys only
    /// then.
    fn reads_ahead(&self) -> bool {
        false
    }
    /// Makes every write durable (fsync, or PostgreSQL's `synchronous_commit`) or none of them.
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// A storage backend: where the pairs live.
pub trait Backend: Send + Sync + 'static {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError>;
    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError>;
    /// What the backend is, for logs and `GET /metrics` (`redb`, `postgres`).
    fn kind(&self) -> &'static str;
}
