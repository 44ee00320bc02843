//! The registrar console: Chinese pages rendered on the server (askama) with htmx, served by the
//! same binary at `/` and under `/console/`.
//!
//! A page never reads the store and never decides scope or masking itself: it asks the API
//! in-process ([`api::Api`]: the same router, the signed-in token as bearer), so each screen
//! shows exactly what the API answers that role (`auth::scope`, `http::view`), and an extension
//! (problem records, approval clocks, batches) is one more API call and one more template.

mod api;
mod batches;
mod chart;
mod pages;
mod problems;
mod session;
mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::http::AppState;

/// The vendored htmx release (2.0.11 from the npm registry, `htmx.org/dist/htmx.min.js`).
const HTMX: &[u8] = include_bytes!("../../assets/htmx-2.0.11.min.js");
/// Its path carries its version, so it may be cached for a year.
pub const HTMX_PATH: &str = "/console/assets/htmx-2.0.11.min.js";

/// Largest upload through the console (the API's import limit, and a multipart envelope).
const UPLOAD_LIMIT: usize = 21 * 1024 * 1024;

#[derive(Clone)]
pub struct ConsoleState {
    pub app: AppState,
    /// The API router the pages ask.
    pub api: Router,
    /// Key of the per-session form tokens (CSRF); new at every start.
    pub csrf_key: [u8; 32],
}

/// The API with the console beside it.
pub fn mount(api: Router, app: AppState) -> Router {
    let state = ConsoleState {
        app,
        api: api.clone(),
        csrf_key: rand::random(),
    };
    let console = Router::new()
        .route("/", get(pages::index))
        .route("/console", get(pages::home))
        .route("/console/", get(pages::home))
        .route("/console/login", post(session::login))
        .route("/console/logout", post(session::logout))
        .route(HTMX_PATH, get(htmx))
        .route("/console/students", get(pages::students))
        .route(
            "/console/students/new",
            get(pages::admit_form).post(pages::admit),
        )
        .route("/console/students/{id}", get(pages::student))
        .route(
            "/console/students/{id}/transition",
            get(pages::transition_form).post(pages::transition),
        )
        .route(
            "/console/students/{id}/dry-run",
            post(pages::transition_dry_run),
        )
        .route("/console/inbox", get(pages::inbox))
        .route("/console/requests/{id}/decide", post(pages::decide))
        .route("/console/problems", get(problems::problems))
        .route("/console/problems/{id}/resolve", post(problems::resolve))
        .route(
            "/console/import",
            get(pages::import_form).post(pages::import),
        )
        .route("/console/import/template.csv", get(pages::import_template))
        .route(
            "/console/batches",
            get(batches::batches_form).post(batches::start),
        )
        .route("/console/batches/dry-run", post(batches::dry_run))
        .route("/console/batches/open", get(batches::open))
        .route("/console/batches/{id}", get(batches::batch))
        .route("/console/batches/{id}/approve", post(batches::approve))
        .route("/console/batches/{id}/{file}", get(batches::report))
        .route("/console/rosters", get(pages::rosters))
        .route("/console/rosters/download", get(pages::roster_download))
        .route("/console/stats", get(pages::stats))
        .route("/console/policies", get(pages::policies))
        .route("/console/policies/{id}", get(pages::policy))
        .route("/console/policies/{id}/impact", post(pages::impact))
        .layer(DefaultBodyLimit::max(UPLOAD_LIMIT))
        .with_state(state);
    api.merge(console)
}

async fn htmx() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        HTMX,
    )
}
