//! Every case of every seed package decides the same through the public HTTP API
//! (`POST /v1/policies/{id}/evaluate`) as in the library's package tests.

use serde_json::json;

use super::helpers::*;

/// Each case is sent over HTTP and its answer compared with the library's own run of it: the
/// whole decision (rules with their words and citations, approvals, documents, changes,
/// deadlines, the version), or for a script error, the error code; and that run must pass.
#[tokio::test]
async fn every_seed_case_decides_the_same_over_http() {
    let packages = xueji::policy::builtin_packages();
    let s = spawn_server_with(&packages).await;
    let mut checked = 0;
    let mut with_settings = 0;
    let mut failures = Vec::new();
    for (id, source) in &packages.packages {
        let policy = s.xueji.policies().latest(id).expect("package in force");
        let mut library = xueji::policy::testing::run_package_tests(&policy)
            .unwrap_or_else(|e| panic!("{id}: cases load: {e:?}"))
            .into_iter();
        for (file, text) in source.test_files() {
            let doc: toml::Value = toml::from_str(text).expect("case file");
            let cases = serde_json::to_value(&doc).expect("json")["case"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for case in cases {
                let own = library.next().expect("the library ran this case too");
                // A case that sets the package's settings itself (a base package's rule on a
                // limit its school packages set) is not the package in force: the library's run
                // (which must pass) is its check.
                if case.get("settings").is_some() {
                    assert!(own.passed, "{id} {file} «{}»: {:?}", own.name, own.failures);
                    with_settings += 1;
                    continue;
                }
                assert_eq!(
                    (own.file.as_str(), Some(own.name.as_str())),
                    (file, case["name"].as_str()),
                    "{id}: the library's cases in another order"
                );
                assert!(own.passed, "{id} {file} «{}»: {:?}", own.name, own.failures);
                let body = json!({
                    "student": case.get("student").cloned().unwrap_or(json!({})),
                    "school": case.get("school").cloned().unwrap_or(json!({})),
                    "transition": case["transition"],
                    "sweep": case.get("sweep").cloned().unwrap_or(json!(false)),
                });
                let (st, v) = s
                    .call(
                        "POST",
                        &format!("/v1/policies/{id}/evaluate"),
                        Some(&s.admin),
                        Some(body),
                    )
                    .await;
                checked += 1;
                let name = &own.name;
                match (&own.decision, st) {
                    (Some(decision), 200) => {
                        let want = serde_json::to_value(decision).expect("json");
                        if v["decision"] != want {
                            failures.push(format!(
                                "{id} {file} «{name}»: over HTTP {}, in the library {want}",
                                v["decision"]
                            ));
                        }
                    }
                    (None, 422) => {
                        // The library's run checked the code against the case's own.
                        let code = case["expect"]["error_code"].as_str();
                        if code.is_none() || v["error"]["code"].as_str() != code {
                            failures.push(format!(
                                "{id} {file} «{name}»: error {v}, expected code {code:?}"
                            ));
                        }
                    }
                    _ => failures.push(format!(
                        "{id} {file} «{name}»: expected {}, got {st} {v}",
                        own.outcome
                    )),
                }
            }
        }
        assert!(
            library.next().is_none(),
            "{id}: the library ran cases not sent over HTTP"
        );
    }
    assert!(checked >= 170, "only {checked} cases found");
    assert!(
        with_settings <= 10,
        "{with_settings} cases set their own settings"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
