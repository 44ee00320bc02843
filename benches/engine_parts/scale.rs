//! Figure 4 of issue #6: a district-sized store.
//!
//! `N` students (`Config::scale_students`; `BENCH_SCALE_STUDENTS` overrides it) are imported
//! through the real bulk import (`xueji::engine::import::import`: CSV parsing, a dry-run admit
//! per row with the policy, duplicate checks, then the stores), in files of at most
//! `table::MAX_ROWS` rows, into schools of 3,000 students (6 grades × 10 classes × 50) of one
//! jurisdiction (`bench-district`). Each student has a valid GB 11643 ID number (address code per
//! school, birth date by grade, check character computed).
//!
//! Then, on that store: single reads (`Xueji::student`, no HTTP) of random students; the first
//! school's students are registered, then change class twice (a known number of events, for the
//! store's growth per event); that school's current roster (在校生名册) as JSON and the
//! jurisdiction's statistics (each the median of five calls, the first reported beside it); the process's resident memory; the store's bytes per student and
//! per event.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use xueji::auth::Role;
use xueji::domain::{Date, Level, School, TransitionInput, TransitionKind};
use xueji::engine::import::{ImportOptions, import_files};
use xueji::engine::roster::{RosterKind, RosterQuery, roster};
use xueji::engine::stats::{StatsScope, stats};
use xueji::engine::{Outcome, Xueji};
use xueji::exchange::FileFormat;
use xueji::exchange::table::MAX_ROWS;
use xueji::policy::{PackageSet, PolicyRegistry};
use xueji::store::Store;

use super::metered::{MeteredBackend, Meters};
use super::{Config, actor, cpu_seconds, pct_us};

/// Students per school, and the layout inside one: 6 grades of 10 classes of 50.
const PER_SCHOOL: usize = 3_000;
const PER_GRADE: usize = 500;
const PER_CLASS: usize = 50;
const JURISDICTION: &str = "bench-district";

fn school_id(s: usize) -> String {
    format!("sch{s:04}")
}

/// The CSV header and one row per student `n`: the school's address code, a birth date by grade,
/// a sequence number whose parity gives the gender, and the check character.
const HEADER: &str = "school,name,gender,birth_date,id_card,grade,class,entry_date,\
                      guardian_name,guardian_relation,guardian_phone\n";

fn row(n: usize, out: &mut String) {
    use std::fmt::Write;
    let school = n / PER_SCHOOL;
    let k = n % PER_SCHOOL;
    let grade = 1 + k / PER_GRADE;
    let class = 1 + (k % PER_GRADE) / PER_CLASS;
    let j = k % PER_GRADE;
    // Grade 1 was born in 2019, grade 6 in 2014; 250 birth days × 2 sequence numbers per grade.
    let birth = Date::from_ymd(2020 - grade as i32, 1, 1)
        .and_then(|d| d.add_days((j % 250) as i64))
        .unwrap_or_else(|| panic!("birth date of student {n}"));
    let seq = 100 + j / 250;
    let first17 = format!(
        "11{:04}{}{seq:03}",
        101 + school,
        birth.to_string().replace('-', "")
    );
    let check = xueji::domain::identity::check_character(first17.as_bytes());
    let gender = if seq % 2 == 1 { "男" } else { "女" };
    let _ = writeln!(
        out,
        "{},学生{n},{gender},{birth},{first17}{check},{grade},{class},2025-09-01,家长{n},母亲,138{:08}",
        school_id(school),
        n % 100_000_000
    );
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn file_len(p: &Path) -> Result<u64, String> {
    std::fs::metadata(p)
        .map(|m| m.len())
        .map_err(|e| e.to_string())
}

fn id_number(id: &str) -> Result<u64, String> {
    id.strip_prefix("stu_")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or_else(|| format!("student id {id:?} is not stu_ and 16 hex digits"))
}

fn student_id(n: u64) -> String {
    format!("stu_{n:016x}")
}

fn d(y: i32, m: u32, day: u32) -> Date {
    Date::from_ymd(y, m, day).unwrap_or_else(|| panic!("date {y}-{m}-{day}"))
}

/// Files the transition `input(id)` for every student, from 16 threads; each must be applied.
fn each_student(
    x: &Xueji,
    ids: &[String],
    input: impl Fn(&str) -> TransitionInput + Sync,
) -> Result<(), String> {
    let threads = 16;
    let input = &input;
    std::thread::scope(|scope| {
        let handles: Vec<_> = ids
            .chunks(ids.len().div_ceil(threads).max(1))
            .map(|mine| {
                scope.spawn(move || -> Result<(), String> {
                    let actor = actor();
                    for id in mine {
                        match x.transition(id, input(id), &actor, false) {
                            Ok(Outcome::Applied { .. }) => {}
                            other => return Err(format!("transition of {id}: {other:?}")),
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| "transition thread panicked".to_owned())?
        })
    })
}

/// Students to import: `Config::scale_students`, or `BENCH_SCALE_STUDENTS`.
fn students(cfg: &Config) -> usize {
    std::env::var("BENCH_SCALE_STUDENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse::<usize>().ok())
        .unwrap_or(cfg.scale_students)
        .max(1)
}

/// The redb file whose bytes the part reports: the pages ever written and its length.
struct RedbFile<'a> {
    meters: &'a Meters,
    path: &'a Path,
}

impl RedbFile<'_> {
    /// Bytes in use and the file's length.
    fn sizes(&self) -> Result<(u64, u64), String> {
        Ok((self.meters.used_bytes(), file_len(self.path)?))
    }
}

/// Runs the scale part on a redb file; returns the figures (name, value, digits).
pub fn run(
    cfg: &Config,
    root: &Path,
    set: &PackageSet,
) -> Result<Vec<(&'static str, f64, i32)>, String> {
    let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
    let path = dir.path().join("xueji.redb");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| e.to_string())?;
    let meters = Meters::default();
    let backend = MeteredBackend::new(file, meters.clone())?;
    let store = Store::open_shared_with_backend(backend).map_err(|e| e.to_string())?;
    let file = RedbFile {
        meters: &meters,
        path: &path,
    };
    measure(cfg, store, set, Some(&file))
}

/// Runs the scale part on `store` of another backend (PostgreSQL): the same figures but the
/// store's bytes, which are the server's.
pub fn run_on(
    cfg: &Config,
    store: Store,
    set: &PackageSet,
) -> Result<Vec<(&'static str, f64, i32)>, String> {
    measure(cfg, store, set, None)
}

fn measure(
    cfg: &Config,
    store: Store,
    set: &PackageSet,
    file: Option<&RedbFile<'_>>,
) -> Result<Vec<(&'static str, f64, i32)>, String> {
    let n = students(cfg);
    let sizes = || file.map(RedbFile::sizes).transpose();
    let registry = PolicyRegistry::from_packages(set).map_err(|e| format!("{e:?}"))?;
    let x = Arc::new(Xueji::new(store, Arc::new(registry)));
    let schools = n.div_ceil(PER_SCHOOL);
    for s in 0..schools {
        x.create_school(School {
            id: school_id(s),
            name: format!("基准测试第{}小学", s + 1),
            jurisdiction: JURISDICTION.into(),
            area: Some(format!("第{}学区", s % 10 + 1)),
            level: Level::Primary,
            kind: None,
            calendar: Vec::new(),
        })
        .map_err(|e| e.to_string())?;
    }

    // ---- Import, in files of at most MAX_ROWS rows ----
    println!("\nScale: importing {n} students into {schools} schools (files of ≤ {MAX_ROWS} rows)");
    let opts = ImportOptions {
        format: Some(FileFormat::Csv),
        partial: false,
        dry_run: false,
        school: None,
    };
    let who = actor();
    // The bench's own list of the N ids, kept as numbers (`stu_` and 16 hex digits): a million
    // `String`s would add about 50 MB to the resident memory measured below, which is the
    // store's figure, not the bench's.
    let mut ids: Vec<u64> = Vec::with_capacity(n);
    // One job of files of at most MAX_ROWS rows (`import_files`, what `xueji import FILE...`
    // runs): each file is generated when the job asks for it, so the job's time includes making
    // the CSV text (`import_generate_s`, reported beside it).
    let files = n.div_ceil(MAX_ROWS);
    let mut generate_s = 0.0;
    let csv_files = (0..files).map(|f| {
        let t = Instant::now();
        let (first, last) = (f * MAX_ROWS, ((f + 1) * MAX_ROWS).min(n));
        let mut file = String::with_capacity((last - first) * 200 + HEADER.len());
        file.push_str(HEADER);
        for i in first..last {
            row(i, &mut file);
        }
        generate_s += t.elapsed().as_secs_f64();
        Ok(file.into_bytes())
    });
    let mut failure: Option<String> = None;
    let started = Instant::now();
    let (cpu0, wcpu0) = (cpu_seconds(None), cpu_seconds(Some("xueji-writer")));
    import_files(&x, csv_files, &opts, &who, &|_| true, |f, report| {
        let (first, last) = (f * MAX_ROWS, ((f + 1) * MAX_ROWS).min(n));
        match report {
            Ok(r) if r.ok && r.stored == last - first => {
                for id in r.rows.into_iter().filter_map(|r| r.student) {
                    match id_number(&id) {
                        Ok(number) => ids.push(number),
                        Err(e) => failure = failure.take().or(Some(e)),
                    }
                }
            }
            Ok(r) => {
                let bad: Vec<_> = r.rows.iter().filter(|r| !r.ok).take(3).collect();
                failure = failure.take().or(Some(format!(
                    "import of rows {first}..{last}: stored {} of {}; first failures: {bad:?}",
                    r.stored,
                    last - first
                )));
            }
            Err(e) => {
                failure = failure
                    .take()
                    .or(Some(format!("import of rows {first}..{last}: {e}")))
            }
        }
        if !cfg.smoke && (last / 100_000 != first / 100_000 || last == n) {
            eprintln!(
                "  imported {last:>8} ({:.0} rows/s so far, {:.0} s)",
                last as f64 / started.elapsed().as_secs_f64(),
                started.elapsed().as_secs_f64()
            );
        }
    })
    .map_err(|e| format!("import: {e}"))?;
    let import_s = started.elapsed().as_secs_f64();
    if let Some(f) = failure {
        return Err(f);
    }
    let import_cpu = cpu_seconds(None) - cpu0;
    let writer_cpu = cpu_seconds(Some("xueji-writer")) - wcpu0;
    if ids.len() != n {
        return Err(format!("{} student ids for {n} rows", ids.len()));
    }
    let imported = sizes()?;

    // ---- Single reads of random students (library call, no HTTP) ----
    let samples = if cfg.smoke { 500 } else { 20_000 };
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut get_ns = Vec::with_capacity(samples);
    for _ in 0..samples {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let id = student_id(ids[(rng % n as u64) as usize]);
        let t = Instant::now();
        let s = x.student(&id).map_err(|e| e.to_string())?;
        get_ns.push(t.elapsed().as_nanos() as u64);
        std::hint::black_box(s);
    }
    get_ns.sort_unstable();

    // ---- Register the first school's students, then class changes: a known number of events ----
    // The registrations also bring the store to a steady state: redb reuses the pages a commit
    // frees, so the first events after the import fill freed pages and the file does not grow.
    let first_school: Vec<String> = ids[..n.min(PER_SCHOOL)]
        .iter()
        .map(|&i| student_id(i))
        .collect();
    let registered = first_school.len();
    let t = Instant::now();
    each_student(&x, &first_school, |_| {
        TransitionInput::new(TransitionKind::Register, d(2025, 9, 2))
    })?;
    let register_s = t.elapsed().as_secs_f64();
    let rounds = if cfg.smoke { 1 } else { 2 };
    let before_events = sizes()?;
    for round in 0..rounds {
        each_student(&x, &first_school, |_| {
            let mut input = TransitionInput::new(TransitionKind::ChangeClass, d(2026, 3, 2));
            let class = if round % 2 == 0 { "9" } else { "8" };
            input.params.insert("class".into(), class.into());
            input
        })?;
    }
    let measured_events = rounds * registered;
    let after_events = sizes()?;

    // ---- The first school's current roster, as JSON, and the jurisdiction's statistics ----
    // Each is timed five times: the first call (its pages may still be out of redb's cache) and
    // the median, which a registrar paging through rosters sees.
    let school = x.school(&school_id(0)).map_err(|e| e.to_string())?;
    let mut roster_samples = Vec::new();
    let mut json_len = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let r = roster(
            &x,
            &school,
            &RosterQuery {
                kind: RosterKind::Current,
                year: None,
                as_of: None,
                ..RosterQuery::default()
            },
            Role::Registrar.visibility(),
        )
        .map_err(|e| e.to_string())?;
        let json = serde_json::to_vec(&r).map_err(|e| e.to_string())?;
        roster_samples.push(t.elapsed().as_secs_f64() * 1e3);
        json_len = json.len();
        if r.rows.len() != registered {
            return Err(format!(
                "roster of {} has {} rows, expected {registered}",
                school.id,
                r.rows.len()
            ));
        }
    }
    let mut stats_samples = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let st = stats(
            &x,
            &StatsScope::Jurisdiction {
                id: JURISDICTION.into(),
                area: None,
            },
            Date::today(),
        )
        .map_err(|e| e.to_string())?;
        stats_samples.push(t.elapsed().as_secs_f64() * 1e3);
        if st.students != n || st.in_school != registered {
            return Err(format!(
                "statistics count {} students ({} at school), expected {n} ({registered})",
                st.students, st.in_school
            ));
        }
    }
    let first_and_median = |samples: &[f64]| {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        (samples[0], sorted[sorted.len() / 2])
    };
    let (roster_first_ms, roster_ms) = first_and_median(&roster_samples);
    let (stats_first_ms, stats_ms) = first_and_median(&stats_samples);
    let rss = rss_mb();
    let end = sizes()?;
    let events = n + registered + measured_events;

    println!(
        "  import: {n} students in {import_s:.1} s ({:.0} rows/s, validation and policy included; \
         making the CSV text {generate_s:.1} s of it); CPU {:.0} µs per row, of which the writer \
         thread {:.0} µs",
        n as f64 / import_s,
        import_cpu * 1e6 / n as f64,
        writer_cpu * 1e6 / n as f64
    );
    println!(
        "  Xueji::student (random ids, no HTTP): p50 {:.3} ms, p99 {:.3} ms",
        pct_us(&get_ns, 50.0) / 1e3,
        pct_us(&get_ns, 99.0) / 1e3
    );
    println!(
        "  registered the {registered} students of {} in {register_s:.1} s; \
         roster (current, JSON {} KiB): median of 5 {roster_ms:.0} ms (first {roster_first_ms:.0} ms); \
         jurisdiction statistics: median of 5 {stats_ms:.0} ms (first {stats_first_ms:.0} ms)",
        school.id,
        json_len / 1024
    );
    let mut figures = vec![
        ("import_students", n as f64, 0),
        ("import_s", import_s, 1),
        ("import_rows_per_s", n as f64 / import_s, 0),
        ("import_generate_s", generate_s, 1),
        ("import_cpu_us_per_row", import_cpu * 1e6 / n as f64, 0),
        (
            "import_writer_cpu_us_per_row",
            writer_cpu * 1e6 / n as f64,
            0,
        ),
        ("get_p50_ms", pct_us(&get_ns, 50.0) / 1e3, 3),
        ("get_p99_ms", pct_us(&get_ns, 99.0) / 1e3, 3),
        ("roster_rows", registered as f64, 0),
        ("roster_3000_ms", roster_ms, 1),
        ("roster_3000_first_ms", roster_first_ms, 1),
        ("stats_ms", stats_ms, 1),
        ("stats_first_ms", stats_first_ms, 1),
        ("rss_mb", rss, 0),
    ];
    if let (Some(imported), Some(before), Some(after), Some(end)) =
        (imported, before_events, after_events, end)
    {
        let ((used_imported, file_imported), (used_end, file_end)) = (imported, end);
        let growth_per_event = (after.0 as f64 - before.0 as f64) / measured_events as f64;
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "  store in use: {:.1} MiB after the import ({:.0} B/student), {:.1} MiB at the end \
             ({events} events, {:.0} B/event overall); growth over {measured_events} class changes: \
             {growth_per_event:.0} B/event; file length {:.0} → {:.0} MiB; RSS {rss:.0} MiB",
            mib(used_imported),
            used_imported as f64 / n as f64,
            mib(used_end),
            used_end as f64 / events as f64,
            mib(file_imported),
            mib(file_end),
        );
        figures.extend([
            ("store_mib", mib(used_end), 1),
            ("store_file_mib", mib(file_end), 1),
            ("bytes_per_student", used_imported as f64 / n as f64, 0),
            ("bytes_per_student_file", file_imported as f64 / n as f64, 0),
            ("bytes_per_event", growth_per_event, 0),
            (
                "bytes_per_event_overall",
                used_end as f64 / events as f64,
                0,
            ),
        ]);
    }
    drop(x);
    Ok(figures)
}
