//! Every case of every seed package decides the same through the public HTTP API
//! (`POST /v1/policies/{id}/evaluate`) as in the library's package tests.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn every_seed_case_decides_the_same_over_http() {
    let packages = xueji::policy::builtin_packages();
    let s = spawn_server_with(&packages).await;
    let mut checked = 0;
    let mut failures = Vec::new();
    for (id, source) in &packages.packages {
        for (file, text) in source.test_files() {
            let doc: toml::Value = toml::from_str(text).expect("case file");
            let cases = serde_json::to_value(&doc).expect("json")["case"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for case in cases {
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
                let expect = &case["expect"];
                let outcome = match (st, &v["decision"]) {
                    (200, d) if d["allowed"] == false => "denied",
                    (200, d) if d["approvals"].as_array().is_some_and(|a| !a.is_empty()) => {
                        "pending"
                    }
                    (200, _) => "applied",
                    (422, _) => "error",
                    _ => "unexpected",
                };
                checked += 1;
                if outcome != expect["outcome"].as_str().unwrap_or("") {
                    failures.push(format!(
                        "{id} {file} «{}»: expected {}, got {outcome} ({st} {v})",
                        case["name"], expect["outcome"]
                    ));
                    continue;
                }
                let fired: Vec<&str> = v["decision"]["rules"]
                    .as_array()
                    .map(|r| r.iter().filter_map(|x| x["id"].as_str()).collect())
                    .unwrap_or_default();
                for rule in expect
                    .get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if !fired.contains(&rule.as_str().unwrap_or("")) {
                        failures.push(format!(
                            "{id} {file} «{}»: rule {rule} did not fire over HTTP",
                            case["name"]
                        ));
                    }
                }
            }
        }
    }
    assert!(checked >= 170, "only {checked} cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
