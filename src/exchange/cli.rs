//! `xueji import` and `xueji export`: the same functions as the HTTP routes, on a data folder
//! opened directly (the server must be stopped: redb locks the file).

use anyhow::{Context, Result, bail};
use std::path::Path;

use super::FileFormat;
use super::import::{ImportOptions, ImportReport, import as import_rows};
use super::roster::{RosterKind, RosterQuery, roster};
use crate::auth::Role;
use crate::domain::{Actor, Date};

/// Imports students from a CSV or XLSX file (format from the extension unless given) as the
/// operator (`system:cli_import` in history). Returns the per-row report.
pub fn import(
    data: &Path,
    policies: Option<&Path>,
    file: &Path,
    format: Option<FileFormat>,
    school: Option<String>,
    partial: bool,
    dry_run: bool,
) -> Result<ImportReport> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let x = crate::cli::open(data, policies)?;
    let opts = ImportOptions {
        format: Some(format.unwrap_or_else(|| FileFormat::from_path(file))),
        partial,
        dry_run,
        school,
    };
    import_rows(&x, &bytes, &opts, &Actor::system("cli_import"), &|_| true)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Exports a school's roster to a file (CSV with BOM, or XLSX; JSON if the name ends `.json`).
/// Returns the number of students written.
#[allow(clippy::too_many_arguments)]
pub fn export(
    data: &Path,
    policies: Option<&Path>,
    school: &str,
    kind: RosterKind,
    format: Option<FileFormat>,
    year: Option<i32>,
    as_of: Option<Date>,
    out: &Path,
) -> Result<usize> {
    if !data.join(crate::cli::STORE_FILE).is_file() {
        bail!("no store in {}", data.display());
    }
    let x = crate::cli::open(data, policies)?;
    let school = super::roster::school(&x, school).map_err(|e| anyhow::anyhow!("{e}"))?;
    let r = roster(
        &x,
        &school,
        &RosterQuery { kind, year, as_of },
        Role::Admin.visibility(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let is_json = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let bytes = if is_json && format.is_none() {
        serde_json::to_vec_pretty(&r)?
    } else {
        r.to_file(format.unwrap_or_else(|| FileFormat::from_path(out)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
    };
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(r.rows.len())
}
