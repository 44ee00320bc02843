//! Batches (批量办理): a form for the registrar's year (`POST /v1/batches`), its dry-run report
//! shown in place, a batch's page with counts, paged items and the report files
//! (`GET /v1/batches/{id}`), and for the approving roles one form that approves a step for the
//! whole batch (`POST /v1/batches/{id}/approve`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum_extra::extract::Form;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ConsoleState;
use super::api::{Answer, Api, Failed, query, seg};
use super::pages::{Page, failed, pick_school, schools, zone};
use super::session::{User, check_post};
use super::views::*;
use crate::auth::Role;

/// The kinds a batch runs, in the order of the school year.
const KINDS: [&str; 7] = [
    "register",
    "semester_register",
    "promote",
    "change_class",
    "repeat_grade",
    "graduate",
    "complete",
];

/// Items on one page of a batch.
const PAGE_SIZE: usize = 50;

/// Who starts a batch (the API's rule for `POST /v1/batches`).
pub(super) fn may_start(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Registrar)
}

/// Who reads a batch (the API's rule for `GET /v1/batches/{id}`): the screen is in their menu.
pub(super) fn may_open(role: Role) -> bool {
    may_start(role) || may_approve(role)
}

/// Who approves a step for a whole batch (the API's rule for `…/approve`).
fn may_approve(role: Role) -> bool {
    matches!(
        role,
        Role::Admin | Role::SchoolLeader | Role::DistrictOfficer
    )
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct CountsView {
    pub applied: u64,
    pub pending: u64,
    pub denied: u64,
    pub skipped: u64,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct ItemRuleView {
    pub id: String,
    pub citation: String,
    pub message: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct BatchItemView {
    pub student: String,
    pub name: String,
    pub grade: u8,
    pub class: Option<String>,
    pub outcome: String,
    pub rules: Vec<ItemRuleView>,
    pub missing_documents: Vec<String>,
    pub request: Option<String>,
    pub reason: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct BatchView {
    pub id: String,
    pub kind: String,
    pub school: String,
    pub status: String,
    pub effective_date: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub total: u64,
    pub counts: CountsView,
    pub error: Option<String>,
    pub items: Vec<BatchItemView>,
    pub next_cursor: Option<String>,
}

/// An item as the report table shows it.
pub struct ItemRow {
    pub i: BatchItemView,
    pub outcome_zh: &'static str,
    pub ok: bool,
    pub class: String,
    pub missing: Vec<String>,
}

/// A dry run's `applied` is what would be done: nothing is.
fn outcome_zh(outcome: &str, dry_run: bool) -> &'static str {
    match outcome {
        "applied" if dry_run => "可办理",
        "applied" => "已办理",
        "pending" => "待审批",
        "denied" => "不予办理",
        "skipped" => "跳过",
        _ => "",
    }
}

fn status_zh(status: &str) -> &'static str {
    match status {
        "running" => "办理中",
        "done" => "已完成",
        "failed" => "失败",
        _ => "",
    }
}

fn rows(items: Vec<BatchItemView>, labels: &Labels, dry_run: bool) -> Vec<ItemRow> {
    items
        .into_iter()
        .map(|i| ItemRow {
            outcome_zh: outcome_zh(&i.outcome, dry_run),
            ok: matches!(i.outcome.as_str(), "applied" | "pending"),
            class: i.class.clone().unwrap_or_else(|| "—".into()),
            missing: i
                .missing_documents
                .iter()
                .map(|k| labels.document(k))
                .collect(),
            i,
        })
        .collect()
}

// ---- the form and its dry run ------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/batches.html")]
struct BatchesPage {
    layout: Layout,
    kinds: Vec<(String, String)>,
    schools: Vec<SchoolView>,
    school: String,
    documents: Vec<(String, String)>,
    may_start: bool,
    message: String,
}

/// The form for those who start batches; for everyone who reads them, a batch opened by its number.
pub async fn batches_form(State(state): State<ConsoleState>, user: User) -> Page {
    if !may_open(user.record.role) {
        return Err(failed(
            &user,
            Failed {
                status: StatusCode::FORBIDDEN,
                message: "本账号无权查看批量办理".into(),
            },
        ));
    }
    let api = Api::new(&state.api, &user);
    let visible = schools(&api).await;
    let labels = Labels::new();
    Ok(render(&BatchesPage {
        layout: Layout::for_user(&user, "批量办理", "/console/batches"),
        kinds: KINDS
            .iter()
            .map(|k| ((*k).to_owned(), labels.kind(k)))
            .collect(),
        school: pick_school("", &user, &visible),
        schools: visible,
        documents: labels
            .catalog()
            .document_kinds
            .iter()
            .map(|k| (k.code.into(), k.label.into()))
            .collect(),
        may_start: may_start(user.record.role),
        message: String::new(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct OpenQuery {
    id: String,
}

/// A batch by the number its registrar passed on (the API lists no batches).
pub async fn open(Query(q): Query<OpenQuery>) -> Redirect {
    match q.id.trim() {
        "" => Redirect::to("/console/batches"),
        id => Redirect::to(&format!("/console/batches/{}", seg(id))),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct BatchForm {
    csrf: String,
    kind: String,
    school: String,
    grade: String,
    class: String,
    effective_date: String,
    reason: String,
    documents: Vec<String>,
}

impl BatchForm {
    /// The API's body; a mistake in the form is the API's to report.
    fn body(&self) -> Value {
        let mut body = json!({
            "kind": self.kind, "school": self.school, "effective_date": self.effective_date.trim(),
        });
        let grade = self.grade.trim();
        if !grade.is_empty() {
            body["grade"] = grade
                .parse::<u64>()
                .map_or_else(|_| json!(grade), |g| json!(g));
        }
        for (key, value) in [("class", &self.class), ("reason", &self.reason)] {
            if !value.trim().is_empty() {
                body[key] = json!(value.trim());
            }
        }
        if !self.documents.is_empty() {
            let documents: Vec<Value> = self
                .documents
                .iter()
                .map(|kind| json!({ "kind": kind }))
                .collect();
            body["documents"] = json!(documents);
        }
        body
    }
}

/// A dry run's report (htmx swaps it in below the form).
#[derive(Template, Default)]
#[template(path = "console/batch_report.html")]
struct ReportPanel {
    counts: CountsView,
    rows: Vec<ItemRow>,
    message: String,
}

pub async fn dry_run(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<BatchForm>,
) -> Page {
    check_post(&state, &user, &headers, Some(&form.csrf))?;
    let api = Api::new(&state.api, &user);
    let answer = api
        .post_json("/v1/batches?dry_run=true", &form.body())
        .await;
    let panel = if answer.ok() {
        let report: BatchView = serde_json::from_slice(&answer.body).unwrap_or_default();
        ReportPanel {
            counts: report.counts,
            rows: rows(report.items, &Labels::new(), true),
            message: String::new(),
        }
    } else {
        ReportPanel {
            message: answer.error_message(),
            ..ReportPanel::default()
        }
    };
    Ok((htmx_status(&headers, &answer), render(&panel)).into_response())
}

/// htmx swaps only a 2xx answer in; a plain form post keeps the API's status.
fn htmx_status(headers: &HeaderMap, answer: &Answer) -> StatusCode {
    if headers.contains_key("hx-request") {
        StatusCode::OK
    } else {
        answer.status
    }
}

pub async fn start(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<BatchForm>,
) -> Page {
    check_post(&state, &user, &headers, Some(&form.csrf))?;
    let api = Api::new(&state.api, &user);
    let answer = api.post_json("/v1/batches", &form.body()).await;
    match answer.json()["id"].as_str() {
        Some(id) if answer.ok() => {
            Ok(Redirect::to(&format!("/console/batches/{}", seg(id))).into_response())
        }
        _ => Err(failed(
            &user,
            Failed {
                status: answer.status,
                message: answer.error_message(),
            },
        )),
    }
}

// ---- a batch -----------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/batch.html")]
struct BatchPage {
    layout: Layout,
    b: BatchView,
    kind_zh: String,
    status_zh: &'static str,
    school_name: String,
    created: String,
    finished: String,
    rows: Vec<ItemRow>,
    next: String,
    may_approve: bool,
    steps: Vec<(String, String)>,
    approval: String,
    message: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct BatchQuery {
    cursor: String,
}

async fn batch_page(
    state: &ConsoleState,
    user: &User,
    id: &str,
    cursor: &str,
    approval: String,
    message: String,
) -> Page {
    let api = Api::new(&state.api, user);
    let limit = PAGE_SIZE.to_string();
    let uri = format!(
        "/v1/batches/{}?{}",
        seg(id),
        query(&[("limit", &limit), ("cursor", cursor)])
    );
    // A role the API refuses gets the API's 403 or 404.
    let b: BatchView = api.get_as(&uri).await.map_err(|f| failed(user, f))?;
    let school_name = schools(&api)
        .await
        .into_iter()
        .find(|s| s.id == b.school)
        .map_or_else(|| b.school.clone(), |s| s.name);
    let labels = Labels::new();
    let tz = zone(state);
    let mut b = b;
    let items = std::mem::take(&mut b.items);
    Ok(render(&BatchPage {
        layout: Layout::for_user(user, "批量办理", "/console/batches"),
        kind_zh: labels.kind(&b.kind),
        status_zh: status_zh(&b.status),
        school_name,
        created: local_time(&b.created_at, tz),
        finished: b
            .finished_at
            .as_deref()
            .map(|t| local_time(t, tz))
            .unwrap_or_default(),
        rows: rows(items, &labels, false),
        next: b
            .next_cursor
            .as_deref()
            .map(|c| {
                format!(
                    "/console/batches/{}?{}",
                    seg(&b.id),
                    query(&[("cursor", c)])
                )
            })
            .unwrap_or_default(),
        may_approve: may_approve(user.record.role),
        steps: labels
            .catalog()
            .approval_steps
            .iter()
            .map(|k| (k.code.into(), k.label.into()))
            .collect(),
        approval,
        message,
        b,
    }))
}

pub async fn batch(
    State(state): State<ConsoleState>,
    user: User,
    Path(id): Path<String>,
    Query(q): Query<BatchQuery>,
) -> Page {
    batch_page(&state, &user, &id, &q.cursor, String::new(), String::new()).await
}

/// The report file, through the console so that the cookie signs it in.
pub async fn report(
    State(state): State<ConsoleState>,
    user: User,
    Path((id, format)): Path<(String, String)>,
) -> Page {
    let format = match format.as_str() {
        "report.csv" => "csv",
        "report.xlsx" => "xlsx",
        _ => {
            return Err(failed(
                &user,
                Failed {
                    status: StatusCode::NOT_FOUND,
                    message: "没有这个文件".into(),
                },
            ));
        }
    };
    let api = Api::new(&state.api, &user);
    let answer = api
        .get(&format!("/v1/batches/{}?format={format}", seg(&id)))
        .await;
    super::pages::download(&user, answer).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ApproveForm {
    csrf: String,
    step: String,
    comment: String,
}

/// Approves `step` of every pending request of the batch; the page shows the API's counts.
pub async fn approve(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ApproveForm>,
) -> Page {
    check_post(&state, &user, &headers, Some(&form.csrf))?;
    let api = Api::new(&state.api, &user);
    let mut body = json!({ "step": form.step });
    if !form.comment.trim().is_empty() {
        body["comment"] = json!(form.comment.trim());
    }
    let answer = api
        .post_json(&format!("/v1/batches/{}/approve", seg(&id)), &body)
        .await;
    if !answer.ok() {
        let page = batch_page(
            &state,
            &user,
            &id,
            "",
            String::new(),
            answer.error_message(),
        )
        .await;
        let page = page.unwrap_or_else(|e| e);
        return Ok((answer.status, page).into_response());
    }
    let c = answer.json();
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    let approval = format!(
        "本环节已整批审批:办结 {} 名,转下一环节 {} 名,不予办理 {} 名,跳过 {} 名",
        n("applied"),
        n("approved"),
        n("denied"),
        n("skipped")
    );
    batch_page(&state, &user, &id, "", approval, String::new()).await
}
