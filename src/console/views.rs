//! What the pages show: the API's answers read into typed views (missing fields default, so a
//! field the API withholds from a role is simply absent), the templates, and labels in Chinese.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::session::User;
use crate::auth::Role;
use crate::codes::{Catalog, Code};

// ---- labels ----------------------------------------------------------------------------

fn label_in(list: &[Code], key: &str) -> String {
    list.iter()
        .find(|c| c.code == key)
        .map_or_else(|| key.to_owned(), |c| c.label.to_owned())
}

/// The Chinese labels of codes (`GET /v1/codes`, from the same table).
pub struct Labels(Catalog);

impl Labels {
    pub fn new() -> Self {
        Labels(crate::codes::catalog())
    }
    pub fn kind(&self, key: &str) -> String {
        label_in(&self.0.transition_kinds, key)
    }
    pub fn status(&self, key: &str) -> String {
        label_in(&self.0.statuses, key)
    }
    pub fn document(&self, key: &str) -> String {
        label_in(&self.0.document_kinds, key)
    }
    pub fn step(&self, key: &str) -> String {
        label_in(&self.0.approval_steps, key)
    }
    pub fn catalog(&self) -> &Catalog {
        &self.0
    }
}

/// A recorded instant (RFC 3339) as a date and time in the service's time zone.
pub fn local_time(rfc3339: &str, zone: chrono_tz::Tz) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_owned(),
        |t| t.with_timezone(&zone).format("%Y-%m-%d %H:%M").to_string(),
    )
}

pub fn effect_zh(effect: &str) -> &'static str {
    match effect {
        "deny" => "不允许",
        "require" => "需材料",
        "approve" => "需审批",
        "change" => "变更",
        "deadline" => "期限",
        "allow" => "允许",
        _ => "说明",
    }
}

// ---- views of API answers --------------------------------------------------------------

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct GuardianView {
    pub name: String,
    pub relation: String,
    pub phone: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct DeadlineView {
    pub kind: String,
    pub date: String,
    pub on_expiry: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct StudentView {
    pub id: String,
    pub national_id: String,
    pub id_card: Option<String>,
    pub name: String,
    pub gender: String,
    pub birth_date: String,
    pub school: String,
    pub jurisdiction: String,
    pub grade: u8,
    pub class: Option<String>,
    pub status: String,
    pub status_zh: String,
    pub version: u64,
    pub entry_date: String,
    pub deadlines: Vec<DeadlineView>,
    pub guardians: Vec<GuardianView>,
    pub flags: Vec<String>,
    /// Absent for roles that may not see it.
    pub extra: Option<Map<String, Value>>,
    pub school_name: Option<String>,
    pub last_event_date: Option<String>,
}

impl StudentView {
    pub fn gender_zh(&self) -> &'static str {
        match self.gender.as_str() {
            "male" => "男",
            "female" => "女",
            _ => "",
        }
    }
    pub fn class_text(&self) -> String {
        self.class.clone().unwrap_or_else(|| "—".into())
    }
    pub fn extra_rows(&self) -> Vec<(String, String)> {
        self.extra
            .iter()
            .flatten()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                (k.clone(), text)
            })
            .collect()
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct RuleView {
    pub id: String,
    pub effect: String,
    pub citation: String,
    pub message: String,
}

impl RuleView {
    pub fn effect_zh(&self) -> &'static str {
        effect_zh(&self.effect)
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct PolicyRefView {
    pub jurisdiction: String,
    pub version: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct DecisionView {
    pub allowed: bool,
    pub policy: PolicyRefView,
    pub rules: Vec<RuleView>,
    pub required_documents: Vec<String>,
    pub missing_documents: Option<Vec<String>>,
    pub approvals: Vec<String>,
    pub deadlines: Vec<DeadlineView>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct FactsView {
    pub status: String,
    pub school: String,
    pub grade: u8,
    pub class: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct ActorView {
    pub id: String,
    pub role: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct DocumentView {
    pub kind: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct InputView {
    pub kind: String,
    pub effective_date: String,
    pub reason: Option<String>,
    pub documents: Vec<DocumentView>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct EventView {
    pub seq: u64,
    pub kind: String,
    pub effective_date: String,
    pub recorded_at: String,
    pub actor: ActorView,
    pub before: Option<FactsView>,
    pub after: FactsView,
    pub input: InputView,
    pub decision: DecisionView,
    pub request: Option<String>,
    pub hash: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct ApprovalView {
    pub step: String,
    pub approved: bool,
    pub actor: ActorView,
    pub comment: Option<String>,
    pub at: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct RequestView {
    pub id: String,
    pub student: String,
    pub school: String,
    pub receiving_school: Option<String>,
    pub input: InputView,
    pub steps: Vec<StepView>,
    pub approvals: Vec<ApprovalView>,
    pub status: String,
    pub opened_at: String,
    pub decision: DecisionView,
    pub next_step: Option<String>,
}

/// A request's step with its clock (`GET /v1/requests`).
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct StepView {
    pub step: String,
    /// `approved`, `rejected`, `pending`, `waiting`, `expired`, `closed`.
    pub status: String,
    pub opened: Option<String>,
    pub due: Option<String>,
    pub due_estimated: bool,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct BadEventView {
    pub seq: u64,
    pub code: String,
    pub message: String,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct ChainView {
    pub ok: bool,
    pub events: u64,
    pub first_bad: Option<BadEventView>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct SchoolView {
    pub id: String,
    pub name: String,
    pub jurisdiction: String,
    pub area: Option<String>,
}

// ---- the frame of every page -------------------------------------------------------------

pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub active: bool,
}

pub struct Layout {
    pub title: String,
    pub signed_in: bool,
    pub who: String,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    pub htmx: &'static str,
}

/// The screens a role has, in the menu. The API still decides what each one shows.
fn screens(role: Role) -> Vec<(&'static str, &'static str)> {
    use Role::*;
    let mut s = vec![("/console/students", "学生")];
    if matches!(role, Admin | Registrar) {
        s.push(("/console/students/new", "录取建档"));
    }
    if matches!(role, Admin | DistrictOfficer | SchoolLeader | Registrar) {
        s.push(("/console/inbox", "审批"));
        s.push(("/console/problems", "问题学籍"));
    }
    if matches!(role, Admin | Registrar) {
        s.push(("/console/import", "批量导入"));
    }
    if super::batches::may_open(role) {
        s.push(("/console/batches", "批量办理"));
    }
    if matches!(role, Admin | DistrictOfficer | SchoolLeader | Registrar) {
        s.push(("/console/rosters", "名册"));
        s.push(("/console/stats", "统计"));
    }
    if matches!(role, Admin | DistrictOfficer) {
        s.push(("/console/policies", "政策"));
    }
    s
}

impl Layout {
    pub fn anonymous(title: &str) -> Layout {
        Layout {
            title: title.into(),
            signed_in: false,
            who: String::new(),
            csrf: String::new(),
            nav: Vec::new(),
            htmx: super::HTMX_PATH,
        }
    }

    pub fn for_user(user: &User, title: &str, current: &str) -> Layout {
        let r = &user.record;
        let nav = screens(r.role)
            .into_iter()
            .map(|(href, label)| NavItem {
                href,
                label,
                active: href == current,
            })
            .collect();
        let mut who = vec![r.role.zh().to_owned()];
        who.extend(r.label.iter().map(|l| format!("({l})")));
        for (name, value) in [
            ("辖区", &r.jurisdiction),
            ("区县", &r.area),
            ("学校", &r.school),
            ("班级", &r.class),
            ("学生", &r.student),
        ] {
            if let Some(v) = value {
                who.push(format!(" · {name} {v}"));
            }
        }
        Layout {
            title: title.into(),
            signed_in: true,
            who: who.concat(),
            csrf: user.csrf.clone(),
            nav,
            htmx: super::HTMX_PATH,
        }
    }
}

pub fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "页面生成失败").into_response()
        }
    }
}

// ---- templates -------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub message: String,
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub message: String,
}

pub fn error_page(user: Option<&User>, message: &str) -> Response {
    let layout = match user {
        Some(u) => Layout::for_user(u, "出错了", ""),
        None => Layout::anonymous("出错了"),
    };
    render(&ErrorPage {
        layout,
        message: message.into(),
    })
}
