//! The jurisdiction Merkle log: RFC 6962 reference vectors, checkpoints that hold while history
//! grows, and every way of changing history an inspector must catch (a flipped byte, a dropped
//! event, a restored older copy), each reported precisely.

use redb::{Database, ReadableTable, TableDefinition};
use serde_json::{Value, json};
use xueji::domain::merkle::{self, Checkpoint, Frontier, Hash};
use xueji::engine::Xueji;
use xueji::store::Store;

use crate::helpers::*;

type Raw = TableDefinition<'static, &'static str, &'static [u8]>;
const EVENTS: Raw = TableDefinition::new("events");
const LOG_LEAVES: Raw = TableDefinition::new("log_leaves");
const LOG_HEADS: Raw = TableDefinition::new("log_heads");
const META: Raw = TableDefinition::new("meta");
const JUR: &str = "test-district";

fn hash(s: &str) -> Hash {
    merkle::from_hex(s).expect("64 hex digits")
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|h| hash(h.as_str().expect("hex")))
        .collect()
}

#[test]
fn the_log_reproduces_the_rfc6962_reference_vectors() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/merkle-rfc6962.json"
    ))
    .expect("vectors");
    let v: Value = serde_json::from_str(&text).expect("json");
    let leaves: Vec<Hash> = v["leaves_hex"]
        .as_array()
        .expect("leaves")
        .iter()
        .map(|l| merkle::leaf_hash(&hex::decode(l.as_str().expect("hex")).expect("hex")))
        .collect();
    let roots = hashes(&v["roots_by_size"]);
    let mut frontier = Frontier::default();
    assert_eq!(frontier.root(), roots[0]);
    for (n, leaf) in leaves.iter().enumerate() {
        frontier.push(*leaf);
        assert_eq!(merkle::root(&leaves[..=n]), roots[n + 1], "size {}", n + 1);
        assert_eq!(frontier.root(), roots[n + 1], "frontier at size {}", n + 1);
    }
    for case in v["inclusion"].as_array().expect("inclusion") {
        let (index, size) = (
            case["index"].as_u64().expect("i"),
            case["size"].as_u64().expect("n"),
        );
        let proof = hashes(&case["proof"]);
        let tree = &leaves[..size as usize];
        assert_eq!(
            merkle::inclusion_proof(tree, index as usize),
            Some(proof.clone())
        );
        assert!(merkle::verify_inclusion(
            index,
            size,
            &tree[index as usize],
            &proof,
            &roots[size as usize]
        ));
    }
    for case in v["consistency"].as_array().expect("consistency") {
        let (m, n) = (
            case["old_size"].as_u64().expect("m") as usize,
            case["new_size"].as_u64().expect("n") as usize,
        );
        let proof = hashes(&case["proof"]);
        assert_eq!(
            merkle::consistency_proof(&leaves[..n], m),
            Some(proof.clone()),
            "{m}->{n}"
        );
        assert!(merkle::verify_consistency(
            m as u64, n as u64, &roots[m], &roots[n], &proof
        ));
        assert!(!merkle::verify_consistency(
            m as u64,
            n as u64,
            &roots[m - 1],
            &roots[n],
            &proof
        ));
    }
}

fn checkpoint_of(x: &Xueji) -> Checkpoint {
    let mut cps = x.checkpoints().expect("checkpoints");
    assert_eq!(cps.len(), 1, "one jurisdiction has events");
    cps.remove(0)
}

fn change_class(x: &Xueji, student: &str, class: &str) {
    let mut input = xueji::domain::TransitionInput::new(
        xueji::domain::TransitionKind::ChangeClass,
        d("2025-03-02"),
    );
    input.params.insert("class".into(), json!(class));
    x.transition(student, input, &registrar(), false)
        .expect("change class");
}

#[test]
fn a_checkpoint_holds_while_history_grows_and_proves_consistency() {
    let t = engine();
    let a = enrolled(&t.xueji, "甲", 1);
    let b = enrolled(&t.xueji, "乙", 2);
    let old = checkpoint_of(&t.xueji);
    assert_eq!(old.size, 4);
    change_class(&t.xueji, &a.id, "5");
    change_class(&t.xueji, &b.id, "6");
    let new = checkpoint_of(&t.xueji);
    assert_eq!(new.size, 6);
    let reports = t
        .xueji
        .verify_logs(std::slice::from_ref(&old))
        .expect("verify");
    assert!(reports.iter().all(|r| r.ok), "{reports:?}");
    assert_eq!(reports[0].root, new.root, "recomputed root = head root");

    let proof = t.xueji.consistency_proof(JUR, old.size).expect("proof");
    assert_eq!(
        (proof.old_root.as_str(), proof.new_root.as_str()),
        (old.root.as_str(), new.root.as_str())
    );
    let path: Vec<Hash> = proof.proof.iter().map(|h| hash(h)).collect();
    assert!(merkle::verify_consistency(
        old.size,
        new.size,
        &hash(&old.root),
        &hash(&new.root),
        &path
    ));
    // A proof from a size the log never had is refused with a field error.
    assert!(t.xueji.consistency_proof(JUR, 99).is_err());
}

/// The event keys of a store in the layout of schema 7.
fn event_keys(txn: &redb::WriteTransaction) -> Vec<String> {
    let t = txn.open_table(EVENTS).expect("events");
    t.iter()
        .expect("iter")
        .map(|r| r.expect("row").0.value().to_owned())
        .collect()
}

fn codes(x: &Xueji, cp: &Checkpoint) -> Vec<(String, Option<String>, Option<u64>)> {
    let r = x.verify_log(JUR, Some(cp)).expect("verify");
    assert_eq!(r.ok, r.problems.is_empty());
    r.problems
        .into_iter()
        .map(|p| (p.code, p.student, p.seq))
        .collect()
}

#[test]
fn a_flipped_byte_in_an_event_is_reported_with_the_event() {
    let t = engine();
    let s = enrolled(&t.xueji, "甲", 1);
    enrolled(&t.xueji, "乙", 2);
    let cp = checkpoint_of(&t.xueji);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, |txn| {
        let mut events = txn.open_table(EVENT_RECORDS).expect("records");
        // The student's second event, the log's second leaf.
        let k = xueji_key(&[JUR, "000000000001", "e"]);
        let v = events
            .get(k.as_str())
            .expect("get")
            .expect("event")
            .value()
            .to_vec();
        let flipped =
            String::from_utf8(v)
                .expect("utf-8")
                .replacen("\"grade\":3", "\"grade\":2", 1);
        events
            .insert(k.as_str(), flipped.as_bytes())
            .expect("insert");
    });
    let x = reopen(&path);
    let found = codes(&x, &cp);
    assert!(
        found.contains(&("event_altered".into(), Some(s.id.clone()), Some(2))),
        "{found:?}"
    );
    assert!(
        found.iter().any(|(c, ..)| c == "checkpoint_mismatch"),
        "{found:?}"
    );
}

fn xueji_key(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

#[test]
fn dropping_the_last_event_is_detected_even_when_the_log_is_rewritten() {
    let t = engine();
    enrolled(&t.xueji, "甲", 1);
    let b = enrolled(&t.xueji, "乙", 2);
    let cp = checkpoint_of(&t.xueji);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    // The second student's second event, the log's fourth leaf.
    let last = xueji_key(&[JUR, "000000000003", "e"]);

    // A careless attacker deletes the event row: the log still names it.
    let careless = t.dir.path().join("careless.redb");
    std::fs::copy(&path, &careless).expect("copy");
    with_raw(&careless, |txn| {
        txn.open_table(EVENT_RECORDS)
            .expect("records")
            .remove(last.as_str())
            .expect("remove");
    });
    let found = codes(&reopen(&careless), &cp);
    assert!(
        found.contains(&("event_missing".into(), Some(b.id.clone()), Some(2))),
        "{found:?}"
    );

    // A careful one also removes its leaf and rebuilds the log head from the remaining leaves:
    // the store is consistent with itself, and only the checkpoint shows the loss.
    with_raw(&path, |txn| {
        txn.open_table(EVENT_RECORDS)
            .expect("records")
            .remove(last.as_str())
            .expect("remove");
        let mut leaves = txn.open_table(LOG_LEAVES).expect("leaves");
        leaves
            .remove(xueji_key(&[JUR, "000000000003"]).as_str())
            .expect("remove leaf");
        let mut f = Frontier::default();
        for r in leaves.iter().expect("iter") {
            let (_, v) = r.expect("row");
            let event_hash: Hash = v.value()[..32].try_into().expect("32 bytes");
            f.push(merkle::leaf_hash(&event_hash));
        }
        drop(leaves);
        txn.open_table(LOG_HEADS)
            .expect("heads")
            .insert(JUR, f.to_bytes().as_slice())
            .expect("head");
    });
    let x = reopen(&path);
    assert!(
        x.verify_log(JUR, None).expect("verify").ok,
        "self-consistent without a checkpoint"
    );
    let found = codes(&x, &cp);
    assert_eq!(found, vec![("rolled_back".into(), None, None)]);
}

#[test]
fn restoring_an_older_backup_is_detected_by_a_later_checkpoint() {
    let t = engine();
    let a = enrolled(&t.xueji, "甲", 1);
    let older = t.dir.path().join("older.redb");
    let at_backup = xueji::engine::audit::write_backup(t.xueji.store(), &older)
        .expect("backup")
        .checkpoints;
    change_class(&t.xueji, &a.id, "5");
    let later = checkpoint_of(&t.xueji);
    assert_eq!(later.size, at_backup[0].size + 1);

    // The older copy verifies on its own terms, against its own checkpoint.
    let restored = reopen(&older);
    assert!(
        restored
            .verify_logs(&at_backup)
            .expect("verify")
            .iter()
            .all(|r| r.ok)
    );
    // The later checkpoint reveals the roll-back.
    assert_eq!(
        codes(&restored, &later),
        vec![("rolled_back".into(), None, None)]
    );
    // Writing new events after the roll-back does not hide it: the prefix no longer matches.
    change_class(&restored, &a.id, "7");
    change_class(&restored, &a.id, "8");
    assert_eq!(
        codes(&restored, &later),
        vec![("checkpoint_mismatch".into(), None, None)]
    );
}

/// `xueji backup`'s view of a store another handle is writing (here in this process, through
/// its own file description, exactly as another process would): each read transaction sees the
/// newest commit; and what a read-only open cannot read is refused with its code.
#[test]
fn a_read_only_store_follows_the_writer_and_refuses_what_it_cannot_read() {
    use xueji::store::{ReadOnlyStore, StoreError};
    let t = engine();
    let a = enrolled(&t.xueji, "甲", 1);
    let path = t.dir.path().join("xueji.redb");
    let reader = ReadOnlyStore::open(&path).expect("opens beside the writer");
    let size = |r: &ReadOnlyStore| r.log_heads().expect("heads")[0].1.size;
    assert_eq!(size(&reader), 2);
    for (n, class) in ["5", "6", "7"].into_iter().enumerate() {
        change_class(&t.xueji, &a.id, class);
        assert_eq!(
            size(&reader),
            3 + n as u64,
            "a new read sees the new commit"
        );
    }
    // A backup from it is the store at one commit, as the writer's own is.
    let copy = t.dir.path().join("copy.redb");
    let backup = xueji::engine::audit::write_backup(&reader, &copy).expect("backup");
    assert_eq!(backup.checkpoints, {
        let mut cps = t.xueji.checkpoints().expect("checkpoints");
        cps[0].taken_at.clone_from(&backup.checkpoints[0].taken_at);
        cps
    });
    drop(reader);

    let dir = t.dir.path();
    let open = |p: &std::path::Path| ReadOnlyStore::open(p).err().expect("refused");
    // No file: nothing is created.
    let missing = dir.join("missing.redb");
    assert!(matches!(open(&missing), StoreError::Missing(_)));
    assert!(!missing.exists());
    // Not a store: a file that is not redb, a redb file without xueji's tables.
    let garbage = dir.join("garbage.redb");
    std::fs::write(&garbage, b"not a database").expect("write");
    assert!(matches!(open(&garbage), StoreError::NotAStore(_)));
    let bare = dir.join("bare.redb");
    drop(Database::create(&bare).expect("create"));
    assert!(matches!(open(&bare), StoreError::NotAStore(_)));
    // Another schema: only a writer migrates.
    for (schema, older) in [(1u64, true), (99, false)] {
        let file = dir.join(format!("schema{schema}.redb"));
        let mut store = Store::open(&file).expect("store");
        store.close();
        drop(store);
        with_raw(&file, |txn| {
            txn.open_table(META)
                .expect("meta")
                .insert(
                    "schema_version",
                    serde_json::to_vec(&schema).expect("json").as_slice(),
                )
                .expect("insert");
        });
        let e = open(&file);
        assert!(
            if older {
                matches!(e, StoreError::OlderSchema { found: 1, .. })
            } else {
                matches!(e, StoreError::NewerSchema(99))
            },
            "{e:?}"
        );
        assert!(e.to_string().starts_with("store_schema_"), "{e}");
    }
    // A writer that locks the whole file (redb's default mode, as an older xueji) excludes it.
    let exclusive = Database::open(&bare).expect("exclusive writer");
    let e = open(&bare);
    assert!(matches!(e, StoreError::Locked(_)), "{e:?}");
    assert!(e.to_string().starts_with("store_locked: "), "{e}");
    drop(exclusive);
}

#[test]
fn a_store_written_before_the_log_gets_its_log_on_open() {
    let t = engine();
    enrolled(&t.xueji, "甲", 1);
    enrolled(&t.xueji, "乙", 2);
    let cp = checkpoint_of(&t.xueji);
    let path = t.dir.path().join("xueji.redb");
    drop(t.xueji);
    with_raw(&path, |txn| {
        as_schema_7(txn);
        for table in [LOG_LEAVES, LOG_HEADS] {
            txn.delete_table(table).expect("drop table");
        }
        txn.open_table(META)
            .expect("meta")
            .insert("schema_version", b"1".as_slice())
            .expect("schema 1");
        assert_eq!(event_keys(txn).len(), 4);
    });
    let x = reopen(&path);
    let rebuilt = checkpoint_of(&x);
    assert_eq!(rebuilt.size, 4);
    assert!(x.verify_log(JUR, None).expect("verify").ok);
    // Rebuilt in key order rather than commit order, so the root may differ from before; the
    // rebuilt log is what later checkpoints start from.
    assert_eq!(rebuilt.size, cp.size);
}

#[tokio::test]
async fn inspectors_reach_the_log_over_http_within_their_scope() {
    let srv = spawn_server().await;
    srv.xueji
        .create_school(school("s1", Some("东区")))
        .expect("school");
    let a = enrolled(&srv.xueji, "甲", 1);
    let officer = srv
        .token(json!({ "role": "district_officer", "jurisdiction": JUR }))
        .await;
    let other_officer = srv
        .token(json!({ "role": "district_officer", "jurisdiction": "national-k12" }))
        .await;
    let clerk = srv
        .token(json!({ "role": "registrar", "jurisdiction": JUR, "school": "s1" }))
        .await;

    let (status, v) = srv
        .call("GET", "/v1/checkpoints", Some(&officer), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["items"][0]["size"], 2);
    let cp = v["items"][0].clone();
    let (_, v) = srv
        .call("GET", "/v1/checkpoints", Some(&other_officer), None)
        .await;
    assert_eq!(
        v["items"],
        json!([]),
        "another jurisdiction's officer sees none"
    );
    let (status, v) = srv.call("GET", "/v1/checkpoints", Some(&clerk), None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    change_class(&srv.xueji, &a.id, "5");
    let body = json!({ "items": [cp.clone()] });
    let (status, v) = srv
        .call("POST", "/v1/checkpoints/verify", Some(&officer), Some(body))
        .await;
    assert_eq!((status, &v["ok"]), (200, &json!(true)), "{v}");
    let mut forged = cp.clone();
    forged["root"] = json!("00".repeat(32));
    let (status, v) = srv
        .call(
            "POST",
            "/v1/checkpoints/verify",
            Some(&officer),
            Some(json!({ "items": [forged] })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["ok"], false);
    assert_eq!(v["logs"][0]["problems"][0]["code"], "checkpoint_mismatch");
    let (status, v) = srv
        .call(
            "POST",
            "/v1/checkpoints/verify",
            Some(&other_officer),
            Some(json!({ "items": [cp.clone()] })),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let (status, v) = srv
        .call(
            "GET",
            &format!("/v1/jurisdictions/{JUR}/consistency?from=2"),
            Some(&officer),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let path: Vec<Hash> = hashes(&v["proof"]);
    assert!(merkle::verify_consistency(
        2,
        v["new_size"].as_u64().expect("size"),
        &hash(cp["root"].as_str().expect("root")),
        &hash(v["new_root"].as_str().expect("root")),
        &path
    ));
    let (status, v) = srv
        .call(
            "GET",
            &format!("/v1/jurisdictions/{JUR}/consistency?from=9"),
            Some(&officer),
            None,
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("out_of_range")),
        "{v}"
    );

    // A live backup: written beside the data, with checkpoints equal to the log's at that moment.
    let (status, v) = srv.call("POST", "/v1/backups", Some(&officer), None).await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = srv
        .call("POST", "/v1/backups", Some(&srv.admin), None)
        .await;
    assert_eq!(status, 201, "{v}");
    let file = std::path::PathBuf::from(v["file"].as_str().expect("file"));
    assert!(file.exists());
    let beside = xueji::cli::read_checkpoints(&xueji::cli::checkpoints_path(&file))
        .expect("checkpoints file");
    assert_eq!(beside[0].size, 3);
    assert_eq!(json!(beside[0].root), v["checkpoints"][0]["root"]);
    assert_eq!(beside[0].root, checkpoint_of(&srv.xueji).root);
    // `{}` is a backup request too (the body takes no option).
    let (status, v) = srv
        .call("POST", "/v1/backups", Some(&srv.admin), Some(json!({})))
        .await;
    assert_eq!(status, 201, "{v}");

    // The checkpoint list is paged like every list, in jurisdiction order.
    let mut other = school("k1", None);
    other.jurisdiction = "national-k12".into();
    srv.xueji.create_school(other).expect("school");
    let mut f = form("丙", &id_card("2016-05-01", 77));
    f.school = "k1".into();
    srv.xueji
        .admit(f, &registrar(), false)
        .expect("admitted in national-k12");
    let (status, first) = srv
        .call("GET", "/v1/checkpoints?limit=1", Some(&srv.admin), None)
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["items"][0]["jurisdiction"], "national-k12");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (status, second) = srv
        .call(
            "GET",
            &format!("/v1/checkpoints?limit=1&cursor={cursor}"),
            Some(&srv.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["items"][0]["jurisdiction"], JUR);
    assert_eq!(second["next_cursor"], Value::Null);
}
