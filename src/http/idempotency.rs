//! `Idempotency-Key` on every write: the first answer a handler gives an authenticated caller is
//! stored, and a retry by the same token, with the same method, path, query and key, gets it
//! back without anything happening again. Requests with the same key are serialized in the
//! process, so a retry sent while the first attempt is still running waits for it and gets its
//! answer.
//!
//! What is stored is bounded, whoever sends what:
//! - only for a valid token (checked before anything is looked up, so a revoked token gets its
//!   401, never a replay) and a request a handler answered (not the 404 of an unknown path nor a
//!   405), never a server error;
//! - under a SHA-256 digest of token id, method, path, query and key (the store's idempotency table), so
//!   the key is 64 characters whatever the path or key;
//! - an answer of at most [`MAX_STORED_ANSWER`] bytes (a larger one is answered, not stored);
//! - for the store's `TTL_SECS` (a day); a retry after that runs anew;
//! - without secrets: a handler whose answer holds one attaches [`StoredAs`], what a replay
//!   returns instead (a created token's replay has `"token": null, "token_withheld": true`).

use axum::body::{Body, Bytes, HttpBody, to_bytes};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use super::error::ApiError;
use super::extract::Caller;
use super::{AppState, blocking};

/// The largest answer stored for a replay. Answers are a few KiB (a student, a decision, an
/// event); a larger one (an import's full report) is answered but not stored, so its retry runs
/// anew.
pub const MAX_STORED_ANSWER: usize = 256 * 1024;

/// What a replay of this answer returns instead of its body: the answer with its secret
/// withheld. A handler that answers with a secret attaches it to its response.
#[derive(Clone)]
pub struct StoredAs(pub Bytes);

type KeyLock = Arc<tokio::sync::Mutex<()>>;

/// The keys being answered right now.
static IN_FLIGHT: LazyLock<Mutex<HashMap<String, KeyLock>>> = LazyLock::new(Default::default);

fn key_lock(digest: &str) -> KeyLock {
    let mut map = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(digest.to_owned()).or_default().clone()
}

/// Forgets the key's lock once nobody else holds or waits for it.
fn release(digest: &str, lock: KeyLock) {
    let mut map = IN_FLIGHT.lock().unwrap_or_else(|p| p.into_inner());
    // One reference in the map, one here: nobody else is waiting.
    if Arc::strong_count(&lock) <= 2 {
        map.remove(digest);
    }
}

/// The name of a stored answer: each part length-prefixed, so no two requests share one.
fn digest(token_id: &str, method: &Method, path: &str, query: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [token_id, method.as_str(), path, query, key] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
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
    // The unknown path's 404 has no matched route; it is answered, never stored.
    if req.extensions().get::<MatchedPath>().is_none() {
        return next.run(req).await;
    }
    // Authenticate before anything is looked up: without a valid token the handler answers
    // (401), and nothing is replayed or stored.
    let (mut parts, body) = req.into_parts();
    let caller = Caller::from_request_parts(&mut parts, &state).await;
    let Ok(Caller(record)) = caller else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    // The handler's `Caller` is this one: the token is checked once per request.
    parts.extensions.insert(Caller(record.clone()));
    let req = Request::from_parts(parts, body);
    let digest = digest(
        &record.id,
        req.method(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
        &key,
    );
    let lock = key_lock(&digest);
    let response = {
        let _turn = lock.lock().await;
        answer_once(&state, digest.clone(), req, next).await
    };
    release(&digest, lock);
    response
}

/// Replays the stored answer of `digest`, or runs the request and stores its answer.
async fn answer_once(state: &AppState, digest: String, req: Request, next: Next) -> Response {
    let lookup = digest.clone();
    match blocking(state, move |x| x.stored_answer(&lookup)).await {
        Ok(Some(bytes)) => {
            if let Some(stored) = Stored::decode(&bytes) {
                return stored.replay();
            }
        }
        Ok(None) => {}
        Err(e) => return ApiError::from(e).into_response(),
    }
    let mut response = next.run(req).await;
    let stored_as = response.extensions_mut().remove::<StoredAs>();
    let status = response.status();
    // Server errors are not remembered: the retry should try again. A 405 is the router's.
    if status.is_server_error() || status == StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let (parts, body) = response.into_parts();
    let (body, stored_body) = match stored_as {
        Some(StoredAs(b)) if b.len() <= MAX_STORED_ANSWER => (body, b),
        Some(_) => return Response::from_parts(parts, body),
        None => {
            if body
                .size_hint()
                .exact()
                .is_none_or(|n| n > MAX_STORED_ANSWER as u64)
            {
                return Response::from_parts(parts, body);
            }
            // The size is known and bounded: this reads a buffer already in memory.
            let Ok(bytes) = to_bytes(body, MAX_STORED_ANSWER).await else {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            };
            (Body::from(bytes.clone()), bytes)
        }
    };
    let stored = Stored {
        status: parts.status.as_u16(),
        content_type: parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body: stored_body,
    };
    let value = stored.encode();
    let _ = blocking(state, move |x| x.store_answer(digest, value)).await;
    Response::from_parts(parts, body)
}

/// A stored answer: status, content type and body, in a small binary layout (the body is most
/// of it, and JSON would spell each byte as a number).
struct Stored {
    status: u16,
    content_type: String,
    body: Bytes,
}

impl Stored {
    fn encode(&self) -> Vec<u8> {
        let ct = self.content_type.as_bytes();
        let ct_len = u16::try_from(ct.len()).unwrap_or(0);
        let mut v = Vec::with_capacity(4 + ct.len() + self.body.len());
        v.extend_from_slice(&self.status.to_be_bytes());
        v.extend_from_slice(&ct_len.to_be_bytes());
        v.extend_from_slice(&ct[..usize::from(ct_len)]);
        v.extend_from_slice(&self.body);
        v
    }

    fn decode(bytes: &[u8]) -> Option<Stored> {
        let status = u16::from_be_bytes(bytes.get(0..2)?.try_into().ok()?);
        let ct_len = usize::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?));
        let content_type = std::str::from_utf8(bytes.get(4..4 + ct_len)?)
            .ok()?
            .to_owned();
        let body = Bytes::copy_from_slice(bytes.get(4 + ct_len..)?);
        Some(Stored {
            status,
            content_type,
            body,
        })
    }

    fn replay(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        if let Ok(ct) = HeaderValue::from_str(&self.content_type)
            && !self.content_type.is_empty()
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_answer_round_trips() {
        let s = Stored {
            status: 201,
            content_type: "application/json".into(),
            body: Bytes::from_static(b"{\"id\":\"x\"}"),
        };
        let back = Stored::decode(&s.encode()).expect("decodes");
        assert_eq!(back.status, 201);
        assert_eq!(back.content_type, "application/json");
        assert_eq!(&back.body[..], b"{\"id\":\"x\"}");
        assert!(Stored::decode(b"\x00").is_none());
    }

    #[test]
    fn the_digest_separates_its_parts() {
        let a = digest("tok_1", &Method::POST, "/v1/a", "", "bc");
        let b = digest("tok_1", &Method::POST, "/v1/ab", "", "c");
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(a, digest("tok_2", &Method::POST, "/v1/a", "", "bc"));
        assert_ne!(
            a,
            digest("tok_1", &Method::POST, "/v1/a", "dry_run=true", "bc")
        );
    }
}
