//! The route table and the OpenAPI document, the probes, and what handlers share. The handlers
//! live by resource: `schools`, `students`, `requests`, `tokens`, `policies` (and `catalog`,
//! `problems`, `batches`, `exchange`, `audit`). Every handler: authenticate (`Caller`), check
//! role and scope (`auth::scope`), run the engine on the blocking pool, shape the answer.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Caller;
use super::{AppState, blocking};
use crate::auth::TokenRecord;
use crate::domain::Actor;

/// The API document: generated from the handlers' annotations, registered in [`routes`].
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "xueji 学籍 API",
        description = "Student-status (学籍) rules service. Errors: {\"error\": {\"code\", \"message\", \"details\"}}. Auth: Authorization: Bearer <token>."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Every operation but the two probes takes `Authorization: Bearer <token>`.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// Every route, with the OpenAPI document built from the same registrations (so it cannot miss one).
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(jurisdictions))
        .routes(routes!(super::schools::create_school))
        .routes(routes!(super::schools::get_school))
        .routes(routes!(
            super::students::create_student,
            super::students::list_students
        ))
        .routes(routes!(super::students::get_student))
        .routes(routes!(super::students::person_enrolments))
        .routes(routes!(super::students::transition))
        .routes(routes!(super::students::transfer_into))
        .routes(routes!(super::students::transfer_certificate))
        .routes(routes!(super::students::public_keys))
        .routes(routes!(super::students::events))
        .routes(routes!(super::students::verify_student))
        .routes(routes!(super::students::verify_all))
        .routes(routes!(super::requests::list_requests))
        .routes(routes!(super::requests::get_request))
        .routes(routes!(super::requests::approve))
        .routes(routes!(super::requests::reject))
        .routes(routes!(super::requests::sweep))
        .routes(routes!(super::problems::list_problems))
        .routes(routes!(super::problems::resolve_problem))
        .routes(routes!(
            super::tokens::create_token,
            super::tokens::list_tokens
        ))
        .routes(routes!(super::tokens::revoke_token))
        .routes(routes!(super::policies::list_policies))
        .routes(routes!(
            super::policies::get_policy,
            super::policies::put_policy
        ))
        .routes(routes!(super::policies::impact))
        .routes(routes!(super::policies::evaluate_policy))
        .split_for_parts()
}

pub fn fallback() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "没有这个接口").into_response()
}

/// A known path with a verb it does not serve; axum adds the `Allow` header.
pub fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "该接口不支持此请求方法",
    )
    .into_response()
}

pub(super) fn actor(c: &TokenRecord) -> Actor {
    Actor {
        id: c.id.clone(),
        role: c.role.as_str().into(),
    }
}

#[utoipa::path(get, path = "/healthz", tag = "ops", summary = "存活检查 Liveness", security(()), responses((status = 200, description = "OK", body = super::doc_types::Health), (status = 503, description = "存储故障:此进程已不能读写学籍库,须重启(重启即恢复)", body = ErrorBody)))]
async fn healthz(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    // After an I/O error redb refuses every later read and write on the handle until the file
    // is reopened: only a restart recovers, so the liveness probe fails.
    blocking(&state, |x| x.probe()).await.map_err(|e| {
        tracing::error!(error = %e, "store unusable, restart required");
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "storage_failed",
            "存储故障:学籍库已不能读写,请重启服务(重启后自动恢复)",
        )
    })?;
    Ok(axum::Json(json!({ "status": "ok" })))
}

#[utoipa::path(get, path = "/metrics", tag = "ops", summary = "Prometheus 指标", security(()), responses((status = 200, description = "OK", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(state.xueji.commit_stats()),
    )
}

#[utoipa::path(get, path = "/v1/jurisdictions", tag = "policies", summary = "辖区(政策包)列表", responses((status = 200, description = "OK", body = super::doc_types::PolicyPage), (status = 401, description = "缺少或无效令牌", body = ErrorBody)))]
async fn jurisdictions(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<impl IntoResponse> {
    let items: Vec<Value> = state
        .xueji
        .policies()
        .all_latest()
        .iter()
        .map(|p| {
            json!({
                "id": p.manifest.id, "name": p.manifest.name, "extends": p.manifest.extends,
                "version": p.manifest.version, "content_hash": p.content_hash,
                "effective_from": p.manifest.effective_from,
                "documents": p.manifest.documents.values().collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items, "next_cursor": null })))
}
