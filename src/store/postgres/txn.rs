//! Transactions: a read is one snapshot on one connection; a write is one serializable
//! transaction whose writes wait in an overlay per table (what its own reads merge with the
//! database) and reach the server at the commit, one multi-row statement per table and kind,
//! all sent at once. The keys a write will read can be read ahead the same way
//! ([`WriteTxn::read_ahead`]), so a batch of commands costs a few round trips, not a few each.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::pin::Pin;
use std::task::{Context, Poll};

use deadpool_postgres::Object;
use futures_util::future::{join, join_all};
use tokio::runtime::Handle;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::super::StoreError;
use super::super::kv::{Entries, ReadAhead, ReadTable, ReadTxn, Table, WriteTable, WriteTxn};
use super::keys::{jurisdiction, only_jurisdiction, without_nul};
use super::{storage_error, wait};

/// Rows of the first page of a range; each next page is `PAGE_GROWTH` times larger, up to
/// `PAGE_ROWS`. A range read for its first pair or two (the most common use) costs little, and a
/// scan of a million pairs holds at most one page at a time.
const FIRST_PAGE_ROWS: i64 = 32;
const PAGE_GROWTH: i64 = 4;
const PAGE_ROWS: i64 = 1000;
/// Pairs per statement when a commit writes its overlay, and keys per statement of a read
/// ahead: bounds one message (a migration that rewrites a whole table), far above what a batch
/// of commands writes.
const FLUSH_ROWS: usize = 10_000;

type Params<'a> = [&'a (dyn ToSql + Sync)];

/// A statement with parameters it owns, to be sent with others ([`Session::query_all`]).
type Owned = (String, Vec<Box<dyn ToSql + Sync>>);

/// One pooled connection inside one transaction, rolled back when dropped unless it finished:
/// the connection goes back to the pool clean, or, if even the ROLLBACK failed, not at all.
pub(super) struct Session {
    /// `None` only while dropping.
    client: Option<Object>,
    /// The statement that starts the transaction, while it waits to go with the first statement
    /// of the transaction, in the same round trip ([`Session::begin_with_first`]).
    unsent_begin: Cell<Option<&'static str>>,
    /// BEGIN was sent, and neither COMMIT nor ROLLBACK.
    in_transaction: Cell<bool>,
    /// The backend's runtime, where a dropped session's ROLLBACK runs.
    runtime: Handle,
}

impl Session {
    /// Starts a transaction with `begin` (one or more statements, sent in one round trip) now.
    pub(super) fn begin(
        client: Object,
        runtime: Handle,
        begin: &'static str,
    ) -> Result<Session, StoreError> {
        let session = Session::begin_with_first(client, runtime, begin);
        session.unsent_begin.take();
        session.in_transaction.set(true);
        wait(session.client().batch_execute(begin)).map_err(|e| storage_error("begin", &e))?;
        Ok(session)
    }

    /// A transaction whose `begin` is sent with its first statement: for a transaction that
    /// takes its snapshot at its first statement anyway (`SERIALIZABLE`), one round trip less.
    pub(super) fn begin_with_first(
        client: Object,
        runtime: Handle,
        begin: &'static str,
    ) -> Session {
        Session {
            client: Some(client),
            unsent_begin: Cell::new(Some(begin)),
            in_transaction: Cell::new(false),
            runtime,
        }
    }

    fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("the connection is taken only when the session is dropped")
    }

    /// Waits for `work`, sent after the transaction's BEGIN if that is not sent yet: both are
    /// polled together, BEGIN first, so they go in one round trip and in that order.
    fn run<T>(&self, work: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        let Some(begin) = self.unsent_begin.take() else {
            return wait(work);
        };
        self.in_transaction.set(true);
        let (begun, done) = wait(join(self.client().batch_execute(begin), work));
        begun.map_err(|e| storage_error("begin", &e))?;
        done
    }

    pub(super) fn query(&self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, StoreError> {
        let client = self.client();
        self.run(async {
            let statement = prepare(client, sql).await?;
            (client.query(&statement, params).await).map_err(|e| storage_error("query", &e))
        })
    }

    pub(super) fn execute(&self, sql: &str, params: &Params<'_>) -> Result<u64, StoreError> {
        let client = self.client();
        self.run(async {
            let statement = prepare(client, sql).await?;
            (client.execute(&statement, params).await).map_err(|e| storage_error("execute", &e))
        })
    }

    /// Statements sent together: tokio-postgres pipelines the queries of one connection that are
    /// polled at once, so they cost one round trip, not one each. The server runs them in the
    /// order sent, but callers send together only statements whose order does not matter. The
    /// rows of each, in order; the first failure if any failed (every answer is awaited first,
    /// so none is left on the connection).
    pub(super) fn query_all(&self, statements: &[Owned]) -> Result<Vec<Vec<Row>>, StoreError> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client();
        self.run(async {
            let prepared = prepare_all(client, statements).await?;
            query_prepared(client, &prepared, statements).await
        })
    }

    /// Statements without parameters, in one round trip.
    pub(super) fn batch(&self, sql: &str) -> Result<(), StoreError> {
        let client = self.client();
        self.run(async {
            client
                .batch_execute(sql)
                .await
                .map_err(|e| storage_error("statement", &e))
        })
    }

    /// Sends `statements` (see [`Session::query_all`]) and then COMMIT, together: one round trip
    /// and one WAL flush. Committed only if every statement and the COMMIT succeeded (after a
    /// failed statement the server ends the transaction without writing anything); whatever it
    /// answers, the transaction is over.
    pub(super) fn commit_with(&self, statements: &[Owned]) -> Result<(), StoreError> {
        if self.unsent_begin.get().is_some() && statements.is_empty() {
            // Nothing was read or written: there is no transaction to end.
            self.unsent_begin.take();
            return Ok(());
        }
        let client = self.client();
        self.run(async {
            // Prepared first, so that one poll sends every statement. A statement the server
            // cannot prepare fails here, and the session, still in its transaction, rolls it
            // back when dropped.
            let prepared = prepare_all(client, statements).await?;
            let params = params_of(statements);
            let mut written = InOrder::new(
                prepared
                    .iter()
                    .zip(&params)
                    .map(|(statement, params)| client.query(statement, params)),
            );
            // Every statement is sent now, before the COMMIT exists. One that failed before it
            // was sent (its parameters) leaves the transaction to the ROLLBACK of the drop.
            let answered = match futures_util::poll!(&mut written) {
                Poll::Ready(all) => Some(all),
                Poll::Pending => None,
            };
            let failed = match &answered {
                Some(all) => all.iter().find_map(|rows| rows.as_ref().err()),
                None => written.failed(),
            };
            if let Some(e) = failed {
                return Err(storage_error("query", e));
            }
            self.in_transaction.set(false);
            let commit = client.batch_execute("COMMIT");
            let (written, committed) = match answered {
                // Done already: polling it again would poll finished queries.
                Some(all) => (all, commit.await),
                None => join(written, commit).await,
            };
            for rows in written {
                rows.map_err(|e| storage_error("query", &e))?;
            }
            committed.map_err(|e| storage_error("commit", &e))
        })
    }
}

/// A statement prepared (at once when the connection has it cached already).
async fn prepare(client: &Object, sql: &str) -> Result<Statement, StoreError> {
    (client.prepare_cached(sql).await).map_err(|e| storage_error("prepare", &e))
}

/// Each statement prepared, together.
async fn prepare_all(client: &Object, statements: &[Owned]) -> Result<Vec<Statement>, StoreError> {
    join_all(statements.iter().map(|(sql, _)| prepare(client, sql)))
        .await
        .into_iter()
        .collect()
}

/// Prepared statements run together: each query is sent when first polled, so all go before
/// any answer is awaited.
async fn query_prepared(
    client: &Object,
    prepared: &[Statement],
    statements: &[Owned],
) -> Result<Vec<Vec<Row>>, StoreError> {
    let params = params_of(statements);
    InOrder::new(
        prepared
            .iter()
            .zip(&params)
            .map(|(statement, params)| client.query(statement, params)),
    )
    .await
    .into_iter()
    .map(|rows| rows.map_err(|e| storage_error("query", &e)))
    .collect()
}

/// The parameters of each statement, as tokio-postgres takes them.
fn params_of(statements: &[Owned]) -> Vec<Vec<&(dyn ToSql + Sync)>> {
    statements
        .iter()
        .map(|(_, params)| params.iter().map(|p| &**p).collect())
        .collect()
}

/// Futures polled together, every one that is not done at every poll, in the order given: so
/// the first poll polls each of them once, in that order, however many there are
/// (`futures_util`'s `join_all` does so only for a few, and a `FuturesOrdered` beyond). A query
/// of tokio-postgres is sent when first polled: after the first poll, all are on their way, in
/// order, and a COMMIT made after it goes after them.
struct InOrder<F: Future> {
    futures: Vec<Pin<Box<F>>>,
    outputs: Vec<Option<F::Output>>,
}

impl<F: Future> InOrder<F> {
    fn new(futures: impl IntoIterator<Item = F>) -> InOrder<F> {
        let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
        let outputs = futures.iter().map(|_| None).collect();
        InOrder { futures, outputs }
    }
}

impl<F: Future<Output = Result<Vec<Row>, tokio_postgres::Error>>> InOrder<F> {
    /// The first failure among those done so far.
    fn failed(&self) -> Option<&tokio_postgres::Error> {
        self.outputs.iter().flatten().find_map(|o| o.as_ref().err())
    }
}

// The futures are pinned in their boxes; the outputs are never pinned.
impl<F: Future> Unpin for InOrder<F> {}

impl<F: Future> Future for InOrder<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut pending = false;
        for (future, output) in this.futures.iter_mut().zip(this.outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(done) => *output = Some(done),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            return Poll::Pending;
        }
        Poll::Ready(this.outputs.iter_mut().filter_map(Option::take).collect())
    }
}

impl Drop for Session {
    /// Every snapshot ends here, so its ROLLBACK runs on the backend's runtime while the caller
    /// goes on: the caller does not wait a round trip for it, and the connection goes back to the
    /// pool once it is clean. (A dropped write's row locks last until then: a writer reading
    /// those rows meanwhile waits for them, and then sees them unchanged.)
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if !self.in_transaction.get() {
            return;
        }
        self.runtime.spawn(async move {
            if client.batch_execute("ROLLBACK").await.is_err() {
                // Its state is unknown: closed rather than handed to the next transaction.
                drop(Object::take(client));
            }
        });
    }
}

/// How many point reads a snapshot remembers: a transition reads a handful of records, some
/// twice (the student, when deciding and again when its statistics change is prepared); a
/// snapshot that reads thousands (a roster) keeps only its first ones.
const REMEMBERED_READS: usize = 32;

/// A snapshot's point reads so far, by table and key (`None`: no such key).
type Remembered = HashMap<(Table, String), Option<Vec<u8>>>;

/// A snapshot: `REPEATABLE READ READ ONLY`.
pub(super) struct PgRead {
    session: Session,
    /// Point reads answered so far: a snapshot never changes, so a second read of a key is
    /// answered here without a round trip.
    remembered: RefCell<Remembered>,
}

impl PgRead {
    pub(super) fn new(session: Session) -> PgRead {
        PgRead {
            session,
            remembered: RefCell::new(HashMap::new()),
        }
    }
}

impl ReadTxn for PgRead {
    fn open_table(&self, table: Table) -> Result<Box<dyn ReadTable + '_>, StoreError> {
        Ok(Box::new(SnapshotTable {
            committed: Committed {
                session: &self.session,
                table,
            },
            remembered: &self.remembered,
        }))
    }
}

/// A table of a snapshot.
struct SnapshotTable<'s> {
    committed: Committed<'s>,
    remembered: &'s RefCell<Remembered>,
}

impl ReadTable for SnapshotTable<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let remembered_key = (self.committed.table, key.to_owned());
        if let Some(value) = self.remembered.borrow().get(&remembered_key) {
            return Ok(value.clone());
        }
        let value = self.committed.read(key, false)?;
        let mut remembered = self.remembered.borrow_mut();
        if remembered.len() < REMEMBERED_READS {
            remembered.insert(remembered_key, value.clone());
        }
        Ok(value)
    }

    fn range(&self, start: Bound<&str>, end: Bound<&str>) -> Result<Entries<'_>, StoreError> {
        self.committed.range(start, end)
    }

    fn first(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.committed.first()
    }

    fn last(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.committed.last()
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.committed.len()
    }
}

/// A table as the transaction's snapshot has it, without the transaction's own writes.
#[derive(Clone, Copy)]
struct Committed<'s> {
    session: &'s Session,
    table: Table,
}

impl<'s> Committed<'s> {
    /// `lock`: `FOR UPDATE`, a write transaction's point read (the row stays as read until the
    /// commit, and a concurrent writer of it waits, then fails as contended).
    fn read(&self, key: &str, lock: bool) -> Result<Option<Vec<u8>>, StoreError> {
        // Text holds no NUL: no such key is stored, and the server would refuse the parameter.
        if key.contains('\0') {
            return Ok(None);
        }
        let sql = format!(
            "SELECT v FROM kv_{} WHERE jurisdiction = $1 AND k = $2{}",
            self.table.name(),
            if lock { " FOR UPDATE" } else { "" }
        );
        let rows = self
            .session
            .query(&sql, &[&jurisdiction(self.table, key), &key])?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    fn count(&self) -> Result<u64, StoreError> {
        let sql = format!("SELECT count(*) FROM kv_{}", self.table.name());
        let count: i64 = self.session.query(&sql, &[])?[0].get(0);
        Ok(count.unsigned_abs())
    }

    /// Up to `limit` pairs within the bounds, nearest `lower` first (or nearest `upper` when
    /// `descending`). A range within one jurisdiction reads that jurisdiction's part of the
    /// primary key; any other compares `(jurisdiction, k)` as a row, the same order (`keys`).
    fn page(
        &self,
        lower: Bound<&str>,
        upper: Bound<&str>,
        descending: bool,
        limit: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let only = only_jurisdiction(self.table, lower, upper);
        let mut values: Vec<&str> = Vec::with_capacity(5);
        let mut conditions = Vec::with_capacity(3);
        if let Some(only) = only {
            values.push(only);
            conditions.push("jurisdiction = $1".to_owned());
        }
        for (bound, inclusive, exclusive) in [(lower, ">=", ">"), (upper, "<=", "<")] {
            let (op, key) = match bound {
                Bound::Included(key) => (inclusive, key),
                Bound::Excluded(key) => (exclusive, key),
                Bound::Unbounded => continue,
            };
            if only.is_some() {
                values.push(key);
                conditions.push(format!("k {op} ${}", values.len()));
            } else {
                values.push(jurisdiction(self.table, key));
                values.push(key);
                let n = values.len();
                conditions.push(format!("(jurisdiction, k) {op} (${}, ${n})", n - 1));
            }
        }
        let direction = if descending { "DESC" } else { "ASC" };
        let order = if only.is_some() {
            format!("k {direction}")
        } else {
            format!("jurisdiction {direction}, k {direction}")
        };
        let sql = format!(
            "SELECT k, v FROM kv_{} WHERE {} ORDER BY {order} LIMIT ${}",
            self.table.name(),
            if conditions.is_empty() {
                "TRUE".to_owned()
            } else {
                conditions.join(" AND ")
            },
            values.len() + 1
        );
        let mut params: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        params.push(&limit);
        let rows = self.session.query(&sql, &params)?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    fn scan(&self, start: Bound<&str>, end: Bound<&str>, descending: bool) -> Scan<'s> {
        Scan {
            committed: *self,
            lower: without_nul(start, true),
            upper: without_nul(end, false),
            descending,
            page_rows: FIRST_PAGE_ROWS,
            buffered: Vec::new().into_iter(),
            exhausted: is_empty_range(start, end),
        }
    }

    fn end_pair(&self, descending: bool) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .page(Bound::Unbounded, Bound::Unbounded, descending, 1)?
            .into_iter()
            .next())
    }
}

impl ReadTable for Committed<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(key, false)
    }

    fn range(&self, start: Bound<&str>, end: Bound<&str>) -> Result<Entries<'_>, StoreError> {
        Ok(Box::new(self.scan(start, end, false)))
    }

    fn first(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.end_pair(false)
    }

    fn last(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.end_pair(true)
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.count()
    }
}

/// Whether no key can be within the bounds (`BTreeMap::range` panics on some of these).
fn is_empty_range(start: Bound<&str>, end: Bound<&str>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
            s >= e
        }
        _ => false,
    }
}

/// A range of committed pairs, read a page at a time (keyset pagination: each page starts past
/// the last key of the one before).
struct Scan<'s> {
    committed: Committed<'s>,
    lower: Bound<String>,
    upper: Bound<String>,
    descending: bool,
    page_rows: i64,
    buffered: std::vec::IntoIter<(String, Vec<u8>)>,
    exhausted: bool,
}

impl Scan<'_> {
    fn next_page(&mut self) -> Result<(), StoreError> {
        let page = self.committed.page(
            self.lower.as_ref().map(String::as_str),
            self.upper.as_ref().map(String::as_str),
            self.descending,
            self.page_rows,
        )?;
        self.exhausted = (page.len() as i64) < self.page_rows;
        if let Some((last, _)) = page.last() {
            let past = Bound::Excluded(last.clone());
            if self.descending {
                self.upper = past;
            } else {
                self.lower = past;
            }
        }
        self.page_rows = (self.page_rows * PAGE_GROWTH).min(PAGE_ROWS);
        self.buffered = page.into_iter();
        Ok(())
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(String, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(pair) = self.buffered.next() {
                return Some(Ok(pair));
            }
            if self.exhausted {
                return None;
            }
            if let Err(e) = self.next_page() {
                self.exhausted = true;
                return Some(Err(e));
            }
        }
    }
}

/// A table's writes waiting for the commit: `None` is a removal.
type Overlay = BTreeMap<String, Option<Vec<u8>>>;

/// A table's committed values read ahead, locked `FOR UPDATE` (`None`: no such key).
type ReadCache = HashMap<String, Option<Vec<u8>>>;

/// A write transaction: `SERIALIZABLE`.
pub(super) struct PgWrite {
    session: Session,
    overlays: RefCell<BTreeMap<Table, Overlay>>,
    read: RefCell<HashMap<Table, ReadCache>>,
}

impl PgWrite {
    pub(super) fn new(session: Session) -> PgWrite {
        PgWrite {
            session,
            overlays: RefCell::new(BTreeMap::new()),
            read: RefCell::new(HashMap::new()),
        }
    }

    /// The statements that write one table's overlay: removals, insertions and replacements.
    /// A key is in one of them only, so they may run in any order.
    fn flush(table: Table, overlay: Overlay, statements: &mut Vec<Owned>) {
        let (written, removed): (Vec<_>, Vec<_>) =
            overlay.into_iter().partition(|(_, value)| value.is_some());
        let jurisdictions_of = |keys: &[String]| -> Vec<String> {
            keys.iter()
                .map(|k| jurisdiction(table, k).to_owned())
                .collect()
        };
        let remove = format!(
            "DELETE FROM kv_{} WHERE (jurisdiction, k) IN \
             (SELECT * FROM unnest($1::text[], $2::text[]))",
            table.name()
        );
        for chunk in removed.chunks(FLUSH_ROWS) {
            let keys: Vec<String> = chunk.iter().map(|(k, _)| k.clone()).collect();
            statements.push((
                remove.clone(),
                vec![Box::new(jurisdictions_of(&keys)), Box::new(keys)],
            ));
        }
        let write = format!(
            "INSERT INTO kv_{} (jurisdiction, k, v) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) \
             ON CONFLICT (jurisdiction, k) DO UPDATE SET v = excluded.v",
            table.name()
        );
        let mut written = written.into_iter().peekable();
        while written.peek().is_some() {
            let (keys, values): (Vec<String>, Vec<Vec<u8>>) = written
                .by_ref()
                .take(FLUSH_ROWS)
                .filter_map(|(k, v)| Some((k, v?)))
                .unzip();
            statements.push((
                write.clone(),
                vec![
                    Box::new(jurisdictions_of(&keys)),
                    Box::new(keys),
                    Box::new(values),
                ],
            ));
        }
    }

    /// A committed value read ahead, if this key was.
    fn read_ahead_value(&self, table: Table, key: &str) -> Option<Option<Vec<u8>>> {
        self.read.borrow().get(&table)?.get(key).cloned()
    }
}

impl WriteTxn for PgWrite {
    fn open_table(&self, table: Table) -> Result<Box<dyn WriteTable + '_>, StoreError> {
        Ok(Box::new(PgWriteTable { txn: self, table }))
    }

    fn clear_table(&self, table: Table) -> Result<(), StoreError> {
        self.session
            .execute(&format!("DELETE FROM kv_{}", table.name()), &[])?;
        self.overlays.borrow_mut().remove(&table);
        self.read.borrow_mut().remove(&table);
        Ok(())
    }

    /// One `SELECT … FOR UPDATE` per table for the keys not written or read ahead yet, all sent
    /// at once: the rows are then locked and read as a later `get` would have.
    fn read_ahead(&self, keys: &ReadAhead) -> Result<(), StoreError> {
        let mut statements = Vec::new();
        let mut asked: Vec<(Table, Vec<String>)> = Vec::new();
        {
            let overlays = self.overlays.borrow();
            let read = self.read.borrow();
            for (&table, keys) in keys {
                let written = overlays.get(&table);
                let cached = read.get(&table);
                let wanted: Vec<String> = keys
                    .iter()
                    .filter(|k| {
                        // Text holds no NUL: no such key is stored (`get` answers it alone).
                        !k.contains('\0')
                            && !written.is_some_and(|o| o.contains_key(*k))
                            && !cached.is_some_and(|c| c.contains_key(*k))
                    })
                    .cloned()
                    .collect();
                let sql = format!(
                    "SELECT k, v FROM kv_{} WHERE (jurisdiction, k) IN \
                     (SELECT * FROM unnest($1::text[], $2::text[])) FOR UPDATE",
                    table.name()
                );
                for chunk in wanted.chunks(FLUSH_ROWS) {
                    let jurisdictions: Vec<String> = chunk
                        .iter()
                        .map(|k| jurisdiction(table, k).to_owned())
                        .collect();
                    statements.push((
                        sql.clone(),
                        vec![
                            Box::new(jurisdictions) as Box<dyn ToSql + Sync>,
                            Box::new(chunk.to_vec()),
                        ],
                    ));
                    asked.push((table, chunk.to_vec()));
                }
            }
        }
        let answers = self.session.query_all(&statements)?;
        let mut read = self.read.borrow_mut();
        for ((table, wanted), rows) in asked.into_iter().zip(answers) {
            let cache = read.entry(table).or_default();
            cache.extend(wanted.into_iter().map(|k| (k, None)));
            cache.extend(rows.iter().map(|row| (row.get(0), Some(row.get(1)))));
        }
        Ok(())
    }

    fn reads_ahead(&self) -> bool {
        true
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let mut statements = Vec::new();
        for (table, overlay) in self.overlays.take() {
            PgWrite::flush(table, overlay, &mut statements);
        }
        self.session.commit_with(&statements)
    }
}

/// One table of a write transaction: its overlay over the committed rows.
struct PgWriteTable<'t> {
    txn: &'t PgWrite,
    table: Table,
}

impl<'t> PgWriteTable<'t> {
    fn committed(&self) -> Committed<'t> {
        Committed {
            session: &self.txn.session,
            table: self.table,
        }
    }

    /// The overlay's entries within the bounds, copied: the table may be written while a range
    /// read from it is still being consumed through another handle.
    fn overlay_range(
        &self,
        start: Bound<&str>,
        end: Bound<&str>,
    ) -> Vec<(String, Option<Vec<u8>>)> {
        if is_empty_range(start, end) {
            return Vec::new();
        }
        self.txn
            .overlays
            .borrow()
            .get(&self.table)
            .map(|overlay| {
                overlay
                    .range::<str, _>((start, end))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn merged(&self, start: Bound<&str>, end: Bound<&str>, descending: bool) -> Merged<'t> {
        let mut overlay = self.overlay_range(start, end);
        if descending {
            overlay.reverse();
        }
        Merged {
            committed: self.committed().scan(start, end, descending),
            next_committed: None,
            overlay: overlay.into_iter().peekable(),
            descending,
        }
    }
}

impl ReadTable for PgWriteTable<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let written = self
            .txn
            .overlays
            .borrow()
            .get(&self.table)
            .and_then(|overlay| overlay.get(key).cloned());
        if let Some(value) = written {
            return Ok(value);
        }
        match self.txn.read_ahead_value(self.table, key) {
            Some(value) => Ok(value),
            None => self.committed().read(key, true),
        }
    }

    fn range(&self, start: Bound<&str>, end: Bound<&str>) -> Result<Entries<'_>, StoreError> {
        Ok(Box::new(self.merged(start, end, false)))
    }

    fn first(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.merged(Bound::Unbounded, Bound::Unbounded, false)
            .next()
            .transpose()
    }

    fn last(&self) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        self.merged(Bound::Unbounded, Bound::Unbounded, true)
            .next()
            .transpose()
    }

    fn len(&self) -> Result<u64, StoreError> {
        let committed = self.committed().count()?;
        let overlays = self.txn.overlays.borrow();
        let Some(overlay) = overlays.get(&self.table).filter(|o| !o.is_empty()) else {
            return Ok(committed);
        };
        let jurisdictions: Vec<&str> = overlay
            .keys()
            .map(|k| jurisdiction(self.table, k))
            .collect();
        let keys: Vec<&str> = overlay.keys().map(String::as_str).collect();
        let sql = format!(
            "SELECT count(*) FROM kv_{} WHERE (jurisdiction, k) IN \
             (SELECT * FROM unnest($1::text[], $2::text[]))",
            self.table.name()
        );
        let replaced: i64 = self.txn.session.query(&sql, &[&jurisdictions, &keys])?[0].get(0);
        let present = overlay.values().filter(|v| v.is_some()).count() as u64;
        Ok(committed - replaced.unsigned_abs() + present)
    }
}

impl WriteTable for PgWriteTable<'_> {
    fn insert(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.txn
            .overlays
            .borrow_mut()
            .entry(self.table)
            .or_default()
            .insert(key.to_owned(), Some(value.to_vec()));
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.get(key)?;
        self.txn
            .overlays
            .borrow_mut()
            .entry(self.table)
            .or_default()
            .insert(key.to_owned(), None);
        Ok(old)
    }
}

/// The committed pairs of a range merged with the transaction's own writes, which win.
struct Merged<'s> {
    committed: Scan<'s>,
    next_committed: Option<(String, Vec<u8>)>,
    overlay: std::iter::Peekable<std::vec::IntoIter<(String, Option<Vec<u8>>)>>,
    descending: bool,
}

impl Iterator for Merged<'_> {
    type Item = Result<(String, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.next_committed.is_none() {
                match self.committed.next() {
                    Some(Ok(pair)) => self.next_committed = Some(pair),
                    Some(Err(e)) => return Some(Err(e)),
                    None => {}
                }
            }
            let overlay_first = match (&self.next_committed, self.overlay.peek()) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((committed, _)), Some((written, _))) => {
                    if committed == written {
                        // Replaced or removed by the transaction.
                        self.next_committed = None;
                        true
                    } else {
                        (written < committed) != self.descending
                    }
                }
            };
            if !overlay_first {
                return self.next_committed.take().map(Ok);
            }
            if let Some((key, Some(value))) = self.overlay.next() {
                return Some(Ok((key, value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    use super::InOrder;

    /// Records its index when first polled, then is done at its second poll.
    struct Query<'a> {
        index: usize,
        sent: &'a RefCell<Vec<usize>>,
        polled: bool,
    }

    impl Future for Query<'_> {
        type Output = usize;

        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<usize> {
            if self.polled {
                return Poll::Ready(self.index);
            }
            self.polled = true;
            self.sent.borrow_mut().push(self.index);
            Poll::Pending
        }
    }

    /// What `Session::commit_with` relies on: one poll sends every statement, in order, however
    /// many (a COMMIT made after it cannot overtake any), and the outputs keep that order.
    #[test]
    fn the_first_poll_polls_every_future_once_in_order() {
        for count in [1, 30, 31, 200] {
            let sent = RefCell::new(Vec::new());
            let mut all = InOrder::new((0..count).map(|index| Query {
                index,
                sent: &sent,
                polled: false,
            }));
            let mut cx = Context::from_waker(Waker::noop());
            assert!(Pin::new(&mut all).poll(&mut cx).is_pending());
            assert_eq!(*sent.borrow(), (0..count).collect::<Vec<_>>(), "{count}");
            let Poll::Ready(outputs) = Pin::new(&mut all).poll(&mut cx) else {
                panic!("{count}: every future is done at its second poll");
            };
            assert_eq!(outputs, (0..count).collect::<Vec<_>>());
        }
    }
}
