//! redb's file backend with meters: syncs (one per durable commit), bytes written, time inside
//! `sync_data`, and which 4 KiB pages of the file were ever written (the part of the file in
//! use: redb grows its file by doubling, then by 4 GiB regions, so the file length says little;
//! it allocates pages lowest address first and reuses freed ones, so the pages written are the
//! pages the data needed at its peak). It passes redb's byte-range locks through, so the bench
//! opens its stores in the mode the service does (`Store::open_shared_with_backend`).

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct Meters {
    pub syncs: Arc<AtomicU64>,
    pub bytes: Arc<AtomicU64>,
    pub sync_ns: Arc<AtomicU64>,
    /// One bit per 4 KiB page of the file.
    pages: Arc<Mutex<Vec<u64>>>,
}

impl Meters {
    /// Bytes of the file ever written (see the module documentation).
    pub fn used_bytes(&self) -> u64 {
        let bits = self.pages.lock().unwrap_or_else(PoisonError::into_inner);
        bits.iter().map(|w| u64::from(w.count_ones())).sum::<u64>() * 4096
    }

    fn mark(&self, offset: u64, len: usize) {
        if len == 0 {
            return;
        }
        let (first, last) = (offset / 4096, (offset + len as u64 - 1) / 4096);
        let mut bits = self.pages.lock().unwrap_or_else(PoisonError::into_inner);
        for page in first..=last {
            let (word, bit) = ((page / 64) as usize, page % 64);
            if bits.len() <= word {
                bits.resize(word + 1, 0);
            }
            bits[word] |= 1 << bit;
        }
    }
}

#[derive(Debug)]
pub struct MeteredBackend {
    inner: FileBackend,
    meters: Meters,
}

impl MeteredBackend {
    pub fn new(file: std::fs::File, meters: Meters) -> Result<Self, String> {
        Ok(MeteredBackend {
            inner: FileBackend::new(file).map_err(|e| e.to_string())?,
            meters,
        })
    }

    /// A new store file `xueji.redb` in `dir`, metered by `meters`.
    pub fn create_in(dir: &std::path::Path, meters: Meters) -> Result<Self, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(dir.join("xueji.redb"))
            .map_err(|e| e.to_string())?;
        MeteredBackend::new(file, meters)
    }
}

impl StorageBackend for MeteredBackend {
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
        self.meters.syncs.fetch_add(1, Ordering::Relaxed);
        let t = Instant::now();
        let r = self.inner.sync_data();
        self.meters
            .sync_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.meters
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.meters.mark(offset, data.len());
        self.inner.write(offset, data)
    }
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
