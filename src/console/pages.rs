//! The console's screens. Each handler asks the API (in-process, as the signed-in user) and
//! renders what it answers; a POST checks the session's form token and the Origin first.

use askama::Template;
use axum::body::Bytes;
use axum::extract::Query;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::Form;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::ConsoleState;
use super::api::{Answer, Api, Failed, query, seg};
use super::chart;
use super::session::{User, check_post, current_user, login_page};
use super::views::*;
use crate::auth::Role;

pub(super) type Page = Result<Response, Response>;

pub(super) fn failed(user: &User, f: Failed) -> Response {
    let status = if f.status.is_success() {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        f.status
    };
    (status, error_page(Some(user), &f.message)).into_response()
}

pub(super) fn zone(state: &ConsoleState) -> chrono_tz::Tz {
    state.app.xueji.time_zone()
}

pub async fn index(State(state): State<ConsoleState>, jar: CookieJar) -> Response {
    match current_user(&state, &jar).await {
        Some(_) => Redirect::to("/console/").into_response(),
        None => login_page(None),
    }
}

pub async fn home(user: User) -> Response {
    let first = match user.record.role {
        Role::DistrictOfficer => "/console/inbox",
        Role::SchoolLeader => "/console/inbox",
        _ => "/console/students",
    };
    Redirect::to(first).into_response()
}

/// The schools the user may see (`GET /v1/schools`), for the school pickers.
pub(super) async fn schools(api: &Api<'_>) -> Vec<SchoolView> {
    api.get_as::<super::views::Page<SchoolView>>("/v1/schools?limit=1000")
        .await
        .map(|p| p.items)
        .unwrap_or_default()
}

/// The school a page is about: the one asked for, else the user's own, else the first visible.
pub(super) fn pick_school(asked: &str, user: &User, visible: &[SchoolView]) -> String {
    if !asked.is_empty() {
        return asked.to_owned();
    }
    user.record
        .school
        .clone()
        .or_else(|| visible.first().map(|s| s.id.clone()))
        .unwrap_or_default()
}

// ---- students ----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct StudentFilter {
    q: String,
    school: String,
    class: String,
    grade: String,
    status: String,
    cursor: String,
}

#[derive(Template)]
#[template(path = "console/students.html")]
struct StudentsPage {
    layout: Layout,
    filter: StudentFilter,
    schools: Vec<SchoolView>,
    statuses: Vec<(String, String)>,
    students: Vec<StudentView>,
    next: Option<String>,
    message: String,
}

pub async fn students(
    State(state): State<ConsoleState>,
    user: User,
    Query(filter): Query<StudentFilter>,
) -> Page {
    let api = Api::new(&state.api, &user);
    let visible = schools(&api).await;
    let school = match user.record.role {
        // An officer lists the whole jurisdiction unless a school is chosen.
        Role::DistrictOfficer | Role::Guardian => filter.school.clone(),
        _ => pick_school(&filter.school, &user, &visible),
    };
    let uri = format!(
        "/v1/students?{}",
        query(&[
            ("school", &school),
            ("q", filter.q.trim()),
            ("class", filter.class.trim()),
            ("grade", filter.grade.trim()),
            ("status", &filter.status),
            ("cursor", &filter.cursor),
            ("limit", "50"),
        ])
    );
    let (students, next, message) = match api.get_as::<super::views::Page<StudentView>>(&uri).await
    {
        Ok(p) => {
            let next = p.next_cursor.map(|c| {
                query(&[
                    ("q", &filter.q),
                    ("school", &school),
                    ("class", &filter.class),
                    ("grade", &filter.grade),
                    ("status", &filter.status),
                    ("cursor", &c),
                ])
            });
            (p.items, next, String::new())
        }
        Err(f) => (Vec::new(), None, f.message),
    };
    let labels = Labels::new();
    Ok(render(&StudentsPage {
        layout: Layout::for_user(&user, "学生", "/console/students"),
        filter: StudentFilter { school, ..filter },
        schools: visible,
        statuses: labels
            .catalog()
            .statuses
            .iter()
            .map(|c| (c.code.to_owned(), c.label.to_owned()))
            .collect(),
        students,
        next,
        message,
    }))
}

struct TimelineEntry {
    seq: u64,
    kind_zh: String,
    effective_date: String,
    recorded_at: String,
    actor_role: String,
    change: String,
    rules: Vec<RuleView>,
    policy: String,
    request: Option<String>,
}

struct DeadlineRow {
    kind: String,
    date: String,
    on_expiry: String,
}

#[derive(Template)]
#[template(path = "console/student.html")]
struct StudentPage {
    layout: Layout,
    s: StudentView,
    deadlines: Vec<DeadlineRow>,
    timeline: Vec<TimelineEntry>,
    chain: ChainView,
    previous: Vec<StudentView>,
    actions: Vec<(String, String)>,
    done: String,
    school_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Done {
    done: String,
}

fn deadline_kind_zh(kind: &str) -> String {
    match kind {
        "report_by" => "报到期限".into(),
        "reserved_until" => "保留入学资格至".into(),
        "deferred_until" => "暂缓入学至".into(),
        "resume_by" => "复学期限".into(),
        "suspended_until" => "休学至".into(),
        other => other.into(),
    }
}

fn facts_text(f: &FactsView, labels: &Labels) -> String {
    let class = f.class.as_deref().unwrap_or("—");
    format!(
        "{} · {} {} 年级 {} 班",
        labels.status(&f.status),
        f.school,
        f.grade,
        class
    )
}

/// The changes a role may file from a status, in the menu (the API decides each one).
fn actions_for(user: &User, status: &str) -> Vec<(String, String)> {
    use crate::domain::{Status, TransitionKind};
    use strum::IntoEnumIterator;
    let Ok(status) = serde_json::from_value::<Status>(json!(status)) else {
        return Vec::new();
    };
    TransitionKind::iter()
        .filter(|k| *k != TransitionKind::Admit && k.allowed_from().contains(&status))
        .filter(|k| match user.record.role {
            Role::Admin | Role::Registrar => true,
            Role::HeadTeacher => *k == TransitionKind::CorrectInfo,
            _ => false,
        })
        .map(|k| (k.as_str().to_owned(), k.zh().to_owned()))
        .collect()
}

pub async fn student(
    State(state): State<ConsoleState>,
    user: User,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> Page {
    let api = Api::new(&state.api, &user);
    let base = format!("/v1/students/{}", seg(&id));
    let s: StudentView = api.get_as(&base).await.map_err(|f| failed(&user, f))?;
    let events: super::views::Page<EventView> = api
        .get_as(&format!("{base}/events?limit=1000"))
        .await
        .map_err(|f| failed(&user, f))?;
    let chain: ChainView = api
        .get_as(&format!("{base}/verify"))
        .await
        .unwrap_or_default();
    // Earlier enrolments of the person, where the role sees the number they are found by.
    let previous = api
        .get_as::<Value>(&format!("/v1/persons/{}/enrolments", seg(&s.national_id)))
        .await
        .ok()
        .and_then(|v| serde_json::from_value::<Vec<StudentView>>(v["enrolments"].clone()).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.id != s.id)
        .collect();
    let school_name = api
        .get_as::<SchoolView>(&format!("/v1/schools/{}", seg(&s.school)))
        .await
        .map_or_else(|_| s.school.clone(), |sc| sc.name);
    let labels = Labels::new();
    let tz = zone(&state);
    let timeline = events
        .items
        .iter()
        .rev()
        .map(|e| TimelineEntry {
            seq: e.seq,
            kind_zh: labels.kind(&e.kind),
            effective_date: e.effective_date.clone(),
            recorded_at: local_time(&e.recorded_at, tz),
            actor_role: serde_json::from_value::<Role>(json!(e.actor.role))
                .map_or_else(|_| e.actor.role.clone(), |r| r.zh().to_owned()),
            change: match &e.before {
                Some(b) => format!(
                    "{} → {}",
                    facts_text(b, &labels),
                    facts_text(&e.after, &labels)
                ),
                None => facts_text(&e.after, &labels),
            },
            rules: e.decision.rules.clone(),
            policy: format!(
                "{} {}",
                e.decision.policy.jurisdiction, e.decision.policy.version
            ),
            request: e.request.clone(),
        })
        .collect();
    let deadlines = s
        .deadlines
        .iter()
        .map(|d| DeadlineRow {
            kind: deadline_kind_zh(&d.kind),
            date: d.date.clone(),
            on_expiry: d
                .on_expiry
                .as_deref()
                .map(|k| labels.kind(k))
                .unwrap_or_default(),
        })
        .collect();
    let done = match done.done.as_str() {
        "applied" => "已办理,历史已记录。",
        "pending" => "已提交审批,审批通过后生效。",
        "created" => "已建立学籍。",
        _ => "",
    }
    .to_owned();
    Ok(render(&StudentPage {
        layout: Layout::for_user(&user, &format!("学生 · {}", s.name), "/console/students"),
        actions: actions_for(&user, &s.status),
        deadlines,
        timeline,
        chain,
        previous,
        s,
        done,
        school_name,
    }))
}

// ---- admission ---------------------------------------------------------------------------

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct AdmitForm {
    csrf: String,
    school: String,
    name: String,
    gender: String,
    birth_date: String,
    id_card: String,
    national_id: String,
    grade: String,
    class: String,
    entry_date: String,
    guardian_name: String,
    guardian_relation: String,
    guardian_phone: String,
}

#[derive(Template)]
#[template(path = "console/admit.html")]
struct AdmitPage {
    layout: Layout,
    form: AdmitForm,
    schools: Vec<SchoolView>,
    errors: Vec<(String, String)>,
    message: String,
}

pub async fn admit_form(State(state): State<ConsoleState>, user: User) -> Page {
    let api = Api::new(&state.api, &user);
    let visible = schools(&api).await;
    let form = AdmitForm {
        school: pick_school("", &user, &visible),
        entry_date: state.app.xueji.today().to_string(),
        gender: "female".into(),
        ..Default::default()
    };
    Ok(render(&AdmitPage {
        layout: Layout::for_user(&user, "录取建档", "/console/students/new"),
        form,
        schools: visible,
        errors: Vec::new(),
        message: String::new(),
    }))
}

fn field_errors(answer: &Answer) -> Vec<(String, String)> {
    answer.json()["error"]["details"]["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_owned(),
                        e["message"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub async fn admit(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<AdmitForm>,
) -> Page {
    check_post(&state, &user, &headers, Some(&form.csrf))?;
    let api = Api::new(&state.api, &user);
    let text = |v: &str| (!v.trim().is_empty()).then(|| v.trim().to_owned());
    let mut body = json!({
        "school": form.school, "name": form.name, "gender": form.gender,
        "birth_date": form.birth_date, "entry_date": form.entry_date,
        "grade": form.grade.trim().parse::<i64>().map_or_else(|_| json!(form.grade), |g| json!(g)),
    });
    for (key, value) in [
        ("id_card", &form.id_card),
        ("national_id", &form.national_id),
        ("class", &form.class),
    ] {
        if let Some(v) = text(value) {
            body[key] = json!(v);
        }
    }
    if text(&form.guardian_name).is_some() || text(&form.guardian_phone).is_some() {
        body["guardians"] = json!([{
            "name": form.guardian_name.trim(), "relation": form.guardian_relation.trim(),
            "phone": form.guardian_phone.trim(),
        }]);
    }
    let answer = api.post_json("/v1/students", &body).await;
    if answer.ok() {
        let id = answer.json()["student"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        return Ok(
            Redirect::to(&format!("/console/students/{}?done=created", seg(&id))).into_response(),
        );
    }
    let visible = schools(&api).await;
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        render(&AdmitPage {
            layout: Layout::for_user(&user, "录取建档", "/console/students/new"),
            errors: field_errors(&answer),
            message: answer.error_message(),
            form,
            schools: visible,
        }),
    )
        .into_response())
}

// ---- transitions, with the live dry run --------------------------------------------------

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct TransitionForm {
    csrf: String,
    kind: String,
    effective_date: String,
    reason: String,
    until: String,
    to_school: String,
    term: String,
    documents: Vec<String>,
    issuer_level: String,
    hospital_grade: String,
    /// Further `params` as a JSON object, for kinds with parameters of their own.
    params: String,
}

impl TransitionForm {
    fn has(&self, document: &str) -> bool {
        self.documents.iter().any(|d| d == document)
    }

    /// The API's `TransitionInput`; a mistake in the form is the API's to report.
    fn input(&self) -> Value {
        let mut params: Map<String, Value> = if self.params.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(&self.params) {
                Ok(Value::Object(m)) => m,
                _ => {
                    let mut m = Map::new();
                    m.insert("params_text".into(), json!(self.params));
                    m
                }
            }
        };
        for (key, value) in [
            ("until", &self.until),
            ("to_school", &self.to_school),
            ("term", &self.term),
        ] {
            if !value.trim().is_empty() {
                params.insert(key.into(), json!(value.trim()));
            }
        }
        let documents: Vec<Value> = self
            .documents
            .iter()
            .map(|kind| {
                let mut d = json!({ "kind": kind });
                if kind == "hospital_diagnosis" {
                    if !self.issuer_level.is_empty() {
                        d["issuer_level"] = json!(self.issuer_level);
                    }
                    if !self.hospital_grade.is_empty() {
                        d["hospital_grade"] = json!(self.hospital_grade);
                    }
                }
                d
            })
            .collect();
        let mut input = json!({
            "kind": self.kind, "effective_date": self.effective_date,
            "documents": documents, "params": params,
        });
        if !self.reason.is_empty() {
            input["reason"] = json!(self.reason);
        }
        input
    }
}

#[derive(Template)]
#[template(path = "console/transition.html")]
struct TransitionPage {
    layout: Layout,
    s: StudentView,
    form: TransitionForm,
    kind_zh: String,
    reasons: Vec<(String, String)>,
    documents: Vec<(String, String)>,
    result: DecisionPanel,
}

/// The decision as the dry run (or the refused submission) answered it.
#[derive(Template, Default)]
#[template(path = "console/decision.html")]
pub struct DecisionPanel {
    shown: bool,
    allowed: bool,
    outcome: String,
    rules: Vec<RuleView>,
    missing: Vec<String>,
    required: Vec<String>,
    route: Vec<String>,
    policy: String,
    errors: Vec<(String, String)>,
    message: String,
}

impl DecisionPanel {
    fn of(answer: &Answer) -> DecisionPanel {
        let labels = Labels::new();
        let body = answer.json();
        if let Ok(d) = serde_json::from_value::<DecisionView>(body["decision"].clone())
            && body.get("decision").is_some()
        {
            let outcome = if !d.allowed {
                "不允许"
            } else if d.approvals.is_empty() {
                "允许,提交后直接生效"
            } else {
                "允许,须经审批"
            };
            return DecisionPanel {
                shown: true,
                allowed: d.allowed,
                outcome: outcome.into(),
                missing: d
                    .missing_documents
                    .iter()
                    .flatten()
                    .map(|k| labels.document(k))
                    .collect(),
                required: d
                    .required_documents
                    .iter()
                    .map(|k| labels.document(k))
                    .collect(),
                route: d.approvals.iter().map(|s| labels.step(s)).collect(),
                policy: format!("{} {}", d.policy.jurisdiction, d.policy.version),
                rules: d.rules,
                errors: Vec::new(),
                message: body["error"]["message"].as_str().unwrap_or_default().into(),
            };
        }
        DecisionPanel {
            shown: true,
            errors: field_errors(answer),
            message: answer.error_message(),
            ..Default::default()
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct KindQuery {
    kind: String,
}

async fn transition_page(
    state: &ConsoleState,
    user: &User,
    id: &str,
    form: TransitionForm,
    result: DecisionPanel,
) -> Page {
    let api = Api::new(&state.api, user);
    let s: StudentView = api
        .get_as(&format!("/v1/students/{}", seg(id)))
        .await
        .map_err(|f| failed(user, f))?;
    let labels = Labels::new();
    let c = labels.catalog();
    Ok(render(&TransitionPage {
        layout: Layout::for_user(
            user,
            &format!("{} · {}", labels.kind(&form.kind), s.name),
            "/console/students",
        ),
        kind_zh: labels.kind(&form.kind),
        reasons: c
            .reasons
            .iter()
            .map(|r| (r.code.into(), r.label.into()))
            .collect(),
        documents: c
            .document_kinds
            .iter()
            .map(|r| (r.code.into(), r.label.into()))
            .collect(),
        s,
        form,
        result,
    }))
}

pub async fn transition_form(
    State(state): State<ConsoleState>,
    user: User,
    Path(id): Path<String>,
    Query(q): Query<KindQuery>,
) -> Page {
    let form = TransitionForm {
        kind: q.kind,
        effective_date: state.app.xueji.today().to_string(),
        ..Default::default()
    };
    transition_page(&state, &user, &id, form, DecisionPanel::default()).await
}

/// The live dry run: the decision for the form as it stands (htmx swaps it in).
pub async fn transition_dry_run(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TransitionForm>,
) -> Page {
    check_post(&state, &user, &headers, Some(&form.csrf))?;
    let api = Api::new(&state.api, &user);
    let answer = api
        .post_json(
            &format!("/v1/students/{}/transitions?dry_run=true", seg(&id)),
            &form.input(),
        )
        .await;
    Ok(render(&DecisionPanel::of(&answer)))
}

pub async fn transition(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TransitionForm>,
) -> Page {
    check_post(&state, &user, &headers, Some(&form.csrf))?;
    let api = Api::new(&state.api, &user);
    let answer = api
        .post_json(
            &format!("/v1/students/{}/transitions", seg(&id)),
            &form.input(),
        )
        .await;
    let outcome = answer.json()["outcome"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if answer.ok() && (outcome == "applied" || outcome == "pending") {
        return Ok(
            Redirect::to(&format!("/console/students/{}?done={outcome}", seg(&id))).into_response(),
        );
    }
    let panel = DecisionPanel::of(&answer);
    let page = transition_page(&state, &user, &id, form, panel).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

// ---- approvals ---------------------------------------------------------------------------

struct InboxItem {
    r: RequestView,
    student_name: String,
    kind_zh: String,
    opened_at: String,
    steps: Vec<(String, String)>,
    next_step: String,
    next_step_zh: String,
    /// The waiting step's last day (working days from when it opened), and whether it passed.
    due: String,
    overdue: bool,
    may_decide: bool,
}

#[derive(Template)]
#[template(path = "console/inbox.html")]
struct InboxPage {
    layout: Layout,
    items: Vec<InboxItem>,
    jurisdictions: Vec<String>,
    jurisdiction: String,
    overdue_only: bool,
    message: String,
    done: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct InboxQuery {
    jurisdiction: String,
    done: String,
    /// `true`: only the requests whose waiting step is past its due date.
    overdue: String,
}

pub async fn inbox(
    State(state): State<ConsoleState>,
    user: User,
    Query(q): Query<InboxQuery>,
) -> Page {
    let api = Api::new(&state.api, &user);
    // An admin has no jurisdiction of their own: the packages in force are the choice.
    let jurisdictions: Vec<String> = if user.record.role == Role::Admin {
        api.get_as::<super::views::Page<Value>>("/v1/jurisdictions")
            .await
            .map(|p| {
                p.items
                    .iter()
                    .filter_map(|j| j["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let jurisdiction = if q.jurisdiction.is_empty() {
        jurisdictions.first().cloned().unwrap_or_default()
    } else {
        q.jurisdiction.clone()
    };
    let uri = format!(
        "/v1/requests?{}",
        query(&[
            ("status", "pending"),
            ("jurisdiction", &jurisdiction),
            ("overdue", if q.overdue == "true" { "true" } else { "" }),
        ])
    );
    let labels = Labels::new();
    let tz = zone(&state);
    let (requests, message) = match api.get_as::<super::views::Page<RequestView>>(&uri).await {
        Ok(p) => (p.items, String::new()),
        Err(f) => (Vec::new(), f.message),
    };
    let mut items = Vec::new();
    for r in requests {
        let student_name = api
            .get_as::<StudentView>(&format!("/v1/students/{}", seg(&r.student)))
            .await
            .map(|s| s.name)
            .unwrap_or_else(|_| r.student.clone());
        let next_step = r.next_step.clone().unwrap_or_default();
        let may_decide = may_decide(&api, &user, &r, &next_step).await;
        let steps = r
            .steps
            .iter()
            .map(|s| {
                let state = match s.status.as_str() {
                    "approved" => "已通过",
                    "rejected" => "已驳回",
                    "pending" => "待审批",
                    "expired" => "已过期",
                    _ => "未到",
                };
                (labels.step(&s.step), state.to_owned())
            })
            .collect();
        let waiting = r.steps.iter().find(|s| s.status == "pending");
        let due = waiting
            .and_then(|s| s.due.clone())
            .map(|d| {
                if waiting.is_some_and(|s| s.due_estimated) {
                    format!("{d}(估算)")
                } else {
                    d
                }
            })
            .unwrap_or_default();
        let today = crate::domain::Date::today_in(tz).to_string();
        let overdue = waiting
            .and_then(|s| s.due.as_deref())
            .is_some_and(|d| d < today.as_str());
        items.push(InboxItem {
            student_name,
            kind_zh: labels.kind(&r.input.kind),
            opened_at: local_time(&r.opened_at, tz),
            steps,
            next_step_zh: labels.step(&next_step),
            due,
            overdue,
            may_decide,
            next_step,
            r,
        });
    }
    let done = match q.done.as_str() {
        "approved" => "已审批通过。",
        "rejected" => "已驳回。",
        _ => "",
    }
    .to_owned();
    Ok(render(&InboxPage {
        layout: Layout::for_user(&user, "审批", "/console/inbox"),
        items,
        jurisdictions,
        jurisdiction,
        overdue_only: q.overdue == "true",
        message,
        done,
    }))
}

/// Whether to offer the buttons: `auth::scope::approve`, the API's own test, on the schools as
/// the API shows them to the user.
async fn may_decide(api: &Api<'_>, user: &User, r: &RequestView, step: &str) -> bool {
    use crate::domain::{ApprovalStep, School};
    let Ok(step) = serde_json::from_value::<ApprovalStep>(json!(step)) else {
        return false;
    };
    let Ok(school) = api
        .get_as::<School>(&format!("/v1/schools/{}", seg(&r.school)))
        .await
    else {
        return false;
    };
    let receiving = match &r.receiving_school {
        Some(id) => api
            .get_as::<School>(&format!("/v1/schools/{}", seg(id)))
            .await
            .ok(),
        None => None,
    };
    crate::auth::scope::approve(&user.record, step, &school, receiving.as_ref())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DecideForm {
    csrf: String,
    action: String,
    step: String,
    comment: String,
}

pub async fn decide(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Page {
    check_post(&state, &user, &headers, Some(&form.csrf))?;
    let api = Api::new(&state.api, &user);
    let verb = if form.action == "reject" {
        "reject"
    } else {
        "approve"
    };
    let mut body = json!({ "step": form.step });
    if !form.comment.trim().is_empty() {
        body["comment"] = json!(form.comment.trim());
    }
    let answer = api
        .post_json(&format!("/v1/requests/{}/{verb}", seg(&id)), &body)
        .await;
    if !answer.ok() {
        return Err(failed(
            &user,
            Failed {
                status: answer.status,
                message: answer.error_message(),
            },
        ));
    }
    let done = if verb == "reject" {
        "rejected"
    } else {
        "approved"
    };
    Ok(Redirect::to(&format!("/console/inbox?done={done}")).into_response())
}

// ---- import ------------------------------------------------------------------------------

struct ImportRowView {
    row: u64,
    ok: bool,
    student: String,
    errors: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "console/import.html")]
struct ImportPage {
    layout: Layout,
    schools: Vec<SchoolView>,
    school: String,
    mode: String,
    summary: String,
    message: String,
    rows: Vec<ImportRowView>,
}

pub async fn import_form(State(state): State<ConsoleState>, user: User) -> Page {
    let api = Api::new(&state.api, &user);
    let visible = schools(&api).await;
    Ok(render(&ImportPage {
        layout: Layout::for_user(&user, "批量导入", "/console/import"),
        school: pick_school("", &user, &visible),
        schools: visible,
        mode: "dry_run".into(),
        summary: String::new(),
        message: String::new(),
        rows: Vec::new(),
    }))
}

/// The fields of a multipart form, and its one file.
struct Upload {
    fields: std::collections::HashMap<String, String>,
    file_name: String,
    file: Bytes,
}

async fn read_upload(mut multipart: Multipart) -> Result<Upload, String> {
    let mut upload = Upload {
        fields: Default::default(),
        file_name: String::new(),
        file: Bytes::new(),
    };
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| "上传内容无法读取(文件过大或传输中断)".to_owned())?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            upload.file_name = field.file_name().unwrap_or_default().to_owned();
            upload.file = field
                .bytes()
                .await
                .map_err(|_| "文件无法读取(过大或传输中断)".to_owned())?;
        } else {
            let value = field.text().await.unwrap_or_default();
            upload.fields.insert(name, value);
        }
    }
    Ok(upload)
}

pub async fn import(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    multipart: Multipart,
) -> Page {
    let upload = read_upload(multipart)
        .await
        .map_err(|m| error_page(Some(&user), &m))?;
    let field = |k: &str| upload.fields.get(k).cloned().unwrap_or_default();
    check_post(&state, &user, &headers, Some(&field("csrf")))?;
    let api = Api::new(&state.api, &user);
    let (school, mode) = (field("school"), field("mode"));
    let lower = upload.file_name.to_lowercase();
    let format = if lower.ends_with(".xlsx") {
        "xlsx"
    } else if lower.ends_with(".csv") || lower.ends_with(".txt") {
        "csv"
    } else {
        ""
    };
    let uri = format!(
        "/v1/students/import?{}",
        query(&[
            ("school", &school),
            ("format", format),
            ("dry_run", if mode == "dry_run" { "true" } else { "" }),
            ("partial", if mode == "partial" { "true" } else { "" }),
        ])
    );
    let answer = api
        .call(
            Method::POST,
            &uri,
            Some("application/octet-stream"),
            upload.file.clone(),
        )
        .await;
    let report = answer.json();
    let rows: Vec<ImportRowView> = report["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| ImportRowView {
                    row: r["row"].as_u64().unwrap_or_default(),
                    ok: r["ok"].as_bool().unwrap_or_default(),
                    student: r["student"].as_str().unwrap_or_default().to_owned(),
                    errors: r["errors"]
                        .as_array()
                        .map(|es| {
                            es.iter()
                                .map(|e| {
                                    (
                                        e["field"].as_str().unwrap_or_default().to_owned(),
                                        e["message"].as_str().unwrap_or_default().to_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let summary = if report.get("total").is_some() {
        format!(
            "共 {} 行:校验通过 {} 行,有误 {} 行,已保存 {} 行{}",
            report["total"],
            report["valid"],
            report["failed"],
            report["stored"],
            if report["dry_run"] == json!(true) {
                "(仅校验,未保存)"
            } else {
                ""
            }
        )
    } else {
        String::new()
    };
    let message = if answer.ok() {
        String::new()
    } else {
        answer.error_message()
    };
    let visible = schools(&api).await;
    let status = if answer.ok() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((
        status,
        render(&ImportPage {
            layout: Layout::for_user(&user, "批量导入", "/console/import"),
            schools: visible,
            school,
            mode,
            summary,
            message,
            rows,
        }),
    )
        .into_response())
}

/// A CSV (UTF-8 with BOM) with the columns an import reads and one example row.
pub async fn import_template(_user: User) -> Response {
    use crate::exchange::table::{Cell, Column, write_csv};
    let columns = [
        (Column::Name, "田小梅"),
        (Column::Gender, "female"),
        (Column::BirthDate, "2017-03-08"),
        (Column::IdCard, "52222820170308002X"),
        (Column::NationalId, ""),
        (Column::Grade, "1"),
        (Column::Class, "1"),
        (Column::EntryDate, "2023-09-01"),
        (Column::GuardianName, "田大山"),
        (Column::GuardianRelation, "父亲"),
        (Column::GuardianPhone, "13800000000"),
    ];
    let headers: Vec<&str> = columns.iter().map(|(c, _)| c.zh()).collect();
    let row: Vec<Cell> = columns
        .iter()
        .map(|(_, v)| Cell::Text((*v).into()))
        .collect();
    match write_csv(&headers, &[row]) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"import-template.csv\"; filename*=UTF-8''%E5%AD%A6%E7%B1%8D%E5%AF%BC%E5%85%A5%E6%A8%A1%E6%9D%BF.csv",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "模板生成失败").into_response(),
    }
}

// ---- rosters -----------------------------------------------------------------------------

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct RosterForm {
    school: String,
    kind: String,
    grade: String,
    class: String,
    as_of: String,
    format: String,
}

impl RosterForm {
    fn api_uri(&self, format: &str) -> String {
        format!(
            "/v1/schools/{}/roster?{}",
            seg(&self.school),
            query(&[
                ("kind", &self.kind),
                ("grade", self.grade.trim()),
                ("class", self.class.trim()),
                ("as_of", &self.as_of),
                ("format", format),
                ("limit", if format == "json" { "50" } else { "" }),
            ])
        )
    }
    fn download_link(&self, format: &str) -> String {
        format!(
            "/console/rosters/download?{}",
            query(&[
                ("school", &self.school),
                ("kind", &self.kind),
                ("grade", &self.grade),
                ("class", &self.class),
                ("as_of", &self.as_of),
                ("format", format),
            ])
        )
    }
}

#[derive(Template)]
#[template(path = "console/rosters.html")]
struct RostersPage {
    layout: Layout,
    form: RosterForm,
    schools: Vec<SchoolView>,
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
    total: String,
    xlsx: String,
    csv: String,
    message: String,
}

pub async fn rosters(
    State(state): State<ConsoleState>,
    user: User,
    Query(mut form): Query<RosterForm>,
) -> Page {
    let api = Api::new(&state.api, &user);
    let visible = schools(&api).await;
    form.school = pick_school(&form.school, &user, &visible);
    if form.kind.is_empty() {
        form.kind = "current".into();
    }
    let (mut columns, mut rows, mut total, mut message) =
        (Vec::new(), Vec::new(), String::new(), String::new());
    if !form.school.is_empty() {
        match api.get_as::<Value>(&form.api_uri("json")).await {
            Ok(page) => {
                let items = page["items"].as_array().cloned().unwrap_or_default();
                if let Some(first) = items.first().and_then(Value::as_object) {
                    columns = first.keys().cloned().collect();
                }
                rows = items
                    .iter()
                    .map(|item| {
                        columns
                            .iter()
                            .map(|c| match &item[c] {
                                Value::String(s) => s.clone(),
                                Value::Null => String::new(),
                                other => other.to_string(),
                            })
                            .collect()
                    })
                    .collect();
                total = format!(
                    "{} 人({},截至 {})",
                    page["total"],
                    page["kind_zh"].as_str().unwrap_or_default(),
                    page["as_of"].as_str().unwrap_or_default()
                );
            }
            Err(f) => message = f.message,
        }
    }
    Ok(render(&RostersPage {
        layout: Layout::for_user(&user, "名册", "/console/rosters"),
        xlsx: form.download_link("xlsx"),
        csv: form.download_link("csv"),
        form,
        schools: visible,
        columns: columns.iter().map(|c| roster_header(c)).collect(),
        rows,
        total,
        message,
    }))
}

/// A roster column's Chinese header (the roster files' own).
fn roster_header(field: &str) -> String {
    use crate::exchange::table::Column;
    Column::ALL
        .into_iter()
        .find(|c| c.field() == field)
        .map_or_else(|| field.to_owned(), |c| c.zh().to_owned())
}

pub async fn roster_download(
    State(state): State<ConsoleState>,
    user: User,
    Query(form): Query<RosterForm>,
) -> Page {
    let api = Api::new(&state.api, &user);
    let format = if form.format == "csv" { "csv" } else { "xlsx" };
    let answer = api.get(&form.api_uri(format)).await;
    download(&user, answer).await
}

/// A file the API answered (a roster, a batch report), passed on with its type and name; the
/// API's refusal as the console's error page.
pub(super) async fn download(user: &User, answer: super::api::Answer) -> Page {
    if !answer.ok() {
        return Err(failed(
            user,
            Failed {
                status: answer.status,
                message: answer.error_message(),
            },
        ));
    }
    let mut response = answer.body.into_response();
    for name in [header::CONTENT_TYPE, header::CONTENT_DISPOSITION] {
        if let Some(v) = answer.headers.get(&name) {
            response.headers_mut().insert(name, v.clone());
        }
    }
    Ok(response)
}

// ---- statistics --------------------------------------------------------------------------

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct StatsForm {
    school: String,
    as_of: String,
}

struct CohortRow {
    entry_year: i64,
    base: i64,
    graduates: i64,
    in_school: i64,
    dropped_out: i64,
    rate: String,
}

#[derive(Template)]
#[template(path = "console/stats.html")]
struct StatsPage {
    layout: Layout,
    form: StatsForm,
    schools: Vec<SchoolView>,
    counts: Vec<(String, u64)>,
    students: u64,
    in_school: u64,
    cohorts: Vec<CohortRow>,
    chart: String,
    as_of: String,
    message: String,
    /// An officer may look at the whole jurisdiction (or area) instead of one school.
    district: bool,
}

pub async fn stats(
    State(state): State<ConsoleState>,
    user: User,
    Query(mut form): Query<StatsForm>,
) -> Page {
    let api = Api::new(&state.api, &user);
    let visible = schools(&api).await;
    if user.record.role != Role::DistrictOfficer {
        form.school = pick_school(&form.school, &user, &visible);
    }
    let uri = format!(
        "/v1/stats?{}",
        query(&[("school", &form.school), ("as_of", &form.as_of)])
    );
    let labels = Labels::new();
    let mut page = StatsPage {
        layout: Layout::for_user(&user, "统计", "/console/stats"),
        form: form.clone(),
        schools: visible,
        counts: Vec::new(),
        students: 0,
        in_school: 0,
        cohorts: Vec::new(),
        chart: String::new(),
        as_of: String::new(),
        message: String::new(),
        district: user.record.role == Role::DistrictOfficer,
    };
    match api.get_as::<Value>(&uri).await {
        Ok(s) => {
            page.students = s["students"].as_u64().unwrap_or_default();
            page.in_school = s["in_school"].as_u64().unwrap_or_default();
            page.as_of = s["as_of"].as_str().unwrap_or_default().to_owned();
            page.counts = s["by_status"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (labels.status(k), v.as_u64().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            let n = |c: &Value, k: &str| c[k].as_i64().unwrap_or_default();
            page.cohorts = s["cohorts"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .map(|c| CohortRow {
                            entry_year: n(c, "entry_year"),
                            base: n(c, "base"),
                            graduates: n(c, "graduates"),
                            in_school: n(c, "in_school"),
                            dropped_out: n(c, "dropped_out"),
                            rate: c["rate"]
                                .as_f64()
                                .map_or_else(|| "—".into(), |r| format!("{:.1}%", r * 100.0)),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let bars: Vec<chart::Bar> = s["cohorts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| chart::Bar {
                    label: format!("{} 级", n(c, "entry_year")),
                    value: c["rate"].as_f64(),
                    second: c["retained_rate"].as_f64(),
                })
                .collect();
            page.chart = chart::consolidation_rates(&bars);
        }
        Err(f) => page.message = f.message,
    }
    Ok(render(&page))
}

// ---- policies (district officers) --------------------------------------------------------

#[derive(Template)]
#[template(path = "console/policies.html")]
struct PoliciesPage {
    layout: Layout,
    items: Vec<(String, String, String, String)>,
    message: String,
}

pub async fn policies(State(state): State<ConsoleState>, user: User) -> Page {
    let api = Api::new(&state.api, &user);
    let (items, message) = match api
        .get_as::<super::views::Page<Value>>("/v1/policies")
        .await
    {
        Ok(p) => (
            p.items
                .iter()
                .filter(|p| {
                    // An officer works on the packages of their own jurisdiction.
                    user.record.role != Role::DistrictOfficer
                        || user.record.jurisdiction.as_deref() == p["id"].as_str()
                })
                .map(|p| {
                    let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
                    (s("id"), s("name"), s("version"), s("effective_from"))
                })
                .collect(),
            String::new(),
        ),
        Err(f) => (Vec::new(), f.message),
    };
    Ok(render(&PoliciesPage {
        layout: Layout::for_user(&user, "政策", "/console/policies"),
        items,
        message,
    }))
}

struct VersionRow {
    version: String,
    effective_from: String,
    content_hash: String,
    in_force: bool,
}

struct CaseRow {
    name: String,
    outcome: String,
}

struct RuleEntry {
    id: String,
    citation: String,
    on: String,
    package: String,
    message: String,
    fired: Vec<CaseRow>,
    not_fired: Vec<CaseRow>,
}

#[derive(Template)]
#[template(path = "console/policy.html")]
struct PolicyPage {
    layout: Layout,
    id: String,
    name: String,
    versions: Vec<VersionRow>,
    rules: Vec<RuleEntry>,
    impact: Option<ImpactView>,
    message: String,
}

struct ImpactRow {
    student: String,
    seq: u64,
    kind: String,
    school: String,
    before: String,
    after: String,
    rules: String,
}

struct ImpactView {
    replayed_events: u64,
    replayed_requests: u64,
    by_outcome: Vec<(String, u64)>,
    rows: Vec<ImpactRow>,
}

fn outcome_zh(o: &str) -> String {
    if let Some((before, after)) = o.split_once('→') {
        return format!("{}→{}", outcome_zh(before), outcome_zh(after));
    }
    match o {
        "applied" => "直接生效".into(),
        "pending" => "须审批".into(),
        "denied" => "不允许".into(),
        "error" => "执行出错".into(),
        other => other.into(),
    }
}

async fn policy_page(
    state: &ConsoleState,
    user: &User,
    id: &str,
    impact: Option<ImpactView>,
    message: String,
) -> Page {
    let api = Api::new(&state.api, user);
    let p: Value = api
        .get_as(&format!("/v1/policies/{}", seg(id)))
        .await
        .map_err(|f| failed(user, f))?;
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let today = state.app.xueji.today().to_string();
    let mut versions: Vec<VersionRow> = p["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| VersionRow {
            version: s(v, "version"),
            effective_from: s(v, "effective_from"),
            content_hash: s(v, "content_hash").chars().take(12).collect(),
            in_force: false,
        })
        .collect();
    if let Some(current) = versions.iter_mut().rfind(|v| v.effective_from <= today) {
        current.in_force = true;
    }
    let rules = rulebook(state, id, &p).await;
    Ok(render(&PolicyPage {
        layout: Layout::for_user(
            user,
            &format!("政策 · {}", s(&p, "name")),
            "/console/policies",
        ),
        id: id.to_owned(),
        name: s(&p, "name"),
        versions,
        rules,
        impact,
        message,
    }))
}

/// The package's rules as a rulebook: each with its citation, its message as a case shows it,
/// and the package's own cases where it fires and where it does not. The cases are run by the
/// engine's package tests (no student data is involved).
async fn rulebook(state: &ConsoleState, id: &str, p: &Value) -> Vec<RuleEntry> {
    let labels = Labels::new();
    let policy = state.app.xueji.policies().latest(id);
    let results = match policy {
        Some(policy) => {
            crate::http::blocking(&state.app, move |_| {
                crate::policy::testing::run_package_tests(&policy).unwrap_or_default()
            })
            .await
        }
        None => Vec::new(),
    };
    p["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let rule_id = r["id"].as_str().unwrap_or_default().to_owned();
            let mut entry = RuleEntry {
                citation: r["citation"].as_str().unwrap_or_default().to_owned(),
                on: r["on"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|k| labels.kind(k))
                    .collect::<Vec<_>>()
                    .join("、"),
                package: r["package"].as_str().unwrap_or_default().to_owned(),
                message: String::new(),
                fired: Vec::new(),
                not_fired: Vec::new(),
                id: rule_id.clone(),
            };
            let on: Vec<&str> = r["on"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for result in &results {
                let Some(decision) = &result.decision else {
                    continue;
                };
                if !on.is_empty() && !on.contains(&result.kind.as_str()) {
                    continue;
                }
                let case = CaseRow {
                    name: result.name.clone(),
                    outcome: outcome_zh(&result.outcome),
                };
                match decision.rules.iter().find(|f| f.id == rule_id) {
                    Some(fired) => {
                        if entry.message.is_empty() {
                            entry.message = fired.message.clone();
                        }
                        entry.fired.push(case);
                    }
                    None => entry.not_fired.push(case),
                }
            }
            entry.fired.truncate(5);
            entry.not_fired.truncate(5);
            entry
        })
        .collect()
}

pub async fn policy(State(state): State<ConsoleState>, user: User, Path(id): Path<String>) -> Page {
    policy_page(&state, &user, &id, None, String::new()).await
}

/// A candidate package (`xueji policy bundle` output) replayed against the history.
pub async fn impact(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Page {
    let upload = read_upload(multipart)
        .await
        .map_err(|m| error_page(Some(&user), &m))?;
    let csrf = upload.fields.get("csrf").cloned().unwrap_or_default();
    check_post(&state, &user, &headers, Some(&csrf))?;
    let api = Api::new(&state.api, &user);
    let answer = api
        .call(
            Method::POST,
            &format!("/v1/policies/{}/impact", seg(&id)),
            Some("application/json"),
            upload.file,
        )
        .await;
    if !answer.ok() {
        let message = answer.error_message();
        return policy_page(&state, &user, &id, None, message).await;
    }
    let r = answer.json();
    let labels = Labels::new();
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let view = ImpactView {
        replayed_events: r["replayed_events"].as_u64().unwrap_or_default(),
        replayed_requests: r["replayed_requests"].as_u64().unwrap_or_default(),
        by_outcome: r["by_outcome"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (outcome_zh(k), v.as_u64().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default(),
        rows: r["changed"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| ImpactRow {
                student: s(c, "student"),
                seq: c["seq"].as_u64().unwrap_or_default(),
                kind: labels.kind(&s(c, "kind")),
                school: s(c, "school"),
                before: outcome_zh(&s(c, "before")),
                after: outcome_zh(&s(c, "after")),
                rules: c["rules_changed"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("、"),
            })
            .collect(),
    };
    policy_page(&state, &user, &id, Some(view), String::new()).await
}
