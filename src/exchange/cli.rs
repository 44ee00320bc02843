//! `xueji import` and `xueji export`: the same functions as the HTTP routes, on a data folder
//! opened directly (the server must be stopped: redb locks the file).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

use super::FileFormat;
use super::import::{ImportOptions, ImportReport, import_files};
use super::roster::{RosterQuery, roster};
use crate::auth::Role;
use crate::domain::{Actor, FieldError, InvalidInput};
use crate::service::ServiceError;

/// Imports students from CSV or XLSX files (format from the bytes unless given), one job in
/// order (`import::import_files`), as the operator (`system:cli_import` in history). Returns
/// each file's report, or why it could not be read.
pub fn import(
    data: &Path,
    policies: Option<&Path>,
    files: &[PathBuf],
    format: Option<FileFormat>,
    school: Option<String>,
    partial: bool,
    dry_run: bool,
) -> Result<Vec<Result<ImportReport, String>>> {
    let x = crate::cli::open(data, policies)?;
    let opts = ImportOptions {
        format,
        partial,
        dry_run,
        school,
    };
    let read = files.iter().map(|f| {
        std::fs::read(f).map_err(|e| {
            ServiceError::from(InvalidInput::from(FieldError::new(
                "unreadable_file",
                "file",
                format!("读取文件 {} 失败:{e}", f.display()),
            )))
        })
    });
    let mut reports = Vec::with_capacity(files.len());
    import_files(
        &x,
        read,
        &opts,
        &Actor::system("cli_import"),
        &|_| true,
        |_, r| reports.push(r.map_err(|e| e.to_string())),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(reports)
}

/// Exports a school's roster to a file (CSV with BOM, or XLSX; JSON if the name ends `.json`).
/// Returns the number of students written.
pub fn export(
    data: &Path,
    policies: Option<&Path>,
    school: &str,
    format: Option<FileFormat>,
    query: &RosterQuery,
    out: &Path,
) -> Result<usize> {
    if !data.join(crate::cli::STORE_FILE).is_file() {
        bail!("no store in {}", data.display());
    }
    let x = crate::cli::open(data, policies)?;
    let school = super::roster::school(&x, school).map_err(|e| anyhow::anyhow!("{e}"))?;
    let r =
        roster(&x, &school, query, Role::Admin.visibility()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let is_json = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let bytes = if is_json && format.is_none() {
        serde_json::to_vec_pretty(&r)?
    } else {
        r.to_file(format.unwrap_or_else(|| FileFormat::from_path(out)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
    };
    crate::store::private::write(out, &bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(r.rows.len())
}
