//! Batches (issue #17): promoting a whole school.
//!
//! For each size (3,000 and 100,000 students; 300 and 1,000 in the smoke run): a fresh store
//! opened as the service opens it (the metered file backend), one primary school of that many
//! students imported through the real bulk import (grades 1–4, ten classes), then registered
//! by a `register` batch. Then, timed in the same run:
//!
//! - `single_promote_us`: the in-process single transition, `Xueji::transition(promote)` from
//!   one thread, one after another, each waiting for its own durable commit (the first 200
//!   students; 50 in the smoke run), as a portal's script of single calls would;
//! - `batch_promote_{N}_s`: `Xueji::create_batch` + `run_batch` of `promote` for the whole
//!   school (the students promoted singly are promoted again: every student is applied);
//!   `batch_promote_{N}_us_per_student` and its ratio to the single transition;
//! - `single_promote_dry_run_us`: the same single transition decided without storing
//!   (`dry_run`), the part of its cost that is not the commit, and the batch's ratio to it.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use xueji::domain::{Date, Level, School, TransitionInput, TransitionKind};
use xueji::engine::batch::{BatchSpec, BatchStatus};
use xueji::engine::import::{ImportOptions, import_files};
use xueji::engine::{Outcome, Xueji};
use xueji::exchange::FileFormat;
use xueji::exchange::table::MAX_ROWS;
use xueji::policy::{PackageSet, PolicyRegistry};
use xueji::store::Store;

use super::metered::{MeteredBackend, Meters};
use super::{Config, actor};

const SCHOOL: &str = "batch-school";

const HEADER: &str = "school,name,gender,birth_date,id_card,grade,class,entry_date,\
                      guardian_name,guardian_relation,guardian_phone\n";

/// Student `n`: a birth day per 500 students, a sequence number per student within the day
/// (its parity gives the gender), the check character computed.
fn row(n: usize, out: &mut String) {
    use std::fmt::Write;
    let grade = 1 + n % 4;
    let class = 1 + (n / 4) % 10;
    let birth = Date::from_ymd(2016, 1, 1)
        .and_then(|d| d.add_days((n / 500) as i64))
        .unwrap_or_else(|| panic!("birth date of student {n}"));
    let seq = 100 + n % 500;
    let first17 = format!("110105{}{seq:03}", birth.to_string().replace('-', ""));
    let check = xueji::domain::identity::check_character(first17.as_bytes());
    let gender = if seq % 2 == 1 { "男" } else { "女" };
    let _ = writeln!(
        out,
        "{SCHOOL},学生{n},{gender},{birth},{first17}{check},{grade},{class},2024-09-01,家长{n},母亲,138{:08}",
        n % 100_000_000
    );
}

fn spec(kind: &str, date: &str) -> Result<BatchSpec, String> {
    serde_json::from_value(
        serde_json::json!({"kind": kind, "school": SCHOOL, "effective_date": date}),
    )
    .map_err(|e| e.to_string())
}

/// Runs a batch to its end; every student must be applied.
fn run_batch(x: &Xueji, spec: &BatchSpec, n: usize) -> Result<f64, String> {
    let started = Instant::now();
    let record = x
        .create_batch(spec, &actor(), &|_| true)
        .map_err(|e| e.to_string())?;
    let record = x
        .run_batch(&record.id, &|_, _| {})
        .map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    let counts = x.batch_counts(&record).map_err(|e| e.to_string())?;
    if record.status != BatchStatus::Done || counts.applied != n {
        return Err(format!(
            "batch {} of {n}: {:?}, {counts:?}",
            spec.kind, record.status
        ));
    }
    Ok(secs)
}

/// One school of `n` students, imported and registered; returns the engine and the ids.
fn school_of(
    root: &Path,
    set: &PackageSet,
    n: usize,
) -> Result<(Arc<Xueji>, Vec<String>, tempfile::TempDir), String> {
    let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
    let backend = MeteredBackend::create_in(dir.path(), Meters::default())?;
    let store = Store::open_shared_with_backend(backend).map_err(|e| e.to_string())?;
    let registry = PolicyRegistry::from_packages(set).map_err(|e| format!("{e:?}"))?;
    let x = Arc::new(Xueji::new(store, Arc::new(registry)));
    x.create_school(School {
        id: SCHOOL.into(),
        name: "批量基准小学".into(),
        jurisdiction: "bench-district".into(),
        area: Some("东区".into()),
        level: Level::Primary,
        kind: None,
        calendar: Vec::new(),
    })
    .map_err(|e| e.to_string())?;
    let files = (0..n.div_ceil(MAX_ROWS)).map(|f| {
        let (first, last) = (f * MAX_ROWS, ((f + 1) * MAX_ROWS).min(n));
        let mut text = String::from(HEADER);
        for i in first..last {
            row(i, &mut text);
        }
        Ok(text.into_bytes())
    });
    let opts = ImportOptions {
        format: Some(FileFormat::Csv),
        partial: false,
        dry_run: false,
        school: None,
    };
    let mut ids = Vec::with_capacity(n);
    let mut failure = None;
    import_files(
        &x,
        files,
        &opts,
        &actor(),
        &|_| true,
        |_, report| match report {
            Ok(r) if r.ok => ids.extend(r.rows.into_iter().filter_map(|r| r.student)),
            Ok(r) => failure = Some(format!("import: {:?}", r.rows.iter().find(|r| !r.ok))),
            Err(e) => failure = Some(format!("import: {e}")),
        },
    )
    .map_err(|e| e.to_string())?;
    if let Some(f) = failure {
        return Err(f);
    }
    Ok((x, ids, dir))
}

/// Runs the batch part; returns the figures (name, value, digits).
pub fn run(cfg: &Config, root: &Path, set: &PackageSet) -> Result<Vec<(String, f64, i32)>, String> {
    let sizes: [(usize, &str); 2] = if cfg.smoke {
        [(300, "3000"), (1_000, "100000")]
    } else {
        [(3_000, "3000"), (100_000, "100000")]
    };
    let singles = if cfg.smoke { 50 } else { 200 };
    let mut figures = Vec::new();
    for (n, label) in sizes {
        println!("\nBatches: a school of {n} students");
        let (x, ids, _dir) = school_of(root, set, n)?;
        let register_s = run_batch(&x, &spec("register", "2024-09-02")?, n)?;
        // The single transition, each with its own durable commit.
        let started = Instant::now();
        for id in ids.iter().take(singles) {
            let input = TransitionInput::new(
                TransitionKind::Promote,
                Date::from_ymd(2025, 7, 1).ok_or("date")?,
            );
            match x.transition(id, input, &actor(), false) {
                Ok(Outcome::Applied { .. }) => {}
                other => return Err(format!("single promote of {id}: {other:?}")),
            }
        }
        let single_us = started.elapsed().as_secs_f64() * 1e6 / singles.min(n) as f64;
        // The same transition decided alone (`dry_run`: load, state machine, policy, no
        // commit): what a student costs before any storage.
        let started = Instant::now();
        for id in ids.iter().take(singles) {
            let input = TransitionInput::new(
                TransitionKind::Promote,
                Date::from_ymd(2025, 7, 2).ok_or("date")?,
            );
            match x.transition(id, input, &actor(), true) {
                Ok(Outcome::DryRun { .. }) => {}
                other => return Err(format!("dry-run promote of {id}: {other:?}")),
            }
        }
        let decide_us = started.elapsed().as_secs_f64() * 1e6 / singles.min(n) as f64;
        let promote_s = run_batch(&x, &spec("promote", "2025-07-10")?, n)?;
        let per_student_us = promote_s * 1e6 / n as f64;
        figures.extend([
            (format!("batch_register_{label}_s"), register_s, 2),
            (format!("batch_promote_{label}_s"), promote_s, 2),
            (
                format!("batch_promote_{label}_us_per_student"),
                per_student_us,
                1,
            ),
            (format!("single_promote_us_{label}_store"), single_us, 1),
            (
                format!("batch_promote_{label}_vs_single_ratio"),
                per_student_us / single_us,
                3,
            ),
            (
                format!("single_promote_dry_run_us_{label}_store"),
                decide_us,
                1,
            ),
            (
                format!("batch_promote_{label}_vs_dry_run_ratio"),
                per_student_us / decide_us,
                3,
            ),
        ]);
        if cfg.smoke {
            println!("  (smoke: {n} students stand for {label})");
        }
    }
    Ok(figures)
}
