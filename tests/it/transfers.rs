//! Issue #15, item 2: a transfer to a school of another jurisdiction on the same server, decided
//! by both packages in force, approved in the national order by each side's own people, and
//! committed once: the student keeps id and national number and moves with their history; both
//! jurisdictions' logs hold the event; rosters and statistics of both schools are right as of
//! any date.

use serde_json::{Value, json};

use super::helpers::*;
use xueji::domain::{Actor, ApprovalStep, Level, School, Student, TransitionInput, TransitionKind};
use xueji::engine::{Outcome, Xueji};

fn admin() -> Actor {
    Actor {
        id: "tok_admin".into(),
        role: "admin".into(),
    }
}

fn seed_school(id: &str, jurisdiction: &str, area: Option<&str>, level: Level) -> School {
    School {
        jurisdiction: jurisdiction.into(),
        level,
        ..school(id, area)
    }
}

/// Approves every step of whatever the outcome left pending, as an admin.
fn settle(x: &Xueji, outcome: Outcome) -> Student {
    match outcome {
        Outcome::Applied { student, .. } => *student,
        Outcome::Pending { request, .. } => {
            let mut last = None;
            for step in &request.steps {
                last = Some(
                    x.approve(&request.id, *step, &admin(), None)
                        .expect("approves"),
                );
            }
            last.and_then(|o| o.student)
                .expect("applied at the last step")
        }
        other => panic!("not applied: {other:?}"),
    }
}

/// A pupil enrolled at `school` (admitted and registered with what its package asks).
fn pupil_at(x: &Xueji, school: &str, name: &str, seq: u32) -> Student {
    let mut f = form(name, &id_card("2016-05-01", seq));
    f.school = school.into();
    let admitted = settle(x, x.admit(f, &admin(), false).expect("admits"));
    let mut register = TransitionInput::new(TransitionKind::Register, d("2024-09-02"));
    register.documents =
        vec![serde_json::from_value(json!({"kind": "guardian_signature"})).expect("doc")];
    settle(
        x,
        x.transition(&admitted.id, register, &admin(), false)
            .expect("registers"),
    )
}

struct TwoCounties {
    s: TestServer,
    pupil: Student,
    yanhe_registrar: String,
    yanhe_leader: String,
    yanhe_bureau: String,
    zhuhai_registrar: String,
    zhuhai_leader: String,
    zhuhai_bureau: String,
}

async fn two_counties() -> TwoCounties {
    let s = spawn_server_with(&xueji::policy::builtin_packages()).await;
    for school in [
        seed_school("yanhe-no4", "yanhe-primary", Some("沿河县"), Level::Primary),
        seed_school("zh-xz1", "zhuhai-k12", Some("香洲区"), Level::Primary),
        seed_school("zh-junior", "zhuhai-k12", Some("香洲区"), Level::Junior),
    ] {
        s.xueji.create_school(school).expect("school");
    }
    let pupil = pupil_at(&s.xueji, "yanhe-no4", "田小梅", 7);
    let token = |body: Value| {
        let s = &s;
        async move { s.token(body).await }
    };
    TwoCounties {
        yanhe_registrar: token(json!({"role": "registrar", "school": "yanhe-no4"})).await,
        yanhe_leader: token(json!({"role": "school_leader", "school": "yanhe-no4"})).await,
        yanhe_bureau: token(
            json!({"role": "district_officer", "jurisdiction": "yanhe-primary", "area": "沿河县"}),
        )
        .await,
        zhuhai_registrar: token(json!({"role": "registrar", "school": "zh-xz1"})).await,
        zhuhai_leader: token(json!({"role": "school_leader", "school": "zh-xz1"})).await,
        zhuhai_bureau: token(
            json!({"role": "district_officer", "jurisdiction": "zhuhai-k12", "area": "香洲区"}),
        )
        .await,
        pupil,
        s,
    }
}

fn transfer_body(t: &TwoCounties, to_school: &str, name: &str) -> Value {
    json!({
        "national_id": t.pupil.national_id.as_str(),
        "name": name,
        "to_school": to_school,
        "to_grade": t.pupil.grade,
        "to_class": "1",
        "reason": "household_move",
        "effective_date": "2025-03-03",
        "documents": [{"kind": "transfer_form"}],
    })
}

/// `POST /v1/transfers` as `token`.
async fn file_transfer(s: &TestServer, token: &str, body: Value) -> (u16, Value) {
    s.call("POST", "/v1/transfers", Some(token), Some(body))
        .await
}

async fn in_school(s: &TestServer, token: &str, school: &str, as_of: &str) -> u64 {
    let (status, v) = s
        .call(
            "GET",
            &format!("/v1/stats?school={school}&as_of={as_of}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v["in_school"].as_u64().expect("in_school")
}

async fn on_roster(s: &TestServer, token: &str, school: &str, as_of: &str, name: &str) -> bool {
    let (status, v) = s
        .call(
            "GET",
            &format!("/v1/schools/{school}/roster?kind=current&as_of={as_of}&format=json"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    v.to_string().contains(name)
}

#[tokio::test]
async fn a_yanhe_pupil_moves_to_zhuhai_decided_and_approved_by_both_sides() {
    let t = two_counties().await;
    let s = &t.s;
    // The receiving school's registrar files it: they cannot see the pupil, so they name them by
    // national number and name together.
    let (status, v) = file_transfer(
        s,
        &t.zhuhai_registrar,
        transfer_body(&t, "zh-xz1", "田小梅"),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let decision = &v["decision"];
    assert_eq!(decision["policy"]["jurisdiction"], "yanhe-primary", "{v}");
    assert_eq!(
        decision["receiving_policy"]["jurisdiction"], "zhuhai-k12",
        "{v}"
    );
    let rules: Vec<&str> = decision["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    // Both sides' rules, each with its own citation.
    assert!(rules.contains(&"yanhe.transfer.reason"), "{rules:?}");
    assert!(
        rules.contains(&"national_k12.transfer_in.approval"),
        "{rules:?}"
    );
    let steps: Vec<&str> = v["request"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "receiving_school",
            "receiving_district",
            "school",
            "district"
        ]
    );
    let request = v["request"]["id"].as_str().expect("request id").to_owned();
    let approve = |token: &str, step: &str| {
        let path = format!("/v1/requests/{request}/approve");
        let (token, body) = (token.to_owned(), json!({ "step": step }));
        async move { s.call("POST", &path, Some(&token), Some(body)).await }
    };
    // The sending school cannot go first.
    let (status, v) = approve(&t.yanhe_leader, "school").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("step_out_of_order")),
        "{v}"
    );
    // Each side's step is its own people's: the sending bureau cannot approve the receiving one.
    let (status, v) = approve(&t.zhuhai_leader, "receiving_school").await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = approve(&t.yanhe_bureau, "receiving_district").await;
    assert!(status == 403 || status == 404, "{status} {v}");
    // The receiving bureau lists the request among its own.
    let (status, v) = s
        .call(
            "GET",
            "/v1/requests?jurisdiction=zhuhai-k12",
            Some(&t.zhuhai_bureau),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v.to_string().contains(&request), "{v}");
    let (status, v) = approve(&t.zhuhai_bureau, "receiving_district").await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = approve(&t.yanhe_leader, "school").await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = approve(&t.yanhe_bureau, "district").await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (200, Some("applied")),
        "{v}"
    );

    // The same student, with the same number, now in Zhuhai.
    let id = &t.pupil.id;
    let (status, v) = s
        .call(
            "GET",
            &format!("/v1/students/{id}"),
            Some(&t.zhuhai_registrar),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (
            v["school"].as_str(),
            v["jurisdiction"].as_str(),
            v["national_id"].as_str()
        ),
        (
            Some("zh-xz1"),
            Some("zhuhai-k12"),
            Some(t.pupil.national_id.as_str())
        )
    );
    assert_eq!(v["former_jurisdictions"], json!(["yanhe-primary"]));
    let (status, _) = s
        .call(
            "GET",
            &format!("/v1/students/{id}"),
            Some(&t.yanhe_registrar),
            None,
        )
        .await;
    assert_eq!(status, 404, "the old school no longer sees the student");
    // Their whole history came with them, and the chain holds.
    let (status, v) = s
        .call(
            "GET",
            &format!("/v1/students/{id}/events"),
            Some(&t.zhuhai_registrar),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"admit"));
    assert_eq!(kinds.last(), Some(&"transfer"));
    let (status, v) = s
        .call(
            "GET",
            &format!("/v1/students/{id}/verify"),
            Some(&t.zhuhai_registrar),
            None,
        )
        .await;
    assert_eq!((status, v["ok"].as_bool()), (200, Some(true)), "{v}");

    // The event is a leaf of both jurisdictions' logs, and the whole store verifies: chains,
    // indexes, the statistics counters of both jurisdictions, and every decision reproduced
    // under the versions it records (both sides of the transfer).
    let x = &s.xueji;
    let report = x.verify_all().expect("verifies");
    assert!(report.ok, "{report:?}");
    let reproduced = x.reproduce_decisions(None).expect("reproduces");
    assert!(reproduced.ok, "{reproduced:?}");
    for jur in ["yanhe-primary", "zhuhai-k12"] {
        let head = x.store().log_head(jur).expect("head");
        let leaves = x.store().log_leaves(jur, 0, 1000).expect("leaves");
        assert_eq!(leaves.len() as u64, head.size);
        assert!(
            leaves.iter().any(|l| l
                .event_name
                .ends_with(&format!("{id}\u{1f}{:012}", report_seq(x, id)))),
            "{jur}'s log holds the transfer"
        );
    }

    // Rosters and statistics of both schools, before, on and after the date.
    for (as_of, at_yanhe) in [
        ("2025-03-02", true),
        ("2025-03-03", false),
        ("2025-06-01", false),
    ] {
        assert_eq!(
            on_roster(s, &t.yanhe_registrar, "yanhe-no4", as_of, "田小梅").await,
            at_yanhe,
            "{as_of}"
        );
        assert_eq!(
            on_roster(s, &t.zhuhai_registrar, "zh-xz1", as_of, "田小梅").await,
            !at_yanhe,
            "{as_of}"
        );
        assert_eq!(
            in_school(s, &t.yanhe_registrar, "yanhe-no4", as_of).await,
            u64::from(at_yanhe),
            "{as_of}"
        );
        assert_eq!(
            in_school(s, &t.zhuhai_registrar, "zh-xz1", as_of).await,
            u64::from(!at_yanhe),
            "{as_of}"
        );
    }

    // After the move the student's next change is Zhuhai's business, under Zhuhai's package.
    let mut change = TransitionInput::new(TransitionKind::ChangeClass, d("2025-04-01"));
    change.params.insert("class".into(), json!("2"));
    let moved = settle(
        x,
        x.transition(id, change, &admin(), false)
            .expect("changes class"),
    );
    assert_eq!(
        (moved.class.as_deref(), moved.jurisdiction.as_str()),
        (Some("2"), "zhuhai-k12")
    );
    let report = x.verify_all().expect("verifies");
    assert!(report.ok, "{report:?}");
}

/// The sequence number of the student's transfer event.
fn report_seq(x: &Xueji, id: &str) -> u64 {
    x.events(id)
        .expect("events")
        .iter()
        .find(|e| e.kind == TransitionKind::Transfer)
        .map(|e| e.seq)
        .expect("a transfer event")
}

#[tokio::test]
async fn a_transfer_by_number_and_name_reveals_nothing_and_respects_levels() {
    let t = two_counties().await;
    let s = &t.s;
    // Another name with the right number, or an unknown school: 404, nothing stored.
    let (status, v) = file_transfer(
        s,
        &t.zhuhai_registrar,
        transfer_body(&t, "zh-xz1", "田小兰"),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    assert!(
        !v.to_string().contains("yanhe"),
        "names nothing of the student: {v}"
    );
    let (status, _) = file_transfer(
        s,
        &t.zhuhai_registrar,
        transfer_body(&t, "no-such-school", "田小梅"),
    )
    .await;
    assert_eq!(status, 404);
    // A registrar files only for their own school.
    let (status, _) = file_transfer(
        s,
        &t.zhuhai_registrar,
        transfer_body(&t, "zh-junior", "田小梅"),
    )
    .await;
    assert_eq!(status, 404);
    // A school of another level: the receiving package refuses (422 from policy).
    let (status, v) = file_transfer(s, &s.admin, transfer_body(&t, "zh-junior", "田小梅")).await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (422, Some("denied")),
        "{v}"
    );
    assert!(
        v.to_string().contains("national_k12.transfer_in.approval"),
        "{v}"
    );
    assert_eq!(
        s.xueji.events(&t.pupil.id).expect("events").len() as u64,
        t.pupil.version
    );
    let (status, v) = s
        .call(
            "GET",
            "/v1/requests?jurisdiction=zhuhai-k12",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(
        (status, v["items"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
}

#[test]
fn receiving_steps_route_before_the_sending_side() {
    let mut steps = vec![
        ApprovalStep::District,
        ApprovalStep::School,
        ApprovalStep::ReceivingCity,
        ApprovalStep::ReceivingSchool,
        ApprovalStep::ReceivingDistrict,
        ApprovalStep::City,
    ];
    xueji::domain::in_routing_order(&mut steps);
    assert_eq!(
        steps,
        [
            ApprovalStep::ReceivingSchool,
            ApprovalStep::ReceivingDistrict,
            ApprovalStep::ReceivingCity,
            ApprovalStep::School,
            ApprovalStep::District,
            ApprovalStep::City,
        ]
    );
    assert_eq!(
        ApprovalStep::School.on_receiving_side(),
        ApprovalStep::ReceivingSchool
    );
    assert_eq!(
        ApprovalStep::City.on_receiving_side(),
        ApprovalStep::ReceivingCity
    );
}

/// Each seed jurisdiction's packages decide both sides of a transfer: as the sending side (its
/// `transfer` rules) and as the receiving side (its `transfer_in` rules, its base's when it has
/// none of its own). The decisions are pinned by a snapshot, reviewed like the packages' own.
#[test]
fn every_seed_jurisdiction_decides_both_sides_of_a_transfer() {
    use xueji::policy::{Case, PolicyRegistry, builtin_packages, evaluate_transfer};
    let registry = PolicyRegistry::from_packages(&builtin_packages()).expect("packages compile");
    use Level::{Junior, Primary, Undergraduate, Vocational};
    const MOVED: &str = "household_move";
    let pairs = [
        ("yanhe-primary", "zhuhai-k12", Primary, MOVED),
        ("zhuhai-k12", "yanhe-primary", Primary, MOVED),
        ("rencheng-junior", "zhuhai-k12", Junior, MOVED),
        ("zhuhai-k12", "rencheng-junior", Junior, MOVED),
        (
            "shenyang-vocational",
            "national-vocational",
            Vocational,
            MOVED,
        ),
        (
            "national-vocational",
            "shenyang-vocational",
            Vocational,
            MOVED,
        ),
        (
            "tsinghua-undergrad",
            "szu-undergrad",
            Undergraduate,
            "illness",
        ),
        (
            "szu-undergrad",
            "tsinghua-undergrad",
            Undergraduate,
            "illness",
        ),
    ];
    let mut pinned = Vec::new();
    for (from, to, level, reason) in pairs {
        let sending_school = School {
            id: format!("{from}-school"),
            ..seed_school("x", from, Some("一区"), level)
        };
        let receiving_school = School {
            id: format!("{to}-school"),
            ..seed_school("x", to, Some("二区"), level)
        };
        let student: Student = serde_json::from_value(json!({
            "id": "stu_pair", "national_id": "G52222820170308002X", "id_card": null,
            "name": "", "gender": "female", "birth_date": "2007-03-08",
            "school": sending_school.id, "jurisdiction": from, "level": level, "grade": 2,
            "class": "1", "status": "enrolled", "version": 3, "entry_date": "2024-09-01",
            "terms": ["2024-fall", "2025-spring", "2025-fall"], "head": "",
        }))
        .expect("student");
        let input: TransitionInput = serde_json::from_value(json!({
            "kind": "transfer", "effective_date": "2026-03-02", "reason": reason,
            "params": {"to_school": receiving_school.id, "to_grade": 2},
            "documents": [{"kind": "transfer_form"}, {"kind": "household_register"}],
        }))
        .expect("input");
        let date = input.effective_date;
        let decision = evaluate_transfer(
            &registry.in_force(from, date).expect("sending package"),
            &registry.in_force(to, date).expect("receiving package"),
            Case {
                student: &student,
                school: &sending_school,
                input: &input,
                sweep: false,
            },
            &receiving_school,
        )
        .expect("decides");
        let ids: Vec<&str> = decision.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(decision.policy.jurisdiction, from);
        assert_eq!(
            decision
                .receiving_policy
                .as_ref()
                .map(|p| p.jurisdiction.as_str()),
            Some(to)
        );
        assert!(
            ids.iter().any(|id| !id.contains(".transfer_in.")),
            "{from} → {to}: the sending side's rules decide: {ids:?}"
        );
        assert!(
            ids.iter().any(|id| id.contains(".transfer_in.")),
            "{from} → {to}: the receiving side's transfer_in rules decide: {ids:?}"
        );
        assert!(
            decision.rules.iter().all(|r| !r.citation.is_empty()),
            "every rule cites its article"
        );
        pinned.push(json!({
            "from": from, "to": to, "allowed": decision.allowed, "rules": ids,
            "approvals": decision.approvals, "missing_documents": decision.missing_documents,
        }));
    }
    // One snapshot for both backends (`on_postgres` includes this file too): not named after
    // the module, which differs between the two.
    insta::with_settings!({prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("seed_jurisdiction_transfers", pinned);
    });
}
