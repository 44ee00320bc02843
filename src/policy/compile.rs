//! Turning a package source (and its compiled base) into rules ready to evaluate.

use rhai::{AST, Dynamic, FnPtr, Map};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use super::error::{PolicyLoadError, ScriptPosition};
use super::package::{DocumentRef, Manifest, PackageSource};
use super::sandbox::{self, EVALUATION_BUDGET};
use crate::domain::{PolicyRef, TransitionKind};

/// A rule ready to evaluate.
#[derive(Clone)]
pub struct CompiledRule {
    pub info: RuleInfo,
    /// `None` applies to every transition (`on: ["*"]`).
    pub on: Option<Vec<TransitionKind>>,
    pub check: FnPtr,
    pub ast: Arc<AST>,
}

/// What a district officer sees of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    pub id: String,
    pub on: Vec<String>,
    pub citation: String,
    /// The package that declared it (a base package for inherited rules).
    pub package: String,
    pub position: ScriptPosition,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// One package version, compiled with its base.
pub struct CompiledPolicy {
    pub manifest: Manifest,
    pub source: PackageSource,
    /// Hash of this package's own files.
    pub own_hash: String,
    /// Hash of this package and its whole base chain: what decisions record.
    pub content_hash: String,
    pub rules: Vec<CompiledRule>,
    pub settings: Arc<Map>,
    pub documents: BTreeMap<String, DocumentRef>,
    pub base: Option<Arc<CompiledPolicy>>,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("id", &self.manifest.id)
            .field("version", &self.manifest.version)
            .field("content_hash", &self.content_hash)
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl CompiledPolicy {
    pub fn policy_ref(&self) -> PolicyRef {
        PolicyRef {
            jurisdiction: self.manifest.id.clone(),
            version: self.manifest.version.clone(),
            content_hash: self.content_hash.clone(),
        }
    }

    pub fn rule_infos(&self) -> Vec<RuleInfo> {
        self.rules.iter().map(|r| r.info.clone()).collect()
    }
}

fn json_to_dynamic(v: &serde_json::Value) -> Dynamic {
    rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT)
}

/// Compiles a package. `base` must be the compiled package named by `extends`. Returns every
/// problem found, each with its position, or the compiled policy.
pub fn compile_package(
    source: &PackageSource,
    base: Option<Arc<CompiledPolicy>>,
) -> Result<CompiledPolicy, Vec<PolicyLoadError>> {
    source.check_shape().map_err(|e| vec![e])?;
    let unknown: Vec<PolicyLoadError> = source
        .scripts()
        .flat_map(|(file, text)| super::names::unknown_names(file, text))
        .collect();
    match compile_named(source, base) {
        Ok(p) if unknown.is_empty() => Ok(p),
        Ok(_) => Err(unknown),
        Err(mut errors) => {
            errors.extend(unknown);
            Err(errors)
        }
    }
}

/// Compiles a version stored at an earlier activation. It passed the size limits in force then,
/// which may have been wider than today's; it must still compile, or the decisions taken under
/// it could no longer be reproduced. (Its names were checked when it was activated, against the
/// sandbox of that day; they are not checked again.)
pub fn compile_stored_package(
    source: &PackageSource,
    base: Option<Arc<CompiledPolicy>>,
) -> Result<CompiledPolicy, Vec<PolicyLoadError>> {
    source.check_names().map_err(|e| vec![e])?;
    compile_named(source, base)
}

fn compile_named(
    source: &PackageSource,
    base: Option<Arc<CompiledPolicy>>,
) -> Result<CompiledPolicy, Vec<PolicyLoadError>> {
    let manifest = source.manifest().map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let manifest_err = |m: String| PolicyLoadError::new("policy_manifest", "policy.toml", m);
    let id_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    if !id_ok(&manifest.id) {
        errors.push(manifest_err(format!(
            "id `{}` must be lowercase letters, digits and '-'",
            manifest.id
        )));
    }
    match (&manifest.extends, &base) {
        (Some(want), Some(b)) if *want != b.manifest.id => {
            errors.push(PolicyLoadError::new(
                "policy_base",
                "policy.toml",
                format!("extends `{want}` but base `{}` was given", b.manifest.id),
            ));
        }
        (Some(want), None) => {
            errors.push(PolicyLoadError::new(
                "policy_base",
                "policy.toml",
                format!("base package `{want}` not found"),
            ));
        }
        (None, Some(_)) => {
            errors.push(PolicyLoadError::new(
                "policy_base",
                "policy.toml",
                "a base was given but the manifest extends nothing",
            ));
        }
        _ => {}
    }

    let mut documents = base
        .as_ref()
        .map(|b| b.documents.clone())
        .unwrap_or_default();
    documents.extend(manifest.documents.clone());
    let mut settings: Map = base
        .as_ref()
        .map(|b| (*b.settings).clone())
        .unwrap_or_default();
    for (k, v) in &manifest.params {
        settings.insert(k.as_str().into(), json_to_dynamic(v));
    }

    let base_rules: Vec<CompiledRule> = base.as_ref().map(|b| b.rules.clone()).unwrap_or_default();
    let base_ids: BTreeSet<&str> = base_rules.iter().map(|r| r.info.id.as_str()).collect();
    for o in &manifest.overrides {
        if !base_ids.contains(o.as_str()) {
            errors.push(PolicyLoadError::new(
                "policy_override",
                "policy.toml",
                format!("overrides `{o}`, which the base package does not have"),
            ));
        }
    }

    let engine = sandbox::engine();
    let mut own_rules = Vec::new();
    let mut seen = BTreeSet::new();
    let mut any_script = false;
    for (file, text) in source.scripts() {
        any_script = true;
        let mut ast = match engine.compile(text) {
            Ok(ast) => ast,
            Err(e) => {
                errors.push(PolicyLoadError::at(
                    "policy_syntax",
                    ScriptPosition::from_rhai(file, e.position()),
                    e.err_type().to_string(),
                ));
                continue;
            }
        };
        ast.set_source(file);
        let (run, raw_rules) = sandbox::collect_rules(|| {
            sandbox::with_budget(EVALUATION_BUDGET, || engine.run_ast(&ast))
        });
        if let Err(e) = run {
            let inner = e.unwrap_inner();
            errors.push(PolicyLoadError::at(
                "policy_script",
                ScriptPosition::from_rhai(file, inner.position()),
                inner.to_string(),
            ));
            continue;
        }
        let ast = Arc::new(ast);
        for raw in raw_rules {
            let position = ScriptPosition::from_rhai(file, raw.position);
            let err = |code: &str, m: String| PolicyLoadError::at(code, position.clone(), m);
            let prefix_ok = raw
                .id
                .strip_prefix(&manifest.rule_prefix)
                .is_some_and(|rest| {
                    rest.starts_with('.')
                        && rest.len() > 1
                        && rest.split('.').skip(1).all(|seg| {
                            !seg.is_empty()
                                && seg.chars().all(|c| {
                                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
                                })
                        })
                });
            if !prefix_ok {
                errors.push(err(
                    "policy_rule",
                    format!(
                        "rule id `{}` must be `{}.<topic>.<rule>` in snake_case",
                        raw.id, manifest.rule_prefix
                    ),
                ));
                continue;
            }
            if !seen.insert(raw.id.clone()) {
                errors.push(err(
                    "policy_rule",
                    format!("rule id `{}` is declared twice", raw.id),
                ));
                continue;
            }
            if base_ids.contains(raw.id.as_str()) {
                errors.push(err("policy_override", format!("rule `{}` has the id of a base rule; declare `replaces` and list it in `overrides`", raw.id)));
                continue;
            }
            if let Some(r) = &raw.replaces
                && !manifest.overrides.contains(r)
            {
                errors.push(err("policy_override", format!("rule `{}` replaces `{r}`, which policy.toml does not list in `overrides` (undeclared override)", raw.id)));
                continue;
            }
            let citation = match raw.cites.trim().split_once(char::is_whitespace) {
                Some((doc, article)) if !article.trim().is_empty() => match documents.get(doc) {
                    Some(d) => {
                        let mark = if d.secondary { " [secondary]" } else { "" };
                        format!("{} {}{mark}", d.title, article.trim())
                    }
                    None => {
                        errors.push(err(
                            "policy_citation",
                            format!(
                                "rule `{}` cites document `{doc}`, which no manifest lists",
                                raw.id
                            ),
                        ));
                        continue;
                    }
                },
                _ => {
                    errors.push(err("policy_citation", format!("rule `{}`: cites must be \"<document> <article>\", e.g. \"yanhe 三.2\"", raw.id)));
                    continue;
                }
            };
            let on = if raw.on.iter().any(|k| k == "*") {
                None
            } else {
                let mut kinds = Vec::new();
                for k in &raw.on {
                    match TransitionKind::from_str(k) {
                        Ok(t) => kinds.push(t),
                        Err(_) => errors.push(err(
                            "policy_rule",
                            format!(
                                "rule `{}`: unknown transition kind `{k}`{}",
                                raw.id,
                                suggest(k, TransitionKind::iter_names())
                            ),
                        )),
                    }
                }
                Some(kinds)
            };
            own_rules.push(CompiledRule {
                info: RuleInfo {
                    id: raw.id.clone(),
                    on: raw.on.clone(),
                    citation,
                    package: manifest.id.clone(),
                    position,
                    replaces: raw.replaces.clone(),
                },
                on,
                check: raw.check,
                ast: ast.clone(),
            });
        }
    }
    if !any_script && base.is_none() {
        errors.push(manifest_err(
            "a package without a base needs at least one .rhai file".into(),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut rules: Vec<CompiledRule> = base_rules
        .into_iter()
        .filter(|r| !manifest.overrides.contains(&r.info.id))
        .collect();
    rules.extend(own_rules);
    let own_hash = source.content_hash();
    let content_hash = match &base {
        None => own_hash.clone(),
        Some(b) => {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(format!("{own_hash}:{}", b.content_hash)))
        }
    };
    Ok(CompiledPolicy {
        manifest,
        source: source.clone(),
        own_hash,
        content_hash,
        rules,
        settings: Arc::new(settings),
        documents,
        base,
    })
}

/// ", did you mean `x`?" when a known name is close to what was written.
pub fn suggest<'a>(written: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (strsim::levenshtein(written, k), k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| format!(", did you mean `{k}`?"))
        .unwrap_or_default()
}

trait IterNames {
    fn iter_names() -> Box<dyn Iterator<Item = &'static str>>;
}

impl IterNames for TransitionKind {
    fn iter_names() -> Box<dyn Iterator<Item = &'static str>> {
        use strum::IntoEnumIterator;
        Box::new(TransitionKind::iter().map(TransitionKind::as_str))
    }
}
