use std::collections::BTreeMap;
use std::sync::Arc;
use tempfile::TempDir;
use xueji::domain::student::NewStudentForm;
use xueji::domain::{Actor, Date, Guardian, Level, School, Student};
use xueji::engine::{Outcome, Xueji};
use xueji::policy::{PackageSet, PackageSource, PolicyRegistry, builtin_packages};
use xueji::store::Store;

/// A test district package: small, so engine tests do not depend on the seed packages' details.
pub const TEST_MANIFEST: &str = r#"
id = "test-district"
name = "测试区学籍管理办法"
extends = "national-k12"
version = "1"
effective_from = "2020-01-01"
rule_prefix = "test"
overrides = ["national_k12.review.school"]
[documents.t]
title = "测试区学籍管理办法"
"#;

pub const TEST_RULES: &str = r#"
// 第一条 休学须医院证明,学校和区教育局审批
rule(#{ id: "test.suspend.proof", on: ["suspend"], cites: "t 第一条", check: |c| {
    [require(["hospital_diagnosis"], "休学须提供医院诊断证明"),
     approve(["school", "district"], "休学须学校和区教育局审批"),
     deadline("resume_by", c.param("until"), "休学期满应复学")]
}});
// 第二条 调班由学校直接办理
rule(#{ id: "test.change_class.direct", on: ["change_class"], cites: "t 第二条", check: |c| {
    if c.param("class") == () { return deny("调班须填写新班级"); }
    allow("调班由学校办理")
}});
// 第四条 学籍注册和休学、复学、退学等变动由学籍管理员直接办理,不另经学校审核
// (本区明示不要国家规则的学校审核一步:替换 national_k12.review.school)
rule(#{ id: "test.review.registrar", on: ["register", "suspend", "resume", "drop_out", "return_from_dropout", "withdraw", "transfer_out", "expel", "revoke", "graduate", "complete", "leave_with_certificate", "record_death", "change_key_info"], cites: "t 第四条", replaces: "national_k12.review.school", check: |c| {
    allow("本区学籍注册和变动由学籍管理员直接办理")
}});
// 第三条 报到截止两周后未报到,视为放弃入学资格
rule(#{ id: "test.report.grace", on: ["forfeit_admission"], cites: "t 第三条", check: |c| {
    let due = c.student.deadlines.filter(|d| d.kind == "report_by");
    if due.len() == 0 { return deny("没有报到期限"); }
    if c.date <= add_weeks(due[0].date, 2) { return deny("报到截止后两周内不作放弃处理"); }
    allow("报到截止两周后仍未报到")
}});
"#;

pub fn test_packages() -> PackageSet {
    let mut set = builtin_packages();
    set.packages.retain(|id, _| id == "national-k12");
    let files: BTreeMap<String, String> = [
        ("policy.toml".to_owned(), TEST_MANIFEST.to_owned()),
        ("rules.rhai".to_owned(), TEST_RULES.to_owned()),
    ]
    .into();
    set.packages
        .insert("test-district".into(), PackageSource { files });
    set
}

/// The backend a test module tree keeps its stores on. The modules at the root of this binary
/// run on redb; `on_postgres` includes the same files again with every store on PostgreSQL
/// (issue #19: one test matrix, the same answers from both). Each tree's `helpers` names its
/// backend once, in the four functions that open a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Redb,
    Postgres,
}

pub struct TestEngine {
    pub xueji: Xueji,
    /// A temp folder of the test's own (backups, token files; the store file on redb).
    pub dir: TempDir,
    /// Where the store is kept: what opens it again after a restart (`Location::open`).
    pub store_at: xueji::engine::Location,
}

impl Backend {
    pub fn engine_with(self, set: &PackageSet) -> TestEngine {
        let dir = tempfile::tempdir().expect("temp dir");
        let store_at = match self {
            Backend::Redb => xueji::engine::Location::Folder(dir.path().to_owned()),
            Backend::Postgres => {
                xueji::engine::Location::Postgres(crate::pg_server::postgres_url())
            }
        };
        let registry = PolicyRegistry::from_packages(set)
            .unwrap_or_else(|e| panic!("packages compile: {e:?}"));
        TestEngine {
            xueji: Xueji::new(
                store_at
                    .open()
                    .unwrap_or_else(|e| panic!("store opens: {e}")),
                Arc::new(registry),
            ),
            dir,
            store_at,
        }
    }

    /// An engine with the test packages and two schools of the test district, `s1` and `s2`.
    pub fn engine(self) -> TestEngine {
        let t = self.engine_with(&test_packages());
        t.xueji
            .create_school(school("s1", Some("东区")))
            .expect("school");
        t.xueji
            .create_school(school("s2", Some("东区")))
            .expect("school");
        t
    }

    pub async fn spawn_server(self) -> TestServer {
        self.spawn_server_with(&test_packages()).await
    }

    pub async fn spawn_server_with(self, packages: &PackageSet) -> TestServer {
        let t = self.engine_with(packages);
        let backup_dir = t.dir.path().join("backups");
        let xueji = Arc::new(t.xueji);
        let (token, _) = xueji
            .create_token(xueji::auth::TokenRecord::new(xueji::auth::Role::Admin))
            .expect("admin token");
        let state = xueji::http::AppState {
            xueji: xueji.clone(),
            metrics: Arc::new(xueji::http::Metrics::default()),
            backup_dir: backup_dir.clone().into(),
        };
        let app = xueji::http::router(state, None);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(xueji::http::serve(listener, app, async {
            let _ = rx.await;
        }));
        TestServer {
            base,
            admin: token,
            client: reqwest::Client::new(),
            xueji,
            backup_dir,
            _dir: t.dir,
            _shutdown: tx,
        }
    }
}

pub fn engine_with(set: &PackageSet) -> TestEngine {
    Backend::Redb.engine_with(set)
}

pub fn engine() -> TestEngine {
    Backend::Redb.engine()
}

pub async fn spawn_server() -> TestServer {
    Backend::Redb.spawn_server().await
}

pub async fn spawn_server_with(packages: &PackageSet) -> TestServer {
    Backend::Redb.spawn_server_with(packages).await
}

pub fn school(id: &str, area: Option<&str>) -> School {
    School {
        id: id.into(),
        name: format!("测试学校{id}"),
        jurisdiction: "test-district".into(),
        area: area.map(str::to_owned),
        level: Level::Primary,
        kind: None,
        calendar: Vec::new(),
    }
}

pub fn registrar() -> Actor {
    Actor {
        id: "tok_registrar".into(),
        role: "registrar".into(),
    }
}

pub fn d(s: &str) -> Date {
    Date::parse(s).expect("test date")
}

/// A valid ID number for a birth date and sequence (check character computed).
pub fn id_card(birth: &str, seq: u32) -> String {
    let first17 = format!("110105{}{:03}", birth.replace('-', ""), seq % 1000);
    let c = xueji::domain::identity::check_character(first17.as_bytes());
    format!("{first17}{c}")
}

pub fn form(name: &str, id: &str) -> NewStudentForm {
    let birth = format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]);
    let male = (id.as_bytes()[16] - b'0') % 2 == 1;
    NewStudentForm {
        school: "s1".into(),
        name: name.into(),
        gender: if male { "male" } else { "female" }.into(),
        birth_date: birth,
        id_card: Some(id.into()),
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

/// Admits a student and returns it (status `admitted`).
pub fn admit(x: &Xueji, name: &str, seq: u32) -> Student {
    match x
        .admit(form(name, &id_card("2016-05-01", seq)), &registrar(), false)
        .expect("admit")
    {
        Outcome::Applied { student, .. } => *student,
        other => panic!("admit not applied: {other:?}"),
    }
}

/// Admits and registers a student (status `enrolled`).
pub fn enrolled(x: &Xueji, name: &str, seq: u32) -> Student {
    let s = admit(x, name, seq);
    let input = xueji::domain::TransitionInput::new(
        xueji::domain::TransitionKind::Register,
        d("2024-09-02"),
    );
    match x
        .transition(&s.id, input, &registrar(), false)
        .expect("register")
    {
        Outcome::Applied { student, .. } => *student,
        // A package that asks the school's review (national-k12 itself): each step approved.
        Outcome::Pending { request, .. } => {
            let leader = Actor {
                id: "tok_leader".into(),
                role: "school_leader".into(),
            };
            for step in &request.steps {
                x.approve(&request.id, *step, &leader, Some("同意".into()))
                    .expect("approve");
            }
            x.student(&s.id).expect("student")
        }
        other => panic!("register not applied: {other:?}"),
    }
}

/// A real server on 127.0.0.1 with a random port and a temp data folder.
pub struct TestServer {
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    pub xueji: Arc<Xueji>,
    /// Where `POST /v1/backups` writes.
    pub backup_dir: std::path::PathBuf,
    _dir: TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TestServer {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(m, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// Creates a token through the API as admin and returns the secret.
    pub async fn token(&self, body: serde_json::Value) -> String {
        let (status, v) = self
            .call("POST", "/v1/tokens", Some(&self.admin), Some(body))
            .await;
        assert_eq!(status, 201, "{v}");
        v["token"].as_str().expect("token").to_owned()
    }
}

/// Test cases for the test-district package, covering each of its rules both ways (the
/// activation gate requires it).
pub const TEST_CASES: &str = r#"
[[case]]
name = "休学材料齐全:学校和区教育局审批"
transition = { kind = "suspend", effective_date = "2025-03-02", params = { until = "2026-03-01" }, documents = [{ kind = "hospital_diagnosis" }] }
expect = { outcome = "pending", rules = ["test.suspend.proof"], approvals = ["school", "district"] }

[[case]]
name = "休学缺医院证明"
transition = { kind = "suspend", effective_date = "2025-03-02", params = { until = "2026-03-01" } }
expect = { outcome = "denied", missing_documents = ["hospital_diagnosis"] }

[[case]]
name = "调班"
transition = { kind = "change_class", effective_date = "2025-03-02", params = { class = "5" } }
expect = { outcome = "applied", rules = ["test.change_class.direct"] }

[[case]]
name = "调班未填班级"
transition = { kind = "change_class", effective_date = "2025-03-02" }
expect = { outcome = "denied", rules = ["test.change_class.direct"] }

[[case]]
name = "没有报到期限:不作放弃处理"
student = { status = "admitted" }
transition = { kind = "forfeit_admission", effective_date = "2024-09-20" }
sweep = true
expect = { outcome = "denied", rules = ["test.report.grace"] }

[[case]]
name = "注册由学籍管理员直接办理"
student = { status = "admitted" }
transition = { kind = "register", effective_date = "2024-09-02" }
expect = { outcome = "applied", rules = ["test.review.registrar"], approvals = [] }

[[case]]
name = "报到截止两周内"
student = { status = "admitted", deadlines = [{ kind = "report_by", date = "2024-09-05" }] }
transition = { kind = "forfeit_admission", effective_date = "2024-09-10" }
sweep = true
expect = { outcome = "denied", rules = ["test.report.grace"] }

[[case]]
name = "报到截止两周后"
student = { status = "admitted", deadlines = [{ kind = "report_by", date = "2024-09-05" }] }
transition = { kind = "forfeit_admission", effective_date = "2024-09-20" }
sweep = true
expect = { outcome = "applied", rules = ["test.report.grace"], changes = { status = "admission_forfeited" } }
"#;

/// The test-district package as an upload: files by path.
pub fn test_upload() -> serde_json::Map<String, serde_json::Value> {
    let mut files = serde_json::Map::new();
    files.insert("policy.toml".into(), TEST_MANIFEST.into());
    files.insert("rules.rhai".into(), TEST_RULES.into());
    files.insert("tests/cases.toml".into(), TEST_CASES.into());
    files
}

/// Opens the store file directly (no writer of ours) and runs `f` in one committed write
/// transaction: how tests alter what is stored behind the service's back, as an attacker with
/// the file would.
pub fn with_raw(path: &std::path::Path, f: impl FnOnce(&redb::WriteTransaction)) {
    use redb::Database;
    let db = Database::open(path).expect("open");
    let txn = db.begin_write().expect("txn");
    f(&txn);
    txn.commit().expect("commit");
}

/// The service on a store file again, with the test packages.
pub fn reopen(path: &std::path::Path) -> Xueji {
    let registry = PolicyRegistry::from_packages(&test_packages()).expect("compile");
    Xueji::new(Store::open(path).expect("reopen"), Arc::new(registry))
}

/// An event the server acknowledged over HTTP: student, sequence, hash, when the answer came.
pub type Ack = (String, u64, String, std::time::Instant);

/// Writers that each keep filing `change_class` for one student over HTTP until `stop`, keeping
/// every acknowledgement. `must_succeed`: any failure fails the test (a server that keeps
/// serving); otherwise a refused request is skipped and a lost connection ends the writer (a
/// server being killed).
pub fn class_change_writers(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    ids: &[String],
    must_succeed: bool,
    acks: &Arc<std::sync::Mutex<Vec<Ack>>>,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    ids.iter()
        .enumerate()
        .map(|(w, id)| {
            let (client, base, token, id, acks, stop) = (
                client.clone(),
                base.to_owned(),
                token.to_owned(),
                id.clone(),
                acks.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let class = format!("{}", (n + w as u32) % 5 + 1);
                    let body = serde_json::json!({"kind": "change_class",
                        "effective_date": "2025-01-01", "params": {"class": class}});
                    let sent = client
                        .post(format!("{base}/v1/students/{id}/transitions"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    let resp = match sent {
                        Ok(r) => r,
                        Err(e) if must_succeed => panic!("the server stopped answering: {e}"),
                        Err(_) => break,
                    };
                    if resp.status().as_u16() != 201 {
                        assert!(!must_succeed, "transition refused: {}", resp.status());
                        continue;
                    }
                    let v: serde_json::Value = match resp.json().await {
                        Ok(v) => v,
                        Err(e) if must_succeed => panic!("unreadable answer: {e}"),
                        Err(_) => break,
                    };
                    let seq = v["event"]["seq"].as_u64().expect("seq");
                    let hash = v["event"]["hash"].as_str().expect("hash").to_owned();
                    acks.lock().expect("lock").push((
                        id.clone(),
                        seq,
                        hash,
                        std::time::Instant::now(),
                    ));
                }
            })
        })
        .collect()
}

/// The table of events and their contexts by place in the log (schema 8), and a key of it or of
/// `timeline_steps`.
pub const EVENT_RECORDS: redb::TableDefinition<'static, &'static str, &'static [u8]> =
    redb::TableDefinition::new("event_records");

pub fn record_key(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

/// Rewrites a store in the layout of schema 7 (events, contexts and tally states each in a table
/// of their own, keyed by student; steps without the event's place in the log), as a store
/// written by an older build holds it; an older schema's own changes can be undone on top.
/// Opening it must move everything back.
pub fn as_schema_7(txn: &redb::WriteTransaction) {
    use redb::{ReadableTable, TableDefinition};
    type Raw = TableDefinition<'static, &'static str, &'static [u8]>;
    let rows_of = |table: Raw| -> Vec<(String, Vec<u8>)> {
        txn.open_table(table)
            .expect("table")
            .iter()
            .expect("iter")
            .map(|r| r.map(|(k, v)| (k.value().to_owned(), v.value().to_vec())))
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let leaves: Raw = TableDefinition::new("log_leaves");
    let names: std::collections::BTreeMap<String, String> = rows_of(leaves)
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v[32..].to_vec()).expect("name")))
        .collect();
    let rows = rows_of(EVENT_RECORDS);
    assert!(!rows.is_empty());
    for (k, v) in &rows {
        let (place, kind) = k.rsplit_once('\u{1f}').expect("kind");
        let name = &names[place];
        let table: Raw = match kind {
            "e" => TableDefinition::new("events"),
            "c" => TableDefinition::new("decision_contexts"),
            other => panic!("record kind {other:?}"),
        };
        txn.open_table(table)
            .expect("legacy table")
            .insert(name.as_str(), v.as_slice())
            .expect("insert");
    }
    txn.delete_table(EVENT_RECORDS).expect("drop records");
    let steps: Raw = TableDefinition::new("timeline_steps");
    let states: Raw = TableDefinition::new("tally_states");
    for (k, v) in rows_of(steps) {
        if let Some(student) = k.strip_suffix("\u{1f}~t") {
            txn.open_table(states)
                .expect("states")
                .insert(student, v.as_slice())
                .expect("insert");
            txn.open_table(steps)
                .expect("steps")
                .remove(k.as_str())
                .expect("remove");
        } else {
            let mut step: Vec<serde_json::Value> = serde_json::from_slice(&v).expect("step");
            assert_eq!(
                step.len(),
                8,
                "a step ends with its event's place in the log"
            );
            step.pop();
            let bytes = serde_json::to_vec(&step).expect("encode");
            txn.open_table(steps)
                .expect("steps")
                .insert(k.as_str(), bytes.as_slice())
                .expect("insert");
        }
    }
    // Schema 9 keyed the identity indexes by value and student; before, the value alone
    // named its one student.
    for name in ["idx_national_id", "idx_id_card", "idx_person"] {
        let table: Raw = TableDefinition::new(name);
        let rows = rows_of(table);
        txn.delete_table(table).expect("drop index");
        let mut t = txn.open_table(table).expect("index");
        for (k, _) in rows {
            let (value, student) = k.rsplit_once('\u{1f}').expect("student part");
            t.insert(value, student.as_bytes()).expect("insert");
        }
    }
    let meta: Raw = TableDefinition::new("meta");
    txn.open_table(meta)
        .expect("meta")
        .insert("schema_version", b"7".as_slice())
        .expect("schema 7");
}
