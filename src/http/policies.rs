//! Policy packages: lists, reading, dry-run evaluation, uploads through the activation gate,
//! impact replay.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, ErrorBody, policy_error};
use super::extract::{ApiJson, ApiPath, Caller};
use super::routes::*;
use super::students::visible_student;
use super::view::decision_view;
use super::{AppState, blocking};
use crate::auth::{Role, TokenRecord};
use crate::domain::TransitionInput;

pub(super) fn policy_summary(p: &crate::policy::CompiledPolicy) -> Value {
    json!({
        "id": p.manifest.id, "name": p.manifest.name, "extends": p.manifest.extends,
        "version": p.manifest.version, "content_hash": p.content_hash, "effective_from": p.manifest.effective_from,
    })
}

#[utoipa::path(get, path = "/v1/policies", tag = "policies", summary = "政策包列表", responses((status = 200, description = "OK", body = super::doc_types::PolicyPage), (status = 401, description = "缺少或无效令牌", body = ErrorBody)))]
pub(super) async fn list_policies(
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
pub(super) async fn get_policy(
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
pub(super) struct EvaluateBody {
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
pub(super) async fn evaluate_policy(
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
pub(super) struct PackageBody {
    /// Relative path → file text: `policy.toml`, `*.rhai`, `tests/*.toml`, `README.md`.
    files: std::collections::BTreeMap<String, String>,
}

/// Only an admin or a jurisdiction-wide officer of that jurisdiction changes its rules.
pub(super) fn may_change_policy(c: &TokenRecord, jurisdiction: &str) -> ApiResult<()> {
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

pub(super) fn rejection(r: crate::engine::lifecycle::Rejection) -> ApiError {
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
pub(super) async fn put_policy(
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
pub(super) async fn impact(
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
