//! `Idempotency-Key` on every write: the first response is stored with the key (scoped by the
//! caller's token and the route), and a retry gets it back without anything happening again.
//! Requests with the same scoped key are serialized in the process, so a retry sent while the
//! first attempt is still running waits for it and gets its response.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use super::error::ApiError;
use super::{AppState, BODY_LIMIT, blocking};
use crate::auth::token_hash;
use crate::store::Command;

type KeyLock = Arc<tokio::sync::Mutex<()>>;

/// The scoped keys being answered right now.
static IN_FLIGHT: LazyLock<Mutex<HashMap<String, KeyLock>>> = LazyLock::new(Default::default);

fn key_lock(scoped: &str) -> KeyLock {
    let mut map = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(scoped.to_owned()).or_default().clone()
}

/// Forgets the key's lock once nobody else holds or waits for it.
fn release(scoped: &str, lock: KeyLock) {
    let mut map = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    // One reference in the map, one here: nobody else is waiting.
    if Arc::strong_count(&lock) <= 2 {
        map.remove(scoped);
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let is_write = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    );
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (true, Some(key)) = (is_write, key) else {
        return next.run(req).await;
    };
    if key.is_empty() || key.len() > 200 {
        return ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key",
            "Idempotency-Key 长度应为 1–200",
        )
        .into_response();
    }
    let caller = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(token_hash)
        .unwrap_or_default();
    let scoped = format!(
        "{caller}\u{1f}{}\u{1f}{}\u{1f}{key}",
        req.method(),
        req.uri().path()
    );
    let lock = key_lock(&scoped);
    let response = {
        let _turn = lock.lock().await;
        answer_once(&state, scoped.clone(), req, next).await
    };
    release(&scoped, lock);
    response
}

/// Replays the stored response of `scoped`, or runs the request and stores its response.
async fn answer_once(state: &AppState, scoped: String, req: Request, next: Next) -> Response {
    let lookup = scoped.clone();
    match blocking(state, move |x| x.store().idempotent(&lookup)).await {
        Ok(Some(bytes)) => {
            if let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) {
                return replay(stored);
            }
        }
        Ok(None) => {}
        Err(e) => return ApiError::from(crate::service::ServiceError::from(e)).into_response(),
    }
    let response = next.run(req).await;
    // Server errors are not remembered: the retry should try again.
    if response.status().is_server_error() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, BODY_LIMIT * 64).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let stored = Stored {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: bytes.to_vec(),
    };
    if let Ok(value) = serde_json::to_vec(&stored) {
        let _ = blocking(state, move |x| {
            x.store()
                .submit(Command::PutIdempotent { key: scoped, value })
        })
        .await;
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(stored: Stored) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    if let Some(ct) = stored
        .content_type
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, ct);
    }
    response
        .headers_mut()
        .insert("idempotent-replay", HeaderValue::from_static("true"));
    response
}
