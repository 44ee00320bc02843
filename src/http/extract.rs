//! Extractors whose rejections speak the API's error shape.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{
    JsonRejection, MissingJsonContentType, PathRejection, QueryRejection,
};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use serde_path_to_error::Segment;

use super::AppState;
use super::error::ApiError;
use crate::auth::TokenRecord;
use crate::domain::FieldError;
use crate::engine::TokenCheck;

/// JSON body; malformed JSON, wrong types and unknown fields are 400, an oversized body 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        from_json_bytes(&json_body(req, state).await?).map(ApiJson)
    }
}

/// The bytes of a body that says it is JSON (else 415), within the body limit (else 413).
async fn json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if !json_content_type(req.headers()) {
        return Err(json_rejection(MissingJsonContentType::default().into()));
    }
    Bytes::from_request(req, state)
        .await
        .map_err(|e| json_rejection(e.into()))
}

fn from_json_bytes<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(v)) => Ok(v),
        // Valid JSON of the wrong shape is a field error (serde_json calls a number where an
        // enum is expected a syntax error): every field error of the body in one answer.
        Err(rejection @ (JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_))) => {
            match serde_json::from_slice::<Value>(bytes) {
                Ok(body) => Err(field_errors(
                    field_error(serde_detail(&rejection.body_text())),
                    every_field_error::<T>(body),
                )),
                Err(_) => Err(json_rejection(rejection)),
            }
        }
        Err(rejection) => Err(json_rejection(rejection)),
    }
}

/// Most field errors one answer lists.
const MAX_FIELD_ERRORS: usize = 20;
/// Most times a body is read again while its further errors are looked for: a large body full of
/// mistakes costs a bounded amount of work.
const MAX_REREADS: usize = 64;

/// What reading a body of the wrong shape found: every field error, and the body read as `T`
/// once each faulty value was set aside (when it could be), with the fields set aside.
pub struct Shape<T> {
    pub errors: Vec<FieldError>,
    pub read: Option<T>,
    pub set_aside: Vec<String>,
}

impl<T> Shape<T> {
    /// Whether `field` is one the shape errors are about (or inside one): its value was not the
    /// sender's, so a later check of it would only repeat the mistake.
    pub fn covers(&self, field: &str) -> bool {
        self.set_aside
            .iter()
            .chain(self.errors.iter().map(|e| &e.field))
            .any(|s| within(field, s))
    }
}

/// `field` is `outer` or a part of it (`guardians[0].phone` is within `guardians`).
fn within(field: &str, outer: &str) -> bool {
    field == outer
        || field.starts_with(&format!("{outer}."))
        || field.starts_with(&format!("{outer}["))
}

fn every_field_error<T: DeserializeOwned>(body: Value) -> Vec<FieldError> {
    read_shape::<T>(body).errors
}

/// Every field error of a JSON body that does not fit `T`, in the order they are found. Each
/// error found, the value at fault is set aside (an unknown field removed, a missing or invalid
/// one replaced by a stand-in of the right type) and the body read again. Errors inside a
/// stand-in are not the sender's and are not reported.
fn read_shape<T: DeserializeOwned>(mut body: Value) -> Shape<T> {
    let mut shape = Shape {
        errors: Vec::new(),
        read: None,
        set_aside: Vec::new(),
    };
    // A body that is not an object at all has one mistake, whatever serde would read into it.
    if !body.is_object() {
        return shape;
    }
    let mut reads = 0;
    while shape.errors.len() < MAX_FIELD_ERRORS && reads < MAX_REREADS {
        reads += 1;
        let e = match serde_path_to_error::deserialize::<_, T>(&body) {
            Ok(read) => {
                shape.read = Some(read);
                break;
            }
            Err(e) => e,
        };
        let detail = path_detail(&e);
        let error = field_error(&detail);
        let inside_stand_in = shape.set_aside.iter().any(|s| within(&error.field, s));
        let inner = e.inner().to_string();
        let mut at: Vec<Segment> = e.path().iter().cloned().collect();
        let fixed = if inner.starts_with("unknown field `") {
            remove_at(&mut body, &at)
        } else {
            if let Some(name) = inner
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(name, _)| name.to_owned())
            {
                at.push(Segment::Map { key: name });
            }
            !at.is_empty() && stand_in::<T>(&mut body, &at, &inner, &mut reads)
        };
        if !inside_stand_in {
            shape.errors.push(error.clone());
        }
        if !fixed {
            break;
        }
        if !inner.starts_with("unknown field `") {
            shape.set_aside.push(error.field.clone());
        }
    }
    shape
}

/// A JSON body read as [`ApiJson`] reads it, except that a body of the wrong shape is handed back
/// ([`Shape`]) instead of refused, so that the handler can check the values that were right and
/// answer every field error at once. Other rejections are [`ApiJson`]'s.
fn shape_from_bytes<T: DeserializeOwned>(bytes: &Bytes) -> Result<Result<T, Shape<T>>, ApiError> {
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(v)) => Ok(Ok(v)),
        Err(rejection @ (JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_))) => {
            match serde_json::from_slice::<Value>(bytes) {
                Ok(body) => {
                    let mut shape = read_shape::<T>(body);
                    let first = field_error(serde_detail(&rejection.body_text()));
                    shape.errors.retain(|e| e.field != first.field);
                    shape.errors.insert(0, first);
                    Ok(Err(shape))
                }
                Err(_) => Err(json_rejection(rejection)),
            }
        }
        Err(rejection) => Err(json_rejection(rejection)),
    }
}

/// One 400 answer for a body's shape errors and the errors of the values that were right.
pub fn shape_errors(errors: Vec<FieldError>) -> ApiError {
    let mut errors = errors.into_iter();
    match errors.next() {
        Some(first) => field_errors(first, errors.collect()),
        None => ApiError::bad_request("invalid_body", "", "请求体无法读取"),
    }
}

/// `path: message` as axum words a deserialization error (no path at the top level).
fn path_detail(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    if path == "." {
        e.inner().to_string()
    } else {
        format!("{path}: {}", e.inner())
    }
}

fn field_error(detail: &str) -> FieldError {
    FieldError::new(
        "invalid_field",
        &field_of(detail),
        format!("字段无效:{}", in_chinese(detail)),
    )
}

/// One 400 `invalid_field` answer naming the first error's field and listing them all.
fn field_errors(first: FieldError, more: Vec<FieldError>) -> ApiError {
    let mut errors = vec![first];
    for e in more {
        if !errors.iter().any(|known| known.field == e.field) {
            errors.push(e);
        }
    }
    let message = if errors.len() == 1 {
        errors[0].message.clone()
    } else {
        let each: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        format!("{} 处字段无效:{}", errors.len(), each.join(";"))
    };
    ApiError::bad_request("invalid_field", &errors[0].field, message)
        .with_details(json!({ "field": errors[0].field, "errors": errors }))
}

fn value_at<'a>(mut v: &'a mut Value, at: &[Segment]) -> Option<&'a mut Value> {
    for segment in at {
        v = match segment {
            Segment::Map { key } => v.as_object_mut()?.get_mut(key)?,
            Segment::Seq { index } => v.as_array_mut()?.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(v)
}

fn remove_at(body: &mut Value, at: &[Segment]) -> bool {
    match at.split_last() {
        Some((Segment::Map { key }, parent)) => value_at(body, parent)
            .and_then(Value::as_object_mut)
            .and_then(|o| o.remove(key))
            .is_some(),
        _ => false,
    }
}

/// Puts at `at` the first stand-in that the type accepts there (the next error, if any, is
/// elsewhere): the variants the error names, then a value of each JSON type, then a date.
fn stand_in<T: DeserializeOwned>(
    body: &mut Value,
    at: &[Segment],
    message: &str,
    reads: &mut usize,
) -> bool {
    let (Some((last, parent)), field) = (at.split_last(), path_text(at)) else {
        return false;
    };
    let mut candidates: std::collections::VecDeque<Value> = named_variants(message).collect();
    candidates.extend([
        json!(""),
        json!(0),
        json!(false),
        json!([]),
        json!({}),
        json!("2000-01-01"),
    ]);
    let mut tried = 0;
    while let Some(candidate) = candidates.pop_front() {
        if *reads >= MAX_REREADS || tried > 16 {
            return false;
        }
        let placed = match (value_at(body, parent), last) {
            (Some(Value::Object(o)), Segment::Map { key }) => {
                o.insert(key.clone(), candidate);
                true
            }
            (Some(Value::Array(a)), Segment::Seq { index }) if *index < a.len() => {
                a[*index] = candidate;
                true
            }
            _ => false,
        };
        if !placed {
            return false;
        }
        *reads += 1;
        tried += 1;
        match serde_path_to_error::deserialize::<_, T>(&*body) {
            Ok(_) => return true,
            Err(e) if e.path().to_string() != field => return true,
            Err(e) => {
                let inner = e.inner().to_string();
                if inner.starts_with("missing field `") {
                    // The stand-in has the right type; what it lacks is filled next.
                    return true;
                }
                candidates.extend(named_variants(&inner));
            }
        }
    }
    false
}

/// serde_path_to_error's spelling of a path (`guardians[0].phone`).
fn path_text(at: &[Segment]) -> String {
    let mut text = String::new();
    for (i, segment) in at.iter().enumerate() {
        match segment {
            Segment::Seq { index } => text.push_str(&format!("[{index}]")),
            Segment::Map { key } if i == 0 => text.push_str(key),
            Segment::Map { key } => text.push_str(&format!(".{key}")),
            _ => {}
        }
    }
    if text.is_empty() { ".".into() } else { text }
}

/// The values an "unknown variant …, expected one of `a`, `b`" error names.
fn named_variants(message: &str) -> impl Iterator<Item = Value> + '_ {
    message
        .split_once("expected ")
        .filter(|_| message.starts_with("unknown variant"))
        .map(|(_, expected)| expected)
        .unwrap_or("")
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|v| json!(v))
}

/// A JSON body that may be left out: an empty body (with or without a content type) or `null`
/// is `None`; anything else is read exactly as [`ApiJson`] reads it, with the same rejections.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = json_content_type(req.headers());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| json_rejection(e.into()))?;
        if bytes.is_empty() {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(json_rejection(MissingJsonContentType::default().into()));
        }
        from_json_bytes::<Option<T>>(&bytes).map(OptionalJson)
    }
}

/// `application/json`, with or without parameters, or an `application/*+json` type.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// What follows axum's "Failed to …: " prefix: serde's own message, with the field path.
fn serde_detail(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, d)| d)
}

/// The field a serde error is about: its path (`guardians[0].phone: invalid type …`), joined with
/// the field it reports missing or unknown (``missing field `name` ``).
fn field_of(detail: &str) -> String {
    let (path, message) = match detail.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (path, rest),
        _ => ("", detail),
    };
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name);
    // An unknown field is already the last segment of its path; a missing or repeated one is not.
    match (path, named) {
        (path, None) => path.to_owned(),
        ("", Some(name)) => name.to_owned(),
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_owned()
        }
        (path, Some(name)) => format!("{path}.{name}"),
    }
}

fn invalid_field(body_text: &str) -> ApiError {
    field_errors(field_error(serde_detail(body_text)), Vec::new())
}

/// serde's English message, said in Chinese for a registrar: the field path stays as it is, the
/// kind of mistake is translated, a message our own parsers wrote (already Chinese) passes as is.
fn in_chinese(detail: &str) -> String {
    let (path, message) = match detail.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => (Some(path), rest),
        _ => (None, detail),
    };
    // " at line 1 column 23" closes serde_json's messages.
    let (message, place) = match message.rsplit_once(" at line ") {
        Some((m, at)) => match at.split_once(" column ") {
            Some((line, column)) => (m, format!("(第 {line} 行第 {column} 列)")),
            None => (message, String::new()),
        },
        None => (message, String::new()),
    };
    let quoted = |rest: &str| rest.split('`').nth(1).unwrap_or_default().to_owned();
    let said = if let Some(rest) = message.strip_prefix("missing field ") {
        format!("缺少字段「{}」", quoted(rest))
    } else if let Some(rest) = message.strip_prefix("unknown field ") {
        format!("不认识的字段「{}」", quoted(rest))
    } else if let Some(rest) = message.strip_prefix("duplicate field ") {
        format!("字段「{}」重复", quoted(rest))
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        let allowed: Vec<&str> = rest
            .split_once("expected ")
            .map(|(_, e)| e.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        format!("取值「{}」无效,可选:{}", quoted(rest), allowed.join("、"))
    } else if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        format!(
            "类型不对:应为{},收到的是{}",
            kind_zh(expected),
            kind_zh(found)
        )
    } else if let Some(rest) = message.strip_prefix("invalid value: ") {
        let (_, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        format!("取值无效,应为{}", kind_zh(expected))
    } else if message.starts_with("invalid length") {
        "元素个数不对".to_owned()
    } else if message.starts_with("EOF while parsing") {
        "JSON 不完整".to_owned()
    } else if message.starts_with("expected ")
        || message.starts_with("trailing ")
        || message.starts_with("key must be")
        || message.starts_with("control character")
        || message.starts_with("invalid escape")
        || message.starts_with("invalid unicode")
        || message.starts_with("invalid number")
        || message.starts_with("number out of range")
        || message.starts_with("recursion limit")
        || message.starts_with("lone leading surrogate")
    {
        "JSON 语法错误".to_owned()
    } else if message.is_ascii() {
        // A serde message this table does not know: never English to the registrar.
        "取值无效".to_owned()
    } else {
        message.to_owned()
    };
    match path {
        Some(path) => format!("{path}: {said}{place}"),
        None => format!("{said}{place}"),
    }
}

/// A serde type description (`a string`, ``integer `5` ``, `u8`, `struct NewStudentForm`) in
/// Chinese.
fn kind_zh(kind: &str) -> &'static str {
    let kind = kind.trim();
    let starts = |p: &str| kind.starts_with(p);
    if starts("a string") || starts("string") || starts("a borrowed string") || starts("a char") {
        "文字"
    } else if starts("integer")
        || starts("u8")
        || starts("u16")
        || starts("u32")
        || starts("u64")
        || starts("i32")
        || starts("i64")
        || starts("usize")
        || starts("an integer")
    {
        "整数"
    } else if starts("floating point") || starts("a number") || starts("f64") {
        "数字"
    } else if starts("boolean") || starts("a boolean") {
        "true 或 false"
    } else if starts("a sequence") || starts("sequence") || starts("a list") {
        "数组"
    } else if starts("map") || starts("a map") || starts("struct") || starts("an object") {
        "对象"
    } else if starts("null") || starts("unit") {
        "空值"
    } else if starts("a date") || kind.contains("YYYY-MM-DD") {
        "日期(YYYY-MM-DD)"
    } else {
        "正确的类型"
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => invalid_field(&e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "malformed_json",
            "",
            format!("JSON 格式错误:{}", in_chinese(serde_detail(&e.body_text()))),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
            "unsupported_media_type",
            "",
            "请求体须为 JSON(Content-Type: application/json)",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "请求体过大",
        ),
        _ => ApiError::bad_request("invalid_body", "", "请求体无法读取"),
    }
}

/// Query string; unknown or invalid parameters are 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(query) = parts.uri.query() {
            check_query_text(query)?;
        }
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| {
                let text = e.body_text();
                let detail = serde_detail(&text);
                ApiError::bad_request(
                    "invalid_query",
                    &field_of(detail),
                    format!("查询参数无效:{}", in_chinese(detail)),
                )
            })
    }
}

/// Every name and value of a query string must be UTF-8 once percent-decoded, without control
/// characters (NUL, line breaks) or the bidi controls that reorder display: the decoder would
/// otherwise turn `%FF` into U+FFFD and pass `%00` and U+202E on, and a list filtered by such a
/// value would answer 200 with nothing in it.
fn check_query_text(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name);
        let field = String::from_utf8_lossy(&name);
        let text_ok = |bytes: &[u8]| {
            std::str::from_utf8(bytes).is_ok_and(|t| {
                !t.chars()
                    .any(|c| c.is_control() || crate::domain::student::is_bidi_control(c))
            })
        };
        if !text_ok(&name) || !text_ok(&percent_decode(value)) {
            return Err(ApiError::bad_request(
                "invalid_query",
                &field,
                format!("查询参数无效:{field} 须为 UTF-8 文本,且不含控制字符"),
            ));
        }
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` decoding, as the query extractor does it: `+` is a space,
/// `%XX` a byte, a `%` not followed by two hex digits itself.
fn percent_decode(text: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(&text.replace('+', " ")).collect()
}

/// Path parameters; one that is not valid UTF-8 once percent-decoded is 400 `invalid_path`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => {
                let field = match &e {
                    PathRejection::FailedToDeserializePathParams(f) => match f.kind() {
                        ErrorKind::InvalidUtf8InPathParam { key }
                        | ErrorKind::ParseErrorAtKey { key, .. }
                        | ErrorKind::DeserializeError { key, .. } => key.clone(),
                        _ => String::new(),
                    },
                    _ => String::new(),
                };
                Err(ApiError::bad_request(
                    "invalid_path",
                    &field,
                    format!("路径参数无效:{}", in_chinese(serde_detail(&e.body_text()))),
                ))
            }
        }
    }
}

/// The authenticated caller: a bearer token that is known, not revoked and not expired.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenRecord);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Already authenticated for this request (by the `Idempotency-Key` layer).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 200)
            .ok_or_else(ApiError::unauthorized)?;
        match state.xueji.check_token(token).map_err(ApiError::from)? {
            TokenCheck::Valid(record) => Ok(Caller(*record)),
            TokenCheck::Expired => Err(ApiError::token_expired()),
            TokenCheck::Unknown => Err(ApiError::unauthorized()),
        }
    }
}

/// The one role check every handler uses: 403 with what the caller tried, when the role may not.
pub fn require_role(
    c: &crate::auth::TokenRecord,
    roles: &[crate::auth::Role],
    what: &str,
) -> Result<(), ApiError> {
    if roles.contains(&c.role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(what))
    }
}

/// The body of `POST /v1/students`: a new student's form (read by [`shape_from_bytes`], so that
/// every field error comes back at once), or an admission on a transfer certificate (a body
/// with `transfer_certificate`, read as [`ApiJson`] reads it).
pub enum AdmissionBody {
    Form(Box<FormOrShape<crate::domain::student::NewStudentForm>>),
    Certified(Box<crate::domain::certificate::CertifiedAdmission>),
}

/// A body read whole, or what could be read of it ([`shape_from_bytes`]).
pub type FormOrShape<T> = Result<T, Shape<T>>;

impl<S: Send + Sync> FromRequest<S> for AdmissionBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_body(req, state).await?;
        let certified = serde_json::from_slice::<serde_json::Value>(&bytes)
            .is_ok_and(|v| v.get("transfer_certificate").is_some());
        if certified {
            from_json_bytes(&bytes).map(AdmissionBody::Certified)
        } else {
            shape_from_bytes(&bytes).map(|f| AdmissionBody::Form(Box::new(f)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn every_field_error_of_a_student_body_is_found() {
        let body = json!({
            "school": "s1", "gender": 5, "birth_date": "2017-03-08", "grade": "三",
            "entry_date": "2023-09-01", "nickname": "小梅",
            "guardians": [{"name": "田大山", "relation": 7}],
        });
        let errors = every_field_error::<crate::domain::student::NewStudentForm>(body);
        let mut found = fields(&errors);
        found.sort_unstable();
        assert_eq!(
            found,
            [
                "gender",
                "grade",
                "guardians[0].phone",
                "guardians[0].relation",
                "name",
                "nickname"
            ],
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .all(|e| e.code == "invalid_field" && !e.message.is_ascii())
        );
    }

    #[test]
    fn enums_and_dates_get_stand_ins_so_later_fields_are_still_checked() {
        let body = json!({"kind": "holiday", "effective_date": "2026-13-01", "documents": "none", "reason": 3});
        let errors = every_field_error::<crate::domain::TransitionInput>(body);
        let mut found = fields(&errors);
        found.sort_unstable();
        assert_eq!(
            found,
            ["documents", "effective_date", "kind", "reason"],
            "{errors:?}"
        );
    }

    #[test]
    fn each_missing_field_is_listed_once() {
        let errors = every_field_error::<crate::domain::TransitionInput>(json!({}));
        let mut found = fields(&errors);
        found.sort_unstable();
        assert_eq!(found, ["effective_date", "kind"], "{errors:?}");
    }

    #[test]
    fn a_body_of_the_wrong_kind_is_one_error() {
        let first = FieldError::new("invalid_field", "", "字段无效:类型不对");
        let more = every_field_error::<crate::domain::TransitionInput>(json!([1, 2]));
        assert!(more.is_empty(), "{more:?}");
        let answer = field_errors(first, more);
        assert_eq!(answer.details["errors"].as_array().map(Vec::len), Some(1));
        assert_eq!(answer.message, "字段无效:类型不对");
    }

    #[test]
    fn query_text_is_decoded_as_a_form() {
        assert_eq!(percent_decode("a+b%20c"), b"a b c");
        assert_eq!(percent_decode("%E7%94%B2"), "甲".as_bytes());
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%zz%F"), b"%zz%F");
    }

    #[test]
    fn query_text_refuses_what_is_not_plain_text() {
        assert!(check_query_text("school=s1&q=%E7%94%B2&limit=5&flag").is_ok());
        for bad in [
            "school=%FF",
            "q=a%00b",
            "class=%E2%80%AE1",
            "q=a%0Ab",
            "%FF=1",
        ] {
            assert!(check_query_text(bad).is_err(), "{bad}");
        }
    }
}
