//! The life of a policy version: activation through one gate, storage for ever, restoration at
//! start, reproduction of every recorded decision, and impact of a candidate on the history.

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::domain::event::DecisionContext;
use crate::domain::{Actor, Decision, Event};
use crate::engine::{Result, ServiceError, Xueji};
use crate::policy::testing::{TestLimits, outcome_of, run_package_tests_within, uncovered_rules};
use crate::policy::{
    Case, CompiledPolicy, PackageSource, PolicyLoadError, compile_package, compile_stored_package,
    evaluate, evaluate_transfer,
};
use crate::store::{Command, PolicyRecord};

/// Why a candidate package was refused; the active version stays in force.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub errors: Vec<PolicyLoadError>,
    pub failing_tests: Vec<FailingTest>,
    pub untested_rules: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailingTest {
    pub file: String,
    pub name: String,
    pub failures: Vec<String>,
}

/// A candidate that passed the gate (not yet active).
pub struct Candidate(pub Arc<CompiledPolicy>);

/// A recorded decision that came out differently on re-evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionDiff {
    pub student: String,
    pub seq: u64,
    pub kind: String,
    pub school: String,
    pub before: String,
    pub after: String,
    /// Rule ids fired in only one of the two decisions.
    pub rules_changed: Vec<String>,
    /// The candidate failed on this case (`after` is `error`): where, never the script's message,
    /// which a candidate could build from personal values its author may not see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplayFailure>,
}

/// A candidate's script error on a replayed case, without its message.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayFailure {
    pub code: String,
    pub rule: String,
    pub position: String,
}

impl DecisionDiff {
    /// The candidate failed on a replayed case: it would refuse it (fails closed).
    fn failed(
        (student, seq, kind, school): (&str, u64, &str, &str),
        before: &Decision,
        e: crate::policy::PolicyError,
    ) -> Self {
        let error = match e {
            crate::policy::PolicyError::Script {
                code,
                rule,
                position,
                ..
            } => ReplayFailure {
                code,
                rule,
                position: position.to_string(),
            },
            other => ReplayFailure {
                code: other.code().into(),
                rule: String::new(),
                position: String::new(),
            },
        };
        DecisionDiff {
            student: student.into(),
            seq,
            kind: kind.into(),
            school: school.into(),
            before: outcome_of(before).into(),
            after: "error".into(),
            rules_changed: vec![],
            error: Some(error),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReproductionReport {
    pub ok: bool,
    pub decisions: usize,
    pub mismatches: Vec<DecisionDiff>,
    /// Events whose stored context is missing or does not match the hash in the event.
    pub bad_contexts: Vec<(String, u64)>,
    /// Versions named by decisions that are not known to this service.
    pub unknown_versions: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImpactReport {
    pub jurisdiction: String,
    pub candidate_hash: String,
    pub replayed_events: usize,
    pub replayed_requests: usize,
    pub changed: Vec<DecisionDiff>,
    pub by_school: BTreeMap<String, usize>,
    pub by_kind: BTreeMap<String, usize>,
    pub by_outcome: BTreeMap<String, usize>,
}

/// The decision with its approvals in routing order. Decisions recorded before that order
/// (`domain::in_routing_order`) list the same steps in the steps' declaration order; the order is
/// the engine's, never the policy's, so a decision that names the same steps is the same decision.
fn routed(d: &Decision) -> std::borrow::Cow<'_, Decision> {
    let mut steps = d.approvals.clone();
    crate::domain::in_routing_order(&mut steps);
    if steps == d.approvals {
        std::borrow::Cow::Borrowed(d)
    } else {
        std::borrow::Cow::Owned(Decision {
            approvals: steps,
            ..d.clone()
        })
    }
}

fn diff(
    event_like: (&str, u64, &str, &str),
    before: &Decision,
    after: &Decision,
) -> Option<DecisionDiff> {
    let ids = |d: &Decision| {
        d.rules
            .iter()
            .map(|r| (r.id.clone(), r.effect))
            .collect::<BTreeSet<_>>()
    };
    let (b, a) = (ids(before), ids(after));
    let (ob, oa) = (outcome_of(before), outcome_of(after));
    if ob == oa
        && b == a
        && before.changes == after.changes
        && routed(before).approvals == routed(after).approvals
    {
        return None;
    }
    let rules_changed: BTreeSet<String> = b
        .symmetric_difference(&a)
        .map(|(id, _)| id.clone())
        .collect();
    let (student, seq, kind, school) = event_like;
    Some(DecisionDiff {
        student: student.into(),
        seq,
        kind: kind.into(),
        school: school.into(),
        before: ob.into(),
        after: oa.into(),
        rules_changed: rules_changed.into_iter().collect(),
        error: None,
    })
}

impl Xueji {
    /// Compiles a candidate against its base in force, runs its own tests and checks each rule is
    /// tested both ways. Nothing changes, whatever the outcome.
    pub fn check_candidate(
        &self,
        jurisdiction: &str,
        source: &PackageSource,
    ) -> std::result::Result<Candidate, Rejection> {
        let reject = |errors| Rejection {
            errors,
            failing_tests: vec![],
            untested_rules: vec![],
        };
        let manifest = source.manifest().map_err(|e| reject(vec![e]))?;
        if manifest.id != jurisdiction {
            return Err(reject(vec![PolicyLoadError::new(
                "policy_manifest",
                "policy.toml",
                format!(
                    "policy.toml 的 id「{}」与上传地址的辖区「{jurisdiction}」不一致",
                    manifest.id
                ),
            )]));
        }
        let base = manifest
            .extends
            .as_deref()
            .and_then(|b| self.policies().latest(b));
        let compiled = compile_package(source, base).map_err(reject)?;
        let results =
            run_package_tests_within(&compiled, self.policy_test_limits()).map_err(reject)?;
        let failing_tests: Vec<FailingTest> = results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| FailingTest {
                file: r.file.clone(),
                name: r.name.clone(),
                failures: r.failures.clone(),
            })
            .collect();
        let mut untested_rules = uncovered_rules(&compiled, &results);
        if results.is_empty() {
            untested_rules.push("the package has no test cases (tests/*.toml)".into());
        }
        if !failing_tests.is_empty() || !untested_rules.is_empty() {
            return Err(Rejection {
                errors: vec![],
                failing_tests,
                untested_rules,
            });
        }
        Ok(Candidate(Arc::new(compiled)))
    }

    /// The bounds a candidate's own test run is held to (see [`TestLimits`]).
    pub fn policy_test_limits(&self) -> TestLimits {
        *self
            .policy_test_limits
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the bounds of candidates' test runs; tests lower them to see a run stopped.
    pub fn set_policy_test_limits(&self, limits: TestLimits) {
        *self
            .policy_test_limits
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = limits;
    }

    /// The one activation gate: check, store for ever, then swap atomically. Evaluations in flight
    /// finish on the version they started with.
    pub fn activate(
        &self,
        jurisdiction: &str,
        source: &PackageSource,
        actor: &Actor,
    ) -> Result<std::result::Result<Arc<CompiledPolicy>, Rejection>> {
        let candidate = match self.check_candidate(jurisdiction, source) {
            Ok(c) => c.0,
            Err(rejection) => return Ok(Err(rejection)),
        };
        self.record_version(&candidate, actor)?;
        self.policies().activate(candidate.clone());
        tracing::info!(jurisdiction, version = %candidate.manifest.version, hash = %candidate.content_hash, "policy activated");
        Ok(Ok(candidate))
    }

    fn record_version(&self, p: &CompiledPolicy, actor: &Actor) -> Result<()> {
        let record = PolicyRecord {
            jurisdiction: p.manifest.id.clone(),
            version: p.manifest.version.clone(),
            effective_from: p.manifest.effective_from,
            content_hash: p.content_hash.clone(),
            base_hash: p.base.as_ref().map(|b| b.content_hash.clone()),
            files: p.source.files.clone(),
            activated_by: actor.id.clone(),
            activated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        self.store().submit(Command::PutPolicy {
            record: Box::new(record),
        })?;
        Ok(())
    }

    /// At start: stores the versions loaded from the binary or folder (so every version that
    /// decides is kept), then re-activates every version stored earlier, bases first, in the
    /// order they were activated, so a version uploaded later wins over the one loaded of the same
    /// date. One exception: a version an earlier start loaded (activated by `system:startup`)
    /// whose date the versions loaded now also have, with other content, was superseded by the
    /// binary or folder (a corrected reading of the same text): it stays reachable by its hash, so
    /// the decisions taken under it still reproduce, but it decides nothing new.
    pub fn restore_policies(&self) -> Result<()> {
        let startup = Actor::system("startup");
        let loaded: BTreeMap<(String, crate::domain::Date), String> = self
            .policies()
            .all_versions()
            .iter()
            .map(|p| {
                (
                    (p.manifest.id.clone(), p.manifest.effective_from),
                    p.content_hash.clone(),
                )
            })
            .collect();
        for p in self.policies().all_versions() {
            self.record_version(&p, &startup)?;
        }
        let mut pending: Vec<PolicyRecord> = self.store().policy_versions()?;
        pending.sort_by(|a, b| a.activated_at.cmp(&b.activated_at));
        while !pending.is_empty() {
            let before = pending.len();
            let mut later = Vec::new();
            for record in pending {
                if self.policies().by_hash(&record.content_hash).is_some() {
                    continue;
                }
                let superseded = record.activated_by == startup.id
                    && loaded
                        .get(&(record.jurisdiction.clone(), record.effective_from))
                        .is_some_and(|h| *h != record.content_hash);
                let base = match &record.base_hash {
                    Some(h) => match self.policies().by_hash(h) {
                        Some(b) => Some(b),
                        None => {
                            later.push(record);
                            continue;
                        }
                    },
                    None => None,
                };
                match compile_stored_package(
                    &PackageSource {
                        files: record.files.clone(),
                    },
                    base,
                ) {
                    Ok(p) if superseded => self.policies().remember(Arc::new(p)),
                    Ok(p) => self.policies().activate(Arc::new(p)),
                    Err(e) => {
                        tracing::error!(jurisdiction = %record.jurisdiction, hash = %record.content_hash, errors = ?e, "stored policy version no longer compiles")
                    }
                }
            }
            if later.len() == before {
                for r in &later {
                    tracing::error!(jurisdiction = %r.jurisdiction, hash = %r.content_hash, "stored policy version's base is missing");
                }
                break;
            }
            pending = later;
        }
        Ok(())
    }

    /// The context `event`'s decision was taken in, when it is stored and matches the event.
    pub fn context_of(&self, event: &Event) -> Result<Option<DecisionContext>> {
        let Some(ctx) = self.store().context(event)? else {
            return Ok(None);
        };
        let matches =
            event.context.as_deref() == Some(DecisionContext::hash_of(&ctx.to_bytes()).as_str());
        Ok(matches.then_some(ctx))
    }

    /// Re-evaluates every recorded decision (of one jurisdiction, or all) under the version it
    /// records, and reports any that does not come out the same.
    pub fn reproduce_decisions(&self, jurisdiction: Option<&str>) -> Result<ReproductionReport> {
        let mut report = ReproductionReport {
            ok: true,
            ..Default::default()
        };
        let jurisdictions: Vec<String> = match jurisdiction {
            Some(j) => vec![j.to_owned()],
            None => self
                .policies()
                .all_latest()
                .iter()
                .map(|p| p.manifest.id.clone())
                .collect(),
        };
        let mut unknown = BTreeSet::new();
        for jur in jurisdictions {
            self.for_each_event(&jur, |event| {
                let Some(ctx) = self.context_of(event)? else {
                    report.bad_contexts.push((event.student.clone(), event.seq));
                    return Ok(());
                };
                let Some(policy) = self.policies().by_hash(&event.decision.policy.content_hash)
                else {
                    unknown.insert(event.decision.policy.content_hash.clone());
                    return Ok(());
                };
                let receiving = match &event.decision.receiving_policy {
                    Some(r) => match self.policies().by_hash(&r.content_hash) {
                        Some(p) => Some(p),
                        None => {
                            unknown.insert(r.content_hash.clone());
                            return Ok(());
                        }
                    },
                    None => None,
                };
                report.decisions += 1;
                let Some(again) = decide_again(&policy, receiving.as_deref(), &ctx).transpose()?
                else {
                    report.bad_contexts.push((event.student.clone(), event.seq));
                    return Ok(());
                };
                if again != *routed(&event.decision) {
                    let d = diff(
                        (
                            &event.student,
                            event.seq,
                            event.kind.as_str(),
                            &ctx.school.id,
                        ),
                        &event.decision,
                        &again,
                    );
                    report.mismatches.push(d.unwrap_or(DecisionDiff {
                        student: event.student.clone(),
                        seq: event.seq,
                        kind: event.kind.as_str().into(),
                        school: ctx.school.id.clone(),
                        before: outcome_of(&event.decision).into(),
                        after: outcome_of(&again).into(),
                        rules_changed: vec![],
                        error: None,
                    }));
                }
                Ok(())
            })?;
        }
        report.unknown_versions = unknown.into_iter().collect();
        report.ok = report.mismatches.is_empty()
            && report.bad_contexts.is_empty()
            && report.unknown_versions.is_empty();
        Ok(report)
    }

    fn for_each_event(
        &self,
        jurisdiction: &str,
        mut f: impl FnMut(&Event) -> Result<()>,
    ) -> Result<()> {
        let mut after: Option<String> = None;
        loop {
            let batch =
                self.store()
                    .events_of_jurisdiction(jurisdiction, after.as_deref(), 1000)?;
            if batch.is_empty() {
                return Ok(());
            }
            for (_, e) in &batch {
                f(e)?;
            }
            after = batch.last().map(|(k, _)| k.clone());
        }
    }

    /// Replays the recorded history and the open requests of a jurisdiction under a candidate
    /// package and lists every decision that would change. Stores nothing.
    pub fn impact(&self, jurisdiction: &str, candidate: &CompiledPolicy) -> Result<ImpactReport> {
        let mut report = ImpactReport {
            jurisdiction: jurisdiction.into(),
            candidate_hash: candidate.content_hash.clone(),
            ..Default::default()
        };
        let mut changed = Vec::new();
        self.for_each_event(jurisdiction, |event| {
            let Some(ctx) = self.context_of(event)? else {
                return Ok(());
            };
            report.replayed_events += 1;
            let at = (
                event.student.as_str(),
                event.seq,
                event.kind.as_str(),
                ctx.school.id.as_str(),
            );
            // A transfer between two jurisdictions is in both logs: the candidate takes the
            // side of the jurisdiction it is for, the other side keeps its recorded version.
            let recorded_side = match &event.decision.receiving_policy {
                None => None,
                Some(r) if r.jurisdiction == jurisdiction => {
                    match self.policies().by_hash(&event.decision.policy.content_hash) {
                        Some(p) => Some((p, true)),
                        None => return Ok(()),
                    }
                }
                Some(r) => match self.policies().by_hash(&r.content_hash) {
                    Some(p) => Some((p, false)),
                    None => return Ok(()),
                },
            };
            let (sending, receiving) = match &recorded_side {
                None => (candidate, None),
                Some((sending, true)) => (&**sending, Some(candidate)),
                Some((receiving, false)) => (candidate, Some(&**receiving)),
            };
            match decide_again(sending, receiving, &ctx) {
                Some(Ok(after)) => changed.extend(diff(at, &event.decision, &after)),
                Some(Err(e)) => changed.push(DecisionDiff::failed(at, &event.decision, e)),
                None => {}
            }
            Ok(())
        })?;
        let mut after_key: Option<String> = None;
        loop {
            let page = self.store().requests_with_status(
                jurisdiction,
                crate::domain::RequestStatus::Pending,
                after_key.as_deref(),
                1000,
            )?;
            if page.is_empty() {
                break;
            }
            for (_, r) in &page {
                let (Some(student), Some(school)) = (
                    self.store().student(&r.student)?,
                    self.store().school(&r.school)?,
                ) else {
                    continue;
                };
                report.replayed_requests += 1;
                let at = (
                    r.student.as_str(),
                    0,
                    r.input.kind.as_str(),
                    r.school.as_str(),
                );
                let case = Case {
                    student: &student,
                    school: &school,
                    input: &r.input,
                    sweep: false,
                };
                let after = match (&r.receiving_jurisdiction, &r.receiving_school) {
                    (Some(other), Some(to)) => {
                        let Some(to) = self.store().school(to)? else {
                            continue;
                        };
                        let date = r.input.effective_date;
                        if other == jurisdiction {
                            let sending = self.policies().in_force(&r.jurisdiction, date)?;
                            evaluate_transfer(&sending, candidate, case, &to)
                        } else {
                            let receiving = self.policies().in_force(other, date)?;
                            evaluate_transfer(candidate, &receiving, case, &to)
                        }
                    }
                    _ => evaluate(candidate, case),
                };
                match after {
                    Ok(after) => changed.extend(diff(at, &r.decision, &after)),
                    Err(e) => changed.push(DecisionDiff::failed(at, &r.decision, e)),
                }
            }
            after_key = page.last().map(|(k, _)| k.clone());
        }
        for d in &changed {
            *report.by_school.entry(d.school.clone()).or_default() += 1;
            *report.by_kind.entry(d.kind.clone()).or_default() += 1;
            *report
                .by_outcome
                .entry(format!("{}→{}", d.before, d.after))
                .or_default() += 1;
        }
        report.changed = changed;
        Ok(report)
    }
}

/// A recorded case decided again under `policy`, and for a transfer from another jurisdiction
/// under `receiving` too, at the receiving school its context recorded (`None` when the context
/// has none).
fn decide_again(
    policy: &CompiledPolicy,
    receiving: Option<&CompiledPolicy>,
    ctx: &DecisionContext,
) -> Option<std::result::Result<Decision, crate::policy::PolicyError>> {
    let case = Case {
        student: &ctx.student,
        school: &ctx.school,
        input: &ctx.input,
        sweep: ctx.sweep,
    };
    match receiving {
        None => Some(evaluate(policy, case)),
        Some(r) => {
            let to = ctx.receiving_school.as_ref()?;
            Some(evaluate_transfer(policy, r, case, to))
        }
    }
}

impl From<crate::policy::PolicyError> for Box<ServiceError> {
    fn from(e: crate::policy::PolicyError) -> Self {
        Box::new(ServiceError::Policy(e))
    }
}

/// What one look at a watched policy folder did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FolderSync {
    pub activated: Vec<String>,
    pub rejected: Vec<(String, Rejection)>,
}

/// Watches a policy folder: every package whose files changed since the last look goes through
/// the activation gate; a broken edit is refused and the version in force stays.
#[derive(Default)]
pub struct FolderWatch {
    seen: BTreeMap<String, crate::policy::PackageSource>,
}

impl FolderWatch {
    /// Starts from the packages loaded at start, so only later edits count.
    pub fn new(initial: &crate::policy::PackageSet) -> Self {
        FolderWatch {
            seen: initial.packages.clone(),
        }
    }

    pub fn sync(&mut self, x: &Xueji, dir: &std::path::Path) -> Result<FolderSync> {
        let set = crate::policy::PackageSet::read_dir(dir)
            .map_err(|e| ServiceError::Storage(format!("reading {}: {e}", dir.display())))?;
        let mut out = FolderSync::default();
        let actor = Actor::system("policy_folder");
        for (id, source) in set.packages {
            if self.seen.get(&id) == Some(&source) {
                continue;
            }
            match x.activate(&id, &source, &actor)? {
                Ok(p) => out.activated.push(format!("{id} {}", p.manifest.version)),
                Err(rejection) => {
                    tracing::warn!(package = %id, errors = rejection.errors.len(), failing_tests = rejection.failing_tests.len(), "edited policy package refused; the version in force stays");
                    out.rejected.push((id.clone(), rejection));
                }
            }
            // Remember it either way: a broken edit is reported once, not on every look.
            self.seen.insert(id, source);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ApprovalStep, PolicyRef, StudentChanges};

    fn decision(approvals: Vec<ApprovalStep>) -> Decision {
        Decision {
            allowed: true,
            policy: PolicyRef {
                jurisdiction: "national-k12".into(),
                version: "2013.1".into(),
                content_hash: "h".into(),
            },
            rules: Vec::new(),
            required_documents: Vec::new(),
            missing_documents: Vec::new(),
            approvals,
            changes: StudentChanges::default(),
            deadlines: Vec::new(),
            receiving_policy: None,
        }
    }

    /// A transfer recorded before the routing order listed the sending school first; the same
    /// policy now gives the receiving school first. That is the same decision, for `verify` and
    /// for `impact`; other steps are a different one.
    #[test]
    fn a_decision_recorded_in_the_old_step_order_is_the_same_decision() {
        use ApprovalStep::{District, ReceivingSchool, School};
        let recorded = decision(vec![School, ReceivingSchool, District]);
        let again = decision(vec![ReceivingSchool, School, District]);
        assert_ne!(recorded, again);
        assert_eq!(again, *routed(&recorded));
        assert!(diff(("s", 1, "transfer", "s1"), &recorded, &again).is_none());
        let fewer = decision(vec![ReceivingSchool, School]);
        assert_ne!(fewer, *routed(&recorded));
        assert!(diff(("s", 1, "transfer", "s1"), &recorded, &fewer).is_some());
    }
}
