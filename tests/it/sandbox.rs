//! Hostile and broken policy scripts: each is refused quickly with a coded error and a position,
//! and a transition under a failing policy is refused with nothing stored (fails closed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use xueji::domain::{Status, TransitionInput, TransitionKind};
use xueji::engine::ServiceError;
use xueji::policy::{PackageSource, PolicyError, PolicyRegistry, compile_package};

use crate::helpers::*;

fn package(rules: &str) -> PackageSource {
    let files: BTreeMap<String, String> = [
        (
            "policy.toml".to_owned(),
            TEST_MANIFEST
                .replace("extends = \"national-k12\"\n", "")
                .replace("overrides = [\"national_k12.review.school\"]\n", ""),
        ),
        ("rules.rhai".to_owned(), rules.to_owned()),
    ]
    .into();
    PackageSource { files }
}

fn rule(check_body: &str) -> String {
    format!(
        "rule(#{{ id: \"test.x.y\", on: [\"change_class\"], cites: \"t 第一条\", check: |c| {{\n{check_body}\n}} }});\n"
    )
}

/// Evaluates a one-rule package on a change_class case and returns the error code and time.
/// A deadline, not a speed figure (the printed times are the measure): a runaway script is
/// stopped rather than left running. Generous, since a 2-core machine busy with builds once took
/// 14 times the usual 36 ms to stop the growing map.
const STOPPED_WITHIN: Duration = Duration::from_secs(10);

fn failing(rules: &str) -> (String, PolicyError, Duration) {
    let source = package(rules);
    let policy = compile_package(&source, None).unwrap_or_else(|e| panic!("compiles: {e:?}"));
    let (student, school) = {
        let case: xueji::policy::testing::TestCase = toml::from_str(
            "name = \"x\"\ntransition = { kind = \"change_class\", effective_date = \"2025-01-01\" }\nexpect = { outcome = \"error\" }",
        )
        .expect("case");
        case.build(&policy)
    };
    let input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-01-01"));
    let start = Instant::now();
    let err = xueji::policy::evaluate(
        &policy,
        xueji::policy::Case {
            student: &student,
            school: &school,
            input: &input,
            sweep: false,
        },
    )
    .expect_err("must fail");
    (err.code().to_owned(), err, start.elapsed())
}

fn position(e: &PolicyError) -> (usize, usize) {
    match e {
        PolicyError::Script { position, .. } => (position.line, position.column),
        other => panic!("no position: {other:?}"),
    }
}

#[test]
fn an_infinite_loop_is_stopped() {
    let (code, _, took) = failing(&rule("loop { }"));
    assert!(
        code == "policy_too_many_operations" || code == "policy_timeout",
        "{code}"
    );
    println!("sandbox: an infinite loop refused ({code}) after {took:?}");
    assert!(took < STOPPED_WITHIN, "took {took:?}");
}

#[test]
fn deep_recursion_is_stopped() {
    let (code, _, took) = failing(&format!(
        "fn deeper(n) {{ deeper(n + 1) }}\n{}",
        rule("deeper(0)")
    ));
    assert_eq!(code, "policy_stack_overflow");
    println!("sandbox: deep recursion refused ({code}) after {took:?}");
    assert!(took < STOPPED_WITHIN, "took {took:?}");
}

#[test]
fn a_huge_string_is_stopped() {
    let (code, _, took) = failing(&rule("let s = \"学籍\"; loop { s += s; }"));
    assert_eq!(code, "policy_data_too_large");
    println!("sandbox: a doubling string refused ({code}) after {took:?}");
    assert!(took < STOPPED_WITHIN, "took {took:?}");
}

#[test]
fn a_huge_map_is_stopped() {
    // Grown for ever inside one loop, the operation limit stops it: Rhai does not check the map
    // limit (256 entries) on an index assignment, so memory is bounded by the operations allowed.
    let (code, _, took) = failing(&rule(
        "let m = #{}; let i = 0; loop { m[\"k\" + i] = i; i += 1; }",
    ));
    // On a loaded machine the wall-clock limit may stop it before the operation limit does.
    assert!(
        [
            "policy_too_many_operations",
            "policy_data_too_large",
            "policy_timeout"
        ]
        .contains(&code.as_str()),
        "{code}"
    );
    println!("sandbox: a map grown for ever refused ({code}) after {took:?}");
    assert!(took < STOPPED_WITHIN, "took {took:?}");
    // A map above the limit is refused for its size once it is handed to a function.
    let (code, _, took) = failing(&rule(
        "let m = #{}; let i = 0; while i < 300 { m[\"k\" + i] = i; i += 1; } if m.len() > 0 { deny(\"x\") }",
    ));
    assert_eq!(code, "policy_data_too_large");
    println!("sandbox: a 300-entry map refused ({code}) after {took:?}");
    assert!(took < STOPPED_WITHIN, "took {took:?}");
}

/// `xueji policy check` (every compile of a new package) resolves the names a script reads: a
/// misspelt field of the case is refused at load, with its position and the field meant.
#[test]
fn a_misspelt_field_is_refused_at_load_with_position_and_hint() {
    let errs = load_error(&rule("if c.student.grdae > 3 { deny(\"x\") }"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].code, "policy_unknown_field");
    assert_eq!(
        (
            errs[0].position.file.as_str(),
            errs[0].position.line,
            errs[0].position.column
        ),
        ("rules.rhai", 2, 14),
        "{errs:?}"
    );
    assert!(errs[0].message.contains("是否想写 `grade`"), "{errs:?}");
    // Spelt right, the same rule loads.
    compile_package(
        &package(&rule("if c.student.grade > 3 { deny(\"x\") }")),
        None,
    )
    .expect("a field the case has loads");
}

/// What the load check cannot see (a field read through a variable) still fails closed when it
/// runs, with its position and hint.
#[test]
fn a_misspelt_field_behind_a_variable_is_an_error_at_run_time() {
    let (code, err, _) = failing(&rule("let s = c.student; if s.grdae > 3 { deny(\"x\") }"));
    assert_eq!(code, "policy_unknown_field");
    assert_eq!(position(&err).0, 2, "{err}");
    assert!(err.to_string().contains("did you mean `grade`"), "{err}");
    assert!(err.to_string().contains("rules.rhai:2:"), "{err}");
}

#[test]
fn a_missing_setting_fails_closed() {
    let (code, err, _) = failing(&rule(
        "if c.student.grade > c.setting(\"max_grade\") { deny(\"x\") }",
    ));
    assert_eq!(code, "policy_setting_missing");
    assert!(err.to_string().contains("max_grade"));
}

#[test]
fn a_result_that_is_not_an_effect_is_refused() {
    let (code, _, _) = failing(&rule("42"));
    assert_eq!(code, "policy_bad_result");
    let (code, _, _) = failing(&rule("deny(\"\")"));
    assert_eq!(code, "policy_script_error", "empty message");
}

#[test]
fn missing_functions_are_refused_at_load_and_fail_closed_when_called_indirectly() {
    let errs = load_error(&rule("timestamp()"));
    assert_eq!(errs[0].code, "policy_unknown_function", "{errs:?}");
    assert_eq!((errs[0].position.line, errs[0].position.column), (2, 1));
    let errs = load_error(&rule(
        "if c.has_issud(\"hospital_diagnosis\", \"county\") { allow(\"x\") }",
    ));
    assert_eq!(errs[0].code, "policy_unknown_function", "{errs:?}");
    assert!(
        errs[0].message.contains("是否想写 `has_issued`"),
        "{errs:?}"
    );
    // A name built at run time is not seen by the load check; calling it fails closed.
    let (code, err, _) = failing(&rule("Fn(\"sleep\").call(10)"));
    assert_eq!(code, "policy_unknown_function", "{err}");
}

fn load_error(rules: &str) -> Vec<xueji::policy::PolicyLoadError> {
    compile_package(&package(rules), None).expect_err("must not compile")
}

#[test]
fn imports_eval_and_syntax_errors_are_refused_at_load_with_positions() {
    let errs = load_error("import \"fs\" as fs;\n");
    assert_eq!(errs[0].code, "policy_script", "{errs:?}");
    let errs = load_error(&rule("eval(\"1\")"));
    assert_eq!(errs[0].code, "policy_syntax", "{errs:?}");
    let errs = load_error(
        "rule(#{ id: \"test.a.b\", on: [\"suspend\"], cites: \"t 第一条\", check: |c| { deny(\"x\" }) });",
    );
    assert_eq!(errs[0].code, "policy_syntax");
    assert_eq!(errs[0].position.line, 1);
    assert!(errs[0].position.column > 0);
}

#[test]
fn rules_without_citation_or_with_bad_ids_are_refused() {
    let errs = load_error("rule(#{ id: \"test.a.b\", on: [\"suspend\"], check: |c| { () } });");
    assert!(errs[0].message.contains("cites"), "{errs:?}");
    let errs = load_error(
        "rule(#{ id: \"test.a.b\", on: [\"suspend\"], cites: \"nodoc 第一条\", check: |c| { () } });",
    );
    assert_eq!(errs[0].code, "policy_citation");
    let errs = load_error(
        "rule(#{ id: \"other.a.b\", on: [\"suspend\"], cites: \"t 第一条\", check: |c| { () } });",
    );
    assert_eq!(errs[0].code, "policy_rule");
    let errs = load_error(
        "rule(#{ id: \"test.a.b\", on: [\"suspnd\"], cites: \"t 第一条\", check: |c| { () } });",
    );
    assert!(
        errs[0].message.contains("did you mean `suspend`"),
        "{errs:?}"
    );
}

#[test]
fn an_undeclared_override_is_refused() {
    let mut set = test_packages();
    let pkg = set.packages.get_mut("test-district").expect("pkg");
    pkg.files.insert(
        "extra.rhai".into(),
        "rule(#{ id: \"test.expel.ok\", on: [\"expel\"], cites: \"t 第一条\", replaces: \"national_k12.expel.compulsory\", check: |c| { () } });".into(),
    );
    let errors = PolicyRegistry::from_packages(&set).err().expect("refused");
    assert_eq!(errors["test-district"][0].code, "policy_override");
    // Declared, it is accepted and the base rule no longer runs.
    let pkg = set.packages.get_mut("test-district").expect("pkg");
    let manifest = pkg.files["policy.toml"].replace(
        "overrides = [\"national_k12.review.school\"]",
        "overrides = [\"national_k12.review.school\", \"national_k12.expel.compulsory\"]",
    );
    pkg.files.insert("policy.toml".into(), manifest);
    let registry = PolicyRegistry::from_packages(&set).expect("accepted");
    let ids: Vec<String> = registry
        .latest("test-district")
        .expect("pkg")
        .rule_infos()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(
        !ids.contains(&"national_k12.expel.compulsory".to_owned()),
        "{ids:?}"
    );
}

#[test]
fn a_failing_policy_refuses_the_transition_and_stores_nothing() {
    let mut set = test_packages();
    let pkg = set.packages.get_mut("test-district").expect("pkg");
    pkg.files.insert(
        "broken.rhai".into(),
        rule("loop { }").replace("test.x.y", "test.broken.loop"),
    );
    let t = engine_with(&set);
    t.xueji.create_school(school("s1", None)).expect("school");
    let s = enrolled(&t.xueji, "甲", 1);
    let mut input = TransitionInput::new(TransitionKind::ChangeClass, d("2025-01-01"));
    input.params.insert("class".into(), serde_json::json!("2"));
    let err = t
        .xueji
        .transition(&s.id, input, &registrar(), false)
        .expect_err("fails closed");
    let ServiceError::Policy(PolicyError::Script { rule, position, .. }) = err else {
        panic!("{err:?}")
    };
    assert_eq!(rule, "test.broken.loop");
    assert_eq!(position.file, "broken.rhai");
    let after = t.xueji.student(&s.id).expect("student");
    assert_eq!(
        (after.version, after.status, after.class.as_deref()),
        (s.version, Status::Enrolled, Some("4"))
    );
}
