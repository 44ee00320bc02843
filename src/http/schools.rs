//! Schools: create and read (`/v1/schools`, `/v1/schools/{id}`); the list is in `catalog`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, Caller, require_role};
use super::{AppState, blocking};
use crate::auth::{Role, TokenRecord, scope};
use crate::domain::{Level, School, Term};
use crate::engine::Xueji;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SchoolBody {
    id: String,
    name: String,
    jurisdiction: String,
    #[serde(default)]
    area: Option<String>,
    #[schema(schema_with = super::schema::level)]
    level: Level,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    calendar: Vec<Term>,
}

#[utoipa::path(post, path = "/v1/schools", tag = "schools", summary = "创建学校", request_body = SchoolBody, responses((status = 201, description = "已办理 applied / created", body = super::doc_types::School), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 409, description = "冲突(重复学籍、版本冲突、申请已办结)", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
pub(super) async fn create_school(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiJson(b): ApiJson<SchoolBody>,
) -> ApiResult<Response> {
    require_role(&c, &[Role::Admin, Role::DistrictOfficer], "创建学校")?;
    let school = School {
        id: b.id,
        name: b.name,
        jurisdiction: b.jurisdiction,
        area: b.area,
        level: b.level,
        kind: b.kind,
        calendar: b.calendar,
    };
    if !scope::school(&c, &school) {
        return Err(ApiError::forbidden("在本辖区以外创建学校"));
    }
    let created = blocking(&state, move |x| x.create_school(school)).await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// Who reads schools: everyone but a guardian (whose scope holds no school, `scope::school`).
pub(super) const SCHOOL_READERS: [Role; 5] = [
    Role::Admin,
    Role::DistrictOfficer,
    Role::SchoolLeader,
    Role::Registrar,
    Role::HeadTeacher,
];

/// Loads a school the caller may see; otherwise 404, whether it exists or not.
pub(super) fn visible_school(x: &Xueji, c: &TokenRecord, id: &str) -> ApiResult<School> {
    x.school_for(c, id)?
        .ok_or_else(|| ApiError::not_found("school", id))
}

#[utoipa::path(get, path = "/v1/schools/{id}", tag = "schools", summary = "查看学校", params(("id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::School), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 400, description = "请求或字段无效", body = ErrorBody)))]
pub(super) async fn get_school(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, &SCHOOL_READERS, "查看学校")?;
    let school = blocking(&state, move |x| visible_school(x, &c, &id)).await?;
    Ok(axum::Json(school))
}
