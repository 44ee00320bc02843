//! The one place errors become HTTP responses: `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::domain::InvalidInput;
use crate::engine::ServiceError;
use crate::policy::PolicyError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            details: json!({}),
        }
    }
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "缺少或无效的访问令牌",
        )
    }
    /// A token past its `expires_at`: refused like an unknown one, but saying why.
    pub fn token_expired() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "token_expired",
            "访问令牌已过期,请向管理员申请新令牌",
        )
    }
    pub fn forbidden(what: &str) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("当前角色无权{what}"),
        )
    }
    /// Unknown, or outside the caller's scope: the two are indistinguishable on purpose.
    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what}「{id}」不存在"),
        )
        .with_details(json!({ "resource": what, "id": id }))
    }
    pub fn bad_request(code: &str, field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
            .with_details(json!({ "field": field }))
    }
    pub fn body(&self) -> Value {
        serde_json::to_value(ErrorBody {
            error: ErrorDetail {
                code: self.code.clone(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        })
        .unwrap_or(Value::Null)
    }
}

/// The body of every error answer; the OpenAPI document names it for each 4xx response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `invalid_field`, `not_found`, `body_too_large`.
    pub code: String,
    /// What is wrong, in Chinese.
    pub message: String,
    /// `field` names the input at fault where there is one (`guardians[0].phone`, `as_of`);
    /// other keys depend on the code.
    #[schema(value_type = Object)]
    pub details: Value,
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        let first = e.errors.first().cloned();
        let (code, field, message) = first.map_or(
            ("invalid_input".into(), String::new(), "输入无效".into()),
            |f| (f.code, f.field, f.message),
        );
        ApiError::new(
            StatusCode::BAD_REQUEST,
            &code,
            format!("{field}: {message}"),
        )
        .with_details(json!({ "field": field, "errors": e.errors }))
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(i) => i.into(),
            ServiceError::NotFound { what, id } => ApiError::not_found(what, &id),
            // The holding school is named (the registrar must know whom to call); nothing
            // else of the person or of their other enrolment.
            ServiceError::Duplicate { field, school, .. } => ApiError::new(
                StatusCode::CONFLICT,
                "duplicate_identity",
                format!(
                    "重复学籍:该{}在{}有在籍学籍,不能重复建档(请与该校核实,按问题学籍处理)",
                    match field.as_str() {
                        "national_id" => "全国学籍号",
                        "id_card" => "身份证号",
                        _ => "学生(姓名、性别、出生日期相同)",
                    },
                    school
                        .as_ref()
                        .map_or_else(|| "其他学校".to_owned(), |s| format!("「{}」", s.name)),
                ),
            )
            .with_details(json!({ "field": field, "school": school })),
            ServiceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::Refused { code, message } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            ServiceError::InvalidTransition { kind, status } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_transition",
                format!(
                    "学生当前状态为「{}」,不能办理「{}」",
                    status.zh(),
                    kind.zh()
                ),
            )
            .with_details(json!({ "status": status, "kind": kind })),
            ServiceError::Policy(p) => policy_error(&p),
            ServiceError::Damaged { table, key } => {
                // The key names the record for the operator; it may hold an id the caller
                // must not learn from a log line of theirs, so only the table goes back.
                tracing::error!(%table, %key, "damaged record");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "record_damaged",
                    "该记录在学籍库中已损坏,无法读取(请联系管理员运行 xueji verify 核查)",
                )
                .with_details(json!({ "table": table }))
            }
            ServiceError::Forbidden { what } => ApiError::forbidden(&what),
            ServiceError::Storage(m) => {
                tracing::error!(error = %m, "storage failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "服务器内部错误,请稍后重试",
                )
            }
        }
    }
}

/// A policy that failed: the transition is refused (422) with the script's error and position.
pub fn policy_error(p: &PolicyError) -> ApiError {
    let details = match p {
        PolicyError::Script { rule, position, .. } => json!({ "rule": rule, "position": position }),
        PolicyError::NoPolicy { jurisdiction, date } => {
            json!({ "jurisdiction": jurisdiction, "date": date })
        }
    };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        p.code(),
        format!("政策规则执行失败,已拒绝办理:{p}"),
    )
    .with_details(details)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
