//! Problem records (问题学籍): the list a role may see (`GET /v1/problems`) and, for the roles
//! that may settle them, a resolve form per open record whose answer (applied, pending, denied
//! with the rules) is shown in place (`POST /v1/problems/{id}/resolve`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum_extra::extract::Form;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::ConsoleState;
use super::api::{Answer, Api, query, seg};
use super::pages::{Page, failed, zone};
use super::session::{User, check_post};
use super::views::*;
use crate::auth::Role;

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct ProblemView {
    pub id: String,
    pub kind: String,
    pub student: String,
    pub school: String,
    pub other_schools: Vec<String>,
    pub opened: String,
    pub opened_at: String,
    pub details: Map<String, Value>,
    pub status: String,
    pub resolution: Option<Map<String, Value>>,
}

struct ProblemItem {
    p: ProblemView,
    kind_zh: String,
    student_name: String,
    school_name: String,
    details: Vec<(String, String)>,
    resolution: String,
}

#[derive(Template)]
#[template(path = "console/problems.html")]
struct ProblemsPage {
    layout: Layout,
    filter: ProblemFilter,
    kinds: Vec<(String, String)>,
    documents: Vec<(String, String)>,
    items: Vec<ProblemItem>,
    may_resolve: bool,
    message: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ProblemFilter {
    kind: String,
    status: String,
}

fn detail_key_zh(key: &str) -> String {
    match key {
        "field" => "重复字段",
        "holding_school" => "持有学籍学校",
        "refused_school" => "被拒绝录取学校",
        "national_id_kind" => "学籍号类型",
        "deadline" => "期限类别",
        "date" => "期限日期",
        "status" => "状态",
        "forfeited_here" => "本校学位已作废",
        "request" => "申请",
        "kind" => "变动类别",
        "step" => "审批环节",
        "opened" => "环节开始",
        "due" => "办理期限",
        other => other,
    }
    .to_owned()
}

fn action_zh(action: &str) -> &'static str {
    match action {
        "delete" => "删除",
        "confirm" => "佐证",
        "correct" => "变更",
        _ => "处理",
    }
}

pub async fn problems(
    State(state): State<ConsoleState>,
    user: User,
    Query(filter): Query<ProblemFilter>,
) -> Page {
    let api = Api::new(&state.api, &user);
    let uri = format!(
        "/v1/problems?{}",
        query(&[("kind", &filter.kind), ("status", &filter.status)])
    );
    // A role the API refuses (head teacher, guardian) gets the API's 403, not an empty list.
    let list = api
        .get_as::<super::views::Page<ProblemView>>(&uri)
        .await
        .map_err(|f| failed(&user, f))?;
    let schools: Vec<SchoolView> = api
        .get_as::<super::views::Page<SchoolView>>("/v1/schools?limit=1000")
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    let school_name = |id: &str| {
        schools
            .iter()
            .find(|s| s.id == id)
            .map_or_else(|| id.to_owned(), |s| s.name.clone())
    };
    let labels = Labels::new();
    let c = labels.catalog();
    let kind_zh = |k: &str| {
        c.problem_kinds
            .iter()
            .find(|code| code.code == k)
            .map_or_else(|| k.to_owned(), |code| code.label.to_owned())
    };
    let tz = zone(&state);
    let mut items = Vec::new();
    for p in list.items {
        let student_name = api
            .get_as::<StudentView>(&format!("/v1/students/{}", seg(&p.student)))
            .await
            .map(|s| s.name)
            .unwrap_or_else(|_| p.student.clone());
        let details = p
            .details
            .iter()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (detail_key_zh(k), text)
            })
            .collect();
        let resolution = p.resolution.as_ref().map_or_else(String::new, |r| {
            let action = action_zh(r.get("action").and_then(Value::as_str).unwrap_or(""));
            let comment = r.get("comment").and_then(Value::as_str).unwrap_or("");
            let at = r
                .get("at")
                .and_then(Value::as_str)
                .map(|t| local_time(t, tz))
                .unwrap_or_default();
            match r.get("outcome").and_then(Value::as_str) {
                Some("pending") => format!("{action}已提交,待审批({comment})"),
                _ => format!("已{action}({comment}) {at}"),
            }
        });
        items.push(ProblemItem {
            kind_zh: kind_zh(&p.kind),
            school_name: school_name(&p.school),
            student_name,
            details,
            resolution,
            p,
        });
    }
    Ok(render(&ProblemsPage {
        layout: Layout::for_user(&user, "问题学籍", "/console/problems"),
        kinds: c
            .problem_kinds
            .iter()
            .map(|k| (k.code.into(), k.label.into()))
            .collect(),
        documents: c
            .document_kinds
            .iter()
            .map(|k| (k.code.into(), k.label.into()))
            .collect(),
        may_resolve: matches!(user.record.role, Role::Admin | Role::Registrar),
        filter,
        items,
        message: String::new(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ResolveForm {
    csrf: String,
    action: String,
    comment: String,
    documents: Vec<String>,
    name: String,
    gender: String,
    birth_date: String,
    id_card: String,
    national_id: String,
}

impl ResolveForm {
    /// The API's body; a mistake in the form is the API's to report.
    fn body(&self) -> Value {
        let documents: Vec<Value> = self
            .documents
            .iter()
            .map(|kind| json!({ "kind": kind }))
            .collect();
        let mut body = json!({
            "action": self.action, "comment": self.comment.trim(), "documents": documents,
        });
        if self.action == "correct" {
            let mut fields = Map::new();
            for (key, value) in [
                ("name", &self.name),
                ("gender", &self.gender),
                ("birth_date", &self.birth_date),
                ("id_card", &self.id_card),
                ("national_id", &self.national_id),
            ] {
                if !value.trim().is_empty() {
                    fields.insert(key.into(), json!(value.trim()));
                }
            }
            body["fields"] = Value::Object(fields);
        }
        body
    }
}

/// The API's answer to a resolution, as the item shows it (htmx swaps it in).
#[derive(Template, Default)]
#[template(path = "console/resolve.html")]
struct ResolvePanel {
    outcome: String,
    ok: bool,
    request: String,
    rules: Vec<RuleView>,
    missing: Vec<String>,
    message: String,
}

impl ResolvePanel {
    fn of(answer: &Answer) -> ResolvePanel {
        let labels = Labels::new();
        let body = answer.json();
        let decision = serde_json::from_value::<DecisionView>(body["decision"].clone())
            .ok()
            .filter(|_| body.get("decision").is_some());
        let outcome = body["outcome"].as_str().unwrap_or_default();
        let (text, ok) = match (answer.ok(), outcome) {
            (true, "applied") => ("已办理,问题学籍已处理", true),
            (true, "pending") => ("已提交,待审批通过后处理", true),
            _ if decision.as_ref().is_some_and(|d| !d.allowed) => ("政策不允许", false),
            _ => ("未能处理", false),
        };
        let decision = decision.unwrap_or_default();
        ResolvePanel {
            outcome: text.into(),
            ok,
            request: body["request"]["id"].as_str().unwrap_or_default().into(),
            missing: decision
                .missing_documents
                .iter()
                .flatten()
                .map(|k| labels.document(k))
                .collect(),
            rules: decision.rules,
            message: if answer.ok() {
                String::new()
            } else {
                answer.error_message()
            },
        }
    }
}

pub async fn resolve(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ResolveForm>,
) -> Page {
    check_post(&state, &user, &headers, Some(&form.csrf))?;
    let api = Api::new(&state.api, &user);
    let answer = api
        .post_json(&format!("/v1/problems/{}/resolve", seg(&id)), &form.body())
        .await;
    // htmx swaps only a 2xx answer in; a plain form post keeps the API's status.
    let status = if headers.contains_key("hx-request") {
        StatusCode::OK
    } else {
        answer.status
    };
    Ok((status, render(&ResolvePanel::of(&answer))).into_response())
}
