//! What a user interface needs before it shows anything: the codes with their Chinese labels
//! (`GET /v1/codes`) and the schools the caller may pick from (`GET /v1/schools`).

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::doc_types;
use super::error::{ApiResult, ErrorBody};
use super::extract::{ApiQuery, Caller, require_role};
use super::view::{Page, PageParams};
use super::{AppState, blocking};
use crate::auth::{Role, scope};
use crate::domain::{Level, School};

/// Schemas the document names only through a `$ref` built by hand (no `body =` reaches them).
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(doc_types::StudentRef)))]
struct CatalogDoc;

pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    OpenApiRouter::with_openapi(CatalogDoc::openapi())
        .routes(routes!(codes))
        .routes(routes!(list_schools))
        .split_for_parts()
}

/// The catalogue changes only with the binary: encoded once, with its ETag.
fn encoded_catalog() -> &'static (Vec<u8>, String) {
    static CATALOG: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let body = serde_json::to_vec(&crate::codes::catalog()).unwrap_or_default();
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&body)[..16]));
        (body, etag)
    })
}

/// Whether `If-None-Match` names `etag` (or `*`): the client's copy is current.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

#[utoipa::path(get, path = "/v1/codes", tag = "codes", summary = "全部代码及中文名称(状态、变动类别与学籍变动代码、原因、证明材料、审批环节、问题学籍类别、错误码);可缓存(ETag)", security(()), responses((status = 200, description = "OK", body = doc_types::Codes, headers(("ETag" = String, description = "随版本变化"), ("Cache-Control" = String))), (status = 304, description = "未变化(If-None-Match)")))]
async fn codes(headers: HeaderMap) -> Response {
    let (body, etag) = encoded_catalog();
    let cache = [
        (header::ETAG, HeaderValue::from_str(etag).ok()),
        (
            header::CACHE_CONTROL,
            Some(HeaderValue::from_static("public, max-age=3600")),
        ),
    ];
    let mut response = if not_modified(&headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
    };
    for (name, value) in cache {
        if let Some(v) = value {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SchoolQuery {
    /// Jurisdiction id (an officer's own; another matches nothing).
    jurisdiction: Option<String>,
    /// Area (区/县) within the jurisdiction.
    area: Option<String>,
    #[param(schema_with = super::schema::level)]
    level: Option<Level>,
    /// Page size: default 100, at most 1000 (larger values are clamped).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/schools", tag = "schools", summary = "学校列表(管理员全部;教育局本辖区或本区县;学校人员本校;监护人无权)。筛选条件超出权限范围时返回空列表", params(SchoolQuery), responses((status = 200, description = "OK", body = doc_types::SchoolPage), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody)))]
async fn list_schools(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<SchoolQuery>,
) -> ApiResult<impl IntoResponse> {
    // A guardian has no school in their scope (`scope::school`), as for `GET /v1/schools/{id}`.
    require_role(&c, &super::schools::SCHOOL_READERS, "查看学校列表")?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let (limit, after) = (page.limit(), page.after()?);
    let page = blocking(&state, move |x| -> ApiResult<Page<School>> {
        // The filters narrow the caller's scope, never widen it: one outside it matches nothing.
        let keep = |s: &School| {
            scope::school(&c, s)
                && q.jurisdiction.as_ref().is_none_or(|j| *j == s.jurisdiction)
                && q.area.as_ref().is_none_or(|a| s.area.as_ref() == Some(a))
                && q.level.is_none_or(|l| s.level == l)
        };
        let rows = match (c.role, &c.school) {
            // Staff of one school: that school, read directly.
            (Role::SchoolLeader | Role::Registrar | Role::HeadTeacher, own) => {
                let own = own.clone().unwrap_or_default();
                let past_cursor = after.as_deref().is_some_and(|a| own.as_str() <= a);
                match x.find_school(&own)? {
                    Some(s) if !past_cursor && keep(&s) => vec![(own, s)],
                    _ => Vec::new(),
                }
            }
            _ => x.schools_page(after.as_deref(), limit + 1, keep)?,
        };
        Ok(Page::from_rows(rows, limit, |s| s))
    })
    .await?;
    Ok(axum::Json(page))
}
