//! Package sources: the files of one package version, from the embedded seed packages, a folder
//! or an upload, and their manifest.

use include_dir::{Dir, include_dir};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

use super::error::PolicyLoadError;
use crate::domain::Date;

static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/policies");

/// A regulation a package cites, keyed in the manifest by a short id used in `cites`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentRef {
    pub title: String,
    /// 文号, e.g. `沈教发〔2016〕99号`.
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub in_force: Option<Date>,
    /// True when only secondary sources were read (◑ in the domain digest).
    #[serde(default)]
    pub secondary: bool,
}

/// `policy.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub extends: Option<String>,
    pub version: String,
    pub effective_from: Date,
    /// Every rule id of this package starts with `<rule_prefix>.`.
    pub rule_prefix: String,
    /// Base rules this package replaces; each must exist in the base.
    #[serde(default)]
    pub overrides: Vec<String>,
    #[serde(default)]
    pub documents: BTreeMap<String, DocumentRef>,
    /// Settings the rules read with `c.setting("name")`; a package overrides its base's.
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

/// The files of one package version, by relative path (`policy.toml`, `suspend.rhai`,
/// `tests/suspend.toml`, `README.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSource {
    pub files: BTreeMap<String, String>,
}

/// Most files one package may hold (the largest seed package has 17).
pub const MAX_PACKAGE_FILES: usize = 100;
/// Largest total size of a package's files (the largest seed package is 37 KB). Below the
/// 1 MiB request body limit, so what a folder may hold can also be uploaded.
pub const MAX_PACKAGE_BYTES: usize = 512 * 1024;

impl PackageSource {
    pub fn manifest(&self) -> Result<Manifest, PolicyLoadError> {
        let text = self.files.get("policy.toml").ok_or_else(|| {
            PolicyLoadError::new("policy_manifest", "policy.toml", "缺少 policy.toml")
        })?;
        toml::from_str::<Manifest>(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            PolicyLoadError::at(
                "policy_manifest",
                super::ScriptPosition {
                    file: "policy.toml".into(),
                    line,
                    column,
                },
                e.message().to_owned(),
            )
        })
    }

    /// SHA-256 over the files that decide (path, length, bytes of `policy.toml` and `*.rhai`, in
    /// path order): the version's identity. Tests and README can change without changing it.
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        let deciding = self
            .files
            .iter()
            .filter(|(p, _)| *p == "policy.toml" || (p.ends_with(".rhai") && !p.contains('/')));
        for (path, text) in deciding {
            h.update((path.len() as u64).to_be_bytes());
            h.update(path.as_bytes());
            h.update((text.len() as u64).to_be_bytes());
            h.update(text.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// The rule scripts, in path order.
    pub fn scripts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files
            .iter()
            .filter(|(p, _)| p.ends_with(".rhai") && !p.contains('/'))
            .map(|(p, t)| (p.as_str(), t.as_str()))
    }

    /// The test case files, in path order.
    pub fn test_files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files
            .iter()
            .filter(|(p, _)| p.starts_with("tests/") && p.ends_with(".toml"))
            .map(|(p, t)| (p.as_str(), t.as_str()))
    }

    /// Checks names and sizes of an uploaded or read package before anything parses it.
    pub fn check_shape(&self) -> Result<(), PolicyLoadError> {
        self.check_size()?;
        self.check_names()
    }

    /// The bounds on a package's size: at most [`MAX_PACKAGE_FILES`] files,
    /// [`MAX_PACKAGE_BYTES`] in all.
    pub fn check_size(&self) -> Result<(), PolicyLoadError> {
        if self.files.len() > MAX_PACKAGE_FILES {
            return Err(PolicyLoadError::new(
                "policy_too_many_files",
                "",
                format!(
                    "政策包文件数不能超过 {MAX_PACKAGE_FILES} 个(本包 {} 个)",
                    self.files.len()
                ),
            ));
        }
        let total: usize = self.files.iter().map(|(p, t)| p.len() + t.len()).sum();
        if total > MAX_PACKAGE_BYTES {
            return Err(PolicyLoadError::new(
                "policy_too_large",
                "",
                format!(
                    "政策包总大小不能超过 {} KiB(本包 {} KiB)",
                    MAX_PACKAGE_BYTES / 1024,
                    total.div_ceil(1024)
                ),
            ));
        }
        Ok(())
    }

    /// Each file name is a relative path of plain segments.
    pub fn check_names(&self) -> Result<(), PolicyLoadError> {
        for path in self.files.keys() {
            let ok = !path.is_empty()
                && !path.starts_with('/')
                && !path
                    .split('/')
                    .any(|seg| seg.is_empty() || seg == "." || seg == "..")
                && path
                    .chars()
                    .all(|c| c.is_alphanumeric() || "-_./".contains(c));
            if !ok {
                return Err(PolicyLoadError::new(
                    "policy_manifest",
                    path,
                    "文件名不合法",
                ));
            }
        }
        Ok(())
    }

    /// Reads a package folder: `policy.toml`, `*.rhai`, `README.md` and `tests/*.toml`.
    pub fn read_dir(dir: &Path) -> std::io::Result<PackageSource> {
        let mut files = BTreeMap::new();
        for sub in ["", "tests"] {
            let d = dir.join(sub);
            if !d.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&d)? {
                let path = entry?.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let keep = path.is_file()
                    && (name.ends_with(".rhai")
                        || name.ends_with(".toml")
                        || name.ends_with(".md"));
                if keep {
                    // Past the limits `check_shape` refuses the package anyway: read no further
                    // than it takes to see that, however large the folder or a file is.
                    if files.len() > MAX_PACKAGE_FILES {
                        break;
                    }
                    let rel = if sub.is_empty() {
                        name.to_owned()
                    } else {
                        format!("{sub}/{name}")
                    };
                    files.insert(rel, read_at_most(&path, MAX_PACKAGE_BYTES + 1)?);
                }
            }
        }
        Ok(PackageSource { files })
    }
}

/// A text file, or its first `limit` bytes when it is longer (then too large to be accepted).
fn read_at_most(path: &Path, limit: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(u64::try_from(limit).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)?;
    if bytes.len() >= limit {
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Line and column (1-based) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Every package of a policy folder, by package id.
#[derive(Debug, Clone, Default)]
pub struct PackageSet {
    pub packages: BTreeMap<String, PackageSource>,
}

impl PackageSet {
    /// Reads every sub-folder holding a `policy.toml`.
    pub fn read_dir(root: &Path) -> std::io::Result<PackageSet> {
        let mut packages = BTreeMap::new();
        for entry in std::fs::read_dir(root)? {
            let path = entry?.path();
            if path.join("policy.toml").is_file()
                && let Some(name) = path.file_name().and_then(|n| n.to_str())
            {
                packages.insert(name.to_owned(), PackageSource::read_dir(&path)?);
            }
        }
        Ok(PackageSet { packages })
    }
}

/// The seed packages compiled into the binary from `policies/`.
pub fn builtin_packages() -> PackageSet {
    let mut packages = BTreeMap::new();
    for dir in BUILTIN.dirs() {
        let Some(id) = dir.path().file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let mut files = BTreeMap::new();
        collect(dir, dir.path(), &mut files);
        if files.contains_key("policy.toml") {
            packages.insert(id.to_owned(), PackageSource { files });
        }
    }
    PackageSet { packages }
}

fn collect(dir: &Dir<'_>, root: &Path, out: &mut BTreeMap<String, String>) {
    for f in dir.files() {
        let Ok(rel) = f.path().strip_prefix(root) else {
            continue;
        };
        let rel = rel.to_string_lossy().replace('\\', "/");
        let keep = rel.ends_with(".rhai") || rel.ends_with(".toml") || rel.ends_with(".md");
        if let (true, Some(text)) = (keep, f.contents_utf8()) {
            out.insert(rel, text.to_owned());
        }
    }
    for d in dir.dirs() {
        collect(d, root, out);
    }
}
