//! Prometheus text metrics: request counts and latencies by route, decisions by outcome.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use super::AppState;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    decisions: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    pub fn decision(&self, outcome: &str) {
        if let Ok(mut d) = self.decisions.lock() {
            *d.entry(outcome.to_owned()).or_default() += 1;
        }
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route.to_owned()).or_insert_with(|| Histogram {
                counts: vec![0; BUCKETS.len()],
                ..Default::default()
            });
            for (i, b) in BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    pub fn render(&self, commits: &crate::engine::CommitStats) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = String::new();
        out.push_str("# HELP xueji_commit_duration_seconds Durable commits of the group-commit writer.\n# TYPE xueji_commit_duration_seconds histogram\n");
        for (i, bound) in crate::engine::COMMIT_BUCKETS_MICROS.iter().enumerate() {
            let _ = writeln!(
                out,
                "xueji_commit_duration_seconds_bucket{{le=\"{}\"}} {}",
                *bound as f64 / 1e6,
                commits.buckets[i].load(Relaxed)
            );
        }
        let n = commits.commits.load(Relaxed);
        let _ = writeln!(
            out,
            "xueji_commit_duration_seconds_bucket{{le=\"+Inf\"}} {n}"
        );
        let _ = writeln!(
            out,
            "xueji_commit_duration_seconds_sum {}",
            commits.micros_total.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "xueji_commit_duration_seconds_count {n}");
        let _ = writeln!(
            out,
            "# HELP xueji_committed_commands_total Commands committed (several per commit under load).\n# TYPE xueji_committed_commands_total counter\nxueji_committed_commands_total {}",
            commits.commands.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP xueji_failed_commits_total Commits that failed (nothing of them acknowledged).\n# TYPE xueji_failed_commits_total counter\nxueji_failed_commits_total {}",
            commits.failed_commits.load(Relaxed)
        );
        out.push_str("# HELP xueji_http_requests_total HTTP requests by method, route and status.\n# TYPE xueji_http_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((m, route, s), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "xueji_http_requests_total{{method=\"{m}\",route=\"{route}\",status=\"{s}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP xueji_http_request_duration_seconds Request latency by route.\n# TYPE xueji_http_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "xueji_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "xueji_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "xueji_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "xueji_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count
                );
            }
        }
        out.push_str("# HELP xueji_decisions_total Policy decisions by outcome.\n# TYPE xueji_decisions_total counter\n");
        if let Ok(d) = self.decisions.lock() {
            for (o, n) in d.iter() {
                let _ = writeln!(out, "xueji_decisions_total{{outcome=\"{o}\"}} {n}");
            }
        }
        out
    }
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    state
        .metrics
        .observe(&method, &route, status, elapsed.as_secs_f64());
    // Route templates only: ids, names and ID numbers never reach the log.
    tracing::info!(%method, %route, status, micros = elapsed.as_micros() as u64, "request");
    response
}
