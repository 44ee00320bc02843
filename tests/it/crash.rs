//! SIGKILL at random moments under concurrent writes: after each restart every acknowledged
//! transition is present, nothing half-applied, and every chain and decision verifies.
//! `XUEJI_CRASH_CYCLES` sets the number of cycles (default 4 in `cargo test`);
//! `XUEJI_CRASH_SECONDS`, if set, stops starting new cycles once that much time has passed
//! (`scripts/crash-loop.sh` uses both). Each cycle also checks the jurisdiction log against the
//! checkpoint taken after the previous cycle: nothing acknowledged is ever rolled back.
//! The same loop runs on each backend: the data folder's redb file, and a PostgreSQL database
//! (`serve --store`) on a server with `fsync` and `synchronous_commit` on.

use crate::process::{exit_within, output_within, serve_on, wait_up};
use xueji::engine::Location;

const ADMIN: &str = "crash-test-admin-token-0123456789";
use crate::helpers::{Ack, class_change_writers};
use serde_json::json;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// SIGKILLs the server and reaps it: it must still be running (a server that died on its own
/// is a failure, not a crash the test made) and end by that signal.
fn kill(server: &mut Child, when: &str) {
    if let Some(status) = server.try_wait().expect("try_wait") {
        panic!("{when}: the server exited on its own: {status:?}");
    }
    server.kill().expect("SIGKILL");
    let status = exit_within(server, Duration::from_secs(30), "the server after SIGKILL");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{when}: {status:?}");
    }
    #[cfg(not(unix))]
    assert!(!status.success(), "{when}: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill() {
    crash_loop(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_on_postgres() {
    crash_loop(Some(crate::pg_server::postgres_url())).await;
}

/// The loop, on the data folder's store or on the database `store` names.
async fn crash_loop(store: Option<String>) {
    let cycles: usize = std::env::var("XUEJI_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let admin = ADMIN;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    // Set up one school and eight enrolled students.
    let at = match &store {
        Some(url) => Location::Postgres(url.clone()),
        None => Location::Folder(data.clone()),
    };
    let place = xueji::cli::Place {
        data: data.clone(),
        store: Some(at.clone()),
    };
    let serve = || serve_on(&data, store.as_deref(), port, ADMIN);
    let mut child = serve();
    wait_up(&client, &base, &mut child).await;
    let post = |path: String, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(admin)
            .json(&body)
            .send()
    };
    let r = post(
        "/v1/schools".into(),
        json!({"id": "s1", "name": "一小", "jurisdiction": "national-k12", "level": "junior"}),
    )
    .await
    .expect("school");
    assert_eq!(r.status().as_u16(), 201);
    let mut ids = Vec::new();
    for i in 0..8u32 {
        let first17 = format!("11010520120101{:03}", i * 2);
        let id_card = format!(
            "{first17}{}",
            xueji::domain::identity::check_character(first17.as_bytes())
        );
        let r = post("/v1/students".into(), json!({"school": "s1", "name": format!("学生{i}"), "gender": "female", "birth_date": "2012-01-01", "id_card": id_card, "grade": 1, "class": "1", "entry_date": "2024-09-01"})).await.expect("admit");
        assert_eq!(r.status().as_u16(), 201);
        let v: serde_json::Value = r.json().await.expect("json");
        let id = v["student"]["id"].as_str().expect("id").to_owned();
        let r = post(
            format!("/v1/students/{id}/transitions"),
            json!({"kind": "register", "effective_date": "2024-09-01"}),
        )
        .await
        .expect("register");
        // national-k12 asks the school's review of a registration: the request, then the step.
        assert_eq!(r.status().as_u16(), 202);
        let v: serde_json::Value = r.json().await.expect("json");
        let req = v["request"]["id"].as_str().expect("request id").to_owned();
        let r = post(
            format!("/v1/requests/{req}/approve"),
            json!({"step": "school", "comment": "同意注册"}),
        )
        .await
        .expect("approve");
        assert_eq!(r.status().as_u16(), 200);
        ids.push(id);
    }

    // (student, seq, hash) of every acknowledged event.
    let acknowledged: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let budget = std::env::var("XUEJI_CRASH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_secs);
    let started = Instant::now();
    let mut checkpoints: Vec<xueji::domain::merkle::Checkpoint> = Vec::new();
    let mut survived = 0usize;
    for cycle in 0..cycles {
        if budget.is_some_and(|b| started.elapsed() > b) {
            break;
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers =
            class_change_writers(&client, &base, ADMIN, &ids, false, &acknowledged, &stop);
        // Kill at a random moment within the next 50–400 ms.
        let delay = 50 + (rand::random::<u64>() % 350);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        kill(&mut child, &format!("cycle {cycle}"));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // A writer ends at a lost connection or at `stop`; one that panicked read an
        // acknowledgement it could not understand.
        for w in writers {
            w.await
                .unwrap_or_else(|e| panic!("cycle {cycle}: a writer failed: {e}"));
        }

        // Offline check of the store the killed process left.
        {
            let store = at.open_existing().expect("store reopens after SIGKILL");
            for (student, seq, hash, _) in acknowledged.lock().expect("lock").iter() {
                let events = store.events(student).expect("events");
                let e = events.get((*seq - 1) as usize);
                assert!(
                    e.is_some_and(|e| e.hash == *hash),
                    "cycle {cycle}: acknowledged event {student}#{seq} lost"
                );
            }
            for id in &ids {
                let s = store.student(id).expect("read").expect("student");
                let events = store.events(id).expect("events");
                assert_eq!(
                    events.len() as u64,
                    s.version,
                    "cycle {cycle}: half-applied transition on {id}"
                );
                assert!(
                    xueji::domain::event::verify_chain(&events, Some(&s.head)).ok,
                    "cycle {cycle}: chain of {id}"
                );
            }
        }
        {
            let x = xueji::cli::open_existing(&place, None).expect("engine reopens");
            let logs = x.verify_logs(&checkpoints).expect("verify logs");
            assert!(
                logs.iter().all(|l| l.ok),
                "cycle {cycle}: jurisdiction log: {logs:?}"
            );
            checkpoints = x.checkpoints().expect("checkpoints");
        }
        survived += 1;
        child = serve();
        wait_up(&client, &base, &mut child).await;
    }
    let n = acknowledged.lock().expect("lock").len();
    assert!(n > 0, "no write was acknowledged");
    println!(
        "crash loop on {}: {survived} SIGKILL cycles survived, {n} acknowledged transitions all present, \
         every chain and log verified, in {:.0} s",
        if store.is_some() { "postgres" } else { "redb" },
        started.elapsed().as_secs_f64()
    );
    kill(&mut child, "after the last cycle");
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_xueji"))
            .args(["verify", "--data", data.to_str().expect("utf-8")])
            .args(store.iter().flat_map(|url| ["--store", url.as_str()]))
            .env_remove("XUEJI_STORE"),
        Duration::from_secs(120),
        "xueji verify",
    );
    assert!(out.status.success(), "{}", crate::process::text(&out));
}
