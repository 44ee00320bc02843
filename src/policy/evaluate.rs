//! Evaluating a compiled policy on one case into a decision.

use rhai::{Array, Dynamic, EvalAltResult, ImmutableString, Map};
use std::sync::Arc;

use super::compile::{CompiledPolicy, suggest};
use super::error::{PolicyError, ScriptPosition};
use super::sandbox::{self, CaseData, CaseHandle, EVALUATION_BUDGET, RuleEffect, TIMEOUT_TOKEN};
use crate::domain::{
    ApprovalStep, Date, Decision, Effect, FiredRule, School, Student, StudentChanges,
    TransitionInput, TransitionKind, in_routing_order,
};

/// What a policy is asked about: a student as they are, their school and the transition.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    pub student: &'a Student,
    pub school: &'a School,
    pub input: &'a TransitionInput,
    /// True when the deadline sweep asks, rather than a person.
    pub sweep: bool,
}

/// JSON to a Rhai value without going through serde (the hot path of every decision).
fn json_to_dynamic(v: &serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| Dynamic::from(n.to_string()), Dynamic::from),
        Value::String(s) => str_value(s),
        Value::Array(a) => Dynamic::from_array(a.iter().map(json_to_dynamic).collect()),
        Value::Object(o) => Dynamic::from_map(json_map(o)),
    }
}

fn json_map(o: &serde_json::Map<String, serde_json::Value>) -> Map {
    o.iter()
        .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
        .collect()
}

fn opt_str(s: Option<&str>) -> Dynamic {
    s.map_or(Dynamic::UNIT, |s| Dynamic::from(ImmutableString::from(s)))
}

fn str_value(s: &str) -> Dynamic {
    ImmutableString::from(s).into()
}

fn date_value(d: Date) -> Dynamic {
    str_value(&d.text())
}

fn strings(list: &[String]) -> Dynamic {
    list.iter().map(|s| str_value(s)).collect::<Array>().into()
}

/// A map of the given fields, listed in the order of their names: the map is then built from
/// them at once, and their sort finds them sorted (a decision builds several maps).
fn map_of<const N: usize>(fields: [(&str, Dynamic); N]) -> Map {
    fields.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

fn student_map(s: &Student) -> Map {
    let deadlines: Array = s
        .deadlines
        .iter()
        .map(|d| {
            Dynamic::from_map(map_of([
                ("date", date_value(d.date)),
                ("kind", str_value(&d.kind)),
            ]))
        })
        .collect();
    map_of([
        ("birth_date", date_value(s.birth_date)),
        ("class", opt_str(s.class.as_deref())),
        ("deadlines", deadlines.into()),
        ("entry_date", date_value(s.entry_date)),
        ("extra", Dynamic::from_map(json_map(&s.extra))),
        ("flags", strings(&s.flags)),
        ("gender", str_value(s.gender.as_str())),
        ("grade", i64::from(s.grade).into()),
        ("id", str_value(&s.id)),
        ("level", str_value(s.level.as_str())),
        ("national_id_kind", str_value(&s.national_id.as_str()[..1])),
        ("status", str_value(s.status.as_str())),
        ("terms", strings(&s.terms)),
    ])
}

fn school_map(s: &School) -> Map {
    let calendar: Array = s
        .calendar
        .iter()
        .map(|t| {
            Dynamic::from_map(map_of([
                (
                    "report_deadline",
                    t.report_deadline.map_or(Dynamic::UNIT, date_value),
                ),
                ("starts", date_value(t.starts)),
                ("term", str_value(&t.term)),
            ]))
        })
        .collect();
    map_of([
        ("area", opt_str(s.area.as_deref())),
        ("calendar", calendar.into()),
        ("compulsory", s.level.is_compulsory().into()),
        ("id", str_value(&s.id)),
        ("jurisdiction", str_value(&s.jurisdiction)),
        ("kind", opt_str(s.kind.as_deref())),
        ("level", str_value(s.level.as_str())),
    ])
}

fn transition_map(t: &TransitionInput) -> Map {
    let docs: Array = t
        .documents
        .iter()
        .map(|d| {
            Dynamic::from_map(map_of([
                (
                    "hospital_grade",
                    opt_str(d.hospital_grade.map(|g| g.into())),
                ),
                ("issuer_level", opt_str(d.issuer_level.map(|l| l.into()))),
                ("kind", str_value(d.kind.as_str())),
            ]))
        })
        .collect();
    map_of([
        ("documents", docs.into()),
        ("effective_date", date_value(t.effective_date)),
        ("kind", str_value(t.kind.as_str())),
        ("params", Dynamic::from_map(json_map(&t.params))),
        ("reason", opt_str(t.reason.map(|r| r.as_str()))),
    ])
}

/// The fields of `c.student`, `c.school` and `c.transition` (the maps built above), for the
/// name check of `xueji policy check`.
pub const STUDENT_FIELDS: &[&str] = &[
    "id",
    "status",
    "grade",
    "class",
    "level",
    "gender",
    "birth_date",
    "entry_date",
    "national_id_kind",
    "deadlines",
    "terms",
    "flags",
    "extra",
];
pub const SCHOOL_FIELDS: &[&str] = &[
    "id",
    "jurisdiction",
    "area",
    "level",
    "kind",
    "compulsory",
    "calendar",
];
pub const TRANSITION_FIELDS: &[&str] = &["kind", "effective_date", "reason", "params", "documents"];

/// The field names a script can read, for "did you mean" hints.
const KNOWN_FIELDS: &[&str] = &[
    "id",
    "status",
    "grade",
    "class",
    "level",
    "gender",
    "birth_date",
    "entry_date",
    "national_id_kind",
    "deadlines",
    "terms",
    "flags",
    "extra",
    "jurisdiction",
    "area",
    "kind",
    "compulsory",
    "calendar",
    "effective_date",
    "reason",
    "params",
    "documents",
    "issuer_level",
    "hospital_grade",
    "date",
    "student",
    "school",
    "transition",
    "sweep",
    "until",
    "to_school",
    "to_grade",
    "to_class",
    "term",
    "tuition_paid",
    "forms",
    "fields",
    "discharge_date",
];

fn script_error(rule: &str, file: &str, err: &EvalAltResult) -> PolicyError {
    // The innermost error says what went wrong; the deepest known position says where.
    let mut position = err.position();
    let mut cur = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = cur {
        if !inner.position().is_none() {
            position = inner.position();
        }
        cur = inner;
    }
    let (code, message) = match cur {
        EvalAltResult::ErrorTerminated(v, _)
            if v.clone().into_string().is_ok_and(|s| s == TIMEOUT_TOKEN) =>
        {
            (
                "policy_timeout",
                format!("规则运行超过时间预算 {} ms", EVALUATION_BUDGET.as_millis()),
            )
        }
        EvalAltResult::ErrorTooManyOperations(_) => (
            "policy_too_many_operations",
            format!("规则运行步数超过上限 {}", sandbox::MAX_OPERATIONS),
        ),
        EvalAltResult::ErrorStackOverflow(_) => {
            ("policy_stack_overflow", "规则调用层数过深".into())
        }
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            ("policy_data_too_large", format!("{what} 超过大小上限"))
        }
        EvalAltResult::ErrorPropertyNotFound(name, _) => (
            "policy_unknown_field",
            format!(
                "unknown field `{name}`{}",
                suggest(name, KNOWN_FIELDS.iter().copied())
            ),
        ),
        EvalAltResult::ErrorDotExpr(m, _) => ("policy_unknown_field", m.clone()),
        EvalAltResult::ErrorVariableNotFound(name, _) => (
            "policy_unknown_variable",
            format!("unknown variable `{name}`"),
        ),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => (
            "policy_unknown_function",
            format!("unknown function `{sig}`"),
        ),
        EvalAltResult::ErrorModuleNotFound(..) | EvalAltResult::ErrorTooManyModules(_) => {
            ("policy_module_forbidden", "政策脚本不能导入模块".into())
        }
        EvalAltResult::ErrorRuntime(v, _) => {
            let text = v.to_string();
            if text.starts_with("policy_setting_missing") {
                (
                    "policy_setting_missing",
                    text.trim_start_matches("policy_setting_missing: ")
                        .to_owned(),
                )
            } else {
                ("policy_script_error", text)
            }
        }
        other => ("policy_script_error", other.to_string()),
    };
    PolicyError::Script {
        code: code.into(),
        rule: rule.into(),
        position: ScriptPosition::from_rhai(file, position),
        message,
    }
}

fn effects_of(rule: &str, file: &str, out: Dynamic) -> Result<Vec<RuleEffect>, PolicyError> {
    let bad = |what: &str| PolicyError::Script {
        code: "policy_bad_result".into(),
        rule: rule.into(),
        position: ScriptPosition {
            file: file.into(),
            line: 0,
            column: 0,
        },
        message: format!("check must return nothing, an effect or an array of effects, not {what}"),
    };
    if out.is_unit() {
        return Ok(Vec::new());
    }
    if out.is::<RuleEffect>() {
        return Ok(vec![out.cast::<RuleEffect>()]);
    }
    if out.is_array() {
        let arr = out.into_array().map_err(&bad)?;
        return arr
            .into_iter()
            .map(|d| {
                if d.is::<RuleEffect>() {
                    Ok(d.cast::<RuleEffect>())
                } else {
                    Err(bad(d.type_name()))
                }
            })
            .collect();
    }
    Err(bad(out.type_name()))
}

/// Evaluates every rule of the policy that applies to the case's transition, in package order
/// (base rules first), and assembles the decision. Any script failure fails the whole
/// evaluation: the caller refuses the transition.
pub fn evaluate(policy: &CompiledPolicy, case: Case<'_>) -> Result<Decision, PolicyError> {
    evaluate_with(policy, case, policy.settings.clone(), None)
}

/// Where a rule made one of its effects during an evaluation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct EffectSite {
    pub rule: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
}

/// [`evaluate`] for a package's own test cases: with the settings the case gives (a base
/// package's rule that reads a setting its school packages set), and the places in the scripts
/// where each effect was made, for the rule-coverage gate.
pub fn evaluate_traced(
    policy: &CompiledPolicy,
    case: Case<'_>,
    settings: Arc<Map>,
) -> (Result<Decision, PolicyError>, Vec<EffectSite>) {
    let mut sites = Vec::new();
    let out = evaluate_with(policy, case, settings, Some(&mut sites));
    (out, sites)
}

fn evaluate_with(
    policy: &CompiledPolicy,
    case: Case<'_>,
    settings: Arc<Map>,
    mut sites: Option<&mut Vec<EffectSite>>,
) -> Result<Decision, PolicyError> {
    let handle = CaseHandle(Arc::new(CaseData {
        student: Dynamic::from_map(student_map(case.student)).into_shared(),
        school: Dynamic::from_map(school_map(case.school)).into_shared(),
        transition: Dynamic::from_map(transition_map(case.input)).into_shared(),
        date: ImmutableString::from(&*case.input.effective_date.text()),
        sweep: case.sweep,
        documents: case.input.documents.clone(),
        settings,
    }));
    let mut decision = Decision {
        allowed: true,
        policy: policy.policy_ref(),
        rules: Vec::new(),
        required_documents: Vec::new(),
        missing_documents: Vec::new(),
        approvals: Vec::new(),
        changes: case.input.default_changes(case.student),
        deadlines: Vec::new(),
        receiving_policy: None,
    };
    let engine = sandbox::engine();
    let kind = case.input.kind;
    let mut denied = false;
    let mut steps: Vec<ApprovalStep> = Vec::new();
    sandbox::with_budget(EVALUATION_BUDGET, || -> Result<(), PolicyError> {
        for rule in &policy.rules {
            if rule.on.as_ref().is_some_and(|on| !on.contains(&kind)) {
                continue;
            }
            let file = rule.info.position.file.as_str();
            let out: Dynamic = rule
                .check
                .call(engine, &rule.ast, (handle.clone(),))
                .map_err(|e| script_error(&rule.info.id, file, &e))?;
            for effect in effects_of(&rule.info.id, file, out)? {
                if let Some(sites) = sites.as_deref_mut()
                    && let (Some(line), Some(column)) = (effect.site.line(), effect.site.position())
                {
                    sites.push(EffectSite {
                        rule: rule.info.id.clone(),
                        file: file.to_owned(),
                        line,
                        column,
                    });
                }
                match effect.effect {
                    Effect::Deny => denied = true,
                    Effect::Require => {
                        for d in &effect.documents {
                            let name = d.as_str().to_owned();
                            if !decision.required_documents.contains(&name) {
                                decision.required_documents.push(name);
                            }
                        }
                    }
                    Effect::Approve => steps.extend(effect.steps.iter().copied()),
                    Effect::Change => {
                        let c = &effect.changes;
                        // An information change never moves a student: their placement is the
                        // business of the transitions that govern it, with their approvals.
                        if matches!(
                            kind,
                            TransitionKind::CorrectInfo | TransitionKind::ChangeKeyInfo
                        ) && *c != StudentChanges::default()
                        {
                            return Err(PolicyError::Script {
                                code: "policy_bad_result".into(),
                                rule: rule.info.id.clone(),
                                position: rule.info.position.clone(),
                                message: format!(
                                    "{} 不能改变学校、年级、班级或学籍状态;请由相应的学籍异动办理",
                                    kind.as_str()
                                ),
                            });
                        }
                        let d = &mut decision.changes;
                        if c.status.is_some() {
                            d.status = c.status;
                        }
                        if c.grade.is_some() {
                            d.grade = c.grade;
                        }
                        if c.class.is_some() {
                            d.class.clone_from(&c.class);
                        }
                        if c.school.is_some() {
                            d.school.clone_from(&c.school);
                        }
                    }
                    Effect::Deadline => {
                        if let Some(dl) = effect.deadline.clone() {
                            decision.deadlines.retain(|x| x.kind != dl.kind);
                            decision.deadlines.push(dl);
                        }
                    }
                    Effect::Allow => {}
                }
                decision.rules.push(FiredRule {
                    id: rule.info.id.clone(),
                    effect: effect.effect,
                    citation: rule.info.citation.clone(),
                    message: effect.message,
                });
            }
        }
        Ok(())
    })?;
    in_routing_order(&mut steps);
    decision.approvals = steps;
    let provided: Vec<&str> = case
        .input
        .documents
        .iter()
        .map(|d| d.kind.as_str())
        .collect();
    decision.missing_documents = decision
        .required_documents
        .iter()
        .filter(|d| !provided.contains(&d.as_str()))
        .cloned()
        .collect();
    decision.allowed = !denied && decision.missing_documents.is_empty();
    Ok(decision)
}

/// A transfer to a school of another jurisdiction, decided by both packages in force: the
/// sending one (`case`, kind `transfer`: may the student leave) and the receiving one (the same
/// case at `to`, kind `transfer_in`: may they enter). Both sides' rules are in the decision, each
/// with its own citation; the receiving side's `school`/`district`/`city` steps become
/// `receiving_school`/`receiving_district`/`receiving_city`; its documents are asked too; the
/// receiving side may place the student (grade, class) but not change their status or school.
pub fn evaluate_transfer(
    sending: &CompiledPolicy,
    receiving: &CompiledPolicy,
    case: Case<'_>,
    to: &School,
) -> Result<Decision, PolicyError> {
    let mut decision = evaluate(sending, case)?;
    let entering = TransitionInput {
        kind: TransitionKind::TransferIn,
        ..case.input.clone()
    };
    let other = evaluate(
        receiving,
        Case {
            school: to,
            input: &entering,
            ..case
        },
    )?;
    decision.rules.extend(other.rules);
    for d in other.required_documents {
        if !decision.required_documents.contains(&d) {
            decision.required_documents.push(d);
        }
    }
    for d in other.missing_documents {
        if !decision.missing_documents.contains(&d) {
            decision.missing_documents.push(d);
        }
    }
    decision
        .approvals
        .extend(other.approvals.iter().map(|s| s.on_receiving_side()));
    in_routing_order(&mut decision.approvals);
    if other.changes.grade.is_some() {
        decision.changes.grade = other.changes.grade;
    }
    if other.changes.class.is_some() {
        decision.changes.class = other.changes.class;
    }
    decision.allowed = decision.allowed && other.allowed;
    decision.receiving_policy = Some(receiving.policy_ref());
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name check of `xueji policy check` reads these lists: they must be the maps' keys.
    #[test]
    fn the_field_lists_are_the_fields_a_script_sees() {
        let keys = |m: Map| {
            let mut k: Vec<String> = m.keys().map(|k| k.to_string()).collect();
            k.sort();
            k
        };
        let sorted = |l: &[&str]| {
            let mut v: Vec<String> = l.iter().map(|s| (*s).to_owned()).collect();
            v.sort();
            v
        };
        let t: TransitionInput = serde_json::from_value(serde_json::json!({
            "kind": "suspend", "effective_date": "2026-03-02"
        }))
        .expect("input");
        assert_eq!(keys(transition_map(&t)), sorted(TRANSITION_FIELDS));
        let school: School = serde_json::from_value(serde_json::json!({
            "id": "s", "name": "校", "jurisdiction": "j", "level": "primary"
        }))
        .expect("school");
        assert_eq!(keys(school_map(&school)), sorted(SCHOOL_FIELDS));
        for f in STUDENT_FIELDS {
            assert!(KNOWN_FIELDS.contains(f), "{f}");
        }
    }
}
