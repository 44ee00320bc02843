//! The HTTP service for school portals (axum): the contract of `shared/api.md`.
//!
//! Handlers authenticate with [`extract::Caller`], check scope with [`crate::auth::scope`],
//! run the engine off the async runtime ([`blocking`]) and map every error in [`error`].

mod audit;
mod batches;
mod catalog;
mod doc_types;
pub mod error;
mod exchange;
pub mod extract;
mod idempotency;
mod metrics;
mod policies;
mod problems;
mod requests;
mod routes;
mod schema;
mod schools;
mod serve;
mod students;
mod tokens;
pub mod view;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use std::sync::Arc;
use tower_http::cors::CorsLayer;

use crate::engine::Xueji;
pub use metrics::Metrics;
pub use serve::{MAX_CONNECTIONS_LIMIT, ServeConfig, serve_with};

/// Largest request body accepted (413 above).
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub xueji: Arc<Xueji>,
    pub metrics: Arc<Metrics>,
    /// Where `POST /v1/backups` writes (the data folder's `backups/`). Shared: the state is
    /// cloned for every request.
    pub backup_dir: Arc<std::path::Path>,
}

/// The OpenAPI 3 document of the API, generated from the route annotations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes::routes().1;
    doc.merge(exchange::routes().1);
    doc.merge(audit::routes().1);
    doc.merge(catalog::routes().1);
    doc.merge(batches::routes().1);
    doc
}

/// Runs engine work on the blocking pool: policy evaluation and redb commits never stall the
/// async workers.
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Xueji) -> T + Send + 'static,
) -> T {
    let x = state.xueji.clone();
    match tokio::task::spawn_blocking(move || f(&x)).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The whole application, ready to serve.
pub fn router(state: AppState, cors: Option<CorsLayer>) -> Router {
    let (routes, mut openapi) = routes::routes();
    let (exchange_routes, exchange_openapi) = exchange::routes();
    let (audit_routes, audit_openapi) = audit::routes();
    let (catalog_routes, catalog_openapi) = catalog::routes();
    let (batch_routes, batch_openapi) = batches::routes();
    openapi.merge(batch_openapi);
    openapi.merge(exchange_openapi);
    openapi.merge(audit_openapi);
    openapi.merge(catalog_openapi);
    let routes = routes
        .merge(exchange_routes)
        .merge(audit_routes)
        .merge(catalog_routes)
        .merge(batch_routes);
    let openapi = Arc::new(openapi);
    let mut app = routes
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || async move { axum::Json(openapi.as_ref().clone()) }),
        )
        .method_not_allowed_fallback(|| async { routes::method_not_allowed() })
        .fallback(|| async { routes::fallback() })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::layer,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state.clone());
    // The console beside the API: its pages ask this same router (`console::api`).
    app = crate::console::mount(app, state);
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    app
}

/// Serves until `shutdown` resolves, then finishes in-flight requests; with the default
/// [`ServeConfig`] (timeouts and connection limit of `xueji serve`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ServeConfig::default(), shutdown).await
}
