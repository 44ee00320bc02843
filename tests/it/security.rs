//! Issue #14, the holes found by attack that are about scope: who may replay a candidate policy
//! over the history, what a decision may say to a role that may not see a value, how far a sweep
//! reaches, and what a list filter naming something outside the caller's scope returns.

use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::helpers::{
    TEST_MANIFEST, TEST_RULES, d, enrolled, form, id_card, registrar, school, spawn_server_with,
    test_packages, test_upload,
};
use xueji::domain::Status;
use xueji::engine::Outcome;
use xueji::policy::PackageSource;

/// The personal values the tests plant and then look for in every answer.
const HEALTH: &str = "先天性心脏病术后复查";
const GUARDIAN: &str = "欧阳监护";

/// Admits and registers a student at `school` with a health note and a named guardian.
fn enrolled_with_personal_data(x: &xueji::engine::Xueji, school: &str, seq: u32) -> String {
    let mut f = form("秘密学生", &id_card("2016-05-01", seq));
    f.school = school.into();
    f.extra = Some(serde_json::from_value(json!({ "health": HEALTH })).expect("map"));
    f.guardians[0].name = GUARDIAN.into();
    let admitted = match x.admit(f, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => student,
        other => panic!("admit not applied: {other:?}"),
    };
    let input = xueji::domain::TransitionInput::new(
        xueji::domain::TransitionKind::Register,
        d("2024-09-02"),
    );
    x.transition(&admitted.id, input, &registrar(), false)
        .expect("register");
    admitted.id
}

/// A server with the test district's two schools of 东区, `s1` and `s2`.
async fn server(packages: &xueji::policy::PackageSet) -> super::helpers::TestServer {
    let s = spawn_server_with(packages).await;
    for id in ["s1", "s2"] {
        s.xueji
            .create_school(school(id, Some("东区")))
            .expect("school");
    }
    s
}

fn officer(jurisdiction: &str, area: Option<&str>) -> Value {
    let mut body = json!({ "role": "district_officer", "jurisdiction": jurisdiction });
    if let Some(a) = area {
        body["area"] = json!(a);
    }
    body
}

#[tokio::test]
async fn impact_and_evaluate_are_only_for_those_who_may_change_the_rules() {
    let s = server(&test_packages()).await;
    let area_officer = s.token(officer("test-district", Some("东区"))).await;
    let wide_officer = s.token(officer("test-district", None)).await;
    let other_officer = s.token(officer("national-k12", None)).await;
    let registrar = s
        .token(json!({ "role": "registrar", "school": "s1" }))
        .await;
    let package = json!({ "files": test_upload() });
    let evaluate = json!({
        "student": { "status": "enrolled", "grade": 3, "class": "4" },
        "transition": { "kind": "change_class", "effective_date": "2025-03-02", "params": { "class": "5" } },
    });
    for (token, expected) in [
        (&area_officer, 403),
        (&other_officer, 404),
        (&registrar, 403),
        (&wide_officer, 200),
        (&s.admin, 200),
    ] {
        let (status, v) = s
            .call(
                "POST",
                "/v1/policies/test-district/impact",
                Some(token),
                Some(package.clone()),
            )
            .await;
        assert_eq!(status, expected, "impact: {v}");
        let (status, v) = s
            .call(
                "POST",
                "/v1/policies/test-district/evaluate",
                Some(token),
                Some(evaluate.clone()),
            )
            .await;
        assert_eq!(status, expected, "evaluate: {v}");
    }
}

#[tokio::test]
async fn an_impact_replay_never_carries_a_students_personal_values() {
    let s = server(&test_packages()).await;
    let id = enrolled_with_personal_data(&s.xueji, "s1", 11);
    let input = xueji::domain::TransitionInput {
        params: serde_json::from_value(json!({ "class": "5" })).expect("params"),
        ..xueji::domain::TransitionInput::new(
            xueji::domain::TransitionKind::ChangeClass,
            d("2025-03-02"),
        )
    };
    s.xueji
        .transition(&id, input, &registrar(), false)
        .expect("class change");
    // A candidate whose class-change rule raises an error spelling out the student's name, health
    // note and guardian: the script's message must not reach the caller.
    let leaking = TEST_RULES.replace(
        r#"if c.param("class") == () { return deny("调班须填写新班级"); }"#,
        r#"let s = c.student; throw "泄露:" + s.name + s.extra.health + s.guardians[0].name;"#,
    );
    assert_ne!(leaking, TEST_RULES, "the candidate changes the rule");
    let mut files = test_upload();
    files.insert("rules.rhai".into(), json!(leaking));
    let wide_officer = s.token(officer("test-district", None)).await;
    for token in [&wide_officer, &s.admin] {
        let (status, report) = s
            .call(
                "POST",
                "/v1/policies/test-district/impact",
                Some(token),
                Some(json!({ "files": files })),
            )
            .await;
        assert_eq!(status, 200, "{report}");
        let text = report.to_string();
        for secret in [HEALTH, GUARDIAN, "秘密学生", "泄露"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        // The failure is still reported: where, and that the candidate would refuse the case.
        let failed: Vec<&Value> = report["changed"]
            .as_array()
            .expect("changed")
            .iter()
            .filter(|c| c["after"] == "error")
            .collect();
        assert_eq!(failed.len(), 1, "{report}");
        assert_eq!(failed[0]["student"], id.as_str());
        assert_eq!(failed[0]["error"]["rule"], "test.change_class.direct");
        assert!(
            failed[0]["error"]["position"]
                .as_str()
                .is_some_and(|p| p.starts_with("rules.rhai:")),
            "{report}"
        );
    }
}

/// The test district with a correction rule whose message quotes the health note.
fn packages_quoting_health() -> xueji::policy::PackageSet {
    let mut set = test_packages();
    let rules = format!(
        "{TEST_RULES}\n// 第四条 更正信息由学校办理\nrule(#{{ id: \"test.correct.quote\", on: [\"correct_info\"], cites: \"t 第四条\", check: |c| {{\n    allow(\"更正信息,健康情况:\" + c.student.extra.health)\n}}}});\n// 第五条 休学说明健康情况\nrule(#{{ id: \"test.suspend.quote\", on: [\"suspend\"], cites: \"t 第五条\", check: |c| {{\n    allow(\"休学,健康情况:\" + c.student.extra.health)\n}}}});\n"
    );
    let files: BTreeMap<String, String> = [
        ("policy.toml".to_owned(), TEST_MANIFEST.to_owned()),
        ("rules.rhai".to_owned(), rules),
    ]
    .into();
    set.packages
        .insert("test-district".into(), PackageSource { files });
    set
}

#[tokio::test]
async fn a_decision_message_spelling_out_a_hidden_value_is_withheld_from_that_role() {
    let s = server(&packages_quoting_health()).await;
    let id = enrolled_with_personal_data(&s.xueji, "s1", 12);
    let head_teacher = s
        .token(json!({ "role": "head_teacher", "school": "s1", "class": "4" }))
        .await;
    let registrar = s
        .token(json!({ "role": "registrar", "school": "s1" }))
        .await;
    let correction = json!({
        "kind": "correct_info", "effective_date": "2025-01-01",
        "params": { "fields": { "extra": { "note": "x" } } },
    });
    let path = format!("/v1/students/{id}/transitions?dry_run=true");
    let message = |v: &Value| {
        v["decision"]["rules"]
            .as_array()
            .and_then(|rules| rules.iter().find(|r| r["id"] == "test.correct.quote"))
            .map(|r| r["message"].as_str().unwrap_or_default().to_owned())
    };
    // The registrar may see the health note: the message is whole.
    let (status, v) = s
        .call("POST", &path, Some(&registrar), Some(correction.clone()))
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(message(&v).is_some_and(|m| m.contains(HEALTH)), "{v}");
    // The head teacher may not: the rule, effect and citation stay, the message is withheld.
    let (status, v) = s
        .call("POST", &path, Some(&head_teacher), Some(correction.clone()))
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(!v.to_string().contains(HEALTH), "{v}");
    assert_eq!(
        message(&v).as_deref(),
        Some(xueji::http::view::WITHHELD_MESSAGE)
    );
    // A jurisdiction-wide officer evaluating the same student sees no health note either.
    let officer_token = s.token(officer("test-district", None)).await;
    let (status, v) = s
        .call(
            "POST",
            "/v1/policies/test-district/evaluate",
            Some(&officer_token),
            Some(json!({ "student": { "id": id }, "transition": correction })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(!v.to_string().contains(HEALTH), "{v}");
    assert_eq!(
        message(&v).as_deref(),
        Some(xueji::http::view::WITHHELD_MESSAGE)
    );

    // Recorded: the history shows the head teacher the rule without the message.
    let (status, v) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&registrar),
            Some(correction),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let events = format!("/v1/students/{id}/events");
    let (status, v) = s.call("GET", &events, Some(&registrar), None).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.to_string().contains(HEALTH), "{v}");
    let (status, v) = s.call("GET", &events, Some(&head_teacher), None).await;
    assert_eq!(status, 200, "{v}");
    assert!(!v.to_string().contains(HEALTH), "{v}");
    assert!(
        v.to_string().contains(xueji::http::view::WITHHELD_MESSAGE),
        "{v}"
    );

    // A request: the officer reads it, lists it and approves its district step without the note.
    let suspend = json!({
        "kind": "suspend", "effective_date": "2025-03-02", "params": { "until": "2026-03-01" },
        "documents": [{ "kind": "hospital_diagnosis" }],
    });
    let other = enrolled_with_personal_data(&s.xueji, "s1", 13);
    let (status, v) = s
        .call(
            "POST",
            &format!("/v1/students/{other}/transitions"),
            Some(&registrar),
            Some(suspend),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    assert!(v.to_string().contains(HEALTH), "the registrar sees it: {v}");
    let request = v["request"]["id"].as_str().expect("request id").to_owned();
    let (status, v) = s
        .call(
            "POST",
            &format!("/v1/requests/{request}/approve"),
            Some(&s.admin),
            Some(json!({ "step": "school" })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    for path in [format!("/v1/requests/{request}"), "/v1/requests".to_owned()] {
        let (status, v) = s.call("GET", &path, Some(&officer_token), None).await;
        assert_eq!(status, 200, "{v}");
        assert!(!v.to_string().contains(HEALTH), "{path}: {v}");
        assert!(
            v.to_string().contains(xueji::http::view::WITHHELD_MESSAGE),
            "{v}"
        );
    }
    let area_officer = s.token(officer("test-district", Some("东区"))).await;
    let (status, v) = s
        .call(
            "POST",
            &format!("/v1/requests/{request}/approve"),
            Some(&area_officer),
            Some(json!({ "step": "district" })),
        )
        .await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("applied")),
        "{v}"
    );
    assert!(!v.to_string().contains(HEALTH), "{v}");
}

/// Admits a student whose report deadline (2024-09-05) lapsed long ago, at `school`.
fn admitted_past_deadline(x: &xueji::engine::Xueji, school: &str, seq: u32) -> String {
    let mut f = form("未报到", &id_card("2016-06-01", seq));
    f.school = school.into();
    match x.admit(f, &registrar(), false).expect("admit") {
        Outcome::Applied { student, .. } => student.id,
        other => panic!("admit not applied: {other:?}"),
    }
}

#[tokio::test]
async fn a_sweep_acts_only_inside_the_callers_scope_and_never_on_a_future_date() {
    let s = server(&test_packages()).await;
    let (status, v) = s
        .call(
            "POST",
            "/v1/schools",
            Some(&s.admin),
            Some(json!({ "id": "w1", "name": "西区学校", "jurisdiction": "test-district", "area": "西区", "level": "primary" })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let east = admitted_past_deadline(&s.xueji, "s1", 21);
    let west = admitted_past_deadline(&s.xueji, "w1", 22);
    let east_officer = s.token(officer("test-district", Some("东区"))).await;

    // After today in Asia/Shanghai: refused, nothing evaluated.
    let tomorrow = s.xueji.today().add_days(1).expect("a date");
    let (status, v) = s
        .call(
            "POST",
            "/v1/sweeps",
            Some(&s.admin),
            Some(json!({ "as_of": tomorrow.to_string() })),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "date_in_future");
    assert_eq!(v["error"]["details"]["field"], "as_of");

    let (status, v) = s
        .call(
            "POST",
            "/v1/sweeps",
            Some(&east_officer),
            Some(json!({ "as_of": "2024-09-30" })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["evaluated"], 1, "{v}");
    let applied: Vec<&str> = v["applied"]
        .as_array()
        .expect("applied")
        .iter()
        .filter_map(|a| a["student"].as_str())
        .collect();
    assert_eq!(applied, [east.as_str()], "{v}");
    assert!(!v.to_string().contains(&west), "{v}");
    assert_eq!(
        s.xueji.student(&east).expect("east").status,
        Status::AdmissionForfeited
    );
    assert_eq!(
        s.xueji.student(&west).expect("west").status,
        Status::Admitted
    );

    // Today itself is a date a sweep may run on; the admin's reaches the west school.
    let (status, v) = s
        .call(
            "POST",
            "/v1/sweeps",
            Some(&s.admin),
            Some(json!({ "as_of": s.xueji.today().to_string() })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        s.xueji.student(&west).expect("west").status,
        Status::AdmissionForfeited
    );
}

#[tokio::test]
async fn a_list_filter_outside_the_callers_scope_returns_nothing() {
    let s = server(&test_packages()).await;
    enrolled(&s.xueji, "东一", 31);
    let mut in_s2 = form("东二", &id_card("2016-05-01", 32));
    in_s2.school = "s2".into();
    s.xueji.admit(in_s2, &registrar(), false).expect("admit");
    let registrar = s
        .token(json!({ "role": "registrar", "school": "s1" }))
        .await;
    let head_teacher = s
        .token(json!({ "role": "head_teacher", "school": "s1", "class": "4" }))
        .await;
    let officer_token = s.token(officer("test-district", None)).await;
    let count = |v: &Value| v["items"].as_array().map_or(usize::MAX, Vec::len);

    // Unfiltered, each caller sees their own students: the filters below must change that.
    for token in [&registrar, &head_teacher] {
        let (status, v) = s.call("GET", "/v1/students", Some(token), None).await;
        assert_eq!((status, count(&v)), (200, 1), "{v}");
    }
    let (status, v) = s
        .call("GET", "/v1/students", Some(&officer_token), None)
        .await;
    assert_eq!((status, count(&v)), (200, 2), "{v}");
    // A guardian's list is their child, unless a filter does not match them.
    let child = enrolled(&s.xueji, "孩子", 34);
    let guardian = s
        .token(json!({ "role": "guardian", "student": child.id }))
        .await;
    for (query, expected) in [
        ("", 1),
        ("?class=4", 1),
        ("?class=5", 0),
        ("?school=s2", 0),
        ("?status=suspended", 0),
    ] {
        let (status, v) = s
            .call(
                "GET",
                &format!("/v1/students{query}"),
                Some(&guardian),
                None,
            )
            .await;
        assert_eq!((status, count(&v)), (200, expected), "{query}: {v}");
    }

    for (token, query) in [
        (&registrar, "school=s2"),
        (&registrar, "school=nowhere"),
        (&head_teacher, "class=5"),
        (&head_teacher, "school=s2"),
        (&officer_token, "jurisdiction=national-k12"),
        (&officer_token, "school=nowhere"),
        (&s.admin, "school=..%2F..%2Fetc%2Fpasswd"),
    ] {
        let (status, v) = s
            .call("GET", &format!("/v1/students?{query}"), Some(token), None)
            .await;
        assert_eq!((status, count(&v)), (200, 0), "{query}: {v}");
    }

    // Requests: another jurisdiction than the caller's own lists none of theirs.
    let pending = enrolled(&s.xueji, "休学", 33);
    let suspend = json!({
        "kind": "suspend", "effective_date": "2025-03-02", "params": { "until": "2026-03-01" },
        "documents": [{ "kind": "hospital_diagnosis" }],
    });
    let (status, v) = s
        .call(
            "POST",
            &format!("/v1/students/{}/transitions", pending.id),
            Some(&registrar),
            Some(suspend),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let (status, v) = s
        .call("GET", "/v1/requests", Some(&officer_token), None)
        .await;
    assert_eq!((status, count(&v)), (200, 1), "{v}");
    let (status, v) = s
        .call(
            "GET",
            "/v1/requests?jurisdiction=national-k12",
            Some(&officer_token),
            None,
        )
        .await;
    assert_eq!((status, count(&v)), (200, 0), "{v}");
}
