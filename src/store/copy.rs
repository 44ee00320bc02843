//! `xueji migrate`: a store copied from one backend to another (a data folder to PostgreSQL, and
//! back), every table of one snapshot, pair by pair.
//!
//! A province's store does not fit one write transaction, so the copy commits in chunks. A copy
//! cut short must never be taken for a store: the first commit marks the destination
//! (`meta.copy_incomplete`), which every open refuses (`store_copy_incomplete`), and the last one
//! writes the `meta` table (salt, schema) and lifts the mark. A failed copy removes what it wrote.

use super::kv::Backend;
use super::location::{Location, STORE_FILE};
use super::postgres::PostgresBackend;
use super::redb::RedbBackend;
use super::tables::{ALL, META};
use super::{Store, StoreError};
use crate::domain::merkle::Checkpoint;

/// The `meta` key that marks a store whose copy has not finished.
pub(super) const COPY_INCOMPLETE: &str = "copy_incomplete";

/// Pairs per commit: a bounded transaction (PostgreSQL holds a write's pairs in memory until
/// it commits), large enough that commits are not what the copy waits on.
const PAIRS_PER_COMMIT: usize = 10_000;

/// What a copy wrote.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// Each table and the pairs copied, in the order copied.
    pub tables: Vec<(&'static str, u64)>,
    /// Every jurisdiction's log as the source's snapshot held it: the copy must verify against
    /// them.
    pub checkpoints: Vec<Checkpoint>,
}

impl CopyReport {
    pub fn pairs(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

impl Store {
    /// Copies this store, as of one snapshot taken now, into `to`, which must hold no store:
    /// `store_not_empty` otherwise, and nothing is written. `progress` hears the pairs copied so
    /// far. On failure the destination is left as it was found (the file removed, the tables
    /// emptied); should even that fail, the mark refuses it.
    pub fn copy_to(&self, to: &Location, progress: &dyn Fn(u64)) -> Result<CopyReport, StoreError> {
        let snapshot = self.backend.begin_read()?;
        let checkpoints = super::backup::checkpoints_in(&*snapshot)?;
        let dest = Destination::claim(to)?;
        let copied = (|| {
            let mut tables = Vec::new();
            let mut done = 0u64;
            let mark = dest.backend.begin_write()?;
            mark.open_table(META)?.insert(COPY_INCOMPLETE, b"1")?;
            mark.commit()?;
            for table in ALL.iter().filter(|t| **t != META) {
                let from = snapshot.open_table(*table)?;
                let mut pairs = from.iter()?.peekable();
                let mut rows = 0u64;
                while pairs.peek().is_some() {
                    let chunk = pairs
                        .by_ref()
                        .take(PAIRS_PER_COMMIT)
                        .collect::<Result<Vec<_>, _>>()?;
                    let txn = dest.backend.begin_write()?;
                    {
                        let mut to = txn.open_table(*table)?;
                        for (k, v) in &chunk {
                            to.insert(k, v)?;
                        }
                    }
                    txn.commit()?;
                    rows += chunk.len() as u64;
                    done += chunk.len() as u64;
                    progress(done);
                }
                tables.push((table.name(), rows));
            }
            let last = dest.backend.begin_write()?;
            let mut rows = 0u64;
            {
                let mut meta = last.open_table(META)?;
                for item in snapshot.open_table(META)?.iter()? {
                    let (k, v) = item?;
                    meta.insert(&k, &v)?;
                    rows += 1;
                }
                meta.remove(COPY_INCOMPLETE)?;
            }
            last.commit()?;
            progress(done + rows);
            tables.insert(0, (META.name(), rows));
            held_as_copied(&*dest.backend, &tables)?;
            Ok(tables)
        })();
        match copied {
            Ok(tables) => Ok(CopyReport {
                tables,
                checkpoints,
            }),
            Err(e) => {
                dest.undo();
                Err(e)
            }
        }
    }
}

/// The backend a copy writes to, and how to take back what it wrote.
struct Destination {
    backend: Box<dyn Backend>,
    /// The store file this copy created, for a folder.
    file: Option<std::path::PathBuf>,
}

impl Destination {
    /// Opens the destination, refusing one that holds anything.
    fn claim(to: &Location) -> Result<Destination, StoreError> {
        let dest = match to {
            Location::Folder(dir) => {
                super::private::create_dir_all(dir)
                    .map_err(|e| StoreError::Storage(format!("{}: {e}", dir.display())))?;
                let file = dir.join(STORE_FILE);
                match super::private::options().create_new(true).open(&file) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(StoreError::NotEmpty(to.to_string()));
                    }
                    Err(e) => return Err(StoreError::Storage(format!("{}: {e}", file.display()))),
                }
                match RedbBackend::create_file(&file) {
                    Ok(backend) => Destination {
                        backend: Box::new(backend),
                        file: Some(file),
                    },
                    Err(e) => {
                        std::fs::remove_file(&file).ok();
                        return Err(e);
                    }
                }
            }
            Location::Postgres(url) => {
                let backend = PostgresBackend::connect(url)?;
                if !all_empty(&backend)? {
                    return Err(StoreError::NotEmpty(to.to_string()));
                }
                Destination {
                    backend: Box::new(backend),
                    file: None,
                }
            }
        };
        Ok(dest)
    }

    /// Takes back what the copy wrote, as far as it can.
    fn undo(self) {
        match self.file {
            Some(file) => {
                drop(self.backend);
                std::fs::remove_file(&file).ok();
            }
            None => {
                let emptied = (|| {
                    let txn = self.backend.begin_write()?;
                    for t in ALL {
                        txn.clear_table(*t)?;
                    }
                    txn.commit()
                })();
                if let Err(e) = emptied {
                    tracing::error!(error = %e, "the partial copy could not be removed; its mark refuses it");
                }
            }
        }
    }
}

/// Checks that each table of the copy holds as many pairs as were copied into it.
fn held_as_copied(backend: &dyn Backend, tables: &[(&'static str, u64)]) -> Result<(), StoreError> {
    let txn = backend.begin_read()?;
    for (table, copied) in tables {
        let Some(t) = ALL.iter().find(|t| t.name() == *table) else {
            continue;
        };
        // A table the source held empty was never made in a new file.
        let held = if *copied == 0 {
            0
        } else {
            txn.open_table(*t)?.len()?
        };
        if held != *copied {
            return Err(StoreError::Storage(format!(
                "copy_mismatch: table {table} holds {held} records, {copied} were copied"
            )));
        }
    }
    Ok(())
}

/// Whether every table of the backend is empty.
fn all_empty(backend: &dyn Backend) -> Result<bool, StoreError> {
    let txn = backend.begin_write()?;
    for t in ALL {
        if txn.open_table(*t)?.len()? > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}
