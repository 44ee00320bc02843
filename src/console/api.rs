//! The API asked in-process, as the signed-in user: the pages' only way to the engine, so that
//! scope and masking are those of the API (`auth::scope`, `http::view`), written once.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

use super::session::User;

/// The largest answer a page reads (a roster file, an import report).
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;

pub struct Api<'a> {
    router: &'a Router,
    token: &'a str,
}

/// An API answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The error's Chinese message (with several field errors, it names each).
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("请求失败")
            .to_owned()
    }

    pub fn ok(&self) -> bool {
        self.status.is_success()
    }
}

/// A failed API call, as a page shows it.
pub struct Failed {
    pub status: StatusCode,
    pub message: String,
}

impl<'a> Api<'a> {
    pub fn new(router: &'a Router, user: &'a User) -> Self {
        Api {
            router,
            token: &user.token,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        let Ok(request) = request.body(Body::from(body)) else {
            return failure(StatusCode::BAD_REQUEST, "请求无效");
        };
        let response = match self.router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        match axum::body::to_bytes(body, ANSWER_LIMIT).await {
            Ok(body) => Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            },
            Err(_) => failure(StatusCode::INTERNAL_SERVER_ERROR, "读取服务应答失败"),
        }
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, None, Bytes::new()).await
    }

    pub async fn post_json(&self, uri: &str, body: &Value) -> Answer {
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        self.call(Method::POST, uri, Some("application/json"), bytes)
            .await
    }

    /// A GET whose answer is read as `T`, or the API's error.
    pub async fn get_as<T: DeserializeOwned>(&self, uri: &str) -> Result<T, Failed> {
        let answer = self.get(uri).await;
        if !answer.ok() {
            return Err(Failed {
                status: answer.status,
                message: answer.error_message(),
            });
        }
        serde_json::from_slice(&answer.body).map_err(|_| Failed {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "服务应答无法显示".into(),
        })
    }
}

fn failure(status: StatusCode, message: &str) -> Answer {
    Answer {
        status,
        headers: HeaderMap::new(),
        body: Bytes::from(
            serde_json::to_vec(&serde_json::json!({"error": {"message": message}}))
                .unwrap_or_default(),
        ),
    }
}

/// A query string: each value percent-encoded, empty values left out.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            out.append_pair(k, v);
        }
    }
    out.finish()
}

/// A path segment, percent-encoded.
pub fn seg(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}
