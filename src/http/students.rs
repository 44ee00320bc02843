//! Students: admission, reading, lists, a person's enrolments, transitions, transfers and
//! transfer certificates, history and its verification.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, Shape, require_role, shape_errors};
use super::requests::request_view;
use super::routes::*;
use super::schools::visible_school;
use super::view::{Page, PageParams, decision_view, student_view};
use super::{AppState, blocking};
use crate::auth::{Role, TokenRecord, scope};
use crate::domain::student::NewStudentForm;
use crate::domain::{Decision, School, Status, Student, TransitionInput, TransitionKind};
use crate::engine::{Enrolment, Filing, Outcome, Queued, ServiceError, Xueji};
use std::sync::Arc;

/// Loads a student the caller may see, with its school; otherwise 404.
pub(super) fn visible_student(
    x: &Xueji,
    c: &TokenRecord,
    id: &str,
) -> ApiResult<(Student, School)> {
    x.student_for(c, id)?
        .ok_or_else(|| ApiError::not_found("student", id))
}

/// The answer to a filed change. `decided_on`: the student as the decision saw them, when the
/// caller's role may not see all of them (their decision's messages are masked against it).
pub(super) fn outcome_response(
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
pub(super) fn previous_view(e: &Enrolment) -> Value {
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
pub(super) struct DryRun {
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
pub(super) async fn create_student(
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
pub(super) async fn student_shape_errors(
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
pub(super) async fn person_enrolments(
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
pub(super) async fn get_student(
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
pub(super) struct StudentQuery {
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
pub(super) async fn list_students(
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
pub(super) async fn transition(
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
    let (c, id, input) = (Arc::new(c), Arc::new(id), Arc::new(input));
    /// Where an attempt leaves the transition.
    enum Step {
        Done(Outcome),
        Again,
        Await(Queued),
    }
    let mut attempt = 0;
    // Decided on a blocking thread (it reads the store), then the commit is awaited here: no
    // thread waits for the writer, whose answer wakes this task.
    let (outcome, decided_on) = loop {
        attempt += 1;
        let (c, id, input) = (c.clone(), id.clone(), input.clone());
        let (step, decided_on) = blocking(&state, move |x| {
            let decided_on = std::cell::RefCell::new(None);
            let filing = x
                .attempt_transition(
                    &id,
                    &input,
                    &actor(&c),
                    q.dry_run,
                    attempt,
                    |student, school| {
                        let in_scope = scope::student(&c, student, school);
                        if in_scope && !sees_everything {
                            decided_on.replace(Some(student.clone()));
                        }
                        in_scope
                    },
                )
                .map_err(ApiError::from)?;
            let step = match filing {
                Filing::Decided(outcome) => Step::Done(outcome),
                // Settling this one writes too: done here, whole, on this thread, which runs to
                // the end even when the client hangs up and the handler is dropped.
                Filing::Queued(Queued { receipt, then }) if then.writes() => {
                    match x.settle_filing(then, receipt.wait()) {
                        Some(outcome) => Step::Done(outcome.map_err(ApiError::from)?),
                        None => Step::Again,
                    }
                }
                Filing::Queued(queued) => Step::Await(queued),
            };
            Ok::<_, ApiError>((step, decided_on.into_inner()))
        })
        .await?;
        let Queued { receipt, then } = match step {
            Step::Done(outcome) => break (outcome, decided_on),
            Step::Again => continue,
            Step::Await(queued) => queued,
        };
        let settled = state.xueji.settle_filing(then, receipt.await);
        if let Some(outcome) = settled {
            break (outcome.map_err(ApiError::from)?, decided_on);
        }
    };
    Ok(outcome_response(&state, outcome, role, decided_on.as_ref()))
}

#[utoipa::path(get, path = "/v1/students/{id}/transfer-certificate", tag = "students", summary = "转学证明(已转出学生,Ed25519 签名)", params(("id" = String, Path)), responses((status = 200, description = "OK", body = super::doc_types::SignedCertificate), (status = 401, description = "缺少或无效令牌", body = ErrorBody), (status = 403, description = "角色无权", body = ErrorBody), (status = 404, description = "不存在或不在权限范围内", body = ErrorBody), (status = 409, description = "学生尚未转出", body = ErrorBody)))]
pub(super) async fn transfer_certificate(
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
pub(super) async fn public_keys(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
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
pub(super) async fn transfer_into(
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
pub(super) async fn events(
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
pub(super) async fn verify_student(
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
pub(super) async fn verify_all(
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
