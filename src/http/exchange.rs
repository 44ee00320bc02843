//! Rosters, statistics and bulk import (`docs/exchange.md`). Thin: authenticate, check role and
//! scope, call `crate::exchange` on the blocking pool, shape the answer.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiPath, ApiQuery, Caller, require_role};
use super::view::{Page, PageParams};
use super::{AppState, blocking};
use crate::auth::{Role, TokenRecord, scope};
use crate::domain::{Actor, Date, School};
use crate::engine::Xueji;
use crate::engine::import::{ImportOptions, import};
use crate::engine::roster::{RosterKind, RosterQuery, roster};
use crate::engine::stats::{StatsScope, stats};
use crate::exchange::FileFormat;

/// Largest import file (413 above). Other routes keep the global limit.
pub const IMPORT_BODY_LIMIT: usize = 20 * 1024 * 1024;

/// The routes of this module, with their OpenAPI document.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (reads, mut doc) = OpenApiRouter::new()
        .routes(routes!(get_roster))
        .routes(routes!(get_stats))
        .split_for_parts();
    let (imports, import_doc) = OpenApiRouter::new()
        .routes(routes!(import_students))
        .split_for_parts();
    doc.merge(import_doc);
    let imports = imports.layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT));
    (reads.merge(imports), doc)
}

fn visible_school(x: &Xueji, c: &TokenRecord, id: &str) -> ApiResult<School> {
    match x.find_school(id)? {
        Some(s) if scope::school(c, &s) => Ok(s),
        _ => Err(ApiError::not_found("school", id)),
    }
}

const READERS: &[Role] = &[
    Role::Admin,
    Role::DistrictOfficer,
    Role::SchoolLeader,
    Role::Registrar,
];

// ---- rosters ---------------------------------------------------------------------------

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, strum::EnumIter, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
enum RosterFormat {
    #[default]
    Json,
    Csv,
    Xlsx,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RosterParams {
    /// Default `current`.
    #[serde(default)]
    #[param(schema_with = super::schema::roster_kind)]
    kind: RosterKind,
    year: Option<i32>,
    /// The roster's date: default today, or the end of `year` if earlier.
    #[param(value_type = Option<String>, format = Date)]
    as_of: Option<Date>,
    /// Only this grade (as placed on the roster's date).
    grade: Option<u8>,
    /// Only this class (as placed on the roster's date).
    class: Option<String>,
    /// Default `json`.
    #[serde(default)]
    #[param(schema_with = roster_format)]
    format: RosterFormat,
    /// JSON only. Page size: default 100, at most 1000 (larger values are clamped).
    limit: Option<usize>,
    /// JSON only: `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn roster_format() -> utoipa::openapi::schema::Object {
    super::schema::enum_of::<RosterFormat>()
}

#[utoipa::path(get, path = "/v1/schools/{id}/roster", tag = "rosters", summary = "名册:新生 / 在校生 / 毕(结、肄)业生(JSON、CSV、XLSX)",
    description = "kind=new|current|graduates(默认 current);year;as_of(名册日期,默认今天或 year 年末中较早者);format=json|csv|xlsx。名单按历史回放到名册日期得出。CSV 为带 BOM 的 UTF-8,表头为中文。JSON 分页(limit、cursor)。",
    params(("id" = String, Path), RosterParams),
    responses((status = 200, description = "OK", body = super::doc_types::RosterPage), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody)))]
async fn get_roster(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RosterParams>,
) -> ApiResult<Response> {
    require_role(&c, READERS, "查看名册")?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let (limit, after) = (page.limit(), page.after()?);
    let offset: usize = match after {
        None => 0,
        Some(a) => a
            .parse()
            .map_err(|_| ApiError::bad_request("invalid_cursor", "cursor", "分页游标无效"))?,
    };
    let vis = c.role.visibility();
    let query = RosterQuery {
        kind: q.kind,
        year: q.year,
        as_of: q.as_of,
        grade: q.grade,
        class: q.class.clone(),
    };
    let r = blocking(&state, move |x| -> ApiResult<_> {
        let school = visible_school(x, &c, &id)?;
        Ok(roster(x, &school, &query, vis)?)
    })
    .await?;
    let format = match q.format {
        RosterFormat::Json => {
            let rows: Vec<(String, Value)> = r
                .rows
                .iter()
                .enumerate()
                .skip(offset)
                .take(limit + 1)
                .map(|(i, row)| ((i + 1).to_string(), json!(row)))
                .collect();
            let page = Page::from_rows(rows, limit, |v| v);
            return Ok(axum::Json(json!({
                "items": page.items, "next_cursor": page.next_cursor,
                "school": r.school, "kind": r.kind, "kind_zh": r.kind_zh,
                "as_of": r.as_of, "year": r.year, "total": r.rows.len(),
            }))
            .into_response());
        }
        RosterFormat::Csv => FileFormat::Csv,
        RosterFormat::Xlsx => FileFormat::Xlsx,
    };
    let bytes = blocking(&state, move |_| r.to_file(format).map(|b| (b, r))).await;
    let (bytes, r) = bytes?;
    let disposition = format!(
        "attachment; filename=\"{}\"; filename*=UTF-8''{}",
        r.ascii_file_name(format),
        percent_encode(&r.file_name(format))
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((headers, bytes).into_response())
}

/// RFC 5987 encoding of a file name (UTF-8, percent-encoded outside the unreserved set).
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- statistics ------------------------------------------------------------------------

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatsParams {
    school: Option<String>,
    jurisdiction: Option<String>,
    /// Default today.
    #[param(value_type = Option<String>, format = Date)]
    as_of: Option<Date>,
}

#[utoipa::path(get, path = "/v1/stats", tag = "rosters", summary = "统计:按状态、年级、班级人数,各入学年份巩固率,学年辍学率",
    description = "school= 或 jurisdiction=(二选一;教育局账号默认本辖区/本区,学校账号默认本校);as_of 默认今天。全部由历史回放得出,定义见 docs/exchange.md。",
    params(StatsParams),
    responses((status = 200, description = "OK", body = super::doc_types::Stats), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody)))]
async fn get_stats(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<StatsParams>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, READERS, "查看统计")?;
    if q.school.is_some() && q.jurisdiction.is_some() {
        return Err(ApiError::bad_request(
            "conflicting_params",
            "jurisdiction",
            "school 和 jurisdiction 只能指定一个",
        ));
    }
    let as_of = q.as_of.unwrap_or_else(|| state.xueji.today());
    let out = blocking(&state, move |x| -> ApiResult<_> {
        let staff = matches!(c.role, Role::SchoolLeader | Role::Registrar);
        let scope = match (&q.school, &q.jurisdiction) {
            (Some(id), _) => StatsScope::School(visible_school(x, &c, id)?),
            (None, Some(_)) if staff => return Err(ApiError::forbidden("查看辖区统计")),
            (None, Some(j)) => {
                let known = x.policies().latest(j).is_some();
                let mine = c.role == Role::Admin || c.jurisdiction.as_deref() == Some(j.as_str());
                if !known || !mine {
                    return Err(ApiError::not_found("jurisdiction", j));
                }
                StatsScope::Jurisdiction {
                    id: j.clone(),
                    area: c.area.clone().filter(|_| c.role == Role::DistrictOfficer),
                }
            }
            (None, None) if staff => {
                StatsScope::School(visible_school(x, &c, c.school.as_deref().unwrap_or(""))?)
            }
            (None, None) => match (&c.role, &c.jurisdiction) {
                (Role::DistrictOfficer, Some(j)) => StatsScope::Jurisdiction {
                    id: j.clone(),
                    area: c.area.clone(),
                },
                _ => {
                    return Err(ApiError::bad_request(
                        "required",
                        "school",
                        "请指定 school 或 jurisdiction",
                    ));
                }
            },
        };
        Ok(stats(x, &scope, as_of)?)
    })
    .await?;
    Ok(axum::Json(out))
}

// ---- import ----------------------------------------------------------------------------

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ImportParams {
    /// Default: judged from the content.
    #[param(schema_with = super::schema::file_format)]
    format: Option<FileFormat>,
    /// `true`: store the valid rows, report the others.
    #[serde(default)]
    partial: bool,
    /// `true`: validate only.
    #[serde(default)]
    dry_run: bool,
    /// The school of rows without a school column.
    school: Option<String>,
    /// `true`: start the registration batch (`register`) of the students stored, one per
    /// school; the answer lists the batches (`GET /v1/batches/{id}`).
    #[serde(default)]
    register: bool,
    /// The registration's effective date (default today).
    #[param(value_type = Option<String>, format = Date)]
    register_date: Option<Date>,
}

#[utoipa::path(post, path = "/v1/students/import", tag = "students", summary = "批量导入学生(CSV / XLSX)",
    description = "请求体为文件本身(最大 20 MiB)。每行按单个建档(POST /v1/students)同样校验;partial=false(默认)时任何一行有误则全部不保存。format=csv|xlsx(默认按内容判断);school 为缺少学校列时的默认学校;dry_run=true 只校验;register=true 导入后即启动所导入学生的入学注册批次(每校一个,register_date 为注册日期,默认今天),答复的 batches 列出批次编号。返回逐行报告 {row, ok, student?, errors:[{code, field, message}]}。",
    params(ImportParams),
    request_body(content = String, content_type = "text/csv", description = "CSV(UTF-8)或 XLSX 文件"),
    responses((status = 201, description = "全部导入", body = super::doc_types::ImportReport), (status = 200, description = "dry_run,或 partial=true 时部分导入", body = super::doc_types::ImportReport), (status = 400, description = "文件无法读取、缺少或不认识的列", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 413, description = "文件过大", body = ErrorBody), (status = 422, description = "有错误行,全部未保存(import_rejected)", body = ErrorBody)))]
async fn import_students(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<ImportParams>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    require_role(&c, &[Role::Admin, Role::Registrar], "批量建立学籍")?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "文件过大:最大 {} MiB,请分批导入",
                    IMPORT_BODY_LIMIT / 1024 / 1024
                ),
            )
        } else {
            ApiError::bad_request("invalid_body", "", "上传的文件无法读取")
        }
    })?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_file",
            "file",
            "请求体应为 CSV 或 XLSX 文件",
        ));
    }
    let opts = ImportOptions {
        format: q.format,
        partial: q.partial,
        dry_run: q.dry_run,
        school: q.school,
    };
    let actor = Actor {
        id: c.id.clone(),
        role: c.role.as_str().into(),
    };
    let register =
        (q.register && !q.dry_run).then(|| q.register_date.unwrap_or_else(|| state.xueji.today()));
    let (report, batches) = blocking(&state, move |x| -> ApiResult<_> {
        let report = import(x, &body, &opts, &actor, &|s: &School| scope::school(&c, s))?;
        let mut batches = Vec::new();
        if let Some(date) = register
            && report.stored > 0
        {
            let stored: Vec<String> = report
                .rows
                .iter()
                .filter(|r| r.ok)
                .filter_map(|r| r.student.clone())
                .collect();
            if !stored.is_empty() {
                batches = x.register_imported(&stored, date, &actor)?;
            }
        }
        Ok((report, batches))
    })
    .await?;
    for b in &batches {
        state.xueji.spawn_batch(b.id.clone());
    }
    let status = if report.dry_run {
        StatusCode::OK
    } else if report.ok {
        StatusCode::CREATED
    } else if report.partial {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut body = json!(report);
    if register.is_some() {
        body["batches"] = json!(batches.iter().map(|b| &b.id).collect::<Vec<_>>());
    }
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        body["error"] = json!({
            "code": "import_rejected",
            "message": format!("{} 行有错误,全部未导入:请改正后重新上传,或使用 partial=true 只导入正确的行", report.failed),
            "details": {},
        });
    }
    Ok((status, axum::Json(body)).into_response())
}
