//! The jurisdiction logs for inspectors and operators (`docs/reliability.md`): checkpoints,
//! checks against checkpoints kept earlier, RFC 9162 consistency proofs, and live backups.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, OptionalJson, require_role};
use super::view::{Page, PageParams};
use super::{AppState, blocking};
use crate::auth::{Role, TokenRecord};
use crate::domain::merkle::Checkpoint;
use crate::engine::ServiceError;

pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::new()
        .routes(routes!(checkpoints))
        .routes(routes!(verify_checkpoints))
        .routes(routes!(consistency))
        .routes(routes!(create_backup))
        .split_for_parts()
}

/// Admins see every jurisdiction's log; a district officer only their own.
fn may_audit(c: &TokenRecord, jurisdiction: &str) -> bool {
    match c.role {
        Role::Admin => true,
        Role::DistrictOfficer => c.jurisdiction.as_deref() == Some(jurisdiction),
        _ => false,
    }
}

const AUDITORS: &[Role] = &[Role::Admin, Role::DistrictOfficer];

#[utoipa::path(get, path = "/v1/checkpoints", tag = "history", summary = "各辖区事件日志的检查点(事件数 + Merkle 根),供检查方留存", params(PageParams), responses((status = 200, description = "OK", body = super::doc_types::CheckpointPage), (status = 400, description = "查询参数无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody)))]
async fn checkpoints(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, AUDITORS, "查看日志检查点")?;
    let after = page.after()?;
    let limit = page.limit();
    let items = blocking(&state, |x| x.checkpoints()).await?;
    // In jurisdiction order; the cursor is the last jurisdiction of the previous page.
    let rows: Vec<(String, Checkpoint)> = items
        .into_iter()
        .filter(|cp| may_audit(&c, &cp.jurisdiction))
        .filter(|cp| {
            after
                .as_deref()
                .is_none_or(|a| cp.jurisdiction.as_str() > a)
        })
        .take(limit + 1)
        .map(|cp| (cp.jurisdiction.clone(), cp))
        .collect();
    Ok(axum::Json(Page::from_rows(rows, limit, |cp| cp)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CheckpointBody {
    jurisdiction: String,
    size: u64,
    root: String,
    taken_at: String,
}

/// The answer of `GET /v1/checkpoints`, posted back as it was kept.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct VerifyCheckpointsBody {
    items: Vec<CheckpointBody>,
    #[serde(default, rename = "next_cursor")]
    _next_cursor: Option<String>,
}

#[utoipa::path(post, path = "/v1/checkpoints/verify", tag = "history", summary = "用留存的检查点核对:其覆盖的事件无一被改动、删除或回退", request_body = VerifyCheckpointsBody, responses((status = 200, description = "每个辖区的核对结果", body = super::doc_types::CheckpointsReport), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn verify_checkpoints(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
    ApiJson(b): ApiJson<VerifyCheckpointsBody>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, AUDITORS, "核对日志检查点")?;
    if b.items.is_empty() {
        return Err(ApiError::bad_request(
            "required",
            "items",
            "请至少提供一个检查点",
        ));
    }
    let known: std::collections::BTreeSet<String> = state
        .xueji
        .policies()
        .all_latest()
        .iter()
        .map(|p| p.manifest.id.clone())
        .collect();
    let mut given: Vec<Checkpoint> = Vec::with_capacity(b.items.len());
    for (i, cp) in b.items.into_iter().enumerate() {
        // Unknown and out of scope answer alike; each log is checked once per request.
        if !known.contains(&cp.jurisdiction) || !may_audit(&c, &cp.jurisdiction) {
            return Err(ApiError::not_found("jurisdiction", &cp.jurisdiction));
        }
        if given.iter().any(|g| g.jurisdiction == cp.jurisdiction) {
            return Err(ApiError::bad_request(
                "duplicate_value",
                &format!("items[{i}].jurisdiction"),
                format!("辖区「{}」的检查点重复", cp.jurisdiction),
            ));
        }
        if crate::domain::merkle::from_hex(&cp.root).is_none() {
            return Err(ApiError::bad_request(
                "invalid_root",
                &format!("items[{i}].root"),
                "根哈希应为 64 位十六进制",
            ));
        }
        if cp.taken_at.len() > 64 || chrono::DateTime::parse_from_rfc3339(&cp.taken_at).is_err() {
            return Err(ApiError::bad_request(
                "invalid_value",
                &format!("items[{i}].taken_at"),
                "taken_at 应为 RFC 3339 时间(如 2026-09-01T08:00:00Z)",
            ));
        }
        given.push(Checkpoint {
            jurisdiction: cp.jurisdiction,
            size: cp.size,
            root: cp.root.to_ascii_lowercase(),
            taken_at: cp.taken_at,
        });
    }
    let reports = blocking(&state, move |x| -> crate::engine::Result<Vec<_>> {
        given
            .iter()
            .map(|cp| x.verify_log(&cp.jurisdiction, Some(cp)))
            .collect()
    })
    .await?;
    let ok = reports.iter().all(|r| r.ok);
    Ok(axum::Json(json!({ "ok": ok, "logs": reports })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    /// The size of the older checkpoint.
    from: u64,
}

#[utoipa::path(get, path = "/v1/jurisdictions/{id}/consistency", tag = "history", summary = "RFC 9162 一致性证明:旧检查点是当前日志的前缀", params(("id" = String, Path), ConsistencyQuery), responses((status = 200, description = "OK", body = super::doc_types::ConsistencyProof), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 409, description = "日志已损坏,无法出具证明", body = ErrorBody)))]
async fn consistency(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, AUDITORS, "获取一致性证明")?;
    if !may_audit(&c, &id) {
        return Err(ApiError::not_found("jurisdiction", &id));
    }
    let proof = blocking(&state, move |x| -> ApiResult<_> {
        if x.policies().latest(&id).is_none() {
            return Err(ApiError::not_found("jurisdiction", &id));
        }
        Ok(x.consistency_proof(&id, q.from)?)
    })
    .await?;
    Ok(axum::Json(proof))
}

/// `POST /v1/backups` takes no input: no body (or `null`, or an empty JSON object) and no query.
#[derive(utoipa::ToSchema)]
struct BackupBody {}

/// Only an object, and an empty one: a derived empty struct would also take `[]`.
impl<'de> Deserialize<'de> for BackupBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Empty;
        impl<'de> serde::de::Visitor<'de> for Empty {
            type Value = BackupBody;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an empty JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<BackupBody, A::Error> {
                match map.next_key::<String>()? {
                    Some(field) => Err(serde::de::Error::unknown_field(&field, &[])),
                    None => Ok(BackupBody {}),
                }
            }
        }
        d.deserialize_map(Empty)
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

#[utoipa::path(post, path = "/v1/backups", tag = "ops", summary = "在线备份:服务不停,写一份一致的副本和检查点到数据目录 backups/", request_body(content = Option<BackupBody>, description = "可省略:无请求体、null 或空对象 {}"), params(NoQuery), responses((status = 201, description = "备份已写入", body = super::doc_types::Backup), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 409, description = "同名备份文件已存在", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody), (status = 507, description = "备份写入失败(磁盘已满等),未留下文件", body = ErrorBody)))]
async fn create_backup(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(NoQuery {}): ApiQuery<NoQuery>,
    body: OptionalJson<BackupBody>,
) -> ApiResult<impl IntoResponse> {
    let OptionalJson(_) = body;
    require_role(&c, &[Role::Admin], "备份")?;
    let dir = state.backup_dir.clone();
    let backup = blocking(&state, move |x| -> ApiResult<_> {
        let failed = |e: String| {
            tracing::error!(error = %e, "backup failed");
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "backup_failed",
                format!("备份失败:{e}"),
            )
        };
        crate::engine::private::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let file = dir.join(format!("xueji-{stamp}.redb"));
        // The same copy `xueji backup` makes beside the server: one snapshot, then checkpoints.
        x.backup_to(&file).map_err(|e| match e {
            ServiceError::Storage(message) => failed(message),
            refused => ApiError::from(refused),
        })
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "file": backup.file.display().to_string(),
            "records": backup.records,
            "checkpoints": backup.checkpoints,
        })),
    ))
}
