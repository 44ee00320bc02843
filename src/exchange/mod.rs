//! Data exchange: rosters (新生名册, 在校生名册, 毕(结、肄)业生名册), statistics (counts, 巩固率,
//! 辍学率) and bulk import of students from CSV / XLSX. See `docs/exchange.md`.
//!
//! The rosters, statistics and imports themselves are the engine's (`engine::roster`,
//! `engine::stats`, `engine::import`); here are the file formats (`table`, [`FileFormat`]) and
//! the command line (`xueji import`, `xueji export`). The HTTP adapter is `http::exchange`.
//!
//! "As of a date" always comes from the history: every student's steps are replayed up to the
//! date ([`Timeline`](crate::domain::Timeline)), never read from the current snapshot alone. Identity columns (name, ID
//! number, guardians) come from the current record, since history keeps personal values only as
//! salted digests.

pub mod cli;
pub mod table;

use serde::{Deserialize, Serialize};

use crate::domain::{FieldError, InvalidInput};
use crate::engine::ServiceError;

/// A spreadsheet file format.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, strum::EnumIter, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Xlsx,
}

impl FileFormat {
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            FileFormat::Csv => "text/csv; charset=utf-8",
            FileFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// The format of a file from its name (`.xlsx`), otherwise CSV.
    pub fn from_path(path: &std::path::Path) -> FileFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("xlsx") => FileFormat::Xlsx,
            _ => FileFormat::Csv,
        }
    }

    /// The format of file bytes: an XLSX file is a ZIP archive (`PK\x03\x04`).
    pub fn sniff(bytes: &[u8]) -> FileFormat {
        if bytes.starts_with(b"PK\x03\x04") {
            FileFormat::Xlsx
        } else {
            FileFormat::Csv
        }
    }
}

impl std::str::FromStr for FileFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(FileFormat::Csv),
            "xlsx" => Ok(FileFormat::Xlsx),
            other => Err(format!("unknown format {other:?}: csv or xlsx")),
        }
    }
}

/// A 400 naming one field (a query parameter, a column, the file).
pub(crate) fn invalid(code: &str, field: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(InvalidInput::from(FieldError::new(code, field, message)))
}
