//! The API a user interface needs (issue #18): `GET /v1/codes` (every code with its Chinese
//! label, one table that a new error code cannot miss), `GET /v1/schools` in scope, and an
//! OpenAPI document with a typed schema for every body, which real answers match.

use super::helpers::{TestServer, form, id_card, registrar, spawn_server};
use serde_json::{Value, json};
use strum::IntoEnumIterator;
use xueji::domain::{Level, School, Status, TransitionKind};
use xueji::engine::Outcome;

const J: &str = "test-district";
const OTHER_J: &str = "national-k12";

fn school(id: &str, jurisdiction: &str, area: Option<&str>, level: Level) -> School {
    School {
        id: id.into(),
        name: format!("学校{id}"),
        jurisdiction: jurisdiction.into(),
        area: area.map(str::to_owned),
        level,
        kind: None,
        calendar: Vec::new(),
    }
}

// ---- GET /v1/codes ---------------------------------------------------------------------

fn labels(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|c| {
            (
                c["code"].as_str().expect("code").to_owned(),
                c["label"].as_str().expect("label").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn codes_list_every_value_with_its_label_and_national_code() {
    let s = spawn_server().await;
    let resp = s
        .client
        .get(format!("{}/v1/codes", s.base))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200, "no token needed");
    let etag = resp.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .is_ok_and(|v| v.contains("max-age"))
    );
    let v: Value = resp.json().await.expect("json");

    let statuses = labels(&v["statuses"]);
    assert_eq!(statuses.len(), Status::iter().count());
    for s in Status::iter() {
        assert!(
            statuses.contains(&(s.as_str().into(), s.zh().into())),
            "{s:?}"
        );
    }
    let kinds = v["transition_kinds"].as_array().expect("kinds");
    assert_eq!(kinds.len(), TransitionKind::iter().count());
    let national = |kind: &str| {
        kinds
            .iter()
            .find(|k| k["code"] == kind)
            .map(|k| k["national_code"].clone())
            .unwrap_or(Value::Null)
    };
    for (kind, code) in [
        ("admit", "11"),
        ("resume", "12"),
        ("graduate", "21"),
        ("complete", "22"),
        ("suspend", "23"),
        ("withdraw", "24"),
        ("expel", "25"),
        ("record_death", "26"),
        ("transfer_out", "27"),
        ("transfer", "27"),
        ("drop_out", "28"),
        ("promote", "31"),
        ("change_class", "32"),
        ("repeat_grade", "33"),
    ] {
        assert_eq!(national(kind), json!(code), "{kind}");
    }
    assert_eq!(
        national("correct_info"),
        Value::Null,
        "no national code: left out"
    );
    let change_codes = labels(&v["national_change_codes"]);
    assert_eq!(change_codes.len(), 14);
    assert!(change_codes.contains(&("13".into(), "转入".into())));
    let problems: Vec<String> = labels(&v["problem_kinds"])
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    for p in [
        "duplicate_enrolment",
        "temporary_number",
        "not_reported",
        "overdue_request",
    ] {
        assert!(problems.contains(&p.to_owned()), "{p}");
    }
    for list in ["reasons", "document_kinds", "approval_steps", "errors"] {
        let l = labels(&v[list]);
        assert!(!l.is_empty(), "{list}");
        assert!(l.iter().all(|(_, label)| !label.is_empty()), "{list}");
    }
    assert!(
        labels(&v["document_kinds"]).contains(&("guardian_signature".into(), "监护人签字".into()))
    );

    let again = s
        .client
        .get(format!("{}/v1/codes", s.base))
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("request");
    assert_eq!(again.status(), 304, "the cached copy is current");
}

/// Calls of the functions that take an error code as a literal: `(pattern before the literal)`.
const CODE_TAKERS: &[&str] = &[
    r"ApiError::new\(\s*[^,]+?,",
    r"bad_request\(",
    r"FieldError::new\(",
    r"\binvalid\(",
    r"RowError::new\(",
    r"Self::new\(",
    r"PolicyLoadError::new\(",
    r"PolicyLoadError::at\(",
    r"\berr\(",
    r"\bproblem\(",
    r"\blocated\(",
    r"\bbad\(\s*[^,]+?,",
    r"\brefusal\(",
];

/// Names of the functions and closures whose parameter `code` the scan knows (above).
const KNOWN_TAKERS: &[&str] = &[
    "new",
    "at",
    "invalid",
    "problem",
    "located",
    "bad",
    "err",
    "bad_request",
    "refusal",
];

/// `policy_*` literals that are not error codes.
const NOT_CODES: &[&str] = &["policy_versions", "policy_folder"];

fn sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                // A module's unit tests make up codes on purpose.
                let text = match text.find("#[cfg(test)]") {
                    Some(i) => text[..i].to_owned(),
                    None => text,
                };
                out.push((path.display().to_string(), text));
            }
        }
    }
    out
}

#[test]
fn every_error_code_the_sources_return_is_in_the_table() {
    let literal = r#"\s*"([a-z][a-z0-9_]*)""#;
    let mut patterns: Vec<regex::Regex> = CODE_TAKERS
        .iter()
        .map(|p| regex::Regex::new(&format!("{p}{literal}")).expect("regex"))
        .collect();
    patterns.push(regex::Regex::new(&format!(r"\bcode:{literal}")).expect("regex"));
    patterns.push(regex::Regex::new(&format!(r#""code":{literal}"#)).expect("regex"));
    patterns.push(regex::Regex::new(r#""(policy_[a-z0-9_]+)""#).expect("regex"));
    // A new function taking a code would slip past the scan: it must be named above.
    let taker =
        regex::Regex::new(r"(?:fn\s+(\w+)|let\s+(\w+)\s*=\s*\|)[^{;]*?\bcode:\s*&").expect("regex");

    let mut found = std::collections::BTreeMap::<String, String>::new();
    for (path, text) in sources() {
        for p in &patterns {
            for c in p.captures_iter(&text) {
                found.entry(c[1].to_owned()).or_insert_with(|| path.clone());
            }
        }
        // The table's own look-up takes a code to find it, not to return it.
        let table = path.ends_with("src/codes.rs");
        for c in taker.captures_iter(&text).filter(|_| !table) {
            let name = c.get(1).or(c.get(2)).map_or("", |m| m.as_str());
            assert!(
                KNOWN_TAKERS.contains(&name),
                "{path}: `{name}` takes an error code; add its calls to CODE_TAKERS"
            );
        }
    }
    found.retain(|code, _| !NOT_CODES.contains(&code.as_str()));
    assert!(found.len() > 80, "the scan found only {found:?}");
    let missing: Vec<String> = found
        .iter()
        .filter(|(code, _)| xueji::codes::error_label(code).is_none())
        .map(|(code, path)| format!("{code} ({path})"))
        .collect();
    assert!(
        missing.is_empty(),
        "error codes returned but not labelled in src/codes.rs ERRORS: {missing:?}"
    );
}

// ---- GET /v1/schools -------------------------------------------------------------------

struct Schools {
    s: TestServer,
    area: String,
    jur: String,
    registrar: String,
    guardian: String,
}

async fn schools() -> Schools {
    let s = spawn_server().await;
    for sc in [
        school("ea", J, Some("东区"), Level::Primary),
        school("we", J, Some("西区"), Level::Junior),
        school("nk", OTHER_J, None, Level::Primary),
    ] {
        s.xueji.create_school(sc).expect("school");
    }
    let mut f = form("学生", &id_card("2016-05-01", 1));
    f.school = "ea".into();
    let student = match s.xueji.admit(f, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => student.id,
        other => panic!("{other:?}"),
    };
    let area = s
        .token(json!({"role": "district_officer", "jurisdiction": J, "area": "东区"}))
        .await;
    let jur = s
        .token(json!({"role": "district_officer", "jurisdiction": J}))
        .await;
    let registrar = s.token(json!({"role": "registrar", "school": "ea"})).await;
    let guardian = s
        .token(json!({"role": "guardian", "student": student}))
        .await;
    Schools {
        s,
        area,
        jur,
        registrar,
        guardian,
    }
}

impl Schools {
    async fn ids(&self, token: &str, query: &str) -> Vec<String> {
        let (status, v) = self
            .s
            .call("GET", &format!("/v1/schools{query}"), Some(token), None)
            .await;
        assert_eq!(status, 200, "{query}: {v}");
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|s| s["id"].as_str().expect("id").to_owned())
            .collect()
    }
}

#[tokio::test]
async fn schools_are_listed_in_scope_and_a_filter_outside_it_matches_nothing() {
    let t = schools().await;
    let admin = t.s.admin.clone();
    assert_eq!(t.ids(&admin, "").await, ["ea", "nk", "we"]);
    assert_eq!(
        t.ids(&admin, &format!("?jurisdiction={J}")).await,
        ["ea", "we"]
    );
    assert_eq!(t.ids(&admin, "?level=junior").await, ["we"]);
    assert_eq!(t.ids(&admin, "?area=%E8%A5%BF%E5%8C%BA").await, ["we"]);

    assert_eq!(t.ids(&t.jur, "").await, ["ea", "we"]);
    assert!(
        t.ids(&t.jur, &format!("?jurisdiction={OTHER_J}"))
            .await
            .is_empty()
    );
    assert_eq!(t.ids(&t.area, "").await, ["ea"]);
    assert!(t.ids(&t.area, "?area=%E8%A5%BF%E5%8C%BA").await.is_empty());

    assert_eq!(t.ids(&t.registrar, "").await, ["ea"]);
    assert!(
        t.ids(&t.registrar, &format!("?jurisdiction={OTHER_J}"))
            .await
            .is_empty()
    );
    assert!(t.ids(&t.registrar, "?level=junior").await.is_empty());

    let (status, v) =
        t.s.call("GET", "/v1/schools", Some(&t.guardian), None)
            .await;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (403, json!("forbidden"))
    );
    let (status, _) = t.s.call("GET", "/v1/schools", None, None).await;
    assert_eq!(status, 401);
    for bad in ["?level=college", "?areas=x", "?cursor=zz"] {
        let (status, v) =
            t.s.call("GET", &format!("/v1/schools{bad}"), Some(&admin), None)
                .await;
        assert_eq!(status, 400, "{bad}: {v}");
    }
}

#[tokio::test]
async fn schools_are_paged_like_every_list() {
    let t = schools().await;
    let mut seen = Vec::new();
    let mut query = "?limit=1".to_owned();
    for _ in 0..5 {
        let (status, v) =
            t.s.call(
                "GET",
                &format!("/v1/schools{query}"),
                Some(&t.s.admin),
                None,
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{v}");
        seen.push(v["items"][0]["id"].as_str().expect("id").to_owned());
        match v["next_cursor"].as_str() {
            Some(c) => query = format!("?limit=1&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ["ea", "nk", "we"]);
    // A school's staff page past their school: nothing more.
    let (_, v) =
        t.s.call("GET", "/v1/schools?limit=1", Some(&t.registrar), None)
            .await;
    assert_eq!(v["next_cursor"], Value::Null);
}

// ---- the OpenAPI document --------------------------------------------------------------

fn document() -> Value {
    serde_json::to_value(xueji::http::openapi()).expect("document")
}

/// A schema that says nothing: `{}` or an object with neither properties nor a value schema.
fn is_empty_schema(s: &Value) -> bool {
    let Some(o) = s.as_object() else {
        return true;
    };
    if o.contains_key("$ref") || o.contains_key("oneOf") || o.contains_key("allOf") {
        return false;
    }
    match o.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => !o.contains_key("properties") && !o.contains_key("additionalProperties"),
        Some("array") => o.get("items").is_none_or(is_empty_schema),
        Some(_) => false,
    }
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_operation_names_typed_bodies_and_every_ref_resolves() {
    let doc = document();
    let mut problems = Vec::new();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            if let Some(body) = op.get("requestBody") {
                let content = body["content"].as_object().filter(|c| !c.is_empty());
                match content {
                    None => problems.push(format!("{method} {path}: request body without content")),
                    Some(c) => {
                        for (ty, media) in c {
                            if is_empty_schema(&media["schema"]) {
                                problems.push(format!("{method} {path}: request {ty} untyped"));
                            }
                        }
                    }
                }
            }
            for (status, response) in op["responses"].as_object().expect("responses") {
                if !status.starts_with('2') {
                    continue;
                }
                match response["content"].as_object().filter(|c| !c.is_empty()) {
                    None => {
                        problems.push(format!("{method} {path}: {status} without a body schema"))
                    }
                    Some(c) => {
                        for (ty, media) in c {
                            if is_empty_schema(&media["schema"]) {
                                problems.push(format!("{method} {path}: {status} {ty} untyped"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(operations > 30, "{operations} operations");
    assert!(doc["paths"]["/v1/schools"]["get"].is_object());
    assert!(doc["paths"]["/v1/schools"]["post"].is_object());
    assert!(doc["paths"]["/v1/codes"]["get"].is_object());

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(&r);
        if doc["components"]["schemas"].get(name).is_none() {
            problems.push(format!("{r} does not resolve"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Checks `value` against `schema` of `doc`: every key is a declared property (unless the
/// schema takes any), every required one is present, types match; recursively.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return check(
            doc,
            &doc["components"]["schemas"][name],
            value,
            at,
            problems,
        );
    }
    if let Some(branches) = schema["oneOf"].as_array() {
        let fits = branches.iter().any(|b| {
            let mut p = Vec::new();
            check(doc, b, value, at, &mut p);
            p.is_empty()
        });
        if !fits {
            problems.push(format!("{at}: fits no oneOf branch: {value}"));
        }
        return;
    }
    if value.is_null() {
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return,
    };
    let fits = types.iter().any(|t| match *t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    });
    if !fits {
        problems.push(format!("{at}: {value} is not {types:?}"));
        return;
    }
    if let (Some(allowed), Some(s)) = (schema["enum"].as_array(), value.as_str())
        && !allowed.iter().any(|a| a == s)
    {
        problems.push(format!("{at}: {s} is not one of the listed values"));
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            check(doc, &schema["items"], item, &format!("{at}[{i}]"), problems);
        }
    }
    if let (Some(o), Some(props)) = (value.as_object(), schema["properties"].as_object()) {
        for (k, v) in o {
            match props.get(k) {
                Some(p) => check(doc, p, v, &format!("{at}.{k}"), problems),
                None if schema.get("additionalProperties").is_some() => {}
                None => problems.push(format!("{at}.{k}: not in the schema")),
            }
        }
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            if !o.contains_key(r) {
                problems.push(format!("{at}.{r}: required but absent"));
            }
        }
    }
}

/// The schema the document gives the answer `status` of `method path`.
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]
        ["schema"]
        .clone()
}

#[tokio::test]
async fn real_answers_match_their_schemas() {
    let t = schools().await;
    let s = &t.s;
    let doc = document();
    let mut problems = Vec::new();
    let mut expect = |method: &str, path: &str, status: u16, got: (u16, Value)| {
        assert_eq!(got.0, status, "{method} {path}: {}", got.1);
        let schema = response_schema(&doc, method, path, status);
        assert!(!schema.is_null(), "{method} {path} {status}: no schema");
        check(
            &doc,
            &schema,
            &got.1,
            &format!("{method} {path}"),
            &mut problems,
        );
        got.1
    };

    let mut f = serde_json::to_value(form("新生", &id_card("2016-06-01", 7))).expect("form");
    f["school"] = json!("ea");
    f["guardians"] = json!([{"name": "王芳", "relation": "母亲", "phone": "13800138000"}]);
    let created = expect(
        "post",
        "/v1/students",
        201,
        s.call("POST", "/v1/students", Some(&s.admin), Some(f))
            .await,
    );
    let id = created["student"]["id"].as_str().expect("id").to_owned();
    let student_path = format!("/v1/students/{id}");
    expect(
        "get",
        "/v1/students/{id}",
        200,
        s.call("GET", &student_path, Some(&s.admin), None).await,
    );
    expect(
        "get",
        "/v1/students/{id}",
        200,
        s.call("GET", &student_path, Some(&t.registrar), None).await,
    );
    expect(
        "get",
        "/v1/students",
        200,
        s.call("GET", "/v1/students?school=ea", Some(&s.admin), None)
            .await,
    );
    let register = json!({"kind": "register", "effective_date": "2026-09-01"});
    let transitions = format!("{student_path}/transitions");
    expect(
        "post",
        "/v1/students/{id}/transitions",
        200,
        s.call(
            "POST",
            &format!("{transitions}?dry_run=true"),
            Some(&s.admin),
            Some(register.clone()),
        )
        .await,
    );
    let (status, answer) = s
        .call("POST", &transitions, Some(&s.admin), Some(register))
        .await;
    expect(
        "post",
        "/v1/students/{id}/transitions",
        status,
        (status, answer),
    );
    expect(
        "get",
        "/v1/students/{id}/events",
        200,
        s.call(
            "GET",
            &format!("{student_path}/events"),
            Some(&s.admin),
            None,
        )
        .await,
    );
    expect(
        "get",
        "/v1/students/{id}/verify",
        200,
        s.call(
            "GET",
            &format!("{student_path}/verify"),
            Some(&s.admin),
            None,
        )
        .await,
    );
    expect(
        "get",
        "/v1/schools",
        200,
        s.call("GET", "/v1/schools", Some(&s.admin), None).await,
    );
    expect(
        "get",
        "/v1/schools/{id}",
        200,
        s.call("GET", "/v1/schools/ea", Some(&s.admin), None).await,
    );
    expect(
        "get",
        "/v1/codes",
        200,
        s.call("GET", "/v1/codes", None, None).await,
    );
    expect(
        "get",
        "/v1/tokens",
        200,
        s.call("GET", "/v1/tokens", Some(&s.admin), None).await,
    );
    expect(
        "post",
        "/v1/tokens",
        201,
        s.call(
            "POST",
            "/v1/tokens",
            Some(&s.admin),
            Some(json!({"role": "registrar", "school": "we"})),
        )
        .await,
    );
    expect(
        "get",
        "/v1/policies",
        200,
        s.call("GET", "/v1/policies", Some(&s.admin), None).await,
    );
    expect(
        "get",
        "/v1/jurisdictions",
        200,
        s.call("GET", "/v1/jurisdictions", Some(&s.admin), None)
            .await,
    );
    expect(
        "get",
        "/healthz",
        200,
        s.call("GET", "/healthz", None, None).await,
    );
    // Approval clocks, problem records, the sweep's report.
    let suspend = json!({"kind": "suspend", "effective_date": "2026-10-08",
        "params": {"until": "2027-09-01"}, "documents": [{"kind": "hospital_diagnosis"}]});
    let pending = expect(
        "post",
        "/v1/students/{id}/transitions",
        202,
        s.call("POST", &transitions, Some(&s.admin), Some(suspend))
            .await,
    );
    let request = pending["request"]["id"].as_str().expect("request");
    expect(
        "get",
        "/v1/requests/{id}",
        200,
        s.call(
            "GET",
            &format!("/v1/requests/{request}"),
            Some(&s.admin),
            None,
        )
        .await,
    );
    expect(
        "get",
        "/v1/requests",
        200,
        s.call(
            "GET",
            &format!("/v1/requests?jurisdiction={J}&overdue=false&as_of=2026-10-09"),
            Some(&s.admin),
            None,
        )
        .await,
    );
    let mut twice = serde_json::to_value(form("学生", &id_card("2016-05-01", 1))).expect("form");
    twice["school"] = json!("we");
    twice["grade"] = json!(1);
    let (st, _) = s
        .call("POST", "/v1/students", Some(&s.admin), Some(twice))
        .await;
    assert_eq!(st, 409);
    let listed = expect(
        "get",
        "/v1/problems",
        200,
        s.call("GET", "/v1/problems", Some(&s.admin), None).await,
    );
    let problem = listed["items"][0]["id"].as_str().expect("problem");
    expect(
        "post",
        "/v1/problems/{id}/resolve",
        201,
        s.call(
            "POST",
            &format!("/v1/problems/{problem}/resolve"),
            Some(&s.admin),
            Some(json!({"action": "confirm", "comment": "核实无误",
                "documents": [{"kind": "household_register"}]})),
        )
        .await,
    );
    expect(
        "post",
        "/v1/sweeps",
        200,
        s.call(
            "POST",
            "/v1/sweeps",
            Some(&s.admin),
            Some(json!({"as_of": "2024-10-30"})),
        )
        .await,
    );
    // Batches: a dry run's report, a job, its page of items, a batch approval.
    let batch = json!({"kind": "promote", "school": "ea", "students": [id], "effective_date": "2027-07-10"});
    expect(
        "post",
        "/v1/batches",
        200,
        s.call(
            "POST",
            "/v1/batches?dry_run=true",
            Some(&s.admin),
            Some(batch.clone()),
        )
        .await,
    );
    let started = expect(
        "post",
        "/v1/batches",
        202,
        s.call("POST", "/v1/batches", Some(&s.admin), Some(batch))
            .await,
    );
    let batch_path = format!("/v1/batches/{}", started["id"].as_str().expect("batch id"));
    let mut view = s.call("GET", &batch_path, Some(&s.admin), None).await;
    while view.1["status"] == "running" {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        view = s.call("GET", &batch_path, Some(&s.admin), None).await;
    }
    expect("get", "/v1/batches/{id}", 200, view);
    expect(
        "post",
        "/v1/batches/{id}/approve",
        200,
        s.call(
            "POST",
            &format!("{batch_path}/approve"),
            Some(&s.admin),
            Some(json!({"step": "school"})),
        )
        .await,
    );
    assert!(problems.is_empty(), "{problems:#?}");
}
