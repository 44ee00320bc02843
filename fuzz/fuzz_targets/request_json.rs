//! The JSON bodies the HTTP API accepts, sent through the real router (in process, in-memory
//! redb) to the route that decodes them. Never panics; never a 5xx; every refusal carries an
//! error code; a body serde refuses is a 400; what decodes gets the service's own validation
//! (checked here directly too, with its invariants).
//!
//! Input: one byte picks the route (see `ROUTES`), the rest is the body.
#![no_main]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;
use xueji::auth::{Role, TokenRecord};
use xueji::domain::identity::check_character;
use xueji::domain::student::NewStudentForm;
use xueji::domain::{Date, Guardian, Level, NewStudent, School, TransitionInput, TransitionKind};
use xueji::http::{AppState, Metrics};
use xueji::policy::{PolicyRegistry, builtin_packages};
use xueji::service::{Outcome, Xueji};
use xueji::store::Store;

/// Routes whose bodies are fuzzed. Dry runs and lookups of an unknown request keep the store as
/// it was; school and token creation write (to memory) when the body is valid.
const ROUTES: &[&str] = &[
    "/v1/students?dry_run=true",
    "/v1/students/{enrolled}/transitions?dry_run=true",
    "/v1/students/{admitted}/transitions?dry_run=true",
    "/v1/policies/yanhe-primary/evaluate",
    "/v1/schools",
    "/v1/tokens",
    "/v1/requests/req_unknown/approve",
    "/v1/requests/req_unknown/reject",
    "/v1/sweeps",
    "/v1/policies/yanhe-primary/impact",
];

struct Env {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    xueji: Arc<Xueji>,
    token: String,
    enrolled: String,
    admitted: String,
    school: School,
}

fn school(id: &str, jurisdiction: &str) -> School {
    School {
        id: id.into(),
        name: format!("模糊测试学校{id}"),
        jurisdiction: jurisdiction.into(),
        area: Some("东区".into()),
        level: Level::Primary,
        kind: None,
        calendar: Vec::new(),
    }
}

fn admit(x: &Xueji, school: &str, seq: u32) -> String {
    let first17 = format!("11010520160501{seq:03}");
    let id = format!("{first17}{}", check_character(first17.as_bytes()));
    let form = NewStudentForm {
        school: school.into(),
        name: format!("学生{seq}"),
        gender: if seq % 2 == 1 { "male" } else { "female" }.into(),
        birth_date: "2016-05-01".into(),
        id_card: Some(id),
        national_id: None,
        grade: 3,
        class: Some("4".into()),
        entry_date: "2024-09-01".into(),
        report_deadline: None,
        guardians: vec![Guardian {
            name: "家长".into(),
            relation: "母亲".into(),
            phone: "13800000000".into(),
        }],
        extra: None,
    };
    match x.admit(form, &xueji::domain::Actor::system("fuzz"), false) {
        Ok(Outcome::Applied { student, .. }) => student.id,
        other => panic!("seed admission: {other:?}"),
    }
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let store = Store::open_with_backend(redb::backends::InMemoryBackend::new())
            .expect("in-memory store");
        let registry = PolicyRegistry::from_packages(&builtin_packages()).expect("seed packages");
        let x = Arc::new(Xueji::new(store, Arc::new(registry)));
        for s in [
            school("fz-k12", "national-k12"),
            school("fz-k12b", "national-k12"),
            school("fz-yh", "yanhe-primary"),
        ] {
            x.create_school(s).expect("seed school");
        }
        let enrolled = admit(&x, "fz-k12", 1);
        let input = TransitionInput::new(
            TransitionKind::Register,
            Date::parse("2024-09-02").expect("date"),
        );
        match x.transition(
            &enrolled,
            input,
            &xueji::domain::Actor::system("fuzz"),
            false,
        ) {
            Ok(Outcome::Applied { .. }) => {}
            other => panic!("seed registration: {other:?}"),
        }
        let admitted = admit(&x, "fz-yh", 2);
        for id in [&enrolled, &admitted] {
            // No deadlines: a valid sweep body then changes nothing.
            assert!(x.student(id).expect("seed student").deadlines.is_empty());
        }
        let (token, _) = x
            .create_token(TokenRecord {
                id: String::new(),
                role: Role::Admin,
                jurisdiction: None,
                area: None,
                school: None,
                class: None,
                student: None,
                label: Some("fuzz".into()),
                created_at: String::new(),
                created_by: None,
                revoked: false,
                expires_at: None,
            })
            .expect("admin token");
        let state = AppState {
            xueji: x.clone(),
            metrics: Arc::new(Metrics::default()),
            // Backups the fuzzer asks for land here, away from any real data folder.
            backup_dir: std::env::temp_dir().join("xueji-fuzz-backups"),
        };
        let app = xueji::http::router(state, None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let school = x.school("fz-k12").expect("seed school");
        Env {
            rt,
            app,
            xueji: x,
            token,
            enrolled,
            admitted,
            school,
        }
    })
}

fn call(env: &Env, path: &str, body: &[u8]) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", env.token))
        .body(Body::from(body.to_vec()))
        .expect("request");
    env.rt.block_on(async {
        let resp = env.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {bytes:?}"));
        (status, v)
    })
}

/// What the service's own decoding and validation make of a body, checked without the router.
enum Expect {
    /// serde refuses it.
    Undecodable,
    /// Validation refuses it with this first code.
    Invalid(String),
    /// Valid, or not checked directly.
    Other,
}

const SEEDED_SCHOOLS: &[&str] = &["fz-k12", "fz-k12b", "fz-yh"];

fn direct_check(env: &Env, route: usize, body: &[u8]) -> Expect {
    match route {
        0 => {
            let Ok(form) = serde_json::from_slice::<NewStudentForm>(body) else {
                return Expect::Undecodable;
            };
            // An unknown school is refused before the form is validated (all seeded schools are
            // primary schools, so the same level limits apply).
            if !SEEDED_SCHOOLS.contains(&form.school.as_str()) {
                return Expect::Other;
            }
            let today = Date::today();
            match NewStudent::parse(form.clone(), &env.school, today) {
                Ok(n) => {
                    assert_eq!(n.name, form.name.trim());
                    assert!(!n.name.is_empty());
                    assert!((1..=env.school.level.max_grade()).contains(&n.grade));
                    assert!(n.birth_date <= today);
                    if let Some(id) = &n.id_card {
                        assert_eq!(id.birth_date(), n.birth_date);
                        assert_eq!(id.gender(), n.gender);
                    }
                    Expect::Other
                }
                Err(e) => Expect::Invalid(e.errors[0].code.clone()),
            }
        }
        1 | 2 => {
            let Ok(input) = serde_json::from_slice::<TransitionInput>(body) else {
                return Expect::Undecodable;
            };
            match input.validate() {
                Ok(()) => Expect::Other,
                Err(e) => Expect::Invalid(e.errors[0].code.clone()),
            }
        }
        _ => Expect::Other,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let env = env();
    let route = usize::from(sel) % ROUTES.len();
    let path = ROUTES[route]
        .replace("{enrolled}", &env.enrolled)
        .replace("{admitted}", &env.admitted);
    let (status, v) = call(env, &path, body);
    assert!(
        !status.is_server_error(),
        "{path}: {status} {v}\nbody: {:?}",
        String::from_utf8_lossy(body)
    );
    if !status.is_success() {
        let code = v["error"]["code"].as_str().unwrap_or("");
        assert!(
            !code.is_empty(),
            "{path}: {status} without an error code: {v}"
        );
    }
    let serde_ok = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
    if !serde_ok {
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{path}: malformed JSON got {status}: {v}"
        );
    }
    match direct_check(env, route, body) {
        // Serde refused the body: so must the route.
        Expect::Undecodable => {
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{path}: undecodable body got {status}: {v}"
            );
        }
        // Validation refused it: the route answers 400 with the same first code.
        Expect::Invalid(code) => {
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{path}: invalid body got {status}: {v}"
            );
            assert_eq!(
                v["error"]["code"].as_str(),
                Some(code.as_str()),
                "{path}: {v}"
            );
        }
        Expect::Other => {}
    }
    // The seeded students are as they were: dry runs and refusals change nothing.
    if route <= 3 {
        for id in [&env.enrolled, &env.admitted] {
            let s = env.xueji.student(id).expect("seed student");
            assert!(s.deadlines.is_empty());
        }
    }
});
