//! The registrar console over real HTTP: sign-in, the guards of every form (session form token,
//! Origin), and the role × screen matrix: no page shows a value its role may not see.

use serde_json::{Value, json};

use super::helpers::*;

/// A browser-like client of the console: the session cookie sent by hand, redirects not
/// followed (so that they can be asserted).
pub(crate) struct Console {
    pub base: String,
    pub cookie: String,
    client: reqwest::Client,
}

impl Console {
    pub fn new(s: &TestServer, token: &str) -> Console {
        Console {
            base: s.base.clone(),
            cookie: format!("xueji_console={token}"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("get");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    pub async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, String) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            );
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let r = req.send().await.expect("post");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// A form POST answered by a redirect: its status and where it sends the browser.
    pub async fn post_redirect(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            )
            .send()
            .await
            .expect("post");
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (r.status().as_u16(), location)
    }

    /// The session's form token, as the pages carry it.
    pub async fn csrf(&self) -> String {
        let (_, page) = self.get("/console/students").await;
        let at = page
            .find("name=\"csrf\" value=\"")
            .expect("a form token on the page");
        page[at + 19..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

const ID_CARD: &str = "11010520160501002X";
const GUARDIAN_PHONE: &str = "13912345678";
const HEALTH_NOTE: &str = "先天性心脏病随访";

/// Schools s1 (东区) and s2 (西区); an enrolled student of s1 class 4 with an ID number, a
/// guardian and a health note; a pending suspension; and a token per role.
async fn setup() -> (TestServer, String, Vec<(&'static str, String)>) {
    let s = spawn_server().await;
    s.xueji
        .create_school(school("s1", Some("东区")))
        .expect("s1");
    s.xueji
        .create_school(school("s2", Some("西区")))
        .expect("s2");
    let (status, v) = s
        .call(
            "POST",
            "/v1/students",
            Some(&s.admin),
            Some(json!({
                "school": "s1", "name": "田小梅", "gender": "female", "birth_date": "2016-05-01",
                "id_card": ID_CARD, "grade": 3, "class": "4", "entry_date": "2024-09-01",
                "guardians": [{"name": "田大山", "relation": "父亲", "phone": GUARDIAN_PHONE}],
                "extra": {"health": HEALTH_NOTE},
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let id = v["student"]["id"].as_str().expect("id").to_owned();
    let (status, v) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&s.admin),
            Some(json!({"kind": "register", "effective_date": "2024-09-02"})),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = s
        .call(
            "POST",
            &format!("/v1/students/{id}/transitions"),
            Some(&s.admin),
            Some(json!({"kind": "suspend", "effective_date": "2025-03-02", "params": {"until": "2026-03-01"},
                "documents": [{"kind": "hospital_diagnosis"}]})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let mut tokens = vec![("admin", s.admin.clone())];
    for (role, body) in [
        (
            "officer",
            json!({"role": "district_officer", "jurisdiction": "test-district"}),
        ),
        ("leader", json!({"role": "school_leader", "school": "s1"})),
        ("registrar", json!({"role": "registrar", "school": "s1"})),
        (
            "head_teacher",
            json!({"role": "head_teacher", "school": "s1", "class": "4"}),
        ),
        ("guardian", json!({"role": "guardian", "student": id})),
        (
            "leader_s2",
            json!({"role": "school_leader", "school": "s2"}),
        ),
    ] {
        tokens.push((role, s.token(body).await));
    }
    (s, id, tokens)
}

#[tokio::test]
async fn every_screen_shows_each_role_only_what_the_api_shows_it() {
    let (s, id, tokens) = setup().await;
    // A batch of the student's school (the student is skipped: a suspension is pending).
    let (status, v) = s
        .call(
            "POST",
            "/v1/batches",
            Some(&s.admin),
            Some(json!({"kind": "promote", "school": "s1", "effective_date": "2025-07-01"})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let batch = v["id"].as_str().expect("batch id").to_owned();
    crate::batches::wait_done(&s, &s.admin, &batch).await;
    let screens = [
        "/console/students".to_owned(),
        "/console/students?q=%E7%94%B0".to_owned(),
        format!("/console/students/{id}"),
        format!("/console/students/{id}/transition?kind=suspend"),
        "/console/students/new".to_owned(),
        "/console/inbox".to_owned(),
        "/console/inbox?overdue=true".to_owned(),
        "/console/problems".to_owned(),
        "/console/import".to_owned(),
        "/console/batches".to_owned(),
        format!("/console/batches/{batch}"),
        "/console/rosters?school=s1".to_owned(),
        "/console/stats".to_owned(),
        "/console/policies".to_owned(),
        "/console/policies/test-district".to_owned(),
    ];
    let mut failures = Vec::new();
    for (role, token) in &tokens {
        let vis = match *role {
            "admin" | "leader" | "registrar" => (true, true, true),
            "officer" => (true, false, false),
            "head_teacher" => (false, true, false),
            "guardian" => (false, true, true),
            _ => (false, false, false),
        };
        let console = Console::new(&s, token);
        for screen in &screens {
            let (status, page) = console.get(screen).await;
            if status >= 500 || !(page.contains("<html") && page.contains("学籍管理")) {
                failures.push(format!("{role} {screen}: {status}"));
                continue;
            }
            for (value, may_see, what) in [
                (ID_CARD, vis.0, "ID number"),
                (GUARDIAN_PHONE, vis.1, "guardian phone"),
                ("田大山", vis.1, "guardian name"),
                (HEALTH_NOTE, vis.2, "health note"),
            ] {
                if !may_see && page.contains(value) {
                    failures.push(format!("{role} {screen}: shows the {what}"));
                }
            }
        }
        // The student page shows what the role may see, and that it is the student's.
        let (status, page) = console.get(&format!("/console/students/{id}")).await;
        let sees_student = *role != "leader_s2";
        if sees_student {
            assert_eq!(status, 200, "{role}: {page}");
            assert!(page.contains("田小梅"), "{role}");
            assert_eq!(page.contains(ID_CARD), vis.0, "{role}: ID number");
            assert_eq!(page.contains(GUARDIAN_PHONE), vis.1, "{role}: phone");
            assert_eq!(page.contains(HEALTH_NOTE), vis.2, "{role}: health");
            assert!(page.contains("历史链校验通过"), "{role}: chain badge");
        } else {
            // Another school's leader: not found, like the API, and nothing of the student.
            assert_eq!(status, 404, "{role}: {page}");
            assert!(!page.contains("田小梅"), "{role}");
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn the_menu_offers_each_role_its_screens() {
    let (s, _, tokens) = setup().await;
    for (role, token) in &tokens {
        let (_, page) = Console::new(&s, token).get("/console/students").await;
        let has = |href: &str| page.contains(&format!("href=\"{href}\""));
        let staff = matches!(
            *role,
            "admin" | "officer" | "leader" | "registrar" | "leader_s2"
        );
        assert_eq!(
            has("/console/students/new"),
            matches!(*role, "admin" | "registrar"),
            "{role}"
        );
        assert_eq!(
            has("/console/import"),
            matches!(*role, "admin" | "registrar"),
            "{role}"
        );
        assert_eq!(
            has("/console/policies"),
            matches!(*role, "admin" | "officer"),
            "{role}"
        );
        assert_eq!(has("/console/batches"), staff, "{role}");
        assert_eq!(has("/console/stats"), staff, "{role}");
        assert_eq!(has("/console/problems"), staff, "{role}");
    }
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_and_a_bad_token_is_told_in_chinese() {
    let s = spawn_server().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client
        .get(format!("{}/", s.base))
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("text");
    assert!(
        page.contains("访问令牌") && page.contains("/console/login"),
        "{page}"
    );
    assert!(!page.contains("cdn") && page.contains(xueji::console::HTMX_PATH));

    let r = client
        .post(format!("{}/console/login", s.base))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 401);
    assert!(r.text().await.expect("text").contains("令牌无效"));

    let r = client
        .post(format!("{}/console/login", s.base))
        .form(&[("token", s.admin.as_str())])
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(cookie.starts_with("xueji_console="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // A page without the cookie sends to the sign-in page; htmx is served, cached for a year.
    let r = client
        .get(format!("{}/console/students", s.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let r = client
        .get(format!("{}{}", s.base, xueji::console::HTMX_PATH))
        .send()
        .await
        .expect("htmx");
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .expect("cc")
            .contains("max-age=31536000")
    );
    assert!(r.text().await.expect("js").contains("htmx"));

    // Signing out needs the form token, and ends the cookie.
    let console = Console::new(&s, &s.admin);
    let (status, _) = console.post("/console/logout", &[("csrf", "")], None).await;
    assert_eq!(status, 403);
    let csrf = console.csrf().await;
    let r = client
        .post(format!("{}/console/logout", s.base))
        .header("cookie", &console.cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.starts_with("xueji_console=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
}

fn change_class(csrf: &str) -> [(&str, &str); 3] {
    [
        ("kind", "change_class"),
        ("effective_date", "2025-03-02"),
        ("csrf", csrf),
    ]
}

#[tokio::test]
async fn a_post_needs_the_session_form_token_and_this_origin() {
    let (s, id, tokens) = setup().await;
    let registrar = Console::new(
        &s,
        &tokens
            .iter()
            .find(|(r, _)| *r == "registrar")
            .expect("registrar")
            .1,
    );
    let csrf = registrar.csrf().await;
    let path = format!("/console/students/{id}/dry-run");
    let (status, _) = registrar.post(&path, &change_class(""), None).await;
    assert_eq!(status, 403, "no form token");
    let (status, _) = registrar.post(&path, &change_class("00ff"), None).await;
    assert_eq!(status, 403, "another token");
    let (status, page) = registrar
        .post(&path, &change_class(&csrf), Some("http://evil.example"))
        .await;
    assert_eq!(status, 403, "another site: {page}");
    assert!(page.contains("其他网站"));
    let (status, page) = registrar
        .post(&path, &change_class(&csrf), Some(&s.base))
        .await;
    assert_eq!(status, 200, "{page}");
    // The form token of one session is not another's.
    let leader = Console::new(
        &s,
        &tokens
            .iter()
            .find(|(r, _)| *r == "leader")
            .expect("leader")
            .1,
    );
    let (status, _) = leader.post(&path, &change_class(&csrf), None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_dry_run_changes_with_the_documents_and_submitting_files_the_request() {
    let s = spawn_server().await;
    s.xueji
        .create_school(school("s1", Some("东区")))
        .expect("s1");
    let student = enrolled(&s.xueji, "王小明", 7);
    let registrar = Console::new(
        &s,
        &s.token(json!({"role": "registrar", "school": "s1"})).await,
    );
    let csrf = registrar.csrf().await;
    let dry_run = format!("/console/students/{}/dry-run", student.id);
    let base = [
        ("csrf", csrf.as_str()),
        ("kind", "suspend"),
        ("effective_date", "2025-03-02"),
        ("until", "2026-03-01"),
    ];
    let (status, without) = registrar.post(&dry_run, &base, None).await;
    assert_eq!(status, 200);
    assert!(
        without.contains("不允许") && without.contains("医院诊断证明"),
        "{without}"
    );
    assert!(
        without.contains("test.suspend.proof") && without.contains("第一条"),
        "the rule with its citation: {without}"
    );
    assert!(
        without.contains("需材料") && without.contains("需审批"),
        "{without}"
    );
    let mut with = base.to_vec();
    with.push(("documents", "hospital_diagnosis"));
    let (_, with_proof) = registrar.post(&dry_run, &with, None).await;
    assert!(with_proof.contains("允许,须经审批"), "{with_proof}");
    assert!(
        with_proof.contains("学校审批") || with_proof.contains("学校"),
        "{with_proof}"
    );
    assert!(!with_proof.contains("缺少材料"), "{with_proof}");
    // Nothing was stored by the dry runs; the submission opens the request.
    assert_eq!(
        s.xueji.student(&student.id).expect("student").version,
        student.version
    );
    let (status, _) = registrar
        .post(
            &format!("/console/students/{}/transition", student.id),
            &with,
            None,
        )
        .await;
    assert_eq!(status, 303);
    let (status, v) = s
        .call(
            "GET",
            "/v1/requests?jurisdiction=test-district",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{v}");
}

#[tokio::test]
async fn a_leader_approves_from_the_inbox_and_a_rejection_needs_a_reason() {
    let (s, id, tokens) = setup().await;
    let leader = Console::new(
        &s,
        &tokens
            .iter()
            .find(|(r, _)| *r == "leader")
            .expect("leader")
            .1,
    );
    let (status, inbox) = leader.get("/console/inbox").await;
    assert_eq!(status, 200);
    assert!(
        inbox.contains("休学") && inbox.contains("田小梅"),
        "{inbox}"
    );
    // The waiting step's clock: its last day, 10 working days from when it opened.
    assert!(inbox.contains("本环节办理期限"), "{inbox}");
    let at = inbox.find("/console/requests/").expect("a decide form");
    let path = inbox[at..].split('"').next().expect("path").to_owned();
    let csrf = leader.csrf().await;
    let (status, page) = leader
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("step", "school"),
                ("action", "reject"),
                ("comment", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("驳回须填写理由"), "{page}");
    let (status, _) = leader
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("step", "school"),
                ("action", "approve"),
                ("comment", "同意"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 303);
    let (_, v) = s
        .call("GET", &format!("/v1/students/{id}"), Some(&s.admin), None)
        .await;
    assert_eq!(
        v["status"], "enrolled",
        "the district step is still to come"
    );
    // The district step is the county officer's (scope::approve), not the city officer's.
    let city = Console::new(
        &s,
        &tokens
            .iter()
            .find(|(r, _)| *r == "officer")
            .expect("officer")
            .1,
    );
    let (_, inbox) = city.get("/console/inbox").await;
    assert!(
        inbox.contains("不由本账号审批") && !inbox.contains("class=\"approve\""),
        "{inbox}"
    );
    let county = Console::new(
        &s,
        &s.token(
            json!({"role": "district_officer", "jurisdiction": "test-district", "area": "东区"}),
        )
        .await,
    );
    let (_, inbox) = county.get("/console/inbox").await;
    assert!(
        inbox.contains("class=\"approve\""),
        "the county officer decides it: {inbox}"
    );
}

#[tokio::test]
async fn an_import_shows_each_rows_errors_in_place_and_accepts_gbk() {
    let s = spawn_server().await;
    s.xueji
        .create_school(school("s1", Some("东区")))
        .expect("s1");
    let token = s.token(json!({"role": "registrar", "school": "s1"})).await;
    let registrar = Console::new(&s, &token);
    let csrf = registrar.csrf().await;
    let csv = format!(
        "姓名,性别,出生日期,身份证号,年级,班级,入学日期\n李雷,male,2016-05-01,{},3,4,2024-09-01\n,female,2016-05-01,,3,4,2024-09-01\n",
        id_card("2016-05-01", 11)
    );
    let (gbk, _, _) = encoding_rs::GBK.encode(&csv);
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("school", "s1")
        .text("mode", "dry_run")
        .part(
            "file",
            reqwest::multipart::Part::bytes(gbk.into_owned()).file_name("学生.csv"),
        );
    let r = reqwest::Client::new()
        .post(format!("{}/console/import", s.base))
        .header("cookie", &registrar.cookie)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let page = r.text().await.expect("page");
    assert!(page.contains("共 2 行:校验通过 1 行,有误 1 行"), "{page}");
    assert!(
        page.contains("<code>name</code>") && page.contains("有误"),
        "{page}"
    );
    let (status, template) = registrar.get("/console/import/template.csv").await;
    assert_eq!(status, 200);
    assert!(
        template.contains("姓名") && template.contains("身份证号"),
        "{template}"
    );
}

#[tokio::test]
async fn statistics_draw_the_consolidation_rate_and_rosters_download() {
    let (s, _, tokens) = setup().await;
    let registrar = Console::new(
        &s,
        &tokens
            .iter()
            .find(|(r, _)| *r == "registrar")
            .expect("registrar")
            .1,
    );
    let (status, page) = registrar.get("/console/stats").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<svg") && page.contains("巩固率"), "{page}");
    assert!(page.contains("2024"), "the cohort of 2024: {page}");
    let r = reqwest::Client::new()
        .get(format!(
            "{}/console/rosters/download?school=s1&kind=current&format=csv",
            s.base
        ))
        .header("cookie", &registrar.cookie)
        .send()
        .await
        .expect("roster");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .expect("cd")
            .contains("attachment")
    );
    let csv = r.text().await.expect("csv");
    assert!(csv.contains("田小梅") && csv.contains(ID_CARD), "{csv}");
    // A head teacher may not read rosters: the console says what the API says, and shows no row.
    let teacher = Console::new(
        &s,
        &tokens
            .iter()
            .find(|(r, _)| *r == "head_teacher")
            .expect("teacher")
            .1,
    );
    let (_, page) = teacher.get("/console/rosters?school=s1").await;
    assert!(
        page.contains("当前角色无权查看名册") && !page.contains("田小梅"),
        "{page}"
    );
    // An officer's roster preview shows the number (their role sees it) but no guardian.
    let officer = Console::new(
        &s,
        &tokens
            .iter()
            .find(|(r, _)| *r == "officer")
            .expect("officer")
            .1,
    );
    let (_, page) = officer.get("/console/rosters?school=s1").await;
    assert!(
        page.contains(ID_CARD) && !page.contains(GUARDIAN_PHONE),
        "{page}"
    );
}

#[tokio::test]
async fn an_officer_reads_the_rulebook_and_a_candidates_impact() {
    let (s, _, tokens) = setup().await;
    let officer = Console::new(
        &s,
        &tokens
            .iter()
            .find(|(r, _)| *r == "officer")
            .expect("officer")
            .1,
    );
    let (status, page) = officer.get("/console/policies/test-district").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("test.suspend.proof") && page.contains("第一条"),
        "{page}"
    );
    assert!(
        page.contains("2020-01-01") && page.contains("现行"),
        "{page}"
    );
    let candidate = impact_candidate();
    let csrf = officer.csrf().await;
    let form = reqwest::multipart::Form::new().text("csrf", csrf).part(
        "file",
        reqwest::multipart::Part::bytes(candidate.to_string().into_bytes())
            .file_name("candidate.json"),
    );
    let r = reqwest::Client::new()
        .post(format!("{}/console/policies/test-district/impact", s.base))
        .header("cookie", &officer.cookie)
        .multipart(form)
        .send()
        .await
        .expect("impact");
    let page = r.text().await.expect("page");
    assert!(page.contains("id=\"impact\""), "{page}");
    assert!(
        page.contains("会改变的决定 1 条") && page.contains("不允许"),
        "{page}"
    );
}

/// The test district's package with suspensions refused outright: the pending request's
/// decision changes.
pub(crate) fn impact_candidate() -> Value {
    let rules = TEST_RULES.replace(
        r#"[require(["hospital_diagnosis"], "休学须提供医院诊断证明"),"#,
        r#"[deny("2026 年起暂停办理休学"), require(["hospital_diagnosis"], "休学须提供医院诊断证明"),"#,
    );
    json!({"files": {
        "policy.toml": TEST_MANIFEST.replace("version = \"1\"", "version = \"2\""),
        "rules.rhai": rules,
    }})
}

#[tokio::test]
async fn a_students_field_errors_come_back_all_at_once() {
    let s = spawn_server().await;
    s.xueji
        .create_school(school("s1", Some("东区")))
        .expect("s1");
    let (status, v) = s
        .call(
            "POST",
            "/v1/students",
            Some(&s.admin),
            Some(json!({"school": "s1", "gender": "x", "birth_date": "2016-05-01", "grade": "三",
                "entry_date": "2024-09-01", "guardians": [{"name": "家长", "relation": 1, "phone": "1"}], "nick": 1})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_field");
    let mut fields: Vec<&str> = v["error"]["details"]["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "gender",
            "grade",
            "guardians[0].phone",
            "guardians[0].relation",
            "name",
            "national_id",
            "nick"
        ],
        "{v}"
    );
    // The shape's errors (a wrong type, a missing field, an unknown one) come first, then the
    // values' own (gender, the guardian's phone, no identity number); none about a stand-in.
    assert_eq!(
        v["error"]["details"]["errors"][4]["code"], "invalid_value",
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .starts_with("7 处字段无效"),
        "{v}"
    );
    // A role that may not create students learns nothing about the values.
    let teacher = s
        .token(json!({"role": "head_teacher", "school": "s1", "class": "4"}))
        .await;
    let (status, v) = s
        .call(
            "POST",
            "/v1/students",
            Some(&teacher),
            Some(json!({"school": "s1", "gender": "x"})),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    let errors = v["error"]["details"]["errors"].as_array().expect("errors");
    assert!(errors.iter().all(|e| e["code"] == "invalid_field"), "{v}");
}

/// The setup's pupil admitted again at s2 (refused: a `duplicate_enrolment` problem of s1 naming
/// s2) and a pupil of s2 under a temporary number (a `temporary_number` problem of s2 only).
async fn with_problems(s: &TestServer) -> (String, String) {
    let (status, v) = s
        .call(
            "POST",
            "/v1/students",
            Some(&s.admin),
            Some(json!({
                "school": "s2", "name": "田小梅", "gender": "female", "birth_date": "2016-05-01",
                "id_card": ID_CARD, "grade": 3, "class": "4", "entry_date": "2024-09-01",
            })),
        )
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("duplicate_identity")),
        "{v}"
    );
    let (status, v) = s
        .call(
            "POST",
            "/v1/students",
            Some(&s.admin),
            Some(json!({
                "school": "s2", "name": "孙小雨", "gender": "female", "birth_date": "2017-03-08",
                "national_id": "L11010520170308AB12", "grade": 3, "class": "1",
                "entry_date": "2024-09-01",
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = s
        .call("GET", "/v1/problems?status=open", Some(&s.admin), None)
        .await;
    assert_eq!(status, 200, "{v}");
    let id_of = |kind: &str| {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|p| p["kind"] == kind)
            .and_then(|p| p["id"].as_str())
            .unwrap_or_else(|| panic!("a {kind} problem: {v}"))
            .to_owned()
    };
    (id_of("duplicate_enrolment"), id_of("temporary_number"))
}

#[tokio::test]
async fn the_problems_screen_lists_each_roles_problems_with_chinese_kinds() {
    let (s, _, tokens) = setup().await;
    let (duplicate, temporary) = with_problems(&s).await;
    let token = |role: &str| {
        tokens
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, t)| t.clone())
            .expect("token")
    };
    // A registrar of s1: their school's record, with its label, student link and a resolve form.
    let (status, page) = Console::new(&s, &token("registrar"))
        .get("/console/problems")
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!("id=\"{duplicate}\"")), "{page}");
    assert!(
        page.contains("重复学籍") || page.contains("学籍重复"),
        "{page}"
    );
    assert!(page.contains("田小梅") && page.contains("/console/students/stu_"));
    assert!(page.contains(&format!("/console/problems/{duplicate}/resolve")));
    assert!(
        !page.contains(&temporary) && !page.contains("孙小雨"),
        "{page}"
    );
    // The kind filter is the API's: no temporary numbers at s1.
    let (_, only) = Console::new(&s, &token("registrar"))
        .get("/console/problems?kind=temporary_number")
        .await;
    assert!(
        only.contains("id=\"empty\"") && !only.contains(&duplicate),
        "{only}"
    );
    // The officer: the whole area's, and no resolve form (the API lets only registrars settle).
    let (status, page) = Console::new(&s, &token("officer"))
        .get("/console/problems")
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&duplicate) && page.contains(&temporary),
        "{page}"
    );
    assert!(page.contains("孙小雨"), "{page}");
    assert!(!page.contains("/resolve\""), "{page}");
    // Head teachers and guardians: no menu entry, and the URL is refused as the API refuses it.
    for role in ["head_teacher", "guardian"] {
        let console = Console::new(&s, &token(role));
        let (status, page) = console.get("/console/problems").await;
        assert!(status == 403 || status == 404, "{role}: {status}");
        assert!(
            !page.contains(&duplicate) && !page.contains("孙小雨"),
            "{role}"
        );
        assert!(!page.contains("href=\"/console/problems\""), "{role}");
    }
}

#[tokio::test]
async fn resolving_a_problem_shows_the_policys_answer_in_place() {
    let (s, _, tokens) = setup().await;
    let (duplicate, _) = with_problems(&s).await;
    let registrar = tokens
        .iter()
        .find(|(r, _)| *r == "registrar")
        .map(|(_, t)| Console::new(&s, t))
        .expect("registrar");
    let csrf = registrar.csrf().await;
    let path = format!("/console/problems/{duplicate}/resolve");
    let base = [
        ("csrf", csrf.as_str()),
        ("action", "confirm"),
        ("comment", "核实无误"),
    ];
    // Without the form token: refused before the API is asked.
    let (status, _) = registrar.post(&path, &base[1..], None).await;
    assert_eq!(status, 403);
    // Confirmed without proof: denied by the policy, the rule shown, nothing resolved.
    let (status, denied) = registrar.post(&path, &base, None).await;
    assert_eq!(status, 422, "{denied}");
    assert!(denied.contains("政策不允许"), "{denied}");
    assert!(denied.contains("national_k12.problem.confirm"), "{denied}");
    let (_, open) = registrar.get("/console/problems?status=open").await;
    assert!(open.contains(&format!("id=\"{duplicate}\"")), "{open}");
    // With a document: applied, and the record moves to the resolved list.
    let mut with = base.to_vec();
    with.push(("documents", "household_register"));
    let (status, applied) = registrar.post(&path, &with, None).await;
    assert_eq!(status, 201, "{applied}");
    assert!(applied.contains("已办理"), "{applied}");
    let (_, open) = registrar.get("/console/problems?status=open").await;
    assert!(!open.contains(&duplicate), "{open}");
    let (_, resolved) = registrar.get("/console/problems?status=resolved").await;
    assert!(
        resolved.contains(&duplicate) && resolved.contains("已佐证"),
        "{resolved}"
    );
    assert!(!resolved.contains(&path), "no form for a resolved record");
}

#[tokio::test]
async fn the_inbox_lists_only_overdue_requests_when_asked() {
    let (s, _, tokens) = setup().await;
    let officer = tokens
        .iter()
        .find(|(r, _)| *r == "officer")
        .map(|(_, t)| Console::new(&s, t))
        .expect("officer");
    let (status, v) = s
        .call(
            "GET",
            "/v1/requests?jurisdiction=test-district&status=pending",
            Some(&s.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let request = v["items"][0]["id"].as_str().expect("request").to_owned();
    let (_, all) = officer.get("/console/inbox").await;
    assert!(all.contains(&request), "{all}");
    let (_, overdue) = officer.get("/console/inbox?overdue=true").await;
    assert!(
        !overdue.contains(&request) && overdue.contains("id=\"empty\""),
        "{overdue}"
    );
    assert!(overdue.contains("name=\"overdue\"") && overdue.contains(" checked"));
    // Filed long ago: now past its due date, listed and marked.
    let mut r = s.xueji.request(&request).expect("request");
    r.opened_at = "2024-01-02T08:00:00+08:00".into();
    s.xueji
        .store()
        .submit(xueji::store::Command::UpdateRequest {
            request: Box::new(r),
            expected_approvals: 0,
        })
        .expect("backdate");
    let (_, overdue) = officer.get("/console/inbox?overdue=true").await;
    assert!(
        overdue.contains(&request) && overdue.contains("已超期"),
        "{overdue}"
    );
}

#[tokio::test]
async fn a_correction_from_the_console_carries_its_fields_and_waits_for_the_bureau() {
    let (s, _, _) = setup().await;
    let (_, temporary) = with_problems(&s).await;
    let registrar = Console::new(
        &s,
        &s.token(json!({"role": "registrar", "school": "s2"})).await,
    );
    let csrf = registrar.csrf().await;
    let path = format!("/console/problems/{temporary}/resolve");
    let card = id_card("2017-03-08", 7);
    let upgrade = format!("G{card}");
    let form = |national_id: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("action", "correct".into()),
            ("comment", "取得身份证,升级为正式学籍号".into()),
            ("documents", "household_register".into()),
            ("id_card", card.clone()),
            ("national_id", national_id.to_owned()),
        ]
    };
    // A G number that is not the pupil's ID number: the API's field error, in Chinese.
    let wrong = form(&format!("G{}", id_card("2017-03-08", 9)));
    let pairs: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = registrar.post(&path, &pairs, None).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("未能处理"), "{page}");
    // The right one: the bureau reviews key information, so the problem waits on a request.
    let right = form(&upgrade);
    let pairs: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = registrar.post(&path, &pairs, None).await;
    assert_eq!(status, 202, "{page}");
    assert!(page.contains("待审批") && page.contains("req_"), "{page}");
    let (_, open) = registrar.get("/console/problems?status=open").await;
    assert!(
        open.contains(&temporary) && open.contains("变更已提交,待审批"),
        "{open}"
    );
}

/// A school s1 whose package asks the school's review for registration, three admitted
/// students, and the registrar's and the leader's consoles.
async fn with_intake() -> (TestServer, Vec<String>, Console, Console) {
    let s = spawn_server_with(&crate::batches::reviewed_registration()).await;
    s.xueji
        .create_school(school("s1", Some("东区")))
        .expect("s1");
    let ids = (1..=3)
        .map(|i| crate::batches::admit_at(&s.xueji, "s1", i))
        .collect();
    let registrar = Console::new(
        &s,
        &s.token(json!({"role": "registrar", "school": "s1"})).await,
    );
    let leader = Console::new(
        &s,
        &s.token(json!({"role": "school_leader", "school": "s1"}))
            .await,
    );
    (s, ids, registrar, leader)
}

#[tokio::test]
async fn a_batch_dry_run_shows_each_students_report_in_place_and_stores_nothing() {
    let (s, ids, registrar, _) = with_intake().await;
    // The first student's registration already waits for the school: skipped, with the reason.
    let (status, v) = s
        .call(
            "POST",
            &format!("/v1/students/{}/transitions", ids[0]),
            Some(&s.admin),
            Some(json!({"kind": "register", "effective_date": "2024-09-01"})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let (status, page) = registrar.get("/console/batches").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"batch-form\"")
            && page.contains("入学注册")
            && page.contains("升级")
            && page.contains("测试学校s1"),
        "{page}"
    );
    let csrf = registrar.csrf().await;
    let form = [
        ("csrf", csrf.as_str()),
        ("kind", "register"),
        ("school", "s1"),
        ("effective_date", "2024-09-02"),
    ];
    let (status, report) = registrar
        .post("/console/batches/dry-run", &form, None)
        .await;
    assert_eq!(status, 200, "{report}");
    assert!(report.contains("试算结果"), "{report}");
    assert!(
        report.contains("待审批 2 名") && report.contains("跳过 1 名"),
        "{report}"
    );
    // Each student's row: outcome, the rule with its citation, the reason of a skip.
    for name in ["学生1", "学生2", "学生3"] {
        assert!(report.contains(name), "{name}: {report}");
    }
    assert_eq!(report.matches("注册须经学校审核").count(), 2, "{report}");
    assert!(
        report.contains("test.register.review · 测试区学籍管理办法 第四条"),
        "{report}"
    );
    assert!(report.contains("有待审批的「入学注册」申请"), "{report}");
    // Nothing stored: no event, no request.
    for id in &ids {
        let (_, v) = s
            .call("GET", &format!("/v1/students/{id}"), Some(&s.admin), None)
            .await;
        assert_eq!(v["status"], "admitted", "{v}");
    }
    // A form mistake (no effective date) comes back as the API's Chinese message, in place.
    let (status, report) = registrar
        .post(
            "/console/batches/dry-run",
            &[("csrf", &csrf), ("kind", "register"), ("school", "s1")],
            None,
        )
        .await;
    assert_eq!(status, 400, "{report}");
    assert!(report.contains("class=\"error\""), "{report}");
    // Without the session's form token, refused before the API is asked.
    let (status, _) = registrar
        .post("/console/batches/dry-run", &form[1..], None)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_runs_and_the_leader_approves_its_step_for_the_whole_batch() {
    let (s, ids, registrar, leader) = with_intake().await;
    let csrf = registrar.csrf().await;
    let (status, location) = registrar
        .post_redirect(
            "/console/batches",
            &[
                ("csrf", &csrf),
                ("kind", "register"),
                ("school", "s1"),
                ("effective_date", "2024-09-02"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{location}");
    let batch = location
        .strip_prefix("/console/batches/")
        .expect("the batch's page")
        .to_owned();
    crate::batches::wait_done(&s, &s.admin, &batch).await;
    let (status, page) = registrar.get(&location).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("已完成") && page.contains("共 3 名"),
        "{page}"
    );
    assert!(page.contains("待审批 3 名"), "{page}");
    assert!(
        !page.contains("approve-batch"),
        "a registrar approves no step: {page}"
    );
    // The report files come through the console, signed in by the cookie.
    let (status, csv) = registrar
        .get(&format!("/console/batches/{batch}/report.csv"))
        .await;
    assert_eq!(status, 200, "{csv}");
    assert!(csv.contains("序号") && csv.contains("学生2"), "{csv}");
    let (status, _) = registrar
        .get(&format!("/console/batches/{batch}/report.xlsx"))
        .await;
    assert_eq!(status, 200);
    // The registrar's approval is the API's to refuse.
    let path = format!("/console/batches/{batch}/approve");
    let (status, _) = registrar
        .post(
            &path,
            &[("csrf", &csrf), ("step", "school"), ("comment", "")],
            None,
        )
        .await;
    assert_eq!(status, 403);
    // The leader has no batch form, and opens the batch by its number.
    let (status, page) = leader.get("/console/batches").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"open-batch\"") && !page.contains("id=\"batch-form\""),
        "{page}"
    );
    let (status, _) = leader
        .get(&format!("/console/batches/open?id={batch}"))
        .await;
    assert_eq!(status, 303);
    // The leader signs off the school's step for all three at once.
    let (_, page) = leader.get(&location).await;
    assert!(page.contains("id=\"approve-batch\""), "{page}");
    let lcsrf = leader.csrf().await;
    let approve = [
        ("csrf", lcsrf.as_str()),
        ("step", "school"),
        ("comment", "同意注册"),
    ];
    let (status, _) = leader
        .post(&path, &approve, Some("https://evil.example"))
        .await;
    assert_eq!(status, 403, "another site's form is refused");
    let (status, page) = leader.post(&path, &approve, None).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("办结 3 名"), "{page}");
    assert!(page.contains("待审批 0 名"), "{page}");
    for id in &ids {
        let (_, v) = s
            .call("GET", &format!("/v1/students/{id}"), Some(&s.admin), None)
            .await;
        assert_eq!(v["status"], "enrolled", "{v}");
    }
}

#[tokio::test]
async fn head_teachers_and_guardians_have_no_batches() {
    let (s, _, tokens) = setup().await;
    let (status, v) = s
        .call(
            "POST",
            "/v1/batches",
            Some(&s.admin),
            Some(json!({"kind": "promote", "school": "s1", "effective_date": "2025-07-01"})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let batch = v["id"].as_str().expect("batch id").to_owned();
    for role in ["head_teacher", "guardian"] {
        let token = &tokens.iter().find(|(r, _)| *r == role).expect("role").1;
        let console = Console::new(&s, token);
        let (_, page) = console.get("/console/students").await;
        assert!(!page.contains("href=\"/console/batches\""), "{role}");
        let (status, _) = console.get("/console/batches").await;
        assert_eq!(status, 403, "{role}");
        let (status, page) = console.get(&format!("/console/batches/{batch}")).await;
        assert!(matches!(status, 403 | 404), "{role}: {status}");
        assert!(!page.contains("田小梅"), "{role}");
        let (status, _) = console
            .get(&format!("/console/batches/{batch}/report.csv"))
            .await;
        assert!(matches!(status, 403 | 404), "{role}: {status}");
        let csrf = console.csrf().await;
        let (status, _) = console
            .post(
                "/console/batches/dry-run",
                &[
                    ("csrf", csrf.as_str()),
                    ("kind", "promote"),
                    ("school", "s1"),
                    ("effective_date", "2025-07-01"),
                ],
                None,
            )
            .await;
        assert!(matches!(status, 403 | 404), "{role}: {status}");
    }
}
