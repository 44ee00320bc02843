//! One person, many enrolments (一人一号, 终身不变): a student record is one enrolment; identity
//! is unique among live enrolments only; a new enrolment of a person whose earlier ones ended
//! keeps their national number, lists them and links its history to theirs.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use xueji::domain::{School, Status, Student, TransitionInput, TransitionKind};
use xueji::engine::{Admission, Outcome, ServiceError, Xueji};
use xueji::policy::builtin_packages;

use super::helpers::*;

// ---- engine helpers ----------------------------------------------------------------------

fn admin() -> xueji::domain::Actor {
    xueji::domain::Actor {
        id: "tok_admin".into(),
        role: "admin".into(),
    }
}

/// Files a transition and approves every step it asks for (as an admin may), so the test does
/// not depend on which steps a package asks; `None` when the policy denies it.
fn apply(x: &Xueji, id: &str, kind: TransitionKind, date: &str) -> Option<Student> {
    let input = TransitionInput::new(kind, d(date));
    match x.transition(id, input, &registrar(), false).expect("filed") {
        Outcome::Applied { student, .. } => Some(*student),
        Outcome::Pending { request, .. } => {
            let mut last = None;
            for step in request.steps.clone() {
                last = x
                    .approve(&request.id, step, &admin(), None)
                    .expect("approves")
                    .student;
            }
            last
        }
        Outcome::Denied { .. } => None,
        Outcome::DryRun { .. } => unreachable!("not a dry run"),
    }
}

pub(crate) fn graduated(x: &Xueji, name: &str, seq: u32) -> Student {
    let s = enrolled(x, name, seq);
    let s = apply(x, &s.id, TransitionKind::Graduate, "2025-07-01").expect("graduates");
    assert_eq!(s.status, Status::Graduated);
    s
}

pub(crate) fn admitted(
    x: &Xueji,
    form: xueji::domain::student::NewStudentForm,
) -> Result<Student, ServiceError> {
    match x.admit(form, &registrar(), false)? {
        Outcome::Applied { student, .. } => Ok(*student),
        other => panic!("admission not applied: {other:?}"),
    }
}

// ---- engine ------------------------------------------------------------------------------

#[test]
fn a_person_whose_enrolment_ended_is_admitted_again_under_the_same_number() {
    let t = engine();
    let first = graduated(&t.xueji, "甲", 1);
    let mut again = form("甲", first.id_card.as_ref().expect("card").as_str());
    again.school = "s2".into();
    let second = admitted(&t.xueji, again).expect("admitted again");
    assert_ne!(second.id, first.id, "a new enrolment, a new record");
    assert_eq!(second.national_id, first.national_id);
    // The history links to the earlier enrolment, under the new chain's hashes.
    let events = t.xueji.events(&second.id).expect("events");
    assert_eq!(
        events[0].input.params["previous"],
        json!([{ "student": first.id, "head": first.head }])
    );
    assert!(t.xueji.verify_student(&second.id).expect("verify").ok);
    assert!(t.xueji.verify_student(&first.id).expect("verify").ok);
    let all = t
        .xueji
        .enrolments_of(first.national_id.as_str(), |_, _| true)
        .expect("list");
    let ids: Vec<&str> = all.iter().map(|e| e.student.id.as_str()).collect();
    assert_eq!(ids, vec![first.id.as_str(), second.id.as_str()]);
    assert_eq!(all[0].last_event_date, Some(d("2025-07-01")));
    assert!(t.xueji.verify_all().expect("verify all").ok);
}

#[test]
fn while_an_enrolment_is_live_another_is_refused_naming_its_school() {
    let t = engine();
    let live = enrolled(&t.xueji, "乙", 2);
    let mut again = form("乙", live.id_card.as_ref().expect("card").as_str());
    again.school = "s2".into();
    match admitted(&t.xueji, again.clone()) {
        Err(ServiceError::Duplicate {
            student, school, ..
        }) => {
            assert_eq!(student, live.id);
            let school = school.expect("the holding school is named");
            assert_eq!(
                (school.id.as_str(), school.name.as_str()),
                ("s1", "测试学校s1")
            );
        }
        other => panic!("{other:?}"),
    }
    // Once it ends, the same form goes through.
    apply(&t.xueji, &live.id, TransitionKind::Withdraw, "2025-03-01").expect("withdraws");
    let second = admitted(&t.xueji, again).expect("admitted after the ending");
    assert_eq!(second.national_id, live.national_id);
}

#[test]
fn the_number_is_never_recomputed_from_a_changed_id_number() {
    let t = engine();
    let s = enrolled(&t.xueji, "丙", 3);
    let new_id = id_card("2016-05-01", 33);
    let mut input = TransitionInput::new(TransitionKind::ChangeKeyInfo, d("2025-03-02"));
    input
        .params
        .insert("fields".into(), json!({ "id_card": new_id }));
    input
        .documents
        .push(serde_json::from_value(json!({"kind": "household_register"})).expect("doc"));
    match t
        .xueji
        .transition(&s.id, input, &registrar(), false)
        .expect("filed")
    {
        Outcome::Applied { .. } => {}
        Outcome::Pending { request, .. } => {
            for step in request.steps.clone() {
                t.xueji
                    .approve(&request.id, step, &admin(), None)
                    .expect("approves");
            }
        }
        other => panic!("{other:?}"),
    }
    let ended = apply(&t.xueji, &s.id, TransitionKind::Graduate, "2025-07-01").expect("graduates");
    assert_eq!(
        ended.id_card.as_ref().map(|c| c.as_str()),
        Some(new_id.as_str())
    );
    // The form gives only the new ID number: the person's number is found from it, not made
    // from it.
    let second = admitted(&t.xueji, form("丙", &new_id)).expect("admitted");
    assert_eq!(second.national_id, s.national_id);
    assert_ne!(second.national_id.as_str(), format!("G{new_id}"));
    // A number that is not the person's is refused, nothing stored.
    apply(
        &t.xueji,
        &second.id,
        TransitionKind::CancelAdmission,
        "2025-09-02",
    )
    .expect("cancelled");
    let mut other_number = form("丙", &new_id);
    other_number.national_id = Some(format!("G{new_id}"));
    match admitted(&t.xueji, other_number) {
        Err(ServiceError::Invalid(e)) => {
            assert_eq!(e.errors[0].code, "national_id_not_the_person", "{e:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_plans_for_one_ended_person_store_one_enrolment() {
    let t = engine();
    let first = graduated(&t.xueji, "丁", 4);
    let card = first.id_card.clone().expect("card");
    let plan = || match t
        .xueji
        .prepare_admission(form("丁", card.as_str()), &registrar())
        .expect("prepares")
    {
        Admission::Ready(plan) => *plan,
        Admission::Refused(d) => panic!("refused: {d:?}"),
    };
    // Both were checked while the person had no live enrolment; the writer keeps one.
    let (a, b) = (plan(), plan());
    let answers = t.xueji.store_admissions(vec![a, b]);
    assert!(
        matches!(answers[0], Ok(Outcome::Applied { .. })),
        "{:?}",
        answers[0]
    );
    match &answers[1] {
        Err(ServiceError::Duplicate { school, .. }) => {
            assert_eq!(school.as_ref().map(|s| s.id.as_str()), Some("s1"))
        }
        other => panic!("{other:?}"),
    }
    let all = t
        .xueji
        .enrolments_of(first.national_id.as_str(), |_, _| true)
        .expect("list");
    assert_eq!(all.iter().filter(|e| e.student.status.is_live()).count(), 1);
}

#[test]
fn an_import_admits_an_ended_person_as_a_new_enrolment_and_refuses_a_live_one() {
    use xueji::engine::import::{ImportOptions, import};
    let t = engine();
    let ended = graduated(&t.xueji, "戊", 5);
    let live = enrolled(&t.xueji, "己", 6);
    let mut csv = String::from(
        "school,name,gender,birth_date,id_card,grade,class,entry_date,guardian_name,guardian_relation,guardian_phone\n",
    );
    for s in [&ended, &live] {
        csv.push_str(&format!(
            "s2,{},{},{},{},3,4,2025-09-01,家长,母亲,13800001234\n",
            s.name,
            s.gender.as_str(),
            s.birth_date,
            s.id_card.as_ref().expect("card").as_str()
        ));
    }
    let opts = ImportOptions {
        format: None,
        partial: true,
        dry_run: false,
        school: None,
    };
    let report = import(&t.xueji, csv.as_bytes(), &opts, &registrar(), &|_| true).expect("import");
    assert!(report.rows[0].ok, "{:?}", report.rows[0]);
    let new_id = report.rows[0].student.clone().expect("stored");
    let new = t.xueji.student(&new_id).expect("new enrolment");
    assert_eq!(new.national_id, ended.national_id);
    assert_eq!(
        t.xueji.events(&new_id).expect("events")[0].input.params["previous"][0]["student"],
        json!(ended.id)
    );
    let refused = &report.rows[1];
    assert!(!refused.ok);
    assert_eq!(refused.errors[0].code, "duplicate_identity");
    assert!(
        refused.errors[0].message.contains("测试学校s1"),
        "{refused:?}"
    );
}

// ---- property ----------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Admit person `p` at school `s1`/`s2`.
    Admit(usize, bool),
    /// Move the person's live enrolment on: register an admitted one, end an enrolled one
    /// (graduate or withdraw), cancel an admitted one.
    Step(usize, u8),
    /// Transfer the person's enrolled enrolment to another school: of its jurisdiction, or of
    /// another one (`s3`, jurisdiction `national-k12`), or back.
    Transfer(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, any::<bool>()).prop_map(|(p, s)| Op::Admit(p, s)),
        (0..3usize, 0..3u8).prop_map(|(p, k)| Op::Step(p, k)),
        (0..3usize, any::<bool>()).prop_map(|(p, cross)| Op::Transfer(p, cross)),
    ]
}

/// Transfers `s` to `to` and approves every step (as an admin); `None` when denied.
fn transfer(x: &Xueji, s: &Student, to: &str) -> Option<Student> {
    let mut input = TransitionInput::new(TransitionKind::Transfer, d("2025-03-03"));
    input
        .params
        .insert("to_school".into(), serde_json::json!(to));
    match x
        .transition(&s.id, input, &registrar(), false)
        .expect("filed")
    {
        Outcome::Applied { student, .. } => Some(*student),
        Outcome::Pending { request, .. } => {
            let mut last = None;
            for step in request.steps.clone() {
                last = x
                    .approve(&request.id, step, &admin(), None)
                    .expect("approves")
                    .student;
            }
            last
        }
        _ => None,
    }
}

fn person_card(p: usize) -> String {
    id_card("2016-05-01", 60 + p as u32)
}

#[test]
fn at_most_one_live_enrolment_per_person_and_numbers_never_change() {
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..=12), |ops| {
            let t = engine();
            let x = &t.xueji;
            x.create_school(School {
                jurisdiction: "national-k12".into(),
                ..super::helpers::school("s3", Some("西区"))
            })
            .expect("school");
            // The number each person got first: every later enrolment must carry it.
            let mut numbers: [Option<String>; 3] = [None, None, None];
            for op in ops {
                let card = |p: usize| person_card(p);
                let live_of = |p: usize| -> Option<Student> {
                    let number = xueji::domain::NationalNumber::from_citizen_id(
                        &xueji::domain::CitizenId::parse(&card(p)).expect("card"),
                    );
                    x.enrolments_of(number.as_str(), |_, _| true)
                        .expect("list")
                        .into_iter()
                        .map(|e| e.student)
                        .find(|s| s.status.is_live())
                };
                match op {
                    Op::Admit(p, second) => {
                        let mut f = form(&format!("人{p}"), &card(p));
                        if second {
                            f.school = "s2".into();
                        }
                        let was_live = live_of(p);
                        match (admitted(x, f), was_live) {
                            (Ok(s), None) => {
                                let first = numbers[p].get_or_insert(s.national_id.as_str().into());
                                prop_assert_eq!(first.as_str(), s.national_id.as_str());
                            }
                            (Err(ServiceError::Duplicate { student, .. }), Some(live)) => {
                                prop_assert_eq!(student, live.id);
                            }
                            (answer, live) => {
                                return Err(TestCaseError::fail(format!(
                                    "admission {answer:?} while live: {live:?}"
                                )));
                            }
                        }
                    }
                    Op::Step(p, k) => {
                        let Some(s) = live_of(p) else { continue };
                        let kind = match (s.status, k) {
                            (Status::Admitted, 0) => TransitionKind::CancelAdmission,
                            (Status::Admitted, _) => TransitionKind::Register,
                            (Status::Enrolled, 0) => TransitionKind::Withdraw,
                            (Status::Enrolled, _) => TransitionKind::Graduate,
                            _ => continue,
                        };
                        apply(x, &s.id, kind, "2025-07-01");
                    }
                    Op::Transfer(p, cross) => {
                        let Some(s) = live_of(p).filter(|s| s.status == Status::Enrolled) else {
                            continue;
                        };
                        let to = match (s.school.as_str(), cross) {
                            ("s3", _) => "s1",
                            (_, true) => "s3",
                            ("s1", false) => "s2",
                            _ => "s1",
                        };
                        let moved = transfer(x, &s, to);
                        let moved = moved.ok_or_else(|| TestCaseError::fail("transfer denied"))?;
                        prop_assert_eq!(moved.school.as_str(), to);
                        prop_assert_eq!(&moved.id, &s.id);
                        prop_assert_eq!(
                            moved.jurisdiction.as_str(),
                            if to == "s3" {
                                "national-k12"
                            } else {
                                "test-district"
                            }
                        );
                    }
                }
                for (p, number) in numbers.iter().enumerate() {
                    let Some(number) = number else { continue };
                    let all = x.enrolments_of(number, |_, _| true).expect("list");
                    prop_assert!(all.iter().filter(|e| e.student.status.is_live()).count() <= 1);
                    for e in &all {
                        prop_assert_eq!(e.student.national_id.as_str(), number.as_str());
                        prop_assert_eq!(
                            e.student.id_card.as_ref().map(|c| c.as_str().to_owned()),
                            Some(card(p))
                        );
                    }
                }
            }
            let report = x.verify_all().expect("verify");
            prop_assert!(report.ok, "{report:?}");
            Ok(())
        })
        .expect("property holds");
}

// ---- HTTP, seed packages -----------------------------------------------------------------

async fn school(s: &TestServer, id: &str, jurisdiction: &str, level: &str) {
    let (st, v) = s
        .call(
            "POST",
            "/v1/schools",
            Some(&s.admin),
            Some(json!({"id": id, "name": format!("学校{id}"), "jurisdiction": jurisdiction, "level": level})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
}

fn pupil(school: &str, grade: u8, entry: &str) -> Value {
    let id = id_card("2013-05-01", 71);
    json!({
        "school": school, "name": "林小满", "gender": "male", "birth_date": "2013-05-01",
        "id_card": id, "grade": grade, "class": "1", "entry_date": entry,
        "guardians": [{"name": "林家长", "relation": "父亲", "phone": "13800001234"}],
    })
}

/// Files a transition as admin and approves every step it asks for.
async fn settle(s: &TestServer, id: &str, body: Value) -> Value {
    let (st, v) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&s.admin),
            Some(body),
        )
        .await;
    match st {
        201 => v["student"].clone(),
        202 => {
            let request = v["request"]["id"].as_str().expect("request").to_owned();
            let steps: Vec<String> = v["request"]["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .map(|x| x["step"].as_str().expect("step").to_owned())
                .collect();
            let mut last = Value::Null;
            for step in steps {
                let (st, v) = s
                    .call(
                        "POST",
                        &format!("/v1/requests/{request}/approve"),
                        Some(&s.admin),
                        Some(json!({ "step": step })),
                    )
                    .await;
                assert_eq!(st, 200, "{v}");
                last = v;
            }
            assert!(
                last["event"].is_object(),
                "the last approval applies: {last}"
            );
            // The approval answers with the event; the student as it now is, read back.
            let (st, student) = s
                .call("GET", &format!("/v1/students/{id}"), Some(&s.admin), None)
                .await;
            assert_eq!(st, 200, "{student}");
            student
        }
        _ => panic!("{st}: {v}"),
    }
}

async fn enrolments(s: &TestServer, token: &str, number: &str) -> (u16, Value) {
    s.call(
        "GET",
        &format!("/v1/persons/{number}/enrolments"),
        Some(token),
        None,
    )
    .await
}

#[tokio::test]
async fn a_yanhe_graduate_enters_a_rencheng_junior_school_under_the_same_number() {
    let s = spawn_server_with(&builtin_packages()).await;
    school(&s, "yh4", "yanhe-primary", "primary").await;
    school(&s, "rcsy", "rencheng-junior", "junior").await;
    let (st, v) = s
        .call(
            "POST",
            "/v1/students",
            Some(&s.admin),
            Some(pupil("yh4", 6, "2024-09-01")),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let primary = v["student"]["id"].as_str().expect("id").to_owned();
    let number = v["student"]["national_id"]
        .as_str()
        .expect("number")
        .to_owned();
    assert_eq!(v["student"]["previous"], json!([]), "a first enrolment");
    settle(&s, &primary, json!({"kind": "register", "effective_date": "2024-09-02", "documents": [{"kind": "guardian_signature"}]})).await;

    // While the primary enrolment is live, the junior school is told who holds it.
    let mut junior = pupil("rcsy", 1, "2025-09-01");
    junior.as_object_mut().expect("object").remove("id_card");
    junior["national_id"] = json!(number);
    let (st, v) = s
        .call("POST", "/v1/students", Some(&s.admin), Some(junior.clone()))
        .await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["error"]["code"], "duplicate_identity");
    assert_eq!(
        v["error"]["details"],
        json!({"field": "national_id", "school": {"id": "yh4", "name": "学校yh4"}})
    );
    assert!(
        !v.to_string().contains(&number[1..]),
        "no personal data: {v}"
    );

    let graduated = settle(
        &s,
        &primary,
        json!({"kind": "graduate", "effective_date": "2025-07-01"}),
    )
    .await;
    assert_eq!(graduated["status"], "graduated", "{graduated}");

    // 升学: the junior school admits by ID number alone; the number is the person's.
    let (st, v) = s
        .call(
            "POST",
            "/v1/students",
            Some(&s.admin),
            Some(pupil("rcsy", 1, "2025-09-01")),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let junior_id = v["student"]["id"].as_str().expect("id").to_owned();
    assert_eq!(v["student"]["national_id"], json!(number));
    assert_eq!(v["student"]["jurisdiction"], "rencheng-junior");
    assert_eq!(
        v["student"]["previous"],
        json!([{
            "id": primary, "school": "yh4", "school_name": "学校yh4", "status": "graduated",
            "status_zh": "毕业", "entry_date": "2024-09-01", "last_event_date": "2025-07-01",
        }])
    );
    assert_eq!(
        v["event"]["input"]["params"]["previous"][0]["student"],
        json!(primary)
    );

    // Who sees which enrolments of the person.
    let (st, v) = enrolments(&s, &s.admin, &number).await;
    assert_eq!(st, 200, "{v}");
    let ids: Vec<&str> = v["enrolments"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![primary.as_str(), junior_id.as_str()],
        "oldest first"
    );
    assert_eq!(v["enrolments"][0]["school_name"], "学校yh4");
    let junior_registrar = s
        .token(json!({"role": "registrar", "school": "rcsy"}))
        .await;
    let (st, v) = enrolments(&s, &junior_registrar, &number).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["enrolments"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["enrolments"][0]["id"], json!(junior_id));
    let yanhe_officer = s
        .token(json!({"role": "district_officer", "jurisdiction": "yanhe-primary"}))
        .await;
    let (st, v) = enrolments(&s, &yanhe_officer, &number).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["enrolments"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["enrolments"][0]["id"], json!(primary));
    let head_teacher = s
        .token(json!({"role": "head_teacher", "school": "rcsy", "class": "9"}))
        .await;
    let (st, v) = enrolments(&s, &head_teacher, &number).await;
    assert_eq!(st, 404, "{v}");
    assert!(!v.to_string().contains(&number[1..]), "{v}");
    let (st, _) = enrolments(&s, &s.admin, "G110105201305010000").await;
    assert_eq!(st, 400, "a malformed number");
    let (st, _) = enrolments(&s, &s.admin, &format!("G{}", id_card("2013-05-01", 72))).await;
    assert_eq!(st, 404, "nobody");

    let (st, v) = s
        .call(
            "GET",
            &format!("/v1/students/{junior_id}/verify"),
            Some(&s.admin),
            None,
        )
        .await;
    assert!(st == 200 && v["ok"] == true, "{st}: {v}");

    // Junior → senior in a third jurisdiction: Rencheng graduate, Zhuhai senior high.
    school(&s, "zh-senior", "zhuhai-k12", "senior").await;
    let finished = settle(
        &s,
        &junior_id,
        json!({"kind": "register", "effective_date": "2025-09-01", "documents": [{"kind": "household_register"}]}),
    )
    .await;
    assert_eq!(finished["status"], "enrolled", "{finished}");
    let finished = settle(
        &s,
        &junior_id,
        json!({"kind": "graduate", "effective_date": "2028-07-01"}),
    )
    .await;
    assert_eq!(finished["status"], "graduated", "{finished}");
    let (st, v) = s
        .call(
            "POST",
            "/v1/students",
            Some(&s.admin),
            Some(pupil("zh-senior", 1, "2028-09-01")),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["student"]["national_id"], json!(number));
    assert_eq!(v["student"]["jurisdiction"], "zhuhai-k12");
    let senior_id = v["student"]["id"].as_str().expect("id").to_owned();
    let (st, v) = enrolments(&s, &s.admin, &number).await;
    assert_eq!(st, 200, "{v}");
    let schools: Vec<&str> = v["enrolments"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["school"].as_str().expect("school"))
        .collect();
    assert_eq!(
        schools,
        ["yh4", "rcsy", "zh-senior"],
        "one number, three jurisdictions"
    );
    let (st, v) = s
        .call(
            "GET",
            &format!("/v1/students/{senior_id}/verify"),
            Some(&s.admin),
            None,
        )
        .await;
    assert!(st == 200 && v["ok"] == true, "{st}: {v}");
}

#[tokio::test]
async fn concurrent_admissions_of_one_person_store_exactly_one() {
    let s = spawn_server().await;
    for id in ["s1", "s2"] {
        let (st, v) = s
            .call(
                "POST",
                "/v1/schools",
                Some(&s.admin),
                Some(json!({"id": id, "name": format!("学校{id}"), "jurisdiction": "test-district", "level": "primary"})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
    }
    let body = |school: &str| {
        let mut b = pupil(school, 3, "2024-09-01");
        b["birth_date"] = json!("2016-05-01");
        b["id_card"] = json!(id_card("2016-05-01", 81));
        b
    };
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let school = if i % 2 == 0 { "s1" } else { "s2" };
            let req = s
                .client
                .post(format!("{}/v1/students", s.base))
                .bearer_auth(&s.admin)
                .json(&body(school));
            tokio::spawn(async move {
                let resp = req.send().await.expect("request");
                let st = resp.status().as_u16();
                (st, resp.json::<Value>().await.expect("json"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("joined"));
    }
    let created = answers.iter().filter(|(st, _)| *st == 201).count();
    assert_eq!(created, 1, "{answers:?}");
    for (st, v) in &answers {
        if *st != 201 {
            assert_eq!(
                (*st, &v["error"]["code"]),
                (409, &json!("duplicate_identity")),
                "{v}"
            );
        }
    }
}
