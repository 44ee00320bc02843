//! `verify` replays each student's events to the record they make and compares every field and
//! the index entries derived from it with what is stored; a record whose bytes do not decode is
//! named, and everything else is still served (issue #14, items 4 and 14).

use redb::{ReadableTable, TableDefinition};
use serde_json::{Value, json};
use std::path::Path;
use xueji::domain::{Student, TransitionInput, TransitionKind};
use xueji::engine::{Outcome, ServiceError, Xueji};

use crate::helpers::*;
use crate::process::{free_port, wait_up};

type Raw = TableDefinition<'static, &'static str, &'static [u8]>;
const STUDENTS: Raw = TableDefinition::new("students");
const IDX_STATUS: Raw = TableDefinition::new("idx_status");
const IDX_NATIONAL: Raw = TableDefinition::new("idx_national_id");
const TOKENS: Raw = TableDefinition::new("tokens");

/// Rewrites the stored text of one student's record, as an attacker with the file would.
fn edit_student(path: &Path, s: &Student, edit: impl FnOnce(String) -> String) {
    let k = record_key(&[&s.jurisdiction, &s.id]);
    with_raw(path, |txn| {
        let mut t = txn.open_table(STUDENTS).expect("students");
        let text = {
            let v = t.get(k.as_str()).expect("get").expect("stored");
            String::from_utf8(v.value().to_vec()).expect("utf-8")
        };
        let edited = edit(text.clone());
        assert_ne!(edited, text, "the edit changed nothing");
        t.insert(k.as_str(), edited.as_bytes()).expect("insert");
    });
}

/// An engine with one enrolled student, then the store closed for editing.
fn closed_with_student(name: &str, seq: u32) -> (tempfile::TempDir, std::path::PathBuf, Student) {
    let t = engine();
    let s = enrolled(&t.xueji, name, seq);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    (t.dir, path, s)
}

fn fields(report: &Value) -> Vec<String> {
    report["record"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn verify_json(x: &Xueji, id: &str) -> Value {
    serde_json::to_value(x.verify_student(id).expect("verify")).expect("json")
}

#[test]
fn an_edited_status_grade_class_or_version_is_named_with_both_values() {
    let (_dir, path, s) = closed_with_student("甲", 11);
    assert_eq!(s.status.as_str(), "enrolled");
    edit_student(&path, &s, |t| {
        t.replace("\"status\":\"enrolled\"", "\"status\":\"expelled\"")
            .replace("\"grade\":3", "\"grade\":5")
            .replace("\"class\":\"4\"", "\"class\":\"9\"")
            .replace("\"version\":2", "\"version\":7")
    });
    // The attacker also moves the status index along, so lists agree with the record.
    with_raw(&path, |txn| {
        let mut t = txn.open_table(IDX_STATUS).expect("idx");
        t.remove(record_key(&[&s.jurisdiction, "enrolled", &s.id]).as_str())
            .expect("remove");
        t.insert(
            record_key(&[&s.jurisdiction, "expelled", &s.id]).as_str(),
            &[][..],
        )
        .expect("insert");
    });
    let x = reopen(&path);
    assert_eq!(x.student(&s.id).expect("read").status.as_str(), "expelled");
    let report = verify_json(&x, &s.id);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_bad"]["code"], "record_mismatch");
    let record = report["record"].as_array().expect("record");
    let of = |f: &str| {
        record
            .iter()
            .find(|m| m["field"] == f)
            .unwrap_or_else(|| panic!("{f} not reported: {report}"))
    };
    assert_eq!(
        (&of("status")["stored"], &of("status")["replayed"]),
        (&json!("expelled"), &json!("enrolled"))
    );
    assert_eq!(
        (&of("grade")["stored"], &of("grade")["replayed"]),
        (&json!(5), &json!(3))
    );
    assert_eq!(of("class")["replayed"], "4");
    assert_eq!(
        (&of("version")["stored"], &of("version")["replayed"]),
        (&json!(7), &json!(2))
    );
    // The replayed record's entries: the status index lacks `enrolled`, and has an entry no
    // record (as replayed) gives; the class index lacks the replayed class.
    let indexes = report["indexes"].as_array().expect("indexes");
    assert!(
        indexes
            .iter()
            .any(|m| m["table"] == "idx_status" && m["code"] == "index_missing"),
        "{report}"
    );
    let all = x.verify_all().expect("verify all");
    assert!(!all.ok);
    assert_eq!(all.failures.len(), 1);
    assert_eq!(all.failures[0].0, s.id);
}

#[test]
fn an_edited_name_id_number_or_gender_is_named_and_never_echoed() {
    let (_dir, path, s) = closed_with_student("欧阳甲", 12);
    let id_card = s.id_card.as_ref().expect("id card").as_str().to_owned();
    let other_id = id_card_for_other(&id_card);
    edit_student(&path, &s, |t| {
        t.replace("\"name\":\"欧阳甲\"", "\"name\":\"冒名顶替\"")
            .replace(&id_card, &other_id)
            .replace("\"gender\":\"male\"", "\"gender\":\"female\"")
            .replace(
                "\"gender\":\"female\",\"birth",
                "\"gender\":\"male\",\"birth",
            )
    });
    let x = reopen(&path);
    let report = verify_json(&x, &s.id);
    assert_eq!(report["ok"], false, "{report}");
    let named = fields(&report);
    for f in ["name", "id_card", "national_id", "gender"] {
        assert!(named.iter().any(|n| n == f), "{f} not named: {report}");
    }
    let text = report.to_string();
    for secret in ["冒名顶替", "欧阳甲", other_id.as_str(), &other_id[1..]] {
        assert!(!text.contains(secret), "a personal value is echoed: {text}");
    }
    for m in report["record"].as_array().expect("record") {
        if ["name", "id_card", "national_id", "gender"].contains(&m["field"].as_str().unwrap_or(""))
        {
            assert!(m.get("stored").is_none() && m.get("replayed").is_none());
        }
    }
}

/// Another valid ID number of the same place and birth date.
fn id_card_for_other(id: &str) -> String {
    let birth = format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]);
    id_card(&birth, 999)
}

#[test]
fn information_changes_replay_through_the_engine_and_a_later_edit_is_caught() {
    let t = engine();
    let s = enrolled(&t.xueji, "乙", 13);
    let mut input = TransitionInput::new(TransitionKind::CorrectInfo, d("2024-10-01"));
    input
        .params
        .insert("fields".into(), json!({"extra": {"note": "x"}}));
    let out = t
        .xueji
        .transition(&s.id, input, &registrar(), false)
        .expect("correct");
    assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
    let mut input = TransitionInput::new(TransitionKind::ChangeKeyInfo, d("2024-10-02"));
    input
        .params
        .insert("fields".into(), json!({"name": "  乙新 "}));
    input
        .documents
        .push(serde_json::from_value(json!({"kind": "household_register"})).expect("doc"));
    let out = t
        .xueji
        .transition(&s.id, input, &registrar(), false)
        .expect("key info");
    let Outcome::Pending { request, .. } = out else {
        panic!("key information changes need the bureau's review: {out:?}")
    };
    let officer = xueji::domain::Actor {
        id: "tok_officer".into(),
        role: "district_officer".into(),
    };
    let approved = t
        .xueji
        .approve(
            &request.id,
            xueji::domain::ApprovalStep::District,
            &officer,
            None,
        )
        .expect("approves");
    let event = approved.event.expect("applied at the last approval");
    assert_eq!(
        event.personal.keys().collect::<Vec<_>>(),
        vec!["name"],
        "the change records the digest of the name it set, and only that"
    );
    // Untouched, everything replays to what is stored.
    let report = t.xueji.verify_student(&s.id).expect("verify");
    assert!(report.ok, "{report:?}");
    assert!(report.unrecorded.is_empty(), "{report:?}");
    assert!(t.xueji.verify_all().expect("all").ok);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    edit_student(&path, &s, |t| {
        t.replace("\"name\":\"乙新\"", "\"name\":\"乙旧\"")
            .replace("\"note\":\"x\"", "\"note\":\"y\"")
    });
    let x = reopen(&path);
    let report = verify_json(&x, &s.id);
    let mut named = fields(&report);
    named.sort();
    assert_eq!(named, vec!["extra", "name"], "{report}");
}

#[test]
fn a_missing_or_extra_index_entry_is_reported_by_table_and_key() {
    let (_dir, path, s) = closed_with_student("丙", 14);
    with_raw(&path, |txn| {
        let mut t = txn.open_table(IDX_NATIONAL).expect("idx");
        // Schema 9: a person's enrolments are listed under their number, each by its id.
        t.remove(record_key(&[s.national_id.as_str(), &s.id]).as_str())
            .expect("remove");
        let mut t = txn.open_table(IDX_STATUS).expect("idx");
        t.insert(
            record_key(&[&s.jurisdiction, "graduated", &s.id]).as_str(),
            &[][..],
        )
        .expect("insert");
        t.insert(
            record_key(&[&s.jurisdiction, "enrolled", "stu_nobody"]).as_str(),
            &[][..],
        )
        .expect("insert");
    });
    let x = reopen(&path);
    let report = verify_json(&x, &s.id);
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_bad"]["code"], "index_mismatch");
    let missing = &report["indexes"][0];
    assert_eq!(
        (&missing["table"], &missing["code"]),
        (&json!("idx_national_id"), &json!("index_missing"))
    );
    // The national number is personal data: the key is not echoed.
    assert!(missing.get("key").is_none());
    assert!(!report.to_string().contains(s.national_id.as_str()));
    let all = x.verify_all().expect("verify all");
    assert!(!all.ok);
    let extras: Vec<(String, Option<String>)> = all
        .index_failures
        .iter()
        .map(|m| (m.table.clone(), m.key.clone()))
        .collect();
    for student in [s.id.as_str(), "stu_nobody"] {
        let status = if student == s.id {
            "graduated"
        } else {
            "enrolled"
        };
        let key = format!("{}/{status}/{student}", s.jurisdiction);
        assert!(
            extras.contains(&("idx_status".into(), Some(key.clone()))),
            "{key} not reported: {extras:?}"
        );
    }
}

#[test]
fn a_damaged_student_is_named_and_everything_else_still_served() {
    let t = engine();
    let damaged = enrolled(&t.xueji, "丁", 15);
    let sound = enrolled(&t.xueji, "戊", 16);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, |txn| {
        let mut t = txn.open_table(STUDENTS).expect("students");
        t.insert(
            record_key(&[&damaged.jurisdiction, &damaged.id]).as_str(),
            &b"\xff\x00not json"[..],
        )
        .expect("insert");
    });
    let x = reopen(&path);
    // Asked for, the damaged student is an error of its own, not a storage failure.
    assert!(
        matches!(x.student(&damaged.id), Err(ServiceError::Damaged { ref table, .. }) if table == "students")
    );
    assert!(x.student(&sound.id).is_ok());
    // Lists leave it out.
    let listed = x
        .store()
        .students_of_school(&sound.jurisdiction, "s1", None, None, None, 100)
        .expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|(_, s)| s.id.as_str())
            .collect::<Vec<_>>(),
        vec![sound.id.as_str()]
    );
    let by_jurisdiction = x
        .store()
        .students_of_jurisdiction(&sound.jurisdiction, None, 100)
        .expect("list");
    assert_eq!(by_jurisdiction.len(), 1);
    // Verify names it and checks the others.
    let report = x.verify_all().expect("verify all");
    assert!(!report.ok);
    assert_eq!(report.students, 1);
    assert_eq!(report.damaged.len(), 1, "{:?}", report.damaged);
    assert_eq!(report.damaged[0].table, "students");
    assert_eq!(
        report.damaged[0].key,
        format!("{}/{}", damaged.jurisdiction, damaged.id)
    );
}

#[tokio::test]
async fn a_damaged_student_over_http_is_record_damaged_and_lists_skip_it() {
    let t = engine();
    let damaged = enrolled(&t.xueji, "己", 17);
    let sound = enrolled(&t.xueji, "庚", 18);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, |txn| {
        let mut t = txn.open_table(STUDENTS).expect("students");
        t.insert(
            record_key(&[&damaged.jurisdiction, &damaged.id]).as_str(),
            &b"{\"id\":"[..],
        )
        .expect("insert");
    });
    let x = std::sync::Arc::new(reopen(&path));
    let (token, _) = x
        .create_token(xueji::auth::TokenRecord::new(xueji::auth::Role::Admin))
        .expect("token");
    let (base, _shutdown) = serve(x.clone()).await;
    let client = reqwest::Client::new();
    let get = |p: String| client.get(format!("{base}{p}")).bearer_auth(&token).send();
    let r = get(format!("/v1/students/{}", damaged.id))
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 500);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "record_damaged", "{body}");
    let r = get(format!("/v1/students/{}", sound.id))
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 200);
    let r = get("/v1/students?school=s1".into()).await.expect("list");
    assert_eq!(r.status().as_u16(), 200);
    let page: Value = r.json().await.expect("json");
    let text = page.to_string();
    assert!(
        text.contains(&sound.id) && !text.contains(&damaged.id),
        "{text}"
    );
    let r = get("/v1/verify".into()).await.expect("verify");
    assert_eq!(r.status().as_u16(), 200);
    let report: Value = r.json().await.expect("json");
    assert_eq!(report["ok"], false);
    assert_eq!(report["damaged"][0]["table"], "students", "{report}");
}

/// The HTTP router on a random port over an engine of the test's own.
async fn serve(x: std::sync::Arc<Xueji>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let state = xueji::http::AppState {
        xueji: x,
        metrics: std::sync::Arc::new(xueji::http::Metrics::default()),
        backup_dir: std::env::temp_dir().into(),
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
    (base, tx)
}

#[tokio::test]
async fn a_damaged_token_record_starts_the_server_authenticates_no_one_and_verify_names_it() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let admin = "damaged-admin-token-0123456789";
    let (other, _) = {
        let x = xueji::cli::open(&xueji::cli::Place::folder(&data), None).expect("open");
        x.env_admin_token(admin).expect("admin");
        x.create_token(xueji::auth::TokenRecord::new(xueji::auth::Role::Admin))
            .expect("token")
    };
    let hash = xueji::auth::token_hash(admin);
    with_raw(&data.join("xueji.redb"), |txn| {
        let mut t = txn.open_table(TOKENS).expect("tokens");
        t.insert(hash.as_str(), &b"{\"role\":"[..]).expect("insert");
    });
    // `xueji verify` names it and fails.
    let out = crate::process::run_cli(&["verify", "--data", data.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("record_damaged: table tokens key {hash}")),
        "{stdout}"
    );
    // The server starts with that very token as XUEJI_ADMIN_TOKEN; it authenticates no one,
    // the other tokens do.
    let port = free_port();
    let mut child = crate::process::serve(&data, port, admin);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_up(&client, &base, &mut child).await;
    let admin_call = |t: &str| {
        client
            .get(format!("{base}/v1/verify"))
            .bearer_auth(t)
            .send()
    };
    let damaged = admin_call(admin).await.expect("call").status().as_u16();
    let sound = admin_call(&other).await.expect("call").status().as_u16();
    drop(child);
    assert_eq!((damaged, sound), (401, 200));
}
