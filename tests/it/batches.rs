//! Batches (issue #17): the registrar's year over the single transition's path.

use std::time::Duration;

use serde_json::{Value, json};
use xueji::domain::{ApprovalStep, Status, Student, TransitionInput, TransitionKind};
use xueji::engine::batch::{BatchItem, BatchSpec, BatchStatus, ItemOutcome};
use xueji::engine::roster::{RosterKind, RosterQuery, roster};
use xueji::engine::stats::{StatsScope, stats};
use xueji::engine::{Outcome, Xueji};

use crate::helpers::{
    TEST_MANIFEST, TEST_RULES, d, engine, form, id_card, registrar, spawn_server,
    spawn_server_with, test_packages,
};

/// Admits a student at s1 in `grade`/`class` and registers them.
fn enrolled_in(x: &Xueji, seq: u32, grade: i64, class: &str) -> Student {
    let mut f = form(&format!("学生{seq}"), &id_card("2016-05-01", seq));
    f.grade = grade;
    f.class = Some(class.into());
    let s = match x.admit(f, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => *student,
        other => panic!("{other:?}"),
    };
    let input = TransitionInput::new(TransitionKind::Register, d("2024-09-02"));
    match x
        .transition(&s.id, input, &registrar(), false)
        .expect("register")
    {
        Outcome::Applied { student, .. } => *student,
        // Where the package asks the school's review, each step approved.
        Outcome::Pending { request, .. } => {
            for step in &request.steps {
                x.approve(&request.id, *step, &registrar(), None)
                    .expect("approve");
            }
            x.student(&s.id).expect("student")
        }
        other => panic!("{other:?}"),
    }
}

fn spec(kind: &str, date: &str) -> BatchSpec {
    serde_json::from_value(json!({"kind": kind, "school": "s1", "effective_date": date}))
        .expect("spec")
}

fn run(x: &Xueji, spec: &BatchSpec) -> (xueji::engine::batch::BatchRecord, Vec<BatchItem>) {
    let record = x
        .create_batch(spec, &registrar(), &|_| true)
        .expect("batch created");
    let record = x.run_batch(&record.id, &|_, _| {}).expect("batch ran");
    let items = x
        .batch_items(&record.id, 0, usize::MAX)
        .expect("items")
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    (record, items)
}

/// What a dry run and a real run must agree on (the real run adds event and request ids).
fn comparable(
    i: &BatchItem,
) -> (
    String,
    ItemOutcome,
    Vec<String>,
    Vec<String>,
    Option<String>,
) {
    (
        i.student.clone(),
        i.outcome,
        i.rules
            .iter()
            .map(|r| format!("{} {}", r.id, r.citation))
            .collect(),
        i.missing_documents.clone(),
        i.reason.clone(),
    )
}

#[test]
fn dry_run_equals_the_real_run_on_the_same_store_state() {
    let t = engine();
    let x = &t.xueji;
    let a = enrolled_in(x, 1, 3, "1");
    let b = enrolled_in(x, 2, 3, "2");
    let top = enrolled_in(x, 3, 6, "1");
    // Admitted only: not registered, so promotion does not apply.
    let mut f = form("未注册", &id_card("2016-05-01", 4));
    f.grade = 3;
    let admitted = match x.admit(f, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => *student,
        other => panic!("{other:?}"),
    };
    // A pending suspension: business to clear first.
    let mut suspend = TransitionInput::new(TransitionKind::Suspend, d("2025-03-02"));
    suspend.params.insert("until".into(), json!("2026-03-01"));
    suspend
        .documents
        .push(serde_json::from_value(json!({"kind": "hospital_diagnosis"})).expect("doc"));
    let pending = enrolled_in(x, 5, 3, "1");
    assert!(matches!(
        x.transition(&pending.id, suspend, &registrar(), false)
            .expect("suspend filed"),
        Outcome::Pending { .. }
    ));

    for (kind, expected) in [
        // Promotion: two applied, the top grade and the two others skipped.
        ("promote", [2usize, 0, 0, 3]),
        // test-district 第二条: a class change without the new class is denied.
        ("change_class", [0, 0, 3, 2]),
    ] {
        let s = spec(kind, "2025-07-10");
        let version_before = x.student(&a.id).expect("a").version;
        let dry = x
            .dry_run_batch(&s, &registrar(), &|_| true)
            .expect("dry run");
        let c = dry.counts;
        assert_eq!(
            [c.applied, c.pending, c.denied, c.skipped],
            expected,
            "{kind}: {:#?}",
            dry.items
        );
        // Nothing stored by the dry run.
        assert_eq!(x.student(&a.id).expect("a").version, version_before);
        let (record, items) = run(x, &s);
        assert_eq!(record.status, BatchStatus::Done);
        assert_eq!(
            dry.items.iter().map(comparable).collect::<Vec<_>>(),
            items.iter().map(comparable).collect::<Vec<_>>(),
            "{kind}"
        );
        if kind == "change_class" {
            let denied = items.iter().find(|i| i.student == a.id).expect("a listed");
            assert_eq!(denied.rules[0].id, "test.change_class.direct");
            assert!(denied.rules[0].citation.ends_with("第二条"), "{denied:?}");
        }
    }
    // The real promotion moved exactly the two, once, each with its own event.
    for (s, grade) in [(&a, 4), (&b, 4), (&top, 6), (&admitted, 3), (&pending, 3)] {
        assert_eq!(x.student(&s.id).expect("student").grade, grade, "{}", s.id);
    }
    assert_eq!(x.events(&a.id).expect("events").len(), 3);
    assert!(x.verify_all().expect("verify").ok);
}

#[test]
fn promotion_keeps_the_class_or_follows_the_class_map_and_says_why_it_skips() {
    let t = engine();
    let x = &t.xueji;
    let kept = enrolled_in(x, 1, 2, "1");
    let mapped = enrolled_in(x, 2, 2, "2");
    let top = enrolled_in(x, 3, 6, "3");
    let mut s = spec("promote", "2025-07-10");
    s.class_map.insert("2".into(), "5".into());
    let (_, items) = run(x, &s);
    let kept_now = x.student(&kept.id).expect("kept");
    assert_eq!((kept_now.grade, kept_now.class.as_deref()), (3, Some("1")));
    let mapped_now = x.student(&mapped.id).expect("mapped");
    assert_eq!(
        (mapped_now.grade, mapped_now.class.as_deref()),
        (3, Some("5"))
    );
    let top_item = items
        .iter()
        .find(|i| i.student == top.id)
        .expect("top listed");
    assert_eq!(top_item.outcome, ItemOutcome::Skipped);
    assert!(
        top_item
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("应办理毕业")),
        "{top_item:?}"
    );
    // A school whose system ends earlier names its last grade: grade 3 is then the top.
    let mut five_four = spec("promote", "2026-07-10");
    five_four.grade = Some(3);
    five_four.top_grade = Some(3);
    let (_, items) = run(x, &five_four);
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .all(|i| i.outcome == ItemOutcome::Skipped && i.reason.is_some()),
        "{items:?}"
    );
    // Graduation takes only the top grade.
    let (_, items) = run(x, &spec("graduate", "2026-07-01"));
    let by_id = |id: &str| items.iter().find(|i| i.student == id).expect("listed");
    assert_eq!(by_id(&kept.id).outcome, ItemOutcome::Skipped);
    assert_ne!(by_id(&top.id).outcome, ItemOutcome::Skipped);
}

/// Approves every pending request of a batch at `step` (the national packages may ask the
/// school to review graduation).
fn approve_all(x: &Xueji, batch: &str) {
    x.approve_batch(batch, ApprovalStep::School, &registrar(), None, &|_| true)
        .expect("batch approval");
}

#[test]
fn the_year_end_order_leaves_rosters_and_retention_right() {
    let t = engine();
    let x = &t.xueji;
    let school = x.school("s1").expect("school");
    let sixth: Vec<Student> = (1..=3).map(|i| enrolled_in(x, i, 6, "1")).collect();
    let fifth: Vec<Student> = (4..=5).map(|i| enrolled_in(x, i, 5, "1")).collect();
    // 毕业 first …
    let mut graduate = spec("graduate", "2025-07-01");
    graduate.grade = Some(6);
    let (g, _) = run(x, &graduate);
    approve_all(x, &g.id);
    for s in &sixth {
        assert_eq!(x.student(&s.id).expect("sixth").status, Status::Graduated);
    }
    // … then 升级 …
    let (_, items) = run(x, &spec("promote", "2025-07-10"));
    assert_eq!(
        items.len(),
        2,
        "graduates have left the class index: {items:?}"
    );
    for s in &fifth {
        assert_eq!(x.student(&s.id).expect("fifth").grade, 6);
    }
    // … then the new intake, admitted and registered in one batch.
    let intake: Vec<String> = (6..=8)
        .map(|i| {
            let mut f = form(&format!("新生{i}"), &id_card("2019-03-01", i));
            f.grade = 1;
            f.class = Some("1".into());
            f.entry_date = "2025-09-01".into();
            f.report_deadline = None;
            match x.admit(f, &registrar(), false).expect("admit") {
                Outcome::Applied { student, .. } => student.id,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    let mut register = spec("register", "2025-09-01");
    register.students = Some(intake.clone());
    let (r, items) = run(x, &register);
    approve_all(x, &r.id);
    assert!(
        items.iter().all(|i| i.outcome != ItemOutcome::Skipped),
        "{items:?}"
    );

    let vis = xueji::auth::Role::Admin.visibility();
    let current = roster(
        x,
        &school,
        &RosterQuery {
            kind: RosterKind::Current,
            year: None,
            as_of: Some(d("2025-09-30")),
            grade: None,
            class: None,
        },
        vis,
    )
    .expect("current roster");
    let mut grades: Vec<u8> = current.rows.iter().map(|r| r.grade).collect();
    grades.sort_unstable();
    assert_eq!(grades, vec![1, 1, 1, 6, 6]);
    let graduates = roster(
        x,
        &school,
        &RosterQuery {
            kind: RosterKind::Graduates,
            year: Some(2025),
            as_of: None,
            grade: None,
            class: None,
        },
        vis,
    )
    .expect("graduates roster");
    assert_eq!(graduates.rows.len(), 3);
    let st = stats(x, &StatsScope::School(school), d("2025-09-30")).expect("stats");
    let cohort = st
        .cohorts
        .iter()
        .find(|c| c.entry_year == 2024)
        .expect("the 2024 cohort");
    // 巩固率 = graduates ÷ base: three of the five who entered in 2024.
    assert_eq!((cohort.graduates, cohort.base), (3, 5));
    assert_eq!(cohort.rate, Some(0.6));
    assert_eq!(cohort.in_school, 2);
}

/// test-district with registration reviewed by the school (as Yanhe 四.3 asks).
pub(crate) fn reviewed_registration() -> xueji::policy::PackageSet {
    let mut set = test_packages();
    let rules = format!(
        "{TEST_RULES}\n// 第四条 注册须经学校审核\nrule(#{{ id: \"test.register.review\", on: [\"register\"], cites: \"t 第四条\", check: |c| approve([\"school\"], \"注册须经学校审核\") }});\n"
    );
    let files = [
        ("policy.toml".to_owned(), TEST_MANIFEST.to_owned()),
        ("rules.rhai".to_owned(), rules),
    ]
    .into();
    set.packages.insert(
        "test-district".into(),
        xueji::policy::PackageSource { files },
    );
    set
}

pub(crate) async fn wait_done(srv: &crate::helpers::TestServer, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let (status, v) = srv
            .call("GET", &format!("/v1/batches/{id}"), Some(token), None)
            .await;
        assert_eq!(status, 200, "{v}");
        if v["status"] != "running" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("batch {id} still running after 30 s");
}

async fn school_and_tokens(srv: &crate::helpers::TestServer) -> (String, String) {
    for s in ["s1", "s2"] {
        let (status, v) = srv
            .call(
                "POST",
                "/v1/schools",
                Some(&srv.admin),
                Some(json!({"id": s, "name": format!("学校{s}"), "jurisdiction": "test-district", "area": "东区", "level": "primary"})),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
    let reg = srv
        .token(json!({"role": "registrar", "school": "s1"}))
        .await;
    let lead = srv
        .token(json!({"role": "school_leader", "school": "s1"}))
        .await;
    (reg, lead)
}

pub(crate) fn admit_at(x: &Xueji, school: &str, seq: u32) -> String {
    let mut f = form(&format!("学生{seq}"), &id_card("2017-02-01", seq));
    f.school = school.into();
    match x.admit(f, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => student.id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_is_a_job_with_a_report_and_the_school_approves_it_at_once() {
    let srv = spawn_server_with(&reviewed_registration()).await;
    let (reg, lead) = school_and_tokens(&srv).await;
    let ids: Vec<String> = (1..=5).map(|i| admit_at(&srv.xueji, "s1", i)).collect();
    let body = json!({"kind": "register", "school": "s1", "effective_date": "2024-09-02"});
    // Idempotency-Key: a retry answers the same batch, and only one runs.
    let post = || {
        srv.client
            .post(format!("{}/v1/batches", srv.base))
            .bearer_auth(&reg)
            .header("Idempotency-Key", "intake-2024")
            .json(&body)
            .send()
    };
    let first = post().await.expect("post");
    assert_eq!(first.status().as_u16(), 202);
    let first: Value = first.json().await.expect("json");
    let again: Value = post().await.expect("retry").json().await.expect("json");
    assert_eq!(first["id"], again["id"]);
    let id = first["id"].as_str().expect("id").to_owned();
    let done = wait_done(&srv, &reg, &id).await;
    assert_eq!(done["status"], "done");
    assert_eq!(
        done["counts"],
        json!({"applied": 0, "pending": 5, "denied": 0, "skipped": 0})
    );
    let citation = done["items"][0]["rules"][0]["citation"]
        .as_str()
        .unwrap_or("");
    assert!(citation.ends_with("第四条"), "{citation}");
    // Paged: two at a time.
    let (_, page) = srv
        .call(
            "GET",
            &format!("/v1/batches/{id}?limit=2"),
            Some(&reg),
            None,
        )
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    let cursor = page["next_cursor"].as_str().expect("more pages");
    let (_, next) = srv
        .call(
            "GET",
            &format!("/v1/batches/{id}?limit=2&cursor={cursor}"),
            Some(&reg),
            None,
        )
        .await;
    assert_ne!(next["items"][0]["student"], page["items"][0]["student"]);
    // A registrar may not approve the school's step; the leader signs off all five at once.
    let (status, _) = srv
        .call(
            "POST",
            &format!("/v1/batches/{id}/approve"),
            Some(&reg),
            Some(json!({"step": "school"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, v) = srv
        .call(
            "POST",
            &format!("/v1/batches/{id}/approve"),
            Some(&lead),
            Some(json!({"step": "school", "comment": "同意注册"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"approved": 0, "applied": 5, "denied": 0, "skipped": 0})
    );
    for s in &ids {
        let student = srv.xueji.student(s).expect("student");
        assert_eq!(student.status, Status::Enrolled);
        let events = srv.xueji.events(s).expect("events");
        assert_eq!(events.len(), 2);
        assert!(
            events[1].request.is_some(),
            "recorded per student with its request"
        );
    }
    let (_, after) = srv
        .call("GET", &format!("/v1/batches/{id}"), Some(&reg), None)
        .await;
    assert_eq!(after["counts"]["applied"], 5);
    // The report as files: CSV with a BOM and Chinese headers, XLSX (a zip).
    for (format, magic) in [("csv", &b"\xEF\xBB\xBF"[..]), ("xlsx", &b"PK"[..])] {
        let resp = srv
            .client
            .get(format!("{}/v1/batches/{id}?format={format}", srv.base))
            .bearer_auth(&reg)
            .send()
            .await
            .expect("download");
        assert_eq!(resp.status().as_u16(), 200);
        let bytes = resp.bytes().await.expect("bytes");
        assert!(bytes.starts_with(magic), "{format}");
        if format == "csv" {
            let text = String::from_utf8_lossy(&bytes[3..]).into_owned();
            assert!(
                text.starts_with("序号,学生编号,姓名,年级,班级,结果"),
                "{text}"
            );
            assert_eq!(text.lines().count(), 6);
        }
    }
    // A dry run downloads too, and stores nothing.
    let resp = srv
        .client
        .post(format!("{}/v1/batches?dry_run=true&format=csv", srv.base))
        .bearer_auth(&reg)
        .json(&json!({"kind": "promote", "school": "s1", "effective_date": "2025-07-10"}))
        .send()
        .await
        .expect("dry run");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.expect("text");
    assert!(text.contains("已办理"), "{text}");
    assert_eq!(srv.xueji.student(&ids[0]).expect("s").grade, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_batches_are_refused_and_run_nothing() {
    let srv = spawn_server().await;
    let (reg, _) = school_and_tokens(&srv).await;
    let mine = admit_at(&srv.xueji, "s1", 1);
    let theirs = admit_at(&srv.xueji, "s2", 2);
    let post = |body: Value| srv.call("POST", "/v1/batches", Some(&reg), Some(body));
    // A student of another school: 404, nothing run.
    let (status, v) = post(json!({"kind": "register", "school": "s1", "students": [mine, theirs], "effective_date": "2024-09-02"})).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["code"], "not_found");
    assert_eq!(
        srv.xueji.student(&mine).expect("mine").status,
        Status::Admitted
    );
    // Another school altogether: 404 as well.
    let (status, _) =
        post(json!({"kind": "register", "school": "s2", "effective_date": "2024-09-02"})).await;
    assert_eq!(status, 404);
    // A kind the state machine does not know, and one no batch runs: 400 on `kind`.
    for kind in ["levitate", "suspend"] {
        let (status, v) =
            post(json!({"kind": kind, "school": "s1", "effective_date": "2024-09-02"})).await;
        assert_eq!(status, 400, "{kind}: {v}");
        assert_eq!(v["error"]["details"]["errors"][0]["field"], "kind", "{v}");
    }
    // An empty selection.
    let (status, v) = post(
        json!({"kind": "promote", "school": "s1", "grade": 5, "effective_date": "2025-07-10"}),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        v["error"]["details"]["errors"][0]["code"], "empty_selection",
        "{v}"
    );
    // A second batch on students a running one holds.
    let running = srv
        .xueji
        .create_batch(
            &serde_json::from_value(json!({"kind": "register", "school": "s1", "students": [mine], "effective_date": "2024-09-02"})).expect("spec"),
            &registrar(),
            &|_| true,
        )
        .expect("held");
    let (status, v) =
        post(json!({"kind": "register", "school": "s1", "effective_date": "2024-09-02"})).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "batch_students_held");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&running.id))
    );
    assert_eq!(
        srv.xueji.student(&mine).expect("mine").status,
        Status::Admitted
    );
    // Out of scope, a batch is not found.
    let other = srv
        .token(json!({"role": "registrar", "school": "s2"}))
        .await;
    let (status, _) = srv
        .call(
            "GET",
            &format!("/v1/batches/{}", running.id),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

/// A served store's batch, killed with SIGKILL mid-way and resumed by the next start: every
/// student promoted exactly once. The intake comes from one import with `register=true`.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_killed_mid_way_resumes_on_start_and_applies_no_student_twice() {
    use crate::process::{free_port, run_cli, serve, stop, text, wait_up};
    const N: usize = 2_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let admin = "batch-kill-test-admin-token";
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: String, token: String, body: Option<Value>| {
        let req = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        async move {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let mut server = serve(&data, port, admin);
    wait_up(&client, &base, &mut server).await;
    let (status, v) = call(
        reqwest::Method::POST,
        "/v1/schools".into(),
        admin.into(),
        Some(json!({"id": "zh-1", "name": "珠海市第一小学", "jurisdiction": "zhuhai-k12", "area": "香洲区", "level": "primary"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let mut csv = String::from(
        "name,gender,birth_date,id_card,grade,class,entry_date,guardian_name,guardian_relation,guardian_phone\n",
    );
    for n in 0..N {
        let birth = format!("2016-05-{:02}", 1 + n / 1000);
        let id = id_card(&birth, (n % 1000) as u32);
        let male = (id.as_bytes()[16] - b'0') % 2 == 1;
        csv.push_str(&format!(
            "学生{n},{},{birth},{id},{},{},2025-09-01,家长{n},母亲,13800000000\n",
            if male { "男" } else { "女" },
            1 + n % 4,
            1 + n % 10
        ));
    }
    let resp = client
        .post(format!(
            "{base}/v1/students/import?school=zh-1&register=true&register_date=2025-09-01"
        ))
        .bearer_auth(admin)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("import");
    assert_eq!(resp.status().as_u16(), 201);
    let report: Value = resp.json().await.expect("report");
    let register = report["batches"][0]
        .as_str()
        .expect("a registration batch")
        .to_owned();
    let wait = |id: String| {
        let call = &call;
        async move {
            loop {
                let (status, v) = call(
                    reqwest::Method::GET,
                    format!("/v1/batches/{id}?limit=1"),
                    admin.into(),
                    None,
                )
                .await;
                assert_eq!(status, 200, "{v}");
                if v["status"] != "running" {
                    return v;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let registered = wait(register.clone()).await;
    let counts = &registered["counts"];
    assert_eq!(
        counts["applied"].as_u64().unwrap_or(0) + counts["pending"].as_u64().unwrap_or(0),
        N as u64,
        "{registered}"
    );
    // Where the package asks the school's review of registration, it is given for all at once.
    let (status, v) = call(
        reqwest::Method::POST,
        format!("/v1/batches/{register}/approve"),
        admin.into(),
        Some(json!({"step": "school"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let registered = wait(register).await;
    assert_eq!(registered["counts"]["applied"], N, "{registered}");

    let (status, v) = call(
        reqwest::Method::POST,
        "/v1/batches".into(),
        admin.into(),
        Some(json!({"kind": "promote", "school": "zh-1", "effective_date": "2026-07-10"})),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let promote = v["id"].as_str().expect("id").to_owned();
    // Killed once some students are done, and not all.
    let done_at_kill = loop {
        let (_, v) = call(
            reqwest::Method::GET,
            format!("/v1/batches/{promote}?limit=1"),
            admin.into(),
            None,
        )
        .await;
        let done = v["counts"]["applied"].as_u64().unwrap_or(0);
        assert_eq!(
            v["status"], "running",
            "the batch ended before it could be killed: {v}"
        );
        if done > 0 {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    server.kill().expect("SIGKILL");
    server.wait().expect("reaped");
    assert!((done_at_kill as usize) < N);

    let mut server = serve(&data, port, admin);
    wait_up(&client, &base, &mut server).await;
    let ended = wait(promote.clone()).await;
    assert_eq!(ended["status"], "done", "{ended}");
    assert_eq!(
        ended["counts"],
        json!({"applied": N, "pending": 0, "denied": 0, "skipped": 0})
    );
    stop(server);

    // Each student: admitted, registered, promoted once; every chain and statistic sound.
    let registry = xueji::policy::PolicyRegistry::from_packages(&xueji::policy::builtin_packages())
        .expect("built-in packages");
    let x = Xueji::new(
        xueji::store::Store::open(&data.join("xueji.redb")).expect("reopen"),
        std::sync::Arc::new(registry),
    );
    let ids = x.batch(&promote).expect("the batch").students;
    assert_eq!(ids.len(), N);
    for id in &ids {
        let s = x.student(id).expect("student");
        assert_eq!(s.version, 3, "{id}: promoted more than once, or not at all");
        assert!((2..=5).contains(&s.grade));
    }
    let report = x.verify_all().expect("verify");
    assert!(report.ok, "{report:?}");
    drop(x);

    // The command line decides the next promotion without storing it.
    let out = run_cli(&[
        "batch",
        "promote",
        "--data",
        data.to_str().expect("utf-8"),
        "--school",
        "zh-1",
        "--date",
        "2027-07-10",
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("试办理(未保存)— 批量升级:已办理 {N} 人")),
        "{stdout}"
    );
}
