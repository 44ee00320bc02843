//! Approval requests: lists, reading, approving and rejecting a step; deadline sweeps.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, require_role};
use super::routes::*;
use super::view::{Page, PageParams, decision_view};
use super::{AppState, blocking};
use crate::auth::{Role, TokenRecord, scope};
use crate::domain::{ApprovalRequest, ApprovalStep, Date, RequestStatus, School, Student};
use crate::engine::Xueji;

/// A request as `role` sees it: its decisions' messages masked against the student when the
/// role may not see all of them (`decided_on`; `None` for a role that sees everything).
pub(super) fn request_view(
    x: &Xueji,
    r: &ApprovalRequest,
    role: Role,
    decided_on: Option<&Student>,
) -> Value {
    let masked;
    let r = match decided_on {
        Some(student) => {
            masked = ApprovalRequest {
                decision: decision_view(r.decision.clone(), student, role),
                final_decision: r
                    .final_decision
                    .clone()
                    .map(|d| decision_view(d, student, role)),
                ..r.clone()
            };
            &masked
        }
        None => r,
    };
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("next_step".into(), json!(r.next_step()));
        // Each step with its clock (opened, due in working days, who acted when).
        o.insert(
            "steps".into(),
            crate::engine::clocks_json(&x.step_clocks(r)),
        );
        // The filed input may carry new personal values (key-information changes) until applied.
        if let Some(fields) = o
            .get_mut("input")
            .and_then(|i| i.get_mut("params"))
            .and_then(|p| p.get_mut("fields"))
            && let Some(f) = fields.as_object_mut()
        {
            for v in f.values_mut() {
                *v = json!("***");
            }
        }
    }
    v
}

/// [`request_view`], reading the request's student when the caller's role may not see all of it.
pub(super) fn request_view_for(x: &Xueji, r: &ApprovalRequest, role: Role) -> Value {
    let student = if role.visibility().everything() {
        None
    } else {
        x.find_student(&r.student).ok().flatten()
    };
    request_view(x, r, role, student.as_ref())
}

/// Loads a request the caller may see; otherwise 404.
pub(super) fn visible_request(
    x: &Xueji,
    c: &TokenRecord,
    id: &str,
) -> ApiResult<(ApprovalRequest, School, Option<School>)> {
    x.request_for(c, id)?
        .ok_or_else(|| ApiError::not_found("request", id))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RequestQuery {
    /// Default `pending`.
    #[param(schema_with = super::schema::request_status)]
    status: Option<RequestStatus>,
    school: Option<String>,
    jurisdiction: Option<String>,
    /// Only requests whose next step is this one.
    #[param(schema_with = super::schema::approval_step)]
    step: Option<ApprovalStep>,
    /// `true`: only requests with a step past its due date as of `as_of`; `false`: only those
    /// without.
    overdue: Option<bool>,
    /// The day `overdue` is judged on; default today (in the service's time zone).
    #[param(value_type = Option<String>, format = Date)]
    as_of: Option<Date>,
    /// Page size: default 100, at most 1000 (larger values are clamped).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/requests", tag = "requests", summary = "审批申请列表", params(RequestQuery), responses((status = 200, description = "OK", body = super::doc_types::RequestPage), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody)))]
pub(super) async fn list_requests(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<RequestQuery>,
) -> ApiResult<impl IntoResponse> {
    require_role(
        &c,
        &[
            Role::Admin,
            Role::DistrictOfficer,
            Role::SchoolLeader,
            Role::Registrar,
        ],
        "查看审批申请",
    )?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let (limit, after) = (page.limit(), page.after()?);
    let page = blocking(&state, move |x| -> ApiResult<Page<Value>> {
        let jur = match (&c.jurisdiction, &q.jurisdiction, &c.school) {
            // Another jurisdiction than the caller's own matches nothing (never their own rows).
            (Some(j), Some(asked), _) if asked != j => {
                return Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
            (Some(j), _, _) => j.clone(),
            (None, Some(j), _) => j.clone(),
            (None, None, Some(s)) => x
                .find_school(s)?
                .map(|s| s.jurisdiction)
                .unwrap_or_default(),
            _ => {
                return Err(ApiError::bad_request(
                    "required",
                    "jurisdiction",
                    "请指定 jurisdiction",
                ));
            }
        };
        let status = q.status.unwrap_or(RequestStatus::Pending);
        let overdue_on = q.as_of.unwrap_or_else(|| x.today());
        let mut rows = Vec::new();
        let mut cursor = after;
        for _ in 0..50 {
            let batch = x.requests_with_status(&jur, status, cursor.as_deref(), limit + 1)?;
            let exhausted = batch.len() <= limit;
            cursor = batch.last().map(|(k, _)| k.clone());
            for (k, r) in batch {
                let visible = visible_request(x, &c, &r.id).is_ok();
                let matches = q
                    .school
                    .as_deref()
                    .is_none_or(|s| r.school == s || r.receiving_school.as_deref() == Some(s))
                    && q.step.is_none_or(|st| r.next_step() == Some(st))
                    && q.overdue
                        .is_none_or(|want| x.overdue_step(&r, overdue_on).is_some() == want);
                if visible && matches {
                    rows.push((k, r));
                }
            }
            if exhausted || rows.len() > limit {
                break;
            }
        }
        let role = c.role;
        Ok(Page::from_rows(rows, limit, |r| {
            request_view_for(x, &r, role)
        }))
    })
    .await?;
    Ok(axum::Json(page))
}

#[utoipa::path(get, path = "/v1/requests/{id}", tag = "requests", summary = "查看审批申请", params(("id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::ApprovalRequest), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 400, description = "请求或字段无效", body = ErrorBody)))]
pub(super) async fn get_request(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let role = c.role;
    let view = blocking(&state, move |x| {
        visible_request(x, &c, &id).map(|(r, _, _)| request_view_for(x, &r, role))
    })
    .await?;
    Ok(axum::Json(view))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StepBody {
    #[schema(schema_with = super::schema::approval_step)]
    step: ApprovalStep,
    #[serde(default)]
    comment: Option<String>,
}

pub(super) async fn decide_request(
    state: AppState,
    c: TokenRecord,
    id: String,
    b: StepBody,
    approve: bool,
) -> ApiResult<Response> {
    let role = c.role;
    let (out, request, event) = blocking(&state, move |x| {
        let (_, school, receiving) = visible_request(x, &c, &id)?;
        if !scope::approve(&c, b.step, &school, receiving.as_ref()) {
            return Err(ApiError::forbidden(&format!("审批「{}」", b.step.zh())));
        }
        if approve {
            x.approve(&id, b.step, &actor(&c), b.comment)
                .map_err(ApiError::from)
        } else {
            let comment = b
                .comment
                .ok_or_else(|| ApiError::bad_request("required", "comment", "驳回须填写理由"))?;
            x.reject(&id, b.step, &actor(&c), comment)
                .map_err(ApiError::from)
        }
        .map(|out| {
            let request = request_view_for(x, &out.request, role);
            let event = out.event.clone().map(|mut e| {
                if let Some(student) = out.student.as_ref() {
                    e.decision = decision_view(e.decision, student, role);
                }
                e
            });
            (out, request, event)
        })
    })
    .await?;
    state.metrics.decision(out.outcome);
    let mut body = json!({ "request": request, "outcome": out.outcome });
    if let Some(e) = &event {
        body["event"] = json!(e);
    }
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

#[utoipa::path(post, path = "/v1/requests/{id}/approve", tag = "requests", summary = "审批通过一个环节", params(("id" = String, Path)), request_body = StepBody, responses((status = 200, description = "OK", body = super::doc_types::StepAnswer), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 409, description = "冲突(重复学籍、版本冲突、申请已办结)", body = ErrorBody), (status = 422, description = "政策不允许或政策执行失败", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
pub(super) async fn approve(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<StepBody>,
) -> ApiResult<Response> {
    decide_request(state, c, id, b, true).await
}

#[utoipa::path(post, path = "/v1/requests/{id}/reject", tag = "requests", summary = "驳回申请", params(("id" = String, Path)), request_body = StepBody, responses((status = 200, description = "OK", body = super::doc_types::StepAnswer), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 409, description = "冲突(重复学籍、版本冲突、申请已办结)", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
pub(super) async fn reject(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<StepBody>,
) -> ApiResult<Response> {
    decide_request(state, c, id, b, false).await
}

// ---- deadlines -------------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SweepBody {
    #[schema(value_type = String, format = Date)]
    as_of: Date,
    #[serde(default)]
    jurisdiction: Option<String>,
}

#[utoipa::path(post, path = "/v1/sweeps", tag = "deadlines", summary = "期限处理(如逾期未报到)", request_body = SweepBody, responses((status = 200, description = "OK", body = super::doc_types::SweepReport), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
pub(super) async fn sweep(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiJson(b): ApiJson<SweepBody>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, &[Role::Admin, Role::DistrictOfficer], "执行期限处理")?;
    let jurisdiction = match c.role {
        Role::DistrictOfficer => {
            if b.jurisdiction.is_some() && b.jurisdiction != c.jurisdiction {
                return Err(ApiError::not_found(
                    "jurisdiction",
                    b.jurisdiction.as_deref().unwrap_or(""),
                ));
            }
            c.jurisdiction.clone()
        }
        _ => b.jurisdiction,
    };
    if let Some(j) = &jurisdiction
        && state.xueji.policies().latest(j).is_none()
    {
        return Err(ApiError::not_found("jurisdiction", j));
    }
    // An area officer's sweep acts on the students of their area only.
    let sees_everything = c.role.visibility().everything();
    let mut report = blocking(&state, move |x| {
        x.sweep_in_scope(b.as_of, jurisdiction.as_deref(), |student, school| {
            scope::student(&c, student, school)
        })
    })
    .await?;
    if !sees_everything {
        // A script's error text may be built from any field of the student.
        for failure in &mut report.failed {
            failure.message = super::view::WITHHELD_MESSAGE.into();
        }
    }
    Ok(axum::Json(report))
}
