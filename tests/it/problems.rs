//! Problem records (问题学籍, api.md v1.1): each kind opened where the engine meets it, listed in
//! the caller's scope, and settled by delete / confirm / correct through the policy, both ways.

use serde_json::{Value, json};
use xueji::policy::builtin_packages;

use super::helpers::{TestServer, id_card, spawn_server, spawn_server_with};

fn student_body(school: &str, name: &str, card: &str) -> Value {
    let birth = format!("{}-{}-{}", &card[6..10], &card[10..12], &card[12..14]);
    let male = (card.as_bytes()[16] - b'0') % 2 == 1;
    json!({"school": school, "name": name, "gender": if male { "male" } else { "female" },
        "birth_date": birth, "id_card": card, "grade": 3, "class": "4",
        "entry_date": "2024-09-01", "report_deadline": "2024-09-05",
        "guardians": [{"name": "家长", "relation": "母亲", "phone": "13800000000"}]})
}

async fn create_school(s: &TestServer, body: Value) {
    let (st, v) = s
        .call("POST", "/v1/schools", Some(&s.admin), Some(body))
        .await;
    assert_eq!(st, 201, "{v}");
}

async fn problems(s: &TestServer, token: &str, query: &str) -> Vec<Value> {
    let (st, v) = s
        .call("GET", &format!("/v1/problems?{query}"), Some(token), None)
        .await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().expect("items").clone()
}

async fn resolve(s: &TestServer, token: &str, id: &str, body: Value) -> (u16, Value) {
    s.call(
        "POST",
        &format!("/v1/problems/{id}/resolve"),
        Some(token),
        Some(body),
    )
    .await
}

/// Two schools of the test district, their registrars, and a third school's registrar.
struct Setup {
    s: TestServer,
    reg1: String,
    reg2: String,
    reg3: String,
}

async fn setup() -> Setup {
    let s = spawn_server().await;
    for (id, area) in [("s1", "东区"), ("s2", "东区"), ("s3", "西区")] {
        create_school(
            &s,
            json!({"id": id, "name": format!("测试学校{id}"), "jurisdiction": "test-district",
                "area": area, "level": "primary"}),
        )
        .await;
    }
    let reg1 = s.token(json!({"role": "registrar", "school": "s1"})).await;
    let reg2 = s.token(json!({"role": "registrar", "school": "s2"})).await;
    let reg3 = s.token(json!({"role": "registrar", "school": "s3"})).await;
    Setup {
        s,
        reg1,
        reg2,
        reg3,
    }
}

/// A pupil admitted at s1, then refused at s2 (409): the duplicate problem's id and the pupil's.
async fn refused_at_s2(t: &Setup, seq: u32) -> (String, String) {
    let card = id_card("2016-05-01", seq);
    let (st, v) =
        t.s.call(
            "POST",
            "/v1/students",
            Some(&t.reg1),
            Some(student_body("s1", "赵小燕", &card)),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let holder = v["student"]["id"].as_str().expect("id").to_owned();
    for _ in 0..2 {
        let (st, v) =
            t.s.call(
                "POST",
                "/v1/students",
                Some(&t.reg2),
                Some(student_body("s2", "赵小燕", &card)),
            )
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (409, Some("duplicate_identity")),
            "{v}"
        );
    }
    let found: Vec<Value> = problems(&t.s, &t.reg2, "kind=duplicate_enrolment&status=open")
        .await
        .into_iter()
        .filter(|p| p["student"] == holder.as_str())
        .collect();
    // Refused twice, opened once.
    assert_eq!(found.len(), 1, "{found:?}");
    let p = &found[0];
    assert_eq!(p["school"], "s1");
    assert_eq!(p["details"]["refused_school"], "s2");
    assert_eq!(p["details"]["holding_school"], "s1");
    assert!(p.get("key").is_none(), "{p}");
    (p["id"].as_str().expect("id").to_owned(), holder)
}

#[tokio::test]
async fn a_refused_duplicate_admission_opens_a_problem_both_schools_see_and_no_other() {
    let t = setup().await;
    let (id, _) = refused_at_s2(&t, 1).await;
    let ids = |items: Vec<Value>| -> Vec<String> {
        items
            .iter()
            .map(|p| p["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert!(ids(problems(&t.s, &t.reg1, "").await).contains(&id));
    assert!(ids(problems(&t.s, &t.reg3, "").await).is_empty());
    let area = t
        .s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}))
        .await;
    let other_area = t
        .s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "西区"}))
        .await;
    assert!(ids(problems(&t.s, &area, "").await).contains(&id));
    assert!(ids(problems(&t.s, &other_area, "").await).is_empty());
    // A filter naming a school outside the caller's scope matches nothing.
    assert!(ids(problems(&t.s, &t.reg3, "school=s1").await).is_empty());
    // A guardian or head teacher may not list problems.
    let teacher =
        t.s.token(json!({"role": "head_teacher", "school": "s1", "class": "4"}))
            .await;
    let (st, _) = t.s.call("GET", "/v1/problems", Some(&teacher), None).await;
    assert_eq!(st, 403);
    // A bad kind is refused with its field.
    let (st, v) =
        t.s.call("GET", "/v1/problems?kind=lost", Some(&t.reg1), None)
            .await;
    assert_eq!(st, 400, "{v}");
}

#[tokio::test]
async fn confirm_needs_proof_by_policy_and_is_recorded_in_history() {
    let t = setup().await;
    let (id, holder) = refused_at_s2(&t, 2).await;
    // Out of scope: the refused school cannot settle the holding school's record; a third
    // school does not even see the problem.
    let (st, v) = resolve(
        &t.s,
        &t.reg3,
        &id,
        json!({"action": "confirm", "comment": "核实"}),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    let (st, v) = resolve(
        &t.s,
        &t.reg2,
        &id,
        json!({"action": "confirm", "comment": "核实",
        "documents": [{"kind": "household_register"}]}),
    )
    .await;
    assert_eq!(st, 404, "{v}");
    // Denied by the policy: no proof.
    let (st, v) = resolve(
        &t.s,
        &t.reg1,
        &id,
        json!({"action": "confirm", "comment": "核实无误"}),
    )
    .await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(
        v["decision"]["rules"][0]["id"],
        "national_k12.problem.confirm"
    );
    assert_eq!(v["problem"]["status"], "open");
    // Allowed with proof: applied, in history, the problem resolved.
    let (st, v) = resolve(
        &t.s,
        &t.reg1,
        &id,
        json!({"action": "confirm", "comment": "核实无误",
        "documents": [{"kind": "household_register"}]}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["event"]["kind"], "confirm_record");
    assert_eq!(v["student"]["status"], "admitted");
    assert_eq!(v["problem"]["status"], "resolved");
    assert_eq!(v["problem"]["resolution"]["action"], "confirm");
    let (_, events) =
        t.s.call(
            "GET",
            &format!("/v1/students/{holder}/events"),
            Some(&t.reg1),
            None,
        )
        .await;
    assert_eq!(
        events["items"].as_array().map(Vec::len),
        Some(2),
        "{events}"
    );
    let (_, verified) =
        t.s.call(
            "GET",
            &format!("/v1/students/{holder}/verify"),
            Some(&t.s.admin),
            None,
        )
        .await;
    assert_eq!(verified["ok"], true, "{verified}");
    // Settled once.
    let (st, v) = resolve(
        &t.s,
        &t.reg1,
        &id,
        json!({"action": "confirm", "comment": "再次",
        "documents": [{"kind": "household_register"}]}),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("problem_resolved"))
    );
    assert_eq!(
        problems(&t.s, &t.reg1, "status=resolved&kind=duplicate_enrolment")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn delete_cancels_the_wrong_enrolment_and_the_refused_school_can_then_admit() {
    let t = setup().await;
    let (id, holder) = refused_at_s2(&t, 3).await;
    // A guardian may not settle anything.
    let guardian =
        t.s.token(json!({"role": "guardian", "student": holder}))
            .await;
    let (st, _) = resolve(
        &t.s,
        &guardian,
        &id,
        json!({"action": "delete", "comment": "x"}),
    )
    .await;
    assert_eq!(st, 403);
    // `fields` belongs to `correct` only; a comment is required.
    let (st, v) = resolve(
        &t.s,
        &t.reg1,
        &id,
        json!({"action": "delete", "comment": "误录",
        "fields": {"name": "赵燕"}}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = resolve(
        &t.s,
        &t.reg1,
        &id,
        json!({"action": "delete", "comment": ""}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = resolve(
        &t.s,
        &t.reg1,
        &id,
        json!({"action": "delete", "comment": "学生实际在 s2 就读,删除本校学籍"}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["event"]["kind"], "cancel_admission");
    assert_eq!(v["student"]["status"], "admission_cancelled");
    assert_eq!(v["problem"]["status"], "resolved");
    let card = id_card("2016-05-01", 3);
    let (st, v) =
        t.s.call(
            "POST",
            "/v1/students",
            Some(&t.reg2),
            Some(student_body("s2", "赵小燕", &card)),
        )
        .await;
    assert_eq!(st, 201, "{v}");
}

#[tokio::test]
async fn a_temporary_number_opens_a_problem_and_its_upgrade_keeps_one_history() {
    let t = setup().await;
    let card = id_card("2017-03-08", 7);
    let mut body = student_body("s1", "孙小雨", &card);
    body["national_id"] = json!("L11010520170308AB12");
    body.as_object_mut().map(|o| o.remove("id_card"));
    let (st, v) =
        t.s.call("POST", "/v1/students", Some(&t.reg1), Some(body))
            .await;
    assert_eq!(st, 201, "{v}");
    let student = v["student"]["id"].as_str().expect("id").to_owned();
    let found = problems(&t.s, &t.reg1, "kind=temporary_number").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["student"], student.as_str());
    let id = found[0]["id"].as_str().expect("id").to_owned();
    // `correct` without fields, or with a G number that is not the pupil's ID number: refused.
    let (st, v) = resolve(
        &t.s,
        &t.reg1,
        &id,
        json!({"action": "correct", "comment": "升级"}),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    let other = id_card("2017-03-08", 9);
    let (st, v) = resolve(
        &t.s,
        &t.reg1,
        &id,
        json!({"action": "correct", "comment": "升级",
        "fields": {"national_id": format!("G{other}"), "id_card": card},
        "documents": [{"kind": "household_register"}]}),
    )
    .await;
    assert_eq!(
        (
            st,
            v["error"]["details"]["errors"][0]["code"]
                .as_str()
                .or(v["error"]["code"].as_str())
        ),
        (400, Some("national_id_not_the_id_card")),
        "{v}"
    );
    // Without the household register the policy denies the key-information change.
    let upgrade = json!({"action": "correct", "comment": "取得身份证,升级为正式学籍号",
        "fields": {"national_id": format!("G{card}"), "id_card": card}});
    let (st, v) = resolve(&t.s, &t.reg1, &id, upgrade.clone()).await;
    assert_eq!(st, 422, "{v}");
    // With it: the bureau reviews (national 关键信息变更), then it applies and settles the problem.
    let mut with_proof = upgrade;
    with_proof["documents"] = json!([{"kind": "household_register"}]);
    let (st, v) = resolve(&t.s, &t.reg1, &id, with_proof).await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["problem"]["status"], "open");
    assert_eq!(v["problem"]["resolution"]["outcome"], "pending");
    let request = v["request"]["id"].as_str().expect("request").to_owned();
    let officer = t
        .s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}))
        .await;
    let (st, v) =
        t.s.call(
            "POST",
            &format!("/v1/requests/{request}/approve"),
            Some(&officer),
            Some(json!({"step": "district"})),
        )
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
    let (_, s) =
        t.s.call(
            "GET",
            &format!("/v1/students/{student}"),
            Some(&t.s.admin),
            None,
        )
        .await;
    assert_eq!(s["national_id"], format!("G{card}"), "{s}");
    let settled = problems(&t.s, &t.reg1, "kind=temporary_number&status=resolved").await;
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert_eq!(settled[0]["resolution"]["outcome"], "applied");
    // One history under the formal number: the same record, its chain intact.
    let (_, enrolments) =
        t.s.call(
            "GET",
            &format!("/v1/persons/G{card}/enrolments"),
            Some(&t.s.admin),
            None,
        )
        .await;
    assert_eq!(
        enrolments["enrolments"][0]["id"],
        student.as_str(),
        "{enrolments}"
    );
    let (_, verified) =
        t.s.call(
            "GET",
            &format!("/v1/students/{student}/verify"),
            Some(&t.s.admin),
            None,
        )
        .await;
    assert_eq!(verified["ok"], true, "{verified}");
    // A formal number is for life: it takes no upgrade.
    let (st, v) =
        t.s.call(
            "POST",
            &format!("/v1/students/{student}/transitions"),
            Some(&t.reg1),
            Some(
                json!({"kind": "change_key_info", "effective_date": "2024-10-08",
                "params": {"fields": {"national_id": format!("J{other}")}},
                "documents": [{"kind": "household_register"}]}),
            ),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v.to_string().contains("national_id_not_temporary"), "{v}");
}

/// A seed jurisdiction's school with a reporting deadline, and a pupil admitted there.
async fn pupil_past_deadline(s: &TestServer, jurisdiction: &str, level: &str, seq: u32) -> String {
    let school = format!("{jurisdiction}-school");
    create_school(
        s,
        json!({"id": school, "name": "测试学校", "jurisdiction": jurisdiction, "area": "测试区",
            "level": level}),
    )
    .await;
    let mut body = student_body(&school, "周小军", &id_card("2012-05-01", seq));
    body["grade"] = json!(1);
    let (st, v) = s
        .call("POST", "/v1/students", Some(&s.admin), Some(body))
        .await;
    assert_eq!(st, 201, "{v}");
    v["student"]["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn the_sweep_never_forfeits_a_compulsory_pupil_and_opens_a_follow_up_instead() {
    let s = spawn_server_with(&builtin_packages()).await;
    let yanhe = pupil_past_deadline(&s, "yanhe-primary", "primary", 11).await;
    let zhuhai = pupil_past_deadline(&s, "zhuhai-k12", "junior", 12).await;
    let rencheng = pupil_past_deadline(&s, "rencheng-junior", "junior", 13).await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/sweeps",
            Some(&s.admin),
            Some(json!({"as_of": "2024-10-30"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let status = |id: String| {
        let s = &s;
        async move {
            let (_, v) = s
                .call("GET", &format!("/v1/students/{id}"), Some(&s.admin), None)
                .await;
            v["status"].as_str().unwrap_or("").to_owned()
        }
    };
    // No rule of Yanhe or Zhuhai decides the deadline: the pupils stay as they are.
    assert_eq!(status(yanhe.clone()).await, "admitted");
    assert_eq!(status(zhuhai.clone()).await, "admitted");
    // Rencheng 第五条 takes the seat at this school only: forfeited here, and followed up.
    assert_eq!(status(rencheng.clone()).await, "admission_forfeited");
    let open = problems(&s, &s.admin, "kind=not_reported&status=open").await;
    for (id, here) in [(&yanhe, false), (&zhuhai, false), (&rencheng, true)] {
        let p = open
            .iter()
            .find(|p| p["student"] == id.as_str())
            .unwrap_or_else(|| panic!("no not_reported for {id}: {open:?}"));
        assert_eq!(p["details"]["deadline"], "report_by");
        assert_eq!(p["details"]["date"], "2024-09-05");
        assert_eq!(p["details"]["forfeited_here"], here, "{p}");
    }
    // The next day's sweep opens none again and still forfeits no one.
    let (_, v) = s
        .call(
            "POST",
            "/v1/sweeps",
            Some(&s.admin),
            Some(json!({"as_of": "2024-10-31"})),
        )
        .await;
    assert_eq!(v["problems"], json!([]), "{v}");
    assert_eq!(status(yanhe).await, "admitted");
    // Followed up: the school confirms with proof where the child is.
    let reg = s
        .token(json!({"role": "registrar", "school": "zhuhai-k12-school"}))
        .await;
    let p = open
        .iter()
        .find(|p| p["student"] == zhuhai.as_str())
        .expect("zhuhai");
    let (st, v) = resolve(
        &s,
        &reg,
        p["id"].as_str().expect("id"),
        json!({"action": "confirm",
        "comment": "家访核实,已到校", "documents": [{"kind": "guardian_application"}]}),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["problem"]["status"], "resolved");
}

#[tokio::test]
async fn a_direct_upgrade_of_the_number_settles_its_problem_too() {
    let t = setup().await;
    let card = id_card("2017-03-08", 8);
    let mut body = student_body("s1", "钱小雷", &card);
    body["national_id"] = json!("L11010520170308CD34");
    body.as_object_mut().map(|o| o.remove("id_card"));
    let (st, v) =
        t.s.call("POST", "/v1/students", Some(&t.reg1), Some(body))
            .await;
    assert_eq!(st, 201, "{v}");
    let student = v["student"]["id"].as_str().expect("id").to_owned();
    let (st, v) =
        t.s.call(
            "POST",
            &format!("/v1/students/{student}/transitions"),
            Some(&t.reg1),
            Some(
                json!({"kind": "change_key_info", "effective_date": "2024-10-08",
                "params": {"fields": {"national_id": format!("G{card}"), "id_card": card}},
                "documents": [{"kind": "household_register"}]}),
            ),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    // Still open while the bureau has not approved.
    assert_eq!(
        problems(&t.s, &t.reg1, "kind=temporary_number&status=open")
            .await
            .len(),
        1
    );
    let request = v["request"]["id"].as_str().expect("request").to_owned();
    let officer = t
        .s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}))
        .await;
    let (st, v) =
        t.s.call(
            "POST",
            &format!("/v1/requests/{request}/approve"),
            Some(&officer),
            Some(json!({"step": "district"})),
        )
        .await;
    assert_eq!((st, v["outcome"].as_str()), (200, Some("applied")), "{v}");
    let settled = problems(&t.s, &t.reg1, "kind=temporary_number&status=resolved").await;
    assert_eq!(settled.len(), 1, "{settled:?}");
    let r = &settled[0]["resolution"];
    assert_eq!(r["action"], "correct");
    assert_eq!(r["request"], request.as_str());
    assert_eq!(r["event"], 2, "{r}");
    assert_eq!(r["by"]["role"], "district_officer");
}

#[tokio::test]
async fn an_import_row_refused_as_a_duplicate_opens_a_problem_unless_dry_run() {
    let t = setup().await;
    let card = id_card("2016-05-01", 21);
    let (st, v) =
        t.s.call(
            "POST",
            "/v1/students",
            Some(&t.reg1),
            Some(student_body("s1", "冯小宁", &card)),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let gender = if (card.as_bytes()[16] - b'0') % 2 == 1 {
        "男"
    } else {
        "女"
    };
    let file = format!(
        "学校编号,姓名,性别,出生日期,身份证号,年级,班级,入学日期\ns2,冯小宁,{gender},2016-05-01,{card},3,4,2024-09-01\n"
    );
    let upload = |query: &'static str| {
        let (s, token, body) = (&t.s, t.reg2.clone(), file.clone().into_bytes());
        async move {
            let resp = s
                .client
                .post(format!("{}/v1/students/import{query}", s.base))
                .bearer_auth(token)
                .header("content-type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("json"))
        }
    };
    let (_, v) = upload("?dry_run=true").await;
    assert_eq!(
        v["rows"][0]["errors"][0]["code"], "duplicate_identity",
        "{v}"
    );
    assert!(
        problems(&t.s, &t.reg2, "kind=duplicate_enrolment")
            .await
            .is_empty()
    );
    let (_, v) = upload("").await;
    assert_eq!(
        v["rows"][0]["errors"][0]["code"], "duplicate_identity",
        "{v}"
    );
    let found = problems(&t.s, &t.reg2, "kind=duplicate_enrolment").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["details"]["refused_school"], "s2");
}
