//! The HTTP contract over a real server: auth, roles and scopes, masking, errors, idempotency,
//! the approval workflow end to end.

use serde_json::{Value, json};

use super::helpers::*;

async fn setup() -> (TestServer, String) {
    let s = spawn_server().await;
    for (id, area) in [("s1", "东区"), ("s2", "西区")] {
        let (st, v) = s
            .call("POST", "/v1/schools", Some(&s.admin), Some(json!({"id": id, "name": format!("学校{id}"), "jurisdiction": "test-district", "area": area, "level": "primary"})))
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let (st, v) = s
        .call(
            "POST",
            "/v1/students",
            Some(&s.admin),
            Some(student_body("11010519491231002X", "s1")),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["outcome"], "applied");
    let id = v["student"]["id"].as_str().expect("id").to_owned();
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&s.admin),
            Some(json!({"kind": "register", "effective_date": "2024-09-02"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    (s, id)
}

fn student_body(id_card: &str, school: &str) -> Value {
    json!({
        "school": school, "name": "张小红", "gender": "female", "birth_date": format!("{}-{}-{}", &id_card[6..10], &id_card[10..12], &id_card[12..14]),
        "id_card": id_card, "grade": 3, "class": "4", "entry_date": "2024-09-01",
        "guardians": [{"name": "张大山", "relation": "父亲", "phone": "13800001234"}],
        "extra": {"health": "哮喘"}
    })
}

#[tokio::test]
async fn health_and_auth() {
    let s = spawn_server().await;
    assert_eq!(s.call("GET", "/healthz", None, None).await.0, 200);
    let (st, v) = s.call("GET", "/v1/jurisdictions", None, None).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    assert_eq!(
        s.call("GET", "/v1/jurisdictions", Some("nope"), None)
            .await
            .0,
        401
    );
    let (st, v) = s
        .call("GET", "/v1/jurisdictions", Some(&s.admin), None)
        .await;
    assert_eq!(st, 200);
    assert!(
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|j| j["id"] == "test-district")
    );
}

#[tokio::test]
async fn masking_by_role_and_scope_is_404() {
    let (s, id) = setup().await;
    let guardian = s.token(json!({"role": "guardian", "student": id})).await;
    let teacher = s
        .token(json!({"role": "head_teacher", "school": "s1", "class": "4"}))
        .await;
    let other_teacher = s
        .token(json!({"role": "head_teacher", "school": "s1", "class": "5"}))
        .await;
    let registrar = s.token(json!({"role": "registrar", "school": "s1"})).await;
    let other_registrar = s.token(json!({"role": "registrar", "school": "s2"})).await;
    let east = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}))
        .await;
    let west = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "西区"}))
        .await;
    let path = format!("/v1/students/{id}");

    let (st, v) = s.call("GET", &path, Some(&registrar), None).await;
    assert_eq!(st, 200);
    assert_eq!(v["id_card"], "11010519491231002X");
    assert_eq!(v["guardians"][0]["phone"], "13800001234");
    assert_eq!(v["extra"]["health"], "哮喘");

    for token in [&guardian, &teacher] {
        let (st, v) = s.call("GET", &path, Some(token), None).await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["id_card"], "1101************2X");
        assert_eq!(v["national_id"], "G1101************2X");
    }
    let (_, v) = s.call("GET", &path, Some(&teacher), None).await;
    assert!(
        v.get("extra").is_none(),
        "health data hidden from head teachers"
    );
    let (_, v) = s.call("GET", &path, Some(&east), None).await;
    assert_eq!(v["guardians"][0]["phone"], "138******34");

    for token in [&other_teacher, &other_registrar, &west] {
        let (st, v) = s.call("GET", &path, Some(token), None).await;
        assert_eq!(st, 404, "out of scope must look absent: {v}");
    }
    // A guardian may not list schools (role), a registrar of another school sees it as absent.
    assert_eq!(
        s.call("GET", "/v1/schools/s1", Some(&guardian), None)
            .await
            .0,
        403
    );
    assert_eq!(
        s.call("GET", "/v1/schools/s1", Some(&other_registrar), None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn suspension_with_two_approvals_end_to_end() {
    let (s, id) = setup().await;
    let registrar = s.token(json!({"role": "registrar", "school": "s1"})).await;
    let leader = s
        .token(json!({"role": "school_leader", "school": "s1"}))
        .await;
    let other_leader = s
        .token(json!({"role": "school_leader", "school": "s2"}))
        .await;
    let east = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}))
        .await;
    let west = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "西区"}))
        .await;
    let body = json!({"kind": "suspend", "effective_date": "2025-03-02", "reason": "illness", "params": {"until": "2026-03-01"},
        "documents": [{"kind": "hospital_diagnosis", "issuer_level": "county", "hospital_grade": "2A", "ref": "病历 123"}], "expected_version": 2});

    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions?dry_run=true"),
            Some(&registrar),
            Some(body.clone()),
        )
        .await;
    assert_eq!((st, v["dry_run"].as_bool()), (200, Some(true)), "{v}");
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&registrar),
            Some(body.clone()),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["decision"]["approvals"], json!(["school", "district"]));
    let req = v["request"]["id"].as_str().expect("request id").to_owned();

    // Wrong role, wrong scope, wrong order.
    let approve = |step: &str| json!({"step": step, "comment": "同意"});
    assert_eq!(
        s.call(
            "POST",
            &format!("/v1/requests/{req}/approve"),
            Some(&registrar),
            Some(approve("school"))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        s.call(
            "POST",
            &format!("/v1/requests/{req}/approve"),
            Some(&other_leader),
            Some(approve("school"))
        )
        .await
        .0,
        404
    );
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/requests/{req}/approve"),
            Some(&east),
            Some(approve("district")),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("step_out_of_order"))
    );

    let (st, v) = s
        .call(
            "GET",
            "/v1/requests?status=pending&step=school",
            Some(&leader),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["items"][0]["id"], req.as_str());
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/requests/{req}/approve"),
            Some(&leader),
            Some(approve("school")),
        )
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("pending")), "{v}");
    // An officer of another area does not even see the request.
    assert_eq!(
        s.call(
            "POST",
            &format!("/v1/requests/{req}/approve"),
            Some(&west),
            Some(approve("district"))
        )
        .await
        .0,
        404
    );
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/requests/{req}/approve"),
            Some(&east),
            Some(approve("district")),
        )
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
    assert_eq!(v["event"]["after"]["status"], "suspended");

    let (_, v) = s
        .call("GET", &format!("/v1/students/{id}"), Some(&registrar), None)
        .await;
    assert_eq!(v["status"], "suspended");
    let (_, v) = s
        .call(
            "GET",
            &format!("/v1/students/{id}/events"),
            Some(&registrar),
            None,
        )
        .await;
    assert_eq!(v["items"].as_array().expect("items").len(), 3);
    let (_, v) = s
        .call(
            "GET",
            &format!("/v1/students/{id}/verify"),
            Some(&registrar),
            None,
        )
        .await;
    assert_eq!(v["ok"], true);
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/requests/{req}/approve"),
            Some(&east),
            Some(approve("district")),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("request_not_pending"))
    );
}

#[tokio::test]
async fn bad_input_is_a_coded_4xx_never_a_500() {
    let (s, id) = setup().await;
    let t = Some(s.admin.as_str());
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "POST",
            "/v1/students".into(),
            json!({"school": "s1", "nam": "x"}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            "/v1/students".into(),
            json!({"school": "s1", "name": "某", "gender": "female", "birth_date": "2016-02-30", "grade": 1, "entry_date": "2024-09-01", "national_id": "J11010520160101002X"}),
            400,
            "invalid_date",
        ),
        (
            "POST",
            "/v1/students".into(),
            student_body("11010519491231002X", "s1"),
            409,
            "duplicate_identity",
        ),
        (
            "POST",
            "/v1/students".into(),
            student_body("110105201605010011", "nowhere"),
            400,
            "unknown_school",
        ),
        (
            "POST",
            format!("/v1/students/{id}/transitions"),
            json!({"kind": "fly", "effective_date": "2025-01-01"}),
            400,
            "invalid_field",
        ),
        (
            "POST",
            format!("/v1/students/{id}/transitions"),
            json!({"kind": "resume", "effective_date": "2025-01-01"}),
            422,
            "invalid_transition",
        ),
        (
            "POST",
            format!("/v1/students/{id}/transitions"),
            json!({"kind": "change_class", "effective_date": "2025-01-01", "params": {"klass": "2"}}),
            400,
            "unknown_param",
        ),
        (
            "POST",
            format!("/v1/students/{id}/transitions"),
            json!({"kind": "change_class", "effective_date": "2025-01-01", "params": {"class": "2"}, "expected_version": 99}),
            409,
            "version_conflict",
        ),
        (
            "POST",
            "/v1/students/nope/transitions".into(),
            json!({"kind": "change_class", "effective_date": "2025-01-01"}),
            404,
            "not_found",
        ),
        (
            "POST",
            "/v1/sweeps".into(),
            json!({"as_of": "2025-13-01"}),
            400,
            "invalid_field",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (st, v) = s.call(method, &path, t, Some(body.clone())).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path} {body}: {v}"
        );
    }
    let resp = s
        .client
        .post(format!("{}/v1/students", s.base))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body("{\"school\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    let big = "x".repeat(xueji::http::BODY_LIMIT + 10);
    let resp = s
        .client
        .post(format!("{}/v1/students", s.base))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{big}\"}}"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 413);
    // Nothing stored by any of it; the server is healthy.
    let (_, v) = s.call("GET", &format!("/v1/students/{id}"), t, None).await;
    assert_eq!(v["version"], 2);
    assert_eq!(s.call("GET", "/healthz", None, None).await.0, 200);
}

#[tokio::test]
async fn idempotent_retries_return_the_first_response() {
    let (s, id) = setup().await;
    let send = || async {
        let resp = s
            .client
            .post(format!("{}/v1/students/{id}/transitions", s.base))
            .bearer_auth(&s.admin)
            .header("Idempotency-Key", "k-123")
            .json(&json!({"kind": "change_class", "effective_date": "2025-01-01", "params": {"class": "7"}}))
            .send()
            .await
            .expect("send");
        (
            resp.status().as_u16(),
            resp.json::<Value>().await.expect("json"),
        )
    };
    let (st1, v1) = send().await;
    let (st2, v2) = send().await;
    assert_eq!((st1, st2), (201, 201));
    assert_eq!(v1, v2);
    let (_, v) = s
        .call(
            "GET",
            &format!("/v1/students/{id}/events"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(
        v["items"].as_array().expect("items").len(),
        3,
        "the retry changed nothing"
    );
}

#[tokio::test]
async fn paging_and_revocation() {
    let s = spawn_server().await;
    s.call("POST", "/v1/schools", Some(&s.admin), Some(json!({"id": "s1", "name": "一小", "jurisdiction": "test-district", "level": "primary"}))).await;
    for i in 0..5u32 {
        let (st, v) = s
            .call(
                "POST",
                "/v1/students",
                Some(&s.admin),
                Some(student_body(&id_card("2016-05-01", i * 2), "s1")),
            )
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let registrar = s
        .token(json!({"role": "registrar", "school": "s1", "label": "教务"}))
        .await;
    // Five students at two a page: three pages, each student on exactly one of them. The loop
    // is bounded so that a cursor that stops advancing fails instead of paging for ever.
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/v1/students?school=s1&limit=2&cursor={c}"),
            None => "/v1/students?school=s1&limit=2".into(),
        };
        let (st, v) = s.call("GET", &path, Some(&registrar), None).await;
        assert_eq!(st, 200, "{v}");
        let items = v["items"].as_array().expect("items");
        sizes.push(items.len());
        seen.extend(
            items
                .iter()
                .map(|i| i["id"].as_str().expect("id").to_owned()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => {
                assert_ne!(cursor.as_deref(), Some(c), "the cursor did not advance");
                cursor = Some(c.to_owned());
            }
            None => {
                cursor = None;
                break;
            }
        }
    }
    assert!(cursor.is_none(), "still paging after 10 pages: {sizes:?}");
    assert_eq!(sizes, [2, 2, 1], "page sizes");
    let distinct: std::collections::BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "a student on two pages: {seen:?}"
    );
    assert_eq!(seen.len(), 5);
    // Revoked tokens stop working at once.
    let record = s
        .xueji
        .authenticate(&registrar)
        .expect("auth")
        .expect("known");
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/tokens/{}", record.id),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        s.call("GET", "/v1/students?school=s1", Some(&registrar), None)
            .await
            .0,
        401
    );
}

/// The contract's paths (shared/api.md), each of which must be served and documented.
const CONTRACT: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/v1/jurisdictions"),
    ("post", "/v1/schools"),
    ("get", "/v1/schools/{id}"),
    ("post", "/v1/students"),
    ("get", "/v1/students"),
    ("get", "/v1/students/{id}"),
    ("post", "/v1/students/{id}/transitions"),
    ("get", "/v1/students/{id}/events"),
    ("get", "/v1/students/{id}/verify"),
    ("get", "/v1/verify"),
    ("get", "/v1/requests"),
    ("get", "/v1/requests/{id}"),
    ("post", "/v1/requests/{id}/approve"),
    ("post", "/v1/requests/{id}/reject"),
    ("post", "/v1/sweeps"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("delete", "/v1/tokens/{id}"),
    ("get", "/v1/policies"),
    ("get", "/v1/policies/{jurisdiction}"),
    ("put", "/v1/policies/{jurisdiction}"),
    ("post", "/v1/policies/{jurisdiction}/evaluate"),
    ("post", "/v1/policies/{jurisdiction}/impact"),
];

#[tokio::test]
async fn the_openapi_document_covers_every_route_of_the_contract() {
    let s = spawn_server().await;
    let (st, doc) = s.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(st, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    for (method, path) in CONTRACT {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from /v1/openapi.json"
        );
        // And the route is really served: an unauthenticated call is never the router's 404.
        let concrete = path
            .replace("{id}", "x")
            .replace("{jurisdiction}", "test-district");
        let (st, v) = s.call(&method.to_uppercase(), &concrete, None, None).await;
        assert!(
            st != 404
                || v["error"]["code"] != "not_found"
                || v["error"]["message"] != "没有这个接口",
            "{method} {path} not routed"
        );
        assert_ne!(st, 405, "{method} {path} not routed");
    }
    let (st, v) = s.call("GET", "/v1/nothing-here", None, None).await;
    assert_eq!((st, v["error"]["code"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn role_by_endpoint_by_scope_table() {
    let (s, id) = setup().await;
    let tokens = [
        ("admin", s.admin.clone()),
        ("officer_east", s.token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"})).await),
        ("officer_west", s.token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "西区"})).await),
        ("officer_city", s.token(json!({"role": "district_officer", "jurisdiction": "test-district"})).await),
        ("leader_s1", s.token(json!({"role": "school_leader", "school": "s1"})).await),
        ("registrar_s1", s.token(json!({"role": "registrar", "school": "s1"})).await),
        ("registrar_s2", s.token(json!({"role": "registrar", "school": "s2"})).await),
        ("teacher_s1_4", s.token(json!({"role": "head_teacher", "school": "s1", "class": "4"})).await),
        ("guardian", s.token(json!({"role": "guardian", "student": id})).await),
    ];
    let change_class =
        json!({"kind": "change_class", "effective_date": "2025-01-01", "params": {"class": "4"}});
    let correct = json!({"kind": "correct_info", "effective_date": "2025-01-01", "params": {"fields": {"extra": {"note": "x"}}}});
    let student = format!("/v1/students/{id}");
    let transitions = format!("/v1/students/{id}/transitions?dry_run=true");
    let events = format!("/v1/students/{id}/events");
    // (method, path, body, expected status per role in the order of `tokens`)
    let table: Vec<(&str, String, Option<Value>, [u16; 9])> = vec![
        (
            "GET",
            student.clone(),
            None,
            [200, 200, 404, 200, 200, 200, 404, 200, 200],
        ),
        (
            "GET",
            events.clone(),
            None,
            [200, 200, 404, 200, 200, 200, 404, 200, 200],
        ),
        (
            "GET",
            "/v1/schools/s1".into(),
            None,
            [200, 200, 404, 200, 200, 200, 404, 200, 403],
        ),
        (
            "POST",
            transitions.clone(),
            Some(change_class),
            [200, 403, 403, 403, 403, 200, 404, 403, 403],
        ),
        (
            "POST",
            transitions.clone(),
            Some(correct),
            [200, 403, 403, 403, 403, 200, 404, 200, 403],
        ),
        (
            "GET",
            "/v1/requests?jurisdiction=test-district".into(),
            None,
            [200, 200, 200, 200, 200, 200, 200, 403, 403],
        ),
        (
            "GET",
            "/v1/verify".into(),
            None,
            [200, 403, 403, 403, 403, 403, 403, 403, 403],
        ),
        (
            "POST",
            "/v1/sweeps".into(),
            Some(json!({"as_of": "2024-01-01"})),
            [200, 200, 200, 200, 403, 403, 403, 403, 403],
        ),
        (
            "POST",
            "/v1/tokens".into(),
            Some(json!({"role": "registrar", "school": "s1"})),
            // Another area's officer: the answer for a school that does not exist (400).
            [201, 201, 400, 201, 403, 403, 403, 403, 403],
        ),
        (
            "POST",
            "/v1/schools".into(),
            Some(
                json!({"id": "s9", "name": "九小", "jurisdiction": "test-district", "area": "东区", "level": "primary"}),
            ),
            [201, 409, 403, 409, 403, 403, 403, 403, 403],
        ),
    ];
    println!(
        "access: {} role × endpoint × scope cells ({} requests × {} tokens)",
        table.len() * tokens.len(),
        table.len(),
        tokens.len()
    );
    let mut failures = Vec::new();
    for (method, path, body, expected) in &table {
        for ((role, token), want) in tokens.iter().zip(expected) {
            let (got, v) = s.call(method, path, Some(token), body.clone()).await;
            if got != *want {
                failures.push(format!(
                    "{role} {method} {path}: expected {want}, got {got} {v}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn metrics_count_requests_decisions_and_commits() {
    let (s, id) = setup().await;
    let (st, _) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&s.admin),
            Some(json!({"kind": "resume", "effective_date": "2025-01-01"})),
        )
        .await;
    assert_eq!(st, 422);
    let text = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("xueji_decisions_total{outcome=\"applied\"} 2"),
        "{text}"
    );
    assert!(text.contains("xueji_http_requests_total{method=\"POST\",route=\"/v1/students/{id}/transitions\",status=\"422\"} 1"), "{text}");
    let commits: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("xueji_commit_duration_seconds_count "))
        .and_then(|n| n.parse().ok())
        .expect("commit count");
    assert!(commits >= 4, "{text}");
}

#[tokio::test]
async fn requests_policies_and_jurisdictions_read_back() {
    let (s, id) = setup().await;
    let body = json!({"kind": "suspend", "effective_date": "2025-03-02", "params": {"until": "2026-03-01"}, "documents": [{"kind": "hospital_diagnosis"}]});
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&s.admin),
            Some(body),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let req = v["request"]["id"].as_str().expect("id").to_owned();
    let (st, v) = s
        .call("GET", &format!("/v1/requests/{req}"), Some(&s.admin), None)
        .await;
    assert_eq!(
        (st, v["status"].as_str(), v["next_step"].as_str()),
        (200, Some("pending"), Some("school")),
        "{v}"
    );
    let (st, v) = s.call("GET", "/v1/policies", Some(&s.admin), None).await;
    assert_eq!(st, 200);
    assert!(
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|p| p["id"] == "test-district")
    );
    let (st, v) = s
        .call("GET", "/v1/policies/test-district", Some(&s.admin), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        v["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r| r["package"] == "test-district")
            .count(),
        4
    );
    assert!(
        v["files"]["rules.rhai"]
            .as_str()
            .is_some_and(|t| t.contains("test.suspend.proof"))
    );
    assert_eq!(
        s.call("GET", "/v1/policies/nowhere", Some(&s.admin), None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn cors_allows_the_configured_portal_origin_only() {
    let t = engine();
    let state = xueji::http::AppState {
        backup_dir: t.dir.path().join("backups").into(),
        xueji: std::sync::Arc::new(t.xueji),
        metrics: Default::default(),
    };
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(["https://portal.example"
            .parse::<axum::http::HeaderValue>()
            .expect("origin")])
        .allow_methods(tower_http::cors::Any)
        .allow_headers(tower_http::cors::Any);
    let app = xueji::http::router(state, Some(cors));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(xueji::http::serve(listener, app, std::future::pending()));
    let client = reqwest::Client::new();
    let allowed = client
        .get(format!("{base}/healthz"))
        .header("Origin", "https://portal.example")
        .send()
        .await
        .expect("get");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://portal.example")
    );
    let other = client
        .get(format!("{base}/healthz"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("get");
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// The student's version as the API reads it back.
async fn stored_version(s: &TestServer, id: &str) -> u64 {
    let (_, v) = s
        .call("GET", &format!("/v1/students/{id}"), Some(&s.admin), None)
        .await;
    v["version"].as_u64().expect("version")
}

/// The `change_class` events of the student's history, oldest first.
async fn class_changes(s: &TestServer, id: &str) -> Vec<Value> {
    let (_, events) = s
        .call(
            "GET",
            &format!("/v1/students/{id}/events?limit=200"),
            Some(&s.admin),
            None,
        )
        .await;
    events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["input"]["kind"] == "change_class")
        .cloned()
        .collect()
}

/// The handler decides on a blocking thread and awaits the commit (issue #20): a transition
/// that loses the race for its student to a commit made after it read them is decided again,
/// as the engine's own loop does, and every answer stands for what the store holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_transitions_of_one_student_are_decided_again_and_lose_nothing() {
    const WRITERS: usize = 8;
    let (s, id) = setup().await;
    let base_version = stored_version(&s, &id).await;
    let answers = futures_util::future::join_all((0..WRITERS).map(|i| {
        let path = format!("/v1/students/{id}/transitions");
        let s = &s;
        async move {
            s.call(
                "POST",
                &path,
                Some(&s.admin),
                Some(
                    json!({"kind": "change_class", "effective_date": "2025-01-01",
                    "params": {"class": format!("{}", i + 1)}}),
                ),
            )
            .await
        }
    }))
    .await;
    let mut applied = Vec::new();
    for (status, v) in answers {
        match status {
            201 => applied.push(v["event"]["seq"].as_u64().expect("seq")),
            // Every attempt lost to another commit: refused, nothing of it stored.
            409 => assert_eq!(v["error"]["code"], "version_conflict", "{v}"),
            other => panic!("HTTP {other}: {v}"),
        }
    }
    // Each refused writer lost three attempts to three different commits.
    assert!(applied.len() >= 3, "only {} landed", applied.len());
    applied.sort_unstable();
    applied.dedup();
    assert_eq!(
        stored_version(&s, &id).await,
        base_version + applied.len() as u64,
        "one version per acknowledged transition, each with its own event"
    );
    let seqs: Vec<u64> = class_changes(&s, &id)
        .await
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs, applied,
        "the acknowledged events, and only they, are in the history"
    );
}

/// Clients that hang up while their transition is being decided or committed (the handler
/// awaiting the writer is dropped with the connection): each transition is stored whole or not
/// at all, the history stays one unbroken chain, and the server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_hang_up_mid_transition_leave_whole_transitions_or_none() {
    let (s, id) = setup().await;
    let base_version = stored_version(&s, &id).await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_micros(1500))
        .build()
        .expect("client");
    let mut answered = 0;
    for i in 0..40u32 {
        let sent = impatient
            .post(format!("{}/v1/students/{id}/transitions", s.base))
            .bearer_auth(&s.admin)
            .json(
                &json!({"kind": "change_class", "effective_date": "2025-01-01",
                "params": {"class": format!("{}", i % 5 + 1)}}),
            )
            .send()
            .await;
        if sent.is_ok_and(|r| r.status().as_u16() == 201) {
            answered += 1;
        }
    }
    // Whatever was cut off in flight is committed or not by now: the writer answers every
    // command it took, and a patient request queues behind them.
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&s.admin),
            Some(
                json!({"kind": "change_class", "effective_date": "2025-01-01",
                "params": {"class": "9"}}),
            ),
        )
        .await;
    assert_eq!(st, 201, "the server still answers: {v}");
    let stored = stored_version(&s, &id).await - base_version;
    assert!(
        stored > answered,
        "every answered transition is stored, and the last one too ({stored} stored, {answered} answered)"
    );
    let classes = class_changes(&s, &id).await.len() as u64;
    assert_eq!(classes, stored, "one event per stored version");
    let (_, v) = s
        .call(
            "GET",
            &format!("/v1/students/{id}/verify"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(v["ok"], true, "{v}");
}
