//! Hostile input over every route that takes input (body, path or query): each attack gets its
//! documented 4xx with a stable `code` (and `details.field` where one field is at fault), the
//! server stays healthy, and nothing is stored. `docs/hostile-input.md` describes the table.

use serde_json::{Value, json};

use crate::helpers::*;

/// One attack and the answer it must get.
struct Case {
    what: String,
    method: &'static str,
    path: String,
    /// `None`: no Content-Type header at all.
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    /// The bearer token; `None` sends the admin's.
    token: Option<String>,
    header: Option<(&'static str, String)>,
    status: u16,
    code: &'static str,
    field: Option<String>,
}

impl Case {
    fn new(what: impl Into<String>, method: &'static str, path: impl Into<String>) -> Case {
        Case {
            what: what.into(),
            method,
            path: path.into(),
            content_type: None,
            body: None,
            token: None,
            header: None,
            status: 0,
            code: "",
            field: None,
        }
    }
    fn json(mut self, body: &Value) -> Case {
        self.content_type = Some("application/json");
        self.body = Some(body.to_string().into_bytes());
        self
    }
    fn raw(mut self, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Case {
        self.content_type = content_type;
        self.body = Some(body.into());
        self
    }
    fn token(mut self, token: &str) -> Case {
        self.token = Some(token.to_owned());
        self
    }
    fn header(mut self, name: &'static str, value: String) -> Case {
        self.header = Some((name, value));
        self
    }
    fn expect(mut self, status: u16, code: &'static str) -> Case {
        self.status = status;
        self.code = code;
        self
    }
    fn field(mut self, field: &str) -> Case {
        self.field = Some(field.to_owned());
        self
    }
}

/// Injection-looking text: SQL, markup, path traversal, NUL, RTL override, emoji.
const INJECTIONS: &[(&str, &str)] = &[
    ("sql", "1' OR '1'='1'; DROP TABLE students; --"),
    ("script", "<script>alert(1)</script>"),
    ("traversal", "../../etc/passwd"),
    ("nul", "a\u{0}b"),
    ("rtl_override", "\u{202e}gpj.exe"),
    ("emoji", "😀🏫"),
];

/// The same texts, percent-encoded for a path segment or a query value.
fn encoded(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// JSON nested `depth` levels deep: `[[[ … ]]]`.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A body above the global limit (1 MiB): one long string field.
fn oversized_body(field: &str) -> Vec<u8> {
    format!(
        "{{\"{field}\": \"{}\"}}",
        "x".repeat(xueji::http::BODY_LIMIT + 1)
    )
    .into_bytes()
}

/// A string far above any field's limit, yet well inside the body limit.
fn long() -> String {
    "长".repeat(100_000)
}

fn school_body() -> Value {
    json!({"id": "s9", "name": "九小", "jurisdiction": "test-district", "area": "东区", "level": "primary"})
}

fn student_body() -> Value {
    json!({
        "school": "s1", "name": "王小明", "gender": "male", "birth_date": "2016-05-01",
        "id_card": id_card("2016-05-01", 11), "grade": 3, "class": "4", "entry_date": "2024-09-01",
        "guardians": [{"name": "王大山", "relation": "父亲", "phone": "13800001234"}]
    })
}

/// A transition that would be applied at once if it got through.
fn change_class() -> Value {
    json!({"kind": "change_class", "effective_date": "2025-01-01", "params": {"class": "5"}})
}

fn token_body() -> Value {
    json!({"role": "registrar", "school": "s1", "label": "教务"})
}

/// `base` with the value at `pointer` replaced (or added to its object, or appended to its
/// array when the index is the array's length).
fn with(mut base: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
    let target = base
        .pointer_mut(parent)
        .expect("pointer into the base body");
    match target {
        Value::Object(o) => {
            o.insert(key.to_owned(), value);
        }
        Value::Array(a) => match key.parse::<usize>().expect("index") {
            i if i == a.len() => a.push(value),
            i => a[i] = value,
        },
        other => panic!("cannot set {pointer} in {other}"),
    }
    base
}

/// Attacks every JSON-body route gets: malformed, wrong types, unknown fields, too large,
/// too deep, wrong content type. `deep` is the code for 10,000 nested arrays as the whole body:
/// a route whose first field is text sees a wrong type at the first `[` (`invalid_field`); one
/// whose first field is an enum or free-form JSON reads on into the parser's depth limit
/// (`malformed_json`). Either way, nothing recurses 10,000 deep.
fn body_attacks(
    cases: &mut Vec<Case>,
    method: &'static str,
    path: &str,
    valid: &Value,
    deep: &'static str,
) {
    let c = |what: &str| Case::new(format!("{method} {path}: {what}"), method, path);
    let json = Some("application/json");
    cases.extend([
        c("malformed JSON")
            .raw(json, "{,}")
            .expect(400, "malformed_json"),
        c("truncated JSON")
            .raw(json, "{\"")
            .expect(400, "malformed_json"),
        c("single quotes")
            .raw(json, "{'a': 1}")
            .expect(400, "malformed_json"),
        c("trailing garbage")
            .raw(json, format!("{valid} {{\"again\": 1}}"))
            .expect(400, "malformed_json"),
        c("invalid UTF-8")
            .raw(json, b"{\"\xff\xfe\": 1}".to_vec())
            .expect(400, "malformed_json"),
        c("NUL byte outside a string")
            .raw(json, b"{\0}".to_vec())
            .expect(400, "malformed_json"),
        c("byte order mark")
            .raw(json, format!("\u{feff}{valid}"))
            .expect(400, "malformed_json"),
        c("empty body").raw(json, "").expect(400, "malformed_json"),
        c("array instead of object")
            .json(&json!([valid]))
            .expect(400, "invalid_field"),
        c("number instead of object")
            .json(&json!(42))
            .expect(400, "invalid_field"),
        c("null body")
            .json(&Value::Null)
            .expect(400, "invalid_field"),
        c("unknown field")
            .json(&with(valid.clone(), "/is_admin", json!(true)))
            .expect(400, "invalid_field")
            .field("is_admin"),
        c("oversized body")
            .raw(json, oversized_body("name"))
            .expect(413, "body_too_large"),
        c("10,000 levels of nesting")
            .raw(json, nested(10_000))
            .expect(400, deep),
        c("text/plain content type")
            .raw(Some("text/plain"), valid.to_string())
            .expect(400, "unsupported_media_type"),
        c("form content type")
            .raw(Some("application/x-www-form-urlencoded"), "a=1&b=2")
            .expect(400, "unsupported_media_type"),
        c("no content type")
            .raw(None, valid.to_string())
            .expect(400, "unsupported_media_type"),
        c("no token")
            .json(valid)
            .token("")
            .expect(401, "unauthorized"),
        c("hostile token")
            .json(valid)
            .token("' OR 1=1 --\u{202e}")
            .expect(401, "unauthorized"),
    ]);
}

/// 10,000 levels of nesting inside a field that takes free-form JSON: the parser's depth limit.
fn deep_field(
    cases: &mut Vec<Case>,
    method: &'static str,
    path: &str,
    valid: &Value,
    pointer: &str,
) {
    let marker = "\"__deep__\"";
    let body = with(valid.clone(), pointer, json!("__deep__"))
        .to_string()
        .replace(marker, &format!("{{\"a\": {}}}", nested(10_000)));
    cases.push(
        Case::new(
            format!("{method} {path}: 10,000 levels in {pointer}"),
            method,
            path,
        )
        .raw(Some("application/json"), body)
        .expect(400, "malformed_json"),
    );
}

/// Attacks on a path parameter: traversal, injection, invalid UTF-8, an absurd length.
fn path_attacks(cases: &mut Vec<Case>, method: &'static str, template: &str, body: Option<&Value>) {
    path_attacks_answered(cases, method, template, body, (404, "not_found"));
}

/// Path attacks where an unknown id has another answer than 404 (an upload's id mismatch).
fn path_attacks_answered(
    cases: &mut Vec<Case>,
    method: &'static str,
    template: &str,
    body: Option<&Value>,
    unknown: (u16, &'static str),
) {
    let mut push = |what: &str, segment: String, status: u16, code: &'static str| {
        let path = template.replace("{}", &segment);
        let mut c = Case::new(format!("{method} {template}: {what}"), method, path);
        if let Some(b) = body {
            c = c.json(b);
        }
        cases.push(c.expect(status, code));
    };
    for (what, text) in INJECTIONS {
        push(what, encoded(text), unknown.0, unknown.1);
    }
    push("encoded slash", "a%2Fb".into(), unknown.0, unknown.1);
    push("long id", "x".repeat(10_000), unknown.0, unknown.1);
    push("invalid UTF-8", "%FF%FE".into(), 400, "invalid_path");
}

/// Attacks on a query string.
fn query_attacks(
    cases: &mut Vec<Case>,
    method: &'static str,
    path: &str,
    body: Option<&Value>,
    params: &[(&str, &str)],
) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut push = |what: String, query: String, code: &'static str, field: &str| {
        let mut c = Case::new(
            format!("{method} {path}: {what}"),
            method,
            format!("{path}{sep}{query}"),
        );
        if let Some(b) = body {
            c = c.json(b);
        }
        let mut c = c.expect(400, code);
        if !field.is_empty() {
            c = c.field(field);
        }
        cases.push(c);
    };
    push(
        "unknown parameter".into(),
        "admin=true".into(),
        "invalid_query",
        "admin",
    );
    push(
        "invalid UTF-8".into(),
        format!("{}=%FF", params.first().map_or("dry_run", |p| p.0)),
        "invalid_query",
        "",
    );
    for (name, bad) in params {
        let code = if *name == "cursor" {
            "invalid_cursor"
        } else {
            "invalid_query"
        };
        push(
            format!("{name}={bad}"),
            format!("{name}={}", encoded(bad)),
            code,
            name,
        );
    }
}

async fn send(s: &TestServer, c: &Case) -> Result<(u16, Value), String> {
    let m = reqwest::Method::from_bytes(c.method.as_bytes()).expect("method");
    let mut req = s.client.request(m, format!("{}{}", s.base, c.path));
    let token = c.token.as_deref().unwrap_or(&s.admin);
    if !token.is_empty() {
        req = req.header("Authorization", format!("Bearer {token}"));
    }
    if let Some((name, value)) = &c.header {
        req = req.header(*name, value);
    }
    if let Some(ct) = c.content_type {
        req = req.header("Content-Type", ct);
    }
    if let Some(b) = &c.body {
        req = req.body(b.clone());
    }
    let resp = req.send().await.map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| format!("body: {e}"))?;
    let body = serde_json::from_str(&text)
        .map_err(|_| format!("{status} not JSON: {}", short(&text, 200)))?;
    Ok((status, body))
}

/// At most `n` characters of a text, for failure messages.
fn short(text: &str, n: usize) -> String {
    let mut out: String = text.chars().take(n).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

fn check(c: &Case, status: u16, v: &Value) -> Result<(), String> {
    let e = &v["error"];
    let shape_ok = e["code"].is_string() && e["message"].is_string() && e["details"].is_object();
    if !shape_ok {
        return Err(format!(
            "{status} not the error shape: {}",
            short(&v.to_string(), 300)
        ));
    }
    // Messages are for registrars: serde's or axum's English never shows through.
    let message = e["message"].as_str().unwrap_or_default();
    if let Some(english) = [
        "invalid type",
        "invalid value",
        "expected ",
        "missing field",
        "unknown field",
        "unknown variant",
        "duplicate field",
        "Failed to",
        "EOF while",
        " at line ",
        "invalid length",
    ]
    .iter()
    .find(|phrase| message.contains(*phrase))
    {
        return Err(format!("English ({english:?}) in the message: {message}"));
    }
    let got_field = e["details"]["field"].as_str();
    if status != c.status || e["code"] != c.code {
        return Err(format!(
            "expected {} {}, got {status} {}",
            c.status, c.code, e["code"]
        ));
    }
    if let Some(f) = &c.field
        && got_field != Some(f.as_str())
    {
        return Err(format!(
            "expected field {f}, got {got_field:?}: {}",
            short(&e.to_string(), 300)
        ));
    }
    Ok(())
}

/// The case's answer is one its operation documents in /v1/openapi.json, as JSON.
fn documented(doc: &Value, c: &Case) -> Result<(), String> {
    if c.status == 405 {
        // No operation to document it under; the `Allow` header names the verbs served.
        return Ok(());
    }
    let path = c.path.split('?').next().unwrap_or_default();
    let method = c.method.to_ascii_lowercase();
    let paths = doc["paths"].as_object().ok_or("no paths")?;
    let matches = |template: &str| {
        let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
    };
    // A literal path (`/v1/students/import`) wins over a template (`/v1/students/{id}`).
    let (template, operation) = paths
        .get_key_value(path)
        .and_then(|(t, p)| Some((t, p.get(&method)?)))
        .or_else(|| {
            paths
                .iter()
                .filter(|(t, _)| matches(t))
                .find_map(|(t, p)| Some((t, p.get(&method)?)))
        })
        .ok_or_else(|| format!("{method} {} not in the OpenAPI document", short(path, 60)))?;
    let response = &operation["responses"][c.status.to_string()];
    if !response.is_object() {
        return Err(format!(
            "{} not documented for {method} {template}",
            c.status
        ));
    }
    if response["content"]["application/json"]["schema"]["$ref"] != "#/components/schemas/ErrorBody"
    {
        return Err(format!(
            "{} of {method} {template} not documented as an ErrorBody",
            c.status
        ));
    }
    Ok(())
}

/// Everything a hostile request could have changed, read back through the API (schools from the
/// store: the API has no school listing).
async fn snapshot(s: &TestServer) -> Value {
    let t = Some(s.admin.as_str());
    let get = |path: String| async move {
        let (st, v) = s.call("GET", &path, t, None).await;
        assert_eq!(st, 200, "{path}: {v}");
        v
    };
    let students = get("/v1/students?jurisdiction=test-district&limit=1000".into()).await;
    let mut events = Vec::new();
    for st in students["items"].as_array().expect("items") {
        let id = st["id"].as_str().expect("id");
        events.push(get(format!("/v1/students/{id}/events?limit=1000")).await);
    }
    let mut requests = Vec::new();
    for status in ["pending", "applied", "denied", "rejected"] {
        requests.push(
            get(format!(
                "/v1/requests?jurisdiction=test-district&status={status}&limit=1000"
            ))
            .await,
        );
    }
    let schools = s.xueji.store().schools().expect("schools");
    json!({
        "students": students,
        "events": events,
        "requests": requests,
        "schools": serde_json::to_value(&schools).expect("schools json"),
        "policy": get("/v1/policies/test-district".into()).await["versions"],
        "verify": get("/v1/verify".into()).await,
    })
}

#[tokio::test]
async fn hostile_input_is_a_coded_4xx_the_server_stays_up_and_nothing_is_stored() {
    let s = spawn_server().await;
    let admin = Some(s.admin.as_str());
    for (id, area) in [("s1", "东区"), ("s2", "西区")] {
        let (st, v) = s
            .call("POST", "/v1/schools", admin, Some(json!({"id": id, "name": format!("学校{id}"), "jurisdiction": "test-district", "area": area, "level": "primary"})))
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let (st, v) = s
        .call(
            "POST",
            "/v1/students",
            admin,
            Some(with(
                student_body(),
                "/id_card",
                json!(id_card("2016-05-01", 13)),
            )),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let sid = v["student"]["id"].as_str().expect("id").to_owned();
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/students/{sid}/transitions"),
            admin,
            Some(json!({"kind": "register", "effective_date": "2024-09-02"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let (st, v) = s
        .call("POST", &format!("/v1/students/{sid}/transitions"), admin,
            Some(json!({"kind": "suspend", "effective_date": "2025-03-02", "params": {"until": "2026-03-01"}, "documents": [{"kind": "hospital_diagnosis"}]})))
        .await;
    assert_eq!(st, 202, "{v}");
    let rid = v["request"]["id"].as_str().expect("request id").to_owned();
    let guardian = s.token(json!({"role": "guardian", "student": sid})).await;
    let registrar = s.token(json!({"role": "registrar", "school": "s1"})).await;
    let (st, kept) = s.call("GET", "/v1/checkpoints", admin, None).await;
    assert_eq!(st, 200, "{kept}");
    assert_eq!(kept["items"].as_array().map(Vec::len), Some(1), "{kept}");
    let before = snapshot(&s).await;

    let mut cases: Vec<Case> = Vec::new();
    let transitions = format!("/v1/students/{sid}/transitions");
    let approve = format!("/v1/requests/{rid}/approve");
    let reject = format!("/v1/requests/{rid}/reject");
    let step = json!({"step": "school", "comment": "同意"});
    let upload = json!({"files": test_upload()});
    let evaluate =
        json!({"student": {"status": "enrolled", "grade": 3}, "transition": change_class()});

    // ---- every JSON-body route: the generic attacks --------------------------------------
    let evaluate_path = "/v1/policies/test-district/evaluate";
    for (method, path, valid, deep) in [
        ("POST", "/v1/schools", school_body(), "invalid_field"),
        ("POST", "/v1/students", student_body(), "invalid_field"),
        ("POST", &transitions, change_class(), "malformed_json"),
        ("POST", &approve, step.clone(), "malformed_json"),
        ("POST", &reject, step.clone(), "malformed_json"),
        (
            "POST",
            "/v1/sweeps",
            json!({"as_of": "2025-01-01"}),
            "invalid_field",
        ),
        ("POST", "/v1/tokens", token_body(), "malformed_json"),
        (
            "PUT",
            "/v1/policies/test-district",
            upload.clone(),
            "invalid_field",
        ),
        ("POST", evaluate_path, evaluate.clone(), "malformed_json"),
        (
            "POST",
            "/v1/policies/test-district/impact",
            upload.clone(),
            "invalid_field",
        ),
    ] {
        body_attacks(&mut cases, method, path, &valid, deep);
    }
    deep_field(
        &mut cases,
        "POST",
        "/v1/students",
        &student_body(),
        "/extra",
    );
    deep_field(
        &mut cases,
        "POST",
        &transitions,
        &change_class(),
        "/params/class",
    );
    deep_field(
        &mut cases,
        "POST",
        evaluate_path,
        &evaluate,
        "/student/extra",
    );
    deep_field(
        &mut cases,
        "POST",
        evaluate_path,
        &evaluate,
        "/transition/params/class",
    );

    // ---- POST /v1/schools ------------------------------------------------------------------
    let school = |what: &str, pointer: &str, value: Value| {
        Case::new(format!("POST /v1/schools: {what}"), "POST", "/v1/schools").json(&with(
            school_body(),
            pointer,
            value,
        ))
    };
    for (what, text) in INJECTIONS {
        cases.push(
            school(&format!("id {what}"), "/id", json!(text))
                .expect(400, "invalid_value")
                .field("id"),
        );
    }
    for (what, text) in [
        ("nul", "a\u{0}b"),
        ("rtl_override", "\u{202e}gpj.exe"),
        ("line break", "一小\n二小"),
    ] {
        cases.push(
            school(&format!("name {what}"), "/name", json!(text))
                .expect(400, "invalid_character")
                .field("name"),
        );
    }
    cases.extend([
        school("id too long", "/id", json!("s".repeat(65)))
            .expect(400, "invalid_value")
            .field("id"),
        school("id wrong type", "/id", json!(42))
            .expect(400, "invalid_field")
            .field("id"),
        school("name oversized", "/name", json!(long()))
            .expect(400, "too_long")
            .field("name"),
        school("name blank", "/name", json!("   "))
            .expect(400, "required")
            .field("name"),
        school("area oversized", "/area", json!(long()))
            .expect(400, "too_long")
            .field("area"),
        school("kind oversized", "/kind", json!(long()))
            .expect(400, "too_long")
            .field("kind"),
        school("kind NUL", "/kind", json!("a\u{0}"))
            .expect(400, "invalid_character")
            .field("kind"),
        school("level unknown", "/level", json!("kindergarten"))
            .expect(400, "invalid_field")
            .field("level"),
        school(
            "jurisdiction traversal",
            "/jurisdiction",
            json!("../../etc/passwd"),
        )
        .expect(400, "unknown_jurisdiction")
        .field("jurisdiction"),
        school(
            "calendar impossible date",
            "/calendar",
            json!([{"term": "2026-spring", "starts": "2026-02-30"}]),
        )
        .expect(400, "invalid_field")
        .field("calendar[0].starts"),
        school(
            "calendar term oversized",
            "/calendar",
            json!([{"term": long(), "starts": "2026-03-01"}]),
        )
        .expect(400, "too_long")
        .field("calendar[0].term"),
        school(
            "calendar of 10,000 terms",
            "/calendar",
            json!(vec![
                json!({"term": "2026-fall", "starts": "2026-09-01"});
                10_000
            ]),
        )
        .expect(400, "too_many")
        .field("calendar"),
    ]);
    let mut missing = school_body();
    missing.as_object_mut().expect("object").remove("name");
    cases.push(
        Case::new("POST /v1/schools: missing name", "POST", "/v1/schools")
            .json(&missing)
            .expect(400, "invalid_field")
            .field("name"),
    );
    cases.push(
        Case::new(
            "POST /v1/schools: Idempotency-Key of 201 bytes",
            "POST",
            "/v1/schools",
        )
        .json(&school_body())
        .header("Idempotency-Key", "k".repeat(201))
        .expect(400, "invalid_idempotency_key")
        .field("Idempotency-Key"),
    );
    cases.push(
        Case::new("POST /v1/schools: guardian may not", "POST", "/v1/schools")
            .json(&school_body())
            .token(&guardian)
            .expect(403, "forbidden"),
    );

    // ---- POST /v1/students -----------------------------------------------------------------
    let good = id_card("2016-05-01", 11);
    let bad_check = format!(
        "{}{}",
        &good[..17],
        if good.ends_with('0') { '1' } else { '0' }
    );
    let student = |what: &str, pointer: &str, value: Value| {
        Case::new(format!("POST /v1/students: {what}"), "POST", "/v1/students").json(&with(
            student_body(),
            pointer,
            value,
        ))
    };
    cases.extend([
        student("birth_date 2026-02-30", "/birth_date", json!("2026-02-30"))
            .expect(400, "invalid_date")
            .field("birth_date"),
        student("entry_date 2025-13-01", "/entry_date", json!("2025-13-01"))
            .expect(400, "invalid_date")
            .field("entry_date"),
        student(
            "report_deadline not a date",
            "/report_deadline",
            json!("tomorrow"),
        )
        .expect(400, "invalid_date")
        .field("report_deadline"),
        student("birth_date a number", "/birth_date", json!(20160501))
            .expect(400, "invalid_field")
            .field("birth_date"),
        student("id_card check character", "/id_card", json!(bad_check))
            .expect(400, "id_card_check_character")
            .field("id_card"),
        student("id_card 17 digits", "/id_card", json!("11010520160501011"))
            .expect(400, "id_card_length")
            .field("id_card"),
        student(
            "id_card full-width X",
            "/id_card",
            json!("11010519491231002Ｘ"),
        )
        .expect(400, "id_card_character")
        .field("id_card"),
        student(
            "id_card born 2016-02-30",
            "/id_card",
            json!("110105201602300011"),
        )
        .expect(400, "id_card_birth_date")
        .field("id_card"),
        student(
            "id_card unknown province",
            "/id_card",
            json!("000105201605010011"),
        )
        .expect(400, "id_card_address_code")
        .field("id_card"),
        student("id_card oversized", "/id_card", json!("1".repeat(100_000)))
            .expect(400, "id_card_length")
            .field("id_card"),
        student("id_card a number", "/id_card", json!(110105201605010110u64))
            .expect(400, "invalid_field")
            .field("id_card"),
        student(
            "national_id bad prefix",
            "/national_id",
            json!("X110105201605010110"),
        )
        .expect(400, "national_id_prefix")
        .field("national_id"),
        student("national_id empty", "/national_id", json!(""))
            .expect(400, "national_id_length")
            .field("national_id"),
        student(
            "national_id emoji",
            "/national_id",
            json!("😀110105201605010110"),
        )
        .expect(400, "national_id_character")
        .field("national_id"),
        student("gender emoji", "/gender", json!("😀"))
            .expect(400, "invalid_value")
            .field("gender"),
        student("grade as text", "/grade", json!("3"))
            .expect(400, "invalid_field")
            .field("grade"),
        student("grade 300", "/grade", json!(300))
            .expect(400, "invalid_value")
            .field("grade"),
        student("grade negative", "/grade", json!(-1))
            .expect(400, "invalid_value")
            .field("grade"),
        student("name oversized", "/name", json!(long()))
            .expect(400, "too_long")
            .field("name"),
        student("name of 51 emoji", "/name", json!("😀".repeat(51)))
            .expect(400, "too_long")
            .field("name"),
        student("name NUL", "/name", json!("王\u{0}明"))
            .expect(400, "invalid_character")
            .field("name"),
        student("name RTL override", "/name", json!("王\u{202e}明"))
            .expect(400, "invalid_character")
            .field("name"),
        student("class oversized", "/class", json!(long()))
            .expect(400, "too_long")
            .field("class"),
        student(
            "guardian phone script",
            "/guardians/0/phone",
            json!("<script>alert(1)</script>"),
        )
        .expect(400, "invalid_phone")
        .field("guardians[0].phone"),
        student(
            "guardian name oversized",
            "/guardians/0/name",
            json!(long()),
        )
        .expect(400, "too_long")
        .field("guardians[0].name"),
        student(
            "guardian unknown field",
            "/guardians/0/email",
            json!("a@b.c"),
        )
        .expect(400, "invalid_field")
        .field("guardians[0].email"),
        student(
            "10,000 guardians",
            "/guardians",
            json!(vec![
                json!({"name": "王大山", "relation": "父亲", "phone": "13800001234"});
                10_000
            ]),
        )
        .expect(400, "too_many")
        .field("guardians"),
        student("extra oversized", "/extra", json!({"note": long()}))
            .expect(400, "too_long")
            .field("extra"),
        student("school traversal", "/school", json!("../../etc/passwd"))
            .expect(400, "unknown_school")
            .field("school"),
        student("school SQL", "/school", json!("s1' OR '1'='1"))
            .expect(400, "unknown_school")
            .field("school"),
    ]);
    // A number that overflows f64 is not valid JSON for serde_json.
    cases.push(
        Case::new("POST /v1/students: grade 1e400", "POST", "/v1/students")
            .raw(
                Some("application/json"),
                student_body()
                    .to_string()
                    .replace("\"grade\":3", "\"grade\":1e400"),
            )
            .expect(400, "malformed_json"),
    );
    cases.push(
        Case::new(
            "POST /v1/students: guardian may not",
            "POST",
            "/v1/students",
        )
        .json(&student_body())
        .token(&guardian)
        .expect(403, "forbidden"),
    );
    query_attacks(
        &mut cases,
        "POST",
        "/v1/students",
        Some(&student_body()),
        &[("dry_run", "yes")],
    );

    // ---- GET /v1/students, /v1/students/{id}, events, verify --------------------------------
    query_attacks(
        &mut cases,
        "GET",
        "/v1/students",
        None,
        &[
            ("grade", "three"),
            ("grade", "300"),
            ("status", "' OR 1=1 --"),
            ("limit", "-1"),
            ("limit", "99999999999999999999999"),
            ("cursor", "not-hex"),
            ("cursor", "ff"),
        ],
    );
    // `GET /v1/students?school=../../etc/passwd` is an empty list, not an error: a filter naming
    // something outside the caller's scope, or nothing at all, matches nothing (tests/it/security.rs).
    cases.push(
        Case::new("GET /v1/students: no scope", "GET", "/v1/students")
            .expect(400, "required")
            .field("school"),
    );
    for template in [
        "/v1/students/{}",
        "/v1/students/{}/events",
        "/v1/students/{}/verify",
    ] {
        path_attacks(&mut cases, "GET", template, None);
    }
    query_attacks(
        &mut cases,
        "GET",
        &format!("/v1/students/{sid}/events"),
        None,
        &[("limit", "lots"), ("cursor", "zz")],
    );

    // ---- POST /v1/students/{id}/transitions ----------------------------------------------------
    path_attacks(
        &mut cases,
        "POST",
        "/v1/students/{}/transitions",
        Some(&change_class()),
    );
    query_attacks(
        &mut cases,
        "POST",
        &transitions,
        Some(&change_class()),
        &[("dry_run", "maybe")],
    );
    let tr = |what: &str, pointer: &str, value: Value| {
        Case::new(
            format!("POST transitions: {what}"),
            "POST",
            transitions.clone(),
        )
        .json(&with(change_class(), pointer, value))
    };
    cases.extend([
        tr(
            "effective_date 2026-02-30",
            "/effective_date",
            json!("2026-02-30"),
        )
        .expect(400, "invalid_field")
        .field("effective_date"),
        tr(
            "effective_date a number",
            "/effective_date",
            json!(20250101),
        )
        .expect(400, "invalid_field")
        .field("effective_date"),
        tr("kind SQL", "/kind", json!("change_class'; --"))
            .expect(400, "invalid_field")
            .field("kind"),
        tr("reason unknown", "/reason", json!("bored"))
            .expect(400, "invalid_field")
            .field("reason"),
        tr("expected_version negative", "/expected_version", json!(-1))
            .expect(400, "invalid_field")
            .field("expected_version"),
        tr("expected_version text", "/expected_version", json!("2"))
            .expect(400, "invalid_field")
            .field("expected_version"),
        tr("params not an object", "/params", json!(["class", "5"]))
            .expect(400, "invalid_field")
            .field("params"),
        tr(
            "param unknown",
            "/params",
            json!({"class": "5", "admin": true}),
        )
        .expect(400, "unknown_param")
        .field("params.admin"),
        tr("param class oversized", "/params", json!({"class": long()}))
            .expect(400, "invalid_param")
            .field("params.class"),
        tr("param class NUL", "/params", json!({"class": "5\u{0}"}))
            .expect(400, "invalid_param")
            .field("params.class"),
        tr("param grade text", "/params", json!({"grade": "3"}))
            .expect(400, "invalid_param")
            .field("params.grade"),
        tr(
            "document kind unknown",
            "/documents",
            json!([{"kind": "forged_letter"}]),
        )
        .expect(400, "invalid_field")
        .field("documents[0].kind"),
        tr(
            "document issuer oversized",
            "/documents",
            json!([{"kind": "hospital_diagnosis", "issuer": long()}]),
        )
        .expect(400, "too_long")
        .field("documents[0].issuer"),
        tr(
            "document ref NUL",
            "/documents",
            json!([{"kind": "hospital_diagnosis", "ref": "病历\u{0}123"}]),
        )
        .expect(400, "invalid_character")
        .field("documents[0].ref"),
        tr(
            "document ref RTL override",
            "/documents",
            json!([{"kind": "hospital_diagnosis", "ref": "\u{202e}321 历病"}]),
        )
        .expect(400, "invalid_character")
        .field("documents[0].ref"),
        tr(
            "33 documents",
            "/documents",
            json!(vec![json!({"kind": "hospital_diagnosis"}); 33]),
        )
        .expect(400, "too_many")
        .field("documents"),
    ]);
    let mut suspend = json!({"kind": "suspend", "effective_date": "2025-03-02", "params": {"until": "2026-02-30"}, "documents": [{"kind": "hospital_diagnosis"}]});
    cases.push(
        Case::new(
            "POST transitions: until 2026-02-30",
            "POST",
            transitions.clone(),
        )
        .json(&suspend)
        .expect(400, "invalid_param")
        .field("params.until"),
    );
    suspend["params"]["until"] = json!("../../etc/passwd");
    cases.push(
        Case::new(
            "POST transitions: until traversal",
            "POST",
            transitions.clone(),
        )
        .json(&suspend)
        .expect(400, "invalid_param")
        .field("params.until"),
    );
    cases.push(
        Case::new("POST transitions: denied by policy", "POST", transitions.clone())
            .json(&json!({"kind": "suspend", "effective_date": "2025-03-02", "params": {"until": "2026-03-01"}}))
            .expect(422, "denied_by_policy"),
    );
    let key_change = json!({"kind": "change_key_info", "effective_date": "2025-03-02", "params": {"fields": {"password": "x"}}});
    cases.push(
        Case::new(
            "POST transitions: key change of an unknown field",
            "POST",
            transitions.clone(),
        )
        .json(&key_change)
        .expect(400, "invalid_param")
        .field("params.fields"),
    );
    cases.push(
        Case::new(
            "POST transitions: guardian may not",
            "POST",
            transitions.clone(),
        )
        .json(&change_class())
        .token(&guardian)
        .expect(403, "forbidden"),
    );

    // ---- requests --------------------------------------------------------------------------
    query_attacks(
        &mut cases,
        "GET",
        "/v1/requests",
        None,
        &[
            ("status", "granted"),
            ("step", "principal"),
            ("limit", "1.5"),
            ("cursor", "%%%"),
        ],
    );
    cases.push(
        Case::new("GET /v1/requests: no scope", "GET", "/v1/requests")
            .expect(400, "required")
            .field("jurisdiction"),
    );
    path_attacks(&mut cases, "GET", "/v1/requests/{}", None);
    path_attacks(&mut cases, "POST", "/v1/requests/{}/approve", Some(&step));
    path_attacks(&mut cases, "POST", "/v1/requests/{}/reject", Some(&step));
    for (path, verb) in [(&approve, "approve"), (&reject, "reject")] {
        let st = |what: &str, body: Value| {
            Case::new(format!("POST {verb}: {what}"), "POST", path.clone()).json(&body)
        };
        cases.extend([
            st(
                "step unknown",
                json!({"step": "principal", "comment": "同意"}),
            )
            .expect(400, "invalid_field")
            .field("step"),
            st("step a number", json!({"step": 1, "comment": "同意"}))
                .expect(400, "invalid_field")
                .field("step"),
            st(
                "comment oversized",
                json!({"step": "school", "comment": long()}),
            )
            .expect(400, "too_long")
            .field("comment"),
            st(
                "comment NUL",
                json!({"step": "school", "comment": "同意\u{0}"}),
            )
            .expect(400, "invalid_character")
            .field("comment"),
            st(
                "comment RTL override",
                json!({"step": "school", "comment": "\u{202e}意同不"}),
            )
            .expect(400, "invalid_character")
            .field("comment"),
            st(
                "comment an object",
                json!({"step": "school", "comment": {"a": 1}}),
            )
            .expect(400, "invalid_field")
            .field("comment"),
            st(
                "registrar may not",
                json!({"step": "school", "comment": "同意"}),
            )
            .token(&registrar)
            .expect(403, "forbidden"),
        ]);
    }
    cases.push(
        Case::new("POST reject: no comment", "POST", reject.clone())
            .json(&json!({"step": "school"}))
            .expect(400, "required")
            .field("comment"),
    );

    // ---- sweeps ----------------------------------------------------------------------------
    let sweep = |what: &str, body: Value| {
        Case::new(format!("POST /v1/sweeps: {what}"), "POST", "/v1/sweeps").json(&body)
    };
    cases.extend([
        sweep("as_of 2026-02-30", json!({"as_of": "2026-02-30"}))
            .expect(400, "invalid_field")
            .field("as_of"),
        sweep("as_of a number", json!({"as_of": 20260101}))
            .expect(400, "invalid_field")
            .field("as_of"),
        sweep("as_of SQL", json!({"as_of": "2026-01-01' OR 1=1"}))
            .expect(400, "invalid_field")
            .field("as_of"),
        sweep("as_of missing", json!({}))
            .expect(400, "invalid_field")
            .field("as_of"),
        sweep(
            "jurisdiction traversal",
            json!({"as_of": "2026-01-01", "jurisdiction": "../../etc/passwd"}),
        )
        .expect(404, "not_found"),
        sweep("registrar may not", json!({"as_of": "2026-01-01"}))
            .token(&registrar)
            .expect(403, "forbidden"),
    ]);

    // ---- tokens ----------------------------------------------------------------------------
    let tok = |what: &str, pointer: &str, value: Value| {
        Case::new(format!("POST /v1/tokens: {what}"), "POST", "/v1/tokens").json(&with(
            token_body(),
            pointer,
            value,
        ))
    };
    cases.extend([
        tok("role root", "/role", json!("root"))
            .expect(400, "invalid_field")
            .field("role"),
        tok("role SQL", "/role", json!("admin' --"))
            .expect(400, "invalid_field")
            .field("role"),
        tok("school traversal", "/school", json!("../../etc/passwd"))
            .expect(400, "unknown_school")
            .field("school"),
        tok("label oversized", "/label", json!(long()))
            .expect(400, "too_long")
            .field("label"),
        tok("label NUL", "/label", json!("教务\u{0}"))
            .expect(400, "invalid_character")
            .field("label"),
        tok("label RTL override", "/label", json!("\u{202e}务教"))
            .expect(400, "invalid_character")
            .field("label"),
        tok("student unknown", "/student", json!("stu_' OR 1=1"))
            .expect(400, "unknown_student")
            .field("student"),
        tok("registrar may not", "/label", json!("x"))
            .token(&registrar)
            .expect(403, "forbidden"),
    ]);
    cases.extend([
        Case::new("POST /v1/tokens: officer without jurisdiction", "POST", "/v1/tokens")
            .json(&json!({"role": "district_officer"}))
            .expect(400, "required")
            .field("jurisdiction"),
        Case::new("POST /v1/tokens: officer jurisdiction SQL", "POST", "/v1/tokens")
            .json(&json!({"role": "district_officer", "jurisdiction": "x' OR 1=1"}))
            .expect(400, "unknown_jurisdiction")
            .field("jurisdiction"),
        Case::new("POST /v1/tokens: head teacher class oversized", "POST", "/v1/tokens")
            .json(&json!({"role": "head_teacher", "school": "s1", "class": long()}))
            .expect(400, "too_long")
            .field("class"),
        Case::new("POST /v1/tokens: officer area NUL", "POST", "/v1/tokens")
            .json(&json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东\u{0}区"}))
            .expect(400, "invalid_character")
            .field("area"),
    ]);
    path_attacks(&mut cases, "DELETE", "/v1/tokens/{}", None);

    // ---- policies ---------------------------------------------------------------------------
    path_attacks(&mut cases, "GET", "/v1/policies/{}", None);
    // An admin may upload a new jurisdiction: a path that is not the manifest's id is refused.
    path_attacks_answered(
        &mut cases,
        "PUT",
        "/v1/policies/{}",
        Some(&upload),
        (422, "policy_rejected"),
    );
    path_attacks(
        &mut cases,
        "POST",
        "/v1/policies/{}/evaluate",
        Some(&evaluate),
    );
    path_attacks(&mut cases, "POST", "/v1/policies/{}/impact", Some(&upload));
    for (method, path) in [
        ("PUT", "/v1/policies/test-district"),
        ("POST", "/v1/policies/test-district/impact"),
    ] {
        let pol = |what: &str, files: Value| {
            Case::new(format!("{method} {path}: {what}"), method, path)
                .json(&json!({ "files": files }))
        };
        let mut traversal = test_upload();
        traversal.insert("../../etc/passwd".into(), json!("root:x:0:0"));
        let mut nul_name = test_upload();
        nul_name.insert("a\u{0}.rhai".into(), json!(""));
        let mut broken = test_upload();
        broken.insert("rules.rhai".into(), json!("rule(#{ id: \"x\", "));
        let mut huge = test_upload();
        huge.insert("README.md".into(), json!("x".repeat(900_000)));
        huge.insert("NOTES.md".into(), json!("x".repeat(900_000)));
        cases.extend([
            pol("files a list", json!(["policy.toml"]))
                .expect(400, "invalid_field")
                .field("files"),
            pol("file content a number", json!({"policy.toml": 1}))
                .expect(400, "invalid_field")
                .field("files.policy.toml"),
            pol("file name traversal", Value::Object(traversal)).expect(422, "policy_rejected"),
            pol("file name NUL", Value::Object(nul_name)).expect(422, "policy_rejected"),
            pol("syntax error", Value::Object(broken)).expect(422, "policy_rejected"),
            pol("no files", json!({})).expect(422, "policy_rejected"),
        ]);
        cases.push(pol("1.8 MB package", Value::Object(huge)).expect(413, "body_too_large"));
    }
    cases.push(
        Case::new(
            "PUT policy: registrar may not",
            "PUT",
            "/v1/policies/test-district",
        )
        .json(&upload)
        .token(&registrar)
        .expect(403, "forbidden"),
    );
    let ev = |what: &str, pointer: &str, value: Value| {
        Case::new(
            format!("POST evaluate: {what}"),
            "POST",
            "/v1/policies/test-district/evaluate",
        )
        .json(&with(evaluate.clone(), pointer, value))
    };
    cases.extend([
        ev(
            "effective_date 2026-02-30",
            "/transition/effective_date",
            json!("2026-02-30"),
        )
        .expect(400, "invalid_field")
        .field("transition.effective_date"),
        ev("student a number", "/student", json!(7))
            .expect(400, "invalid_field")
            .field("student"),
        ev(
            "student id traversal",
            "/student",
            json!({"id": "../../etc/passwd"}),
        )
        .expect(404, "not_found"),
        ev("student grade 300", "/student/grade", json!(300))
            .expect(400, "invalid_field")
            .field("student"),
        ev(
            "param unknown",
            "/transition/params",
            json!({"admin": true}),
        )
        .expect(400, "unknown_param")
        .field("params.admin"),
        ev(
            "deadline impossible date",
            "/student/deadlines",
            json!([{"kind": "report_by", "date": "2026-02-30"}]),
        )
        .expect(400, "invalid_field")
        .field("student"),
    ]);

    // ---- rosters, statistics ---------------------------------------------------------------------
    path_attacks(&mut cases, "GET", "/v1/schools/{}", None);
    path_attacks(&mut cases, "GET", "/v1/schools/{}/roster", None);
    query_attacks(
        &mut cases,
        "GET",
        "/v1/schools/s1/roster",
        None,
        &[
            ("kind", "everyone"),
            ("year", "MMXXVI"),
            ("as_of", "2026-02-30"),
            ("format", "pdf"),
            ("limit", "-5"),
            ("cursor", "zz"),
        ],
    );
    cases.push(
        Case::new(
            "GET roster: cursor not a number",
            "GET",
            "/v1/schools/s1/roster?cursor=6869",
        )
        .expect(400, "invalid_cursor")
        .field("cursor"),
    );
    query_attacks(
        &mut cases,
        "GET",
        "/v1/stats",
        None,
        &[("as_of", "2026-02-30"), ("as_of", "<script>")],
    );
    cases.extend([
        Case::new(
            "GET /v1/stats: school and jurisdiction",
            "GET",
            "/v1/stats?school=s1&jurisdiction=test-district",
        )
        .expect(400, "conflicting_params")
        .field("jurisdiction"),
        Case::new(
            "GET /v1/stats: school traversal",
            "GET",
            format!("/v1/stats?school={}", encoded("../../etc/passwd")),
        )
        .expect(404, "not_found"),
        Case::new(
            "GET /v1/stats: jurisdiction SQL",
            "GET",
            format!("/v1/stats?jurisdiction={}", encoded("x' OR 1=1")),
        )
        .expect(404, "not_found"),
        Case::new("GET /v1/stats: no scope", "GET", "/v1/stats")
            .expect(400, "required")
            .field("school"),
        Case::new(
            "GET /v1/stats: guardian may not",
            "GET",
            "/v1/stats?school=s1",
        )
        .token(&guardian)
        .expect(403, "forbidden"),
    ]);

    // ---- import ----------------------------------------------------------------------------
    let import = "/v1/students/import?school=s1";
    let header = "name,gender,birth_date,id_card,grade,class,entry_date\n";
    let row = |cells: &str| format!("{header}{cells}\n");
    let imp = |what: &str, body: Vec<u8>| {
        Case::new(format!("POST import: {what}"), "POST", import).raw(Some("text/csv"), body)
    };
    cases.extend([
        imp("empty file", Vec::new())
            .expect(400, "empty_file")
            .field("file"),
        imp("not UTF-8", b"\xff\xfe\x00n\x00a".to_vec())
            .expect(400, "invalid_encoding")
            .field("file"),
        imp("unknown column", b"password,name\nx,y\n".to_vec()).expect(400, "unknown_column"),
        imp(
            "JSON instead of CSV",
            student_body().to_string().into_bytes(),
        )
        .expect(400, "unknown_column"),
        imp("broken XLSX", b"PK\x03\x04garbage".to_vec())
            .expect(400, "invalid_xlsx")
            .field("file"),
        imp(
            "impossible date row",
            row(&format!(
                "王小明,male,2016-02-30,{},3,4,2024-09-01",
                id_card("2016-05-01", 21)
            ))
            .into_bytes(),
        )
        .expect(422, "import_rejected"),
        imp(
            "invalid ID row",
            row(&format!(
                "王小明,male,2016-05-01,{bad_check},3,4,2024-09-01"
            ))
            .into_bytes(),
        )
        .expect(422, "import_rejected"),
        imp(
            "NUL in a name",
            row(&format!(
                "王\u{0}明,male,2016-05-01,{},3,4,2024-09-01",
                id_card("2016-05-01", 31)
            ))
            .into_bytes(),
        )
        .expect(422, "import_rejected"),
        imp(
            "RTL override in a name",
            row(&format!(
                "\u{202e}明小王,male,2016-05-01,{},3,4,2024-09-01",
                id_card("2016-05-01", 41)
            ))
            .into_bytes(),
        )
        .expect(422, "import_rejected"),
        imp(
            "oversized cell row",
            row(&format!(
                "{},male,2016-05-01,{},3,4,2024-09-01",
                long(),
                id_card("2016-05-01", 51)
            ))
            .into_bytes(),
        )
        .expect(422, "import_rejected"),
        imp("above 20 MiB", vec![b'a'; 20 * 1024 * 1024 + 1]).expect(413, "body_too_large"),
        Case::new("POST import: no token", "POST", import)
            .raw(Some("text/csv"), row("x"))
            .token("")
            .expect(401, "unauthorized"),
        Case::new("POST import: guardian may not", "POST", import)
            .raw(Some("text/csv"), row("x"))
            .token(&guardian)
            .expect(403, "forbidden"),
    ]);
    query_attacks(
        &mut cases,
        "POST",
        "/v1/students/import",
        None,
        &[
            ("format", "pdf"),
            ("partial", "sometimes"),
            ("dry_run", "2"),
        ],
    );

    // ---- jurisdiction logs: checkpoints, their check, consistency proofs ----------------------
    let checkpoints = "/v1/checkpoints";
    query_attacks(
        &mut cases,
        "GET",
        checkpoints,
        None,
        &[
            ("limit", "-1"),
            ("limit", "99999999999999999999999"),
            ("limit", "ten"),
            ("cursor", "not-hex"),
            ("cursor", "ff"),
        ],
    );
    cases.extend([
        Case::new("GET /v1/checkpoints: registrar may not", "GET", checkpoints)
            .token(&registrar)
            .expect(403, "forbidden"),
        Case::new("GET /v1/checkpoints: guardian may not", "GET", checkpoints)
            .token(&guardian)
            .expect(403, "forbidden"),
        Case::new("GET /v1/checkpoints: hostile token", "GET", checkpoints)
            .token("<script>' OR 1=1; --")
            .expect(401, "unauthorized"),
    ]);
    let verify_cp = "/v1/checkpoints/verify";
    body_attacks(&mut cases, "POST", verify_cp, &kept, "invalid_field");
    query_attacks(&mut cases, "POST", verify_cp, Some(&kept), &[]);
    let cp = |what: &str, pointer: &str, value: Value| {
        Case::new(format!("POST {verify_cp}: {what}"), "POST", verify_cp).json(&with(
            kept.clone(),
            pointer,
            value,
        ))
    };
    cases.extend([
        cp("items an object", "/items", json!({"a": 1}))
            .expect(400, "invalid_field")
            .field("items"),
        cp("no items", "/items", json!([]))
            .expect(400, "required")
            .field("items"),
        cp("size negative", "/items/0/size", json!(-1))
            .expect(400, "invalid_field")
            .field("items[0].size"),
        cp("size as text", "/items/0/size", json!("3"))
            .expect(400, "invalid_field")
            .field("items[0].size"),
        cp(
            "size 2^64",
            "/items/0/size",
            json!(18446744073709551616.0_f64),
        )
        .expect(400, "invalid_field")
        .field("items[0].size"),
        cp("root not hex", "/items/0/root", json!("zz".repeat(32)))
            .expect(400, "invalid_root")
            .field("items[0].root"),
        cp(
            "root oversized",
            "/items/0/root",
            json!("a".repeat(100_000)),
        )
        .expect(400, "invalid_root")
        .field("items[0].root"),
        cp(
            "root script",
            "/items/0/root",
            json!("<script>alert(1)</script>"),
        )
        .expect(400, "invalid_root")
        .field("items[0].root"),
        cp("root a number", "/items/0/root", json!(42))
            .expect(400, "invalid_field")
            .field("items[0].root"),
        cp("taken_at oversized", "/items/0/taken_at", json!(long()))
            .expect(400, "invalid_value")
            .field("items[0].taken_at"),
        cp(
            "taken_at 2026-02-30",
            "/items/0/taken_at",
            json!("2026-02-30T00:00:00Z"),
        )
        .expect(400, "invalid_value")
        .field("items[0].taken_at"),
        cp("taken_at SQL", "/items/0/taken_at", json!("' OR 1=1 --"))
            .expect(400, "invalid_value")
            .field("items[0].taken_at"),
        cp("unknown field in an item", "/items/0/admin", json!(true))
            .expect(400, "invalid_field")
            .field("items[0].admin"),
        cp(
            "jurisdiction unknown",
            "/items/0/jurisdiction",
            json!("nowhere"),
        )
        .expect(404, "not_found"),
        cp(
            "jurisdiction traversal",
            "/items/0/jurisdiction",
            json!("../../etc/passwd"),
        )
        .expect(404, "not_found"),
        cp(
            "jurisdiction oversized",
            "/items/0/jurisdiction",
            json!(long()),
        )
        .expect(404, "not_found"),
        cp(
            "jurisdiction a list",
            "/items/0/jurisdiction",
            json!(["test-district"]),
        )
        .expect(400, "invalid_field")
        .field("items[0].jurisdiction"),
        cp(
            "the same checkpoint twice",
            "/items/1",
            kept["items"][0].clone(),
        )
        .expect(400, "duplicate_value")
        .field("items[1].jurisdiction"),
        cp(
            "5,000 checkpoints",
            "/items",
            json!(vec![kept["items"][0].clone(); 5_000]),
        )
        .expect(400, "duplicate_value")
        .field("items[1].jurisdiction"),
        cp("registrar may not", "/next_cursor", Value::Null)
            .token(&registrar)
            .expect(403, "forbidden"),
    ]);
    let mut missing_root = kept.clone();
    missing_root["items"][0]
        .as_object_mut()
        .expect("item")
        .remove("root");
    cases.push(
        Case::new(
            format!("POST {verify_cp}: item without root"),
            "POST",
            verify_cp,
        )
        .json(&missing_root)
        .expect(400, "invalid_field")
        .field("items[0].root"),
    );
    let consistency = "/v1/jurisdictions/test-district/consistency";
    path_attacks(
        &mut cases,
        "GET",
        "/v1/jurisdictions/{}/consistency?from=1",
        None,
    );
    query_attacks(
        &mut cases,
        "GET",
        consistency,
        None,
        &[
            ("from", "-1"),
            ("from", "99999999999999999999999"),
            ("from", "abc"),
            ("from", "1.5"),
            ("from", ""),
        ],
    );
    cases.extend([
        Case::new(format!("GET {consistency}: no from"), "GET", consistency)
            .expect(400, "invalid_query")
            .field("from"),
        Case::new(
            format!("GET {consistency}: from 2^64-1"),
            "GET",
            format!("{consistency}?from=18446744073709551615"),
        )
        .expect(400, "out_of_range")
        .field("from"),
        Case::new(
            format!("GET {consistency}: from beyond the log"),
            "GET",
            format!("{consistency}?from=1000"),
        )
        .expect(400, "out_of_range")
        .field("from"),
        Case::new(
            format!("GET {consistency}: from twice"),
            "GET",
            format!("{consistency}?from=1&from=2"),
        )
        .expect(400, "invalid_query")
        .field("from"),
        Case::new(
            "GET consistency: jurisdiction SQL",
            "GET",
            format!(
                "/v1/jurisdictions/{}/consistency?from=1",
                encoded("x' OR 1=1")
            ),
        )
        .expect(404, "not_found"),
        Case::new(
            format!("GET {consistency}: registrar may not"),
            "GET",
            format!("{consistency}?from=1"),
        )
        .token(&registrar)
        .expect(403, "forbidden"),
    ]);
    // A backup takes no input: only an absent body, or `{}`, and no query.
    let backups = "/v1/backups";
    let mut attacks = Vec::new();
    body_attacks(&mut attacks, "POST", backups, &json!({}), "invalid_field");
    // An empty body is the ordinary request (`curl -X POST`), and `null` the documented way to
    // send no option: neither is an attack.
    attacks.retain(|c| !c.what.ends_with(": empty body") && !c.what.ends_with(": null body"));
    cases.extend(attacks);
    query_attacks(&mut cases, "POST", backups, None, &[]);
    cases.extend([
        Case::new("POST /v1/backups: an option", "POST", backups)
            .json(&json!({"path": "/etc/cron.d/x"}))
            .expect(400, "invalid_field")
            .field("path"),
        Case::new(
            "POST /v1/backups: a file name in the query",
            "POST",
            format!("{backups}?file=..%2F..%2Fxueji.redb"),
        )
        .expect(400, "invalid_query")
        .field("file"),
        Case::new("POST /v1/backups: registrar may not", "POST", backups)
            .token(&registrar)
            .expect(403, "forbidden"),
        Case::new("POST /v1/backups: guardian may not", "POST", backups)
            .token(&guardian)
            .expect(403, "forbidden"),
        Case::new("POST /v1/backups: no token", "POST", backups)
            .token("")
            .expect(401, "unauthorized"),
    ]);

    // ---- a verb the path does not serve: 405 in the error shape -------------------------------
    for (method, path) in [
        ("PATCH", "/v1/students"),
        ("DELETE", "/v1/schools/s1"),
        ("PUT", "/v1/sweeps"),
        ("PUT", "/v1/tokens"),
        ("POST", "/v1/verify"),
        ("DELETE", "/v1/students/import"),
        ("DELETE", "/v1/checkpoints"),
        ("GET", "/v1/checkpoints/verify"),
        ("POST", "/v1/jurisdictions/test-district/consistency"),
        ("GET", "/v1/backups"),
    ] {
        cases.push(
            Case::new(format!("{method} {path}: unsupported verb"), method, path)
                .json(&json!({}))
                .expect(405, "method_not_allowed"),
        );
    }

    // ---- read routes without input: a hostile token is still 401 -----------------------------
    for path in ["/v1/jurisdictions", "/v1/verify", "/v1/policies"] {
        cases.push(
            Case::new(format!("GET {path}: hostile token"), "GET", path)
                .token("<script>' OR 1=1; --")
                .expect(401, "unauthorized"),
        );
    }

    // Run the table.
    let (st, doc) = s.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(st, 200);
    // Every operation takes the bearer token but the liveness probe.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], json!([{}]));
    // The query parameters the server reads are the ones documented, enums with their values.
    let param = |path: &str, method: &str, name: &str| {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{method} {path}: parameter {name} not documented"))
    };
    assert!(
        param("/v1/students", "get", "status")["schema"]["enum"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("enrolled")))
    );
    assert_eq!(
        param("/v1/requests", "get", "step")["schema"]["enum"],
        json!([
            "school",
            "receiving_school",
            "district",
            "city",
            "receiving_district",
            "receiving_city"
        ])
    );
    assert_eq!(
        param("/v1/schools/{id}/roster", "get", "as_of")["schema"]["format"],
        "date"
    );
    for (path, method) in [
        ("/v1/students", "post"),
        ("/v1/students/{id}/transitions", "post"),
    ] {
        assert_eq!(param(path, method, "dry_run")["schema"]["type"], "boolean");
    }
    assert_eq!(
        param("/v1/students/{id}/events", "get", "cursor")["in"],
        "query"
    );
    let mut failures = Vec::new();
    for c in &cases {
        assert!(c.status >= 400, "{}: no expectation", c.what);
        let outcome = match send(&s, c).await {
            Ok((status, v)) => check(c, status, &v),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            failures.push(format!("{}: {e}", c.what));
        }
        if let Err(e) = documented(&doc, c) {
            failures.push(format!("{}: {e}", c.what));
        }
        let (health, _) = s.call("GET", "/healthz", None, None).await;
        if health != 200 {
            failures.push(format!("{}: /healthz answered {health} after it", c.what));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // The 405 answers still name the verbs served.
    let resp = s
        .client
        .patch(format!("{}/v1/students", s.base))
        .bearer_auth(&s.admin)
        .send()
        .await
        .expect("patch");
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        allow.contains("GET") && allow.contains("POST"),
        "Allow: {allow}"
    );
    let after = snapshot(&s).await;
    assert_eq!(before, after, "a hostile request changed the stored state");
    // No refused backup left a file (or even the folder) behind.
    let left: Vec<_> = std::fs::read_dir(&s.backup_dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "refused backups left {left:?}");
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut codes = std::collections::BTreeSet::new();
    for c in &cases {
        *by_status.entry(c.status).or_default() += 1;
        codes.insert(c.code);
    }
    let newest = |c: &&Case| {
        ["/v1/checkpoints", "/consistency", "/v1/backups"]
            .iter()
            .any(|p| c.path.contains(p))
    };
    println!(
        "hostile table: {} cases ({} on the log and backup routes), by status {by_status:?}, {} distinct codes",
        cases.len(),
        cases.iter().filter(newest).count(),
        codes.len()
    );
    assert_eq!(s.call("GET", "/healthz", None, None).await.0, 200);
}
