//! A storage backend that fails on purpose: the N-th write or sync returns an I/O error. Used by
//! the atomicity and fault tests to prove a failed commit leaves the store as it was.

use ::redb::backends::FileBackend;
use ::redb::{BackendError, StorageBackend};
use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared between a test and the backend it handed to the store.
#[derive(Debug, Default)]
pub struct FaultPlan {
    /// Fail the write whose 1-based number equals this (0 = never).
    pub fail_write: AtomicU64,
    /// Fail the sync whose 1-based number equals this (0 = never).
    pub fail_sync: AtomicU64,
    pub writes: AtomicU64,
    pub syncs: AtomicU64,
}

impl FaultPlan {
    /// Arms a failure `n` writes (or syncs) from now.
    pub fn fail_nth_write_from_now(&self, n: u64) {
        self.fail_write
            .store(self.writes.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }
    pub fn fail_nth_sync_from_now(&self, n: u64) {
        self.fail_sync
            .store(self.syncs.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }
    pub fn disarm(&self) {
        self.fail_write.store(0, Ordering::SeqCst);
        self.fail_sync.store(0, Ordering::SeqCst);
    }
}

#[derive(Debug)]
pub struct FaultyBackend {
    inner: FileBackend,
    plan: Arc<FaultPlan>,
}

impl FaultyBackend {
    pub fn new(file: std::fs::File, plan: Arc<FaultPlan>) -> io::Result<Self> {
        let inner = FileBackend::new(file).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(FaultyBackend { inner, plan })
    }
}

fn injected() -> io::Error {
    io::Error::other("injected fault")
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        let n = self.plan.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.plan.fail_sync.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let n = self.plan.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.plan.fail_write.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.write(offset, data)
    }
    // The locks are the file's own, never failed: the store opens this backend in the mode it
    // opens its file in (`Store::open_shared_with_backend`), which needs byte-range locks.
    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
