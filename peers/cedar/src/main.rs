//! Decides Cedar requests for `benches/engine.rs` and times `Authorizer::is_authorized`.
//!
//! Reads one JSON job on stdin:
//! `{"policy_sets": {name: cedar text}, "warmup": n, "samples": n, "cases": [case]}` where a case
//! is `{"set": name, "principal": uid, "action": id, "resource": uid, "entities": [...],
//! "context": {...}, "time": bool}` (entities and context in Cedar's JSON formats, a uid as
//! `{"type": .., "id": ..}`). Writes `{"results": [result]}`: `allowed`, the `@rule`
//! annotations of the determining policies, evaluation `errors`, and for timed cases the sorted
//! nanoseconds of each `is_authorized` call (request and entities prebuilt) and of building
//! them from their JSON form plus the call.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::io::{Read, Write};
use std::str::FromStr;
use std::time::Instant;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityId, EntityTypeName, EntityUid, PolicySet,
    Request, Response,
};
use serde_json::{Value, json};

fn uid(v: &Value) -> Result<EntityUid, String> {
    let t = v["type"].as_str().ok_or("uid without type")?;
    let i = v["id"].as_str().ok_or("uid without id")?;
    Ok(EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(t).map_err(|e| e.to_string())?,
        EntityId::from_str(i).map_err(|e| e.to_string())?,
    ))
}

struct Built {
    request: Request,
    entities: Entities,
}

fn build(case: &Value) -> Result<Built, String> {
    let action = json!({"type": "Action", "id": case["action"]});
    let context =
        Context::from_json_value(case["context"].clone(), None).map_err(|e| e.to_string())?;
    let request = Request::new(
        uid(&case["principal"])?,
        uid(&action)?,
        uid(&case["resource"])?,
        context,
        None,
    )
    .map_err(|e| e.to_string())?;
    let entities =
        Entities::from_json_value(case["entities"].clone(), None).map_err(|e| e.to_string())?;
    Ok(Built { request, entities })
}

/// Times `f` once per sample after `warmup` untimed calls; sorted nanoseconds.
fn sample<T>(warmup: usize, samples: usize, mut f: impl FnMut() -> T) -> Vec<u64> {
    for _ in 0..warmup {
        black_box(f());
    }
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        black_box(f());
        out.push(t.elapsed().as_nanos() as u64);
    }
    out.sort_unstable();
    out
}

fn run(job: &Value) -> Result<Value, String> {
    let mut sets = BTreeMap::new();
    for (name, text) in job["policy_sets"].as_object().ok_or("no policy_sets")? {
        let text = text.as_str().ok_or("policy set is not text")?;
        let set = PolicySet::from_str(text).map_err(|e| format!("policy set {name}: {e}"))?;
        sets.insert(name.clone(), set);
    }
    let warmup = job["warmup"].as_u64().unwrap_or(0) as usize;
    let samples = job["samples"].as_u64().unwrap_or(0) as usize;
    let authorizer = Authorizer::new();
    let mut results = Vec::new();
    for case in job["cases"].as_array().ok_or("no cases")? {
        let name = case["set"].as_str().ok_or("case without set")?;
        let set = sets
            .get(name)
            .ok_or_else(|| format!("no policy set {name}"))?;
        let built = build(case)?;
        let authorize =
            |b: &Built| -> Response { authorizer.is_authorized(&b.request, set, &b.entities) };
        let response = authorize(&built);
        let rules: BTreeSet<&str> = response
            .diagnostics()
            .reason()
            .filter_map(|id| set.annotation(id, "rule"))
            .collect();
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(ToString::to_string)
            .collect();
        let mut result = json!({
            "allowed": response.decision() == Decision::Allow,
            "rules": rules,
            "errors": errors,
        });
        if case["time"].as_bool() == Some(true) {
            result["authorize_ns"] =
                json!(sample(warmup, samples, || authorize(black_box(&built))));
            let mut failed = None;
            let ns = sample(warmup, samples, || match build(black_box(case)) {
                Ok(b) => Some(authorize(&b)),
                Err(e) => {
                    failed = Some(e);
                    None
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            result["build_and_authorize_ns"] = json!(ns);
        }
        results.push(result);
    }
    Ok(json!({ "results": results }))
}

fn main() {
    let mut input = String::new();
    let out = std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_str::<Value>(&input).map_err(|e| e.to_string()))
        .and_then(|job| run(&job));
    match out {
        Ok(v) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{v}");
        }
        Err(e) => {
            eprintln!("cedar-peer: {e}");
            std::process::exit(1);
        }
    }
}
