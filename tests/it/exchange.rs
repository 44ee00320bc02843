//! Rosters, statistics and bulk import over a real server (and the real binary for the CLI):
//! formats (JSON, CSV with BOM, XLSX read back with calamine), "as of" from history, 巩固率 on a
//! small cohort with transfers and a graduation, import round trips and all-or-nothing imports.

use serde_json::{Value, json};
use std::process::Command;

use crate::helpers::*;

const BOM: &[u8] = b"\xEF\xBB\xBF";
const CURRENT_HEADER: &str = "学籍号,姓名,性别,出生日期,身份证号,学校编号,年级,班级,学籍状态,入学日期,监护人姓名,监护人关系,监护人电话,系统编号";

async fn create_school(s: &TestServer, id: &str, area: &str) {
    let (st, v) = s
        .call(
            "POST",
            "/v1/schools",
            Some(&s.admin),
            Some(json!({"id": id, "name": format!("学校{id}"), "jurisdiction": "test-district", "area": area, "level": "primary"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
}

fn student(name: &str, seq: u32, school: &str, grade: u8, class: Option<&str>) -> Value {
    let id = id_card("2016-05-01", seq);
    let male = (id.as_bytes()[16] - b'0') % 2 == 1;
    let mut b = json!({
        "school": school, "name": name, "gender": if male { "male" } else { "female" },
        "birth_date": "2016-05-01", "id_card": id, "grade": grade, "entry_date": "2024-09-01",
        "guardians": [{"name": format!("{name}家长"), "relation": "母亲", "phone": "13800001234"}],
    });
    if let Some(c) = class {
        b["class"] = json!(c);
    }
    b
}

/// Admits a student (status `admitted`) and returns its id.
async fn admit(s: &TestServer, body: Value) -> String {
    let (st, v) = s
        .call("POST", "/v1/students", Some(&s.admin), Some(body))
        .await;
    assert_eq!(st, 201, "{v}");
    v["student"]["id"].as_str().expect("id").to_owned()
}

/// Files a transition as admin; if the policy asks for approvals, approves every step as admin.
async fn apply(s: &TestServer, id: &str, t: Value) {
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&s.admin),
            Some(t.clone()),
        )
        .await;
    match st {
        201 => {}
        202 => {
            let req = v["request"]["id"].as_str().expect("request").to_owned();
            let mut next = v["request"]["next_step"].clone();
            for _ in 0..5 {
                let step = next.as_str().expect("next step").to_owned();
                let (st, v) = s
                    .call(
                        "POST",
                        &format!("/v1/requests/{req}/approve"),
                        Some(&s.admin),
                        Some(json!({"step": step, "comment": "同意"})),
                    )
                    .await;
                assert_eq!(st, 200, "{v}");
                if v["outcome"] == "applied" {
                    return;
                }
                assert_eq!(v["outcome"], "pending", "{v}");
                next = v["request"]["next_step"].clone();
            }
            panic!("{t}: not applied after approvals");
        }
        _ => panic!("{t}: {st} {v}"),
    }
}

async fn enrolled(s: &TestServer, body: Value) -> String {
    let id = admit(s, body).await;
    apply(
        s,
        &id,
        json!({"kind": "register", "effective_date": "2024-09-02"}),
    )
    .await;
    id
}

/// A GET returning the raw body and headers (for CSV and XLSX).
async fn get_raw(
    s: &TestServer,
    path: &str,
    token: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = s
        .client
        .get(format!("{}{path}", s.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.expect("body").to_vec())
}

/// POSTs file bytes to the import route.
async fn upload(s: &TestServer, query: &str, token: &str, bytes: Vec<u8>) -> (u16, Value) {
    let resp = s
        .client
        .post(format!("{}/v1/students/import{query}", s.base))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn roster_items(s: &TestServer, school: &str, query: &str) -> Vec<Value> {
    let (st, v) = s
        .call(
            "GET",
            &format!("/v1/schools/{school}/roster?limit=1000&{query}"),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["next_cursor"], Value::Null);
    v["items"].as_array().expect("items").clone()
}

/// Roster items without the system's own ids (which differ between stores).
fn comparable(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i.as_object_mut().map(|o| o.remove("student"));
            i
        })
        .collect()
}

fn csv_lines(bytes: &[u8]) -> Vec<String> {
    assert!(bytes.starts_with(BOM), "CSV must start with a UTF-8 BOM");
    let text = std::str::from_utf8(&bytes[BOM.len()..]).expect("utf-8");
    text.lines().map(str::to_owned).collect()
}

fn xlsx_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    use calamine::{Data, Reader, Xlsx};
    let mut wb: Xlsx<_> = Xlsx::new(std::io::Cursor::new(bytes.to_vec())).expect("xlsx opens");
    let range = wb
        .worksheet_range_at(0)
        .expect("a sheet")
        .expect("sheet reads");
    range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::String(s) => s.clone(),
                    Data::Float(f) => format!("{f}"),
                    Data::Int(i) => i.to_string(),
                    Data::Empty => String::new(),
                    other => format!("{other:?}"),
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn roster_in_json_csv_and_xlsx_with_roles_and_scope() {
    let s = spawn_server().await;
    create_school(&s, "s1", "东区").await;
    create_school(&s, "s2", "西区").await;
    enrolled(&s, student("赵一", 11, "s1", 3, Some("4"))).await;
    enrolled(&s, student("钱二", 12, "s1", 3, Some("5"))).await;
    enrolled(&s, student("孙三", 13, "s1", 1, Some("1"))).await;
    admit(&s, student("李四", 14, "s1", 1, Some("1"))).await; // not registered: no 学籍
    enrolled(&s, student("周五", 15, "s2", 2, Some("1"))).await;
    let registrar = s.token(json!({"role": "registrar", "school": "s1"})).await;

    // JSON, sorted by grade and class, paged.
    let (st, v) = s
        .call(
            "GET",
            "/v1/schools/s1/roster?kind=current",
            Some(&registrar),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(v["next_cursor"], Value::Null);
    assert_eq!(v["total"], 3);
    assert_eq!(items[0]["name"], "孙三");
    assert_eq!(items[0]["grade"], 1);
    assert_eq!(items[1]["class"], "4");
    assert_eq!(items[1]["status"], "enrolled");
    assert_eq!(items[1]["status_zh"], "在籍在校");
    assert_eq!(items[1]["id_card"], id_card("2016-05-01", 11));
    assert_eq!(items[1]["guardian_phone"], "13800001234");
    let (_, page1) = s
        .call(
            "GET",
            "/v1/schools/s1/roster?limit=2",
            Some(&registrar),
            None,
        )
        .await;
    assert_eq!(page1["items"].as_array().map(Vec::len), Some(2));
    let cursor = page1["next_cursor"].as_str().expect("a next page");
    let (_, page2) = s
        .call(
            "GET",
            &format!("/v1/schools/s1/roster?limit=2&cursor={cursor}"),
            Some(&registrar),
            None,
        )
        .await;
    assert_eq!(page2["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page2["next_cursor"], Value::Null);

    // CSV: BOM, charset, attachment name, Chinese headers, one line per student.
    let (st, headers, bytes) = get_raw(
        &s,
        "/v1/schools/s1/roster?kind=current&format=csv",
        &registrar,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let disposition = headers["content-disposition"].to_str().expect("ascii");
    assert!(
        disposition.starts_with("attachment; filename=\"roster-s1-current-"),
        "{disposition}"
    );
    // The file carries the school's name (学校s1-在校生名册-…).
    assert!(
        disposition.contains(
            "filename*=UTF-8''%E5%AD%A6%E6%A0%A1s1-%E5%9C%A8%E6%A0%A1%E7%94%9F%E5%90%8D%E5%86%8C-"
        ),
        "{disposition}"
    );
    let lines = csv_lines(&bytes);
    assert_eq!(lines[0], CURRENT_HEADER);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[1].starts_with(&format!("G{},孙三,", id_card("2016-05-01", 13))),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(",在籍在校,2024-09-01,赵一家长,母亲,13800001234,"),
        "{}",
        lines[2]
    );

    // Narrowed to a class: only the students placed there on the roster's date, and the file
    // says which class.
    let (_, all) = s
        .call("GET", "/v1/schools/s1/roster", Some(&registrar), None)
        .await;
    let in_class_4 = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|r| r["class"] == "4")
        .count();
    for (query, expected) in [
        ("grade=3&class=4", in_class_4),
        ("class=9", 0),
        ("grade=5", 0),
    ] {
        let (st, v) = s
            .call(
                "GET",
                &format!("/v1/schools/s1/roster?{query}"),
                Some(&registrar),
                None,
            )
            .await;
        assert_eq!(
            (st, v["total"].as_u64()),
            (200, Some(expected as u64)),
            "{query}: {v}"
        );
    }
    let (st, headers, bytes) = get_raw(
        &s,
        "/v1/schools/s1/roster?grade=3&class=4&format=csv",
        &registrar,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(csv_lines(&bytes).len(), in_class_4 + 1);
    let disposition = headers["content-disposition"].to_str().expect("ascii");
    assert!(
        disposition.contains("-3%E5%B9%B4%E7%BA%A74%E7%8F%AD.csv"),
        "{disposition}"
    );

    // XLSX, read back.
    let (st, headers, bytes) = get_raw(&s, "/v1/schools/s1/roster?format=xlsx", &registrar).await;
    assert_eq!(st, 200);
    assert_eq!(
        headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let rows = xlsx_rows(&bytes);
    assert_eq!(rows[0].join(","), CURRENT_HEADER);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[2][1], "赵一");
    assert_eq!(
        rows[2][4],
        id_card("2016-05-01", 11),
        "ID numbers stay text"
    );
    assert_eq!(rows[2][6], "3");

    // 新生名册 of 2024 lists every admission, registered or not.
    let (_, v) = s
        .call(
            "GET",
            "/v1/schools/s1/roster?kind=new&year=2024",
            Some(&registrar),
            None,
        )
        .await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(4), "{v}");
    assert_eq!(v["kind_zh"], "新生名册");
    let (_, v) = s
        .call(
            "GET",
            "/v1/schools/s1/roster?kind=new&year=2025",
            Some(&registrar),
            None,
        )
        .await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0));

    // Roles and scope.
    let leader = s
        .token(json!({"role": "school_leader", "school": "s1"}))
        .await;
    let teacher = s
        .token(json!({"role": "head_teacher", "school": "s1", "class": "4"}))
        .await;
    let other_registrar = s.token(json!({"role": "registrar", "school": "s2"})).await;
    let east = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}))
        .await;
    let west = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "西区"}))
        .await;
    let path = "/v1/schools/s1/roster";
    assert_eq!(s.call("GET", path, Some(&leader), None).await.0, 200);
    let (st, v) = s.call("GET", path, Some(&teacher), None).await;
    assert_eq!((st, v["error"]["code"].as_str()), (403, Some("forbidden")));
    for token in [&other_registrar, &west] {
        let (st, v) = s.call("GET", path, Some(token), None).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{v}"
        );
    }
    let (st, v) = s.call("GET", path, Some(&east), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["items"][1]["guardian_phone"], "138******34",
        "officers do not see guardians"
    );
    assert_eq!(v["items"][1]["guardian_name"], "赵***");
    assert_eq!(v["items"][1]["id_card"], id_card("2016-05-01", 11));
    assert_eq!(
        s.call("GET", "/v1/schools/nope/roster", Some(&s.admin), None)
            .await
            .0,
        404
    );
    assert_eq!(s.call("GET", path, None, None).await.0, 401);
    for bad in [
        "kind=old",
        "format=pdf",
        "year=20",
        "as_of=2026-13-01",
        "colour=red",
    ] {
        let (st, v) = s
            .call("GET", &format!("{path}?{bad}"), Some(&s.admin), None)
            .await;
        assert_eq!(st, 400, "{bad}: {v}");
    }
}

#[tokio::test]
async fn roster_as_of_a_past_date_comes_from_history() {
    let s = spawn_server().await;
    create_school(&s, "s1", "东区").await;
    let a = enrolled(&s, student("甲", 21, "s1", 3, Some("4"))).await;
    let b = enrolled(&s, student("乙", 22, "s1", 3, Some("4"))).await;
    apply(
        &s,
        &a,
        json!({"kind": "change_class", "effective_date": "2025-03-02", "params": {"class": "5"}}),
    )
    .await;
    apply(
        &s,
        &b,
        json!({"kind": "graduate", "effective_date": "2025-07-01"}),
    )
    .await;

    let before_entry = roster_items(&s, "s1", "as_of=2024-08-31").await;
    assert!(before_entry.is_empty());
    let admitted_only = roster_items(&s, "s1", "as_of=2024-09-01").await;
    assert!(admitted_only.is_empty(), "admitted, not registered yet");
    let march = roster_items(&s, "s1", "as_of=2025-03-01").await;
    assert_eq!(march.len(), 2);
    assert!(march.iter().all(|i| i["class"] == "4"), "{march:?}");
    let june = roster_items(&s, "s1", "as_of=2025-06-30").await;
    assert_eq!(june.len(), 2);
    let a_in_june = june
        .iter()
        .find(|i| i["student"] == a.as_str())
        .expect("甲");
    assert_eq!(a_in_june["class"], "5");
    let now = roster_items(&s, "s1", "kind=current").await;
    assert_eq!(now.len(), 1);
    assert_eq!(now[0]["student"], a.as_str());
    let end_of_2025 = roster_items(&s, "s1", "year=2025").await;
    assert_eq!(comparable(&end_of_2025), comparable(&now));

    // 毕(结、肄)业生名册: by the year of the graduation, with its date.
    let grads = roster_items(&s, "s1", "kind=graduates&year=2025").await;
    assert_eq!(grads.len(), 1);
    assert_eq!(grads[0]["student"], b.as_str());
    assert_eq!(grads[0]["status"], "graduated");
    assert_eq!(grads[0]["left_on"], "2025-07-01");
    assert!(
        roster_items(&s, "s1", "kind=graduates&year=2024")
            .await
            .is_empty()
    );
    let (st, _, bytes) = get_raw(
        &s,
        "/v1/schools/s1/roster?kind=graduates&year=2025&format=csv",
        &s.admin,
    )
    .await;
    assert_eq!(st, 200);
    let lines = csv_lines(&bytes);
    assert!(
        lines[0].ends_with(",毕(结、肄)业日期,系统编号"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains(",毕业,"), "{}", lines[1]);
    assert!(lines[1].contains(",2025-07-01,"), "{}", lines[1]);
}

#[tokio::test]
async fn stats_counts_and_retention_of_a_cohort_with_transfers_and_a_graduation() {
    let s = spawn_server().await;
    create_school(&s, "s1", "东区").await;
    create_school(&s, "s2", "西区").await;
    let a = enrolled(&s, student("甲", 31, "s1", 3, Some("4"))).await;
    let b = enrolled(&s, student("乙", 32, "s1", 3, Some("4"))).await;
    enrolled(&s, student("丙", 33, "s1", 3, Some("4"))).await;
    let d = enrolled(&s, student("丁", 34, "s1", 3, Some("4"))).await;
    let e = enrolled(&s, student("戊", 35, "s2", 3, Some("7"))).await;
    admit(&s, student("己", 36, "s1", 3, Some("4"))).await; // never registers
    apply(
        &s,
        &b,
        json!({"kind": "transfer", "effective_date": "2025-03-01", "reason": "household_move",
               "params": {"to_school": "s2"}, "documents": [{"kind": "transfer_form"}]}),
    )
    .await;
    apply(
        &s,
        &e,
        json!({"kind": "transfer", "effective_date": "2025-03-01", "reason": "household_move",
               "params": {"to_school": "s1", "to_class": "6"}, "documents": [{"kind": "transfer_form"}]}),
    )
    .await;
    apply(
        &s,
        &a,
        json!({"kind": "graduate", "effective_date": "2025-07-01"}),
    )
    .await;
    apply(
        &s,
        &d,
        json!({"kind": "drop_out", "effective_date": "2025-10-10", "reason": "personal"}),
    )
    .await;

    let get = |q: String, token: String| {
        let s = &s;
        async move {
            let (st, v) = s
                .call("GET", &format!("/v1/stats?{q}"), Some(&token), None)
                .await;
            assert_eq!(st, 200, "{q}: {v}");
            v
        }
    };
    let admin = s.admin.clone();

    // Before the transfers: the four of s1, all at school.
    let v = get("school=s1&as_of=2025-02-28".into(), admin.clone()).await;
    assert_eq!(v["by_status"], json!({"admitted": 1, "enrolled": 4}));
    assert_eq!(v["in_school"], 4);

    let v = get("school=s1&as_of=2025-12-31".into(), admin.clone()).await;
    assert_eq!(v["as_of"], "2025-12-31");
    assert_eq!(
        v["by_status"],
        json!({"admitted": 1, "enrolled": 2, "dropped_out": 1, "graduated": 1})
    );
    assert_eq!(
        (
            v["students"].as_u64(),
            v["with_xueji"].as_u64(),
            v["in_school"].as_u64()
        ),
        (Some(5), Some(3), Some(2))
    );
    assert_eq!(
        v["by_grade"],
        json!([{"level": "primary", "grade": 3, "with_xueji": 3, "in_school": 2, "enrolled": 2, "suspended": 0, "dropped_out": 1}])
    );
    assert_eq!(
        v["by_class"],
        json!([
            {"school": "s1", "grade": 3, "class": "4", "with_xueji": 2, "in_school": 1, "enrolled": 1, "suspended": 0, "dropped_out": 1},
            {"school": "s1", "grade": 3, "class": "6", "with_xueji": 1, "in_school": 1, "enrolled": 1, "suspended": 0, "dropped_out": 0}
        ])
    );
    // 巩固率: 1 graduate ÷ (4 entered + 1 transferred in − 1 transferred out).
    let c = &v["cohorts"][0];
    assert_eq!(v["cohorts"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(c["entry_year"], 2024);
    assert_eq!(
        (
            c["cohort"].as_u64(),
            c["transfers_in"].as_u64(),
            c["transfers_out"].as_u64(),
            c["base"].as_i64()
        ),
        (Some(4), Some(1), Some(1), Some(4))
    );
    assert_eq!(
        (
            c["graduates"].as_u64(),
            c["in_school"].as_u64(),
            c["dropped_out"].as_u64()
        ),
        (Some(1), Some(2), Some(1))
    );
    assert_eq!(c["rate"], 0.25);
    assert_eq!(
        (c["retained"].as_u64(), c["retained_rate"].as_f64()),
        (Some(3), Some(0.75))
    );
    assert_eq!(c["finished"], false);
    assert_eq!(c["never_registered"], 1);
    // 辍学率 of 2025-2026: 1 dropout ÷ 3 at school on 2025-09-01 (丙, 丁, 戊).
    assert_eq!(
        v["dropout"],
        json!({"school_year": "2025-2026", "from": "2025-09-01", "to": "2025-12-31", "students_at_start": 3, "dropouts": 1, "rate": 0.3333})
    );

    // The jurisdiction: transfers inside it are not flows.
    let v = get(
        "jurisdiction=test-district&as_of=2025-12-31".into(),
        admin.clone(),
    )
    .await;
    let c = &v["cohorts"][0];
    assert_eq!(
        (
            c["cohort"].as_u64(),
            c["transfers_in"].as_u64(),
            c["transfers_out"].as_u64()
        ),
        (Some(5), Some(0), Some(0))
    );
    assert_eq!(c["rate"], 0.2);
    assert_eq!(v["in_school"], 3);

    // Scope: an area officer gets their area by default; school staff their school.
    let east = s
        .token(json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}))
        .await;
    let v = get("as_of=2025-12-31".into(), east.clone()).await;
    assert_eq!(v["area"], "东区");
    assert_eq!(v["cohorts"][0]["base"], 4);
    let registrar = s.token(json!({"role": "registrar", "school": "s1"})).await;
    let v = get("as_of=2025-12-31".into(), registrar.clone()).await;
    assert_eq!(v["school"], "s1");
    let teacher = s
        .token(json!({"role": "head_teacher", "school": "s1", "class": "4"}))
        .await;
    let other = s.token(json!({"role": "registrar", "school": "s2"})).await;
    for (token, q, status) in [
        (&teacher, "school=s1", 403),
        (&registrar, "jurisdiction=test-district", 403),
        (&other, "school=s1", 404),
        (&east, "jurisdiction=national-k12", 404),
        (&admin, "", 400),
        (&admin, "school=s1&jurisdiction=test-district", 400),
    ] {
        let (st, v) = s
            .call("GET", &format!("/v1/stats?{q}"), Some(token), None)
            .await;
        assert_eq!(st, status, "{q}: {v}");
    }
}

#[tokio::test]
async fn import_round_trip_csv_and_xlsx_into_empty_stores() {
    let source = spawn_server().await;
    create_school(&source, "s1", "东区").await;
    enrolled(&source, student("欧阳一", 41, "s1", 3, Some("4"))).await;
    enrolled(&source, student("=二", 42, "s1", 2, None)).await; // a formula-looking name
    // A student without an ID number: a J number, identity by name, gender and birth date.
    let mut no_id = student("王三", 43, "s1", 1, Some("2"));
    let body = id_card("2016-05-01", 43);
    no_id.as_object_mut().map(|o| o.remove("id_card"));
    no_id["national_id"] = json!(format!("J{body}"));
    no_id["guardians"] = json!([]);
    enrolled(&source, no_id).await;
    let registrar = source
        .token(json!({"role": "registrar", "school": "s1"}))
        .await;
    let expected = roster_items(&source, "s1", "kind=current").await;
    assert_eq!(expected.len(), 3);

    for format in ["csv", "xlsx"] {
        let (st, _, file) = get_raw(
            &source,
            &format!("/v1/schools/s1/roster?kind=current&format={format}"),
            &registrar,
        )
        .await;
        assert_eq!(st, 200);
        let target = spawn_server().await;
        create_school(&target, "s1", "东区").await;
        let target_registrar = target
            .token(json!({"role": "registrar", "school": "s1"}))
            .await;
        // CSV says its format; the XLSX file is recognised by its bytes.
        let query = if format == "csv" { "?format=csv" } else { "" };
        let (st, report) = upload(&target, query, &target_registrar, file).await;
        assert_eq!(st, 201, "{format}: {report}");
        assert_eq!(
            (
                report["ok"].as_bool(),
                report["stored"].as_u64(),
                report["failed"].as_u64()
            ),
            (Some(true), Some(3), Some(0))
        );
        assert_eq!(report["rows"][0]["row"], 2);
        for row in report["rows"].as_array().expect("rows") {
            let id = row["student"].as_str().expect("created");
            apply(
                &target,
                id,
                json!({"kind": "register", "effective_date": "2024-09-02"}),
            )
            .await;
        }
        let imported = roster_items(&target, "s1", "kind=current").await;
        assert_eq!(comparable(&imported), comparable(&expected), "{format}");
    }
}

/// Rows 2 and 6 are good; 3 has a bad check character, 4 repeats row 2, 5 is already in the store.
async fn mixed_file(s: &TestServer) -> Vec<u8> {
    admit(s, student("已有", 51, "s1", 3, Some("4"))).await;
    let good = id_card("2016-05-01", 52);
    let mut bad = id_card("2016-05-01", 53);
    let last = if bad.ends_with('1') { '2' } else { '1' };
    bad.replace_range(17.., &last.to_string());
    let existing = id_card("2016-05-01", 51);
    let other = id_card("2016-05-01", 54);
    let gender = |id: &str| {
        if (id.as_bytes()[16] - b'0') % 2 == 1 {
            "male"
        } else {
            "女"
        }
    };
    let mut csv = String::from(
        "school,name,gender,birth_date,id_card,grade,class,entry_date,guardian_name,guardian_relation,guardian_phone\n",
    );
    for (name, id) in [
        ("好甲", &good),
        ("错乙", &bad),
        ("重丙", &good),
        ("旧丁", &existing),
        ("好戊", &other),
    ] {
        csv.push_str(&format!(
            "s1,{name},{},2016/5/1,{id},3,4,2024-09-01,{name}母,母亲,13800001234\n",
            gender(id)
        ));
    }
    csv.into_bytes()
}

fn codes(row: &Value) -> Vec<String> {
    row["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn student_count(s: &TestServer) -> usize {
    let (st, v) = s
        .call("GET", "/v1/students?school=s1", Some(&s.admin), None)
        .await;
    assert_eq!(st, 200, "{v}");
    v["items"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn an_import_with_a_bad_row_stores_nothing_and_reports_each_row() {
    let s = spawn_server().await;
    create_school(&s, "s1", "东区").await;
    let file = mixed_file(&s).await;
    let registrar = s.token(json!({"role": "registrar", "school": "s1"})).await;

    let (st, v) = upload(&s, "?format=csv&dry_run=true", &registrar, file.clone()).await;
    assert_eq!(
        (st, v["dry_run"].as_bool(), v["valid"].as_u64()),
        (200, Some(true), Some(2)),
        "{v}"
    );
    assert_eq!(student_count(&s).await, 1);

    let (st, v) = upload(&s, "?format=csv&partial=false", &registrar, file).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["error"]["code"], "import_rejected");
    assert_eq!(
        (
            v["ok"].as_bool(),
            v["total"].as_u64(),
            v["valid"].as_u64(),
            v["failed"].as_u64(),
            v["stored"].as_u64()
        ),
        (Some(false), Some(5), Some(2), Some(3), Some(0))
    );
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(
        rows.iter()
            .map(|r| r["row"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6]
    );
    assert!(
        rows[0]["ok"].as_bool().unwrap_or(false) && rows[0]["student"].is_null(),
        "valid but not stored: {}",
        rows[0]
    );
    assert_eq!(codes(&rows[1]), vec!["id_card_check_character"]);
    assert_eq!(rows[1]["errors"][0]["field"], "id_card");
    assert!(
        codes(&rows[2]).contains(&"duplicate_in_file".to_owned()),
        "{}",
        rows[2]
    );
    assert!(
        rows[2]["errors"][0]["message"]
            .as_str()
            .unwrap_or("")
            .contains("第 2 行"),
        "{}",
        rows[2]
    );
    assert_eq!(codes(&rows[3]), vec!["duplicate_identity"]);
    assert!(rows[4]["ok"].as_bool().unwrap_or(false));
    assert_eq!(student_count(&s).await, 1, "nothing stored");
}

#[tokio::test]
async fn a_partial_import_stores_the_good_rows() {
    let s = spawn_server().await;
    create_school(&s, "s1", "东区").await;
    let file = mixed_file(&s).await;
    let (st, v) = upload(&s, "?format=csv&partial=true", &s.admin, file.clone()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (
            v["ok"].as_bool(),
            v["stored"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(false), Some(2), Some(3))
    );
    let stored: Vec<&str> = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["student"].as_str())
        .collect();
    assert_eq!(stored.len(), 2);
    assert_eq!(student_count(&s).await, 3);
    let (st, student) = s
        .call(
            "GET",
            &format!("/v1/students/{}", stored[0]),
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        student["birth_date"], "2016-05-01",
        "2016/5/1 read as a date"
    );
    assert_eq!(student["guardians"][0]["relation"], "母亲");
    // Importing the same file again: the good rows are now duplicates.
    let (st, v) = upload(&s, "?format=csv&partial=true", &s.admin, file).await;
    assert_eq!((st, v["stored"].as_u64()), (200, Some(0)), "{v}");
    assert_eq!(student_count(&s).await, 3);
}

#[tokio::test]
async fn import_refuses_bad_files_roles_and_schools_out_of_scope() {
    let s = spawn_server().await;
    create_school(&s, "s1", "东区").await;
    create_school(&s, "s2", "西区").await;
    let header = "学校编号,姓名,性别,出生日期,身份证号,年级,班级,入学日期";
    let id = id_card("2016-05-01", 61);
    let row = format!(
        "s1,张六,{},2016-05-01,{id},3,4,2024-09-01",
        if (id.as_bytes()[16] - b'0') % 2 == 1 {
            "男"
        } else {
            "女"
        }
    );
    let file = |h: &str| format!("{h}\n{row}\n").into_bytes();

    let (st, v) = upload(&s, "", &s.admin, file(&format!("{header},身高"))).await;
    assert_eq!(
        (
            st,
            v["error"]["code"].as_str(),
            v["error"]["details"]["field"].as_str()
        ),
        (400, Some("unknown_column"), Some("身高")),
        "{v}"
    );
    let (st, v) = upload(
        &s,
        "",
        &s.admin,
        file("学校编号,姓名,性别,出生日期,身份证号,年级,班级"),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("missing_column")),
        "{v}"
    );
    // GBK is read (姓名 alone: a column is missing); bytes that are neither UTF-8 nor GBK are not.
    let (st, v) = upload(&s, "", &s.admin, b"\xd0\xd5\xc3\xfb\n".to_vec()).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("missing_column")),
        "{v}"
    );
    let (st, v) = upload(&s, "", &s.admin, b"\xff\xfe\xff\n".to_vec()).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_encoding")),
        "{v}"
    );
    let (st, v) = upload(&s, "?format=xlsx", &s.admin, file(header)).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("invalid_xlsx")),
        "{v}"
    );
    let (st, v) = upload(&s, "", &s.admin, Vec::new()).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("empty_file")),
        "{v}"
    );

    // Roles, and a school outside the registrar's scope reads as unknown, row by row.
    let teacher = s
        .token(json!({"role": "head_teacher", "school": "s1", "class": "4"}))
        .await;
    assert_eq!(upload(&s, "", &teacher, file(header)).await.0, 403);
    let other = s.token(json!({"role": "registrar", "school": "s2"})).await;
    let (st, v) = upload(&s, "", &other, file(header)).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(codes(&v["rows"][0]), vec!["unknown_school"]);
    // Without a school column, `school=` names it.
    let no_school = format!(
        "姓名,性别,出生日期,身份证号,年级,班级,入学日期\n{}\n",
        row.trim_start_matches("s1,")
    );
    let (st, v) = upload(&s, "?school=s2", &other, no_school.into_bytes()).await;
    assert_eq!((st, v["stored"].as_u64()), (201, Some(1)), "{v}");

    // The body limit is raised for this route only: 1.5 MiB gets through (and is refused for
    // its content), 21 MiB is 413.
    let mut big = format!("{header},备注\n").into_bytes();
    big.extend(std::iter::repeat_n(b'x', 1536 * 1024));
    let (st, v) = upload(&s, "", &s.admin, big).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("unknown_column")),
        "{v}"
    );
    let (st, v) = upload(&s, "", &s.admin, vec![b'x'; 21 * 1024 * 1024]).await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );
    let (st, _) = s
        .call(
            "POST",
            "/v1/students",
            Some(&s.admin),
            Some(json!({"school": "s1", "name": "x".repeat(1100 * 1024)})),
        )
        .await;
    assert_eq!(st, 413, "other routes keep the global limit");
}

#[tokio::test]
async fn the_openapi_document_lists_the_exchange_routes() {
    let s = spawn_server().await;
    let (st, doc) = s.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(st, 200);
    for (method, path) in [
        ("get", "/v1/schools/{id}/roster"),
        ("get", "/v1/stats"),
        ("post", "/v1/students/import"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert!(
        doc["paths"]["/v1/students/{id}"]["get"].is_object(),
        "the other routes stay"
    );
}

/// `xueji export` and `xueji import` on data folders (the real binary).
#[test]
fn cli_export_then_import_into_an_empty_store() {
    use xueji::engine::roster::{RosterKind, RosterQuery, roster};
    let set = xueji::policy::builtin_packages();
    let national = |id: &str| xueji::domain::School {
        jurisdiction: "national-k12".into(),
        ..school(id, None)
    };
    let source = engine_with(&set);
    source.xueji.create_school(national("s1")).expect("school");
    crate::helpers::enrolled(&source.xueji, "一号", 71);
    crate::helpers::enrolled(&source.xueji, "二号", 72);
    let TestEngine {
        xueji,
        dir: source_dir,
        ..
    } = source;
    drop(xueji); // the CLI needs the file to itself
    let target = engine_with(&set);
    target.xueji.create_school(national("s1")).expect("school");
    let TestEngine {
        xueji,
        dir: target_dir,
        ..
    } = target;
    drop(xueji);

    let bin = env!("CARGO_BIN_EXE_xueji");
    let csv = source_dir.path().join("在校生.csv");
    let out = Command::new(bin)
        .args(["export", "--data"])
        .arg(source_dir.path())
        .args([
            "--school", "s1", "--kind", "current", "--format", "csv", "--out",
        ])
        .arg(&csv)
        .output()
        .expect("export runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 students"));
    let bytes = std::fs::read(&csv).expect("written");
    assert!(bytes.starts_with(BOM));

    // The registrar reads one Chinese line of counts; the per-row report goes to `--report`.
    let report_file = source_dir.path().join("report.json");
    let import = |extra: &[&std::path::Path]| {
        let mut command = Command::new(bin);
        command
            .args(["import", "--data"])
            .arg(target_dir.path())
            .arg("--report")
            .arg(&report_file);
        for f in extra {
            command.arg(f);
        }
        let out = command.output().expect("import runs");
        let report: Value =
            serde_json::from_slice(&std::fs::read(&report_file).expect("report written"))
                .expect("report");
        (out, report)
    };
    let (out, report) = import(&[&csv]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["stored"], 2, "{report}");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        stdout.trim(),
        "导入完成:1 个文件,共 2 行,已导入 2 行,0 行未通过",
        "{stdout}"
    );
    // Again: every row is now a duplicate, nothing stored, exit status 1; the rows that did not
    // pass are named before the counts.
    let (out, report) = import(&[&csv]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(report["rows"][0]["errors"][0]["code"], "duplicate_identity");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].contains("第 2 行") && lines[0].contains("重复学籍"),
        "{stdout}"
    );
    assert_eq!(lines[2], "导入完成:1 个文件,共 2 行,已导入 0 行,2 行未通过");
    // Several files: one entry per file, in order; a missing file is reported, not fatal.
    let missing = source_dir.path().join("没有这个文件.csv");
    let (out, reports) = import(&[&csv, &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 个文件无法导入"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        reports[0]["report"]["rows"][1]["errors"][0]["code"], "duplicate_identity",
        "{reports}"
    );
    assert_eq!(reports[1]["file"], missing.display().to_string());
    assert!(
        reports[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("没有这个文件")),
        "{reports}"
    );

    let x = xueji::cli::open(&xueji::cli::Place::folder(target_dir.path()), None).expect("opens");
    let s1 = x.school("s1").expect("s1");
    let new = roster(
        &x,
        &s1,
        &RosterQuery {
            kind: RosterKind::New,
            year: Some(2024),
            as_of: None,
            ..RosterQuery::default()
        },
        xueji::auth::Role::Admin.visibility(),
    )
    .expect("roster");
    let mut names: Vec<&str> = new.rows.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["一号", "二号"]);
    assert!(
        new.rows
            .iter()
            .all(|r| r.status == xueji::domain::Status::Admitted)
    );
}
