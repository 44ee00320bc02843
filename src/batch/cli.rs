//! `xueji batch`: a batch on a data folder opened directly (the server stopped: it holds the
//! file), with the same engine as `POST /v1/batches`; the operator is `system:cli_batch`.

use anyhow::{Context, Result};
use std::path::Path;

use super::report;
use crate::domain::{Actor, TransitionKind};
use crate::engine::batch::{BatchRecord, BatchSpec, BatchStatus, Counts};
use crate::exchange::FileFormat;

/// What a batch on the command line came to.
pub struct CliOutcome {
    pub kind: TransitionKind,
    pub counts: Counts,
    /// The stored batch (`None` for a dry run).
    pub batch: Option<BatchRecord>,
    /// Batches an earlier run left unfinished, resumed first.
    pub resumed: Vec<BatchRecord>,
}

/// Runs `spec` (or decides it only, `dry_run`); `progress(done, total)` as students are done.
/// Batches an interrupted run left `running` are finished first. With `report`, the report is
/// written there (CSV or XLSX by its extension; owner-only: it names students).
pub fn run(
    place: &crate::cli::Place,
    policies: Option<&Path>,
    spec: &BatchSpec,
    dry_run: bool,
    report_to: Option<&Path>,
    progress: &dyn Fn(usize, usize),
) -> Result<CliOutcome> {
    let x = crate::cli::open(place, policies)?;
    let actor = Actor::system("cli_batch");
    let fail =
        |e: crate::engine::ServiceError| anyhow::anyhow!("{}", crate::engine::batch::reason_zh(&e));
    let mut resumed = Vec::new();
    for left in x.batches()? {
        if left.status == BatchStatus::Running {
            resumed.push(x.run_batch(&left.id, &|_, _| {}).map_err(fail)?);
        }
    }
    let (kind, counts, batch, items) = if dry_run {
        let out = x.dry_run_batch(spec, &actor, &|_| true).map_err(fail)?;
        progress(out.items.len(), out.items.len());
        (out.kind, out.counts, None, out.items)
    } else {
        let record = x.create_batch(spec, &actor, &|_| true).map_err(fail)?;
        let record = x.run_batch(&record.id, progress).map_err(fail)?;
        let items = x
            .batch_items(&record.id, 0, usize::MAX)
            .map_err(fail)?
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        let counts = x.batch_counts(&record).map_err(fail)?;
        (record.kind, counts, Some(record), items)
    };
    if let Some(path) = report_to {
        let bytes = report::to_file(kind, items.iter().enumerate(), FileFormat::from_path(path))
            .map_err(fail)?;
        crate::engine::private::write(path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(CliOutcome {
        kind,
        counts,
        batch,
        resumed,
    })
}

/// The closing line: counts in Chinese, and the batch's state when it did not finish.
pub fn summary(out: &CliOutcome, dry_run: bool) -> String {
    let line = out.counts.summary_zh(out.kind);
    match &out.batch {
        None if dry_run => format!("试办理(未保存)— {line}"),
        Some(b) if b.status == BatchStatus::Failed => format!(
            "{line};批次 {} 中断:{}",
            b.id,
            b.error.as_deref().unwrap_or("")
        ),
        Some(b) => format!("{line}(批次 {})", b.id),
        None => line,
    }
}

/// `xueji import --register`: the registration batches of the students the import stored,
/// run to their end; one closing line per batch.
pub fn register_imported(
    place: &crate::cli::Place,
    policies: Option<&Path>,
    students: &[String],
    effective_date: crate::domain::Date,
    progress: &dyn Fn(usize, usize),
) -> Result<Vec<String>> {
    let x = crate::cli::open(place, policies)?;
    let fail =
        |e: crate::engine::ServiceError| anyhow::anyhow!("{}", crate::engine::batch::reason_zh(&e));
    let mut lines = Vec::new();
    for record in x
        .register_imported(students, effective_date, &Actor::system("cli_import"))
        .map_err(fail)?
    {
        let record = x.run_batch(&record.id, progress).map_err(fail)?;
        let counts = x.batch_counts(&record).map_err(fail)?;
        lines.push(format!(
            "{}:{}(批次 {})",
            record.school,
            counts.summary_zh(record.kind),
            record.id
        ));
    }
    Ok(lines)
}
