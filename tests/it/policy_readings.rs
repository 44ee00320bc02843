//! Issue #16, second reading of the seed texts: what a corrected reading does to a store that
//! already holds decisions taken under the earlier one, and the national bases' review step seen
//! through the real service.

use crate::helpers::*;
use serde_json::json;
use std::collections::BTreeMap;
use xueji::domain::{TransitionInput, TransitionKind};
use xueji::engine::{Outcome, Xueji};
use xueji::policy::{PackageSource, PolicyRegistry};

/// The test packages with the district's class change corrected in place (same version date):
/// it now asks the school's approval.
fn corrected_packages() -> xueji::policy::PackageSet {
    let mut set = test_packages();
    let files: BTreeMap<String, String> = [
        ("policy.toml".to_owned(), TEST_MANIFEST.to_owned()),
        (
            "rules.rhai".to_owned(),
            TEST_RULES.replace(
                "allow(\"调班由学校办理\")",
                "approve([\"school\"], \"调班须经学校审核\")",
            ),
        ),
    ]
    .into();
    set.packages
        .insert("test-district".into(), PackageSource { files });
    set
}

fn class_change(class: &str) -> TransitionInput {
    let mut input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-03-02"));
    input.params.insert("class".into(), json!(class));
    input
}

/// A seed package corrected in place (a new binary, the same `effective_from`) decides the new
/// cases from its first start on; the decisions taken under the version it replaced still
/// reproduce, and the replaced version no longer decides.
#[test]
fn a_seed_corrected_in_place_decides_new_cases_and_old_decisions_still_reproduce() {
    let t = engine();
    let x = &t.xueji;
    x.restore_policies().expect("first start stores the seed");
    let first = x
        .policies()
        .latest("test-district")
        .expect("pkg")
        .content_hash
        .clone();
    let s = enrolled(x, "甲", 41);
    assert!(matches!(
        x.transition(&s.id, class_change("5"), &registrar(), false)
            .expect("class change"),
        Outcome::Applied { .. }
    ));
    let path = t.dir.path().join("xueji.redb");
    let TestEngine { xueji, dir, .. } = t;
    drop(xueji);

    let registry = PolicyRegistry::from_packages(&corrected_packages()).expect("compile");
    let again = Xueji::new(
        xueji::store::Store::open(&path).expect("reopen"),
        std::sync::Arc::new(registry),
    );
    again.restore_policies().expect("second start");
    let now = again.policies().latest("test-district").expect("pkg");
    assert_ne!(now.content_hash, first, "the corrected seed is in force");
    assert!(
        again.policies().by_hash(&first).is_some(),
        "the old one is kept"
    );
    match again
        .transition(&s.id, class_change("6"), &registrar(), false)
        .expect("class change")
    {
        Outcome::Pending { decision, .. } => {
            assert_eq!(decision.policy.content_hash, now.content_hash)
        }
        other => panic!("decided by the corrected reading: {other:?}"),
    }
    let report = again.reproduce_decisions(None).expect("reproduce");
    assert!(report.ok && report.decisions >= 3, "{report:?}");

    // A third start with the same binary changes nothing: the corrected seed stays in force.
    drop(again);
    let registry = PolicyRegistry::from_packages(&corrected_packages()).expect("compile");
    let third = Xueji::new(
        xueji::store::Store::open(&path).expect("reopen"),
        std::sync::Arc::new(registry),
    );
    third.restore_policies().expect("third start");
    assert_eq!(
        third
            .policies()
            .latest("test-district")
            .expect("pkg")
            .content_hash,
        now.content_hash
    );
    assert!(third.reproduce_decisions(None).expect("reproduce").ok);
    drop(dir);
}

/// Shenyang (national-vocational): a suspension is no longer applied in one call; it is a
/// request for the school's review, applied by the school leader's approval.
#[tokio::test]
async fn a_shenyang_suspension_waits_for_the_schools_review() {
    let s = spawn_server_with(&xueji::policy::builtin_packages()).await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/schools",
            Some(&s.admin),
            Some(json!({"id": "sy1", "name": "沈阳市第一职业技术学校", "jurisdiction": "shenyang-vocational", "level": "vocational"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let x = &s.xueji;
    let mut f = form("沈同学", &id_card("2009-05-01", 7));
    f.school = "sy1".into();
    f.grade = 1;
    let student = match x.admit(f, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => student,
        other => panic!("{other:?}"),
    };
    let mut register = TransitionInput::new(TransitionKind::Register, d("2024-09-02"));
    register
        .params
        .insert("forms".into(), json!(["written", "electronic"]));
    x.transition(&student.id, register, &registrar(), false)
        .expect("register");
    let registrar_token = s.token(json!({"role": "registrar", "school": "sy1"})).await;
    let leader = s
        .token(json!({"role": "school_leader", "school": "sy1"}))
        .await;
    let path = format!("/v1/students/{}/transitions", student.id);
    let (st, v) = s
        .call(
            "POST",
            &path,
            Some(&registrar_token),
            Some(json!({"kind": "suspend", "effective_date": "2024-10-08", "reason": "illness", "params": {"until": "2025-07-01"}})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["decision"]["approvals"], json!(["school"]));
    let rules: Vec<&str> = v["decision"]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(rules.contains(&"national_vocational.review.school"), "{v}");
    let (_, now) = s
        .call(
            "GET",
            &format!("/v1/students/{}", student.id),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(
        now["status"], "enrolled",
        "nothing applied before the review"
    );
    let req = v["request"]["id"].as_str().expect("request").to_owned();
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/requests/{req}/approve"),
            Some(&leader),
            Some(json!({"step": "school", "comment": "同意休学"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (_, now) = s
        .call(
            "GET",
            &format!("/v1/students/{}", student.id),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(now["status"], "suspended", "{now}");
}

/// `xueji policy check` resolves names, both ways: the seed package as it is passes; the same
/// package with one misspelt helper is refused, naming the file, line and column and the helper
/// meant, before any case runs.
#[test]
fn policy_check_names_a_misspelt_helper_with_its_place() {
    let root = tempfile::tempdir().expect("dir");
    let dir = root.path().join("yanhe-primary");
    let seed = &xueji::policy::builtin_packages().packages["yanhe-primary"];
    let write = |files: &BTreeMap<String, String>| {
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
    };
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_xueji"))
            .args(["policy", "check"])
            .arg(&dir)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run")
    };
    write(&seed.files);
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut files = seed.files.clone();
    let suspend = files["suspend.rhai"].replace("c.has_issued(", "c.has_issud(");
    assert_ne!(suspend, files["suspend.rhai"]);
    files.insert("suspend.rhai".into(), suspend);
    write(&files);
    let out = check();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("suspend.rhai:7:26: policy_unknown_function"),
        "{text}"
    );
    assert!(text.contains("是否想写 `has_issued`"), "{text}");
}
