//! Changing rules on a running service: the activation gate, dated versions, reproducible
//! decisions and impact replay.

use serde_json::{Value, json};

use super::helpers::*;

async fn setup_with_student() -> (TestServer, String) {
    let s = spawn_server().await;
    s.call("POST", "/v1/schools", Some(&s.admin), Some(json!({"id": "s1", "name": "一小", "jurisdiction": "test-district", "area": "东区", "level": "primary"}))).await;
    let body = json!({"school": "s1", "name": "甲", "gender": "female", "birth_date": "2016-05-01", "id_card": id_card("2016-05-01", 2), "grade": 3, "class": "4", "entry_date": "2024-09-01"});
    let (st, v) = s
        .call("POST", "/v1/students", Some(&s.admin), Some(body))
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["student"]["id"].as_str().expect("id").to_owned();
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&s.admin),
            Some(json!({"kind": "register", "effective_date": "2024-09-02"})),
        )
        .await;
    assert_eq!(st, 201);
    (s, id)
}

fn with_file(path: &str, text: &str) -> Value {
    let mut files = test_upload();
    files.insert(path.into(), text.into());
    json!({ "files": files })
}

async fn active_hash(s: &TestServer) -> String {
    let (_, v) = s
        .call("GET", "/v1/policies/test-district", Some(&s.admin), None)
        .await;
    v["content_hash"].as_str().expect("hash").to_owned()
}

#[tokio::test]
async fn broken_uploads_are_refused_precisely_and_change_nothing() {
    let (s, _) = setup_with_student().await;
    let before = active_hash(&s).await;
    let bad_syntax = with_file(
        "rules.rhai",
        &format!(
            "{TEST_RULES}\nrule(#{{ id: \"test.x.y\", on: [\"suspend\"], cites: \"t 第九条\", check: |c| {{ deny(\"x\" }} }});"
        ),
    );
    let no_citation = with_file(
        "extra.rhai",
        "rule(#{ id: \"test.x.z\", on: [\"suspend\"], check: |c| { () } });",
    );
    let undeclared = with_file(
        "extra.rhai",
        "rule(#{ id: \"test.x.z\", on: [\"expel\"], cites: \"t 第九条\", replaces: \"national_k12.expel.compulsory\", check: |c| { () } });",
    );
    let failing = with_file(
        "tests/cases.toml",
        &TEST_CASES.replace(
            "expect = { outcome = \"applied\", rules = [\"test.change_class.direct\"] }",
            "expect = { outcome = \"denied\", rules = [\"test.change_class.direct\"] }",
        ),
    );
    for (name, body, check) in [
        ("syntax", bad_syntax, "policy_syntax"),
        ("citation", no_citation, "cites"),
        ("override", undeclared, "policy_override"),
        ("test", failing, "outcome: expected denied, got applied"),
    ] {
        let (st, v) = s
            .call(
                "PUT",
                "/v1/policies/test-district",
                Some(&s.admin),
                Some(body),
            )
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (422, Some("policy_rejected")),
            "{name}: {v}"
        );
        assert!(v.to_string().contains(check), "{name}: {v}");
        if name == "syntax" {
            let pos = &v["error"]["details"]["errors"][0]["position"];
            assert_eq!(pos["file"], "rules.rhai");
            assert!(pos["line"].as_u64().is_some_and(|l| l > 20), "{pos}");
        }
    }
    assert_eq!(
        active_hash(&s).await,
        before,
        "the old version stays active"
    );
}

#[tokio::test]
async fn a_valid_upload_changes_decisions_and_old_ones_still_reproduce() {
    let (s, id) = setup_with_student().await;
    // Stricter: a class change now also needs the school's approval.
    let stricter = TEST_RULES.replace(
        "allow(\"调班由学校办理\")",
        "approve([\"school\"], \"调班须学校审批\")",
    );
    let cases = TEST_CASES.replace(
        "expect = { outcome = \"applied\", rules = [\"test.change_class.direct\"] }",
        "expect = { outcome = \"pending\", rules = [\"test.change_class.direct\"] }",
    );
    let (st, _) = s.call("POST", &format!("/v1/students/{id}/transitions"), Some(&s.admin), Some(json!({"kind": "change_class", "effective_date": "2025-03-01", "params": {"class": "5"}}))).await;
    assert_eq!(st, 201, "applied under the first version");

    let mut upload = test_upload();
    upload.insert("rules.rhai".into(), stricter.clone().into());
    upload.insert("tests/cases.toml".into(), cases.into());
    // Impact first: exactly the recorded class change would flip.
    let (st, impact) = s
        .call(
            "POST",
            "/v1/policies/test-district/impact",
            Some(&s.admin),
            Some(json!({"files": upload})),
        )
        .await;
    assert_eq!(st, 200, "{impact}");
    let changed = impact["changed"].as_array().expect("changed");
    assert_eq!(changed.len(), 1, "{impact}");
    assert_eq!(
        (
            changed[0]["kind"].as_str(),
            changed[0]["before"].as_str(),
            changed[0]["after"].as_str()
        ),
        (Some("change_class"), Some("applied"), Some("pending"))
    );
    assert_eq!(impact["by_outcome"]["applied→pending"], 1);
    // The unchanged package changes nothing.
    let (_, same) = s
        .call(
            "POST",
            "/v1/policies/test-district/impact",
            Some(&s.admin),
            Some(json!({"files": test_upload()})),
        )
        .await;
    assert_eq!(same["changed"], json!([]), "{same}");
    assert!(same["replayed_events"].as_u64().is_some_and(|n| n >= 3));

    let (st, v) = s
        .call(
            "PUT",
            "/v1/policies/test-district",
            Some(&s.admin),
            Some(json!({"files": upload})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.call("POST", &format!("/v1/students/{id}/transitions"), Some(&s.admin), Some(json!({"kind": "change_class", "effective_date": "2025-03-02", "params": {"class": "6"}}))).await;
    assert_eq!(
        (st, v["outcome"].as_str()),
        (202, Some("pending")),
        "decided by the new version: {v}"
    );
    // Every recorded decision reproduces under the version it records.
    let (st, v) = s.call("GET", "/v1/verify", Some(&s.admin), None).await;
    assert_eq!(st, 200);
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["decisions"]["decisions"].as_u64().is_some_and(|n| n >= 3),
        "{v}"
    );
}

#[tokio::test]
async fn two_dated_versions_each_decide_on_their_own_dates() {
    let (s, id) = setup_with_student().await;
    let mut upload = test_upload();
    let later = TEST_MANIFEST
        .replace("version = \"1\"", "version = \"2\"")
        .replace(
            "effective_from = \"2020-01-01\"",
            "effective_from = \"2026-01-01\"",
        );
    upload.insert("policy.toml".into(), later.into());
    let grade_rule = "if c.student.grade >= 3 { return deny(\"2026 年起三年级及以上学期中不得调班\"); }\n    allow(\"调班由学校办理\")";
    upload.insert(
        "rules.rhai".into(),
        TEST_RULES
            .replace("allow(\"调班由学校办理\")", grade_rule)
            .into(),
    );
    // The new outcome has its case, or the gate refuses the version (every outcome reached).
    upload.insert(
        "tests/grade.toml".into(),
        "[[case]]\nname = \"三年级学期中调班\"\nstudent = { grade = 3 }\ntransition = { kind = \"change_class\", effective_date = \"2026-03-02\", params = { class = \"5\" } }\nexpect = { outcome = \"denied\", rules = [\"test.change_class.direct\"] }\n".into(),
    );
    let (st, v) = s
        .call(
            "PUT",
            "/v1/policies/test-district",
            Some(&s.admin),
            Some(json!({"files": upload})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let path = format!("/v1/students/{id}/transitions?dry_run=true");
    let (_, early) = s.call("POST", &path, Some(&s.admin), Some(json!({"kind": "change_class", "effective_date": "2025-12-31", "params": {"class": "5"}}))).await;
    let (_, late) = s.call("POST", &path, Some(&s.admin), Some(json!({"kind": "change_class", "effective_date": "2026-01-01", "params": {"class": "5"}}))).await;
    assert_eq!(
        (
            early["decision"]["allowed"].as_bool(),
            early["decision"]["policy"]["version"].as_str()
        ),
        (Some(true), Some("1"))
    );
    assert_eq!(
        (
            late["decision"]["allowed"].as_bool(),
            late["decision"]["policy"]["version"].as_str()
        ),
        (Some(false), Some("2"))
    );
}

#[tokio::test]
async fn only_admins_and_jurisdiction_wide_officers_upload() {
    let (s, _) = setup_with_student().await;
    let area_officer = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}))
        .await;
    let city_officer = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district"}))
        .await;
    let registrar = s.token(json!({"role": "registrar", "school": "s1"})).await;
    let body = json!({"files": test_upload()});
    assert_eq!(
        s.call(
            "PUT",
            "/v1/policies/test-district",
            Some(&registrar),
            Some(body.clone())
        )
        .await
        .0,
        403
    );
    assert_eq!(
        s.call(
            "PUT",
            "/v1/policies/test-district",
            Some(&area_officer),
            Some(body.clone())
        )
        .await
        .0,
        403
    );
    assert_eq!(
        s.call(
            "PUT",
            "/v1/policies/national-k12",
            Some(&city_officer),
            Some(body.clone())
        )
        .await
        .0,
        404
    );
    let (st, v) = s
        .call(
            "PUT",
            "/v1/policies/test-district",
            Some(&city_officer),
            Some(body),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

#[test]
fn stored_versions_come_back_after_a_restart() {
    let t = engine();
    let x = &t.xueji;
    let files: std::collections::BTreeMap<String, String> = test_upload()
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let mut files2 = files.clone();
    files2.insert(
        "rules.rhai".into(),
        format!("{TEST_RULES}\n// 修订说明:无实质变化\n"),
    );
    let actor = xueji::domain::Actor {
        id: "tok_admin".into(),
        role: "admin".into(),
    };
    let v2 = x
        .activate(
            "test-district",
            &xueji::policy::PackageSource { files: files2 },
            &actor,
        )
        .expect("store")
        .expect("accepted");
    let s = enrolled(x, "乙", 4);
    let TestEngine {
        xueji,
        dir,
        store_at,
    } = t;
    drop(xueji);
    let store = store_at.open().expect("store reopens");
    let registry = xueji::policy::PolicyRegistry::from_packages(&test_packages()).expect("compile");
    let again = xueji::engine::Xueji::new(store, std::sync::Arc::new(registry));
    again.restore_policies().expect("restore");
    assert_eq!(
        again
            .policies()
            .latest("test-district")
            .expect("pkg")
            .content_hash,
        v2.content_hash
    );
    let report = again.reproduce_decisions(None).expect("reproduce");
    assert!(report.ok && report.decisions >= 2, "{report:?}");
    assert!(again.verify_student(&s.id).expect("verify").ok);
    drop(dir);
}

fn write_package(dir: &std::path::Path, files: &std::collections::BTreeMap<String, String>) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
}

fn upload_files() -> std::collections::BTreeMap<String, String> {
    test_upload()
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

#[test]
fn an_edit_in_the_watched_folder_activates_and_a_broken_one_does_not() {
    let t = engine();
    let folder = tempfile::tempdir().expect("dir");
    let mut set = xueji::policy::builtin_packages();
    set.packages.retain(|id, _| id == "national-k12");
    for (id, src) in &set.packages {
        write_package(&folder.path().join(id), &src.files);
    }
    let pkg = folder.path().join("test-district");
    write_package(&pkg, &upload_files());
    let initial = xueji::policy::PackageSet::read_dir(folder.path()).expect("read");
    let mut watch = xueji::engine::lifecycle::FolderWatch::new(&initial);
    assert!(
        watch
            .sync(&t.xueji, folder.path())
            .expect("sync")
            .activated
            .is_empty(),
        "nothing edited yet"
    );

    let before = t
        .xueji
        .policies()
        .latest("test-district")
        .expect("pkg")
        .content_hash
        .clone();
    std::fs::write(
        pkg.join("rules.rhai"),
        format!("{TEST_RULES}\n// 修订:注释\n"),
    )
    .expect("edit");
    let s = watch.sync(&t.xueji, folder.path()).expect("sync");
    assert_eq!(s.activated.len(), 1, "{s:?}");
    let edited = t
        .xueji
        .policies()
        .latest("test-district")
        .expect("pkg")
        .content_hash
        .clone();
    assert_ne!(edited, before);

    std::fs::write(
        pkg.join("rules.rhai"),
        format!("{TEST_RULES}\nrule(#{{ id: \"test.a.b\" "),
    )
    .expect("broken edit");
    let s = watch.sync(&t.xueji, folder.path()).expect("sync");
    assert_eq!(s.rejected.len(), 1, "{s:?}");
    assert_eq!(s.rejected[0].1.errors[0].code, "policy_syntax");
    assert_eq!(
        t.xueji
            .policies()
            .latest("test-district")
            .expect("pkg")
            .content_hash,
        edited,
        "the broken edit is not active"
    );
}

/// Guards against a torn swap: the two versions decide a class change with different words and
/// citations, so a decision stamped with one version's hash but taken under the other's rules
/// (or a mix of both) matches neither. Writers start under the first version, the swap happens
/// while they run, and each goes on until it has filed transitions begun after the swap.
#[test]
fn transitions_during_a_swap_each_run_under_one_whole_version() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use xueji::domain::{Decision, TransitionInput, TransitionKind};
    use xueji::engine::Outcome;
    const BEFORE: usize = 2;
    const AFTER: usize = 3;
    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

    /// Sets the flag when dropped, so the writers stop even if the swapping thread fails.
    struct SetOnDrop<'a>(&'a AtomicBool);
    impl Drop for SetOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    let t = engine();
    let students: Vec<_> = (0..4)
        .map(|i| enrolled(&t.xueji, &format!("学生{i}"), 20 + i * 2))
        .collect();
    let class_change = |i: usize| {
        let mut input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-03-02"));
        input
            .params
            .insert("class".into(), json!(format!("{}", i % 3 + 1)));
        input
    };
    // What a decision says apart from the student's own new class.
    let whole = |d: &Decision| Decision {
        changes: Default::default(),
        ..d.clone()
    };
    let dry_run = || match t
        .xueji
        .transition(&students[0].id, class_change(0), &registrar(), true)
        .expect("dry run")
    {
        Outcome::DryRun { decision } => whole(&decision),
        other => panic!("{other:?}"),
    };
    let v1 = dry_run();
    let mut files = upload_files();
    files.insert(
        "policy.toml".into(),
        TEST_MANIFEST.replace("version = \"1\"", "version = \"2\""),
    );
    files.insert(
        "rules.rhai".into(),
        TEST_RULES
            .replace("cites: \"t 第二条\"", "cites: \"t 第二条之一\"")
            .replace(
                "allow(\"调班由学校办理\")",
                "allow(\"调班由学校直接办理(修订)\")",
            ),
    );
    let actor = xueji::domain::Actor {
        id: "tok_admin".into(),
        role: "admin".into(),
    };
    let swapped = AtomicBool::new(false);
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    // Per writer, in its order: the decision and whether the swap had returned before it began.
    let (runs, activated): (Vec<Vec<(Decision, bool)>>, String) = std::thread::scope(|scope| {
        let writers: Vec<_> = students
            .iter()
            .map(|s| {
                let (x, swapped, started) = (&t.xueji, &swapped, started_tx.clone());
                scope.spawn(move || {
                    let mut run = Vec::new();
                    let mut after = 0;
                    while after < AFTER {
                        let begun_after_swap = swapped.load(Ordering::SeqCst);
                        let out = x
                            .transition(&s.id, class_change(run.len()), &registrar(), false)
                            .expect("transition succeeds during the swap");
                        let Outcome::Applied { decision, .. } = out else {
                            panic!("{out:?}")
                        };
                        run.push((decision, begun_after_swap));
                        after += usize::from(begun_after_swap);
                        if run.len() == BEFORE {
                            started.send(()).expect("the swapping thread waits");
                        }
                    }
                    run
                })
            })
            .collect();
        drop(started_tx);
        let activated = {
            let _stop = SetOnDrop(&swapped);
            for _ in &students {
                started_rx
                    .recv_timeout(PATIENCE)
                    .expect("every writer files transitions before the swap");
            }
            t.xueji
                .activate(
                    "test-district",
                    &xueji::policy::PackageSource { files },
                    &actor,
                )
                .expect("store")
                .expect("accepted")
                .content_hash
                .clone()
        };
        let runs = writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect();
        (runs, activated)
    });
    let v2 = dry_run();
    assert_eq!(v2.policy.content_hash, activated);
    assert_ne!(v1.policy.content_hash, v2.policy.content_hash);
    assert_eq!(
        (v1.policy.version.as_str(), v2.policy.version.as_str()),
        ("1", "2")
    );
    assert_ne!(
        v1.rules, v2.rules,
        "the versions decide in words of their own"
    );
    let (mut under_v1, mut under_v2) = (0, 0);
    for (w, run) in runs.iter().enumerate() {
        let mut seen_v2 = false;
        for (n, (decision, begun_after_swap)) in run.iter().enumerate() {
            let decision = whole(decision);
            let is_v2 = if decision == v1 {
                false
            } else if decision == v2 {
                true
            } else {
                panic!("writer {w}, transition {n}: under neither whole version: {decision:?}")
            };
            assert!(
                is_v2 || !seen_v2,
                "writer {w}, transition {n}: the old version again after the new one"
            );
            assert!(
                is_v2 || !begun_after_swap,
                "writer {w}, transition {n}: begun after the swap, decided under the old version"
            );
            seen_v2 |= is_v2;
            if is_v2 {
                under_v2 += 1;
            } else {
                under_v1 += 1;
            }
        }
        assert!(
            run[..BEFORE].iter().all(|(d, _)| whole(d) == v1),
            "writer {w}: decided under the new version before it was activated"
        );
        // Stored as decided, in the same order.
        let events = t.xueji.events(&students[w].id).expect("events");
        let stored: Vec<Decision> = events[2..].iter().map(|e| whole(&e.decision)).collect();
        let answered: Vec<Decision> = run.iter().map(|(d, _)| whole(d)).collect();
        assert_eq!(stored, answered, "writer {w}");
    }
    assert!(
        under_v1 >= 4 * BEFORE && under_v2 >= 4 * AFTER,
        "{under_v1} {under_v2}"
    );
    let report = t.xueji.reproduce_decisions(None).expect("reproduce");
    assert!(report.ok, "{report:?}");
    assert!(
        report.decisions >= under_v1 + under_v2,
        "{} decisions reproduced of at least {}",
        report.decisions,
        under_v1 + under_v2
    );
}

#[test]
fn policy_diff_reports_rules_params_and_decisions() {
    let root = tempfile::tempdir().expect("dir");
    let (old, new) = (root.path().join("old"), root.path().join("new"));
    write_package(&old, &upload_files());
    let mut files = upload_files();
    files.insert(
        "rules.rhai".into(),
        TEST_RULES.replace(
            "allow(\"调班由学校办理\")",
            "approve([\"school\"], \"调班须学校审批\")",
        ),
    );
    files.insert(
        "policy.toml".into(),
        TEST_MANIFEST.replace("version = \"1\"", "version = \"2\""),
    );
    write_package(&new, &files);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xueji"))
        .args(["policy", "diff"])
        .arg(&old)
        .arg(&new)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 → 2"), "{text}");
    assert!(text.contains("«调班»: applied → pending"), "{text}");
    assert!(text.contains("1 of 8 cases decide differently"), "{text}");
}
