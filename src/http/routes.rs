//! Route table and handlers. Every handler: authenticate (`Caller`), check role and scope
//! (`auth::scope`), run the engine on the blocking pool, shape the answer.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::error::{ApiError, ApiResult, ErrorBody, policy_error};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, Shape, require_role, shape_errors};
use super::view::{Page, PageParams, decision_view, student_view};
use super::{AppState, blocking};
use crate::auth::{Role, TokenRecord, scope};
use crate::domain::student::NewStudentForm;
use crate::domain::{
    Actor, ApprovalRequest, ApprovalStep, Date, Decision, Level, RequestStatus, School, Status,
    Student, Term, TransitionInput, TransitionKind,
};
use crate::engine::{Enrolment, Outcome, ServiceError, TokenRequest, Xueji};

/// The API document: generated from the handlers' annotations below.
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
        .routes(routes!(create_school))
        .routes(routes!(get_school))
        .routes(routes!(create_student, list_students))
        .routes(routes!(get_student))
        .routes(routes!(person_enrolments))
        .routes(routes!(transition))
        .routes(routes!(transfer_into))
        .routes(routes!(transfer_certificate))
        .routes(routes!(public_keys))
        .routes(routes!(events))
        .routes(routes!(verify_student))
        .routes(routes!(verify_all))
        .routes(routes!(list_requests))
        .routes(routes!(get_request))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(sweep))
        .routes(routes!(super::problems::list_problems))
        .routes(routes!(super::problems::resolve_problem))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(list_policies))
        .routes(routes!(get_policy, put_policy))
        .routes(routes!(impact))
        .routes(routes!(evaluate_policy))
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

fn actor(c: &TokenRecord) -> Actor {
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

// ---- schools ---------------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SchoolBody {
    id: String,
    name: String,
    jurisdiction: String,
    #[serde(default)]
    area: Option<String>,
    #[schema(schema_with = super::schema::level)]
    level: Level,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    calendar: Vec<Term>,
}

#[utoipa::path(post, path = "/v1/schools", tag = "schools", summary = "创建学校", request_body = SchoolBody, responses((status = 201, description = "已办理 applied / created", body = super::doc_types::School), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 409, description = "冲突(重复学籍、版本冲突、申请已办结)", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn create_school(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiJson(b): ApiJson<SchoolBody>,
) -> ApiResult<Response> {
    require_role(&c, &[Role::Admin, Role::DistrictOfficer], "创建学校")?;
    let school = School {
        id: b.id,
        name: b.name,
        jurisdiction: b.jurisdiction,
        area: b.area,
        level: b.level,
        kind: b.kind,
        calendar: b.calendar,
    };
    if !scope::school(&c, &school) {
        return Err(ApiError::forbidden("在本辖区以外创建学校"));
    }
    let created = blocking(&state, move |x| x.create_school(school)).await?;
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

/// Who reads schools: everyone but a guardian (whose scope holds no school, `scope::school`).
pub(super) const SCHOOL_READERS: [Role; 5] = [
    Role::Admin,
    Role::DistrictOfficer,
    Role::SchoolLeader,
    Role::Registrar,
    Role::HeadTeacher,
];

/// Loads a school the caller may see; otherwise 404, whether it exists or not.
fn visible_school(x: &Xueji, c: &TokenRecord, id: &str) -> ApiResult<School> {
    match x.find_school(id)? {
        Some(s) if scope::school(c, &s) => Ok(s),
        _ => Err(ApiError::not_found("school", id)),
    }
}

#[utoipa::path(get, path = "/v1/schools/{id}", tag = "schools", summary = "查看学校", params(("id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::School), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 400, description = "请求或字段无效", body = ErrorBody)))]
async fn get_school(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, &SCHOOL_READERS, "查看学校")?;
    let school = blocking(&state, move |x| visible_school(x, &c, &id)).await?;
    Ok(axum::Json(school))
}

// ---- students --------------------------------------------------------------------------

/// Loads a student the caller may see, with its school; otherwise 404.
fn visible_student(x: &Xueji, c: &TokenRecord, id: &str) -> ApiResult<(Student, School)> {
    let not_found = || ApiError::not_found("student", id);
    let student = x.find_student(id)?.ok_or_else(not_found)?;
    let school = x.find_school(&student.school)?.ok_or_else(not_found)?;
    if scope::student(c, &student, &school) {
        Ok((student, school))
    } else {
        Err(not_found())
    }
}

/// The answer to a filed change. `decided_on`: the student as the decision saw them, when the
/// caller's role may not see all of them (their decision's messages are masked against it).
fn outcome_response(
    state: &AppState,
    outcome: Outcome,
    role: Role,
    decided_on: Option<&Student>,
) -> Response {
    let (status, body) = outcome_body(state, outcome, role, decided_on);
    (status, axum::Json(body)).into_response()
}

/// The status and body of [`outcome_response`].
pub(super) fn outcome_body(
    state: &AppState,
    outcome: Outcome,
    role: Role,
    decided_on: Option<&Student>,
) -> (StatusCode, Value) {
    let mask = |decision: Decision, student: Option<&Student>| match student {
        Some(s) => decision_view(decision, s, role),
        None => decision,
    };
    let (status, body) = match outcome {
        Outcome::Applied {
            decision,
            student,
            event,
        } => (
            StatusCode::CREATED,
            json!({ "outcome": "applied", "decision": mask(decision, Some(&student)), "student": student_view(&student, role), "event": event }),
        ),
        Outcome::Pending { decision, request } => (
            StatusCode::ACCEPTED,
            json!({ "outcome": "pending", "decision": mask(decision, decided_on), "request": request_view(&state.xueji, &request, role, decided_on) }),
        ),
        Outcome::Denied { decision } => {
            let decision = mask(decision, decided_on);
            let error = json!({ "code": "denied_by_policy", "message": decision.denial_message(), "details": {} });
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({ "outcome": "denied", "decision": decision, "error": error }),
            )
        }
        Outcome::DryRun { decision } => (
            StatusCode::OK,
            json!({ "dry_run": true, "decision": mask(decision, decided_on) }),
        ),
    };
    let outcome = body
        .get("outcome")
        .and_then(Value::as_str)
        .unwrap_or("dry_run");
    state.metrics.decision(outcome);
    (status, body)
}

/// An earlier enrolment as `student.previous` lists it: where and when, no personal data.
fn previous_view(e: &Enrolment) -> Value {
    json!({
        "id": e.student.id,
        "school": e.student.school,
        "school_name": e.school_name,
        "status": e.student.status,
        "status_zh": e.student.status.zh(),
        "entry_date": e.student.entry_date,
        "last_event_date": e.last_event_date,
    })
}

/// `?dry_run=true`; any other parameter is refused, so that a misspelt `dryrun` cannot apply
/// the change it meant to try.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DryRun {
    /// `true`: decide and answer, store nothing.
    #[serde(default)]
    dry_run: bool,
}

/// An admission as `create_student` handles it, once its body is read.
enum Admission {
    Form(Box<NewStudentForm>),
    Certified(Box<crate::domain::certificate::CertifiedAdmission>),
}

#[utoipa::path(post, path = "/v1/students", tag = "students", summary = "录取建档(admit)", params(DryRun), request_body = super::doc_types::NewStudentForm, responses((status = 201, description = "已办理 applied / created", body = super::doc_types::TransitionAnswer), (status = 200, description = "OK", body = super::doc_types::TransitionAnswer), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 409, description = "冲突(重复学籍、版本冲突、申请已办结)", body = ErrorBody), (status = 422, description = "政策不允许或政策执行失败", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn create_student(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<DryRun>,
    body: super::extract::AdmissionBody,
) -> ApiResult<Response> {
    // A form of the wrong shape is answered with all its field errors first.
    let body = match body {
        super::extract::AdmissionBody::Form(form) => match *form {
            Ok(form) => Admission::Form(Box::new(form)),
            Err(shape) => return Err(student_shape_errors(&state, c, shape).await),
        },
        super::extract::AdmissionBody::Certified(form) => Admission::Certified(form),
    };
    require_role(&c, &[Role::Admin, Role::Registrar], "建立学籍")?;
    let role = c.role;
    let school_id = match &body {
        Admission::Form(form) => form.school.clone(),
        Admission::Certified(form) => form.school.clone(),
    };
    let (outcome, previous) = blocking(&state, move |x| {
        match x.find_school(&school_id)? {
            Some(s) if scope::school(&c, &s) => {}
            _ => {
                return Err(ApiError::bad_request(
                    "unknown_school",
                    "school",
                    format!("学校「{school_id}」不存在"),
                ));
            }
        }
        let outcome = match body {
            Admission::Form(form) => x.admit(*form, &actor(&c), q.dry_run),
            Admission::Certified(form) => x.admit_by_certificate(*form, &actor(&c), q.dry_run),
        }
        .map_err(ApiError::from)?;
        // The person's earlier enrolments the caller may see (一人一号: 升学, re-entry).
        let previous = match &outcome {
            Outcome::Applied { student, .. } => Some(
                x.enrolments_of(student.national_id.as_str(), |st, sc| {
                    st.id != student.id && scope::student(&c, st, sc)
                })
                .map_err(ApiError::from)?,
            ),
            _ => None,
        };
        Ok((outcome, previous))
    })
    .await?;
    let (status, mut body) = outcome_body(&state, outcome, role, None);
    if let (Some(previous), Some(student)) = (
        previous,
        body.get_mut("student").and_then(Value::as_object_mut),
    ) {
        student.insert(
            "previous".into(),
            Value::Array(previous.iter().map(previous_view).collect()),
        );
    }
    Ok((status, axum::Json(body)).into_response())
}

/// A creation body of the wrong shape: its shape errors and, when the caller may create
/// students at its school, the errors of the values that were right (the checks of a creation,
/// nothing stored), so that every field error comes back at once.
async fn student_shape_errors(
    state: &AppState,
    c: TokenRecord,
    mut shape: Shape<NewStudentForm>,
) -> ApiError {
    let may_create = [Role::Admin, Role::Registrar].contains(&c.role);
    if let (Some(form), true) = (shape.read.take(), may_create) {
        let values = blocking(state, move |x| {
            let visible = x
                .find_school(&form.school)
                .ok()
                .flatten()
                .is_some_and(|s| scope::school(&c, &s));
            match x.admit(form, &actor(&c), true) {
                Err(ServiceError::Invalid(i)) if visible => i.errors,
                _ => Vec::new(),
            }
        })
        .await;
        let values: Vec<_> = values
            .into_iter()
            .filter(|e| !shape.covers(&e.field))
            .collect();
        shape.errors.extend(values);
    }
    shape_errors(shape.errors)
}

#[utoipa::path(get, path = "/v1/persons/{national_id}/enrolments", tag = "students", summary = "一人一号:此人的全部学籍(在权限范围内,按入学先后)", params(("national_id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::Enrolments), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody)))]
async fn person_enrolments(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(national_id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let role = c.role;
    let enrolments = blocking(&state, move |x| -> ApiResult<Vec<Enrolment>> {
        let number =
            crate::domain::student::parse_national_id(&national_id, "national_id", x.today())
                .map_err(|e| ApiError::from(crate::domain::InvalidInput::from(e)))?;
        let found = x
            .enrolments_of(number.as_str(), |st, sc| scope::student(&c, st, sc))
            .map_err(ApiError::from)?;
        // None visible and none at all answer alike: a number outside the caller's scope
        // reveals nothing.
        if found.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "没有在权限范围内的该学生学籍记录",
            )
            .with_details(json!({ "resource": "person" })));
        }
        Ok(found)
    })
    .await?;
    let items: Vec<Value> = enrolments
        .iter()
        .map(|e| {
            let mut v = student_view(&e.student, role);
            if let Some(o) = v.as_object_mut() {
                o.insert("school_name".into(), json!(e.school_name));
                o.insert("last_event_date".into(), json!(e.last_event_date));
            }
            v
        })
        .collect();
    Ok(axum::Json(json!({ "enrolments": items })))
}

#[utoipa::path(get, path = "/v1/students/{id}", tag = "students", summary = "查看学生(按角色脱敏)", params(("id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::Student), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 400, description = "请求或字段无效", body = ErrorBody)))]
async fn get_student(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let role = c.role;
    let (student, _) = blocking(&state, move |x| visible_student(x, &c, &id)).await?;
    Ok(axum::Json(student_view(&student, role)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StudentQuery {
    /// School id (staff of a school always list their own).
    school: Option<String>,
    /// Jurisdiction id, when no school is given (officers: their own).
    jurisdiction: Option<String>,
    grade: Option<u8>,
    class: Option<String>,
    #[param(schema_with = super::schema::status)]
    status: Option<Status>,
    /// Part of the name, or the exact national student number.
    q: Option<String>,
    /// Page size: default 100, at most 1000 (larger values are clamped).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/students", tag = "students", summary = "学生列表(分页)", params(StudentQuery), responses((status = 200, description = "OK", body = super::doc_types::StudentPage), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody)))]
async fn list_students(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<StudentQuery>,
) -> ApiResult<impl IntoResponse> {
    let role = c.role;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let (limit, after) = (page.limit(), page.after()?);
    let page = blocking(&state, move |x| -> ApiResult<Page<Value>> {
        // A filter never widens or silently changes what is asked: one naming another school,
        // class or jurisdiction than the caller's own matches nothing.
        let empty = || Page {
            items: Vec::new(),
            next_cursor: None,
        };
        let class = if c.role == Role::HeadTeacher {
            if q.class.is_some() && q.class != c.class {
                return Ok(empty());
            }
            c.class.clone()
        } else {
            q.class.clone()
        };
        let matches = |s: &Student| {
            q.status.is_none_or(|st| s.status == st)
                && q.grade.is_none_or(|g| s.grade == g)
                && class
                    .as_deref()
                    .is_none_or(|cl| s.class.as_deref() == Some(cl))
                && q.q.as_deref().is_none_or(|needle| {
                    s.name.contains(needle) || s.national_id.as_str() == needle
                })
        };
        if c.role == Role::Guardian {
            // A guardian's list is their child, when every filter matches them.
            let id = c.student.clone().unwrap_or_default();
            let items = visible_student(x, &c, &id)
                .ok()
                .filter(|(s, _)| {
                    q.school.as_ref().is_none_or(|sc| *sc == s.school)
                        && q.jurisdiction.as_ref().is_none_or(|j| *j == s.jurisdiction)
                        && matches(s)
                })
                .map(|(s, _)| vec![student_view(&s, role)])
                .unwrap_or_default();
            return Ok(Page {
                items,
                next_cursor: None,
            });
        }
        // Staff of one school list that school (a head teacher: their class).
        let school_id = match c.role {
            Role::SchoolLeader | Role::Registrar | Role::HeadTeacher => {
                if q.school.is_some() && q.school != c.school {
                    return Ok(empty());
                }
                c.school.clone()
            }
            _ => q.school.clone(),
        };
        if c.role == Role::DistrictOfficer
            && q.jurisdiction.is_some()
            && q.jurisdiction != c.jurisdiction
        {
            return Ok(empty());
        }
        let mut rows = Vec::new();
        let mut cursor = after;
        // Scan index pages until a page of matches is found (bounded).
        for _ in 0..50 {
            let batch = match &school_id {
                Some(sid) => {
                    let Ok(school) = visible_school(x, &c, sid) else {
                        return Ok(empty());
                    };
                    let grade = if class.is_some() && q.grade.is_none() {
                        None
                    } else {
                        q.grade
                    };
                    x.students_of_school(
                        &school.jurisdiction,
                        &school.id,
                        grade,
                        if grade.is_some() {
                            class.as_deref()
                        } else {
                            None
                        },
                        cursor.as_deref(),
                        limit + 1,
                    )
                }
                None => {
                    let jur = match c.role {
                        Role::DistrictOfficer => c.jurisdiction.clone(),
                        _ => q.jurisdiction.clone(),
                    }
                    .ok_or_else(|| {
                        ApiError::bad_request("required", "school", "请指定 school 或 jurisdiction")
                    })?;
                    match q.status {
                        Some(st) => x.students_with_status(&jur, st, cursor.as_deref(), limit + 1),
                        None => x.students_of_jurisdiction(&jur, cursor.as_deref(), limit + 1),
                    }
                }
            }?;
            let exhausted = batch.len() <= limit;
            cursor = batch.last().map(|(k, _)| k.clone());
            for (k, s) in batch {
                let in_scope = x
                    .find_school(&s.school)
                    .ok()
                    .flatten()
                    .is_some_and(|sc| scope::student(&c, &s, &sc));
                if in_scope && matches(&s) {
                    rows.push((k, s));
                }
            }
            if exhausted || rows.len() > limit {
                break;
            }
        }
        Ok(Page::from_rows(rows, limit, |s| student_view(&s, role)))
    })
    .await?;
    Ok(axum::Json(page))
}

#[utoipa::path(post, path = "/v1/students/{id}/transitions", tag = "students", summary = "学籍异动(可 dry_run)", params(("id" = String, Path), DryRun), request_body = super::doc_types::TransitionInput, responses((status = 200, description = "OK", body = super::doc_types::TransitionAnswer), (status = 201, description = "已办理 applied / created", body = super::doc_types::TransitionAnswer), (status = 202, description = "待审批 pending", body = super::doc_types::TransitionAnswer), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 409, description = "冲突(重复学籍、版本冲突、申请已办结)", body = ErrorBody), (status = 422, description = "政策不允许或政策执行失败", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn transition(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DryRun>,
    ApiJson(input): ApiJson<TransitionInput>,
) -> ApiResult<Response> {
    let allowed = match c.role {
        Role::Admin | Role::Registrar => true,
        Role::HeadTeacher => input.kind == TransitionKind::CorrectInfo,
        _ => false,
    };
    if !allowed {
        return Err(ApiError::forbidden("办理此项学籍变动"));
    }
    let role = c.role;
    let sees_everything = role.visibility().everything();
    let (outcome, decided_on) = blocking(&state, move |x| {
        let decided_on = std::cell::RefCell::new(None);
        let outcome = x
            .transition_in_scope(&id, input, &actor(&c), q.dry_run, |student, school| {
                let in_scope = scope::student(&c, student, school);
                if in_scope && !sees_everything {
                    decided_on.replace(Some(student.clone()));
                }
                in_scope
            })
            .map_err(ApiError::from)?;
        let decided_on = decided_on.into_inner();
        Ok::<_, ApiError>((outcome, decided_on))
    })
    .await?;
    Ok(outcome_response(&state, outcome, role, decided_on.as_ref()))
}

#[utoipa::path(get, path = "/v1/students/{id}/transfer-certificate", tag = "students", summary = "转学证明(已转出学生,Ed25519 签名)", params(("id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::SignedCertificate), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 409, description = "学生尚未转出", body = ErrorBody)))]
async fn transfer_certificate(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    // The certificate carries the person's ID number and guardians: only roles that see them.
    if !c.role.visibility().identity_numbers || c.role == Role::Guardian {
        return Err(ApiError::forbidden("开具转学证明"));
    }
    let signed = blocking(&state, move |x| {
        x.transfer_certificate(&id, |student, school| scope::student(&c, student, school))
            .map_err(ApiError::from)
    })
    .await?;
    Ok(axum::Json(signed))
}

#[utoipa::path(get, path = "/v1/keys", tag = "audit", summary = "本服务器签发转学证明的公钥", security(()), responses((status = 200, description = "OK", body = super::doc_types::PublishedKeys)))]
async fn public_keys(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    let keys = state.xueji.keys().map(|ring| crate::keys::PublishedKeys {
        issuer: ring.issuer().to_owned(),
        keys: ring.published().to_vec(),
    });
    keys.map(axum::Json).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            "本服务未配置转学证明密钥",
        )
    })
}

#[utoipa::path(post, path = "/v1/transfers", tag = "students", summary = "转入学校发起转学(按全国学籍号和姓名找到学生)", params(DryRun), request_body = super::doc_types::TransferBody, responses((status = 202, description = "待审批 pending", body = super::doc_types::TransitionAnswer), (status = 200, description = "试算结果(dry_run)", body = super::doc_types::TransitionAnswer), (status = 422, description = "政策不允许", body = super::doc_types::TransitionAnswer), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "学校不在权限范围内,或没有此学籍号与姓名相符的在籍学生", body = ErrorBody), (status = 409, description = "冲突", body = ErrorBody)))]
async fn transfer_into(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<DryRun>,
    ApiJson(form): ApiJson<crate::domain::TransferForm>,
) -> ApiResult<Response> {
    require_role(&c, &[Role::Admin, Role::Registrar], "办理转入")?;
    let role = c.role;
    let outcome = blocking(&state, move |x| {
        x.transfer_into(&form, &actor(&c), q.dry_run, |school| {
            scope::school(&c, school)
        })
        .map_err(ApiError::from)
    })
    .await?;
    Ok(outcome_response(&state, outcome, role, None))
}

#[utoipa::path(get, path = "/v1/students/{id}/events", tag = "history", summary = "学籍历史(分页)", params(("id" = String, Path), PageParams), responses((status = 200, description = "OK", body = super::doc_types::EventPage), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 400, description = "请求或字段无效", body = ErrorBody)))]
async fn events(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<impl IntoResponse> {
    let (limit, after) = (page.limit(), page.after()?);
    let role = c.role;
    let page = blocking(&state, move |x| -> ApiResult<Page<Value>> {
        let (student, _) = visible_student(x, &c, &id)?;
        let events = x.events(&id)?;
        let skip: u64 = after.and_then(|a| a.parse().ok()).unwrap_or(0);
        let rows: Vec<(String, Value)> = events
            .into_iter()
            .filter(|e| e.seq > skip)
            .take(limit + 1)
            .map(|mut e| {
                // A recorded message spelling out what this role may not see, now or as the
                // decision saw the student, is withheld (the event then no longer re-hashes on
                // the client: `/verify` checks it here).
                if !role.visibility().everything() {
                    if let Ok(Some(context)) = x.context_of(&e) {
                        e.decision = decision_view(e.decision, &context.student, role);
                    }
                    e.decision = decision_view(e.decision, &student, role);
                }
                (
                    e.seq.to_string(),
                    serde_json::to_value(&e).unwrap_or(Value::Null),
                )
            })
            .collect();
        Ok(Page::from_rows(rows, limit, |v| v))
    })
    .await?;
    Ok(axum::Json(page))
}

#[utoipa::path(get, path = "/v1/students/{id}/verify", tag = "history", summary = "校验一名学生的历史链", params(("id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::ChainReport), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 400, description = "请求或字段无效", body = ErrorBody)))]
async fn verify_student(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let report = blocking(&state, move |x| -> ApiResult<_> {
        visible_student(x, &c, &id)?;
        Ok(x.verify_student(&id)?)
    })
    .await?;
    Ok(axum::Json(report))
}

#[utoipa::path(get, path = "/v1/verify", tag = "history", summary = "校验全部历史链", responses((status = 200, description = "OK", body = super::doc_types::VerifyAllReport), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody)))]
async fn verify_all(
    State(state): State<AppState>,
    Caller(c): Caller,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, &[Role::Admin], "校验全部历史")?;
    let (chains, decisions, logs) = blocking(&state, |x| -> crate::engine::Result<_> {
        Ok((
            x.verify_all()?,
            x.reproduce_decisions(None)?,
            x.verify_logs(&[])?,
        ))
    })
    .await?;
    let logs_ok = logs.iter().all(|l| l.ok);
    Ok(axum::Json(json!({
        "ok": chains.ok && decisions.ok && logs_ok,
        "students": chains.students,
        "events": chains.events,
        "chain_failures": chains.failures,
        "stats_failures": chains.stats_failures,
        "index_failures": chains.index_failures,
        "damaged": chains.damaged,
        "decisions": decisions,
        "logs": logs,
    })))
}

// ---- requests --------------------------------------------------------------------------

/// A request as `role` sees it: its decisions' messages masked against the student when the
/// role may not see all of them (`decided_on`; `None` for a role that sees everything).
fn request_view(x: &Xueji, r: &ApprovalRequest, role: Role, decided_on: Option<&Student>) -> Value {
    let masked;
    let r = match decided_on {
        Some(student) => {
            masked = ApprovalRequest {
                decision: decision_view(r.decision.clone(), student, role),
                final_decision: r
                    .final_decision
                    .clone()
                    .map(|d| decision_view(d, student, role)),
                ..r.clone()
            };
            &masked
        }
        None => r,
    };
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("next_step".into(), json!(r.next_step()));
        // Each step with its clock (opened, due in working days, who acted when).
        o.insert(
            "steps".into(),
            crate::engine::clocks_json(&x.step_clocks(r)),
        );
        // The filed input may carry new personal values (key-information changes) until applied.
        if let Some(fields) = o
            .get_mut("input")
            .and_then(|i| i.get_mut("params"))
            .and_then(|p| p.get_mut("fields"))
            && let Some(f) = fields.as_object_mut()
        {
            for v in f.values_mut() {
                *v = json!("***");
            }
        }
    }
    v
}

/// [`request_view`], reading the request's student when the caller's role may not see all of it.
fn request_view_for(x: &Xueji, r: &ApprovalRequest, role: Role) -> Value {
    let student = if role.visibility().everything() {
        None
    } else {
        x.find_student(&r.student).ok().flatten()
    };
    request_view(x, r, role, student.as_ref())
}

/// Loads a request the caller may see; otherwise 404.
fn visible_request(
    x: &Xueji,
    c: &TokenRecord,
    id: &str,
) -> ApiResult<(ApprovalRequest, School, Option<School>)> {
    let not_found = || ApiError::not_found("request", id);
    let r = x.find_request(id)?.ok_or_else(not_found)?;
    let school = x.find_school(&r.school)?.ok_or_else(not_found)?;
    let receiving = match &r.receiving_school {
        Some(rs) => x.find_school(rs)?,
        None => None,
    };
    if scope::request(c, &school, receiving.as_ref()) {
        Ok((r, school, receiving))
    } else {
        Err(not_found())
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RequestQuery {
    /// Default `pending`.
    #[param(schema_with = super::schema::request_status)]
    status: Option<RequestStatus>,
    school: Option<String>,
    jurisdiction: Option<String>,
    /// Only requests whose next step is this one.
    #[param(schema_with = super::schema::approval_step)]
    step: Option<ApprovalStep>,
    /// `true`: only requests with a step past its due date as of `as_of`; `false`: only those
    /// without.
    overdue: Option<bool>,
    /// The day `overdue` is judged on; default today (in the service's time zone).
    #[param(value_type = Option<String>, format = Date)]
    as_of: Option<Date>,
    /// Page size: default 100, at most 1000 (larger values are clamped).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/requests", tag = "requests", summary = "审批申请列表", params(RequestQuery), responses((status = 200, description = "OK", body = super::doc_types::RequestPage), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody)))]
async fn list_requests(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<RequestQuery>,
) -> ApiResult<impl IntoResponse> {
    require_role(
        &c,
        &[
            Role::Admin,
            Role::DistrictOfficer,
            Role::SchoolLeader,
            Role::Registrar,
        ],
        "查看审批申请",
    )?;
    let page = PageParams {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let (limit, after) = (page.limit(), page.after()?);
    let page = blocking(&state, move |x| -> ApiResult<Page<Value>> {
        let jur = match (&c.jurisdiction, &q.jurisdiction, &c.school) {
            // Another jurisdiction than the caller's own matches nothing (never their own rows).
            (Some(j), Some(asked), _) if asked != j => {
                return Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                });
            }
            (Some(j), _, _) => j.clone(),
            (None, Some(j), _) => j.clone(),
            (None, None, Some(s)) => x
                .find_school(s)?
                .map(|s| s.jurisdiction)
                .unwrap_or_default(),
            _ => {
                return Err(ApiError::bad_request(
                    "required",
                    "jurisdiction",
                    "请指定 jurisdiction",
                ));
            }
        };
        let status = q.status.unwrap_or(RequestStatus::Pending);
        let overdue_on = q.as_of.unwrap_or_else(|| x.today());
        let mut rows = Vec::new();
        let mut cursor = after;
        for _ in 0..50 {
            let batch = x.requests_with_status(&jur, status, cursor.as_deref(), limit + 1)?;
            let exhausted = batch.len() <= limit;
            cursor = batch.last().map(|(k, _)| k.clone());
            for (k, r) in batch {
                let visible = visible_request(x, &c, &r.id).is_ok();
                let matches = q
                    .school
                    .as_deref()
                    .is_none_or(|s| r.school == s || r.receiving_school.as_deref() == Some(s))
                    && q.step.is_none_or(|st| r.next_step() == Some(st))
                    && q.overdue
                        .is_none_or(|want| x.overdue_step(&r, overdue_on).is_some() == want);
                if visible && matches {
                    rows.push((k, r));
                }
            }
            if exhausted || rows.len() > limit {
                break;
            }
        }
        let role = c.role;
        Ok(Page::from_rows(rows, limit, |r| {
            request_view_for(x, &r, role)
        }))
    })
    .await?;
    Ok(axum::Json(page))
}

#[utoipa::path(get, path = "/v1/requests/{id}", tag = "requests", summary = "查看审批申请", params(("id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::ApprovalRequest), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 400, description = "请求或字段无效", body = ErrorBody)))]
async fn get_request(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let role = c.role;
    let view = blocking(&state, move |x| {
        visible_request(x, &c, &id).map(|(r, _, _)| request_view_for(x, &r, role))
    })
    .await?;
    Ok(axum::Json(view))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct StepBody {
    #[schema(schema_with = super::schema::approval_step)]
    step: ApprovalStep,
    #[serde(default)]
    comment: Option<String>,
}

async fn decide_request(
    state: AppState,
    c: TokenRecord,
    id: String,
    b: StepBody,
    approve: bool,
) -> ApiResult<Response> {
    let role = c.role;
    let (out, request, event) = blocking(&state, move |x| {
        let (_, school, receiving) = visible_request(x, &c, &id)?;
        if !scope::approve(&c, b.step, &school, receiving.as_ref()) {
            return Err(ApiError::forbidden(&format!("审批「{}」", b.step.zh())));
        }
        if approve {
            x.approve(&id, b.step, &actor(&c), b.comment)
                .map_err(ApiError::from)
        } else {
            let comment = b
                .comment
                .ok_or_else(|| ApiError::bad_request("required", "comment", "驳回须填写理由"))?;
            x.reject(&id, b.step, &actor(&c), comment)
                .map_err(ApiError::from)
        }
        .map(|out| {
            let request = request_view_for(x, &out.request, role);
            let event = out.event.clone().map(|mut e| {
                if let Some(student) = out.student.as_ref() {
                    e.decision = decision_view(e.decision, student, role);
                }
                e
            });
            (out, request, event)
        })
    })
    .await?;
    state.metrics.decision(out.outcome);
    let mut body = json!({ "request": request, "outcome": out.outcome });
    if let Some(e) = &event {
        body["event"] = json!(e);
    }
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

#[utoipa::path(post, path = "/v1/requests/{id}/approve", tag = "requests", summary = "审批通过一个环节", params(("id" = String, Path)), request_body = StepBody, responses((status = 200, description = "OK", body = super::doc_types::StepAnswer), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 409, description = "冲突(重复学籍、版本冲突、申请已办结)", body = ErrorBody), (status = 422, description = "政策不允许或政策执行失败", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn approve(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<StepBody>,
) -> ApiResult<Response> {
    decide_request(state, c, id, b, true).await
}

#[utoipa::path(post, path = "/v1/requests/{id}/reject", tag = "requests", summary = "驳回申请", params(("id" = String, Path)), request_body = StepBody, responses((status = 200, description = "OK", body = super::doc_types::StepAnswer), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 409, description = "冲突(重复学籍、版本冲突、申请已办结)", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn reject(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<StepBody>,
) -> ApiResult<Response> {
    decide_request(state, c, id, b, false).await
}

// ---- deadlines -------------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SweepBody {
    #[schema(value_type = String, format = Date)]
    as_of: Date,
    #[serde(default)]
    jurisdiction: Option<String>,
}

#[utoipa::path(post, path = "/v1/sweeps", tag = "deadlines", summary = "期限处理(如逾期未报到)", request_body = SweepBody, responses((status = 200, description = "OK", body = super::doc_types::SweepReport), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn sweep(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiJson(b): ApiJson<SweepBody>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, &[Role::Admin, Role::DistrictOfficer], "执行期限处理")?;
    let jurisdiction = match c.role {
        Role::DistrictOfficer => {
            if b.jurisdiction.is_some() && b.jurisdiction != c.jurisdiction {
                return Err(ApiError::not_found(
                    "jurisdiction",
                    b.jurisdiction.as_deref().unwrap_or(""),
                ));
            }
            c.jurisdiction.clone()
        }
        _ => b.jurisdiction,
    };
    if let Some(j) = &jurisdiction
        && state.xueji.policies().latest(j).is_none()
    {
        return Err(ApiError::not_found("jurisdiction", j));
    }
    // An area officer's sweep acts on the students of their area only.
    let sees_everything = c.role.visibility().everything();
    let mut report = blocking(&state, move |x| {
        x.sweep_in_scope(b.as_of, jurisdiction.as_deref(), |student, school| {
            scope::student(&c, student, school)
        })
    })
    .await?;
    if !sees_everything {
        // A script's error text may be built from any field of the student.
        for failure in &mut report.failed {
            failure.message = super::view::WITHHELD_MESSAGE.into();
        }
    }
    Ok(axum::Json(report))
}

// ---- tokens ----------------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    #[schema(schema_with = super::schema::role)]
    role: Role,
    #[serde(default)]
    jurisdiction: Option<String>,
    #[serde(default)]
    area: Option<String>,
    #[serde(default)]
    school: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    student: Option<String>,
    #[serde(default)]
    label: Option<String>,
    /// The token is refused from then on: RFC 3339, or a date (valid through that day, China time).
    #[serde(default)]
    expires_at: Option<String>,
}

#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", summary = "签发令牌(只显示一次)", request_body = TokenBody, responses((status = 201, description = "已办理 applied / created", body = super::doc_types::CreatedToken), (status = 400, description = "请求或字段无效;学校、学生不存在或不在权限范围内(两者同一答复)", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiJson(b): ApiJson<TokenBody>,
) -> ApiResult<Response> {
    require_role(&c, &[Role::Admin, Role::DistrictOfficer], "创建令牌")?;
    let request = TokenRequest {
        role: b.role,
        jurisdiction: b.jurisdiction,
        area: b.area,
        school: b.school,
        class: b.class,
        student: b.student,
        label: b.label,
        expires_at: b.expires_at,
    };
    let (token, record) = blocking(&state, move |x| x.issue_token(&c, request)).await?;
    let mut body = serde_json::to_value(&record).unwrap_or(Value::Null);
    // Shown once: a replay of this answer (`Idempotency-Key`) withholds it, so it is never stored.
    body["token"] = Value::Null;
    body["token_withheld"] = json!(true);
    let withheld =
        super::idempotency::StoredAs(serde_json::to_vec(&body).unwrap_or_default().into());
    body["token"] = json!(token);
    body["token_withheld"] = json!(false);
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    response.extensions_mut().insert(withheld);
    Ok(response)
}

#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", summary = "令牌列表(管理员全部;教育局本辖区;不含令牌本身)", params(PageParams), responses((status = 200, description = "OK:items 为令牌记录(id、role、范围、label、created_at、expires_at、revoked),不含令牌本身", body = super::doc_types::TokenPage), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiQuery(q): ApiQuery<PageParams>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, &[Role::Admin, Role::DistrictOfficer], "查看令牌")?;
    let after = q.after()?;
    let limit = q.limit();
    let rows = blocking(&state, move |x| {
        x.list_tokens(&c, after.as_deref(), limit + 1)
    })
    .await?;
    Ok(axum::Json(Page::from_rows(rows, limit, |r| r)))
}

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", summary = "吊销令牌", params(("id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::TokenRecord), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 400, description = "请求或字段无效", body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    require_role(&c, &[Role::Admin, Role::DistrictOfficer], "吊销令牌")?;
    let record = blocking(&state, move |x| x.revoke_token(&c, &id)).await?;
    Ok(axum::Json(record))
}

// ---- policies --------------------------------------------------------------------------

fn policy_summary(p: &crate::policy::CompiledPolicy) -> Value {
    json!({
        "id": p.manifest.id, "name": p.manifest.name, "extends": p.manifest.extends,
        "version": p.manifest.version, "content_hash": p.content_hash, "effective_from": p.manifest.effective_from,
    })
}

#[utoipa::path(get, path = "/v1/policies", tag = "policies", summary = "政策包列表", responses((status = 200, description = "OK", body = super::doc_types::PolicyPage), (status = 401, description = "缺少或无效令牌", body = ErrorBody)))]
async fn list_policies(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<impl IntoResponse> {
    let items: Vec<Value> = state
        .xueji
        .policies()
        .all_latest()
        .iter()
        .map(|p| policy_summary(p))
        .collect();
    Ok(axum::Json(json!({ "items": items, "next_cursor": null })))
}

#[utoipa::path(get, path = "/v1/policies/{jurisdiction}", tag = "policies", summary = "政策包(清单、文件、规则、版本)", params(("jurisdiction" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::PolicySummary), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 400, description = "请求或字段无效", body = ErrorBody)))]
async fn get_policy(
    State(state): State<AppState>,
    _caller: Caller,
    ApiPath(j): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let versions = state.xueji.policies().versions(&j);
    let latest = versions
        .last()
        .ok_or_else(|| ApiError::not_found("jurisdiction", &j))?;
    let mut body = policy_summary(latest);
    body["manifest"] = json!(latest.manifest);
    body["files"] = json!(latest.source.files);
    body["rules"] = json!(latest.rule_infos());
    body["versions"] = json!(
        versions
            .iter()
            .map(|p| policy_summary(p))
            .collect::<Vec<_>>()
    );
    Ok(axum::Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluateBody {
    student: EvalStudent,
    transition: TransitionInput,
    #[serde(default)]
    school: Option<crate::policy::testing::CaseSchool>,
    /// Evaluate as the deadline sweep would (`c.sweep` is true).
    #[serde(default)]
    sweep: bool,
}

/// Either an existing student (by id) or the case fields of a hypothetical one.
#[derive(Deserialize)]
#[serde(untagged)]
enum EvalStudent {
    Existing { id: String },
    Hypothetical(crate::policy::testing::CaseStudent),
}

#[utoipa::path(post, path = "/v1/policies/{jurisdiction}/evaluate", tag = "policies", summary = "试算决定(不保存)", params(("jurisdiction" = String, Path)), request_body = super::doc_types::EvaluateBody, responses((status = 200, description = "OK", body = super::doc_types::DryRunAnswer), (status = 400, description = "请求或字段无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 422, description = "政策不允许或政策执行失败", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn evaluate_policy(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(j): ApiPath<String>,
    ApiJson(b): ApiJson<EvaluateBody>,
) -> ApiResult<impl IntoResponse> {
    may_change_policy(&c, &j)?;
    b.transition.validate()?;
    let role = c.role;
    let decision = blocking(&state, move |x| -> ApiResult<_> {
        let policy = x
            .policies()
            .in_force(&j, b.transition.effective_date)
            .map_err(|e| match e {
                crate::policy::PolicyError::NoPolicy { .. } => {
                    ApiError::not_found("jurisdiction", &j)
                }
                other => policy_error(&other),
            })?;
        let (student, school) = match b.student {
            EvalStudent::Existing { id } => visible_student(x, &c, &id)?,
            EvalStudent::Hypothetical(cs) => {
                let case = crate::policy::testing::TestCase {
                    name: String::new(),
                    student: cs,
                    school: b.school.unwrap_or_default(),
                    transition: b.transition.clone(),
                    sweep: b.sweep,
                    settings: Default::default(),
                    expect: Default::default(),
                };
                case.build(&policy)
            }
        };
        let decision = crate::policy::evaluate(
            &policy,
            crate::policy::Case {
                student: &student,
                school: &school,
                input: &b.transition,
                sweep: b.sweep,
            },
        )
        .map_err(|e| policy_error(&e))?;
        Ok(decision_view(decision, &student, role))
    })
    .await?;
    Ok(axum::Json(json!({ "dry_run": true, "decision": decision })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PackageBody {
    /// Relative path → file text: `policy.toml`, `*.rhai`, `tests/*.toml`, `README.md`.
    files: std::collections::BTreeMap<String, String>,
}

/// Only an admin or a jurisdiction-wide officer of that jurisdiction changes its rules.
fn may_change_policy(c: &TokenRecord, jurisdiction: &str) -> ApiResult<()> {
    match c.role {
        Role::Admin => Ok(()),
        Role::DistrictOfficer
            if c.area.is_none() && c.jurisdiction.as_deref() == Some(jurisdiction) =>
        {
            Ok(())
        }
        Role::DistrictOfficer if c.jurisdiction.as_deref() != Some(jurisdiction) => {
            Err(ApiError::not_found("jurisdiction", jurisdiction))
        }
        _ => Err(ApiError::forbidden("修改政策包(仅管理员或本辖区市级账号)")),
    }
}

fn rejection(r: crate::engine::lifecycle::Rejection) -> ApiError {
    let first = r
        .errors
        .first()
        .map(|e| match (e.position.file.as_str(), e.position.line) {
            // A limit of the whole package has no place in it to point at.
            ("", _) => e.message.clone(),
            (file, 0) => format!("{file} {}", e.message),
            _ => format!("{} {}", e.position, e.message),
        })
        .or_else(|| {
            r.failing_tests
                .first()
                .map(|t| format!("测试未通过:{} «{}»", t.file, t.name))
        })
        .or_else(|| r.untested_rules.first().cloned())
        .unwrap_or_default();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "policy_rejected",
        format!("政策包未通过检查,原版本继续有效:{first}"),
    )
    .with_details(json!(r))
}

#[utoipa::path(put, path = "/v1/policies/{jurisdiction}", tag = "policies", summary = "上传政策包:编译、运行自带测试,通过后原子切换", params(("jurisdiction" = String, Path)), request_body = PackageBody, responses((status = 200, description = "已启用新版本", body = super::doc_types::PolicySummary), (status = 400, description = "请求无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 422, description = "编译错误或测试未通过;原版本继续有效", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn put_policy(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(j): ApiPath<String>,
    ApiJson(b): ApiJson<PackageBody>,
) -> ApiResult<impl IntoResponse> {
    may_change_policy(&c, &j)?;
    let source = crate::policy::PackageSource { files: b.files };
    let result = blocking(&state, move |x| x.activate(&j, &source, &actor(&c))).await?;
    let p = result.map_err(rejection)?;
    let mut body = policy_summary(&p);
    body["rules"] = json!(p.rule_infos());
    Ok(axum::Json(body))
}

#[utoipa::path(post, path = "/v1/policies/{jurisdiction}/impact", tag = "policies", summary = "影响分析:用候选政策包重放历史与待审批申请", params(("jurisdiction" = String, Path)), request_body = PackageBody, responses((status = 200, description = "会改变的决定及统计", body = super::doc_types::ImpactReport), (status = 400, description = "请求无效", body = ErrorBody), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 422, description = "候选政策包无法编译", body = ErrorBody), (status = 413, description = "请求体过大(上限 1 MiB)", body = ErrorBody)))]
async fn impact(
    State(state): State<AppState>,
    Caller(c): Caller,
    ApiPath(j): ApiPath<String>,
    ApiJson(b): ApiJson<PackageBody>,
) -> ApiResult<impl IntoResponse> {
    // Replaying a candidate reads every student of the jurisdiction: only those who may
    // change its rules may run one.
    may_change_policy(&c, &j)?;
    let source = crate::policy::PackageSource { files: b.files };
    let report = blocking(&state, move |x| -> ApiResult<_> {
        if x.policies().latest(&j).is_none() {
            return Err(ApiError::not_found("jurisdiction", &j));
        }
        let manifest = source.manifest().map_err(|e| {
            rejection(crate::engine::lifecycle::Rejection {
                errors: vec![e],
                failing_tests: vec![],
                untested_rules: vec![],
            })
        })?;
        let base = manifest
            .extends
            .as_deref()
            .and_then(|b| x.policies().latest(b));
        let candidate = crate::policy::compile_package(&source, base).map_err(|errors| {
            rejection(crate::engine::lifecycle::Rejection {
                errors,
                failing_tests: vec![],
                untested_rules: vec![],
            })
        })?;
        x.impact(&j, &candidate).map_err(ApiError::from)
    })
    .await?;
    Ok(axum::Json(report))
}
