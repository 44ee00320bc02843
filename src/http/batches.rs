//! Batches (`/v1/batches`, issue #17): thin handlers over `engine::batch`. A dry run answers the
//! whole report (JSON, or a CSV/XLSX file); a real batch is stored and run on a thread of its
//! own, answered 202 with its id; its report is read page by page or as a file.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, require_role};
use super::view::PageParams;
use super::{AppState, blocking};
use crate::auth::{Role, TokenRecord, scope};
use crate::batch::report;
use crate::domain::{Actor, ApprovalStep};
use crate::engine::Xueji;
use crate::engine::batch::{BatchItem, BatchRecord, BatchSpec};
use crate::exchange::FileFormat;

pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::new()
        .routes(routes!(create_batch))
        .routes(routes!(get_batch))
        .routes(routes!(approve_batch))
        .split_for_parts()
}

fn actor(c: &TokenRecord) -> Actor {
    Actor {
        id: c.id.clone(),
        role: c.role.as_str().into(),
    }
}

/// The batch, if its school is in the caller's scope (else 404, revealing nothing).
fn visible_batch(x: &Xueji, c: &TokenRecord, id: &str) -> ApiResult<BatchRecord> {
    let not_found = || ApiError::not_found("batch", id);
    let record = x.batch(id).map_err(|_| not_found())?;
    match x.find_school(&record.school)? {
        Some(s) if scope::school(c, &s) => Ok(record),
        _ => Err(not_found()),
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, strum::EnumIter, strum::IntoStaticStr,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
enum ReportFormat {
    #[default]
    Json,
    Csv,
    Xlsx,
}

fn report_format() -> utoipa::openapi::schema::Object {
    super::schema::enum_of::<ReportFormat>()
}

impl ReportFormat {
    fn file(self) -> Option<FileFormat> {
        match self {
            ReportFormat::Json => None,
            ReportFormat::Csv => Some(FileFormat::Csv),
            ReportFormat::Xlsx => Some(FileFormat::Xlsx),
        }
    }
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CreateParams {
    /// `true`: decide every student, store nothing, answer the whole report.
    #[serde(default)]
    dry_run: bool,
    /// A dry run's report as `csv` or `xlsx` (default `json`).
    #[serde(default)]
    #[param(schema_with = report_format)]
    format: ReportFormat,
}

fn download(bytes: Vec<u8>, format: FileFormat, name: &str, ascii: &str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let disposition = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC)
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    (headers, bytes).into_response()
}

#[utoipa::path(post, path = "/v1/batches", tag = "batches", summary = "批量办理(入学注册、升级、毕业、结业、留级、调班、学期注册)",
    description = "按学校 + grade/class,或 students 名单选择学生;每名学生与单个办理走同一路径(状态机、政策、一条历史或一份申请)。dry_run=true 返回完整报告(format=csv|xlsx 下载),不保存;否则 202 返回批次编号,后台办理,崩溃后重启续办,不会重复办理。",
    params(CreateParams),
    request_body = super::doc_types::BatchSpec,
    responses((status = 202, description = "已受理,后台办理", body = super::doc_types::BatchStarted), (status = 200, description = "dry_run 报告", body = super::doc_types::BatchDryRun), (status = 400, description = "请求或字段无效(不支持的类型、空选择)", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "学校或学生不存在或不在权限范围内", body = ErrorBody), (status = 409, description = "学生正由另一批次办理中(batch_students_held)", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn create_batch(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<CreateParams>,
    ApiJson(spec): ApiJson<BatchSpec>,
) -> ApiResult<Response> {
    require_role(&c, &[Role::Admin, Role::Registrar], "批量办理学籍")?;
    if !q.dry_run && q.format != ReportFormat::Json {
        return Err(ApiError::bad_request(
            "conflicting_params",
            "format",
            "只有 dry_run=true 时可直接下载报告;正式批次请用 GET /v1/batches/{id}?format=",
        ));
    }
    let by = actor(&c);
    if q.dry_run {
        let out = blocking(&state, move |x| {
            x.dry_run_batch(&spec, &by, &|s| scope::school(&c, s))
        })
        .await?;
        if let Some(format) = q.format.file() {
            let name = report::file_name(out.kind, "dry-run", format);
            let ascii = format!("batch-{}-dry-run.{}", out.kind.as_str(), format.extension());
            let bytes = blocking(&state, move |_| {
                report::to_file(out.kind, out.items.iter().enumerate(), format)
            })
            .await?;
            return Ok(download(bytes, format, &name, &ascii));
        }
        return Ok(axum::Json(out).into_response());
    }
    let record = blocking(&state, move |x| {
        x.create_batch(&spec, &by, &|s| scope::school(&c, s))
    })
    .await?;
    state.xueji.spawn_batch(record.id.clone());
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "id": record.id,
            "status": record.status,
            "kind": record.kind,
            "school": record.school,
            "total": record.students.len(),
        })),
    )
        .into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct GetParams {
    /// Page size of `items`: default 100, at most 1000.
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `csv` or `xlsx`: the whole report as a file (default `json`, paged).
    #[serde(default)]
    #[param(schema_with = report_format)]
    format: ReportFormat,
}

#[utoipa::path(get, path = "/v1/batches/{id}", tag = "batches", summary = "批次状态与报告(分页;format=csv|xlsx 下载)",
    params(("id" = String, Path), GetParams),
    responses((status = 200, description = "OK", body = super::doc_types::BatchView), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody)))]
async fn get_batch(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<GetParams>,
) -> ApiResult<Response> {
    require_role(
        &c,
        &[
            Role::Admin,
            Role::DistrictOfficer,
            Role::SchoolLeader,
            Role::Registrar,
        ],
        "查看批次",
    )?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let (limit, after) = (page.limit(), page.after()?);
    let from: u64 = match after {
        None => 0,
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request("invalid_cursor", "cursor", "分页游标无效"))?
            .saturating_add(1),
    };
    if let Some(format) = q.format.file() {
        let (record, bytes) = blocking(&state, move |x| -> ApiResult<_> {
            let record = visible_batch(x, &c, &id)?;
            let items = x.batch_items(&record.id, 0, usize::MAX)?;
            let bytes = report::to_file(
                record.kind,
                items.iter().map(|(p, i)| (*p as usize, i)),
                format,
            )?;
            Ok((record, bytes))
        })
        .await?;
        let name = report::file_name(record.kind, &record.id, format);
        let ascii = format!("batch-{}.{}", record.id, format.extension());
        return Ok(download(bytes, format, &name, &ascii));
    }
    let body = blocking(&state, move |x| -> ApiResult<_> {
        let record = visible_batch(x, &c, &id)?;
        let counts = x.batch_counts(&record)?;
        let mut rows: Vec<(u64, BatchItem)> = x.batch_items(&record.id, from, limit + 1)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = more
            .then(|| rows.last().map(|(p, _)| hex::encode(p.to_string())))
            .flatten();
        let items: Vec<BatchItem> = rows.into_iter().map(|(_, i)| i).collect();
        Ok(json!({
            "id": record.id,
            "kind": record.kind,
            "school": record.school,
            "status": record.status,
            "effective_date": record.spec.effective_date,
            "created_at": record.created_at,
            "finished_at": record.finished_at,
            "total": record.students.len(),
            "counts": counts,
            "error": record.error,
            "items": items,
            "next_cursor": next_cursor,
        }))
    })
    .await?;
    Ok(axum::Json(body).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchStepBody {
    #[schema(schema_with = super::schema::approval_step)]
    step: ApprovalStep,
    #[serde(default)]
    comment: Option<String>,
}

#[utoipa::path(post, path = "/v1/batches/{id}/approve", tag = "batches", summary = "批量审批:通过本批次中本人可审批的该环节(每名学生仍各自记录)",
    params(("id" = String, Path)),
    request_body = BatchStepBody,
    responses((status = 200, description = "OK", body = super::doc_types::BatchApproveCounts), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn approve_batch(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<BatchStepBody>,
) -> ApiResult<Response> {
    require_role(
        &c,
        &[Role::Admin, Role::DistrictOfficer, Role::SchoolLeader],
        "批量审批",
    )?;
    let counts = blocking(&state, move |x| -> ApiResult<_> {
        let record = visible_batch(x, &c, &id)?;
        let school = x
            .find_school(&record.school)?
            .ok_or_else(|| ApiError::not_found("batch", &id))?;
        let may_approve = |r: &crate::domain::ApprovalRequest| {
            let receiving = r
                .receiving_school
                .as_deref()
                .and_then(|rs| x.find_school(rs).ok().flatten());
            r.school == school.id && scope::approve(&c, b.step, &school, receiving.as_ref())
        };
        if !scope::approve(&c, b.step, &school, None) {
            return Err(ApiError::forbidden(&format!("审批「{}」", b.step.zh())));
        }
        Ok(x.approve_batch(&record.id, b.step, &actor(&c), b.comment, &may_approve)?)
    })
    .await?;
    Ok(axum::Json(counts).into_response())
}
