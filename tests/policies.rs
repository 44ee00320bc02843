//! Every policy package under `policies/`: it compiles (names resolved), its own test cases pass,
//! every rule of its own is seen both firing and not firing and every outcome it can give is
//! reached, no case pins a policy error or a status change no rule decided, and each case's full
//! decision is pinned by an insta snapshot (content hashes redacted, so a rule change shows as a
//! reviewable diff).
//!
//! Packages are read from disk at run time, so editing a package needs no rebuild.

use std::path::Path;
use xueji::policy::testing::{run_package_tests, uncovered_rules};
use xueji::policy::{PackageSet, PolicyRegistry};

fn registry() -> PolicyRegistry {
    let set = PackageSet::read_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .expect("policies/ readable");
    match PolicyRegistry::from_packages(&set) {
        Ok(r) => r,
        Err(errors) => {
            for (pkg, errs) in &errors {
                for e in errs {
                    eprintln!("{pkg}: {e}");
                }
            }
            panic!("{} package(s) failed to compile", errors.len());
        }
    }
}

#[test]
fn every_package_passes_its_own_cases_and_tests_each_rule_both_ways() {
    let registry = registry();
    let mut failures = Vec::new();
    let mut cases = 0;
    for policy in registry.all_latest() {
        let id = &policy.manifest.id;
        let results = match run_package_tests(&policy) {
            Ok(r) => r,
            Err(errs) => {
                failures.extend(errs.into_iter().map(|e| format!("{id}: {e}")));
                continue;
            }
        };
        if results.is_empty() {
            failures.push(format!("{id}: no test cases"));
        }
        for r in &results {
            cases += 1;
            for f in &r.failures {
                failures.push(format!("{id} {} «{}»: {f}", r.file, r.name));
            }
            // A seed package decides every case it tests: a case (and its snapshot) that pins a
            // policy error is a package that refuses to decide, a defect to fix.
            if r.outcome == "error" {
                failures.push(format!(
                    "{id} {} «{}»: pins a policy error ({}); the package must decide",
                    r.file,
                    r.name,
                    r.error.as_deref().unwrap_or_default()
                ));
            }
        }
        for u in uncovered_rules(&policy, &results) {
            failures.push(format!("{id}: {u}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) in {cases} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn decisions_are_pinned_by_snapshots() {
    let registry = registry();
    for policy in registry.all_latest() {
        let id = policy.manifest.id.clone();
        let results = run_package_tests(&policy).unwrap_or_default();
        // Numbered within each case file, so adding a case to one file renames nothing else.
        let mut per_file: std::collections::BTreeMap<String, usize> = Default::default();
        for r in &results {
            let stem = Path::new(&r.file)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("case")
                .to_owned();
            let n = per_file.entry(stem.clone()).or_default();
            let name = format!("{id}__{stem}__{n:02}");
            *n += 1;
            insta::with_settings!({ description => r.name.clone(), omit_expression => true }, {
                insta::assert_json_snapshot!(name, r, { ".decision.policy.content_hash" => "[hash]" });
            });
        }
    }
}
