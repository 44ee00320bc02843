//! The compiled package versions in force, by jurisdiction and date, swapped atomically.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use super::compile::{CompiledPolicy, compile_package};
use super::error::{PolicyError, PolicyLoadError};
use super::package::PackageSet;
use crate::domain::Date;

#[derive(Default)]
struct Snapshot {
    /// Versions of each package, oldest `effective_from` first.
    versions: BTreeMap<String, Vec<Arc<CompiledPolicy>>>,
    by_hash: HashMap<String, Arc<CompiledPolicy>>,
}

/// Every activated package version. Readers take a consistent snapshot; activation replaces it
/// whole, so an evaluation in flight finishes on the version it started with.
#[derive(Default)]
pub struct PolicyRegistry {
    current: RwLock<Arc<Snapshot>>,
}

/// Compile errors of a package set, by package id.
pub type LoadErrors = BTreeMap<String, Vec<PolicyLoadError>>;

impl PolicyRegistry {
    /// Compiles a whole package set, bases before the packages that extend them.
    pub fn from_packages(set: &PackageSet) -> Result<PolicyRegistry, LoadErrors> {
        let registry = PolicyRegistry::default();
        let mut errors = LoadErrors::new();
        let mut pending: Vec<&String> = set.packages.keys().collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut still = Vec::new();
            for id in pending {
                let source = &set.packages[id];
                let manifest = match source.manifest() {
                    Ok(m) => m,
                    Err(e) => {
                        errors.insert(id.clone(), vec![e]);
                        continue;
                    }
                };
                let base = match &manifest.extends {
                    None => None,
                    Some(b) if errors.contains_key(b) => {
                        errors.insert(
                            id.clone(),
                            vec![PolicyLoadError::new(
                                "policy_base",
                                "policy.toml",
                                format!("base package `{b}` failed to compile"),
                            )],
                        );
                        continue;
                    }
                    Some(b) => match registry.latest(b) {
                        Some(p) => Some(p),
                        None if set.packages.contains_key(b) => {
                            still.push(id);
                            continue;
                        }
                        None => None,
                    },
                };
                match compile_package(source, base) {
                    Ok(p) => registry.activate(Arc::new(p)),
                    Err(e) => {
                        errors.insert(id.clone(), e);
                    }
                }
            }
            if still.len() == before {
                for id in still {
                    errors.insert(
                        id.clone(),
                        vec![PolicyLoadError::new(
                            "policy_base",
                            "policy.toml",
                            "extends forms a cycle",
                        )],
                    );
                }
                break;
            }
            pending = still;
        }
        if errors.is_empty() {
            Ok(registry)
        } else {
            Err(errors)
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Adds a version; one with the same `effective_from` replaces the previous one for new
    /// decisions, while staying reachable by its hash for replay.
    pub fn activate(&self, policy: Arc<CompiledPolicy>) {
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Snapshot {
            versions: guard.versions.clone(),
            by_hash: guard.by_hash.clone(),
        };
        let list = next.versions.entry(policy.manifest.id.clone()).or_default();
        list.retain(|p| p.manifest.effective_from != policy.manifest.effective_from);
        list.push(policy.clone());
        list.sort_by_key(|p| p.manifest.effective_from);
        next.by_hash.insert(policy.content_hash.clone(), policy);
        *guard = Arc::new(next);
    }

    /// Keeps a version reachable by its hash (to reproduce the decisions taken under it) without
    /// putting it in force.
    pub fn remember(&self, policy: Arc<CompiledPolicy>) {
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Snapshot {
            versions: guard.versions.clone(),
            by_hash: guard.by_hash.clone(),
        };
        next.by_hash.insert(policy.content_hash.clone(), policy);
        *guard = Arc::new(next);
    }

    /// The version in force on `date`: the latest `effective_from` on or before it.
    pub fn in_force(
        &self,
        jurisdiction: &str,
        date: Date,
    ) -> Result<Arc<CompiledPolicy>, PolicyError> {
        let snap = self.snapshot();
        snap.versions
            .get(jurisdiction)
            .and_then(|v| {
                v.iter()
                    .rev()
                    .find(|p| p.manifest.effective_from <= date)
                    .cloned()
            })
            .ok_or_else(|| PolicyError::NoPolicy {
                jurisdiction: jurisdiction.into(),
                date: date.to_string(),
            })
    }

    pub fn latest(&self, jurisdiction: &str) -> Option<Arc<CompiledPolicy>> {
        self.snapshot()
            .versions
            .get(jurisdiction)
            .and_then(|v| v.last().cloned())
    }

    pub fn by_hash(&self, content_hash: &str) -> Option<Arc<CompiledPolicy>> {
        self.snapshot().by_hash.get(content_hash).cloned()
    }

    /// The newest version of every package.
    pub fn all_latest(&self) -> Vec<Arc<CompiledPolicy>> {
        self.snapshot()
            .versions
            .values()
            .filter_map(|v| v.last().cloned())
            .collect()
    }

    /// Every version of every package, each package's oldest first.
    pub fn all_versions(&self) -> Vec<Arc<CompiledPolicy>> {
        self.snapshot()
            .versions
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    pub fn versions(&self, jurisdiction: &str) -> Vec<Arc<CompiledPolicy>> {
        self.snapshot()
            .versions
            .get(jurisdiction)
            .cloned()
            .unwrap_or_default()
    }
}
