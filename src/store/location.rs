//! Where a store lives: the redb file of a data folder (the default), or a PostgreSQL database
//! named by a connection string (`--store`, `XUEJI_STORE`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use super::kv::Backend;
use super::postgres::PostgresBackend;
use super::tables::META;
use super::{Store, StoreError};

/// The store file inside a data folder.
pub const STORE_FILE: &str = "xueji.redb";

/// A store's place.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// A data folder: the store is its `xueji.redb`.
    Folder(PathBuf),
    /// A PostgreSQL database: tokio-postgres' connection string, `postgres://…` or
    /// `postgresql://…` (it may hold a password: never printed, see `Display`).
    Postgres(String),
}

impl Location {
    /// Opens the store as its writer, creating it (and the data folder) when there is none.
    pub fn open(&self) -> Result<Store, StoreError> {
        match self {
            Location::Folder(dir) => {
                super::private::create_dir_all(dir)
                    .map_err(|e| StoreError::Storage(format!("{}: {e}", dir.display())))?;
                Store::open(&dir.join(STORE_FILE))
            }
            Location::Postgres(url) => {
                Store::open_backend(Arc::new(PostgresBackend::connect(url)?))
            }
        }
    }

    /// Opens a store that exists: `store_missing` when the folder holds no store file or the
    /// database no store (a command that only reads or amends never creates one).
    pub fn open_existing(&self) -> Result<Store, StoreError> {
        match self {
            Location::Folder(dir) if !dir.join(STORE_FILE).is_file() => Err(StoreError::Missing(
                dir.join(STORE_FILE).display().to_string(),
            )),
            Location::Folder(_) => self.open(),
            Location::Postgres(url) => {
                let backend = PostgresBackend::connect(url)?;
                if !holds_a_store(&backend)? {
                    return Err(StoreError::Missing(self.to_string()));
                }
                Store::open_backend(Arc::new(backend))
            }
        }
    }
}

/// Whether a backend holds a store, or what a copy cut short left of one: every store has its
/// salt from its first open, and a copy marks its destination first.
fn holds_a_store(backend: &dyn Backend) -> Result<bool, StoreError> {
    let txn = backend.begin_write()?;
    let found = txn.open_table(META)?.first()?.is_some();
    drop(txn);
    Ok(found)
}

impl FromStr for Location {
    type Err = String;

    /// A connection string when it starts with `postgres://` or `postgresql://`, a folder
    /// otherwise.
    fn from_str(s: &str) -> Result<Location, String> {
        if s.trim().is_empty() {
            return Err("empty store location: a data folder or postgres://…".into());
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Location::Postgres(s.to_owned()))
        } else {
            Ok(Location::Folder(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for Location {
    /// A folder by its path; a database by user, hosts and name, never its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Folder(dir) => write!(f, "{}", dir.display()),
            Location::Postgres(url) => match url.parse::<tokio_postgres::Config>() {
                Ok(config) => {
                    let hosts: Vec<String> = config
                        .get_hosts()
                        .iter()
                        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
                        .map(|(host, port)| match host {
                            tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
                            tokio_postgres::config::Host::Unix(p) => {
                                format!("{}:{port}", Path::new(p).display())
                            }
                        })
                        .collect();
                    write!(
                        f,
                        "postgres://{}@{}/{}",
                        config.get_user().unwrap_or(""),
                        hosts.join(","),
                        config.get_dbname().unwrap_or("")
                    )
                }
                Err(_) => write!(f, "postgres://(unreadable connection string)"),
            },
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_string_is_postgres_anything_else_a_folder() {
        assert_eq!(
            "postgres://u@h/db".parse::<Location>(),
            Ok(Location::Postgres("postgres://u@h/db".into()))
        );
        assert_eq!(
            "postgresql://u@h/db".parse::<Location>(),
            Ok(Location::Postgres("postgresql://u@h/db".into()))
        );
        assert_eq!(
            "./xueji-data".parse::<Location>(),
            Ok(Location::Folder("./xueji-data".into()))
        );
        assert!("  ".parse::<Location>().is_err());
    }

    #[test]
    fn a_database_is_shown_without_its_password() {
        let at: Location = "postgres://registrar:s3cret@db.example:6432/xueji?sslmode=disable"
            .parse()
            .expect("a connection string");
        let shown = at.to_string();
        assert_eq!(shown, "postgres://registrar@db.example:6432/xueji");
        assert!(!format!("{at:?}").contains("s3cret"));
    }
}
