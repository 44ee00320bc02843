//! Issue #14, the holes around `Idempotency-Key`, list queries, backups and connections: what a
//! caller without a valid token can make the server store or replay, secrets in stored answers,
//! and connections that never end.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Sends `method path` with an `Idempotency-Key`, an optional bearer token and JSON body;
/// returns the status, whether the answer was a replay, and the body.
async fn keyed(
    s: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    key: &str,
    body: Option<&Value>,
) -> (u16, bool, Value) {
    let mut req = s
        .client
        .request(method, format!("{}{path}", s.base))
        .header("Idempotency-Key", key);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let replayed = resp.headers().contains_key("idempotent-replay");
    let text = resp.text().await.expect("body");
    (
        status,
        replayed,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Every byte of the data folder (the redb file and anything beside it).
fn data_bytes(s: &TestServer) -> Vec<u8> {
    let dir = s.backup_dir.parent().expect("data folder");
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read data folder") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            all.extend(std::fs::read(&path).expect("read"));
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn change_class(class: &str) -> Value {
    json!({"kind": "change_class", "effective_date": "2025-03-02", "params": {"class": class}})
}

#[tokio::test]
async fn a_write_no_handler_served_or_no_valid_token_made_is_never_stored_nor_replayed() {
    let s = spawn_server().await;
    let long = format!("/v1/{}", "x".repeat(10_000));
    let school =
        json!({"id": "s9", "name": "九中", "jurisdiction": "test-district", "level": "junior"});
    let cases: [(&str, Method, &str, Option<&str>, u16); 5] = [
        ("no token, unknown path", Method::POST, &long, None, 404),
        ("no token, a route", Method::POST, "/v1/schools", None, 401),
        (
            "unknown token, a route",
            Method::POST,
            "/v1/schools",
            Some("not-a-token"),
            401,
        ),
        (
            "admin, an unserved verb",
            Method::PATCH,
            "/v1/students",
            Some(&s.admin),
            405,
        ),
        (
            "admin, unknown path",
            Method::POST,
            &long,
            Some(&s.admin),
            404,
        ),
    ];
    for (what, method, path, token, status) in cases {
        let key = format!("k-{what}");
        let first = keyed(&s, method.clone(), path, token, &key, Some(&school)).await;
        let again = keyed(&s, method, path, token, &key, Some(&school)).await;
        assert_eq!(first.0, status, "{what}: {first:?}");
        assert_eq!(again.0, status, "{what}: {again:?}");
        assert!(
            !again.1,
            "{what}: replayed an answer that must not be stored"
        );
    }
    assert!(
        s.xueji.store().school("s9").expect("read").is_none(),
        "nothing was created"
    );
    assert_eq!(s.xueji.store().idempotent_answers().expect("count"), 0);
}

#[tokio::test]
async fn a_stored_answer_is_keyed_by_a_digest_whatever_the_path_and_key() {
    let s = spawn_server().await;
    // A matched route whose handler answers 404: stored, but under a bounded key.
    let path = format!("/v1/students/{}/transitions", "x".repeat(10_000));
    let key = "k".repeat(200);
    let body = change_class("5");
    let first = keyed(&s, Method::POST, &path, Some(&s.admin), &key, Some(&body)).await;
    let again = keyed(&s, Method::POST, &path, Some(&s.admin), &key, Some(&body)).await;
    assert_eq!((first.0, again.0), (404, 404));
    assert!(again.1, "an answer of a handler is replayed");
    assert_eq!(s.xueji.store().idempotent_answers().expect("count"), 1);
    // The answer (which names the id it did not find) and a few dozen bytes: no path, no key.
    let answer = first.2.to_string().len() as u64;
    let bytes = s.xueji.store().idempotent_bytes().expect("bytes");
    assert!(
        bytes < answer + 300,
        "{bytes} bytes stored for an answer of {answer}, a 10,000-character path and a 200-character key"
    );
}

#[tokio::test]
async fn a_revoked_token_gets_401_never_a_stored_answer() {
    let s = spawn_server().await;
    s.xueji
        .create_school(school("s1", Some("东区")))
        .expect("s1");
    let student = enrolled(&s.xueji, "甲", 1);
    let registrar = s.token(json!({"role": "registrar", "school": "s1"})).await;
    let path = format!("/v1/students/{}/transitions", student.id);
    let body = change_class("5");
    let first = keyed(
        &s,
        Method::POST,
        &path,
        Some(&registrar),
        "k-1",
        Some(&body),
    )
    .await;
    assert_eq!(first.0, 201, "{first:?}");
    let again = keyed(
        &s,
        Method::POST,
        &path,
        Some(&registrar),
        "k-1",
        Some(&body),
    )
    .await;
    assert_eq!((again.0, again.1), (201, true), "a retry is replayed");

    // Another valid token with the same key does not get the registrar's answer.
    let other = keyed(&s, Method::POST, &path, Some(&s.admin), "k-1", Some(&body)).await;
    assert!(!other.1, "{other:?}");

    let me = s
        .xueji
        .authenticate(&registrar)
        .expect("read")
        .expect("valid");
    let (status, _) = s
        .call(
            "DELETE",
            &format!("/v1/tokens/{}", me.id),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let after = keyed(
        &s,
        Method::POST,
        &path,
        Some(&registrar),
        "k-1",
        Some(&body),
    )
    .await;
    assert_eq!(after.0, 401, "{after:?}");
    assert!(!after.1, "a revoked token got a stored answer back");
    assert_eq!(after.2["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn a_token_creation_is_replayed_without_its_secret_and_the_secret_is_stored_nowhere() {
    let s = spawn_server().await;
    let body = json!({"role": "admin", "label": "运维"});
    let first = keyed(
        &s,
        Method::POST,
        "/v1/tokens",
        Some(&s.admin),
        "t-1",
        Some(&body),
    )
    .await;
    assert_eq!(first.0, 201, "{first:?}");
    let secret = first.2["token"]
        .as_str()
        .expect("the token, shown once")
        .to_owned();
    assert!(s.xueji.authenticate(&secret).expect("read").is_some());

    let again = keyed(
        &s,
        Method::POST,
        "/v1/tokens",
        Some(&s.admin),
        "t-1",
        Some(&body),
    )
    .await;
    assert_eq!((again.0, again.1), (201, true), "{again:?}");
    assert_eq!(
        again.2["id"], first.2["id"],
        "the same token, not a second one"
    );
    assert_eq!(again.2["token"], Value::Null, "{again:?}");
    assert_eq!(again.2["token_withheld"], true, "{again:?}");
    assert!(
        !contains(&data_bytes(&s), secret.as_bytes()),
        "the token is in the data folder"
    );
}

/// `[]` is not "no body": a backup takes none, `null` or `{}`.
#[tokio::test]
async fn a_backup_takes_no_array() {
    let s = spawn_server().await;
    for body in ["[]", "[{}]", "\"\"", "0", "false"] {
        let resp = s
            .client
            .post(format!("{}/v1/backups", s.base))
            .bearer_auth(&s.admin)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.expect("json");
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["code"], "invalid_field", "{body}: {v}");
    }
    let written = std::fs::read_dir(&s.backup_dir)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(written, 0, "a refused backup wrote a file");
    for body in ["", "null", "{}"] {
        let resp = s
            .client
            .post(format!("{}/v1/backups", s.base))
            .bearer_auth(&s.admin)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 201, "{body:?}");
    }
}

/// Invalid UTF-8, NUL and U+202E in any list's text parameter: 400 `invalid_query` naming it.
#[tokio::test]
async fn list_queries_refuse_invalid_utf8_nul_and_bidi_controls() {
    let s = spawn_server().await;
    s.xueji
        .create_school(school("s1", Some("东区")))
        .expect("s1");
    let student = enrolled(&s.xueji, "甲", 1);
    let events = format!("/v1/students/{}/events", student.id);
    let lists: Vec<(&str, &str)> = vec![
        ("/v1/students", "school"),
        ("/v1/students", "jurisdiction"),
        ("/v1/students", "class"),
        ("/v1/students", "q"),
        ("/v1/students", "cursor"),
        ("/v1/requests", "school"),
        ("/v1/requests", "jurisdiction"),
        ("/v1/requests", "cursor"),
        ("/v1/checkpoints", "cursor"),
        (&events, "cursor"),
        ("/v1/schools/s1/roster", "cursor"),
        ("/v1/stats", "school"),
        ("/v1/stats", "jurisdiction"),
    ];
    for (path, field) in lists {
        for (what, value) in [
            ("invalid UTF-8", "%FF"),
            ("invalid UTF-8 inside text", "a%C3%28b"),
            ("NUL", "a%00b"),
            ("U+202E", "%E2%80%AEs1"),
            ("a line break", "s1%0A"),
        ] {
            let (status, v) = s
                .call(
                    "GET",
                    &format!("{path}?{field}={value}"),
                    Some(&s.admin),
                    None,
                )
                .await;
            assert_eq!(status, 400, "{path}?{field}= {what}: {v}");
            assert_eq!(v["error"]["code"], "invalid_query", "{path} {what}: {v}");
            assert_eq!(v["error"]["details"]["field"], field, "{path} {what}: {v}");
        }
    }
    // Ordinary text, percent-encoded or with `+` for a space, still reads.
    let (status, v) = s
        .call(
            "GET",
            "/v1/students?q=%E7%94%B2&school=s1",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{v}");
    let (status, v) = s
        .call(
            "GET",
            "/v1/students?school=s1&class=a+b",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

// ---- connections: timeouts and a limit ----------------------------------------------------

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use xueji::http::ServeConfig;

/// Long enough for any machine to do what must happen "soon"; never reached when it does.
const PATIENCE: Duration = Duration::from_secs(20);

/// The real router served with `config` on 127.0.0.1; stops when dropped.
struct Limited {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _engine: tempfile::TempDir,
}

async fn spawn_limited(config: ServeConfig) -> Limited {
    let t = engine_with(&test_packages());
    let state = xueji::http::AppState {
        xueji: Arc::new(t.xueji),
        metrics: Arc::new(xueji::http::Metrics::default()),
        backup_dir: t.dir.path().join("backups").into(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = xueji::http::router(state, None);
    let served = tokio::spawn(xueji::http::serve_with(listener, app, config, async {
        let _ = rx.await;
    }));
    Limited {
        addr,
        stop: Some(tx),
        served,
        _engine: t.dir,
    }
}

fn limits(header_ms: u64, idle_ms: u64, max_connections: usize) -> ServeConfig {
    ServeConfig {
        header_read_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        max_connections,
    }
}

// tokio's io-util is not among the crate's features: plain readiness-based reads and writes.
async fn read_some(stream: &TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        stream.readable().await?;
        match stream.try_read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) {
    while !data.is_empty() {
        stream.writable().await.expect("writable");
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// Reads one HTTP/1.1 answer (head and `Content-Length` body) and returns its status.
async fn read_answer(stream: &mut TcpStream) -> u16 {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .expect("a status");
            }
        }
        let n = read_some(stream, &mut chunk).await.expect("read");
        assert!(
            n > 0,
            "closed before a whole answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Asks for `/healthz` and reads the status, failing after `PATIENCE` rather than waiting for
/// ever on a server that took the connection but never answers.
async fn healthz(stream: &mut TcpStream) -> u16 {
    let ask = async {
        write_all(stream, b"GET /healthz HTTP/1.1\r\nHost: xueji\r\n\r\n").await;
        read_answer(stream).await
    };
    tokio::time::timeout(PATIENCE, ask)
        .await
        .unwrap_or_else(|_| panic!("no answer to /healthz within {PATIENCE:?}"))
}

/// Whether the server closes the connection (end of stream or reset) within `PATIENCE`,
/// reading and discarding anything it sends first.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match read_some(stream, &mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_half_sent_request_and_a_silent_connection_are_closed_after_the_header_timeout() {
    let server = spawn_limited(limits(300, 60_000, 16)).await;
    let mut half = TcpStream::connect(server.addr).await.expect("connect");
    write_all(&half, b"GET /healthz HTT").await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    assert!(
        closed_by_server(&mut half).await,
        "a half-sent request line kept open"
    );
    assert!(
        closed_by_server(&mut silent).await,
        "a connection that sent nothing kept open"
    );
    // The server goes on answering.
    let mut fresh = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(healthz(&mut fresh).await, 200);
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_when_idle_not_while_it_waits_less() {
    // Idle timeout short: the connection is closed after its answer.
    let server = spawn_limited(limits(30_000, 300, 16)).await;
    let mut conn = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(healthz(&mut conn).await, 200);
    assert!(
        closed_by_server(&mut conn).await,
        "an idle connection kept open"
    );

    // Header timeout short, idle long: waiting between requests is idling, not a slow head.
    let server = spawn_limited(limits(300, 30_000, 16)).await;
    let mut conn = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(healthz(&mut conn).await, 200);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        healthz(&mut conn).await,
        200,
        "closed while idle for less than the idle timeout"
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_while_accepted_ones_are_answered() {
    let server = spawn_limited(limits(30_000, 30_000, 2)).await;
    let mut a = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(healthz(&mut a).await, 200);
    let mut b = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(healthz(&mut b).await, 200);

    // A third connection is not served while two are open…
    let mut c = TcpStream::connect(server.addr)
        .await
        .expect("the backlog takes it");
    write_all(&c, b"GET /healthz HTTP/1.1\r\nHost: xueji\r\n\r\n").await;
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), read_some(&c, &mut byte)).await;
    assert!(
        early.is_err(),
        "a connection beyond the limit was served: {early:?}"
    );
    // …while the accepted ones still are.
    assert_eq!(healthz(&mut a).await, 200);

    // Once one closes, the waiting one is served.
    drop(b);
    let status = tokio::time::timeout(PATIENCE, read_answer(&mut c))
        .await
        .expect("served once a slot was free");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_returns() {
    let mut server = spawn_limited(limits(30_000, 30_000, 16)).await;
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    assert_eq!(healthz(&mut idle).await, 200);
    drop(server.stop.take());
    let served = tokio::time::timeout(PATIENCE, &mut server.served)
        .await
        .expect("serve returns after shutdown")
        .expect("task");
    assert!(served.is_ok(), "{served:?}");
    assert!(closed_by_server(&mut idle).await);
}

#[tokio::test]
async fn handlers_still_see_the_peer_address() {
    use axum::extract::ConnectInfo;
    let app = axum::Router::new().route(
        "/peer",
        axum::routing::get(
            |ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(xueji::http::serve_with(
        listener,
        app,
        ServeConfig::default(),
        async {
            let _ = rx.await;
        },
    ));
    let conn = TcpStream::connect(addr).await.expect("connect");
    let me = conn.local_addr().expect("local");
    write_all(&conn, b"GET /peer HTTP/1.1\r\nHost: xueji\r\n\r\n").await;
    let mut buf = vec![0u8; 4096];
    let mut got = String::new();
    while !got.contains(&me.to_string()) {
        let n = tokio::time::timeout(PATIENCE, read_some(&conn, &mut buf))
            .await
            .expect("answer")
            .expect("read");
        assert!(n > 0, "{got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

// ---- stored answers expire ----------------------------------------------------------------

use xueji::store::idempotency::{TTL_SECS, unix_now};

fn put(store: &xueji::store::Store, digest: &str, answer: &[u8], at: u64) {
    store
        .submit(xueji::store::Command::PutIdempotent {
            key: digest.into(),
            value: answer.to_vec(),
            at,
        })
        .expect("stored");
}

#[test]
fn stored_answers_expire_after_a_day_and_the_writer_purges_them() {
    let t = engine();
    let store = t.xueji.store();
    let t0 = 1_800_000_000;
    put(store, "d1", b"first", t0);
    put(store, "d1", b"second", t0 + 20);
    let read = |digest: &str, at: u64| store.idempotent(digest, at).expect("read");
    assert_eq!(
        read("d1", t0 + TTL_SECS - 1),
        Some(b"first".to_vec()),
        "the first answer wins"
    );
    assert_eq!(
        read("d1", t0 + TTL_SECS),
        None,
        "a day later a retry runs anew"
    );
    put(store, "d1", b"again", t0 + TTL_SECS);
    assert_eq!(read("d1", t0 + TTL_SECS + 1), Some(b"again".to_vec()));

    for i in 0..20 {
        put(store, &format!("old{i}"), b"x", t0 + 100);
    }
    assert_eq!(store.idempotent_answers().expect("count"), 21);
    // Each answer stored removes a few expired ones: three remove all twenty.
    for i in 0..3 {
        put(store, &format!("new{i}"), b"y", t0 + 100 + TTL_SECS + i);
    }
    assert_eq!(
        store.idempotent_answers().expect("count"),
        4,
        "d1's newer answer and the three new ones are left"
    );
    assert_eq!(read("d1", t0 + TTL_SECS + 200), Some(b"again".to_vec()));
}

#[test]
fn opening_the_store_removes_expired_answers_and_what_earlier_versions_stored() {
    let TestEngine { xueji, dir, .. } = engine();
    let path = dir.path().join("xueji.redb");
    let now = unix_now();
    put(xueji.store(), "stale", b"x", now - TTL_SECS - 5);
    put(xueji.store(), "fresh", b"y", now - 5);
    drop(xueji);
    // What an earlier version stored: the raw path and key in the key, a created token's secret
    // in the answer.
    let legacy = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\u{1f}POST\u{1f}/v1/tokens\u{1f}k";
    with_raw(&path, |txn| {
        let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("idempotency");
        let mut t = txn.open_table(table).expect("table");
        t.insert(
            legacy,
            br#"{"status":201,"body":"{\"token\":\"xj_secret\"}"}"#.as_slice(),
        )
        .expect("insert");
    });
    let xueji = reopen(&path);
    let store = xueji.store();
    assert_eq!(store.idempotent_answers().expect("count"), 1);
    assert_eq!(
        store.idempotent("fresh", now).expect("read"),
        Some(b"y".to_vec())
    );
    assert_eq!(store.idempotent("stale", now).expect("read"), None);
    assert!(
        store.idempotent_bytes().expect("bytes") < 200,
        "the earlier version's record is gone"
    );
}
