//! Bearer tokens: issuing, listing and revoking, under the engine's token rules.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, require_role};
use super::view::{Page, PageParams};
use super::{AppState, blocking};
use crate::auth::Role;
use crate::engine::TokenRequest;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    #[schema(schema_with = super::schema::role)]
    role: Role,
    #[serde(default)]
    jurisdiction: Option<String>,
    #[serde(default)]
    area: Option<String>,
    #[serde(default)]
    school: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    student: Option<String>,
    #[serde(default)]
    label: Option<String>,
    /// The token is refused from then on: RFC 3339, or a date (valid through that day, China time).
    #[serde(default)]
    expires_at: Option<String>,
}

#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", summary = "签发令牌(只显示一次)", request_body = TokenBody, responses((status = 201, description = "已办理 applied / created", body = super::doc_types::CreatedToken), (status = 400, description = "请求或字段无效;学校、学生不存在或不在权限范围内(两者同一答复)", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
pub(super) async fn create_token(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiJson(b): ApiJson<TokenBody>,
) -> ApiResult<Response> {
    require_role(&c, &[Role::Admin, Role::DistrictOfficer], "创建令牌")?;
    let request = TokenRequest {
        role: b.role,
        jurisdiction: b.jurisdiction,
        area: b.area,
        school: b.school,
        class: b.class,
        student: b.student,
        label: b.label,
        expires_at: b.expires_at,
    };
    let (token, record) = blocking(&state, move |x| x.issue_token(&c, request)).await?;
    let mut body = serde_json::to_value(&record).unwrap_or(Value::Null);
    // Shown once: a replay of this answer (`Idempotency-Key`) withholds it, so it is never stored.
    body["token"] = Value::Null;
    body["token_withheld"] = json!(true);
    let withheld =
        super::idempotency::StoredAs(serde_json::to_vec(&body).unwrap_or_default().into());
    body["token"] = json!(token);
    body["token_withheld"] = json!(false);
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    response.extensions_mut().insert(withheld);
    Ok(response)
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", summary = "令牌列表(管理员全部;教育局本辖区;不含令牌本身)", params(PageParams), responses((status = 200, description = "OK:items 为令牌记录(id、role、范围、label、created_at、expires_at、revoked),不含令牌本身", body = super::doc_types::TokenPage), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody)))]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, &[Role::Admin, Role::DistrictOfficer], "查看令牌")?;
    let after = q.after()?;
    let limit = q.limit();
    let rows = blocking(&state, move |x| {
        x.list_tokens(&c, after.as_deref(), limit + 1)
    })
    .await?;
    Ok(axum::Json(Page::from_rows(rows, limit, |r| r)))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", summary = "吊销令牌", params(("id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::TokenRecord), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 400, description = "请求或字段无效", body = ErrorBody)))]
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, &[Role::Admin, Role::DistrictOfficer], "吊销令牌")?;
    let record = blocking(&state, move |x| x.revoke_token(&c, &id)).await?;
    Ok(axum::Json(record))
}
