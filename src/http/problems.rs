//! Problem records (问题学籍): `GET /v1/problems`, `POST /v1/problems/{id}/resolve`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, require_role};
use super::students::outcome_body;
use super::view::{Page, PageParams};
use super::{AppState, blocking};
use crate::auth::{Role, TokenRecord, scope};
use crate::domain::problem::{Problem, ProblemKind, ProblemStatus, ResolveAction};
use crate::domain::{Actor, Document, School};
use crate::engine::{ResolveRequest, Xueji};

/// Whether the caller has any school the problem concerns (its own, or one it names).
fn visible(
    x: &Xueji,
    c: &TokenRecord,
    p: &Problem,
    schools: &mut HashMap<String, Option<School>>,
) -> bool {
    std::iter::once(&p.school)
        .chain(p.other_schools.iter())
        .any(|id| {
            let school = schools
                .entry(id.clone())
                .or_insert_with(|| x.find_school(id).ok().flatten());
            school.as_ref().is_some_and(|s| scope::school(c, s))
        })
}

/// A problem as answered: everything but its internal key.
fn problem_view(p: &Problem) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("key");
    }
    v
}

const READERS: &[Role] = &[
    Role::Admin,
    Role::DistrictOfficer,
    Role::SchoolLeader,
    Role::Registrar,
];

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ProblemQuery {
    school: Option<String>,
    jurisdiction: Option<String>,
    #[param(value_type = Option<String>)]
    kind: Option<ProblemKind>,
    /// `open` or `resolved`; default both.
    #[param(value_type = Option<String>)]
    status: Option<ProblemStatus>,
    /// Page size: default 100, at most 1000 (larger values are clamped).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/problems", tag = "problems", summary = "问题学籍列表(重复学籍、临时学籍号、逾期未报到、审批逾期)", params(ProblemQuery), responses((status = 200, description = "OK", body = super::doc_types::ProblemPage), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody)))]
pub(super) async fn list_problems(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<ProblemQuery>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, READERS, "查看问题学籍")?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let (limit, after) = (page.limit(), page.after()?);
    let page = blocking(&state, move |x| -> ApiResult<Page<Value>> {
        let mut schools = HashMap::new();
        let rows = x.problems(after.as_deref(), limit + 1, |p| {
            q.kind.is_none_or(|k| p.kind == k)
                && q.status.is_none_or(|s| p.status == s)
                && q.jurisdiction
                    .as_deref()
                    .is_none_or(|j| p.jurisdiction == j)
                && q.school
                    .as_deref()
                    .is_none_or(|s| p.school == s || p.other_schools.iter().any(|o| o == s))
                && visible(x, &c, p, &mut schools)
        })?;
        Ok(Page::from_rows(rows, limit, |p| problem_view(&p)))
    })
    .await?;
    Ok(axum::Json(page))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResolveBody {
    /// `delete` (删除: cancel the enrolment), `confirm` (佐证: keep it, with proof), `correct`
    /// (变更: change key information, with proof).
    #[schema(value_type = String)]
    action: ResolveAction,
    comment: String,
    #[serde(default)]
    #[schema(value_type = Vec<super::doc_types::Document>)]
    documents: Vec<Document>,
    /// The new key information, for `correct`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    fields: Option<Map<String, Value>>,
}

#[utoipa::path(post, path = "/v1/problems/{id}/resolve", tag = "problems", summary = "处理问题学籍:删除、佐证或变更,经政策决定并记入学籍历史", params(("id" = String, Path)), request_body = ResolveBody, responses((status = 201, description = "已办理 applied", body = super::doc_types::ResolveAnswer), (status = 202, description = "待审批 pending", body = super::doc_types::ResolveAnswer), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 409, description = "冲突(已处理、重复学籍、版本冲突)", body = ErrorBody), (status = 422, description = "政策不允许或政策执行失败", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
pub(super) async fn resolve_problem(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<ResolveBody>,
) -> ApiResult<Response> {
    require_role(&c, &[Role::Admin, Role::Registrar], "处理问题学籍")?;
    let role = c.role;
    let sees_everything = role.visibility().everything();
    let st = state.clone();
    let (status, body) = blocking(&state, move |x| -> ApiResult<_> {
        let not_found = || ApiError::not_found("problem", &id);
        let problem = x.find_problem(&id)?;
        match &problem {
            Some(p) if visible(x, &c, p, &mut HashMap::new()) => {}
            _ => return Err(not_found()),
        }
        let decided_on = std::cell::RefCell::new(None);
        let actor = Actor {
            id: c.id.clone(),
            role: c.role.as_str().into(),
        };
        let request = ResolveRequest {
            action: b.action,
            comment: b.comment,
            documents: b.documents,
            fields: b.fields,
        };
        let (problem, outcome) = x
            .resolve_problem(&id, request, &actor, |student, school| {
                let in_scope = scope::student(&c, student, school);
                if in_scope && !sees_everything {
                    decided_on.replace(Some(student.clone()));
                }
                in_scope
            })
            .map_err(ApiError::from)?;
        let decided_on = decided_on.into_inner();
        let (status, mut body) = outcome_body(&st, outcome, role, decided_on.as_ref());
        body["problem"] = problem_view(&problem);
        Ok((status, body))
    })
    .await?;
    Ok((status, axum::Json(body)).into_response())
}
