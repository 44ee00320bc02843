//! A package's own test cases (`tests/*.toml`), run by `xueji policy test` and `cargo test`.
//!
//! ```toml
//! [[case]]
//! name = "县级医院证明齐全:学校、县教育局两级审批"
//! student = { status = "enrolled", grade = 3, class = "4" }
//! school = { level = "primary", area = "沿河县" }
//! transition = { kind = "suspend", effective_date = "2026-03-02", reason = "illness", documents = [
//!   { kind = "hospital_diagnosis", issuer_level = "county" } ] }
//! expect = { outcome = "pending", rules = ["yanhe.suspend.proof"], approvals = ["school", "district"] }
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::compile::CompiledPolicy;
use super::error::PolicyLoadError;
use super::evaluate::{Case, EffectSite, evaluate_traced};
use crate::domain::{
    Date, Decision, Gender, Level, NationalNumber, School, Status, Student, Term, TransitionInput,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(rename = "case")]
    cases: Vec<TestCase>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseStudent {
    pub status: Option<Status>,
    /// The student's level, when it is not the school's (a transfer between levels).
    pub level: Option<Level>,
    pub grade: Option<u8>,
    pub class: Option<String>,
    pub gender: Option<Gender>,
    pub birth_date: Option<Date>,
    pub entry_date: Option<Date>,
    #[serde(default)]
    pub deadlines: Vec<crate::domain::Deadline>,
    #[serde(default)]
    pub terms: Vec<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSchool {
    pub id: Option<String>,
    pub level: Option<Level>,
    pub kind: Option<String>,
    pub area: Option<String>,
    #[serde(default)]
    pub calendar: Vec<Term>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// `applied`, `pending`, `denied` or `error`.
    pub outcome: String,
    /// Rules that must have fired.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Rules that must not have fired.
    #[serde(default)]
    pub not_fired: Vec<String>,
    pub approvals: Option<Vec<String>>,
    pub missing_documents: Option<Vec<String>>,
    pub changes: Option<Map<String, Value>>,
    pub deadlines: Option<Vec<Map<String, Value>>>,
    /// For `outcome = "error"`: the policy error code.
    pub error_code: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    #[serde(default)]
    pub student: CaseStudent,
    #[serde(default)]
    pub school: CaseSchool,
    pub transition: TransitionInput,
    #[serde(default)]
    pub sweep: bool,
    /// Settings as a school package would set them (`[params]`), over the package's own: how a
    /// base package tests a rule that reads a limit the school sets.
    #[serde(default)]
    pub settings: Map<String, Value>,
    pub expect: Expectation,
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub file: String,
    pub name: String,
    pub passed: bool,
    pub failures: Vec<String>,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Transition kind of the case, for rule coverage.
    #[serde(skip)]
    pub kind: String,
    /// Where the rules made the effects of this decision, for rule coverage.
    #[serde(skip)]
    pub sites: Vec<EffectSite>,
}

/// The outcome word of a decision.
pub fn outcome_of(d: &Decision) -> &'static str {
    if !d.allowed {
        "denied"
    } else if !d.approvals.is_empty() {
        "pending"
    } else {
        "applied"
    }
}

fn level_of(policy: &CompiledPolicy) -> Level {
    policy
        .settings
        .get("level")
        .and_then(|v| v.clone().into_string().ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(Level::Primary)
}

impl TestCase {
    pub fn build(&self, policy: &CompiledPolicy) -> (Student, School) {
        let level = self.school.level.unwrap_or_else(|| level_of(policy));
        let school = School {
            id: self
                .school
                .id
                .clone()
                .unwrap_or_else(|| "test-school".into()),
            name: "测试学校".into(),
            jurisdiction: policy.manifest.id.clone(),
            area: self.school.area.clone(),
            level,
            kind: self.school.kind.clone(),
            calendar: self.school.calendar.clone(),
        };
        let s = &self.student;
        let fallback = Date::from_ymd(2010, 1, 1).unwrap_or_else(|| panic!("valid date"));
        let student = Student {
            id: "test-student".into(),
            national_id: NationalNumber::parse_on("G11010519491231002X", Date::today())
                .unwrap_or_else(|e| panic!("fixture national number: {e:?}")),
            id_card: None,
            name: "测试".into(),
            gender: s.gender.unwrap_or(Gender::Female),
            birth_date: s.birth_date.unwrap_or(fallback),
            school: school.id.clone(),
            jurisdiction: school.jurisdiction.clone(),
            level: s.level.unwrap_or(level),
            grade: s.grade.unwrap_or(1),
            class: s.class.clone(),
            status: s.status.unwrap_or(Status::Enrolled),
            version: 1,
            entry_date: s.entry_date.unwrap_or(fallback),
            deadlines: s.deadlines.clone(),
            guardians: Vec::new(),
            terms: s.terms.clone(),
            flags: s.flags.clone(),
            extra: s.extra.clone(),
            former_jurisdictions: Vec::new(),
            head: String::new(),
        };
        (student, school)
    }

    pub fn run(&self, file: &str, policy: &CompiledPolicy) -> CaseResult {
        let (student, school) = self.build(policy);
        let mut settings = (*policy.settings).clone();
        for (k, v) in &self.settings {
            settings.insert(
                k.as_str().into(),
                rhai::serde::to_dynamic(v).unwrap_or(rhai::Dynamic::UNIT),
            );
        }
        let (result, sites) = evaluate_traced(
            policy,
            Case {
                student: &student,
                school: &school,
                input: &self.transition,
                sweep: self.sweep,
            },
            std::sync::Arc::new(settings),
        );
        let mut failures = Vec::new();
        let e = &self.expect;
        let (outcome, decision, error) = match result {
            Ok(d) => (outcome_of(&d).to_owned(), Some(d), None),
            Err(err) => {
                if let Some(code) = &e.error_code
                    && code != err.code()
                {
                    failures.push(format!("error code: expected {code}, got {}", err.code()));
                }
                ("error".to_owned(), None, Some(err.to_string()))
            }
        };
        if outcome != e.outcome {
            let why = error
                .clone()
                .or_else(|| decision.as_ref().map(|d| d.denial_message()))
                .unwrap_or_default();
            failures.push(format!(
                "outcome: expected {}, got {outcome} ({why})",
                e.outcome
            ));
        }
        if let Some(d) = &decision {
            // A status the student would move to must be some rule's decision, not the engine's
            // default: a transition no rule speaks about is a gap in the package.
            if d.allowed
                && d.rules.is_empty()
                && d.changes.status.is_some_and(|s| s != student.status)
            {
                failures.push(format!(
                    "status change to {} decided by no rule: a rule of the package must speak about {}",
                    d.changes.status.map(|s| s.as_str()).unwrap_or_default(),
                    self.transition.kind.as_str()
                ));
            }
            let fired: BTreeSet<&str> = d.rules.iter().map(|r| r.id.as_str()).collect();
            for r in &e.rules {
                if !fired.contains(r.as_str()) {
                    failures.push(format!(
                        "rule {r}: expected to fire, did not (fired: {})",
                        fired.iter().copied().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            for r in &e.not_fired {
                if fired.contains(r.as_str()) {
                    failures.push(format!("rule {r}: expected not to fire, fired"));
                }
            }
            if let Some(want) = &e.approvals {
                let got: Vec<String> = d.approvals.iter().map(|s| s.as_str().to_owned()).collect();
                if &got != want {
                    failures.push(format!("approvals: expected {want:?}, got {got:?}"));
                }
            }
            if let Some(want) = &e.missing_documents
                && &d.missing_documents != want
            {
                failures.push(format!(
                    "missing_documents: expected {want:?}, got {:?}",
                    d.missing_documents
                ));
            }
            if let Some(want) = &e.changes {
                let got = serde_json::to_value(&d.changes).unwrap_or(Value::Null);
                for (k, v) in want {
                    if got.get(k) != Some(v) {
                        failures.push(format!(
                            "changes.{k}: expected {v}, got {}",
                            got.get(k).unwrap_or(&Value::Null)
                        ));
                    }
                }
            }
            if let Some(want) = &e.deadlines {
                let got = serde_json::to_value(&d.deadlines).unwrap_or(Value::Null);
                let want_v = Value::Array(want.iter().cloned().map(Value::Object).collect());
                if got != want_v {
                    failures.push(format!("deadlines: expected {want_v}, got {got}"));
                }
            }
        }
        CaseResult {
            file: file.into(),
            name: self.name.clone(),
            passed: failures.is_empty(),
            failures,
            outcome,
            decision,
            error,
            kind: self.transition.kind.as_str().into(),
            sites,
        }
    }
}

/// Most test cases one package may hold. The largest seed package has 51; an upload of
/// thousands only holds the activation gate (and a blocking thread) for minutes.
pub const MAX_TEST_CASES: usize = 2_000;
/// Longest a package's own test run may take, wall clock. Each case is bounded by the
/// evaluation budget (50 ms), so the run stops at most one budget past this. The seed packages'
/// 170 cases together run in well under a second.
pub const MAX_TEST_RUN: Duration = Duration::from_secs(30);

/// Bounds on a package's own test run: every run (upload, folder edit, `xueji policy test`)
/// stops at them and refuses the package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestLimits {
    pub max_cases: usize,
    pub max_run: Duration,
}

impl Default for TestLimits {
    fn default() -> Self {
        TestLimits {
            max_cases: MAX_TEST_CASES,
            max_run: MAX_TEST_RUN,
        }
    }
}

/// Parses every case file of a package; errors name the file and position.
pub fn load_cases(policy: &CompiledPolicy) -> Result<Vec<(String, TestCase)>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in policy.source.test_files() {
        match toml::from_str::<CaseFile>(text) {
            Ok(f) => out.extend(f.cases.into_iter().map(|c| (file.to_owned(), c))),
            Err(e) => {
                let (line, col) = e
                    .span()
                    .map(|s| super::package::line_col(text, s.start))
                    .unwrap_or((0, 0));
                errors.push(format!("{file}:{line}:{col}: {}", e.message()));
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Runs every case of a package within the default [`TestLimits`].
pub fn run_package_tests(policy: &CompiledPolicy) -> Result<Vec<CaseResult>, Vec<PolicyLoadError>> {
    run_package_tests_within(policy, TestLimits::default())
}

/// Runs every case of a package. Too many cases are refused before any runs; a run that passes
/// `max_run` stops there. Either refuses the package (`policy_too_many_cases`,
/// `policy_tests_too_long`), naming the limit.
pub fn run_package_tests_within(
    policy: &CompiledPolicy,
    limits: TestLimits,
) -> Result<Vec<CaseResult>, Vec<PolicyLoadError>> {
    let cases = load_cases(policy).map_err(|errs| {
        errs.into_iter()
            .map(|e| PolicyLoadError::new("policy_test_file", "tests", e))
            .collect::<Vec<_>>()
    })?;
    if cases.len() > limits.max_cases {
        return Err(vec![PolicyLoadError::new(
            "policy_too_many_cases",
            "tests",
            format!(
                "测试用例不能超过 {} 个(本包 {} 个)",
                limits.max_cases,
                cases.len()
            ),
        )]);
    }
    let started = Instant::now();
    let mut results = Vec::with_capacity(cases.len());
    for (file, case) in &cases {
        if started.elapsed() >= limits.max_run {
            return Err(vec![PolicyLoadError::new(
                "policy_tests_too_long",
                "tests",
                format!(
                    "测试运行时间不能超过 {} 秒(已运行 {} 个用例,共 {} 个)",
                    limits.max_run.as_secs_f64(),
                    results.len(),
                    cases.len()
                ),
            )]);
        }
        results.push(case.run(file, policy));
    }
    Ok(results)
}

/// Rules of the package itself (not inherited) that its cases do not test both ways. A rule is
/// observed, in each case whose transition it applies to, as silent, fired in an allowed
/// decision, or fired in a denied one; it must be seen firing, and in at least two of the three
/// ways (a deny rule firing and silent; a requirement met and unmet; ...).
pub fn uncovered_rules(policy: &CompiledPolicy, results: &[CaseResult]) -> Vec<String> {
    // Each decision's fired rules once, so the check is one set lookup per rule and case.
    let decided: Vec<(&str, bool, BTreeSet<&str>)> = results
        .iter()
        .filter_map(|r| {
            r.decision.as_ref().map(|d| {
                (
                    r.kind.as_str(),
                    d.allowed,
                    d.rules.iter().map(|f| f.id.as_str()).collect(),
                )
            })
        })
        .collect();
    let own = policy
        .rules
        .iter()
        .filter(|r| r.info.package == policy.manifest.id);
    own.filter_map(|rule| {
        let id = rule.info.id.as_str();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for (kind, allowed, fired_ids) in &decided {
            let applies = rule.info.on.iter().any(|k| k == "*" || k.as_str() == *kind);
            if !applies {
                continue;
            }
            let fired = fired_ids.contains(id);
            seen.insert(match (fired, *allowed) {
                (false, _) => "silent",
                (true, true) => "fired_allowed",
                (true, false) => "fired_denied",
            });
        }
        let fired = seen.contains("fired_allowed") || seen.contains("fired_denied");
        match (fired, seen.len()) {
            (false, _) => Some(format!("{id}: no case makes it fire")),
            (true, 1) => Some(format!(
                "{id}: tested one way only ({}); add a case where it decides otherwise",
                seen.iter().next().copied().unwrap_or("")
            )),
            _ => None,
        }
    })
    .chain(unreached_effects(policy, results))
    .collect()
}

/// Every outcome a rule can give must be seen: each place in its `check` where it makes an
/// effect (`deny(`, `allow(`, `approve(`, ...) must be reached by some case. A rule whose
/// approval path runs in no case is not tested, however many of its denials are.
fn unreached_effects(policy: &CompiledPolicy, results: &[CaseResult]) -> Vec<String> {
    let reached: BTreeSet<(&str, usize, usize)> = results
        .iter()
        .flat_map(|r| &r.sites)
        .map(|s| (s.file.as_str(), s.line, s.column))
        .collect();
    let mut out = Vec::new();
    for (file, text) in policy.source.scripts() {
        // The rules of this file by the line they start on; a place belongs to the last rule
        // starting before it (places in helper functions above the first rule belong to none).
        let mut starts: Vec<(usize, &str)> = policy
            .rules
            .iter()
            .filter(|r| r.info.package == policy.manifest.id && r.info.position.file == file)
            .map(|r| (r.info.position.line, r.info.id.as_str()))
            .collect();
        starts.sort();
        for (line, column) in super::names::effect_sites(text) {
            let Some((_, id)) = starts.iter().rev().find(|(l, _)| *l <= line) else {
                continue;
            };
            if !reached.contains(&(file, line, column)) {
                out.push(format!(
                    "{id}: the outcome at {file}:{line}:{column} is reached by no case; add a case where the rule decides that way"
                ));
            }
        }
    }
    out
}
