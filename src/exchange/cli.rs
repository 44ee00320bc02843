//! `xueji import` and `xueji export`: the same functions as the HTTP routes, on a data folder
//! opened directly (the server must be stopped: redb locks the file).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use super::FileFormat;
use crate::auth::Role;
use crate::domain::{Actor, FieldError, InvalidInput};
use crate::engine::ServiceError;
use crate::engine::import::{ImportOptions, ImportReport, import_files};
use crate::engine::roster::{RosterQuery, roster};

/// Imports students from CSV or XLSX files (format from the bytes unless given), one job in
/// order (`import::import_files`), as the operator (`system:cli_import` in history). Returns
/// each file's report, or why it could not be read.
pub fn import(
    place: &crate::cli::Place,
    policies: Option<&Path>,
    files: &[PathBuf],
    opts: &ImportOptions,
    mut on_file: impl FnMut(usize),
) -> Result<Vec<Result<ImportReport, String>>> {
    let x = crate::cli::open(place, policies)?;
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
        opts,
        &Actor::system("cli_import"),
        &|_| true,
        |i, r| {
            reports.push(r.map_err(|e| e.to_string()));
            on_file(i);
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(reports)
}

/// What a registrar reads after `xueji import`: the first rows that did not pass (at most
/// `shown`, with their file, row and reason) and one closing line of counts, all in Chinese.
pub fn import_summary(
    files: &[PathBuf],
    reports: &[Result<ImportReport, String>],
    dry_run: bool,
    shown: usize,
) -> Vec<String> {
    let mut lines = Vec::new();
    let (mut total, mut stored, mut failed, mut unread) = (0, 0, 0, 0);
    for (file, report) in files.iter().zip(reports) {
        let name = file.display();
        match report {
            Ok(r) => {
                total += r.total;
                stored += r.stored;
                failed += r.failed;
                for row in r.rows.iter().filter(|row| !row.ok) {
                    if lines.len() < shown {
                        let reasons: Vec<String> = row
                            .errors
                            .iter()
                            .map(|e| match e.field.as_str() {
                                "" => e.message.clone(),
                                field => format!("{field}:{}", e.message),
                            })
                            .collect();
                        lines.push(format!("{name} 第 {} 行:{}", row.row, reasons.join(";")));
                    }
                }
            }
            Err(e) => {
                unread += 1;
                lines.push(format!("{name}:{e}"));
            }
        }
    }
    if failed > lines.len() {
        lines.push(format!(
            "……另有 {} 行未通过,见 --report 文件",
            failed - lines.len()
        ));
    }
    let unread = if unread > 0 {
        format!(",{unread} 个文件无法导入")
    } else {
        String::new()
    };
    lines.push(if dry_run {
        format!(
            "试导入完成(未保存):{} 个文件,共 {total} 行,{} 行有效,{failed} 行未通过{unread}",
            files.len(),
            total - failed
        )
    } else {
        format!(
            "导入完成:{} 个文件,共 {total} 行,已导入 {stored} 行,{failed} 行未通过{unread}",
            files.len()
        )
    });
    lines
}

/// Exports a school's roster to a file (CSV with BOM, or XLSX; JSON if the name ends `.json`).
/// Returns the number of students written.
pub fn export(
    place: &crate::cli::Place,
    policies: Option<&Path>,
    school: &str,
    format: Option<FileFormat>,
    query: &RosterQuery,
    out: &Path,
) -> Result<usize> {
    let x = crate::cli::open_existing(place, policies)?;
    let school = crate::engine::roster::school(&x, school).map_err(|e| anyhow::anyhow!("{e}"))?;
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
    crate::engine::private::write(out, &bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(r.rows.len())
}
