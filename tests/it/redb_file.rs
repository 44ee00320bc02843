//! What only a redb store file lets a test do: alter its records behind the service's back
//! (`with_raw`) and open it again by its path. The engine's other tests run on both backends
//! (`on_postgres`); these stay on redb.

use serde_json::json;
use xueji::domain::{TransitionInput, TransitionKind};
use xueji::engine::{Outcome, ServiceError};

use crate::helpers::*;
use crate::persons::{admitted, graduated};

// ---- engine ------------------------------------------------------------------------------

#[test]
fn a_student_whose_school_is_gone_is_not_found_rather_than_named_to_a_caller_out_of_scope() {
    let t = engine();
    let s = enrolled(&t.xueji, "孙九", 7);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, |txn| {
        let mut schools = txn
            .open_table(redb::TableDefinition::<&str, &[u8]>::new("schools"))
            .expect("schools");
        assert!(schools.remove(s.school.as_str()).expect("remove").is_some());
    });
    let x = reopen(&path);
    let mut input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-03-02"));
    input.params.insert("class".into(), json!("5"));
    let err = x
        .transition_in_scope(&s.id, input, &registrar(), true, |_, _| false)
        .expect_err("no school");
    assert!(
        matches!(err, ServiceError::NotFound { what: "student", ref id } if *id == s.id),
        "{err:?}"
    );
    assert!(!err.to_string().contains(&s.school), "{err}");
}

#[test]
fn a_record_stored_in_another_encoding_still_transitions_by_its_version() {
    // The writer proves the version by comparing bytes and falls back to reading the version
    // when the stored bytes differ (a record written by an older build, say).
    use redb::{Database, ReadableTable, TableDefinition};
    const STUDENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("students");
    let t = engine();
    let s = enrolled(&t.xueji, "甲", 1);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    {
        let db = Database::open(&path).expect("open");
        let txn = db.begin_write().expect("txn");
        {
            let mut table = txn.open_table(STUDENTS).expect("students");
            let k = format!("test-district\u{1f}{}", s.id);
            let stored: serde_json::Value =
                serde_json::from_slice(table.get(k.as_str()).expect("get").expect("row").value())
                    .expect("json");
            let pretty = serde_json::to_vec_pretty(&stored).expect("encode");
            table
                .insert(k.as_str(), pretty.as_slice())
                .expect("rewrite");
        }
        txn.commit().expect("commit");
    }
    let registry = xueji::policy::PolicyRegistry::from_packages(&test_packages()).expect("compile");
    let x = xueji::engine::Xueji::new(
        xueji::store::Store::open(&path).expect("reopen"),
        std::sync::Arc::new(registry),
    );
    let mut input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-03-02"));
    input.params.insert("class".into(), json!("5"));
    input.expected_version = Some(s.version);
    match x.transition(&s.id, input.clone(), &registrar(), false) {
        Ok(Outcome::Applied { student, .. }) => assert_eq!(student.version, s.version + 1),
        other => panic!("expected applied: {other:?}"),
    }
    // The same expected version again is now a conflict.
    assert!(matches!(
        x.transition(&s.id, input, &registrar(), false),
        Err(ServiceError::Conflict {
            code: "version_conflict",
            ..
        })
    ));
    assert!(x.verify_student(&s.id).expect("verify").ok);
}

// ---- persons: schema 9 --------------------------------------------------------------------

#[test]
fn a_store_of_schema_8_moves_its_identity_indexes_on_open() {
    use redb::{ReadableTable, TableDefinition};
    type Raw = TableDefinition<'static, &'static str, &'static [u8]>;
    let t = engine();
    let first = graduated(&t.xueji, "庚", 7);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    // Schema 8 keyed each identity index by the value alone, naming one student.
    with_raw(&path, |txn| {
        for name in ["idx_national_id", "idx_id_card", "idx_person"] {
            let table: Raw = TableDefinition::new(name);
            let rows: Vec<String> = txn
                .open_table(table)
                .expect("index")
                .iter()
                .expect("iter")
                .map(|r| r.map(|(k, _)| k.value().to_owned()))
                .collect::<Result<_, _>>()
                .expect("rows");
            txn.delete_table(table).expect("drop");
            let mut t = txn.open_table(table).expect("index");
            for k in rows {
                let (value, student) = k.rsplit_once('\u{1f}').expect("student part");
                t.insert(value, student.as_bytes()).expect("insert");
            }
        }
        let meta: Raw = TableDefinition::new("meta");
        txn.open_table(meta)
            .expect("meta")
            .insert("schema_version", b"8".as_slice())
            .expect("schema 8");
    });
    let x = reopen(&path);
    let report = x.verify_all().expect("verify");
    assert!(report.ok, "{report:?}");
    let again = admitted(
        &x,
        form("庚", first.id_card.as_ref().expect("card").as_str()),
    )
    .expect("admitted after the move");
    assert_eq!(again.national_id, first.national_id);
    let all = x
        .enrolments_of(first.national_id.as_str(), |_, _| true)
        .expect("list");
    assert_eq!(all.len(), 2);
    assert!(x.verify_all().expect("verify").ok);
}

#[test]
fn verify_names_a_second_live_enrolment_of_one_person() {
    use redb::{ReadableTable, TableDefinition};
    type Raw = TableDefinition<'static, &'static str, &'static [u8]>;
    let t = engine();
    let first = graduated(&t.xueji, "辛", 8);
    admitted(
        &t.xueji,
        form("辛", first.id_card.as_ref().expect("card").as_str()),
    )
    .expect("admitted again");
    assert!(t.xueji.verify_all().expect("verify").ok);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    // The ended enrolment edited back to live behind the writer's back.
    with_raw(&path, |txn| {
        let students: Raw = TableDefinition::new("students");
        let mut table = txn.open_table(students).expect("students");
        let k = record_key(&[&first.jurisdiction, &first.id]);
        let text = String::from_utf8(
            table
                .get(k.as_str())
                .expect("get")
                .expect("stored")
                .value()
                .to_vec(),
        )
        .expect("utf8");
        let edited = text.replace("\"status\":\"graduated\"", "\"status\":\"enrolled\"");
        assert_ne!(edited, text);
        table.insert(k.as_str(), edited.as_bytes()).expect("insert");
    });
    let x = reopen(&path);
    let report = x.verify_all().expect("verify");
    assert!(!report.ok);
    let live: Vec<&str> = report
        .index_failures
        .iter()
        .filter(|m| m.code == "duplicate_live")
        .map(|m| m.table.as_str())
        .collect();
    assert_eq!(live, vec!["idx_national_id", "idx_id_card"], "{report:?}");
}
