//! The real binary: first-start bootstrap, serving, logs free of personal data, a SIGTERM that
//! finishes in-flight work, exits 0 and loses no acknowledged write; backups, taken beside a
//! serving server by their own process, and restored.

use crate::helpers::{Ack, class_change_writers};
use crate::process::{
    CLI_LIMIT, EXIT_LIMIT, Reaped, exit_within, free_port, run_cli, serve, serve_command, text,
    wait_up,
};
use serde_json::json;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Waits until at least `n` writes are acknowledged, failing with what the writers said if one
/// of them ended (it only ends by failing while `stop` is unset) or after `limit`.
async fn acknowledged_at_least(
    acks: &Mutex<Vec<Ack>>,
    n: usize,
    writers: &mut [tokio::task::JoinHandle<()>],
    limit: Duration,
) {
    let start = Instant::now();
    while acks.lock().expect("lock").len() < n {
        for w in writers.iter_mut() {
            if w.is_finished() {
                let ended = w.await;
                panic!("a writer stopped before {n} writes were acknowledged: {ended:?}");
            }
        }
        assert!(
            start.elapsed() < limit,
            "only {} of {n} writes acknowledged within {limit:?}",
            acks.lock().expect("lock").len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn serve_bootstraps_logs_no_personal_data_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let port = free_port();
    let mut child = Reaped(
        serve_command(&data, None, port)
            .env_remove("XUEJI_ADMIN_TOKEN")
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    wait_up(&client, &base, &mut child).await;
    let token_file = data.join("admin.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file)
            .expect("admin.token")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let admin = std::fs::read_to_string(&token_file)
        .expect("token")
        .trim()
        .to_owned();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let r = post(
        "/v1/schools",
        json!({"id": "s1", "name": "一小", "jurisdiction": "national-k12", "level": "primary"}),
    )
    .await
    .expect("school");
    assert_eq!(r.status().as_u16(), 201);
    let id_card = "11010519491231002X";
    let r = post("/v1/students", json!({"school": "s1", "name": "欧阳秘密", "gender": "female", "birth_date": "1949-12-31", "id_card": id_card, "grade": 1, "entry_date": "2026-09-01", "extra": {"health": "癫痫病史"}})).await.expect("student");
    assert_eq!(r.status().as_u16(), 201);
    let student: serde_json::Value = r.json().await.expect("json");
    let sid = student["student"]["id"].as_str().expect("id").to_owned();
    // A bad request echoes input in its error body, but must not in the log.
    let r = post("/v1/students", json!({"school": "s1", "name": "欧阳秘密", "gender": "male", "birth_date": "1949-12-31", "id_card": id_card, "grade": 1, "entry_date": "2026-09-01"})).await.expect("bad student");
    let status = r.status().as_u16();
    let refused = r.text().await.expect("body");
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused.contains("id_card_gender_mismatch"),
        "refused for the wrong reason: {refused}"
    );

    // SIGTERM: exit 0, and the acknowledged student is on disk.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = exit_within(&mut child, EXIT_LIMIT, "the server after SIGTERM");
    assert!(exit.success(), "exit status {exit:?}");
    let mut log = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut log)
        .expect("read");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("read");
    assert!(log.contains("shutdown signal received"), "{log}");
    assert!(log.contains("admin.token"), "the token's path is logged");
    for secret in [admin.as_str(), id_card, "欧阳秘密", "癫痫", "1949-12-31"] {
        assert!(!log.contains(secret), "log contains {secret}:\n{log}");
    }
    let store = xueji::store::Store::open(&data.join("xueji.redb")).expect("reopen");
    assert!(
        store.student(&sid).expect("read").is_some(),
        "acknowledged write lost"
    );
}

#[test]
fn backup_and_restore_round_trip() {
    let t = crate::helpers::engine();
    let s = crate::helpers::enrolled(&t.xueji, "备份", 2);
    let backup = t.dir.path().join("backup.redb");
    let written =
        xueji::engine::audit::write_backup(t.xueji.store(), &backup).expect("backup while open");
    assert!(written.records > 10);
    assert_eq!(written.checkpoints.len(), 1);
    assert_eq!(
        written.checkpoints[0].size, 2,
        "admission and registration are logged"
    );
    assert_eq!(
        xueji::cli::read_checkpoints(&written.checkpoints_file).expect("checkpoints beside it"),
        written.checkpoints
    );
    // A second backup to the same file is refused, never overwritten.
    let len = std::fs::metadata(&backup).expect("copy").len();
    assert!(matches!(
        xueji::engine::audit::write_backup(t.xueji.store(), &backup),
        Err(xueji::store::StoreError::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::metadata(&backup).expect("copy").len(), len);
    let data = t.dir.path().join("restored");
    let run = |args: &[&str]| run_cli(args);
    // The built-in packages do not hold the test package: restore with a folder that does.
    let policies = t.dir.path().join("policies");
    for (id, src) in &crate::helpers::test_packages().packages {
        for (path, text) in &src.files {
            let p = policies.join(id).join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
    }
    let out = run(&[
        "restore",
        backup.to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
        "--policies",
        policies.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = xueji::store::Store::open(&data.join("xueji.redb")).expect("open restored");
    assert_eq!(
        restored.student(&s.id).expect("read"),
        Some(t.xueji.student(&s.id).expect("student"))
    );
    assert_eq!(restored.events(&s.id).expect("events").len(), 2);
    drop(restored);

    // An inspector's checkpoint taken after the backup reveals that the restored store is older.
    let mut input = xueji::domain::TransitionInput::new(
        xueji::domain::TransitionKind::ChangeClass,
        crate::helpers::d("2025-03-02"),
    );
    input.params.insert("class".into(), serde_json::json!("5"));
    t.xueji
        .transition(&s.id, input, &crate::helpers::registrar(), false)
        .expect("change class");
    let later = t.dir.path().join("later.checkpoints.json");
    xueji::cli::write_checkpoints(&later, &t.xueji.checkpoints().expect("checkpoints"))
        .expect("write");
    let verify_against = |checkpoints: &std::path::Path| {
        run(&[
            "verify",
            "--data",
            data.to_str().expect("utf-8"),
            "--policies",
            policies.to_str().expect("utf-8"),
            "--checkpoints",
            checkpoints.to_str().expect("utf-8"),
        ])
    };
    let own = verify_against(&xueji::cli::checkpoints_path(&backup));
    assert!(
        own.status.success(),
        "{}{}",
        String::from_utf8_lossy(&own.stdout),
        String::from_utf8_lossy(&own.stderr)
    );
    let rolled_back = verify_against(&later);
    let stdout = String::from_utf8_lossy(&rolled_back.stdout);
    assert!(!rolled_back.status.success(), "{stdout}");
    assert!(stdout.contains("rolled_back"), "{stdout}");
    // Restoring over an existing store is refused.
    let again = run(&[
        "restore",
        backup.to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
        "--policies",
        policies.to_str().expect("utf-8"),
    ]);
    assert!(!again.status.success());
}

/// Runs the `xueji` binary to completion off the async workers.
async fn xueji_cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || run_cli(&args))
        .await
        .expect("join")
}

/// `xueji backup` is its own process beside a serving `xueji serve` that keeps committing:
/// it succeeds, and its copy, restored into a fresh data folder, verifies (chains, decisions,
/// logs against the checkpoints written with it) and holds every transition acknowledged before
/// the backup started. Then, with the server killed and the file left unclean, a backup is
/// refused with its code and leaves no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_beside_a_serving_server_holds_every_write_acknowledged_before_it() {
    const ADMIN: &str = "backup-test-admin-token-0123456789";
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = serve(&data, port, ADMIN);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    wait_up(&client, &base, &mut server).await;
    let post = |path: String, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(ADMIN)
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
    for i in 0..4u32 {
        let first17 = format!("11010520120101{:03}", i * 2 + 1);
        let id_card = format!(
            "{first17}{}",
            xueji::domain::identity::check_character(first17.as_bytes())
        );
        let r = post("/v1/students".into(), json!({"school": "s1", "name": format!("备份{i}"), "gender": "male", "birth_date": "2012-01-01", "id_card": id_card, "grade": 1, "class": "1", "entry_date": "2024-09-01"})).await.expect("admit");
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

    // Four writers keep committing class changes; each acknowledgement is kept with its instant.
    let acks: Arc<Mutex<Vec<Ack>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = class_change_writers(&client, &base, ADMIN, &ids, true, &acks, &stop);
    acknowledged_at_least(&acks, 40, &mut writers, CLI_LIMIT).await;

    // The backup, as its own process, while the writers go on.
    let out = dir.path().join("copy.redb");
    let began = Instant::now();
    let backup = xueji_cli(vec![
        "backup".into(),
        "--data".into(),
        data.display().to_string(),
        out.display().to_string(),
    ])
    .await;
    let ended = Instant::now();
    assert!(backup.status.success(), "backup failed: {}", text(&backup));
    // The server goes on serving after the backup, too.
    let after_backup = acks.lock().expect("lock").len();
    acknowledged_at_least(&acks, after_backup + 10, &mut writers, CLI_LIMIT).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let acks = acks.lock().expect("lock").clone();
    let before: Vec<&Ack> = acks.iter().filter(|a| a.3 < began).collect();
    let during = acks.iter().filter(|a| a.3 >= began && a.3 <= ended).count();
    println!(
        "backup beside the server: {} ms, {} transitions acknowledged before it, {during} while it ran, {} in all",
        (ended - began).as_millis(),
        before.len(),
        acks.len()
    );

    // Restored into a fresh folder: `restore` verifies chains, decisions and the logs against
    // the checkpoints written beside the copy before it puts the copy in place.
    let restored = dir.path().join("restored");
    let restore = xueji_cli(vec![
        "restore".into(),
        out.display().to_string(),
        "--data".into(),
        restored.display().to_string(),
    ])
    .await;
    let said = text(&restore);
    assert!(restore.status.success(), "restore failed: {said}");
    assert!(
        said.contains("✓ log of national-k12") && said.contains("checked against the checkpoint"),
        "{said}"
    );
    let checkpoints =
        xueji::cli::read_checkpoints(&xueji::cli::checkpoints_path(&out)).expect("checkpoints");
    let verify = xueji_cli(vec![
        "verify".into(),
        "--data".into(),
        restored.display().to_string(),
        "--checkpoints".into(),
        xueji::cli::checkpoints_path(&out).display().to_string(),
    ])
    .await;
    assert!(verify.status.success(), "{}", text(&verify));

    let store = xueji::store::Store::open(&restored.join("xueji.redb")).expect("open restored");
    for (student, seq, hash, _) in &before {
        let events = store.events(student).expect("events");
        assert!(
            events
                .get((*seq - 1) as usize)
                .is_some_and(|e| e.hash == *hash),
            "{student}#{seq}, acknowledged before the backup began, is not in the copy"
        );
    }
    // The copy is one commit: the log's size in its checkpoint is the number of its events.
    let events: usize = ids
        .iter()
        .map(|id| store.events(id).expect("events").len())
        .sum();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(checkpoints[0].size, events as u64);
    assert!(events >= 8 + before.len(), "{events} events in the copy");
    drop(store);
    // With no server at all, on a cleanly closed store, it works the same.
    let again = dir.path().join("again.redb");
    let offline = xueji_cli(vec![
        "backup".into(),
        "--data".into(),
        restored.display().to_string(),
        again.display().to_string(),
    ])
    .await;
    assert!(offline.status.success(), "{}", text(&offline));
    assert_eq!(
        xueji::cli::read_checkpoints(&xueji::cli::checkpoints_path(&again)).expect("checkpoints")
            [0]
        .size,
        checkpoints[0].size
    );

    // Killed, the server leaves the file unclean: a read-only open cannot recover it, and says
    // so with its code; nothing is written.
    assert!(
        server.try_wait().expect("try_wait").is_none(),
        "the server exited on its own while serving"
    );
    server.kill().expect("SIGKILL");
    let killed = exit_within(&mut server, EXIT_LIMIT, "the server after SIGKILL");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(killed.signal(), Some(9), "{killed:?}");
    }
    #[cfg(not(unix))]
    assert!(!killed.success(), "{killed:?}");
    let refused_out = dir.path().join("refused.redb");
    let refused = xueji_cli(vec![
        "backup".into(),
        "--data".into(),
        data.display().to_string(),
        refused_out.display().to_string(),
    ])
    .await;
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("store_needs_recovery"),
        "{}",
        text(&refused)
    );
    assert!(!refused_out.exists());
    assert!(!xueji::cli::checkpoints_path(&refused_out).exists());
    // No store at all: refused with its code, and none is created.
    let nowhere = dir.path().join("nowhere");
    let missing = xueji_cli(vec![
        "backup".into(),
        "--data".into(),
        nowhere.display().to_string(),
        refused_out.display().to_string(),
    ])
    .await;
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("store_missing"),
        "{}",
        text(&missing)
    );
    assert!(!nowhere.exists() && !refused_out.exists());
}
