//! Peer baseline: the same rules written as Cedar policies, decided by `cedar-policy`'s
//! `Authorizer::is_authorized`.
//!
//! Cedar runs in a separate program, `peers/cedar` (built by the bench with the same cargo,
//! into `target/peers`): `cedar-policy-core` turns on serde_json's `preserve_order`, which as a
//! dependency of this package would be unified into the xueji library the benches and tests
//! build and change the key order the event hash encoding relies on. The bench sends the
//! program every request at once, as JSON in Cedar's own entity and context formats; the
//! program builds each request once, and times `is_authorized` with the same sampling loop
//! (warm-up, then each call timed on its own) as the Rhai figure.
//!
//! Cedar answers allow or deny, plus the policies that determined the answer. A xueji decision
//! also carries obligations (documents to require, approval steps, deadlines, placement
//! changes); Cedar has no place for those, so the equivalence is on what both can say:
//!
//! - **allowed**: Cedar's `Allow` / `Deny` against `Decision::allowed` (a policy error, which
//!   refuses the transition, counts as denied);
//! - **rules**: the `@rule` annotations of the policies in Cedar's `reason` set against the rule
//!   ids xueji reports: every rule that fired when allowed; when denied, the rules that denied
//!   (a `deny` effect, a `require` whose document is missing, or the rule whose script failed).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};
use strum::IntoEnumIterator;
use xueji::domain::{
    Decision, Document, Effect, Level, School, Student, TransitionInput, TransitionKind,
};
use xueji::policy::testing::{CaseSchool, CaseStudent};
use xueji::policy::{Case, CompiledPolicy, PolicyError, evaluate};

/// national-k12 (`policies/national-k12/*.rhai`) in Cedar: one policy per way a rule decides.
pub const NATIONAL_K12: &str = r#"
// A xueji decision starts allowed; a transition no rule forbids goes through.
permit (principal, action, resource);

// expel.rhai — 义务教育法 第二十七条: a compulsory-education school may not expel.
@rule("national_k12.expel.compulsory")
forbid (principal, action == Action::"expel", resource)
when { resource.compulsory };

// transfer.rhai — refused without a receiving school; with one it needs approvals (which Cedar
// cannot return), so the rule is recorded as having fired.
@rule("national_k12.transfer.approval")
forbid (principal, action == Action::"transfer", resource)
unless { context has to_school };

@rule("national_k12.transfer.approval")
permit (principal, action == Action::"transfer", resource)
when { context has to_school };

// transfer_in.rhai — a student from another jurisdiction enters a school of their own level;
// the receiving school's and bureau's approvals are obligations Cedar cannot return.
@rule("national_k12.transfer_in.approval")
forbid (principal, action == Action::"transfer_in", resource)
unless { principal.level == resource.level };

@rule("national_k12.transfer_in.approval")
permit (principal, action == Action::"transfer_in", resource)
when { principal.level == resource.level };

// problem.rhai — 佐证 keeps a problem record's enrolment only with proof (any document).
@rule("national_k12.problem.confirm")
forbid (principal, action == Action::"confirm_record", resource)
unless { context.documents != [] };

@rule("national_k12.problem.confirm")
permit (principal, action == Action::"confirm_record", resource)
when { context.documents != [] };

// key_info.rhai — requires the household register (and district review, not expressible).
@rule("national_k12.key_info.proof")
forbid (principal, action == Action::"change_key_info", resource)
unless { context.documents.contains("household_register") };

@rule("national_k12.key_info.proof")
permit (principal, action == Action::"change_key_info", resource);

// suspend.rhai — a suspension that names its end records it (a deadline, which Cedar cannot
// return), so the rule is recorded as having fired.
@rule("national_k12.suspend.until")
permit (principal, action == Action::"suspend", resource)
when { context has until };

// review.rhai — registration and every change of status domain.md lists ask the school's
// review (an approval step, which Cedar cannot return), so the rule is recorded as having fired.
@rule("national_k12.review.school")
permit (principal, action in [Action::"register", Action::"suspend", Action::"resume",
    Action::"drop_out", Action::"return_from_dropout", Action::"withdraw",
    Action::"transfer_out", Action::"expel", Action::"revoke", Action::"graduate",
    Action::"complete", Action::"leave_with_certificate", Action::"record_death",
    Action::"change_key_info"], resource);
"#;

/// The bench's own `bench-district` package (`BENCH_RULES` in engine.rs) in Cedar.
pub const BENCH_DISTRICT: &str = r#"
permit (principal, action, resource);

// 第一条: suspension needs a hospital diagnosis and a resume-by date (the Rhai rule fails
// without `until`, which refuses the transition); the two approvals and the deadline are
// obligations Cedar cannot return.
@rule("bench.suspend.proof")
forbid (principal, action == Action::"suspend", resource)
unless { context has until && context.documents.contains("hospital_diagnosis") };

@rule("bench.suspend.proof")
permit (principal, action == Action::"suspend", resource)
when { context has until };

// 第二条: a class change names the new class.
@rule("bench.change_class.direct")
forbid (principal, action == Action::"change_class", resource)
unless { context has class };

@rule("bench.change_class.direct")
permit (principal, action == Action::"change_class", resource)
when { context has class };
"#;

/// What Cedar and a xueji decision can both say: allowed or not, and which rules decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub rules: BTreeSet<String>,
}

/// The verdict of a xueji evaluation (an error refuses the transition: denied by that rule).
pub fn rhai_verdict(result: &Result<Decision, PolicyError>) -> Verdict {
    match result {
        Ok(d) if d.allowed => Verdict {
            allowed: true,
            rules: d.rules.iter().map(|r| r.id.clone()).collect(),
        },
        Ok(d) => Verdict {
            allowed: false,
            rules: d
                .rules
                .iter()
                .filter(|r| {
                    r.effect == Effect::Deny
                        || (r.effect == Effect::Require && !d.missing_documents.is_empty())
                })
                .map(|r| r.id.clone())
                .collect(),
        },
        Err(PolicyError::Script { rule, .. }) => Verdict {
            allowed: false,
            rules: BTreeSet::from([rule.clone()]),
        },
        Err(PolicyError::NoPolicy { .. }) => Verdict {
            allowed: false,
            rules: BTreeSet::new(),
        },
    }
}

/// A policy set holding only the default permit: the proof must tell it apart.
pub const PERMIT_ALL: &str = "permit (principal, action, resource);";

/// The translation of a xueji case into a Cedar request (JSON, in Cedar's entity and context
/// formats): `Student` principal, `School` resource (its `compulsory` attribute computed as the
/// Rhai `c.school.compulsory` is), the transition kind as the action, the document kinds and
/// the params (strings, integers, booleans: what `validate` lets through for the params the
/// rules read) in the context.
pub fn cedar_request(student: &Student, school: &School, input: &TransitionInput) -> Value {
    let mut s_attrs = Map::new();
    s_attrs.insert("status".into(), json!(student.status.as_str()));
    s_attrs.insert("grade".into(), json!(student.grade));
    s_attrs.insert("level".into(), json!(student.level.as_str()));
    if let Some(c) = &student.class {
        s_attrs.insert("class".into(), json!(c));
    }
    let mut sch_attrs = Map::new();
    sch_attrs.insert("level".into(), json!(school.level.as_str()));
    sch_attrs.insert("compulsory".into(), json!(school.level.is_compulsory()));
    sch_attrs.insert("jurisdiction".into(), json!(school.jurisdiction));
    if let Some(a) = &school.area {
        sch_attrs.insert("area".into(), json!(a));
    }
    if let Some(k) = &school.kind {
        sch_attrs.insert("kind".into(), json!(k));
    }
    let mut context = Map::new();
    context.insert(
        "documents".into(),
        json!(
            input
                .documents
                .iter()
                .map(|d| d.kind.as_str())
                .collect::<Vec<_>>()
        ),
    );
    if let Some(r) = input.reason {
        context.insert("reason".into(), json!(r.as_str()));
    }
    for (k, v) in &input.params {
        let keep = v.is_string() || v.is_boolean() || v.is_i64();
        if keep && !matches!(k.as_str(), "documents" | "reason") {
            context.insert(k.clone(), v.clone());
        }
    }
    let principal = json!({"type": "Student", "id": student.id});
    let resource = json!({"type": "School", "id": school.id});
    json!({
        "principal": principal,
        "action": input.kind.as_str(),
        "resource": resource,
        "entities": [
            {"uid": principal, "attrs": s_attrs, "parents": []},
            {"uid": resource, "attrs": sch_attrs, "parents": []},
        ],
        "context": context,
    })
}

/// The Cedar program, built (a no-op once built) with the cargo that built the bench.
pub struct Peer {
    exe: PathBuf,
}

impl Peer {
    pub fn build(target: &Path) -> Result<Peer, String> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/cedar/Cargo.toml");
        let target = target.join("peers");
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--quiet",
                "--locked",
                "--manifest-path",
            ])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target)
            .status()
            .map_err(|e| format!("building the Cedar peer: {e}"))?;
        if !status.success() {
            return Err(format!("building the Cedar peer failed: {status}"));
        }
        Ok(Peer {
            exe: target.join("release/cedar-peer"),
        })
    }

    /// Sends one job, returns one result per case.
    pub fn run(&self, job: &Value) -> Result<Vec<Value>, String> {
        let mut child = Command::new(&self.exe)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting the Cedar peer: {e}"))?;
        let text = job.to_string();
        {
            let mut stdin = child.stdin.take().ok_or("no stdin for the Cedar peer")?;
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| format!("writing to the Cedar peer: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("reading the Cedar peer: {e}"))?;
        if !out.status.success() {
            return Err(format!("the Cedar peer failed: {}", out.status));
        }
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("the Cedar peer's answer: {e}"))?;
        match v.get("results").and_then(Value::as_array) {
            Some(r) => Ok(r.clone()),
            None => Err("the Cedar peer's answer has no results".into()),
        }
    }
}

/// Cedar's verdict from one result of the peer (its evaluation errors are a failure).
pub fn cedar_verdict(result: &Value) -> Result<Verdict, String> {
    if let Some(errors) = result.get("errors").and_then(Value::as_array)
        && !errors.is_empty()
    {
        return Err(format!("cedar policy errors: {errors:?}"));
    }
    let allowed = result
        .get("allowed")
        .and_then(Value::as_bool)
        .ok_or("no allowed in the Cedar result")?;
    let rules = result
        .get("rules")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Verdict { allowed, rules })
}

/// Sorted nanoseconds the peer measured, under `key`.
pub fn samples(result: &Value, key: &str) -> Vec<u64> {
    result
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

pub const LEVELS: [Level; 6] = [
    Level::Primary,
    Level::Junior,
    Level::Senior,
    Level::Vocational,
    Level::Undergraduate,
    Level::Special,
];

/// The document kinds the rules of both packages read, combined as every subset.
const DOCUMENT_KINDS: [&str; 2] = ["hospital_diagnosis", "household_register"];

/// Every transition input the proof tries for one kind: no params, then each param a rule
/// reads (that the kind accepts) on its own, each with every subset of the documents. Only
/// inputs `TransitionInput::validate` accepts are kept: the service refuses the others before
/// any policy sees them.
fn inputs_for(kind: TransitionKind) -> Vec<TransitionInput> {
    let base = super::d("2026-03-02");
    let mut param_sets: Vec<Vec<(&str, Value)>> = vec![Vec::new()];
    for (name, value) in [
        ("to_school", json!("other-school")),
        ("class", json!("5")),
        ("until", json!("2027-03-01")),
    ] {
        if kind.allowed_params().contains(&name) {
            param_sets.push(vec![(name, value)]);
        }
    }
    let mut out = Vec::new();
    for params in &param_sets {
        for mask in 0..(1u32 << DOCUMENT_KINDS.len()) {
            let mut input = TransitionInput::new(kind, base);
            for (name, value) in params {
                input.params.insert((*name).to_owned(), value.clone());
            }
            for (i, doc) in DOCUMENT_KINDS.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    let document: Document =
                        serde_json::from_value(json!({ "kind": doc, "issuer_level": "county" }))
                            .unwrap_or_else(|e| panic!("document fixture {doc}: {e}"));
                    input.documents.push(document);
                }
            }
            if input.validate().is_ok() {
                out.push(input);
            }
        }
    }
    out
}

/// The outcome of the proof for one package.
#[derive(Debug, Default)]
pub struct Proof {
    pub cases: usize,
    pub denied: usize,
    /// Cases also decided by the native Rust function (those of its transition kind).
    pub native_cases: usize,
    pub mismatches: Vec<String>,
}

/// One generated case, decided by the package, waiting for Cedar's answer.
pub struct Pending {
    label: String,
    want: Verdict,
    outcome: String,
    pub request: Value,
}

/// Generates every case for `policy`, decides each with the Rhai package and, on the cases of
/// `native`'s transition kind, with the native Rust function (which must return the same
/// decision), and returns them with their Cedar requests for policy set `set`.
pub fn cases(
    policy: &CompiledPolicy,
    set: &str,
    native: Option<(TransitionKind, &super::NativeRule, super::NativeFn)>,
    proof: &mut Proof,
) -> Vec<Pending> {
    let mut out = Vec::new();
    for level in LEVELS {
        for kind in TransitionKind::iter() {
            for input in inputs_for(kind) {
                let label = format!(
                    "{} {} at a {} school, params {:?}, documents [{}]",
                    policy.manifest.id,
                    kind.as_str(),
                    level.as_str(),
                    input.params,
                    input
                        .documents
                        .iter()
                        .map(|d| d.kind.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let tc = super::case_of(
                    CaseStudent {
                        grade: Some(2),
                        class: Some("1".into()),
                        ..Default::default()
                    },
                    CaseSchool {
                        level: Some(level),
                        ..Default::default()
                    },
                    input,
                );
                let (student, school) = tc.build(policy);
                let case = Case {
                    student: &student,
                    school: &school,
                    input: &tc.transition,
                    sweep: false,
                };
                proof.cases += 1;
                let rhai = evaluate(policy, case);
                let want = rhai_verdict(&rhai);
                if !want.allowed {
                    proof.denied += 1;
                }
                if let Some((native_kind, rule, f)) = native
                    && native_kind == kind
                {
                    proof.native_cases += 1;
                    let n = f(rule, case);
                    let same = match &rhai {
                        Ok(d) => *d == n,
                        Err(_) => !n.allowed,
                    };
                    if !same {
                        proof
                            .mismatches
                            .push(format!("{label}: native {n:?} differs from Rhai {rhai:?}"));
                    }
                }
                let mut request = cedar_request(&student, &school, &tc.transition);
                request["set"] = json!(set);
                out.push(Pending {
                    label,
                    want,
                    outcome: rhai
                        .as_ref()
                        .map_or_else(|e| e.code().to_owned(), super::outcome_word),
                    request,
                });
            }
        }
    }
    out
}

/// Compares Cedar's answers with the package's, case by case.
pub fn compare(pending: &[Pending], results: &[Value], proof: &mut Proof) {
    if pending.len() != results.len() {
        proof.mismatches.push(format!(
            "the Cedar peer answered {} of {} cases",
            results.len(),
            pending.len()
        ));
        return;
    }
    for (p, r) in pending.iter().zip(results) {
        match cedar_verdict(r) {
            Ok(got) if got == p.want => {}
            Ok(got) => proof.mismatches.push(format!(
                "{}: Rhai {:?} ({}), Cedar {got:?}",
                p.label, p.want, p.outcome
            )),
            Err(e) => proof.mismatches.push(format!("{}: {e}", p.label)),
        }
    }
}

/// The request for a timed case and the package's verdict on it.
pub fn timed(policy: &CompiledPolicy, set: &str, tc: &super::TestCase) -> (Value, Verdict) {
    let (student, school) = tc.build(policy);
    let want = rhai_verdict(&evaluate(
        policy,
        Case {
            student: &student,
            school: &school,
            input: &tc.transition,
            sweep: false,
        },
    ));
    let mut request = cedar_request(&student, &school, &tc.transition);
    request["set"] = json!(set);
    request["time"] = json!(true);
    (request, want)
}
