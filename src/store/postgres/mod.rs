//! PostgreSQL behind the storage seam (`store::kv`): one table per logical table, keys led by the
//! jurisdiction, a read as one `REPEATABLE READ READ ONLY` snapshot, a write as one
//! `SERIALIZABLE` transaction whose writes wait in memory until the commit.
//!
//! The engine is synchronous (the writer thread; reads on tokio's blocking pool, on plain
//! threads, sometimes inside a test's runtime), tokio-postgres is asynchronous. The bridge:
//!
//! - the backend owns a small tokio runtime (one worker, `xueji-postgres`) on which every
//!   connection's I/O task runs, and the pool creates connections, with its timeouts, only there
//!   (`PostgresBackend::pooled` spawns `Pool::get` on it);
//! - a caller waits with `futures_executor::block_on`, on its own thread: a client's futures only
//!   exchange messages with the connection task over channels, so they need no runtime of their
//!   own, and a `JoinHandle` of the backend's runtime is a plain future too.
//!
//! `Runtime::block_on` or `Handle::block_on` would panic ("Cannot start a runtime from within a
//! runtime") on a thread of a caller's runtime, and `block_in_place` needs a multi-threaded one;
//! `block_on` of futures-executor blocks the calling thread, which is what a synchronous caller
//! asked for, wherever it runs. The runtime is shut down without waiting (`shutdown_background`)
//! so that dropping the backend is allowed inside an async context too.

mod keys;
mod schema;
mod txn;

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio::runtime::Handle;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::StoreError;
use super::kv::{Backend, ReadTxn, WriteTxn};
use txn::{PgRead, PgWrite, Session};

/// Connections kept for snapshots of concurrent reads.
const READ_POOL_SIZE: usize = 16;
/// Connections kept for write transactions, apart from the reads': a caller may hold a snapshot
/// while it waits for the writer to commit its command (a sweep, `Store::queue_in`), so with one
/// pool as many waiting callers as connections would leave the writer none, and nobody would
/// move.
/// The store writes from one thread; the rest are for callers of the seam that write side by
/// side (the contention tests).
const WRITE_POOL_SIZE: usize = 4;
/// How long a transaction waits for a free connection before it fails: a bound on a hang (every
/// connection held by a stuck reader), far above a normal wait.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// How long opening one connection may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// A PostgreSQL database as a storage backend. Every transaction holds one pooled connection.
pub struct PostgresBackend {
    reads: Pool,
    writes: Pool,
    /// `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl PostgresBackend {
    /// Connects to `url` (`postgres://user:password@host:port/database?options=…`, tokio-postgres'
    /// connection string), checks that commits are durable, and creates or migrates the schema.
    pub fn connect(url: &str) -> Result<PostgresBackend, StoreError> {
        // The parser's messages name the option at fault, never the password.
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Storage(format!("postgres connection string: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("xueji-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Storage(format!("postgres runtime: {e}")))?;
        let manager = || {
            Manager::from_config(
                config.clone(),
                NoTls,
                // Every transaction ends with COMMIT or ROLLBACK before its connection comes
                // back, and one whose ROLLBACK failed is discarded (`Session`): a closed
                // connection is all there is left to find.
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            )
        };
        let pool = |size: usize| {
            Pool::builder(manager())
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(POOL_WAIT))
                .create_timeout(Some(CONNECT_LIMIT))
                .build()
                .map_err(|e| StoreError::Storage(format!("postgres pool: {e}")))
        };
        let backend = PostgresBackend {
            reads: pool(READ_POOL_SIZE)?,
            writes: pool(WRITE_POOL_SIZE)?,
            runtime: Some(runtime),
        };
        schema::open(&backend)?;
        Ok(backend)
    }

    /// A transaction started with `begin` on a connection of `pool`.
    fn session(&self, pool: &Pool, begin: &'static str) -> Result<Session, StoreError> {
        let (client, runtime) = self.pooled(pool)?;
        Session::begin(client, runtime, begin)
    }

    /// A connection of `pool`, and the backend's runtime. Waited for on the calling thread, in
    /// the runtime's context: the pool's timers, and the task of a connection it opens when
    /// none is free, are the runtime's, while a free connection is handed over without a hop
    /// to the runtime's thread and back.
    fn pooled(&self, pool: &Pool) -> Result<(Object, Handle), StoreError> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| StoreError::Storage("postgres backend closed".into()))?;
        let pooled = {
            let _context = runtime.enter();
            wait(pool.get())
        };
        match pooled {
            Ok(client) => Ok((client, runtime.handle().clone())),
            Err(PoolError::Timeout(_)) => Err(StoreError::Storage(format!(
                "postgres: no connection free within {POOL_WAIT:?} (pool of {})",
                pool.status().max_size
            ))),
            Err(PoolError::Backend(e)) => Err(storage_error("connect", &e)),
            Err(e) => Err(StoreError::Storage(format!("postgres pool: {e}"))),
        }
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        self.reads.close();
        self.writes.close();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Backend for PostgresBackend {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        // A repeatable-read transaction takes its snapshot at its first statement, not at BEGIN:
        // the SELECT takes it now, so that the snapshot is that of `begin_read` as with redb.
        let session = self.session(
            &self.reads,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1",
        )?;
        Ok(Box::new(PgRead::new(session)))
    }

    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
        let (client, runtime) = self.pooled(&self.writes)?;
        let session =
            Session::begin_with_first(client, runtime, "BEGIN ISOLATION LEVEL SERIALIZABLE");
        Ok(Box::new(PgWrite::new(session)))
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

/// Waits on the calling thread for a future driven by the backend's runtime (the module comment
/// says why this never needs, nor conflicts with, a runtime of the caller's).
///
/// Unconstrained by tokio's cooperative budget: on a thread inside a tokio task (a test's async
/// body, a handler that reads in place) a `JoinHandle` or channel polled after the task spent its
/// budget answers `Pending` and wakes itself at once, to make the task yield; a task blocked here
/// never yields, so the budget would never refill and the wait would spin for ever.
fn wait<F: Future>(future: F) -> F::Output {
    futures_executor::block_on(tokio::task::unconstrained(future))
}

/// A PostgreSQL error as a store error: a serialization failure or a deadlock is `Contended` (the
/// writer runs the batch again), anything else `Storage`. The message has the SQLSTATE and the
/// server's primary message only: its detail may quote a key or a value, which may be personal
/// data.
fn storage_error(doing: &str, e: &tokio_postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return StoreError::Storage(format!("postgres {doing}: {e}"));
    };
    let message = format!(
        "postgres {doing}: {} {}: {}",
        db.severity(),
        db.code().code(),
        db.message()
    );
    if *db.code() == SqlState::T_R_SERIALIZATION_FAILURE
        || *db.code() == SqlState::T_R_DEADLOCK_DETECTED
    {
        StoreError::Contended(message)
    } else {
        StoreError::Storage(message)
    }
}
