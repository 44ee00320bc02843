//! The `xueji` command line: thin wrappers over the library, used by `main.rs`.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::{Role, TokenRecord};
use crate::engine::{Location, ReadOnlyStore, STORE_FILE, Store};
use crate::engine::{TokenRequest, Xueji};
use crate::policy::testing::{run_package_tests, uncovered_rules};
use crate::policy::{PackageSet, PackageSource, PolicyRegistry, builtin_packages};

/// Where a command finds its data: the folder (transfer-certificate keys, the admin token,
/// backups) and the store (the folder's redb file, unless `--store` names a database).
#[derive(clap::Args, Clone, Debug)]
pub struct Place {
    /// Data folder: signing keys, the first admin token, backups, and the store file unless
    /// --store says otherwise.
    #[arg(long, default_value = "./xueji-data")]
    pub data: PathBuf,
    /// The store somewhere else than the data folder's file: a PostgreSQL database,
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE (or another folder).
    #[arg(long, env = "XUEJI_STORE")]
    pub store: Option<Location>,
}

impl Place {
    /// A data folder holding its own store.
    pub fn folder(data: &Path) -> Place {
        Place {
            data: data.to_owned(),
            store: None,
        }
    }

    /// Where the store is.
    pub fn location(&self) -> Location {
        self.store
            .clone()
            .unwrap_or_else(|| Location::Folder(self.data.clone()))
    }
}

/// The packages to run on: a folder of packages, or the built-in seed packages.
pub fn load_packages(dir: Option<&Path>) -> Result<PackageSet> {
    match dir {
        None => Ok(builtin_packages()),
        Some(d) => PackageSet::read_dir(d)
            .with_context(|| format!("reading policy folder {}", d.display())),
    }
}

pub fn compile(set: &PackageSet) -> Result<PolicyRegistry> {
    PolicyRegistry::from_packages(set).map_err(|errors| {
        let mut msg = String::from("policy packages do not compile:\n");
        for (pkg, errs) in errors {
            for e in errs {
                msg.push_str(&format!(
                    "  {pkg}/{}: {} {}\n",
                    e.position, e.code, e.message
                ));
            }
        }
        anyhow::anyhow!(msg)
    })
}

/// Opens the engine on the place's store, creating the data folder and the store if missing.
pub fn open(place: &Place, policies: Option<&Path>) -> Result<Xueji> {
    crate::engine::private::create_dir_all(&place.data)
        .with_context(|| format!("creating data folder {}", place.data.display()))?;
    let at = place.location();
    let store = at
        .open()
        .with_context(|| format!("opening the store {at}"))?;
    engine_on(store, &place.data, policies)
}

/// Opens the engine on the place's store, which must exist (`store_missing`): for commands
/// that read or amend a store and never create one.
pub fn open_existing(place: &Place, policies: Option<&Path>) -> Result<Xueji> {
    let at = place.location();
    let store = at
        .open_existing()
        .with_context(|| format!("opening the store {at}"))?;
    engine_on(store, &place.data, policies)
}

fn engine_on(store: Store, data: &Path, policies: Option<&Path>) -> Result<Xueji> {
    let registry = compile(&load_packages(policies)?)?;
    // The data folder's transfer-certificate keys, so that `verify` checks admissions on
    // certificates offline too; only `serve` makes them (with its own trust list and name).
    let mut x = Xueji::new(store, Arc::new(registry));
    if let Some(keys) = crate::keys::load_existing(data)? {
        x = x.with_keys(keys);
    }
    x.restore_policies()?;
    Ok(x)
}

/// A package folder (`policy.toml` inside) or a folder of packages. A single package's base is
/// taken from the built-in packages when it is not beside it.
pub fn packages_at(dir: &Path) -> Result<PackageSet> {
    if dir.join("policy.toml").is_file() {
        let source =
            PackageSource::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        let manifest = source
            .manifest()
            .map_err(|e| anyhow::anyhow!("{}: {} {}", e.position, e.code, e.message))?;
        let mut set = builtin_packages();
        set.packages.insert(manifest.id.clone(), source);
        Ok(set)
    } else {
        load_packages(Some(dir))
    }
}

pub fn policy_check(dir: &Path) -> Result<()> {
    let set = packages_at(dir)?;
    let registry = compile(&set)?;
    for p in registry.all_latest() {
        println!(
            "✓ {} {} ({} rules, hash {})",
            p.manifest.id,
            p.manifest.version,
            p.rules.len(),
            &p.content_hash[..12]
        );
    }
    Ok(())
}

pub fn policy_test(dir: &Path) -> Result<()> {
    let set = packages_at(dir)?;
    let registry = compile(&set)?;
    let only: Option<String> = dir.join("policy.toml").is_file().then(|| {
        PackageSource::read_dir(dir)
            .ok()
            .and_then(|s| s.manifest().ok())
            .map(|m| m.id)
            .unwrap_or_default()
    });
    let (mut passed, mut failed) = (0, 0);
    for p in registry.all_latest() {
        if only.as_ref().is_some_and(|o| *o != p.manifest.id) {
            continue;
        }
        let results = run_package_tests(&p).map_err(|e| {
            let errors: Vec<String> = e.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("{}: {}", p.manifest.id, errors.join("; "))
        })?;
        for r in &results {
            if r.passed {
                passed += 1;
            } else {
                failed += 1;
                println!("✗ {} {} «{}»", p.manifest.id, r.file, r.name);
                for f in &r.failures {
                    println!("    {f}");
                }
            }
        }
        for u in uncovered_rules(&p, &results) {
            failed += 1;
            println!("✗ {} coverage: {u}", p.manifest.id);
        }
        println!("{}: {} cases", p.manifest.id, results.len());
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} policy test(s) failed");
    }
    Ok(())
}

pub fn verify(place: &Place, policies: Option<&Path>, checkpoints: Option<&Path>) -> Result<bool> {
    let checkpoints = checkpoints.map(read_checkpoints).transpose()?;
    let x = open_existing(place, policies)?;
    verify_engine(&x, checkpoints.as_deref().unwrap_or_default())
}

/// `xueji migrate`: copies the store at `from` into `to`, which must hold none
/// (`store_not_empty`), then opens the copy and checks it as `xueji verify` does, its logs
/// against the checkpoints of the snapshot copied. True when the copy verifies; a copy that does
/// not is left in place for inspection, and said so.
pub fn migrate(
    from: &Location,
    to: &Location,
    data: &Path,
    policies: Option<&Path>,
    progress: &dyn Fn(u64),
) -> Result<bool> {
    let source = from
        .open_existing()
        .with_context(|| format!("opening the store {from}"))?;
    let copied = source
        .copy_to(to, progress)
        .with_context(|| format!("copying {from} to {to}"))?;
    drop(source);
    for (table, pairs) in &copied.tables {
        println!("{table}: {pairs}");
    }
    println!(
        "{} records copied from {from} to {to}; verifying the copy",
        copied.pairs()
    );
    let copy = to
        .open_existing()
        .with_context(|| format!("opening the copy {to}"))?;
    let x = engine_on(copy, data, policies)?;
    let ok = verify_engine(&x, &copied.checkpoints)?;
    if !ok {
        println!(
            "the copy at {to} does not verify: it is left there for inspection; do not serve it"
        );
    }
    Ok(ok)
}

/// Re-hashes every chain, re-evaluates every decision and checks every log (against
/// `checkpoints`), printing what fails; true when all hold.
fn verify_engine(x: &Xueji, checkpoints: &[crate::domain::merkle::Checkpoint]) -> Result<bool> {
    let report = x.verify_all()?;
    println!(
        "{} students, {} events checked",
        report.students, report.events
    );
    for (student, r) in &report.failures {
        if let Some(bad) = &r.first_bad {
            println!(
                "✗ {student}: event {} {} — {}",
                bad.seq, bad.code, bad.message
            );
        }
    }
    print_tally_mismatches(&report.stats_failures);
    print_store_failures(&report);
    let reproduced = x.reproduce_decisions(None)?;
    println!(
        "{} recorded decisions re-evaluated under their recorded versions",
        reproduced.decisions
    );
    for m in &reproduced.mismatches {
        println!(
            "✗ {} event {}: recorded {}, now {} (rules {:?})",
            m.student, m.seq, m.before, m.after, m.rules_changed
        );
    }
    for (student, seq) in &reproduced.bad_contexts {
        println!("✗ {student} event {seq}: decision context missing or altered");
    }
    for v in &reproduced.unknown_versions {
        println!("✗ policy version {v} is not stored");
    }
    let logs = x.verify_logs(checkpoints)?;
    let logs_ok = print_log_reports(&logs);
    let ok = report.ok && reproduced.ok && logs_ok;
    println!("{}", if ok { "ok" } else { "FAILED" });
    Ok(ok)
}

/// What `verify` found of the records and indexes beyond the chains: fields named, values of
/// personal fields never printed.
fn print_store_failures(report: &crate::engine::VerifyReport) {
    for (student, r) in &report.failures {
        for m in &r.record {
            let values = match (&m.stored, &m.replayed) {
                (Some(s), Some(r)) => format!(": stored {s}, replayed {r}"),
                _ => String::new(),
            };
            println!("✗ {student}: record field {}{values}", m.field);
        }
        for m in &r.indexes {
            println!(
                "✗ {student}: {} {} {}",
                m.table,
                m.key.as_deref().unwrap_or("(identity key)"),
                m.code
            );
        }
    }
    for m in &report.index_failures {
        println!(
            "✗ {}: {} {} {}",
            m.student,
            m.table,
            m.key.as_deref().unwrap_or("(identity key)"),
            m.code
        );
    }
    for d in &report.damaged {
        println!("✗ record_damaged: table {} key {}", d.table, d.key);
    }
}

fn print_tally_mismatches(mismatches: &[crate::engine::TallyMismatch]) {
    for m in mismatches {
        let counter = serde_json::to_string(&m.counter).unwrap_or_default();
        let when = m.date.map(|d| format!(" on {d}")).unwrap_or_default();
        println!(
            "✗ {} statistics counter {counter}{when}: {} — {}",
            m.jurisdiction, m.code, m.message
        );
    }
}

/// Who `xueji token` acts as: the operator, with the server stopped and the data file in hand,
/// is an admin, under the same token rules as `POST /v1/tokens`.
fn operator() -> TokenRecord {
    TokenRecord {
        id: "cli".into(),
        ..TokenRecord::new(Role::Admin)
    }
}

/// `xueji token create`: [`Xueji::issue_token`] as the operator.
pub fn token_create(place: &Place, request: TokenRequest) -> Result<(String, TokenRecord)> {
    let x = open_existing(place, None)?;
    Ok(x.issue_token(&operator(), request)?)
}

/// `xueji token list`: every token, never a secret (only hashes are stored).
pub fn token_list(place: &Place) -> Result<Vec<TokenRecord>> {
    let x = open_existing(place, None)?;
    Ok(x.list_tokens(&operator(), None, usize::MAX)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// The table `xueji token list` prints: id, role, scope, label, created, expires, revoked.
pub fn token_table(tokens: &[TokenRecord]) -> String {
    let rows: Vec<[String; 7]> = tokens
        .iter()
        .map(|t| {
            [
                t.id.clone(),
                t.role.as_str().to_owned(),
                t.scope_text(),
                t.label.clone().unwrap_or_else(|| "-".into()),
                t.created_at.clone(),
                t.expires_at.clone().unwrap_or_else(|| "-".into()),
                if t.revoked { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    let header = [
        "id", "role", "scope", "label", "created", "expires", "revoked",
    ]
    .map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `xueji token revoke ID`.
pub fn token_revoke(place: &Place, id: &str) -> Result<TokenRecord> {
    let x = open_existing(place, None)?;
    Ok(x.revoke_token(&operator(), id)?)
}

/// The start's admin token. With `XUEJI_ADMIN_TOKEN` set: that token is stored and any earlier
/// value's token revoked ([`Xueji::env_admin_token`]). Otherwise, on the first start with an
/// empty store, a new admin token is written to `DIR/admin.token` (mode 0600).
pub fn bootstrap_admin(x: &Xueji, data: &Path) -> Result<Bootstrap> {
    if let Ok(token) = std::env::var("XUEJI_ADMIN_TOKEN") {
        if token.len() < 16 {
            bail!("XUEJI_ADMIN_TOKEN must be at least 16 characters");
        }
        let revoked = match x.env_admin_token(&token) {
            // The server still starts: that token authenticates no one, `xueji verify` names
            // the record.
            Err(crate::engine::ServiceError::Damaged { table, key }) => {
                tracing::error!(%table, %key, "XUEJI_ADMIN_TOKEN's stored record is damaged");
                Vec::new()
            }
            other => other?.1,
        };
        return Ok(Bootstrap::FromEnv {
            revoked: revoked.into_iter().map(|r| r.id).collect(),
        });
    }
    if x.has_tokens()? {
        return Ok(Bootstrap::Kept);
    }
    let (token, _) = x.create_token(TokenRecord {
        label: Some("bootstrap admin".into()),
        created_by: Some("bootstrap".into()),
        ..TokenRecord::new(Role::Admin)
    })?;
    let path = data.join("admin.token");
    write_secret(&path, &token)?;
    Ok(Bootstrap::Written(path))
}

/// What [`bootstrap_admin`] did.
#[derive(Debug)]
pub enum Bootstrap {
    /// A first admin token, written to this file.
    Written(PathBuf),
    /// `XUEJI_ADMIN_TOKEN` holds the admin token; these ids of its earlier values were revoked.
    FromEnv { revoked: Vec<String> },
    /// Tokens exist and no variable is set: nothing to do.
    Kept,
}

/// Writes a secret readable by the owner only.
pub fn write_secret(path: &Path, secret: &str) -> Result<()> {
    crate::engine::private::write(path, format!("{secret}\n").as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `xueji policy diff OLD NEW`: rules, citations, parameters and decisions on the package tests
/// that differ between two versions of a package, for a district officer to read.
pub fn policy_diff(old_dir: &Path, new_dir: &Path) -> Result<bool> {
    let old_reg = compile(&packages_at(old_dir)?)?;
    let new_reg = compile(&packages_at(new_dir)?)?;
    let id_of = |d: &Path| -> Result<String> {
        let source =
            PackageSource::read_dir(d).with_context(|| format!("reading {}", d.display()))?;
        Ok(source
            .manifest()
            .map_err(|e| anyhow::anyhow!("{}: {}", e.position, e.message))?
            .id)
    };
    let id = id_of(new_dir)?;
    if id_of(old_dir)? != id {
        bail!("the two folders hold different packages");
    }
    let (old, new) = match (old_reg.latest(&id), new_reg.latest(&id)) {
        (Some(o), Some(n)) => (o, n),
        _ => bail!("package {id} missing"),
    };
    let mut changed = false;
    println!(
        "政策包 {id}: {} → {}",
        old.manifest.version, new.manifest.version
    );
    if old.manifest.effective_from != new.manifest.effective_from {
        println!(
            "  生效日期 effective_from: {} → {}",
            old.manifest.effective_from, new.manifest.effective_from
        );
    }
    let rules = |p: &crate::policy::CompiledPolicy| -> std::collections::BTreeMap<String, crate::policy::RuleInfo> {
        p.rule_infos().into_iter().map(|r| (r.id.clone(), r)).collect()
    };
    let (ro, rn) = (rules(&old), rules(&new));
    println!("规则 rules:");
    for (rid, r) in &rn {
        match ro.get(rid) {
            None => {
                changed = true;
                println!("  + {rid}  [{}]  {}", r.on.join(","), r.citation);
            }
            Some(o) if o.citation != r.citation || o.on != r.on => {
                changed = true;
                println!("  ~ {rid}");
                if o.citation != r.citation {
                    println!("      依据 citation: {} → {}", o.citation, r.citation);
                }
                if o.on != r.on {
                    println!("      适用 on: [{}] → [{}]", o.on.join(","), r.on.join(","));
                }
            }
            Some(o) => {
                let file = &r.position.file;
                if old.source.files.get(&o.position.file) != new.source.files.get(file) {
                    changed = true;
                    println!("  ~ {rid}  (脚本 {file} 有改动 script changed)");
                }
            }
        }
    }
    for (rid, r) in &ro {
        if !rn.contains_key(rid) {
            changed = true;
            println!("  - {rid}  {}", r.citation);
        }
    }
    println!("参数 params:");
    let keys: std::collections::BTreeSet<&String> = old
        .manifest
        .params
        .keys()
        .chain(new.manifest.params.keys())
        .collect();
    for k in keys {
        let (a, b) = (old.manifest.params.get(k), new.manifest.params.get(k));
        if a != b {
            changed = true;
            let show = |v: Option<&serde_json::Value>| {
                v.map_or("(未设置)".to_owned(), |v| v.to_string())
            };
            println!("  ~ {k}: {} → {}", show(a), show(b));
        }
    }
    println!("测试用例上的决定 decisions on the package tests:");
    // Each side's cases within the bound every test run keeps (see `TestLimits`).
    let bounded = |p: &crate::policy::CompiledPolicy| -> Result<Vec<_>> {
        let cases =
            crate::policy::testing::load_cases(p).map_err(|e| anyhow::anyhow!(e.join("; ")))?;
        let max = crate::policy::testing::MAX_TEST_CASES;
        if cases.len() > max {
            bail!(
                "{}: 测试用例不能超过 {max} 个(本包 {} 个)",
                p.manifest.id,
                cases.len()
            );
        }
        Ok(cases)
    };
    let mut cases = bounded(&old)?;
    cases.extend(bounded(&new)?);
    let mut seen = std::collections::BTreeSet::new();
    let mut differing = 0;
    for (file, case) in &cases {
        if !seen.insert(case.name.clone()) {
            continue;
        }
        let (a, b) = (case.run(file, &old), case.run(file, &new));
        let fired = |r: &crate::policy::testing::CaseResult| {
            r.decision
                .as_ref()
                .map(|d| {
                    d.rules
                        .iter()
                        .map(|f| f.id.clone())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        if a.outcome != b.outcome || fired(&a) != fired(&b) {
            differing += 1;
            println!("  ~ «{}»: {} → {}", case.name, a.outcome, b.outcome);
            if fired(&a) != fired(&b) {
                println!("      规则 rules: [{}] → [{}]", fired(&a), fired(&b));
            }
        }
    }
    println!("  {differing} of {} cases decide differently", seen.len());
    Ok(changed || differing > 0)
}

/// `xueji policy bundle DIR`: the JSON body `{"files": {...}}` that `PUT /v1/policies/{id}` and
/// `POST /v1/policies/{id}/impact` take, read from a package folder.
pub fn policy_bundle(dir: &Path) -> Result<String> {
    let source =
        PackageSource::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    source
        .manifest()
        .map_err(|e| anyhow::anyhow!("{}: {} {}", e.position, e.code, e.message))?;
    Ok(serde_json::to_string_pretty(
        &serde_json::json!({ "files": source.files }),
    )?)
}

/// `xueji backup`: a consistent copy of the store, taken beside a running server. The store is
/// opened read-only (no writer, no migration), the copy is made from one read transaction,
/// which sees every commit the server acknowledged before it began, and the checkpoints are
/// written beside it (`OUT.checkpoints.json`), as `POST /v1/backups` does.
pub fn backup(data: &Path, out: &Path) -> Result<crate::engine::audit::Backup> {
    let store = ReadOnlyStore::open(&data.join(STORE_FILE))?;
    Ok(crate::engine::audit::write_backup(&store, out)?)
}

pub use crate::engine::audit::{checkpoints_path, read_checkpoints, write_checkpoints};

/// Prints each jurisdiction log's check; true when all hold.
fn print_log_reports(reports: &[crate::engine::audit::LogReport]) -> bool {
    for r in reports {
        let against = r
            .checkpoint
            .as_ref()
            .map(|c| {
                format!(
                    ", checked against the checkpoint of {} ({} events)",
                    c.taken_at, c.size
                )
            })
            .unwrap_or_default();
        println!(
            "{} log of {}: {} events, root {}{against}",
            if r.ok { "✓" } else { "✗" },
            r.jurisdiction,
            r.size,
            r.root
        );
        for p in &r.problems {
            let at = match (&p.student, p.seq) {
                (Some(s), Some(q)) => format!(" (student {s}, event {q})"),
                _ => String::new(),
            };
            println!("  ✗ {}{at}: {}", p.code, p.message);
        }
    }
    reports.iter().all(|r| r.ok)
}

/// `xueji restore`: puts a backup in place as the data folder's store, after verifying every
/// chain and decision in it; refuses to overwrite an existing store. A backup that does not
/// open or does not verify leaves nothing behind (no store, no staging file, no folder this
/// run created), and the error starts with its code: `backup_unreadable` or
/// `backup_does_not_verify`.
pub fn restore(backup: &Path, data: &Path, policies: Option<&Path>) -> Result<()> {
    let target = data.join(STORE_FILE);
    if target.exists() {
        bail!(
            "{} exists: move it away first (restore never overwrites a store)",
            target.display()
        );
    }
    let made_folder = !data.exists();
    crate::engine::private::create_dir_all(data)
        .with_context(|| format!("creating data folder {}", data.display()))?;
    let staging = data.join("xueji.redb.restoring");
    let checked = copy_and_verify(backup, &staging, policies);
    if let Ok(true) = checked {
        std::fs::rename(&staging, &target)?;
        println!("restored to {}", target.display());
        return Ok(());
    }
    std::fs::remove_file(&staging).ok();
    if made_folder {
        // Only if still empty: never anything the operator put there meanwhile.
        std::fs::remove_dir(data).ok();
    }
    match checked {
        Err(e) => Err(e.context(format!(
            "backup_unreadable: {} could not be checked; nothing restored",
            backup.display()
        ))),
        Ok(_) => bail!(
            "backup_does_not_verify: {} does not verify (see above); nothing restored",
            backup.display()
        ),
    }
}

/// Copies the backup to `staging` (0600) and checks it as `xueji verify` does; true when
/// every chain, decision and log holds.
fn copy_and_verify(backup: &Path, staging: &Path, policies: Option<&Path>) -> Result<bool> {
    crate::engine::private::copy(backup, staging)
        .with_context(|| format!("copying {}", backup.display()))?;
    let store = Store::open(staging).context("the backup does not open as a xueji store")?;
    let x = Xueji::new(store, Arc::new(compile(&load_packages(policies)?)?));
    x.restore_policies()?;
    let chains = x.verify_all()?;
    let decisions = x.reproduce_decisions(None)?;
    println!(
        "backup holds {} students, {} events, {} decisions reproduced",
        chains.students, chains.events, decisions.decisions
    );
    for (student, r) in &chains.failures {
        println!("✗ {student}: {:?}", r.first_bad);
    }
    print_tally_mismatches(&chains.stats_failures);
    for v in &decisions.unknown_versions {
        println!("✗ policy version {v} unknown");
    }
    for (student, seq) in &decisions.bad_contexts {
        println!("✗ {student} event {seq}: decision context missing or altered");
    }
    // The checkpoints written with the backup, if they travelled with it, must match it.
    let beside = checkpoints_path(backup);
    let checkpoints = if beside.exists() {
        read_checkpoints(&beside)?
    } else {
        Vec::new()
    };
    let logs_ok = print_log_reports(&x.verify_logs(&checkpoints)?);
    Ok(chains.ok && decisions.ok && logs_ok)
}
