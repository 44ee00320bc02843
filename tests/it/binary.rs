//! The real binary: first-start bootstrap, serving, logs free of personal data, and a SIGTERM
//! that finishes in-flight work, exits 0 and loses no acknowledged write.

use serde_json::json;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test]
async fn serve_bootstraps_logs_no_personal_data_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xueji"))
        .args([
            "serve",
            "--data",
            data.to_str().expect("utf-8"),
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("XUEJI_ADMIN_TOKEN")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let start = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let _ = post("/v1/students", json!({"school": "s1", "name": "欧阳秘密", "gender": "male", "birth_date": "1949-12-31", "id_card": id_card, "grade": 1, "entry_date": "2026-09-01"})).await;

    // SIGTERM: exit 0, and the acknowledged student is on disk.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
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
    let (rows, checkpoints) = t
        .xueji
        .store()
        .backup_to(&backup)
        .expect("backup while open");
    assert!(rows > 10);
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(
        checkpoints[0].size, 2,
        "admission and registration are logged"
    );
    xueji::cli::write_checkpoints(&xueji::cli::checkpoints_path(&backup), &checkpoints)
        .expect("checkpoints beside the backup");
    // A second backup to the same file is refused, never overwritten.
    assert!(t.xueji.store().backup_to(&backup).is_err());
    let data = t.dir.path().join("restored");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xueji"))
            .args(args)
            .output()
            .expect("run")
    };
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
