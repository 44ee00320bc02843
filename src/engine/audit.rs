//! The jurisdiction log seen from outside: checkpoints an inspector keeps, the check of a store
//! against them, and the RFC 9162 proofs that let a checkpoint holder verify a newer one without
//! the data. The per-student chains (`verify_all`) prove each student's history; this proves
//! that no event of the jurisdiction was changed, removed or rolled back since a checkpoint.

use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::domain::FieldError;
use crate::domain::merkle::{self, Checkpoint, Hash};
use crate::engine::{Result, ServiceError, Xueji};

/// Leaves read per store call while checking a log.
const LEAF_PAGE: usize = 4096;

/// One thing wrong with a jurisdiction's log, precise enough to find the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogProblem {
    /// `event_altered`, `event_missing`, `leaf_missing`, `event_not_logged`, `head_mismatch`,
    /// `rolled_back` or `checkpoint_mismatch`.
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub message: String,
}

/// The check of one jurisdiction's log.
#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    pub jurisdiction: String,
    pub ok: bool,
    /// Events in the log.
    pub size: u64,
    /// Root recomputed from the events themselves (not from stored hashes).
    pub root: String,
    /// The checkpoint checked against, if one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
    pub problems: Vec<LogProblem>,
}

/// A consistency proof between two sizes of a jurisdiction's log.
#[derive(Debug, Clone, Serialize)]
pub struct ConsistencyProof {
    pub jurisdiction: String,
    pub old_size: u64,
    pub old_root: String,
    pub new_size: u64,
    pub new_root: String,
    /// Hex hashes, RFC 9162 §2.1.4 order.
    pub proof: Vec<String>,
}

fn problem(code: &str, message: String) -> LogProblem {
    LogProblem {
        code: code.into(),
        index: None,
        student: None,
        seq: None,
        message,
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Xueji {
    /// The current checkpoint of every jurisdiction that has events.
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let taken_at = now();
        Ok(self
            .store()
            .log_heads()?
            .into_iter()
            .map(|(jurisdiction, f)| Checkpoint {
                jurisdiction,
                size: f.size,
                root: merkle::to_hex(&f.root()),
                taken_at: taken_at.clone(),
            })
            .collect())
    }

    /// The leaf hashes of a log, recomputed from the stored events; problems found on the way.
    fn recomputed_leaves(&self, jurisdiction: &str) -> Result<(Vec<Hash>, Vec<LogProblem>)> {
        let store = self.store();
        let head = store.log_head(jurisdiction)?;
        let mut leaves = Vec::with_capacity(usize::try_from(head.size).unwrap_or(0));
        let mut problems = Vec::new();
        let mut logged = BTreeSet::new();
        let mut next = 0u64;
        loop {
            let page = store.log_leaves(jurisdiction, next, LEAF_PAGE)?;
            let Some(last) = page.last() else { break };
            let after_page = last.index + 1;
            for leaf in page {
                if leaf.index != next {
                    problems.push(LogProblem {
                        index: Some(next),
                        ..problem("leaf_missing", format!("日志第 {next} 项缺失(日志被删改)"))
                    });
                    next = leaf.index;
                }
                let (student, seq) = split_event_name(&leaf.event_name);
                let located = |code: &str, message: String| LogProblem {
                    index: Some(leaf.index),
                    student: Some(student.clone()),
                    seq,
                    ..problem(code, message)
                };
                let event_hash = match store.logged_event(jurisdiction, leaf.index)? {
                    None => {
                        problems.push(located(
                            "event_missing",
                            format!("学生 {student} 第 {} 条事件已被删除", seq.unwrap_or(0)),
                        ));
                        leaf.event_hash
                    }
                    Some(event) => {
                        let recomputed = merkle::from_hex(&event.compute_hash())
                            .unwrap_or_else(|| unreachable!("SHA-256 hex"));
                        if recomputed != leaf.event_hash {
                            problems.push(located(
                                "event_altered",
                                format!(
                                    "学生 {student} 第 {} 条事件的内容与记入日志时不同",
                                    seq.unwrap_or(0)
                                ),
                            ));
                        }
                        recomputed
                    }
                };
                logged.insert(leaf.index);
                leaves.push(merkle::leaf_hash(&event_hash));
                next += 1;
            }
            next = next.max(after_page);
        }
        for index in store.logged_event_indices(jurisdiction)? {
            if !logged.contains(&index) {
                let (student, seq) = match store.logged_event(jurisdiction, index)? {
                    Some(e) => (e.student, Some(e.seq)),
                    None => (String::new(), None),
                };
                problems.push(LogProblem {
                    student: Some(student.clone()),
                    seq,
                    ..problem(
                        "event_not_logged",
                        format!(
                            "学生 {student} 第 {} 条事件不在日志中(事件被插入)",
                            seq.unwrap_or(0)
                        ),
                    )
                });
            }
        }
        if leaves.len() as u64 != head.size || merkle::root(&leaves) != head.root() {
            problems.push(problem(
                "head_mismatch",
                format!(
                    "日志头记录 {} 项,与逐条重算的结果不一致(日志被改写)",
                    head.size
                ),
            ));
        }
        Ok((leaves, problems))
    }

    /// Checks a jurisdiction's log against its events and, if given, against a checkpoint taken
    /// earlier: the first `checkpoint.size` events must hash to `checkpoint.root`.
    pub fn verify_log(
        &self,
        jurisdiction: &str,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<LogReport> {
        let (leaves, mut problems) = self.recomputed_leaves(jurisdiction)?;
        if let Some(cp) = checkpoint {
            let size = leaves.len() as u64;
            if cp.size > size {
                problems.push(problem(
                    "rolled_back",
                    format!(
                        "检查点({})记录了 {} 条事件,现在只有 {size} 条:历史被回退或删除",
                        cp.taken_at, cp.size
                    ),
                ));
            } else {
                let expected = merkle::from_hex(&cp.root);
                let prefix = usize::try_from(cp.size).unwrap_or(usize::MAX);
                if expected != Some(merkle::root(&leaves[..prefix])) {
                    problems.push(problem(
                        "checkpoint_mismatch",
                        format!(
                            "前 {} 条事件与检查点({})不符:有事件被改动、删除或替换",
                            cp.size, cp.taken_at
                        ),
                    ));
                }
            }
        }
        Ok(LogReport {
            jurisdiction: jurisdiction.to_owned(),
            ok: problems.is_empty(),
            size: leaves.len() as u64,
            root: merkle::to_hex(&merkle::root(&leaves)),
            checkpoint: checkpoint.cloned(),
            problems,
        })
    }

    /// Checks every jurisdiction that has a log, each against its checkpoint in `checkpoints`
    /// when there is one. A checkpoint for a jurisdiction with no log at all is a roll-back too.
    pub fn verify_logs(&self, checkpoints: &[Checkpoint]) -> Result<Vec<LogReport>> {
        let mut jurisdictions: BTreeSet<String> = self
            .store()
            .log_heads()?
            .into_iter()
            .map(|(j, _)| j)
            .collect();
        jurisdictions.extend(checkpoints.iter().map(|c| c.jurisdiction.clone()));
        jurisdictions
            .iter()
            .map(|j| {
                let cp = checkpoints.iter().find(|c| &c.jurisdiction == j);
                self.verify_log(j, cp)
            })
            .collect()
    }

    /// The RFC 9162 consistency proof from the log's first `old_size` events to its current
    /// size, computed from the events themselves.
    pub fn consistency_proof(&self, jurisdiction: &str, old_size: u64) -> Result<ConsistencyProof> {
        let (leaves, problems) = self.recomputed_leaves(jurisdiction)?;
        if let Some(p) = problems.first() {
            return Err(ServiceError::Conflict {
                code: "log_damaged",
                message: format!("日志校验未通过,无法出具证明:{}", p.message),
            });
        }
        let old = usize::try_from(old_size).unwrap_or(usize::MAX);
        let proof = merkle::consistency_proof(&leaves, old).ok_or_else(|| {
            ServiceError::Invalid(
                FieldError::new(
                    "out_of_range",
                    "from",
                    format!("日志只有 {} 条事件,小于 {old_size}", leaves.len()),
                )
                .into(),
            )
        })?;
        Ok(ConsistencyProof {
            jurisdiction: jurisdiction.to_owned(),
            old_size,
            old_root: merkle::to_hex(&merkle::root(&leaves[..old])),
            new_size: leaves.len() as u64,
            new_root: merkle::to_hex(&merkle::root(&leaves)),
            proof: proof.iter().map(merkle::to_hex).collect(),
        })
    }
}

// ---- checkpoint files ---------------------------------------------------------------------

/// Where a backup's checkpoints are written: beside it, `<backup>.checkpoints.json`.
pub fn checkpoints_path(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".checkpoints.json");
    PathBuf::from(name)
}

/// A backup written: the copy, its rows, and the checkpoints of its logs, written beside it.
#[derive(Debug, Clone)]
pub struct Backup {
    pub file: PathBuf,
    pub records: u64,
    pub checkpoints: Vec<Checkpoint>,
    pub checkpoints_file: PathBuf,
}

/// The one backup path, for `POST /v1/backups` (the serving store) and `xueji backup` (a
/// [`crate::store::ReadOnlyStore`] beside the server): a copy of the store at one commit
/// ([`crate::store::write_copy`]), then its checkpoints beside it
/// ([`checkpoints_path`]). If the checkpoints cannot be written, the copy is removed: a backup
/// is both files or nothing.
pub fn write_backup(
    source: &impl crate::store::BackupSource,
    out: &Path,
) -> std::result::Result<Backup, crate::store::StoreError> {
    let (records, checkpoints) = crate::store::write_copy(source, out)?;
    let checkpoints_file = checkpoints_path(out);
    if let Err(e) = write_checkpoints(&checkpoints_file, &checkpoints) {
        std::fs::remove_file(out).ok();
        std::fs::remove_file(&checkpoints_file).ok();
        return Err(crate::store::StoreError::Storage(format!("{e:#}")));
    }
    Ok(Backup {
        file: out.to_path_buf(),
        records,
        checkpoints,
        checkpoints_file,
    })
}

pub fn write_checkpoints(path: &Path, checkpoints: &[Checkpoint]) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(checkpoints)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Reads checkpoints as `xueji backup` writes them (a list) or as `GET /v1/checkpoints`
/// answers (`{"items": [...]}`).
pub fn read_checkpoints(path: &Path) -> anyhow::Result<Vec<Checkpoint>> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Kept {
        List(Vec<Checkpoint>),
        Answer { items: Vec<Checkpoint> },
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let kept: Kept = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a checkpoint file", path.display()))?;
    Ok(match kept {
        Kept::List(v) | Kept::Answer { items: v } => v,
    })
}

/// `(student, seq)` from the name a log leaf gives its event, `jur␟student␟seq`.
fn split_event_name(key: &str) -> (String, Option<u64>) {
    let mut parts = key.split('\u{1f}').skip(1);
    let student = parts.next().unwrap_or_default().to_owned();
    let seq = parts.next().and_then(|s| s.parse().ok());
    (student, seq)
}
