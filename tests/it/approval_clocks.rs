//! Approval clocks (api.md v1.1): each step's `opened` and `due` in working days of the national
//! holiday table, the overdue listing, and the sweep's expiry of stale requests.

use serde_json::{Value, json};
use xueji::domain::workdays::WorkCalendar;
use xueji::store::Command;

use super::helpers::{TestServer, d, enrolled, spawn_server};

/// A suspension of an enrolled pupil at `s1`: the test package asks `school` then `district`.
async fn pending_suspension(s: &TestServer, seq: u32) -> String {
    s.xueji
        .create_school(super::helpers::school("s1", Some("东区")))
        .ok();
    let student = enrolled(&s.xueji, "李小华", seq);
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/students/{}/transitions", student.id),
            Some(&s.admin),
            Some(json!({"kind": "suspend", "effective_date": "2024-09-20",
                "params": {"until": "2025-09-01"}, "documents": [{"kind": "hospital_diagnosis"}]})),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    v["request"]["id"].as_str().expect("request").to_owned()
}

/// Moves a pending request's filing back to `instant`, as if it had been filed then (the
/// service takes the filing time from the clock; this is the request an old store holds).
fn filed_at(s: &TestServer, id: &str, instant: &str) {
    let mut r = s.xueji.request(id).expect("request");
    r.opened_at = instant.into();
    s.xueji
        .store()
        .submit(Command::UpdateRequest {
            request: Box::new(r),
            expected_approvals: 0,
        })
        .expect("backdate");
}

async fn get_request(s: &TestServer, id: &str) -> Value {
    let (st, v) = s
        .call("GET", &format!("/v1/requests/{id}"), Some(&s.admin), None)
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn listed(s: &TestServer, query: &str) -> Vec<String> {
    let (st, v) = s
        .call(
            "GET",
            &format!("/v1/requests?jurisdiction=test-district&{query}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn a_new_step_is_due_ten_working_days_after_it_opened_and_later_steps_wait() {
    let s = spawn_server().await;
    let id = pending_suspension(&s, 1).await;
    let v = get_request(&s, &id).await;
    let today = s.xueji.today();
    let due = WorkCalendar::national()
        .add_working_days(today, 10)
        .expect("due");
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2, "{v}");
    assert_eq!(steps[0]["step"], "school");
    assert_eq!(steps[0]["status"], "pending");
    assert_eq!(steps[0]["opened"], today.to_string());
    assert_eq!(steps[0]["due"], due.date.to_string());
    assert_eq!(steps[1]["step"], "district");
    assert_eq!(steps[1]["status"], "waiting");
    assert!(
        steps[1]["opened"].is_null() && steps[1]["due"].is_null(),
        "{v}"
    );
}

#[tokio::test]
async fn the_clock_runs_over_the_2024_national_day_week_and_its_make_up_days() {
    let s = spawn_server().await;
    let id = pending_suspension(&s, 2).await;
    // Filed Friday 2024-09-27 (10:00 in Beijing): 09-29 and 10-12 are worked (调休), 10-01..07
    // are off, so the tenth working day is 2024-10-16 (国办发明电〔2023〕7号).
    filed_at(&s, &id, "2024-09-27T02:00:00Z");
    let v = get_request(&s, &id).await;
    assert_eq!(v["steps"][0]["opened"], "2024-09-27", "{v}");
    assert_eq!(v["steps"][0]["due"], "2024-10-16", "{v}");
    assert!(v["steps"][0].get("due_estimated").is_none(), "{v}");
    // Overdue from the day after the due date, not on it; both ways of the filter.
    assert!(
        !listed(&s, "overdue=true&as_of=2024-10-16")
            .await
            .contains(&id)
    );
    assert!(
        listed(&s, "overdue=false&as_of=2024-10-16")
            .await
            .contains(&id)
    );
    assert!(
        listed(&s, "overdue=true&as_of=2024-10-17")
            .await
            .contains(&id)
    );
    assert!(
        !listed(&s, "overdue=false&as_of=2024-10-17")
            .await
            .contains(&id)
    );
    // A bad date is refused, not ignored.
    let (st, v) = s
        .call(
            "GET",
            "/v1/requests?jurisdiction=test-district&overdue=true&as_of=2024-13-01",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, 400, "{v}");
}

#[tokio::test]
async fn the_next_step_opens_when_the_previous_one_is_approved() {
    let s = spawn_server().await;
    let id = pending_suspension(&s, 3).await;
    filed_at(&s, &id, "2024-09-27T02:00:00Z");
    let leader = s
        .token(json!({"role": "school_leader", "school": "s1"}))
        .await;
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/requests/{id}/approve"),
            Some(&leader),
            Some(json!({"step": "school", "comment": "同意"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let v = get_request(&s, &id).await;
    let today = s.xueji.today();
    assert_eq!(v["steps"][0]["status"], "approved");
    assert_eq!(v["steps"][0]["comment"], "同意");
    assert_eq!(v["steps"][0]["by"]["role"], "school_leader");
    assert_eq!(v["steps"][1]["status"], "pending");
    assert_eq!(v["steps"][1]["opened"], today.to_string(), "{v}");
}

#[tokio::test]
async fn the_sweep_expires_a_request_pending_past_180_days_and_flags_it_overdue_before() {
    let s = spawn_server().await;
    let id = pending_suspension(&s, 4).await;
    filed_at(&s, &id, "2024-01-02T02:00:00Z");
    let sweep = |as_of: &'static str| {
        let s = &s;
        async move {
            let (st, v) = s
                .call(
                    "POST",
                    "/v1/sweeps",
                    Some(&s.admin),
                    Some(json!({"as_of": as_of})),
                )
                .await;
            assert_eq!(st, 200, "{v}");
            v
        }
    };
    // Day 180: still pending, but its first step (due 2024-01-16) is overdue.
    let v = sweep("2024-06-30").await;
    assert_eq!(v["expired_requests"], json!([]), "{v}");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(get_request(&s, &id).await["status"], "pending");
    let (_, problems) = s
        .call(
            "GET",
            "/v1/problems?kind=overdue_request",
            Some(&s.admin),
            None,
        )
        .await;
    let p = &problems["items"][0];
    assert_eq!(p["details"]["request"], id.as_str(), "{problems}");
    assert_eq!(p["details"]["due"], "2024-01-16");
    assert_eq!(p["status"], "open");
    // The next sweep does not open it again.
    let v = sweep("2024-06-30").await;
    assert_eq!(v["problems"], json!([]), "{v}");
    // Day 181: closed `expired`, by the system, with the step it waited for.
    let v = sweep("2024-07-01").await;
    assert_eq!(v["expired_requests"], json!([id]), "{v}");
    let r = get_request(&s, &id).await;
    assert_eq!(r["status"], "expired", "{r}");
    assert_eq!(r["steps"][0]["status"], "expired");
    assert_eq!(r["steps"][0]["by"]["id"], "system:request_expiry");
    assert!(r["steps"][0]["at"].is_string());
    assert_eq!(r["steps"][1]["status"], "closed");
    // An expired request takes no approval, and the student may file again.
    let leader = s
        .token(json!({"role": "school_leader", "school": "s1"}))
        .await;
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/requests/{id}/approve"),
            Some(&leader),
            Some(json!({"step": "school"})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("request_not_pending"))
    );
    assert_eq!(listed(&s, "status=expired").await, vec![id]);
}

#[test]
fn a_request_stored_before_clocks_still_reads_with_its_clock() {
    // A request as schema 9 stored it: no clock fields at all; they are derived on read.
    let t = super::helpers::engine();
    let student = enrolled(&t.xueji, "王小红", 5);
    let input = xueji::domain::TransitionInput {
        params: serde_json::from_value(json!({"until": "2025-09-01"})).expect("params"),
        documents: vec![
            serde_json::from_value(json!({"kind": "hospital_diagnosis"})).expect("document"),
        ],
        ..xueji::domain::TransitionInput::new(
            xueji::domain::TransitionKind::Suspend,
            d("2024-09-20"),
        )
    };
    let request = match t
        .xueji
        .transition(&student.id, input, &super::helpers::registrar(), false)
        .expect("files")
    {
        xueji::engine::Outcome::Pending { request, .. } => request,
        other => panic!("{other:?}"),
    };
    let mut old = serde_json::to_value(&*request).expect("json");
    assert!(old.get("opened").is_none() && old["steps"][0].is_string());
    old["opened_at"] = json!("2024-09-27T02:00:00Z");
    let decoded: xueji::domain::ApprovalRequest = serde_json::from_value(old).expect("decodes");
    let clocks = t.xueji.step_clocks(&decoded);
    assert_eq!(clocks[0].due, Some(d("2024-10-16")));
}

#[test]
fn a_package_sets_its_own_working_days_and_expiry() {
    use super::helpers::{TEST_MANIFEST, TEST_RULES, engine_with, registrar, school};
    use xueji::policy::PackageSource;
    let mut set = xueji::policy::builtin_packages();
    set.packages.retain(|id, _| id == "national-k12");
    let manifest =
        format!("{TEST_MANIFEST}\n[params]\napproval_working_days = 3\nrequest_expiry_days = 30\n");
    set.packages.insert(
        "test-district".into(),
        PackageSource {
            files: [
                ("policy.toml".to_owned(), manifest),
                ("rules.rhai".to_owned(), TEST_RULES.to_owned()),
            ]
            .into(),
        },
    );
    let t = engine_with(&set);
    t.xueji
        .create_school(school("s1", Some("东区")))
        .expect("school");
    let student = enrolled(&t.xueji, "吴小兰", 6);
    let mut input = xueji::domain::TransitionInput::new(
        xueji::domain::TransitionKind::Suspend,
        d("2024-09-20"),
    );
    input.params = serde_json::from_value(json!({"until": "2025-09-01"})).expect("params");
    input.documents =
        vec![serde_json::from_value(json!({"kind": "hospital_diagnosis"})).expect("document")];
    let mut request = match t
        .xueji
        .transition(&student.id, input, &registrar(), false)
        .expect("files")
    {
        xueji::engine::Outcome::Pending { request, .. } => *request,
        other => panic!("{other:?}"),
    };
    request.opened_at = "2024-09-27T02:00:00Z".into();
    t.xueji
        .store()
        .submit(Command::UpdateRequest {
            request: Box::new(request.clone()),
            expected_approvals: 0,
        })
        .expect("backdate");
    // Three working days: 09-29 (调休), 09-30, then 10-08 after the holiday.
    assert_eq!(t.xueji.step_clocks(&request)[0].due, Some(d("2024-10-08")));
    // Thirty days: pending on day 30, expired on day 31.
    let day30 = t.xueji.sweep(d("2024-10-27"), None).expect("sweep");
    assert!(day30.expired_requests.is_empty(), "{day30:?}");
    let day31 = t.xueji.sweep(d("2024-10-28"), None).expect("sweep");
    assert_eq!(day31.expired_requests, vec![request.id.clone()]);
    assert_eq!(
        t.xueji.request(&request.id).expect("request").status,
        xueji::domain::RequestStatus::Expired
    );
}

#[tokio::test]
async fn an_area_officers_sweep_expires_only_its_own_areas_requests() {
    let s = spawn_server().await;
    let id = pending_suspension(&s, 7).await;
    filed_at(&s, &id, "2024-01-02T02:00:00Z");
    let west = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "西区"}))
        .await;
    let east = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}))
        .await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/sweeps",
            Some(&west),
            Some(json!({"as_of": "2024-07-01"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["expired_requests"], json!([]), "{v}");
    assert_eq!(v["problems"], json!([]), "{v}");
    assert_eq!(get_request(&s, &id).await["status"], "pending");
    let (st, v) = s
        .call(
            "POST",
            "/v1/sweeps",
            Some(&east),
            Some(json!({"as_of": "2024-07-01"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["expired_requests"], json!([id]), "{v}");
}
