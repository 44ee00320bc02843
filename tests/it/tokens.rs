//! Tokens (issue #14): one set of rules for `POST /v1/tokens` and `xueji token create`,
//! listing and revocation by scope, expiry, rotation of `XUEJI_ADMIN_TOKEN`, answers that do not
//! tell an out-of-scope school from a missing one; files that hold personal data kept 0600 in
//! 0700 folders; `xueji restore` refusing a tampered backup and leaving nothing behind.

use crate::helpers::{
    EVENT_RECORDS, TestServer, engine, engine_with, enrolled, form, id_card, registrar,
    spawn_server, with_raw,
};
use crate::process::{Reaped, free_port, run_cli, serve, stop, text, wait_up};
use serde_json::{Value, json};
use std::path::Path;
use xueji::auth::{Role, TokenRecord};
use xueji::domain::{Level, School};
use xueji::engine::{Outcome, Xueji};

const J: &str = "test-district";
const OTHER_J: &str = "national-k12";

fn school(id: &str, jurisdiction: &str, area: Option<&str>) -> School {
    School {
        id: id.into(),
        name: format!("学校{id}"),
        jurisdiction: jurisdiction.into(),
        area: area.map(str::to_owned),
        level: Level::Primary,
        kind: None,
        calendar: Vec::new(),
    }
}

fn admit_at(x: &Xueji, school_id: &str, seq: u32) -> String {
    let mut f = form("学生", &id_card("2016-05-01", seq));
    f.school = school_id.into();
    match x.admit(f, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => student.id,
        other => panic!("not applied: {other:?}"),
    }
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A server with two jurisdictions: `ea` (东区) and `we` (西区) in the test district, `nk` in
/// the national one; a student in `ea` and one in `we`; officer tokens for 东区, the whole
/// test district and the national jurisdiction.
struct Scoped {
    s: TestServer,
    area: String,
    jur: String,
    other: String,
    student_ea: String,
    student_we: String,
}

async fn scoped() -> Scoped {
    let s = spawn_server().await;
    for sc in [
        school("ea", J, Some("东区")),
        school("we", J, Some("西区")),
        school("nk", OTHER_J, None),
    ] {
        s.xueji.create_school(sc).expect("school");
    }
    let student_ea = admit_at(&s.xueji, "ea", 1);
    let student_we = admit_at(&s.xueji, "we", 2);
    let area = s
        .token(json!({"role": "district_officer", "jurisdiction": J, "area": "东区"}))
        .await;
    let jur = s
        .token(json!({"role": "district_officer", "jurisdiction": J}))
        .await;
    let other = s
        .token(json!({"role": "district_officer", "jurisdiction": OTHER_J}))
        .await;
    Scoped {
        s,
        area,
        jur,
        other,
        student_ea,
        student_we,
    }
}

impl Scoped {
    async fn mint(&self, by: &str, body: Value) -> (u16, Value) {
        self.s
            .call("POST", "/v1/tokens", Some(by), Some(body))
            .await
    }
}

#[tokio::test]
async fn officers_cannot_mint_tokens_outside_their_scope() {
    let t = scoped().await;
    let missing_school = t
        .mint(&t.area, json!({"role": "registrar", "school": "nowhere"}))
        .await;
    assert_eq!(missing_school.0, 400, "{}", missing_school.1);
    assert_eq!(missing_school.1["error"]["code"], "unknown_school");
    // Another area's school, another jurisdiction's school: the answer of a missing school, to
    // the byte (nothing tells the officer the school exists).
    for (by, school_id) in [
        (&t.area, "we"),
        (&t.area, "nk"),
        (&t.jur, "nk"),
        (&t.other, "ea"),
    ] {
        let got = t
            .mint(by, json!({"role": "registrar", "school": school_id}))
            .await;
        assert_eq!(got.0, missing_school.0, "{school_id}: {}", got.1);
        assert_eq!(got.1, missing_school.1, "{school_id}");
    }
    // A guardian token for a student out of scope is answered like a missing student.
    let missing_student = t
        .mint(
            &t.area,
            json!({"role": "guardian", "student": "stu_nobody"}),
        )
        .await;
    assert_eq!(missing_student.0, 400, "{}", missing_student.1);
    assert_eq!(missing_student.1["error"]["code"], "unknown_student");
    let out = t
        .mint(
            &t.area,
            json!({"role": "guardian", "student": t.student_we}),
        )
        .await;
    assert_eq!(out, missing_student);
    let out = t
        .mint(
            &t.other,
            json!({"role": "guardian", "student": t.student_ea}),
        )
        .await;
    assert_eq!(out, missing_student);
    // Wider or other roles and scopes: refused for the role (jurisdictions are public).
    for (by, body) in [
        (&t.area, json!({"role": "admin"})),
        (&t.jur, json!({"role": "admin"})),
        (
            &t.area,
            json!({"role": "district_officer", "jurisdiction": J}),
        ),
        (
            &t.area,
            json!({"role": "district_officer", "jurisdiction": J, "area": "西区"}),
        ),
        (
            &t.jur,
            json!({"role": "district_officer", "jurisdiction": OTHER_J}),
        ),
        (
            &t.other,
            json!({"role": "district_officer", "jurisdiction": J, "area": "东区"}),
        ),
    ] {
        let (status, v) = t.mint(by, body.clone()).await;
        assert_eq!(status, 403, "{body}: {v}");
        assert_eq!(v["error"]["code"], "forbidden", "{body}");
    }
    // A school-level token cannot mint at all.
    let registrar = t
        .mint(&t.area, json!({"role": "registrar", "school": "ea"}))
        .await;
    assert_eq!(registrar.0, 201, "{}", registrar.1);
    let secret = registrar.1["token"].as_str().expect("token");
    let (status, v) = t
        .mint(secret, json!({"role": "registrar", "school": "ea"}))
        .await;
    assert_eq!((status, &v["error"]["code"]), (403, &json!("forbidden")));
    // Inside the scope it works: the 东区 officer for its school and student, the
    // jurisdiction's officer for an area officer and a school in any of its areas.
    for (by, body) in [
        (
            &t.area,
            json!({"role": "guardian", "student": t.student_ea}),
        ),
        (
            &t.area,
            json!({"role": "district_officer", "jurisdiction": J, "area": "东区"}),
        ),
        (
            &t.jur,
            json!({"role": "district_officer", "jurisdiction": J, "area": "西区"}),
        ),
        (
            &t.jur,
            json!({"role": "head_teacher", "school": "we", "class": "1"}),
        ),
    ] {
        let (status, v) = t.mint(by, body.clone()).await;
        assert_eq!(status, 201, "{body}: {v}");
        assert_eq!(
            v["jurisdiction"], J,
            "the jurisdiction comes from the school"
        );
    }
}

#[tokio::test]
async fn officers_cannot_revoke_tokens_outside_their_scope() {
    let t = scoped().await;
    let (_, we_registrar) = t
        .mint(&t.jur, json!({"role": "registrar", "school": "we"}))
        .await;
    let (_, nk_registrar) = t
        .mint(&t.other, json!({"role": "registrar", "school": "nk"}))
        .await;
    let id_of = |v: &Value| v["id"].as_str().expect("id").to_owned();
    let secret_of = |v: &Value| v["token"].as_str().expect("token").to_owned();
    let admin_id =
        t.s.xueji
            .authenticate(&t.s.admin)
            .expect("auth")
            .expect("admin")
            .id;
    let jur_id =
        t.s.xueji
            .authenticate(&t.jur)
            .expect("auth")
            .expect("officer")
            .id;
    let nobody =
        t.s.call("DELETE", "/v1/tokens/tok_nobody", Some(&t.area), None)
            .await;
    assert_eq!(nobody.0, 404);
    let shape = |v: &Value, id: &str| v.to_string().replace(id, "ID");
    for (by, id) in [
        (&t.area, id_of(&we_registrar)),
        (&t.area, jur_id.clone()),
        (&t.area, admin_id.clone()),
        (&t.jur, id_of(&nk_registrar)),
        (&t.jur, admin_id.clone()),
        (&t.other, id_of(&we_registrar)),
    ] {
        let (status, v) =
            t.s.call("DELETE", &format!("/v1/tokens/{id}"), Some(by), None)
                .await;
        assert_eq!(status, 404, "{id}: {v}");
        assert_eq!(shape(&v, &id), shape(&nobody.1, "tok_nobody"), "{id}");
    }
    // Nothing was revoked.
    for secret in [
        secret_of(&we_registrar),
        secret_of(&nk_registrar),
        t.jur.clone(),
    ] {
        let (status, _) = t.s.call("GET", "/v1/tokens", Some(&t.jur), None).await;
        assert_eq!(status, 200);
        assert!(
            t.s.xueji.authenticate(&secret).expect("auth").is_some(),
            "still valid"
        );
    }
    // Inside its scope an officer revokes, and the token stops working at once.
    let (status, v) =
        t.s.call(
            "DELETE",
            &format!("/v1/tokens/{}", id_of(&we_registrar)),
            Some(&t.jur),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["revoked"], true);
    let (status, v) =
        t.s.call(
            "GET",
            "/v1/schools/we",
            Some(&secret_of(&we_registrar)),
            None,
        )
        .await;
    assert_eq!((status, &v["error"]["code"]), (401, &json!("unauthorized")));
}

/// Every token `by` may list, page by page with limit=2, checking no page holds a secret.
async fn list_all(s: &TestServer, by: &str, secrets: &[String]) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/tokens?limit=2".to_owned(),
            Some(c) => format!("/v1/tokens?limit=2&cursor={c}"),
        };
        let (status, v) = s.call("GET", &path, Some(by), None).await;
        assert_eq!(status, 200, "{v}");
        let text = v.to_string();
        assert!(!text.contains("\"token\""), "{text}");
        assert!(!text.contains("hash"), "{text}");
        items.extend(v["items"].as_array().expect("items").iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let all = Value::Array(items.clone()).to_string();
    for secret in secrets {
        assert!(!all.contains(secret.as_str()), "a secret is listed");
        assert!(!all.contains(&xueji::auth::token_hash(secret)));
    }
    items
}

#[tokio::test]
async fn token_lists_show_each_caller_its_scope_page_by_page_and_never_a_secret() {
    let t = scoped().await;
    let mut secrets = vec![
        t.s.admin.clone(),
        t.area.clone(),
        t.jur.clone(),
        t.other.clone(),
    ];
    for (by, body) in [
        (
            &t.area,
            json!({"role": "registrar", "school": "ea", "label": "东区教务"}),
        ),
        (&t.jur, json!({"role": "registrar", "school": "we"})),
        (&t.other, json!({"role": "school_leader", "school": "nk"})),
    ] {
        let (status, v) = t.mint(by, body).await;
        assert_eq!(status, 201, "{v}");
        secrets.push(v["token"].as_str().expect("token").to_owned());
    }
    // Page by page with limit=2: every token once, in id order.
    let all = list_all(&t.s, &t.s.admin, &secrets).await;
    assert_eq!(all.len(), 7, "{all:?}");
    let ids: Vec<&str> = all.iter().map(|i| i["id"].as_str().expect("id")).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "id order, each once");
    for item in &all {
        for field in ["id", "role", "created_at", "revoked"] {
            assert!(item.get(field).is_some(), "{field} in {item}");
        }
    }
    let scope_of = |items: &[Value]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = items
            .iter()
            .map(|i| {
                (
                    i["role"].as_str().unwrap_or_default().to_owned(),
                    i["school"]
                        .as_str()
                        .or(i["area"].as_str())
                        .or(i["jurisdiction"].as_str())
                        .unwrap_or("-")
                        .to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let officer = |area: &str| ("district_officer".to_owned(), area.to_owned());
    let reg = |school: &str| ("registrar".to_owned(), school.to_owned());
    assert_eq!(
        scope_of(&list_all(&t.s, &t.area, &secrets).await),
        vec![officer("东区"), reg("ea")]
    );
    assert_eq!(
        scope_of(&list_all(&t.s, &t.jur, &secrets).await),
        vec![officer(J), officer("东区"), reg("ea"), reg("we")]
    );
    assert_eq!(
        scope_of(&list_all(&t.s, &t.other, &secrets).await),
        vec![officer(OTHER_J), ("school_leader".into(), "nk".into())]
    );
    let registrar = secrets.last().expect("a school token").clone();
    let (status, v) = t.s.call("GET", "/v1/tokens", Some(&registrar), None).await;
    assert_eq!((status, &v["error"]["code"]), (403, &json!("forbidden")));
    let (status, v) =
        t.s.call("GET", "/v1/tokens?cursor=zz", Some(&t.s.admin), None)
            .await;
    assert_eq!(
        (status, &v["error"]["code"]),
        (400, &json!("invalid_cursor"))
    );
}

#[tokio::test]
async fn a_token_past_its_expiry_is_refused_with_its_own_code() {
    let s = spawn_server().await;
    s.xueji
        .create_school(school("ea", J, Some("东区")))
        .expect("school");
    // Issued with a date: valid through that day in China time, stored as an instant in UTC.
    let (status, v) = s
        .call(
            "POST",
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"role": "registrar", "school": "ea", "expires_at": "2999-06-30"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["expires_at"], "2999-06-30T16:00:00Z");
    let valid = v["token"].as_str().expect("token").to_owned();
    assert_eq!(
        s.call("GET", "/v1/schools/ea", Some(&valid), None).await.0,
        200
    );
    for (expires, code) in [
        ("2001-01-01", "expiry_in_past"),
        ("2001-01-01T00:00:00Z", "expiry_in_past"),
        ("next week", "invalid_date"),
    ] {
        let (status, v) = s
            .call(
                "POST",
                "/v1/tokens",
                Some(&s.admin),
                Some(json!({"role": "registrar", "school": "ea", "expires_at": expires})),
            )
            .await;
        assert_eq!(status, 400, "{expires}: {v}");
        assert_eq!(v["error"]["code"], code, "{expires}");
        assert_eq!(v["error"]["details"]["field"], "expires_at");
    }
    // A token whose expiry has passed (written directly: the API refuses a past expiry).
    let (expired, _) = s
        .xueji
        .create_token(TokenRecord {
            school: Some("ea".into()),
            jurisdiction: Some(J.into()),
            expires_at: Some("2020-01-01T00:00:00Z".into()),
            ..TokenRecord::new(Role::Registrar)
        })
        .expect("token");
    let (status, v) = s.call("GET", "/v1/schools/ea", Some(&expired), None).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["code"], "token_expired");
    assert!(s.xueji.authenticate(&expired).expect("auth").is_none());
}

#[test]
fn a_new_xueji_admin_token_value_revokes_the_earlier_one() {
    let t = engine();
    let x = &t.xueji;
    let valid = |secret: &str| x.authenticate(secret).expect("auth").is_some();
    // A token an older version stored for the variable: marked by its label alone.
    let (legacy, legacy_record) = x
        .create_token(TokenRecord {
            label: Some("XUEJI_ADMIN_TOKEN".into()),
            ..TokenRecord::new(Role::Admin)
        })
        .expect("legacy");
    let (plain, plain_record) = x
        .create_token(TokenRecord::new(Role::Admin))
        .expect("admin");
    let first = "first-admin-token-value-0001";
    let (a, revoked) = x.env_admin_token(first).expect("first start");
    assert_eq!(
        revoked.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&legacy_record.id]
    );
    assert!(valid(first) && !valid(&legacy) && valid(&plain));
    // The same value again: nothing changes.
    let (again, revoked) = x.env_admin_token(first).expect("restart");
    assert_eq!((again.id.as_str(), revoked.len()), (a.id.as_str(), 0));
    assert!(
        !a.id.contains(&xueji::auth::token_hash(first)[..16]),
        "the id reveals nothing of the secret"
    );
    let second = "second-admin-token-value-0002";
    let (b, revoked) = x.env_admin_token(second).expect("rotation");
    assert_eq!(
        revoked.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&a.id]
    );
    assert!(!valid(first) && valid(second) && valid(&plain));
    // A value once revoked stays revoked, even if set again.
    x.revoke_token(&plain_record, &b.id).expect("revoke");
    let (_, revoked) = x.env_admin_token(second).expect("restart");
    assert!(revoked.is_empty());
    assert!(!valid(second));
    let (_, revoked) = x.env_admin_token(first).expect("back to the first");
    assert!(revoked.is_empty());
    assert!(!valid(first), "an old value does not come back");
    // Another role's secret is never taken for the admin token, and nothing is revoked.
    let (registrar_secret, _) = x
        .create_token(TokenRecord {
            school: Some("s1".into()),
            ..TokenRecord::new(Role::Registrar)
        })
        .expect("registrar");
    let third = "third-admin-token-value-0003";
    x.env_admin_token(third).expect("third");
    let refused = x.env_admin_token(&registrar_secret);
    assert!(
        matches!(
            &refused,
            Err(xueji::engine::ServiceError::Conflict {
                code: "admin_token_taken",
                ..
            })
        ),
        "{refused:?}"
    );
    assert!(valid(third) && valid(&registrar_secret));
}

/// A data folder with a store of the built-in packages holding school `nk` (national, 东区).
fn cli_data() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = engine_with(&xueji::policy::builtin_packages());
    t.xueji
        .create_school(school("nk", OTHER_J, Some("东区")))
        .expect("school");
    let dir = t.dir;
    drop(t.xueji);
    let data = dir.path().to_path_buf();
    (dir, data)
}

#[test]
fn xueji_token_creates_under_the_api_rules_lists_and_revokes() {
    let (_dir, data) = cli_data();
    let d = data.to_str().expect("utf-8");
    for (args, code) in [
        (
            vec!["--role", "registrar", "--school", "nowhere"],
            "unknown_school",
        ),
        (vec!["--role", "registrar"], "required"),
        (vec!["--role", "district_officer"], "required"),
        (
            vec!["--role", "district_officer", "--jurisdiction", "atlantis"],
            "unknown_jurisdiction",
        ),
        (
            vec![
                "--role",
                "registrar",
                "--school",
                "nk",
                "--expires",
                "2001-01-01",
            ],
            "expiry_in_past",
        ),
    ] {
        let mut all = vec!["token", "create", "--data", d];
        all.extend(&args);
        let out = run_cli(&all);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(code), "{args:?}: {}", text(&out));
    }
    let out = run_cli(&[
        "token",
        "create",
        "--data",
        d,
        "--role",
        "registrar",
        "--school",
        "nk",
        "--label",
        "教务处",
        "--expires",
        "2999-12-31",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let secret = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once): "))
        .expect("secret printed")
        .to_owned();
    let out = run_cli(&["token", "list", "--data", d]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let header: Vec<&str> = table
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "id", "role", "scope", "label", "created", "expires", "revoked"
        ]
    );
    assert!(
        table.contains("jurisdiction=national-k12 school=nk"),
        "{table}"
    );
    assert!(table.contains("2999-12-31T16:00:00Z"), "{table}");
    assert!(!table.contains(&secret) && !table.contains(&xueji::auth::token_hash(&secret)));
    let out = run_cli(&["token", "list", "--data", d, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed.len(), 1);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&secret));
    let id = listed[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(listed[0]["created_by"], "cli");
    let missing = run_cli(&["token", "revoke", "tok_nobody", "--data", d]);
    assert!(!missing.status.success() && text(&missing).contains("not found"));
    let out = run_cli(&["token", "revoke", &id, "--data", d]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run_cli(&["token", "list", "--data", d, "--json"]);
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed[0]["revoked"], true);
    let x = crate::helpers::reopen(&data.join("xueji.redb"));
    assert!(x.authenticate(&secret).expect("auth").is_none());
    // Listing never creates a store.
    let empty = tempfile::tempdir().expect("dir");
    let out = run_cli(&[
        "token",
        "list",
        "--data",
        empty.path().to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(!empty.path().join("xueji.redb").exists());
}

/// `xueji serve` with `XUEJI_ADMIN_TOKEN` set, once it answers.
async fn serve_with(data: &Path, admin: &str, port: u16) -> Reaped {
    let mut server = serve(data, port, admin);
    wait_up(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}"),
        &mut server,
    )
    .await;
    server
}

async fn status_with(port: u16, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/tokens"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The binary end to end: a changed `XUEJI_ADMIN_TOKEN` ends the old value at start; the data
/// folder, the store and online backups are the owner's alone.
#[tokio::test]
async fn serve_rotates_the_admin_token_and_keeps_its_files_private() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let (old, new) = (
        "old-admin-token-value-0123456789",
        "new-admin-token-value-9876543210",
    );
    let port = free_port();
    let server = serve_with(&data, old, port).await;
    assert_eq!(status_with(port, old).await.0, 200);
    #[cfg(unix)]
    {
        assert_eq!(mode(&data), 0o700, "data folder");
        assert_eq!(mode(&data.join("xueji.redb")), 0o600, "store");
    }
    stop(server);
    let port = free_port();
    let server = serve_with(&data, new, port).await;
    let (status, v) = status_with(port, old).await;
    assert_eq!((status, &v["error"]["code"]), (401, &json!("unauthorized")));
    let (status, v) = status_with(port, new).await;
    assert_eq!(status, 200, "{v}");
    let env_tokens: Vec<&Value> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["label"] == "XUEJI_ADMIN_TOKEN")
        .collect();
    assert_eq!(env_tokens.len(), 2, "{v}");
    assert_eq!(
        env_tokens.iter().filter(|i| i["revoked"] == true).count(),
        1
    );
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/backups"))
        .bearer_auth(new)
        .send()
        .await
        .expect("backup");
    assert_eq!(r.status().as_u16(), 201);
    let backup: Value = r.json().await.expect("json");
    #[cfg(unix)]
    {
        assert_eq!(mode(&data.join("backups")), 0o700, "backups/");
        assert_eq!(
            mode(Path::new(backup["file"].as_str().expect("file"))),
            0o600,
            "online backup"
        );
    }
    stop(server);
}

#[cfg(unix)]
#[test]
fn store_backups_exports_and_restores_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    // A store file left 0644 by an older version is tightened when opened.
    let (dir, data) = cli_data();
    let store = data.join("xueji.redb");
    assert_eq!(mode(&store), 0o600, "a new store");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    drop(crate::helpers::reopen(&store));
    assert_eq!(mode(&store), 0o600, "an old store, opened");
    let fresh = dir.path().join("new").join("data");
    drop(xueji::cli::open(&xueji::cli::Place::folder(&fresh), None).expect("open"));
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("xueji.redb")), 0o600);

    let d = data.to_str().expect("utf-8");
    let backup = dir.path().join("copy.redb");
    let out = run_cli(&["backup", "--data", d, backup.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mode(&backup), 0o600, "xueji backup");
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    for name in ["roster.csv", "roster.xlsx", "roster.json"] {
        let file = dir.path().join(name);
        // An earlier export left readable by all is tightened when written again.
        std::fs::write(&file, b"old").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let out = run_cli(&[
            "export",
            "--data",
            d,
            "--school",
            "nk",
            "--out",
            file.to_str().expect("utf-8"),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(mode(&file), 0o600, "{name}");
    }

    let restored = dir.path().join("restored");
    let out = run_cli(&[
        "restore",
        backup.to_str().expect("utf-8"),
        "--data",
        restored.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(mode(&restored), 0o700, "restored data folder");
    assert_eq!(
        mode(&restored.join("xueji.redb")),
        0o600,
        "restored store, from a 0644 backup"
    );
}

#[test]
fn restore_refuses_a_backup_with_one_altered_event_and_creates_nothing() {
    let t = engine();
    enrolled(&t.xueji, "篡改", 3);
    let backup = t.dir.path().join("backup.redb");
    xueji::engine::audit::write_backup(t.xueji.store(), &backup).expect("backup");
    drop(t.xueji);
    // One byte of one event's stored record: the grade in the admission event.
    with_raw(&backup, |txn| {
        use redb::ReadableTable;
        let mut events = txn.open_table(EVENT_RECORDS).expect("records");
        let (k, v) = events
            .iter()
            .expect("iter")
            .map(|item| item.expect("row"))
            .map(|(k, v)| (k.value().to_owned(), v.value().to_vec()))
            .find(|(_, v)| String::from_utf8_lossy(v).contains("\"grade\":3"))
            .expect("an event with the grade");
        let altered =
            String::from_utf8(v)
                .expect("utf-8")
                .replacen("\"grade\":3", "\"grade\":2", 1);
        events
            .insert(k.as_str(), altered.as_bytes())
            .expect("insert");
    });
    let policies = t.dir.path().join("policies");
    for (id, src) in &crate::helpers::test_packages().packages {
        for (path, body) in &src.files {
            let p = policies.join(id).join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, body).expect("write");
        }
    }
    let data = t.dir.path().join("restored");
    let out = run_cli(&[
        "restore",
        backup.to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
        "--policies",
        policies.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("backup_does_not_verify"),
        "{}",
        text(&out)
    );
    assert!(!data.exists(), "restore created {}", data.display());
    // Into a folder that exists: it is left as it was, empty.
    std::fs::create_dir(&data).expect("mkdir");
    let out = run_cli(&[
        "restore",
        backup.to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
        "--policies",
        policies.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&data).expect("dir").count(), 0);
    // Not a store at all: its own code, nothing left either.
    let junk = t.dir.path().join("junk.redb");
    std::fs::write(&junk, b"not a store").expect("write");
    let out = run_cli(&[
        "restore",
        junk.to_str().expect("utf-8"),
        "--data",
        data.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("backup_unreadable"), "{}", text(&out));
    assert_eq!(std::fs::read_dir(&data).expect("dir").count(), 0);
}

#[tokio::test]
async fn a_taken_school_id_is_answered_alike_in_and_out_of_scope() {
    let t = scoped().await;
    // `ea` is the 东区 officer's own school; `nk` is held in another jurisdiction.
    let create = |id: &str| json!({"id": id, "name": "新学校", "jurisdiction": J, "area": "东区", "level": "primary"});
    let (in_status, inside) =
        t.s.call("POST", "/v1/schools", Some(&t.area), Some(create("ea")))
            .await;
    let (out_status, outside) =
        t.s.call("POST", "/v1/schools", Some(&t.area), Some(create("nk")))
            .await;
    assert_eq!((in_status, out_status), (409, 409), "{inside} {outside}");
    let (a, b) = (&inside["error"], &outside["error"]);
    assert_eq!(a["code"], b["code"]);
    assert_eq!(a["details"], b["details"]);
    let message = |v: &Value, id: &str| v["message"].as_str().expect("message").replace(id, "ID");
    assert_eq!(message(a, "ea"), message(b, "nk"));
    let text = outside.to_string();
    for holder in ["学校nk", OTHER_J] {
        assert!(!text.contains(holder), "{text}");
    }
    assert_eq!(outside["error"]["code"], "already_exists");
    assert!(
        message(b, "nk").contains("学校标识码「ID」已被使用"),
        "{outside}"
    );
}
