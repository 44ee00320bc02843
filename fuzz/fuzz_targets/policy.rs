//! Policy packages: Rhai rule source compiled inside a real package (its manifest, its base) and
//! evaluated on structured cases; or, with no source, a real seed package evaluated on the case.
//! Never panics; compilation fails only with coded load errors; evaluation returns a consistent
//! decision or a coded `policy_*` error, within the sandbox's time budget.
//!
//! Input: `<rule source> 0x00 <case bytes>`. The first case byte picks the package; the source,
//! when not empty, replaces that package's own `.rhai` files. With no source, the case bytes
//! either evaluate the package as it is, or build a rule that calls the sandbox's native
//! functions (dates, effects, case methods) with drawn arguments: random source text seldom
//! reaches a native function with a hostile argument, generated calls do at once.
//! `FUZZ_PRINT_SOURCE=1` prints the rule source of each input (to read a finding).
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use xueji::policy::{
    Case, CompiledPolicy, PackageSet, PackageSource, PolicyRegistry, builtin_packages,
    compile_package, evaluate,
};
use xueji_fuzz::{case, check_decision, check_eval_error, check_load_errors, native_calls_rule};

struct Env {
    set: PackageSet,
    registry: PolicyRegistry,
    ids: Vec<String>,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let set = builtin_packages();
        let registry = PolicyRegistry::from_packages(&set).expect("seed packages compile");
        let ids = set.packages.keys().cloned().collect();
        Env { set, registry, ids }
    })
}

/// Far above the 50 ms evaluation budget: only a limit that does not hold gets here.
const SLOW: Duration = Duration::from_secs(3);

fn run(policy: &CompiledPolicy, u: &mut Unstructured) {
    let Ok(mut c) = case(u) else { return };
    // Ask about a transition the package's own rules listen to, when the case bytes say so.
    let kinds: Vec<_> = policy
        .rules
        .iter()
        .filter(|r| r.info.package == policy.manifest.id)
        .filter_map(|r| r.on.as_ref())
        .flatten()
        .copied()
        .collect();
    if let Ok(k) = u.choose(&kinds) {
        c.transition.kind = *k;
    }
    let (student, school) = c.build(policy);
    let started = Instant::now();
    let result = evaluate(
        policy,
        Case {
            student: &student,
            school: &school,
            input: &c.transition,
            sweep: c.sweep,
        },
    );
    assert!(
        started.elapsed() < SLOW,
        "evaluation took {:?}",
        started.elapsed()
    );
    match result {
        Ok(d) => check_decision(policy, &c.transition, &d),
        Err(e) => check_eval_error(&e),
    }
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let (src, tail) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(src) = std::str::from_utf8(src) else {
        return;
    };
    let mut u = Unstructured::new(tail);
    let Ok(pick) = u.arbitrary::<u8>() else {
        return;
    };
    let id = &env.ids[usize::from(pick) % env.ids.len()];
    let generated;
    let src = if !src.is_empty() {
        src
    } else if u.arbitrary().unwrap_or(false) {
        let policy = env.registry.latest(id).expect("seed package");
        run(&policy, &mut u);
        return;
    } else {
        let manifest = env.set.packages[id].manifest().expect("seed manifest");
        let Ok(rule) = native_calls_rule(&mut u, &manifest) else {
            return;
        };
        generated = rule;
        generated.as_str()
    };
    if std::env::var_os("FUZZ_PRINT_SOURCE").is_some() {
        eprintln!("package {id}, fuzz.rhai:\n{src}");
    }
    let mut files = env.set.packages[id].files.clone();
    files.retain(|p, _| !(p.ends_with(".rhai") && !p.contains('/')));
    files.insert("fuzz.rhai".into(), src.to_owned());
    let source = PackageSource { files };
    let base = source
        .manifest()
        .ok()
        .and_then(|m| m.extends)
        .and_then(|b| env.registry.latest(&b));
    let started = Instant::now();
    let compiled = compile_package(&source, base);
    assert!(
        started.elapsed() < SLOW,
        "compilation took {:?}",
        started.elapsed()
    );
    match compiled {
        Ok(policy) => {
            let policy = Arc::new(policy);
            run(&policy, &mut u);
        }
        Err(errors) => check_load_errors(&errors),
    }
});
