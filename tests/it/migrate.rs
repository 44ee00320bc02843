//! `xueji migrate`: a store copied from a data folder to PostgreSQL and back, unchanged; only into
//! a place that holds nothing; a copy cut short never opened; and the real binary moving a served
//! store to a database and serving it there (`serve --store`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use xueji::engine::{Location, Store, Xueji};
use xueji::policy::PolicyRegistry;
use xueji::store::StoreError;
use xueji::store::kv::Backend;
use xueji::store::postgres::PostgresBackend;

use crate::helpers::{admit, engine, enrolled, test_packages};
use crate::pg_server::postgres_url;
use crate::process::{run_cli, serve_command, serve_on, stop, text, wait_up};

/// Every non-empty table of a redb store file, pair by pair.
fn dump(file: &Path) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
    let db = redb::Database::open(file).expect("open the file");
    let txn = db.begin_read().expect("read");
    let mut tables = BTreeMap::new();
    for handle in txn.list_tables().expect("tables") {
        let name = handle.name().to_owned();
        let table = txn
            .open_table(TableDefinition::<&str, &[u8]>::new(&name))
            .expect("table");
        let pairs: BTreeMap<String, Vec<u8>> = table
            .iter()
            .expect("iter")
            .map(|item| {
                let (k, v) = item.expect("pair");
                (k.value().to_owned(), v.value().to_vec())
            })
            .collect();
        if !pairs.is_empty() {
            tables.insert(name, pairs);
        }
    }
    tables
}

fn engine_on(store: Store) -> Xueji {
    let registry = PolicyRegistry::from_packages(&test_packages()).expect("compile");
    Xueji::new(store, Arc::new(registry))
}

#[test]
fn a_store_moves_to_postgres_and_back_unchanged() {
    let t = engine();
    let first = enrolled(&t.xueji, "甲", 1);
    enrolled(&t.xueji, "乙", 2);
    admit(&t.xueji, "丙", 3);
    let checkpoints = t.xueji.checkpoints().expect("checkpoints");
    let crate::helpers::TestEngine { xueji, dir, .. } = t;
    drop(xueji);
    let folder = Location::Folder(dir.path().to_owned());
    let database = Location::Postgres(postgres_url());

    let source = folder.open_existing().expect("the folder's store");
    let heard = std::sync::Mutex::new(Vec::new());
    let copied = source
        .copy_to(&database, &|n| heard.lock().expect("lock").push(n))
        .expect("copied to postgres");
    drop(source);
    let students = copied
        .tables
        .iter()
        .find(|(t, _)| *t == "students")
        .map(|(_, n)| *n);
    assert_eq!(students, Some(3));
    let heard = heard.into_inner().expect("lock");
    assert_eq!(heard.last().copied(), Some(copied.pairs()), "{heard:?}");
    assert_eq!(
        copied
            .checkpoints
            .iter()
            .map(|c| (&c.jurisdiction, c.size, &c.root))
            .collect::<Vec<_>>(),
        checkpoints
            .iter()
            .map(|c| (&c.jurisdiction, c.size, &c.root))
            .collect::<Vec<_>>()
    );

    // On PostgreSQL the copy is the same store: chains, indexes, tallies and logs verify against
    // the source's checkpoints, the salt kept (digests of identities unchanged), records equal.
    let on_postgres = engine_on(database.open_existing().expect("the copy opens"));
    let report = on_postgres.verify_all().expect("verify");
    assert!(report.ok, "{report:?}");
    assert_eq!(report.students, 3);
    let logs = on_postgres.verify_logs(&copied.checkpoints).expect("logs");
    assert!(!logs.is_empty() && logs.iter().all(|l| l.ok), "{logs:?}");
    assert_eq!(
        on_postgres
            .store()
            .student(&first.id)
            .expect("read")
            .expect("the student"),
        first
    );

    // And back into a new folder: every table, pair for pair, as it was.
    let back_dir = tempfile::tempdir().expect("dir");
    let back = Location::Folder(back_dir.path().join("back"));
    on_postgres
        .store()
        .copy_to(&back, &|_| {})
        .expect("copied back");
    drop(on_postgres);
    // Opened once, as `xueji migrate` does to verify it.
    drop(back.open_existing().expect("the copy back opens"));
    let original = dump(&dir.path().join("xueji.redb"));
    assert!(original.contains_key("students") && original.contains_key("log_leaves"));
    assert_eq!(
        dump(&back_dir.path().join("back").join("xueji.redb")),
        original
    );
}

#[test]
fn a_copy_goes_only_where_nothing_is() {
    let t = engine();
    admit(&t.xueji, "甲", 1);
    let source = t.xueji.store();

    // A database holding a store: refused, its salt (and so every digest) untouched.
    let database = Location::Postgres(postgres_url());
    let digest = {
        let other = database.open().expect("a store there");
        other.digest("probe", "value")
    };
    let refused = source.copy_to(&database, &|_| {}).expect_err("refused");
    assert!(matches!(refused, StoreError::NotEmpty(_)), "{refused:?}");
    assert!(
        refused.to_string().starts_with("store_not_empty"),
        "{refused}"
    );
    assert_eq!(
        database
            .open_existing()
            .expect("still there")
            .digest("probe", "value"),
        digest
    );

    // A database with one stray row in any table: refused, the row kept.
    let url = postgres_url();
    let stray = PostgresBackend::connect(&url).expect("connect");
    let txn = stray.begin_write().expect("write");
    txn.open_table(xueji::store::kv::Table::new("problems"))
        .expect("table")
        .insert("p1", b"{}")
        .expect("insert");
    txn.commit().expect("commit");
    let refused = source
        .copy_to(&Location::Postgres(url), &|_| {})
        .expect_err("refused");
    assert!(matches!(refused, StoreError::NotEmpty(_)), "{refused:?}");
    let read = stray.begin_read().expect("read");
    let problems = read
        .open_table(xueji::store::kv::Table::new("problems"))
        .expect("table");
    assert_eq!(problems.len().expect("len"), 1);

    // A folder holding a store file: refused, the file's bytes unchanged.
    let dir = tempfile::tempdir().expect("dir");
    let folder = Location::Folder(dir.path().to_owned());
    drop(folder.open().expect("a store there"));
    let file = dir.path().join("xueji.redb");
    let bytes = std::fs::read(&file).expect("read");
    let refused = source.copy_to(&folder, &|_| {}).expect_err("refused");
    assert!(matches!(refused, StoreError::NotEmpty(_)), "{refused:?}");
    assert_eq!(std::fs::read(&file).expect("read"), bytes);
}

#[test]
fn a_copy_cut_short_is_never_opened() {
    // What a copy leaves when it dies after its first commit: the mark, and some tables.
    let url = postgres_url();
    let partial = PostgresBackend::connect(&url).expect("connect");
    let txn = partial.begin_write().expect("write");
    txn.open_table(xueji::store::kv::Table::new("meta"))
        .expect("meta")
        .insert("copy_incomplete", b"1")
        .expect("mark");
    txn.open_table(xueji::store::kv::Table::new("students"))
        .expect("students")
        .insert("national-k12\u{1f}x", b"{}")
        .expect("a row");
    txn.commit().expect("commit");
    drop(partial);
    for opened in [
        Location::Postgres(url.clone()).open().err(),
        Location::Postgres(url).open_existing().err(),
    ] {
        let refused = opened.expect("refused");
        assert!(matches!(refused, StoreError::CopyIncomplete), "{refused:?}");
        assert!(
            refused.to_string().starts_with("store_copy_incomplete"),
            "{refused}"
        );
    }

    // The same in a store file.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("xueji.redb");
    {
        let db = redb::Database::create(&file).expect("create");
        let txn = db.begin_write().expect("write");
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .expect("meta")
            .insert("copy_incomplete", b"1".as_slice())
            .expect("mark");
        txn.commit().expect("commit");
    }
    let refused = Store::open(&file).err().expect("refused");
    assert!(matches!(refused, StoreError::CopyIncomplete), "{refused:?}");
}

/// The real binary: a store served from a data folder (the demo's sample), moved with `xueji
/// migrate` to PostgreSQL (verified by the command itself), served from there with the same
/// answers, moved back into a new folder, which `xueji verify` passes; a second move into the
/// same database is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_moves_a_served_store_to_postgres_and_serves_it_there() {
    const ADMIN: &str = "migrate-test-admin-token-0123456789";
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client");
    let get = |url: String| {
        let client = client.clone();
        async move {
            let r = client
                .get(&url)
                .bearer_auth(ADMIN)
                .send()
                .await
                .expect("answer");
            assert_eq!(r.status().as_u16(), 200, "{url}");
            let mut v: serde_json::Value = r.json().await.expect("json");
            // When a checkpoint was taken is not part of the store.
            if let Some(items) = v.get_mut("items").and_then(|i| i.as_array_mut()) {
                for item in items {
                    if let Some(c) = item.as_object_mut() {
                        c.remove("taken_at");
                    }
                }
            }
            v
        }
    };
    // The schools, every school's students, the logs' checkpoints and the whole-store check.
    let answers = |base: String| async move {
        let schools = get(format!("{base}/v1/schools?limit=1000")).await;
        let mut out = vec![
            get(format!("{base}/v1/checkpoints")).await,
            get(format!("{base}/v1/verify")).await,
        ];
        for school in schools["items"].as_array().expect("schools") {
            let id = school["id"].as_str().expect("id");
            out.push(get(format!("{base}/v1/students?school={id}&limit=1000")).await);
        }
        out.push(schools);
        out
    };

    // Served from the folder, with the demo's sample.
    let port = crate::process::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = crate::process::Reaped(
        serve_command(&data, None, port)
            .arg("--demo")
            .env("XUEJI_ADMIN_TOKEN", ADMIN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    wait_up(&client, &base, &mut server).await;
    let before = answers(base.clone()).await;
    let students: usize = before[2..before.len() - 1]
        .iter()
        .map(|page| page["items"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(students > 5, "{before:?}");
    stop(server);

    let url = postgres_url();
    let data_arg = data.to_str().expect("utf-8").to_owned();
    let migrate = |from: String, to: String| {
        let data = data_arg.clone();
        tokio::task::spawn_blocking(move || {
            run_cli(&["migrate", "--from", &from, "--to", &to, "--data", &data])
        })
    };
    let moved = migrate(data_arg.clone(), url.clone()).await.expect("join");
    let said = text(&moved);
    assert!(moved.status.success(), "{said}");
    assert!(
        said.contains("✓ log of") && said.trim_end().ends_with("ok"),
        "{said}"
    );
    assert!(
        !said.contains("search_path"),
        "the connection string printed: {said}"
    );

    // Served from PostgreSQL: the same answers.
    let port = crate::process::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve_on(&data, Some(&url), port, ADMIN);
    wait_up(&client, &base, &mut server).await;
    assert_eq!(answers(base.clone()).await, before);
    stop(server);

    // Back into a new folder, which verifies on its own; the database, not empty, takes no
    // second copy.
    let back = dir.path().join("back");
    let back_arg = back.to_str().expect("utf-8").to_owned();
    let moved_back = migrate(url.clone(), back_arg.clone()).await.expect("join");
    assert!(moved_back.status.success(), "{}", text(&moved_back));
    let verified = tokio::task::spawn_blocking(move || run_cli(&["verify", "--data", &back_arg]))
        .await
        .expect("join");
    assert!(verified.status.success(), "{}", text(&verified));
    let again = migrate(data_arg.clone(), url).await.expect("join");
    assert!(!again.status.success());
    assert!(text(&again).contains("store_not_empty"), "{}", text(&again));
}
