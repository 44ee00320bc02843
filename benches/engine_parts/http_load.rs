//! Figure 3 of issue #6: durable transitions and reads end to end over HTTP on loopback.
//!
//! The real server (`xueji::http::router` + `xueji::http::serve` on `127.0.0.1:0`) runs on its
//! own multi-threaded tokio runtime, over a fresh store in the bench's root dir with the
//! `bench-district` package. A second multi-threaded runtime is the load generator: 64 tasks,
//! each with its own `reqwest::Client` (so exactly one keep-alive connection per task), or one
//! task for the latency baseline.
//!
//! - Workload A: `POST /v1/students/{id}/transitions` `change_class`, alternating class "5"/"4",
//!   each task cycling over its own students (as `tps_run` does in-process).
//! - Workload B: `GET /v1/students/{id}` for random students.
//!
//! The policy's share of a transition is the p50 of `policy::evaluate` of that same
//! `change_class` decision (cached AST, the student as stored) over the p50 of a transition at
//! one connection, both measured in this run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use xueji::auth::{Role, TokenRecord};
use xueji::engine::Xueji;
use xueji::policy::{Case, PackageSet, evaluate};

use super::{
    Config, change_class, context_switches, cpu_seconds, enrol, fsync_rate, open_engine, pct_us,
    sample, switches_between,
};

/// Connections (one task each) of the loaded runs.
const CONNECTIONS: usize = 64;

/// What one load run measured.
struct LoadRun {
    requests: u64,
    window_s: f64,
    /// Sorted nanoseconds, request sent to body read.
    lat: Vec<u64>,
    /// CPU and context switches over the window, by the threads' part.
    window: Readings,
}

/// The threads of each part, by name: the load generator's runtime, the server's (its workers
/// and its blocking pool), and the store's writer.
const PARTS: [&str; 3] = ["bench-load", "bench-server", "xueji-writer"];

/// CPU seconds and context switches of each of [`PARTS`], and CPU of the whole process.
#[derive(Debug, Clone, Copy, Default)]
struct Readings {
    cpu_s: [f64; 3],
    process_cpu_s: f64,
    /// (voluntary, involuntary)
    switches: [(u64, u64); 3],
}

/// A reading now, to be closed by [`Opened::close`].
struct Opened {
    cpu_s: [f64; 3],
    process_cpu_s: f64,
    switches: [std::collections::BTreeMap<u64, (u64, u64)>; 3],
}

impl Opened {
    fn now() -> Opened {
        Opened {
            cpu_s: PARTS.map(|p| cpu_seconds(Some(p))),
            process_cpu_s: cpu_seconds(None),
            switches: PARTS.map(|p| context_switches(Some(p))),
        }
    }

    fn close(self) -> Readings {
        let end = Opened::now();
        Readings {
            cpu_s: std::array::from_fn(|i| end.cpu_s[i] - self.cpu_s[i]),
            process_cpu_s: end.process_cpu_s - self.process_cpu_s,
            switches: std::array::from_fn(|i| {
                switches_between(&self.switches[i], &end.switches[i])
            }),
        }
    }
}

impl LoadRun {
    fn per_s(&self) -> f64 {
        self.requests as f64 / self.window_s
    }
    fn ms(&self, p: f64) -> f64 {
        pct_us(&self.lat, p) / 1_000.0
    }
}

#[derive(Clone, Copy)]
enum Workload {
    Transitions,
    Reads,
}

/// The server, running until dropped.
struct Server {
    base: String,
    token: String,
    xueji: Arc<Xueji>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _engine: super::Engine,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn start_server(root: &std::path::Path, set: &PackageSet) -> Result<Server, String> {
    let engine = open_engine(root, set)?;
    let xueji = engine.xueji.clone();
    let (token, _) = xueji
        .create_token(TokenRecord {
            id: String::new(),
            role: Role::Admin,
            jurisdiction: None,
            area: None,
            school: None,
            class: None,
            student: None,
            label: Some("bench".into()),
            created_at: String::new(),
            created_by: None,
            revoked: false,
            expires_at: None,
        })
        .map_err(|e| e.to_string())?;
    let backup_dir = engine
        .dir
        .as_ref()
        .ok_or("the HTTP part runs on a redb file")?
        .path()
        .join("backups");
    let state = xueji::http::AppState {
        xueji: xueji.clone(),
        metrics: Arc::new(xueji::http::Metrics::default()),
        backup_dir: backup_dir.into(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-server")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|e| e.to_string())?;
    let base = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = xueji::http::router(state, None);
    runtime.spawn(xueji::http::serve(listener, app, async {
        let _ = rx.await;
    }));
    Ok(Server {
        base,
        token,
        xueji,
        runtime: Some(runtime),
        shutdown: Some(tx),
        _engine: engine,
    })
}

/// Runs `conns` tasks on the load runtime for warm-up + window; `mine[i]` are task i's students
/// (transitions), `all` the students read (reads).
fn load_run(
    cfg: &Config,
    load: &tokio::runtime::Runtime,
    server: &Server,
    workload: Workload,
    mine: &[Vec<String>],
    all: &Arc<Vec<String>>,
) -> Result<LoadRun, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = mine
        .iter()
        .enumerate()
        .map(|(task, mine)| {
            let mine = mine.clone();
            let all = all.clone();
            let (stop, measuring) = (stop.clone(), measuring.clone());
            let (base, token) = (server.base.clone(), server.token.clone());
            load.spawn(async move {
                // One client per task: one keep-alive connection per task.
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(1)
                    .build()
                    .map_err(|e| e.to_string())?;
                let mut lat = Vec::new();
                let mut done = 0u64;
                let mut i = 0usize;
                // xorshift64 per task: cheap, deterministic choice of the student read.
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (task as u64 + 1).wrapping_mul(0x2545_f491);
                while !stop.load(Ordering::Acquire) {
                    let was_measuring = measuring.load(Ordering::Acquire);
                    let t = Instant::now();
                    let (status, expected) = match workload {
                        Workload::Transitions => {
                            let id = &mine[i % mine.len()];
                            let class = if (i / mine.len()).is_multiple_of(2) {
                                "5"
                            } else {
                                "4"
                            };
                            let body = json!({
                                "kind": "change_class",
                                "effective_date": "2025-03-02",
                                "params": { "class": class },
                            });
                            let resp = client
                                .post(format!("{base}/v1/students/{id}/transitions"))
                                .bearer_auth(&token)
                                .json(&body)
                                .send()
                                .await
                                .map_err(|e| format!("transition request: {e}"))?;
                            let status = resp.status().as_u16();
                            resp.bytes().await.map_err(|e| e.to_string())?;
                            (status, 201)
                        }
                        Workload::Reads => {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let id = &all[(x % all.len() as u64) as usize];
                            let resp = client
                                .get(format!("{base}/v1/students/{id}"))
                                .bearer_auth(&token)
                                .send()
                                .await
                                .map_err(|e| format!("read request: {e}"))?;
                            let status = resp.status().as_u16();
                            resp.bytes().await.map_err(|e| e.to_string())?;
                            (status, 200)
                        }
                    };
                    let ns = t.elapsed().as_nanos() as u64;
                    if status != expected {
                        return Err(format!("HTTP {status}, expected {expected}"));
                    }
                    i += 1;
                    if was_measuring && !stop.load(Ordering::Acquire) {
                        done += 1;
                        lat.push(ns);
                    }
                }
                Ok::<_, String>((done, lat))
            })
        })
        .collect();
    std::thread::sleep(cfg.tps_warmup);
    let opened = Opened::now();
    let start = Instant::now();
    measuring.store(true, Ordering::Release);
    std::thread::sleep(cfg.tps_window);
    stop.store(true, Ordering::Release);
    let window_s = start.elapsed().as_secs_f64();
    let window = opened.close();
    let mut requests = 0;
    let mut lat = Vec::new();
    for h in handles {
        let (n, l) = load.block_on(h).map_err(|e| format!("load task: {e}"))??;
        requests += n;
        lat.extend(l);
    }
    lat.sort_unstable();
    Ok(LoadRun {
        requests,
        window_s,
        lat,
        window,
    })
}

/// Runs the HTTP part; returns the figures (name, value, digits).
pub fn run(
    cfg: &Config,
    root: &std::path::Path,
    set: &PackageSet,
) -> Result<Vec<(&'static str, f64, i32)>, String> {
    let server = start_server(root, set)?;
    let per = cfg.students_per_writer;
    // The 64 tasks' students, then the single connection's.
    let ids = enrol(&server.xueji, CONNECTIONS * per + per, 16)?;
    let mut mine: Vec<Vec<String>> = ids.chunks(per).map(<[String]>::to_vec).collect();
    let single = mine.pop().ok_or("no students enrolled")?;
    let all = Arc::new(ids.clone());

    let load = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-load")
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    // 1 connection: the latency baseline.
    let one = load_run(
        cfg,
        &load,
        &server,
        Workload::Transitions,
        std::slice::from_ref(&single),
        &all,
    )?;
    // The policy evaluation of that same decision, on the student as stored now.
    let x = &server.xueji;
    let student = x.student(&single[0]).map_err(|e| e.to_string())?;
    let school = x.school(&student.school).map_err(|e| e.to_string())?;
    let input = change_class(if student.class.as_deref() == Some("5") {
        "4"
    } else {
        "5"
    });
    let policy = x
        .policies()
        .in_force(&school.jurisdiction, input.effective_date)
        .map_err(|e| e.to_string())?;
    let case = Case {
        student: &student,
        school: &school,
        input: &input,
        sweep: false,
    };
    let decision = evaluate(&policy, case).map_err(|e| e.to_string())?;
    if !decision.allowed || decision.rules.is_empty() {
        return Err(format!(
            "change_class should be allowed by a rule: {decision:?}"
        ));
    }
    let policy_ns = sample(cfg.decision_warmup / 4, cfg.decision_samples / 4, || {
        evaluate(&policy, std::hint::black_box(case))
    });

    // The disk's fsync rate just before the loaded run (the same probe as `fsync_per_s`).
    let fsync = {
        let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
        fsync_rate(dir.path(), cfg.fsync_window / 2)
            .map_err(|e| e.to_string())?
            .0
    };
    let writes = load_run(cfg, &load, &server, Workload::Transitions, &mine, &all)?;
    let reads = load_run(cfg, &load, &server, Workload::Reads, &mine, &all)?;
    load.shutdown_timeout(Duration::from_secs(5));
    drop(server);

    let policy_p50_us = pct_us(&policy_ns, 50.0);
    let one_p50_ms = one.ms(50.0);
    println!("\nHTTP on loopback (real server, keep-alive, reqwest load generator)");
    println!(
        "  {:<44} {:>9} {:>9} {:>9}",
        "workload", "req/s", "p50 ms", "p99 ms"
    );
    for (label, r) in [
        ("change_class, 1 connection", &one),
        ("change_class, 64 connections", &writes),
        ("GET student, 64 connections", &reads),
    ] {
        println!(
            "  {:<44} {:>9.0} {:>9.2} {:>9.2}",
            label,
            r.per_s(),
            r.ms(50.0),
            r.ms(99.0)
        );
    }
    println!(
        "  policy::evaluate of that change_class: p50 {policy_p50_us:.2} µs = {:.1}% of the \
         1-connection p50; fsync just before: {fsync:.0}/s (64-conn tps / fsync = {:.3})",
        policy_p50_us / 1_000.0 / one_p50_ms * 100.0,
        writes.per_s() / fsync
    );
    // Per transition of the 64-connection window: CPU by part, and the wake-ups (voluntary
    // switches: a thread blocked and was woken) of the server's threads and the writer.
    let per = |v: f64| v / writes.requests.max(1) as f64;
    let w = &writes.window;
    let [client_us, server_us, writer_us] = w.cpu_s.map(|s| per(s) * 1e6);
    let process_us = per(w.process_cpu_s) * 1e6;
    let [client_sw, server_sw, writer_sw] = w.switches.map(|(v, n)| (per(v as f64), per(n as f64)));
    println!(
        "  64 connections, per transition: CPU {process_us:.0} µs (load generator \
         {client_us:.0}, server {server_us:.0}, writer {writer_us:.0}); wake-ups: server \
         {:.2} (+{:.2} preempted), writer {:.2}, load generator {:.2}",
        server_sw.0, server_sw.1, writer_sw.0, client_sw.0
    );
    Ok(vec![
        ("http_transitions_per_s", writes.per_s(), 0),
        ("http_p50_ms", writes.ms(50.0), 2),
        ("http_p99_ms", writes.ms(99.0), 2),
        ("http_reads_per_s", reads.per_s(), 0),
        ("http_read_p50_ms", reads.ms(50.0), 3),
        ("http_read_p99_ms", reads.ms(99.0), 3),
        ("http_transitions_per_s_1_conn", one.per_s(), 0),
        ("http_transition_p50_ms_1_conn", one_p50_ms, 3),
        ("http_transition_p99_ms_1_conn", one.ms(99.0), 3),
        ("http_policy_p50_us", policy_p50_us, 2),
        (
            "policy_share_of_transition",
            policy_p50_us / 1_000.0 / one_p50_ms,
            4,
        ),
        ("http_fsync_per_s_adjacent", fsync, 0),
        ("http_transitions_vs_fsync", writes.per_s() / fsync, 3),
        // Little's law for closed-loop connections: the mean latency at this throughput,
        // whatever the server does (a p99 below it is impossible).
        (
            "http_mean_latency_floor_ms",
            CONNECTIONS as f64 / writes.per_s() * 1_000.0,
            2,
        ),
        ("http_cpu_us_per_transition", process_us, 1),
        ("http_server_cpu_us_per_transition", server_us, 1),
        ("http_writer_cpu_us_per_transition", writer_us, 1),
        ("http_load_cpu_us_per_transition", client_us, 1),
        ("http_server_wakeups_per_transition", server_sw.0, 2),
        ("http_server_preempted_per_transition", server_sw.1, 2),
        ("http_writer_wakeups_per_transition", writer_sw.0, 3),
        ("http_load_wakeups_per_transition", client_sw.0, 2),
    ])
}
