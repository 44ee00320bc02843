//! Every code the API answers with, and its Chinese label: what `GET /v1/codes` serves and what
//! a user interface shows in place of a bare code.
//!
//! The labels of the domain's enums live with the enums (`zh()`); this module only lists them.
//! Error codes have no enum (they are built where the error is found), so their labels live in
//! [`ERRORS`], the one table; `tests/it/codes_and_schemas.rs` reads the sources and fails on a
//! code that is returned somewhere but missing here.

use serde::Serialize;
use strum::IntoEnumIterator;

use crate::auth::Role;
use crate::domain::status::{NATIONAL_CHANGE_CODES, Reason};
use crate::domain::{ApprovalStep, DocumentKind, Level, RequestStatus, Status, TransitionKind};

/// One code and its label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Code {
    pub code: &'static str,
    pub label: &'static str,
    /// 学籍变动代码, for a transition kind the national system records under one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub national_code: Option<&'static str>,
}

impl Code {
    const fn new(code: &'static str, label: &'static str) -> Code {
        Code {
            code,
            label,
            national_code: None,
        }
    }
}

/// Everything `GET /v1/codes` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalog {
    pub statuses: Vec<Code>,
    pub transition_kinds: Vec<Code>,
    pub reasons: Vec<Code>,
    pub document_kinds: Vec<Code>,
    pub approval_steps: Vec<Code>,
    pub request_statuses: Vec<Code>,
    pub problem_kinds: Vec<Code>,
    pub levels: Vec<Code>,
    pub roles: Vec<Code>,
    pub national_change_codes: Vec<Code>,
    pub errors: Vec<Code>,
}

fn list<E: IntoEnumIterator + Into<&'static str> + Copy>(
    label: impl Fn(E) -> &'static str,
) -> Vec<Code> {
    E::iter().map(|e| Code::new(e.into(), label(e))).collect()
}

/// The whole catalogue, in the enums' order.
pub fn catalog() -> Catalog {
    Catalog {
        statuses: list(Status::zh),
        transition_kinds: TransitionKind::iter()
            .map(|k| Code {
                national_code: k.national_code(),
                ..Code::new(k.as_str(), k.zh())
            })
            .collect(),
        reasons: list(Reason::zh),
        document_kinds: list(DocumentKind::zh),
        approval_steps: list(ApprovalStep::zh),
        request_statuses: list(RequestStatus::zh),
        problem_kinds: PROBLEM_KINDS.to_vec(),
        levels: list(Level::zh),
        roles: list(Role::zh),
        national_change_codes: NATIONAL_CHANGE_CODES
            .iter()
            .map(|(code, label)| Code::new(code, label))
            .collect(),
        errors: ERRORS.to_vec(),
    }
}

/// The label of an error code, if it is one the API returns.
pub fn error_label(code: &str) -> Option<&'static str> {
    ERRORS.iter().find(|c| c.code == code).map(|c| c.label)
}

/// Kinds of problem records (问题学籍), as the national system names them.
pub const PROBLEM_KINDS: &[Code] = &[
    Code::new("duplicate_enrolment", "重复学籍"),
    Code::new("temporary_number", "临时学籍号待转正式"),
    Code::new("not_reported", "逾期未报到(义务教育,控辍保学跟踪)"),
    Code::new("overdue_request", "审批逾期"),
];

/// Every error code: `error.code` of an error answer, `details.errors[].code` of a field error,
/// an import row's error, a policy package's load error, and the problems `verify` reports.
pub const ERRORS: &[Code] = &[
    // Requests and access.
    Code::new("unauthorized", "缺少或无效的访问令牌"),
    Code::new(
        "record_damaged",
        "库中记录已损坏,无法读取(请运行 xueji verify 查看)",
    ),
    Code::new("token_expired", "访问令牌已过期"),
    Code::new("forbidden", "当前角色无权办理"),
    Code::new("not_found", "不存在或不在权限范围内"),
    Code::new("method_not_allowed", "该接口不支持此请求方法"),
    Code::new("malformed_json", "请求体不是有效的 JSON"),
    Code::new("invalid_body", "请求体无效"),
    Code::new("invalid_field", "字段类型或取值无效"),
    Code::new("unknown_field", "不认识的字段"),
    Code::new("invalid_query", "查询参数无效"),
    Code::new("invalid_path", "路径参数无效"),
    Code::new("invalid_cursor", "分页游标无效"),
    Code::new("unsupported_media_type", "请求体格式不支持"),
    Code::new("body_too_large", "请求体过大"),
    Code::new("invalid_idempotency_key", "Idempotency-Key 无效"),
    Code::new("internal", "服务器内部错误"),
    Code::new("storage_failed", "存储故障,须重启服务"),
    Code::new("backup_failed", "备份失败"),
    // Fields.
    Code::new("required", "必填项缺失"),
    Code::new("invalid_input", "输入无效"),
    Code::new("invalid_value", "取值无效"),
    Code::new("invalid_date", "日期无效"),
    Code::new("date_in_future", "日期晚于今天"),
    Code::new("expiry_in_past", "到期时间已过"),
    Code::new("invalid_character", "含有非法字符"),
    Code::new("invalid_phone", "电话号码无效"),
    Code::new("invalid_param", "参数取值无效"),
    Code::new("until_not_after_effective_date", "期满日期须晚于生效日期"),
    Code::new("unknown_param", "此类变动不接受该参数"),
    Code::new("conflicting_params", "参数相互矛盾"),
    Code::new("too_long", "内容过长"),
    Code::new("too_many", "数量超过上限"),
    Code::new("duplicate_value", "取值重复"),
    Code::new("invalid_root", "根哈希格式无效"),
    Code::new("out_of_range", "超出范围"),
    Code::new("field_not_correctable", "该字段不能以信息更正修改"),
    Code::new("wrong_change_kind", "关键信息须走关键信息变更"),
    Code::new("id_card_birth_date_mismatch", "出生日期与身份证号不符"),
    Code::new("id_card_gender_mismatch", "性别与身份证号不符"),
    Code::new("id_card_length", "身份证号位数不对"),
    Code::new("id_card_character", "身份证号含有非法字符"),
    Code::new("id_card_address_code", "身份证号行政区划代码无效"),
    Code::new(
        "id_card_foreign_permanent_resident",
        "外国人永久居留身份证不作居民身份证号录入",
    ),
    Code::new("id_card_birth_date", "身份证号中的出生日期无效"),
    Code::new("id_card_check_character", "身份证号校验位错误"),
    Code::new("id_card_prefix", "身份证号前缀无效"),
    Code::new("national_id_length", "全国学籍号位数不对"),
    Code::new("national_id_character", "全国学籍号含有非法字符"),
    Code::new("national_id_address_code", "全国学籍号行政区划代码无效"),
    Code::new(
        "national_id_foreign_permanent_resident",
        "全国学籍号含外国人永久居留身份证号",
    ),
    Code::new("national_id_birth_date", "全国学籍号中的出生日期无效"),
    Code::new("national_id_check_character", "全国学籍号校验位错误"),
    Code::new("national_id_prefix", "全国学籍号应以 G、J 或 L 开头"),
    // References and conflicts.
    Code::new("unknown_school", "学校不存在"),
    Code::new("unknown_student", "学生不存在"),
    Code::new("unknown_jurisdiction", "辖区不存在"),
    Code::new("already_exists", "已存在"),
    Code::new("admin_token_taken", "管理员令牌的值已被占用"),
    Code::new("duplicate_identity", "重复学籍"),
    Code::new(
        "national_id_not_the_person",
        "全国学籍号与该身份证号的学籍记录不是同一人",
    ),
    Code::new(
        "national_id_not_temporary",
        "全国学籍号终身不变,只有临时学籍号可以升级",
    ),
    Code::new(
        "national_id_not_the_id_card",
        "正式学籍号应为 G 加本人身份证号",
    ),
    Code::new("problem_resolved", "该问题学籍已处理完毕"),
    Code::new("problem_without_student", "该问题学籍没有对应的学生记录"),
    Code::new("version_conflict", "学生记录已被他人修改"),
    Code::new("open_request_exists", "该生已有待审批的申请"),
    Code::new("request_not_pending", "申请已办结"),
    Code::new("step_not_required", "此申请不需要该审批环节"),
    Code::new("step_already_approved", "该环节已审批"),
    Code::new("step_out_of_order", "须按顺序审批"),
    Code::new("student_changed", "申请提交后学生状态已变"),
    Code::new("empty_selection", "所选范围内没有学生"),
    Code::new("batch_students_held", "学生正由另一批次办理中"),
    // Transfer certificates between servers.
    Code::new("not_transferred_out", "学生尚未转出,不能开具转学证明"),
    Code::new("certificate_untrusted", "转学证明的签发密钥不受信任"),
    Code::new("certificate_invalid", "转学证明签名无效或已被改动"),
    Code::new("certificate_used", "转学证明已使用过"),
    Code::new("certificate_person_live", "该学生在本服务器仍有在籍学籍"),
    Code::new("certificate_keys_missing", "未配置转学证明密钥"),
    Code::new("certificate_unproven", "凭转学证明建档的来源无法证明"),
    Code::new("invalid_public_key", "公钥格式不正确"),
    // Transitions and policies.
    Code::new("invalid_transition", "当前状态不能办理此项变动"),
    Code::new("admit_needs_approval", "录取建档不能设审批"),
    Code::new("denied_by_policy", "政策不允许"),
    Code::new("policy_not_found", "该日期没有生效的政策包"),
    Code::new("policy_rejected", "政策包未通过检查"),
    Code::new("policy_bad_result", "政策规则返回的结果无效"),
    Code::new("policy_script_error", "政策规则执行出错"),
    Code::new("policy_timeout", "政策规则执行超时"),
    Code::new("policy_too_many_operations", "政策规则运算次数超过上限"),
    Code::new("policy_stack_overflow", "政策规则调用层数过深"),
    Code::new("policy_data_too_large", "政策规则数据超过大小上限"),
    Code::new("policy_unknown_field", "政策规则读取了不存在的字段"),
    Code::new("policy_unknown_variable", "政策规则使用了未定义的变量"),
    Code::new("policy_unknown_function", "政策规则调用了不存在的函数"),
    Code::new("policy_module_forbidden", "政策规则不能导入模块"),
    Code::new("policy_setting_missing", "政策包缺少必需的设置"),
    Code::new("policy_manifest", "政策包清单(policy.toml)有误"),
    Code::new("policy_base", "所继承的政策包有误"),
    Code::new("policy_syntax", "政策脚本语法错误"),
    Code::new("policy_script", "政策脚本有误"),
    Code::new("policy_rule", "政策规则定义有误"),
    Code::new("policy_citation", "政策规则缺少或引用了不存在的依据"),
    Code::new("policy_override", "覆盖上级规则有误"),
    Code::new("policy_test_file", "政策包测试文件有误"),
    Code::new("policy_tests_too_long", "政策包测试运行超时"),
    Code::new("policy_too_many_cases", "政策包测试用例过多"),
    Code::new("policy_too_many_files", "政策包文件过多"),
    Code::new("policy_too_large", "政策包过大"),
    // Import and export files.
    Code::new("import_rejected", "导入未通过校验,未导入任何学生"),
    Code::new("empty_file", "文件为空"),
    Code::new("unreadable_file", "文件无法读取"),
    Code::new("invalid_csv", "CSV 文件格式有误"),
    Code::new("invalid_xlsx", "XLSX 文件格式有误"),
    Code::new("invalid_encoding", "文件编码无法识别"),
    Code::new("too_many_rows", "行数超过上限"),
    Code::new("missing_column", "缺少必需的列"),
    Code::new("unknown_column", "不认识的列"),
    Code::new("duplicate_column", "列重复"),
    Code::new("duplicate_in_file", "文件内重复"),
    Code::new("duplicate_in_import", "与本次导入的另一行重复"),
    // What `verify` and the checkpoints report.
    Code::new("sequence_gap", "事件序号不连续"),
    Code::new("broken_link", "事件与上一条不衔接"),
    Code::new("hash_mismatch", "事件哈希不符(被改动)"),
    Code::new("head_mismatch", "历史末尾与记录不符(被截断或改动)"),
    Code::new("timeline_mismatch", "学籍时间线与历史事件不一致"),
    Code::new("tally_state_mismatch", "统计摘要与历史事件不一致"),
    Code::new("stats_mismatch", "统计计数与历史事件不一致"),
    Code::new("member_missing", "学校学生索引缺少该生"),
    Code::new("leaf_missing", "日志项缺失"),
    Code::new("event_missing", "事件已被删除"),
    Code::new("event_altered", "事件已被改动"),
    Code::new("event_not_logged", "事件不在日志中(被插入)"),
    Code::new("checkpoint_mismatch", "与检查点不符"),
    Code::new("rolled_back", "历史被回退"),
    Code::new("log_damaged", "日志已损坏"),
    Code::new(
        "record_mismatch",
        "学生记录与按历史重放的结果不符(记录被改动)",
    ),
    Code::new("context_mismatch", "录取时的决定上下文与事件不符"),
    Code::new("index_mismatch", "索引项与学生记录不符"),
    Code::new("index_extra", "索引中有不属于任何学生记录的项"),
    Code::new("duplicate_live", "同一人有两条在籍学籍"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::identity::IdError;
    use std::collections::HashSet;

    #[test]
    fn every_identity_number_error_code_is_labelled() {
        let errors = [
            IdError::Length(3),
            IdError::Character('x'),
            IdError::Address,
            IdError::ForeignPermanentResident,
            IdError::BirthDate,
            IdError::CheckCharacter {
                expected: '1',
                found: '2',
            },
            IdError::Prefix,
        ];
        for e in &errors {
            for prefix in ["id_card", "national_id"] {
                let code = e.code(prefix);
                assert!(
                    error_label(&code).is_some(),
                    "{code} is not in codes::ERRORS"
                );
            }
        }
    }

    #[test]
    fn codes_are_unique_within_each_list_and_labelled() {
        let c = catalog();
        for (name, list) in [
            ("statuses", &c.statuses),
            ("transition_kinds", &c.transition_kinds),
            ("reasons", &c.reasons),
            ("document_kinds", &c.document_kinds),
            ("approval_steps", &c.approval_steps),
            ("request_statuses", &c.request_statuses),
            ("problem_kinds", &c.problem_kinds),
            ("levels", &c.levels),
            ("roles", &c.roles),
            ("national_change_codes", &c.national_change_codes),
            ("errors", &c.errors),
        ] {
            let mut seen = HashSet::new();
            for code in list {
                assert!(seen.insert(code.code), "{name}: {} twice", code.code);
                assert!(
                    !code.label.trim().is_empty(),
                    "{name}: {} has no label",
                    code.code
                );
            }
        }
    }

    #[test]
    fn every_national_code_of_a_kind_is_a_listed_one() {
        for k in TransitionKind::iter() {
            if let Some(n) = k.national_code() {
                assert!(
                    crate::domain::status::national_change_label(n).is_some(),
                    "{k:?}: {n}"
                );
            }
        }
    }
}
