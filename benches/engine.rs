//! Engine benchmarks: decision time with a cached AST against the same rule written in Rust, and
//! durable transitions per second through `Xueji::transition` against the disk's own fsync rate.
//! Each also against a peer measured in the same run: the same rules as a Cedar policy set
//! (proved equivalent on generated cases first, `peers/cedar.rs`), and the same workload on
//! SQLite (`peers/sqlite.rs`).
//!
//! ```text
//! cargo bench --bench engine -- --quick    # under a minute after the build (or BENCH_QUICK=1)
//! cargo bench --bench engine               # full run, ~3 min after the build on 2 cores
//! cargo bench --bench engine -- --full     # full even when BENCH_QUICK=1
//! ```
//!
//! Prints a table and writes `target/bench/summary.json`. See `BENCHMARKS.md`.

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::hint::black_box;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use xueji::domain::student::NewStudentForm;
use xueji::domain::{
    Actor, ApprovalStep, Date, Decision, DecisionDeadline, Document, DocumentKind, Effect,
    FiredRule, Guardian, IssuerLevel, Level, PolicyRef, Reason, School, Status, TransitionInput,
    TransitionKind,
};
use xueji::engine::{Outcome, Xueji};
use xueji::policy::testing::{CaseSchool, CaseStudent, TestCase};
use xueji::policy::{
    Case, CompiledPolicy, PackageSet, PackageSource, PolicyRegistry, builtin_packages,
    compile_package, evaluate,
};
use xueji::store::Store;

/// The allocator of the `xueji` binary, so the figures are the service's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Peer baselines measured in the same run (issue #6): Cedar for decisions, SQLite for
/// durable transitions.
#[path = "peers/cedar.rs"]
mod cedar;
#[path = "engine_parts/metered.rs"]
mod metered;
use metered::{MeteredBackend, Meters};
#[path = "engine_parts/batches.rs"]
mod batches;
#[path = "engine_parts/counted.rs"]
mod counted;
/// The tests' throwaway PostgreSQL server, for the PostgreSQL part.
#[path = "../tests/it/debian.rs"]
mod debian;
#[path = "engine_parts/floor.rs"]
mod floor;
#[path = "engine_parts/http_load.rs"]
mod http_load;
#[path = "../tests/it/pg_server.rs"]
mod pg_server;
#[path = "engine_parts/postgres.rs"]
mod postgres;
#[path = "engine_parts/scale.rs"]
mod scale;
#[path = "peers/sqlite.rs"]
mod sqlite;
#[path = "engine_parts/transfers.rs"]
mod transfers;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Config {
    quick: bool,
    /// Run by `cargo test --all-targets` (no `--bench` argument): a few iterations of each part,
    /// so the suite proves the bench still runs, without timing anything.
    smoke: bool,
    /// Timed evaluations per decision case (after `decision_warmup`).
    decision_samples: usize,
    decision_warmup: usize,
    /// Length of one fsync-baseline window and how many windows (median reported).
    fsync_window: Duration,
    fsync_rounds: usize,
    /// Warm-up and measured window of one transitions-per-second run; rounds per writer count.
    tps_warmup: Duration,
    tps_window: Duration,
    tps_rounds: usize,
    /// Students each writer thread owns and cycles through.
    students_per_writer: usize,
    /// Students bulk-imported by the scale part (`engine_parts/scale.rs`).
    scale_students: usize,
    /// `--only http|scale|tps|bytes|floor|batch|transfers|postgres`: run that part alone (while
    /// working on it); writes no summary.
    only: Option<Part>,
}

/// A part `--only` can run alone.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// The decisions of the Rhai packages, native Rust and Cedar on the same cases.
    Decision,
    Http,
    Scale,
    /// The durable transitions alone (1, 16 and 64 writers, each after an fsync baseline), for
    /// profiling the write path.
    Tps,
    /// Where a transition's bytes go: 64 writers on redb, counted table by table (`counted.rs`).
    Bytes,
    /// redb alone committing the records of 16 to 128 transitions a commit (`floor.rs`).
    Floor,
    /// Promoting a school by batch (`batches.rs`).
    Batch,
    /// Transfers within and across jurisdictions (`transfers.rs`).
    Transfers,
    /// The engine on PostgreSQL, PostgreSQL's floor, the scale part on it (`postgres.rs`), with
    /// redb at 64 writers and the fsync rate measured first for the ratios.
    Postgres,
}

impl Config {
    fn from_args() -> Config {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let only = args.iter().position(|a| a == "--only").map(|i| {
            match args.get(i + 1).map(String::as_str) {
                Some("decision") => Part::Decision,
                Some("http") => Part::Http,
                Some("scale") => Part::Scale,
                Some("tps") => Part::Tps,
                Some("bytes") => Part::Bytes,
                Some("floor") => Part::Floor,
                Some("batch") => Part::Batch,
                Some("transfers") => Part::Transfers,
                Some("postgres") => Part::Postgres,
                other => {
                    panic!(
                        "--only {other:?}: the parts are decision, http, scale, tps, bytes, floor, batch, \
                         transfers and postgres"
                    )
                }
            }
        });
        let env_quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
        // `cargo bench` passes `--bench`; anything else unknown is ignored too.
        let quick = if args.iter().any(|a| a == "--full") {
            false
        } else {
            env_quick || args.iter().any(|a| a == "--quick")
        };
        let smoke = !args
            .iter()
            .any(|a| a == "--bench" || a == "--quick" || a == "--full")
            && !env_quick;
        if smoke {
            return Config {
                quick: true,
                smoke,
                decision_samples: 200,
                decision_warmup: 20,
                fsync_window: Duration::from_millis(100),
                fsync_rounds: 1,
                tps_warmup: Duration::from_millis(20),
                tps_window: Duration::from_millis(200),
                tps_rounds: 1,
                students_per_writer: 1,
                scale_students: 2_000,
                only,
            };
        }
        if quick {
            Config {
                quick,
                smoke,
                decision_samples: 20_000,
                decision_warmup: 2_000,
                fsync_window: Duration::from_secs(2),
                fsync_rounds: 1,
                tps_warmup: Duration::from_millis(500),
                tps_window: Duration::from_secs(3),
                tps_rounds: 1,
                students_per_writer: 2,
                scale_students: 100_000,
                only,
            }
        } else {
            Config {
                quick,
                smoke,
                decision_samples: 200_000,
                decision_warmup: 20_000,
                fsync_window: Duration::from_secs(2),
                fsync_rounds: 1,
                tps_warmup: Duration::from_secs(2),
                tps_window: Duration::from_secs(10),
                tps_rounds: 3,
                students_per_writer: 2,
                scale_students: 1_000_000,
                only,
            }
        }
    }

    fn mode(&self) -> &'static str {
        if self.smoke {
            "smoke"
        } else if self.quick {
            "quick"
        } else {
            "full"
        }
    }
}

const WRITER_COUNTS: [usize; 3] = [1, 16, 64];

// ---------------------------------------------------------------------------------------------
// Small statistics helpers
// ---------------------------------------------------------------------------------------------

/// Nearest-rank percentile of sorted nanosecond samples, in microseconds.
fn pct_us(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_ns.len()) - 1;
    sorted_ns[idx] as f64 / 1_000.0
}

fn mean_us(ns: &[u64]) -> f64 {
    if ns.is_empty() {
        return f64::NAN;
    }
    ns.iter().sum::<u64>() as f64 / ns.len() as f64 / 1_000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn round_to(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// Times `f` once per sample (after `warmup` untimed calls); returns sorted nanoseconds.
fn sample<T>(warmup: usize, samples: usize, mut f: impl FnMut() -> T) -> Vec<u64> {
    for _ in 0..warmup {
        black_box(f());
    }
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        black_box(f());
        out.push(t.elapsed().as_nanos() as u64);
    }
    out.sort_unstable();
    out
}

/// Cost of the timing itself (an `Instant::now()` pair), p50 in nanoseconds.
fn timer_overhead_ns() -> f64 {
    let s = sample(10_000, 100_000, || ());
    pct_us(&s, 50.0) * 1_000.0
}

/// User+system CPU seconds of this process, or of its threads named `comm`.
fn cpu_seconds(comm: Option<&str>) -> f64 {
    fn stat_ticks(path: &Path) -> Option<u64> {
        let text = std::fs::read_to_string(path).ok()?;
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let rest = &text[text.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }
    const USER_HZ: f64 = 100.0;
    match comm {
        None => stat_ticks(Path::new("/proc/self/stat")).unwrap_or(0) as f64 / USER_HZ,
        Some(name) => {
            let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
                return 0.0;
            };
            let mut ticks = 0;
            for task in dir.flatten() {
                let p = task.path();
                let is = std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == name);
                if is {
                    ticks += stat_ticks(&p.join("stat")).unwrap_or(0);
                }
            }
            ticks as f64 / USER_HZ
        }
    }
}

/// Context switches so far of this process's threads named `comm` (all of them when `None`),
/// by thread id: voluntary (the thread blocked: each is a wake-up to come) and involuntary (it
/// was preempted). Read at two times, [`switches_between`] is the count between them; a thread
/// that exited meanwhile takes its count with it.
fn context_switches(comm: Option<&str>) -> BTreeMap<u64, (u64, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in dir.flatten() {
        let p = task.path();
        if let Some(name) = comm
            && !std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == name)
        {
            continue;
        }
        let (Some(tid), Ok(status)) = (
            task.file_name()
                .to_str()
                .and_then(|t| t.parse::<u64>().ok()),
            std::fs::read_to_string(p.join("status")),
        ) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.insert(
            tid,
            (
                field("voluntary_ctxt_switches:"),
                field("nonvoluntary_ctxt_switches:"),
            ),
        );
    }
    out
}

/// Voluntary and involuntary switches between two readings of [`context_switches`] (a thread
/// started between them counts from zero).
fn switches_between(
    before: &BTreeMap<u64, (u64, u64)>,
    after: &BTreeMap<u64, (u64, u64)>,
) -> (u64, u64) {
    after.iter().fold((0, 0), |(v, n), (tid, (va, na))| {
        let (vb, nb) = before.get(tid).copied().unwrap_or((0, 0));
        (v + va.saturating_sub(vb), n + na.saturating_sub(nb))
    })
}

/// CPU seconds used so far by the processes of this machine named `postgres` (a server's
/// postmaster and backends, the bench's or `XUEJI_TEST_POSTGRES`'s when it is local). A backend
/// that exited takes its seconds with it: read across a window in which the connections stay.
fn postgres_cpu_seconds() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut ticks = 0u64;
    for entry in dir.flatten() {
        let p = entry.path();
        if std::fs::read_to_string(p.join("comm")).is_ok_and(|c| c.trim() == "postgres") {
            let Ok(text) = std::fs::read_to_string(p.join("stat")) else {
                continue;
            };
            let Some(close) = text.rfind(')') else {
                continue;
            };
            let f: Vec<&str> = text[close + 2..].split_whitespace().collect();
            let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            ticks += field(11) + field(12);
        }
    }
    ticks as f64 / 100.0
}

// ---------------------------------------------------------------------------------------------
// Packages
// ---------------------------------------------------------------------------------------------

/// A small standalone package defined here, so the figures do not move when seed packages are
/// edited: a suspension that needs a document, two approvals and a deadline; a class change the
/// school does directly.
const BENCH_MANIFEST: &str = r#"
id = "bench-district"
name = "基准测试区学籍管理办法"
version = "1"
effective_from = "2020-01-01"
rule_prefix = "bench"
[documents.b]
title = "基准测试区学籍管理办法"
"#;

const BENCH_RULES: &str = r#"
// 第一条 休学须医院证明,学校和区教育局审批,期满复学
rule(#{ id: "bench.suspend.proof", on: ["suspend"], cites: "b 第一条", check: |c| {
    [require(["hospital_diagnosis"], "休学须提供医院诊断证明"),
     approve(["school", "district"], "休学须学校和区教育局审批"),
     deadline("resume_by", c.param("until"), "休学期满应复学")]
}});
// 第二条 调班由学校直接办理
rule(#{ id: "bench.change_class.direct", on: ["change_class"], cites: "b 第二条", check: |c| {
    if c.param("class") == () { return deny("调班须填写新班级"); }
    allow("调班由学校办理")
}});
"#;

fn bench_package() -> PackageSource {
    let files: BTreeMap<String, String> = [
        ("policy.toml".to_owned(), BENCH_MANIFEST.to_owned()),
        ("rules.rhai".to_owned(), BENCH_RULES.to_owned()),
    ]
    .into();
    PackageSource { files }
}

/// The built-in package `id` with the chain of packages it extends, if it is built in.
fn builtin_with_bases(all: &PackageSet, id: &str) -> Option<PackageSet> {
    let mut set = PackageSet {
        packages: BTreeMap::new(),
    };
    let mut next = Some(id.to_owned());
    while let Some(cur) = next.take() {
        if set.packages.contains_key(&cur) {
            break;
        }
        let src = all.packages.get(&cur)?.clone();
        next = src.manifest().ok().and_then(|m| m.extends);
        set.packages.insert(cur, src);
    }
    Some(set)
}

fn compile_set(set: &PackageSet, id: &str) -> Result<Arc<CompiledPolicy>, String> {
    let registry = PolicyRegistry::from_packages(set).map_err(|e| format!("{e:?}"))?;
    registry
        .latest(id)
        .ok_or_else(|| format!("package {id} missing after compiling"))
}

// ---------------------------------------------------------------------------------------------
// 1. Decisions
// ---------------------------------------------------------------------------------------------

fn d(s: &str) -> Date {
    Date::parse(s).unwrap_or_else(|e| panic!("bench date {s}: {e:?}"))
}

fn case_of(student: CaseStudent, school: CaseSchool, transition: TransitionInput) -> TestCase {
    TestCase {
        name: "bench".into(),
        student,
        school,
        transition,
        sweep: false,
        settings: Default::default(),
        expect: Default::default(),
    }
}

/// What the native baselines need that the compiled package knows: the policy reference and the
/// rule's citation (the Rust version gets these "compiled in", as the script gets its AST).
struct NativeRule {
    policy: PolicyRef,
    id: String,
    citation: String,
    /// The base's review rule (`national_k12.review.school`) that fires beside it: id, citation.
    review: Option<(String, String)>,
}

impl NativeRule {
    fn of(policy: &CompiledPolicy, rule: &str) -> Option<NativeRule> {
        let info = policy.rules.iter().find(|r| r.info.id == rule)?;
        Some(NativeRule {
            policy: policy.policy_ref(),
            id: info.info.id.clone(),
            citation: info.info.citation.clone(),
            review: None,
        })
    }

    /// The same, with the package's review rule `review` firing after it.
    fn with_review(mut self, policy: &CompiledPolicy, review: &str) -> Option<NativeRule> {
        let info = policy.rules.iter().find(|r| r.info.id == review)?;
        self.review = Some((info.info.id.clone(), info.info.citation.clone()));
        Some(self)
    }

    fn fired(&self, effect: Effect, message: &str) -> FiredRule {
        FiredRule {
            id: self.id.clone(),
            effect,
            citation: self.citation.clone(),
            message: message.to_owned(),
        }
    }

    fn empty_decision(&self, case: &Case<'_>) -> Decision {
        Decision {
            allowed: true,
            policy: self.policy.clone(),
            rules: Vec::new(),
            required_documents: Vec::new(),
            missing_documents: Vec::new(),
            approvals: Vec::new(),
            changes: case.input.default_changes(case.student),
            deadlines: Vec::new(),
            receiving_policy: None,
        }
    }
}

/// `national_k12.expel.compulsory` in Rust: compulsory-education schools may not expel; then
/// `national_k12.review.school`: the school reviews every expulsion.
fn native_expel(rule: &NativeRule, case: Case<'_>) -> Decision {
    let mut decision = rule.empty_decision(&case);
    if case.school.level.is_compulsory() {
        decision
            .rules
            .push(rule.fired(Effect::Deny, "义务教育阶段学校不得开除学生"));
        decision.allowed = false;
    }
    if let Some((id, citation)) = &rule.review {
        decision.rules.push(FiredRule {
            id: id.clone(),
            effect: Effect::Approve,
            citation: citation.clone(),
            message: "学籍注册和学籍变动须经学校(校长或分管校领导)审核同意后办理".into(),
        });
        decision.approvals = vec![ApprovalStep::School];
    }
    decision
}

/// A transition no rule is on, in Rust: the default decision.
fn native_no_rule(rule: &NativeRule, case: Case<'_>) -> Decision {
    rule.empty_decision(&case)
}

/// `bench.suspend.proof` in Rust: require a diagnosis, two approvals, a resume-by deadline.
fn native_suspend(rule: &NativeRule, case: Case<'_>) -> Decision {
    let mut decision = rule.empty_decision(&case);
    let until = case
        .input
        .params
        .get("until")
        .and_then(Value::as_str)
        .and_then(|s| Date::parse(s).ok());
    let Some(until) = until else {
        decision.allowed = false;
        return decision;
    };
    decision
        .required_documents
        .push("hospital_diagnosis".into());
    decision
        .rules
        .push(rule.fired(Effect::Require, "休学须提供医院诊断证明"));
    decision.approvals = vec![ApprovalStep::School, ApprovalStep::District];
    decision
        .rules
        .push(rule.fired(Effect::Approve, "休学须学校和区教育局审批"));
    decision.deadlines.push(DecisionDeadline {
        kind: "resume_by".into(),
        date: until,
        on_expiry: None,
    });
    decision
        .rules
        .push(rule.fired(Effect::Deadline, "休学期满应复学"));
    decision.missing_documents = decision
        .required_documents
        .iter()
        .filter(|r| !case.input.documents.iter().any(|d| d.kind.as_str() == *r))
        .cloned()
        .collect();
    decision.allowed = decision.missing_documents.is_empty();
    decision
}

struct DecisionResult {
    label: String,
    rhai_ns: Vec<u64>,
    native_ns: Option<Vec<u64>>,
    native_matches: Option<bool>,
    outcome: String,
}

fn suspend_input() -> TransitionInput {
    let mut input = TransitionInput::new(TransitionKind::Suspend, d("2026-03-02"));
    input.reason = Some(Reason::Illness);
    input.params.insert("until".into(), json!("2027-03-01"));
    input.documents.push(
        serde_json::from_value::<Document>(json!({
            "kind": "hospital_diagnosis", "issuer_level": "county"
        }))
        .unwrap_or_else(|e| panic!("document fixture: {e}")),
    );
    debug_assert!(input.documents[0].kind == DocumentKind::HospitalDiagnosis);
    debug_assert!(input.documents[0].issuer_level == Some(IssuerLevel::County));
    input
}

fn outcome_word(d: &Decision) -> String {
    xueji::policy::testing::outcome_of(d).to_owned()
}

/// A rule written in Rust, given what it needs of the compiled package.
type NativeFn = fn(&NativeRule, Case<'_>) -> Decision;

/// Times `evaluate` on one case of a compiled package and, when given, the native version.
fn bench_decision(
    cfg: &Config,
    label: &str,
    policy: &CompiledPolicy,
    tc: &TestCase,
    native: Option<(&NativeRule, NativeFn)>,
) -> Result<DecisionResult, String> {
    let (student, school) = tc.build(policy);
    let case = Case {
        student: &student,
        school: &school,
        input: &tc.transition,
        sweep: false,
    };
    let reference = evaluate(policy, case).map_err(|e| format!("{label}: {e}"))?;
    let rhai_ns = sample(cfg.decision_warmup, cfg.decision_samples, || {
        evaluate(policy, black_box(case))
    });
    let (native_ns, native_matches) = match native {
        None => (None, None),
        Some((rule, f)) => {
            let matches = f(rule, case) == reference;
            // A baseline that decides otherwise times another rule: no ratio of it is a figure.
            if !matches {
                return Err(format!(
                    "the native baseline for {label} no longer matches the package's decision \
                     (was the rule edited? change the baseline with it)\n  package: {reference:?}\n  native:  {:?}",
                    f(rule, case)
                ));
            }
            let ns = sample(cfg.decision_warmup, cfg.decision_samples, || {
                f(rule, black_box(case))
            });
            (Some(ns), Some(matches))
        }
    };
    Ok(DecisionResult {
        label: label.to_owned(),
        rhai_ns,
        native_ns,
        native_matches,
        outcome: outcome_word(&reference),
    })
}

// ---------------------------------------------------------------------------------------------
// 2. Durability: fsync baseline and transitions per second
// ---------------------------------------------------------------------------------------------

/// 4 KiB overwrite at offset 0 + `sync_data`, in a loop: the device's durable-write rate.
fn fsync_rate(dir: &Path, window: Duration) -> io::Result<(f64, Vec<u64>)> {
    let path = dir.join("fsync-probe.bin");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let block = [0x5au8; 4096];
    file.write_all_at(&block, 0)?;
    file.sync_all()?;
    let mut lat = Vec::new();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        let t = Instant::now();
        file.write_all_at(&block, 0)?;
        file.sync_data()?;
        lat.push(t.elapsed().as_nanos() as u64);
        n += 1;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    lat.sort_unstable();
    Ok((rate, lat))
}

/// Commit-shaped writes: 256 pages of 4 KiB at random page offsets of a 32 MiB file, then
/// `sync_data`, in a loop; returns MiB made durable per second. A redb commit writes its dirty
/// B-tree pages copy-on-write to scattered free pages, so this, not the single-block fsync rate,
/// is what bounds large group commits.
fn scattered_write_rate(dir: &Path, window: Duration) -> io::Result<f64> {
    const FILE: u64 = 32 << 20;
    const PAGE: usize = 4096;
    const PAGES_PER_SYNC: usize = 256;
    let path = dir.join("scatter-probe.bin");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)?;
    let chunk = vec![0u8; 1 << 20];
    for i in 0..(FILE >> 20) {
        file.write_all_at(&chunk, i << 20)?;
    }
    file.sync_all()?;
    let page = [0xa5u8; PAGE];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < window {
        for _ in 0..PAGES_PER_SYNC {
            // xorshift64: cheap, deterministic page choice.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let offset = (x % (FILE / PAGE as u64)) * PAGE as u64;
            file.write_all_at(&page, offset)?;
        }
        file.sync_data()?;
        bytes += (PAGES_PER_SYNC * PAGE) as u64;
    }
    let rate = bytes as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

fn actor() -> Actor {
    Actor {
        id: "tok_bench".into(),
        role: "registrar".into(),
    }
}

/// A valid ID number, unique per `n` (birth day and sequence vary).
fn id_card(n: usize) -> (String, String) {
    let birth = d("2016-01-01")
        .add_days((n / 1000) as i64)
        .unwrap_or_else(|| panic!("birth date for student {n}"));
    let first17 = format!(
        "110105{}{:03}",
        birth.to_string().replace('-', ""),
        n % 1000
    );
    let c = xueji::domain::identity::check_character(first17.as_bytes());
    (format!("{first17}{c}"), birth.to_string())
}

fn form(n: usize) -> NewStudentForm {
    let (id, birth) = id_card(n);
    let male = (id.as_bytes()[16] - b'0') % 2 == 1;
    NewStudentForm {
        school: "bench-school".into(),
        name: format!("学生{n}"),
        gender: if male { "male" } else { "female" }.into(),
        birth_date: birth,
        id_card: Some(id),
        national_id: None,
        grade: 3,
        class: Some("4".into()),
        entry_date: "2024-09-01".into(),
        report_deadline: Some("2024-09-05".into()),
        guardians: vec![Guardian {
            name: "家长".into(),
            relation: "母亲".into(),
            phone: "13800000000".into(),
        }],
        extra: None,
    }
}

struct Engine {
    xueji: Arc<Xueji>,
    /// The redb file's meters (`metered.rs`); `None` on PostgreSQL, whose syncs are the server's.
    meters: Option<Meters>,
    /// The redb file's folder (backups go beside it); `None` on PostgreSQL.
    dir: Option<tempfile::TempDir>,
}

fn open_engine(root: &Path, set: &PackageSet) -> Result<Engine, String> {
    let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
    let meters = Meters::default();
    let backend = MeteredBackend::create_in(dir.path(), meters.clone())?;
    let store = Store::open_shared_with_backend(backend).map_err(|e| e.to_string())?;
    let mut engine = engine_on(store, set)?;
    engine.meters = Some(meters);
    engine.dir = Some(dir);
    Ok(engine)
}

/// The engine over `store`, with the bench's package and school.
fn engine_on(store: Store, set: &PackageSet) -> Result<Engine, String> {
    let registry = PolicyRegistry::from_packages(set).map_err(|e| format!("{e:?}"))?;
    let xueji = Xueji::new(store, Arc::new(registry));
    xueji
        .create_school(School {
            id: "bench-school".into(),
            name: "基准测试学校".into(),
            jurisdiction: "bench-district".into(),
            area: Some("东区".into()),
            level: Level::Primary,
            kind: None,
            calendar: Vec::new(),
        })
        .map_err(|e| e.to_string())?;
    Ok(Engine {
        xueji: Arc::new(xueji),
        meters: None,
        dir: None,
    })
}

/// Admits and registers `count` students, from `threads` threads (so setup uses group commit
/// too); returns their ids in order.
fn enrol(x: &Arc<Xueji>, count: usize, threads: usize) -> Result<Vec<String>, String> {
    let threads = threads.clamp(1, count.max(1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let x = x.clone();
            std::thread::spawn(move || -> Result<Vec<(usize, String)>, String> {
                let mut out = Vec::new();
                for n in (t..count).step_by(threads) {
                    let s = match x.admit(form(n), &actor(), false) {
                        Ok(Outcome::Applied { student, .. }) => student,
                        other => return Err(format!("admit {n}: {other:?}")),
                    };
                    let input = TransitionInput::new(TransitionKind::Register, d("2024-09-02"));
                    match x.transition(&s.id, input, &actor(), false) {
                        Ok(Outcome::Applied { student, .. })
                            if student.status == Status::Enrolled => {}
                        other => return Err(format!("register {n}: {other:?}")),
                    }
                    out.push((n, s.id));
                }
                Ok(out)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for h in handles {
        all.extend(h.join().map_err(|_| "enrol thread panicked".to_owned())??);
    }
    all.sort();
    Ok(all.into_iter().map(|(_, id)| id).collect())
}

fn change_class(class: &str) -> TransitionInput {
    let mut input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-03-02"));
    input.params.insert("class".into(), json!(class));
    input
}

#[derive(Debug, Clone)]
struct TpsRun {
    writers: usize,
    tps: f64,
    /// Durable commits per second during the window, and transitions per commit (redb's file
    /// syncs; NaN on PostgreSQL).
    syncs_per_s: f64,
    per_sync: f64,
    /// Bytes redb wrote per commit, in KiB (NaN on PostgreSQL).
    kib_per_sync: f64,
    /// Share of the window the writer thread spent inside `sync_data` (NaN on PostgreSQL).
    sync_share: f64,
    /// Transitions per commit of the store's writer (`CommitStats`, any backend), and the share
    /// of the window the writer spent committing batches.
    per_commit: f64,
    commit_share: f64,
    lat_p50_us: f64,
    lat_p99_us: f64,
    /// CPU cores busy (process) and the writer thread's share of one core.
    cpu_cores: f64,
    writer_cpu: f64,
    /// CPU cores busy in this machine's PostgreSQL server processes (the PostgreSQL runs' server;
    /// an idle cluster's few ticks in a redb run).
    server_cpu_cores: f64,
    /// How long the window lasted, in seconds.
    window_s: f64,
    /// The fsync baseline measured just before this run.
    adjacent_fsync: f64,
}

/// Syncs, bytes written and nanoseconds in `sync_data` so far.
fn meter_readings(meters: &Meters) -> [u64; 3] {
    [&meters.syncs, &meters.bytes, &meters.sync_ns].map(|m| m.load(Ordering::Relaxed))
}

/// Commits, commands and microseconds committing so far.
fn commit_readings(x: &Xueji) -> [u64; 3] {
    let stats = x.commit_stats();
    [&stats.commits, &stats.commands, &stats.micros_total].map(|m| m.load(Ordering::Relaxed))
}

/// Runs `writers` threads doing `change_class` on their own students of `engine` for the window.
fn tps_run(cfg: &Config, engine: &Engine, writers: usize) -> Result<TpsRun, String> {
    tps_run_observed(cfg, engine, writers, || {})
}

/// [`tps_run`], calling `at_window_start` as the window starts (after the warm-up), for readings
/// of its own.
fn tps_run_observed(
    cfg: &Config,
    engine: &Engine,
    writers: usize,
    at_window_start: impl FnOnce(),
) -> Result<TpsRun, String> {
    let per = cfg.students_per_writer;
    let ids = enrol(&engine.xueji, writers * per, writers.min(16))?;

    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = ids
        .chunks(per)
        .map(|mine| {
            let mine = mine.to_vec();
            let x = engine.xueji.clone();
            let (stop, measuring, barrier) = (stop.clone(), measuring.clone(), barrier.clone());
            std::thread::spawn(move || -> Result<(u64, Vec<u64>), String> {
                let actor = actor();
                let mut done = 0u64;
                let mut lat = Vec::new();
                let mut i = 0usize;
                barrier.wait();
                while !stop.load(Ordering::Acquire) {
                    let id = &mine[i % mine.len()];
                    // Alternate classes so every transition really changes the student.
                    let class = if (i / mine.len()).is_multiple_of(2) {
                        "5"
                    } else {
                        "4"
                    };
                    i += 1;
                    let was_measuring = measuring.load(Ordering::Acquire);
                    let t = Instant::now();
                    match x.transition(id, change_class(class), &actor, false) {
                        Ok(Outcome::Applied { .. }) => {}
                        other => return Err(format!("change_class: {other:?}")),
                    }
                    let ns = t.elapsed().as_nanos() as u64;
                    if was_measuring && !stop.load(Ordering::Acquire) {
                        done += 1;
                        lat.push(ns);
                    }
                }
                Ok((done, lat))
            })
        })
        .collect();

    barrier.wait();
    std::thread::sleep(cfg.tps_warmup);
    let metered0 = engine.meters.as_ref().map(meter_readings);
    let commits0 = commit_readings(&engine.xueji);
    let (cpu0, wcpu0) = (cpu_seconds(None), cpu_seconds(Some("xueji-writer")));
    let server0 = postgres_cpu_seconds();
    at_window_start();
    let start = Instant::now();
    measuring.store(true, Ordering::Release);
    std::thread::sleep(cfg.tps_window);
    stop.store(true, Ordering::Release);
    let window = start.elapsed().as_secs_f64();
    let metered1 = engine.meters.as_ref().map(meter_readings);
    let commits1 = commit_readings(&engine.xueji);
    let (cpu1, wcpu1) = (cpu_seconds(None), cpu_seconds(Some("xueji-writer")));
    let server1 = postgres_cpu_seconds();

    let mut total = 0u64;
    let mut lat = Vec::new();
    for h in handles {
        let (n, l) = h
            .join()
            .map_err(|_| "writer thread panicked".to_owned())??;
        total += n;
        lat.extend(l);
    }
    lat.sort_unstable();
    let [syncs, bytes, sync_ns] = match (metered0, metered1) {
        (Some(a), Some(b)) => [0, 1, 2].map(|i| (b[i] - a[i]) as f64),
        _ => [f64::NAN; 3],
    };
    let [commits, commands, commit_us] = [0, 1, 2].map(|i| (commits1[i] - commits0[i]) as f64);
    let ratio = |of: f64, commits: f64| {
        if commits > 0.0 {
            of / commits
        } else {
            f64::NAN
        }
    };
    Ok(TpsRun {
        writers,
        tps: total as f64 / window,
        syncs_per_s: syncs / window,
        per_sync: ratio(total as f64, syncs),
        kib_per_sync: ratio(bytes / 1024.0, syncs),
        sync_share: sync_ns / 1e9 / window,
        per_commit: ratio(commands, commits),
        commit_share: commit_us / 1e6 / window,
        lat_p50_us: pct_us(&lat, 50.0),
        lat_p99_us: pct_us(&lat, 99.0),
        cpu_cores: (cpu1 - cpu0) / window,
        writer_cpu: (wcpu1 - wcpu0) / window,
        server_cpu_cores: (server1 - server0) / window,
        window_s: window,
        adjacent_fsync: f64::NAN,
    })
}

/// Single-threaded `Xueji::transition(dry_run = true)`: load + state machine + policy, no commit.
fn dry_run_latency(cfg: &Config, root: &Path, set: &PackageSet) -> Result<Vec<u64>, String> {
    let engine = open_engine(root, set)?;
    let ids = enrol(&engine.xueji, 1, 1)?;
    let x = &engine.xueji;
    let actor = actor();
    let input = change_class("5");
    let samples = cfg.decision_samples / 4;
    let mut err = None;
    let ns = sample(cfg.decision_warmup / 4, samples, || {
        match x.transition(&ids[0], input.clone(), &actor, true) {
            Ok(Outcome::DryRun { .. }) => {}
            other => err = Some(format!("dry run: {other:?}")),
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(ns),
    }
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

/// Impact replay and verification on a store holding `students × events_each` recorded events:
/// events replayed per second under a candidate (the same package), decisions re-evaluated per
/// second by `verify`, and the chain check alone as the baseline measured in the same run.
fn replay_run(
    cfg: &Config,
    root: &Path,
    set: &PackageSet,
    policy: &CompiledPolicy,
) -> Result<(usize, f64, f64, f64), String> {
    let engine = open_engine(root, set)?;
    let students = if cfg.smoke {
        20
    } else if cfg.quick {
        300
    } else {
        2000
    };
    let ids = enrol(&engine.xueji, students, 16)?;
    let handles: Vec<_> = ids
        .chunks(ids.len().div_ceil(16))
        .map(|mine| {
            let (mine, x) = (mine.to_vec(), engine.xueji.clone());
            std::thread::spawn(move || -> Result<(), String> {
                for round in 0..3 {
                    for id in &mine {
                        let class = if round % 2 == 0 { "5" } else { "4" };
                        x.transition(id, change_class(class), &actor(), false)
                            .map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| "replay writer panicked".to_owned())??;
    }
    let x = &engine.xueji;
    let t = Instant::now();
    let impact = x
        .impact("bench-district", policy)
        .map_err(|e| e.to_string())?;
    let replay = impact.replayed_events as f64 / t.elapsed().as_secs_f64();
    if !impact.changed.is_empty() {
        return Err(format!(
            "the same package changed {} decisions on replay",
            impact.changed.len()
        ));
    }
    let t = Instant::now();
    let reproduced = x
        .reproduce_decisions(Some("bench-district"))
        .map_err(|e| e.to_string())?;
    let reproduce = reproduced.decisions as f64 / t.elapsed().as_secs_f64();
    if !reproduced.ok {
        return Err("recorded decisions did not reproduce".into());
    }
    let t = Instant::now();
    let chains = x.verify_all().map_err(|e| e.to_string())?;
    let chain = chains.events as f64 / t.elapsed().as_secs_f64();
    Ok((impact.replayed_events, replay, reproduce, chain))
}

fn machine() -> Value {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| round_to(kb / 1024.0 / 1024.0, 1));
    json!({
        "cores": cores,
        "os": format!("{} {}", std::env::consts::OS, kernel),
        "arch": std::env::consts::ARCH,
        "cpu": cpu,
        "mem_gib": mem_gib,
    })
}

/// The 1, 5 and 15 minute load averages: the machine is shared, so the report records them.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map_or_else(|| tmp.to_path_buf(), Path::to_path_buf)
}

/// `--only PART`: one part alone, its figures printed, no summary written.
fn run_one_part(cfg: &Config, part: Part) -> Result<(), String> {
    let mut bench_set = PackageSet {
        packages: BTreeMap::new(),
    };
    bench_set
        .packages
        .insert("bench-district".into(), bench_package());
    // A directory of its own: the run that started this one may be using its own meanwhile.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(tmp).map_err(|e| e.to_string())?;
    let root = tempfile::tempdir_in(tmp).map_err(|e| e.to_string())?;
    let owned = |list: Vec<(&str, f64, i32)>| -> Vec<(String, f64, i32)> {
        list.into_iter()
            .map(|(name, v, digits)| (name.to_owned(), v, digits))
            .collect()
    };
    let figures = match part {
        Part::Decision => decisions_part(cfg)?.figures,
        Part::Http => {
            // The in-process rate at 64 writers first, for the ratio the full run reports.
            let inprocess = tps_run(cfg, &open_engine(root.path(), &bench_set)?, 64)?;
            let mut figures = vec![
                ("tps_64_writers".to_owned(), inprocess.tps, 0),
                (
                    "cpu_us_per_transition_64_writers".to_owned(),
                    inprocess.cpu_cores * 1e6 / inprocess.tps,
                    1,
                ),
            ];
            for (name, v, digits) in http_load::run(cfg, root.path(), &bench_set)? {
                if name == "http_transitions_per_s" {
                    figures.push(("http_vs_inprocess_ratio".to_owned(), v / inprocess.tps, 3));
                }
                figures.push((name.to_owned(), v, digits));
            }
            figures
        }
        Part::Scale => owned(scale::run(cfg, root.path(), &bench_set)?),
        Part::Tps => tps_alone(cfg, root.path(), &bench_set)?,
        Part::Bytes => bytes_by_table(cfg, root.path(), &bench_set)?,
        Part::Floor => floor_alone(cfg, root.path(), &bench_set)?,
        Part::Batch => batches::run(cfg, root.path(), &bench_set)?,
        Part::Transfers => owned(transfers::run(cfg.smoke, cfg.quick, root.path())?),
        Part::Postgres => {
            let (fsync, redb_64) = postgres::redb_side(cfg, root.path(), &bench_set)?;
            let sizes = floor_sizes(root.path(), &bench_set)?;
            let mut figures = vec![
                ("fsync_per_s_before".to_owned(), fsync, 0),
                ("redb_tps_64_writers".to_owned(), redb_64.tps, 0),
            ];
            figures.extend(postgres::run(cfg, &bench_set, sizes, &redb_64, fsync)?);
            figures
        }
    };
    for (name, v, digits) in &figures {
        println!("  {name:<40} {}", round_to(*v, *digits));
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(out) = args
        .iter()
        .position(|a| a == FIGURES_ARG)
        .and_then(|i| args.get(i + 1))
    {
        let list: Vec<Value> = figures
            .iter()
            .map(|(name, v, digits)| json!([name, v, digits]))
            .collect();
        std::fs::write(out, Value::Array(list).to_string()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Each writer count once, after its own fsync baseline: the figures the write path is tuned on.
fn tps_alone(
    cfg: &Config,
    root: &Path,
    set: &PackageSet,
) -> Result<Vec<(String, f64, i32)>, String> {
    // `--writers N`: that count alone (to profile one).
    let args: Vec<String> = std::env::args().collect();
    let counts: Vec<usize> = match args.iter().position(|a| a == "--writers") {
        Some(i) => vec![
            args.get(i + 1)
                .and_then(|n| n.parse().ok())
                .ok_or("--writers takes a number")?,
        ],
        None => WRITER_COUNTS.to_vec(),
    };
    let mut figures = Vec::new();
    for w in counts {
        let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
        let (fsync, _) = fsync_rate(dir.path(), cfg.fsync_window / 2).map_err(|e| e.to_string())?;
        let r = tps_run(cfg, &open_engine(root, set)?, w)?;
        let name = |what: &str| format!("{what}_{w}_writers");
        figures.extend([
            (name("fsync_per_s_before"), fsync, 0),
            (name("tps"), r.tps, 0),
            (name("tps_over_fsync"), r.tps / fsync, 3),
            (name("per_commit"), r.per_sync, 1),
            (name("kib_per_commit"), r.kib_per_sync, 1),
            (name("writer_cpu"), r.writer_cpu, 2),
            (name("sync_share"), r.sync_share, 2),
            (name("cpu_cores"), r.cpu_cores, 2),
            (name("p99_us"), r.lat_p99_us, 0),
        ]);
    }
    Ok(figures)
}

/// Where the bytes of a transition go: the 64-writer `tps_run` on a redb store whose seam is
/// counted table by table (`counted.rs`) over the metered file. Prints each table's pairs and
/// logical bytes per transition and the share of commits that write it, beside the bytes redb
/// wrote to the file; returns the totals.
fn bytes_by_table(
    cfg: &Config,
    root: &Path,
    set: &PackageSet,
) -> Result<Vec<(String, f64, i32)>, String> {
    let mut figures = bytes_in_mode(cfg, root, set, false)?;
    figures.extend(bytes_in_mode(cfg, root, set, true)?);
    // The floor's model of the same records at the batch the served run formed, laid out as
    // stored and as the design would, over the bench's students and over a district's.
    let batch = figures
        .iter()
        .find(|(name, ..)| name == "transitions_per_commit_64")
        .map_or(64, |(_, v, _)| v.round().max(1.0) as usize);
    let sizes = floor_sizes(root, set)?;
    println!(
        "\nredb alone, the same records at {batch} transitions a commit ({sizes}): bytes written \
         a transition"
    );
    println!(
        "  {:<34} {:>14} {:>14}",
        "layout", "128 students", "100000 students"
    );
    for (layout, name) in [
        (floor::Layout::AsStored, "as_stored"),
        (floor::Layout::StepsInLogOrder, "steps_in_log_order"),
    ] {
        let mut row = Vec::new();
        for students in [128, 100_000] {
            let r = floor::run(root, sizes, students, batch, cfg.tps_window, layout)
                .map_err(|e| e.to_string())?;
            figures.push((
                format!("floor_bytes_per_transition_{name}_{students}"),
                r.bytes_per_transition,
                0,
            ));
            row.push(r.bytes_per_transition);
        }
        println!("  {:<34} {:>14.0} {:>14.0}", name, row[0], row[1]);
    }
    Ok(figures)
}

/// [`bytes_by_table`] on a file opened as the service opens it (redb's `SingleWriter`), or
/// `alone` (redb's default exclusive mode: one fsync a commit); the figures of the latter end
/// in `_exclusive`.
fn bytes_in_mode(
    cfg: &Config,
    root: &Path,
    set: &PackageSet,
    alone: bool,
) -> Result<Vec<(String, f64, i32)>, String> {
    use xueji::store::redb::RedbBackend;
    let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
    let meters = Meters::default();
    let file = MeteredBackend::create_in(dir.path(), meters.clone())?;
    let redb = if alone {
        RedbBackend::alone_with_backend(file)
    } else {
        RedbBackend::shared_with_backend(file)
    }
    .map_err(|e| e.to_string())?;
    let backend = Arc::new(counted::CountedBackend::new(redb));
    let counts = backend.counts.clone();
    let store = Store::open_backend(backend).map_err(|e| e.to_string())?;
    let mut engine = engine_on(store, set)?;
    engine.meters = Some(meters);
    // The setup's admissions are counted too: only the window's difference is reported.
    let before = std::sync::Mutex::new(None);
    let r = tps_run_observed(cfg, &engine, 64, || {
        *before
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((counts.tables(), counts.commits.load(Ordering::Relaxed)));
    })?;
    let (start, commits0) = before
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .ok_or("the window did not start")?;
    let end = counts.tables();
    let commits = (counts.commits.load(Ordering::Relaxed) - commits0) as f64;
    let transitions = r.tps * r.window_s;
    let per_commit = transitions / commits;
    let syncs_per_commit = r.syncs_per_s * r.window_s / commits;
    println!(
        "\nWhere a transition's bytes go: 64 writers on redb ({}), {transitions:.0} transitions \
         in {commits:.0} commits ({:.1} a commit, {:.2} syncs a commit)",
        if alone {
            "exclusive mode"
        } else {
            "SingleWriter, as served"
        },
        per_commit,
        syncs_per_commit
    );
    println!(
        "  {:<22} {:>12} {:>12} {:>12} {:>14}",
        "table", "inserts/tx", "removes/tx", "bytes/tx", "in % commits"
    );
    let mut logical = 0.0;
    for (name, w) in &end {
        let s = start.get(name).copied().unwrap_or_default();
        let d = |a: u64, b: u64| (a - b) as f64;
        let bytes = d(w.bytes, s.bytes);
        if bytes == 0.0 && w.removed == s.removed {
            continue;
        }
        logical += bytes;
        println!(
            "  {:<22} {:>12.2} {:>12.2} {:>12.0} {:>13.0}%",
            name,
            d(w.inserted, s.inserted) / transitions,
            d(w.removed, s.removed) / transitions,
            bytes / transitions,
            d(w.commits, s.commits) / commits * 100.0
        );
    }
    let logical_per = logical / transitions;
    let physical_per = r.kib_per_sync * 1024.0 * r.syncs_per_s / r.tps;
    println!(
        "  logical {logical_per:.0} B a transition; redb wrote {physical_per:.0} B a transition \
         to the file ({:.1}× the logical)",
        physical_per / logical_per
    );
    let mode = if alone { "_exclusive" } else { "" };
    Ok(vec![
        (format!("transitions_per_commit_64{mode}"), per_commit, 1),
        (
            format!("bytes_logical_per_transition_64{mode}"),
            logical_per,
            0,
        ),
        (
            format!("bytes_written_per_transition_64{mode}"),
            physical_per,
            0,
        ),
        (
            format!("bytes_written_over_logical_64{mode}"),
            physical_per / logical_per,
            1,
        ),
        (format!("syncs_per_commit_64{mode}"), syncs_per_commit, 2),
    ])
}

/// The sizes of the records one `change_class` writes, from a real transition.
fn floor_sizes(root: &Path, set: &PackageSet) -> Result<floor::RecordSizes, String> {
    let engine = open_engine(root, set)?;
    let ids = enrol(&engine.xueji, 1, 1)?;
    match engine
        .xueji
        .transition(&ids[0], change_class("5"), &actor(), false)
    {
        Ok(Outcome::Applied { .. }) => {}
        other => return Err(format!("change_class: {other:?}")),
    }
    // Read from the file once the store is closed (it holds the file's lock while open).
    let Engine { xueji, dir, .. } = engine;
    let store_closed = Arc::into_inner(xueji).is_some();
    let dir = dir.ok_or("floor: the sample store has no folder")?;
    if !store_closed {
        return Err("floor: the sample store is still in use".into());
    }
    floor::RecordSizes::stored(&dir.path().join("xueji.redb"), &ids[0])
}

/// The floor at several batch sizes, after an fsync baseline.
fn floor_alone(
    cfg: &Config,
    root: &Path,
    set: &PackageSet,
) -> Result<Vec<(String, f64, i32)>, String> {
    let sizes = floor_sizes(root, set)?;
    eprintln!("  record sizes: {sizes}");
    let students = WRITER_COUNTS.iter().copied().max().unwrap_or(1) * cfg.students_per_writer;
    let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
    let (fsync, _) = fsync_rate(dir.path(), cfg.fsync_window / 2).map_err(|e| e.to_string())?;
    let mut figures = vec![("fsync_per_s_before".to_owned(), fsync, 0)];
    for batch in [16, 32, 64, 128] {
        let tps = floor::tps(root, sizes, students, batch, cfg.tps_window)?;
        figures.push((format!("redb_floor_tps_batch_{batch}"), tps, 0));
        figures.push((
            format!("redb_floor_batch_{batch}_over_fsync"),
            tps / fsync,
            2,
        ));
    }
    Ok(figures)
}

/// `--figures FILE`: where a part run alone leaves its figures for the run that started it.
const FIGURES_ARG: &str = "--figures";

/// Runs the scale part in a process of its own, in the same mode, so its resident memory is a
/// district store's alone (not what the earlier parts left allocated), as in the service.
fn scale_in_own_process(cfg: &Config) -> Result<Vec<(String, f64, i32)>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(exe);
    if !cfg.smoke {
        cmd.arg(if cfg.quick { "--quick" } else { "--full" });
    }
    let figures = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let status = cmd
        .args(["--only", "scale", FIGURES_ARG])
        .arg(figures.path())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the scale part failed ({status})"));
    }
    let text = std::fs::read_to_string(figures.path()).map_err(|e| e.to_string())?;
    let list: Vec<(String, f64, i32)> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(list)
}

/// What the decision part measured, and the bench package it compiled for the later parts.
struct DecisionPart {
    figures: Vec<(String, f64, i32)>,
    bench_set: PackageSet,
    bench_policy: Arc<CompiledPolicy>,
    /// Every native baseline decides as its package does (the part fails otherwise).
    native_matches: bool,
    /// The Cedar policy set decides as the packages do (the part fails otherwise).
    cedar_matches: bool,
    /// Cases of the Cedar equivalence proof, and those also decided by a native baseline.
    proof_cases: usize,
    proof_native: usize,
}

/// Decisions: the Rhai packages on their cases beside native Rust, then Cedar on the same
/// rules, proved equivalent and timed (`--only decision` runs it alone).
fn decisions_part(cfg: &Config) -> Result<DecisionPart, String> {
    let mut figures = Vec::new();
    let mut put = |name: &str, v: f64, digits: i32| figures.push((name.to_owned(), v, digits));
    // ---- 1. Decisions -----------------------------------------------------------------------
    let builtin = builtin_packages();
    let timer_ns = timer_overhead_ns();
    let mut decisions = Vec::new();

    let national = builtin_with_bases(&builtin, "national-k12")
        .ok_or("built-in package national-k12 is missing")?;
    let national_policy = compile_set(&national, "national-k12")?;
    let expel_case = {
        let mut input = TransitionInput::new(TransitionKind::Expel, d("2026-03-02"));
        input.reason = Some(Reason::Discipline);
        case_of(
            CaseStudent {
                grade: Some(2),
                class: Some("1".into()),
                ..Default::default()
            },
            CaseSchool {
                level: Some(Level::Junior),
                ..Default::default()
            },
            input,
        )
    };
    let expel_native = NativeRule::of(&national_policy, "national_k12.expel.compulsory")
        .and_then(|r| r.with_review(&national_policy, "national_k12.review.school"));
    if expel_native.is_none() {
        return Err(
            "rule national_k12.expel.compulsory (or its review step) is gone: the native baseline \
             has nothing to match; change the bench with the package"
                .into(),
        );
    }
    decisions.push(bench_decision(
        cfg,
        "national-k12 expel (junior school)",
        &national_policy,
        &expel_case,
        expel_native.as_ref().map(|r| (r, native_expel as NativeFn)),
    )?);

    let mut bench_set = PackageSet {
        packages: BTreeMap::new(),
    };
    bench_set
        .packages
        .insert("bench-district".into(), bench_package());
    let bench_policy = compile_set(&bench_set, "bench-district")?;
    let suspend_case = case_of(
        CaseStudent {
            grade: Some(3),
            class: Some("4".into()),
            ..Default::default()
        },
        CaseSchool {
            level: Some(Level::Primary),
            area: Some("东区".into()),
            ..Default::default()
        },
        suspend_input(),
    );
    let suspend_native = NativeRule::of(&bench_policy, "bench.suspend.proof")
        .ok_or("bench.suspend.proof missing from the bench package")?;
    decisions.push(bench_decision(
        cfg,
        "bench-district suspend (doc + 2 approvals + deadline)",
        &bench_policy,
        &suspend_case,
        Some((&suspend_native, native_suspend)),
    )?);

    // No rule of the package is on `promote`: what is left is building the case for the
    // scripts (student, school and transition as Rhai maps) and assembling the decision.
    let promote_case = case_of(
        CaseStudent {
            grade: Some(3),
            class: Some("4".into()),
            ..Default::default()
        },
        CaseSchool {
            level: Some(Level::Primary),
            area: Some("东区".into()),
            ..Default::default()
        },
        TransitionInput::new(TransitionKind::Promote, d("2025-09-01")),
    );
    decisions.push(bench_decision(
        cfg,
        "bench-district promote (no rule applies: fixed cost)",
        &bench_policy,
        &promote_case,
        Some((&suspend_native, native_no_rule)),
    )?);

    match builtin_with_bases(&builtin, "yanhe-primary") {
        None => println!("(yanhe-primary is not built in yet: skipped)"),
        Some(set) => match compile_set(&set, "yanhe-primary") {
            Err(e) => println!("(yanhe-primary does not compile: skipped: {e})"),
            Ok(policy) => {
                let case = case_of(
                    CaseStudent {
                        grade: Some(3),
                        class: Some("4".into()),
                        ..Default::default()
                    },
                    CaseSchool {
                        level: Some(Level::Primary),
                        area: Some("沿河县".into()),
                        ..Default::default()
                    },
                    suspend_input(),
                );
                match bench_decision(cfg, "yanhe-primary suspend", &policy, &case, None) {
                    Ok(r) => decisions.push(r),
                    Err(e) => println!("(yanhe-primary suspend fails to evaluate: skipped: {e})"),
                }
            }
        },
    }

    // ---- 1b. Cedar: the same rules as a Cedar policy set, proved equivalent, then timed ----
    let peer = cedar::Peer::build(&target_dir())?;
    let mut proofs = [cedar::Proof::default(), cedar::Proof::default()];
    let mut vacuous = cedar::Proof::default();
    let pending = {
        let [k12_proof, bench_proof] = &mut proofs;
        [
            cedar::cases(
                &national_policy,
                "national-k12",
                expel_native
                    .as_ref()
                    .map(|r| (TransitionKind::Expel, r, native_expel as NativeFn)),
                k12_proof,
            ),
            cedar::cases(
                &bench_policy,
                "bench-district",
                Some((
                    TransitionKind::Suspend,
                    &suspend_native,
                    native_suspend as NativeFn,
                )),
                bench_proof,
            ),
            // The comparison is not vacuous: a set holding only the default permit must be
            // caught.
            cedar::cases(&national_policy, "permit-all", None, &mut vacuous),
        ]
    };
    let timed = [
        cedar::timed(&national_policy, "national-k12", &expel_case),
        cedar::timed(&bench_policy, "bench-district", &suspend_case),
    ];
    let mut requests: Vec<Value> = pending
        .iter()
        .flatten()
        .map(|p| p.request.clone())
        .collect();
    requests.extend(timed.iter().map(|(r, _)| r.clone()));
    let results = peer.run(&json!({
        "policy_sets": {
            "national-k12": cedar::NATIONAL_K12,
            "bench-district": cedar::BENCH_DISTRICT,
            "permit-all": cedar::PERMIT_ALL,
        },
        "warmup": cfg.decision_warmup,
        "samples": cfg.decision_samples,
        "cases": requests,
    }))?;
    if results.len() != requests.len() {
        return Err(format!(
            "the Cedar peer answered {} of {} requests",
            results.len(),
            requests.len()
        ));
    }
    let mut at = 0;
    {
        let [k12_proof, bench_proof] = &mut proofs;
        for (p, proof) in pending.iter().zip([k12_proof, bench_proof, &mut vacuous]) {
            cedar::compare(p, &results[at..at + p.len()], proof);
            at += p.len();
        }
    }
    let timed_results = &results[at..];
    let timed_match = timed
        .iter()
        .zip(timed_results)
        .all(|((_, want), r)| cedar::cedar_verdict(r).is_ok_and(|got| got == *want));
    let expel_cedar = cedar::samples(&timed_results[0], "authorize_ns");
    let expel_cedar_build = cedar::samples(&timed_results[0], "build_and_authorize_ns");
    let suspend_cedar = cedar::samples(&timed_results[1], "authorize_ns");
    let suspend_cedar_build = cedar::samples(&timed_results[1], "build_and_authorize_ns");
    if vacuous.mismatches.is_empty() {
        return Err("the Cedar proof does not tell a permit-all policy set apart".into());
    }
    let proof_cases: usize = proofs.iter().map(|p| p.cases).sum();
    let proof_denied: usize = proofs.iter().map(|p| p.denied).sum();
    let proof_native: usize = proofs.iter().map(|p| p.native_cases).sum();
    let mismatches: Vec<&String> = proofs.iter().flat_map(|p| &p.mismatches).collect();
    let cedar_matches = mismatches.is_empty() && timed_match;
    println!(
        "Cedar equivalence: {proof_cases} cases (national-k12 {}, bench-district {}; {proof_denied} \
         denied), allow/deny and deciding rule ids compared with the Rhai package; {proof_native} \
         of them also against the native function: {}",
        proofs[0].cases,
        proofs[1].cases,
        if cedar_matches {
            format!(
                "all agree (a permit-all set disagrees on {} of national-k12's)",
                vacuous.mismatches.len()
            )
        } else {
            format!("{} disagree", mismatches.len().max(1))
        }
    );
    if !cedar_matches {
        for m in mismatches.iter().take(10) {
            eprintln!("  mismatch: {m}");
        }
        if !timed_match {
            eprintln!("  mismatch: a timed Cedar case decides otherwise than the package");
        }
        // A peer that decides otherwise is timed on another question: the run stops.
        return Err("the Cedar policy set is not equivalent to the packages".into());
    }

    // Compiling a package: what the cached AST saves on every decision.
    let compile_ns = {
        let src = &national.packages["national-k12"];
        sample(3, if cfg.quick { 30 } else { 200 }, || {
            compile_package(src, None).map(|_| ())
        })
    };

    println!(
        "Decision time, cached AST (timer overhead {timer_ns:.0} ns included in every sample)"
    );
    println!(
        "  {:<54} {:>8} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "case", "outcome", "p50 µs", "p99 µs", "native50", "native99", "ratio"
    );
    for r in &decisions {
        let (n50, n99, ratio) = match &r.native_ns {
            Some(n) => (
                pct_us(n, 50.0),
                pct_us(n, 99.0),
                pct_us(&r.rhai_ns, 50.0) / pct_us(n, 50.0),
            ),
            None => (f64::NAN, f64::NAN, f64::NAN),
        };
        let cell = |v: f64, p: usize| {
            if v.is_finite() {
                format!("{v:.p$}")
            } else {
                "—".into()
            }
        };
        println!(
            "  {:<54} {:>8} {:>9.2} {:>9.2} {:>9} {:>9} {:>7}",
            r.label,
            r.outcome,
            pct_us(&r.rhai_ns, 50.0),
            pct_us(&r.rhai_ns, 99.0),
            cell(n50, 3),
            cell(n99, 3),
            cell(ratio, 0),
        );
    }
    println!(
        "  compile national-k12 (what caching saves): p50 {:.0} µs",
        pct_us(&compile_ns, 50.0)
    );
    println!("  Cedar is_authorized, request and entities prebuilt (same cases, same sampling):");
    for (label, rhai, t, build) in [
        (
            "national-k12 expel (junior school)",
            &decisions[0],
            &expel_cedar,
            &expel_cedar_build,
        ),
        (
            "bench-district suspend",
            &decisions[1],
            &suspend_cedar,
            &suspend_cedar_build,
        ),
    ] {
        println!(
            "  {:<54} {:>8} {:>9.2} {:>9.2}   rhai/cedar {:.1}×   with building the request: p50 {:.2} µs",
            label,
            "cedar",
            pct_us(t, 50.0),
            pct_us(t, 99.0),
            pct_us(&rhai.rhai_ns, 50.0) / pct_us(t, 50.0),
            pct_us(build, 50.0)
        );
    }

    let head = &decisions[0];
    put("decision_p50_us", pct_us(&head.rhai_ns, 50.0), 2);
    put("decision_p99_us", pct_us(&head.rhai_ns, 99.0), 2);
    put("decision_mean_us", mean_us(&head.rhai_ns), 2);
    if let Some(n) = &head.native_ns {
        put("native_p50_us", pct_us(n, 50.0), 3);
        put("native_p99_us", pct_us(n, 99.0), 3);
        put(
            "decision_vs_native_ratio",
            pct_us(&head.rhai_ns, 50.0) / pct_us(n, 50.0),
            1,
        );
    }
    let suspend = &decisions[1];
    put("suspend_decision_p50_us", pct_us(&suspend.rhai_ns, 50.0), 2);
    put("suspend_decision_p99_us", pct_us(&suspend.rhai_ns, 99.0), 2);
    if let Some(n) = &suspend.native_ns {
        put("suspend_native_p50_us", pct_us(n, 50.0), 3);
        put(
            "suspend_vs_native_ratio",
            pct_us(&suspend.rhai_ns, 50.0) / pct_us(n, 50.0),
            1,
        );
    }
    let fixed = &decisions[2];
    put("no_rule_decision_p50_us", pct_us(&fixed.rhai_ns, 50.0), 2);
    if let Some(y) = decisions.iter().find(|r| r.label.starts_with("yanhe")) {
        put("yanhe_suspend_p50_us", pct_us(&y.rhai_ns, 50.0), 2);
        put("yanhe_suspend_p99_us", pct_us(&y.rhai_ns, 99.0), 2);
    }
    put("package_compile_us", pct_us(&compile_ns, 50.0), 0);
    put("timer_overhead_ns", timer_ns, 0);
    put("cedar_p50_us", pct_us(&expel_cedar, 50.0), 3);
    put("cedar_p99_us", pct_us(&expel_cedar, 99.0), 3);
    put(
        "decision_vs_cedar_ratio",
        pct_us(&head.rhai_ns, 50.0) / pct_us(&expel_cedar, 50.0),
        2,
    );
    put(
        "cedar_build_and_authorize_p50_us",
        pct_us(&expel_cedar_build, 50.0),
        3,
    );
    put("cedar_suspend_p50_us", pct_us(&suspend_cedar, 50.0), 3);
    put("cedar_suspend_p99_us", pct_us(&suspend_cedar, 99.0), 3);
    put(
        "suspend_vs_cedar_ratio",
        pct_us(&suspend.rhai_ns, 50.0) / pct_us(&suspend_cedar, 50.0),
        2,
    );

    Ok(DecisionPart {
        figures,
        bench_set,
        bench_policy,
        native_matches: decisions.iter().all(|r| r.native_matches != Some(false)),
        cedar_matches,
        proof_cases,
        proof_native,
    })
}

fn main() -> Result<(), String> {
    let cfg = Config::from_args();
    let started = Instant::now();
    let load_at_start = loadavg();
    let mut figures = Map::new();
    let mut put = |name: &str, v: f64, digits: i32| {
        if v.is_finite() {
            figures.insert(name.to_owned(), json!(round_to(v, digits)));
        }
    };
    println!(
        "xueji engine bench — mode {} ({} decision samples, {:?} tps windows × {} rounds)\n",
        cfg.mode(),
        cfg.decision_samples,
        cfg.tps_window,
        cfg.tps_rounds
    );

    if let Some(part) = cfg.only {
        return run_one_part(&cfg, part);
    }

    // ---- 1. Decisions, 1b. Cedar ------------------------------------------------------------
    let DecisionPart {
        figures: decision_figures,
        bench_set,
        bench_policy,
        native_matches,
        cedar_matches,
        proof_cases,
        proof_native,
    } = decisions_part(&cfg)?;
    for (name, v, digits) in decision_figures {
        put(&name, v, digits);
    }

    // ---- 2. Durability ----------------------------------------------------------------------
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-engine");
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;

    let dry = dry_run_latency(&cfg, &root, &bench_set)?;
    put("transition_dry_run_p50_us", pct_us(&dry, 50.0), 1);

    // The disk is shared (on ext4 an fsync also waits for other processes' dirty data), so its
    // rate drifts: a baseline window is measured right before every engine run, and the figure
    // is the median of all of them.
    let mut fsync_rates = Vec::new();
    let mut fsync_lat = Vec::new();
    let mut measure_fsync = |window: Duration| -> Result<f64, String> {
        let dir = tempfile::tempdir_in(&root).map_err(|e| e.to_string())?;
        let (rate, lat) = fsync_rate(dir.path(), window).map_err(|e| e.to_string())?;
        fsync_rates.push(rate);
        fsync_lat.extend(lat);
        Ok(rate)
    };
    for _ in 0..cfg.fsync_rounds {
        measure_fsync(cfg.fsync_window)?;
    }
    let mut scatter_rates = Vec::new();
    let mut measure_scatter = || -> Result<(), String> {
        let dir = tempfile::tempdir_in(&root).map_err(|e| e.to_string())?;
        let rate =
            scattered_write_rate(dir.path(), cfg.fsync_window / 2).map_err(|e| e.to_string())?;
        scatter_rates.push(rate);
        Ok(())
    };
    measure_scatter()?;

    // The SQLite peer starts from students xueji itself admitted and registered, and decides
    // with a registry compiled from the same package.
    let max_writers = WRITER_COUNTS.iter().copied().max().unwrap_or(1);
    let sqlite_seed = sqlite::seed(&root, &bench_set, max_writers * cfg.students_per_writer)?;
    let sqlite_registry =
        Arc::new(PolicyRegistry::from_packages(&bench_set).map_err(|e| format!("{e:?}"))?);
    let mut runs: BTreeMap<usize, Vec<TpsRun>> = BTreeMap::new();
    let mut sqlite_runs: BTreeMap<(bool, usize), Vec<sqlite::SqliteRun>> = BTreeMap::new();
    for round in 0..cfg.tps_rounds {
        for &w in &WRITER_COUNTS {
            let adjacent = measure_fsync(cfg.fsync_window / 2)?;
            let mut r = tps_run(&cfg, &open_engine(&root, &bench_set)?, w)?;
            r.adjacent_fsync = adjacent;
            eprintln!(
                "  round {} {:>2} writers: {:>7.0} tps, {:>5.1} per commit, fsync before: {:>6.0}/s",
                round + 1,
                w,
                r.tps,
                r.per_sync,
                adjacent
            );
            runs.entry(w).or_default().push(r);
            let mut modes = vec![sqlite::Mode::PerConnection];
            if w == max_writers {
                modes.push(sqlite::Mode::GroupCommit);
            }
            for mode in modes {
                let s = sqlite::tps_run(&cfg, &root, &sqlite_seed, &sqlite_registry, w, mode)?;
                eprintln!(
                    "  round {} {:>2} writers: {:>7.0} tps, {:>5.1} per commit (sqlite, {:?})",
                    round + 1,
                    w,
                    s.tps,
                    s.per_commit,
                    mode
                );
                let group = mode == sqlite::Mode::GroupCommit;
                sqlite_runs.entry((group, w)).or_default().push(s);
            }
        }
    }
    measure_scatter()?;
    fsync_lat.sort_unstable();
    let scatter = median(scatter_rates.clone());
    put("disk_scattered_mib_per_s", scatter, 0);
    let fsync = median(fsync_rates.clone());
    let fsync_min = fsync_rates.iter().copied().fold(f64::INFINITY, f64::min);
    let fsync_max = fsync_rates.iter().copied().fold(0.0, f64::max);
    put("fsync_per_s", fsync, 0);
    put("fsync_per_s_min", fsync_min, 0);
    put("fsync_per_s_max", fsync_max, 0);
    put("fsync_p50_us", pct_us(&fsync_lat, 50.0), 1);
    // The median round of each writer count, by tps.
    let pick = |w: usize| -> Option<TpsRun> {
        let mut v = runs.get(&w)?.clone();
        v.sort_by(|a, b| a.tps.total_cmp(&b.tps));
        v.get(v.len() / 2).cloned()
    };
    let chosen: Vec<TpsRun> = WRITER_COUNTS.iter().filter_map(|&w| pick(w)).collect();
    let tps_of = |w: usize| {
        chosen
            .iter()
            .find(|r| r.writers == w)
            .map_or(f64::NAN, |r| r.tps)
    };
    let syncs_per_commit = chosen
        .iter()
        .find(|r| r.writers == 1)
        .map_or(f64::NAN, |r| 1.0 / r.per_sync);

    println!(
        "\nDurable transitions (change_class through Xueji::transition, Durability::Immediate)"
    );
    println!(
        "  fsync baseline: {:.0} fsync/s (4 KiB pwrite + fdatasync; median of {} windows, \
         range {:.0}–{:.0}; p50 {:.0} µs)",
        fsync,
        fsync_rates.len(),
        fsync_min,
        fsync_max,
        pct_us(&fsync_lat, 50.0)
    );
    println!(
        "  scattered-write baseline: {:.0} MiB/s durable (256 random 4 KiB pages + fdatasync; \
         {} windows: {})",
        scatter,
        scatter_rates.len(),
        scatter_rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  single-thread dry run (load + policy, no commit): p50 {:.1} µs, p99 {:.1} µs",
        pct_us(&dry, 50.0),
        pct_us(&dry, 99.0)
    );
    println!(
        "  {:>7} {:>9} {:>9} {:>8} {:>9} {:>10} {:>10} {:>9} {:>8} {:>8} {:>11}",
        "writers",
        "tps",
        "syncs/s",
        "tx/sync",
        "KiB/sync",
        "lat p50µs",
        "lat p99µs",
        "cpu cores",
        "writer%",
        "in sync",
        "fsync/s adj"
    );
    for r in &chosen {
        println!(
            "  {:>7} {:>9.0} {:>9.0} {:>8.1} {:>9.0} {:>10.0} {:>10.0} {:>9.2} {:>7.0}% {:>7.0}% {:>11.0}",
            r.writers,
            r.tps,
            r.syncs_per_s,
            r.per_sync,
            r.kib_per_sync,
            r.lat_p50_us,
            r.lat_p99_us,
            r.cpu_cores,
            r.writer_cpu * 100.0,
            r.sync_share * 100.0,
            r.adjacent_fsync
        );
    }
    println!("  (syncs per commit, from the 1-writer run: {syncs_per_commit:.2})");
    if let Some(r) = chosen.iter().find(|r| r.writers == 64) {
        let kib_per_tx = r.kib_per_sync / r.per_sync;
        let ceiling = scatter * 1024.0 / kib_per_tx;
        println!(
            "  64 writers: {kib_per_tx:.1} KiB written per transition → scattered-write ceiling \
             ≈ {ceiling:.0} tps (measured {:.0})",
            r.tps
        );
        put("tps_ceiling_from_scattered_writes", ceiling, 0);
        // What redb alone commits with the same records: at the batch these 64 writers formed,
        // and at 64, the most 64 closed-loop writers can ever put in one commit.
        let per_commit = (r.per_sync * syncs_per_commit).round().max(1.0);
        let sizes = floor_sizes(&root, &bench_set)?;
        let students = max_writers * cfg.students_per_writer;
        let floor_same = floor::tps(&root, sizes, students, per_commit as usize, cfg.tps_window)?;
        let floor_64 = floor::tps(&root, sizes, students, 64, cfg.tps_window)?;
        println!(
            "  redb alone, same records ({sizes}), \
             one thread, nothing else: {floor_same:.0} tps at {per_commit:.0} a commit (the batch 64 writers formed; \
             xueji reaches {:.0}%), {floor_64:.0} tps at 64 a commit ({:.2}× fsync)",
            100.0 * r.tps / floor_same,
            floor_64 / fsync
        );
        put("transitions_per_commit_64_writers", per_commit, 0);
        put("redb_floor_tps_same_batch", floor_same, 0);
        put("tps_64_over_redb_floor", r.tps / floor_same, 2);
        put("redb_floor_tps_batch_64", floor_64, 0);
        put("redb_floor_batch_64_over_fsync", floor_64 / fsync, 2);
    }

    let (replayed, replay, reproduce, chain) = replay_run(&cfg, &root, &bench_set, &bench_policy)?;
    println!(
        "\nImpact replay and verification over {replayed} recorded events\n  \
         impact replay: {replay:.0} events/s ({:.1} µs each)   verify decisions: {reproduce:.0}/s   \
         chain check alone (baseline): {chain:.0} events/s",
        1e6 / replay
    );
    put("replay_events_per_s", replay, 0);
    put("replay_us_per_event", 1e6 / replay, 2);
    put("reproduce_decisions_per_s", reproduce, 0);
    put("verify_chain_events_per_s", chain, 0);
    put("replay_vs_chain_check_ratio", chain / replay, 2);

    put("tps_1_writer", tps_of(1), 0);
    put("tps_16_writers", tps_of(16), 0);
    put("tps_64_writers", tps_of(64), 0);
    put("tps_16_over_tps_1", tps_of(16) / tps_of(1), 2);
    put("tps_64_over_fsync", tps_of(64) / fsync, 3);
    put("syncs_per_commit", syncs_per_commit, 2);
    for r in &chosen {
        let sfx = if r.writers == 1 {
            "1_writer".to_owned()
        } else {
            format!("{}_writers", r.writers)
        };
        put(&format!("latency_p50_us_{sfx}"), r.lat_p50_us, 0);
        put(&format!("latency_p99_us_{sfx}"), r.lat_p99_us, 0);
        put(&format!("transitions_per_sync_{sfx}"), r.per_sync, 2);
        put(&format!("kib_written_per_sync_{sfx}"), r.kib_per_sync, 0);
        put(
            &format!("kib_written_per_transition_{sfx}"),
            r.kib_per_sync / r.per_sync,
            1,
        );
        put(&format!("cpu_cores_{sfx}"), r.cpu_cores, 2);
        put(
            &format!("cpu_us_per_transition_{sfx}"),
            r.cpu_cores * 1e6 / r.tps,
            1,
        );
        put(&format!("writer_thread_cpu_{sfx}"), r.writer_cpu, 2);
        put(&format!("writer_in_sync_share_{sfx}"), r.sync_share, 2);
        put(&format!("fsync_per_s_before_{sfx}"), r.adjacent_fsync, 0);
    }

    // The median round of each SQLite variant and writer count, by tps.
    let sqlite_chosen: Vec<sqlite::SqliteRun> = sqlite_runs
        .values()
        .filter_map(|v| {
            let mut v = v.clone();
            v.sort_by(|a, b| a.tps.total_cmp(&b.tps));
            v.get(v.len() / 2).cloned()
        })
        .collect();
    let sqlite_tps = |group: bool, w: usize| {
        sqlite_chosen
            .iter()
            .find(|r| r.writers == w && (r.mode == sqlite::Mode::GroupCommit) == group)
            .map_or(f64::NAN, |r| r.tps)
    };
    println!(
        "\nSQLite peer (same change_class workload and policy; WAL, synchronous=FULL; \
         per-connection = BEGIN IMMEDIATE per transition, group = one writer thread)"
    );
    println!(
        "  {:>7} {:>14} {:>9} {:>10} {:>9} {:>10} {:>10} {:>9} {:>8} {:>9}",
        "writers",
        "variant",
        "tps",
        "commits/s",
        "tx/commit",
        "lat p50µs",
        "lat p99µs",
        "cpu cores",
        "writer%",
        "busy retry"
    );
    for r in &sqlite_chosen {
        println!(
            "  {:>7} {:>14} {:>9.0} {:>10.0} {:>9.1} {:>10.0} {:>10.0} {:>9.2} {:>7.0}% {:>9}",
            r.writers,
            match r.mode {
                sqlite::Mode::PerConnection => "per-connection",
                sqlite::Mode::GroupCommit => "group",
            },
            r.tps,
            r.commits_per_s,
            r.per_commit,
            r.lat_p50_us,
            r.lat_p99_us,
            r.cpu_cores,
            r.writer_cpu * 100.0,
            r.busy_retries
        );
    }
    // ---- Where a transition's bytes go (issue #20) -------------------------------------------
    for (name, v, digits) in bytes_by_table(&cfg, &root, &bench_set)? {
        put(&name, v, digits);
    }
    // ---- Transfers within and across jurisdictions -------------------------------------------
    let transfers_root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (name, v, digits) in transfers::run(cfg.smoke, cfg.quick, transfers_root)? {
        put(name, v, digits);
    }
    put("sqlite_tps_1_writer", sqlite_tps(false, 1), 0);
    put("sqlite_tps_16_writers", sqlite_tps(false, 16), 0);
    put("sqlite_tps_64_writers", sqlite_tps(false, 64), 0);
    put("sqlite_group_tps_64_writers", sqlite_tps(true, 64), 0);
    put("tps_vs_sqlite_ratio", tps_of(64) / sqlite_tps(false, 64), 2);
    put(
        "tps_vs_sqlite_group_ratio",
        tps_of(64) / sqlite_tps(true, 64),
        2,
    );
    for r in &sqlite_chosen {
        let prefix = match r.mode {
            sqlite::Mode::PerConnection => "sqlite",
            sqlite::Mode::GroupCommit => "sqlite_group",
        };
        let sfx = if r.writers == 1 {
            "1_writer".to_owned()
        } else {
            format!("{}_writers", r.writers)
        };
        put(&format!("{prefix}_latency_p50_us_{sfx}"), r.lat_p50_us, 0);
        put(&format!("{prefix}_latency_p99_us_{sfx}"), r.lat_p99_us, 0);
        if r.mode == sqlite::Mode::GroupCommit {
            put(
                &format!("{prefix}_transitions_per_commit_{sfx}"),
                r.per_commit,
                2,
            );
        }
        put(&format!("{prefix}_cpu_cores_{sfx}"), r.cpu_cores, 2);
        put(
            &format!("{prefix}_busy_retries_{sfx}"),
            r.busy_retries as f64,
            0,
        );
    }

    // ---- 3. HTTP end to end, 4. a district-sized store (issue #6) ---------------------------
    for (name, v, digits) in http_load::run(&cfg, &root, &bench_set)? {
        if name == "http_transitions_per_s" {
            put("http_vs_inprocess_ratio", v / tps_of(64), 3);
        }
        put(name, v, digits);
    }
    for (name, v, digits) in scale_in_own_process(&cfg)? {
        put(&name, v, digits);
    }
    // ---- 5. Batches: a school promoted at once (issue #17) -----------------------------------
    for (name, v, digits) in batches::run(&cfg, &root, &bench_set)? {
        put(&name, v, digits);
    }
    // ---- The engine on PostgreSQL (issue #19) ------------------------------------------------
    // Last: its server keeps flushing the million rows of its import (checkpoints) and holds
    // their pages in memory after its part ends, which took HTTP to a fifth of its rate when
    // the HTTP part ran after it.
    let sizes = floor_sizes(&root, &bench_set)?;
    let redb_64 = chosen
        .iter()
        .find(|r| r.writers == 64)
        .ok_or("no redb run at 64 writers")?;
    for (name, v, digits) in postgres::run(&cfg, &bench_set, sizes, redb_64, fsync)? {
        put(&name, v, digits);
    }

    let ratio_line = format!(
        "  tps_16/tps_1 = {:.2}   tps_64/fsync = {:.3}   decision/native = {:.0}×   \
         decision/cedar = {:.2}×   tps_64 xueji/sqlite = {:.2} (group: {:.2})",
        tps_of(16) / tps_of(1),
        tps_of(64) / fsync,
        figures
            .get("decision_vs_native_ratio")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN),
        figures
            .get("decision_vs_cedar_ratio")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN),
        tps_of(64) / sqlite_tps(false, 64),
        tps_of(64) / sqlite_tps(true, 64)
    );
    println!("{ratio_line}");

    // ---- Summary ----------------------------------------------------------------------------
    let mut summary = Map::new();
    summary.extend(figures);
    summary.insert("machine".into(), machine());
    summary.insert(
        "date".into(),
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    summary.insert("mode".into(), json!(cfg.mode()));
    summary.insert("loadavg_at_start".into(), json!(load_at_start));
    summary.insert("loadavg_at_end".into(), json!(loadavg()));
    summary.insert(
        "decision_samples".into(),
        json!(cfg.decision_samples as u64),
    );
    summary.insert("tps_window_s".into(), json!(cfg.tps_window.as_secs_f64()));
    summary.insert("tps_rounds".into(), json!(cfg.tps_rounds as u64));
    summary.insert("cedar_matches_package".into(), json!(cedar_matches));
    summary.insert("cedar_equivalence_cases".into(), json!(proof_cases as u64));
    summary.insert(
        "cedar_equivalence_native_cases".into(),
        json!(proof_native as u64),
    );
    summary.insert("native_matches_package".into(), json!(native_matches));
    summary.insert(
        "elapsed_s".into(),
        json!(round_to(started.elapsed().as_secs_f64(), 1)),
    );
    let out_dir = target_dir().join("bench");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    // A smoke run (under `cargo test`) never overwrites measured figures.
    let out = out_dir.join(if cfg.smoke {
        "smoke-summary.json"
    } else {
        "summary.json"
    });
    let text = serde_json::to_string_pretty(&Value::Object(summary)).map_err(|e| e.to_string())?;
    std::fs::write(&out, text + "\n").map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&root);
    println!(
        "\nwrote {} ({:.0} s)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
