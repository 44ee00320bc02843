//! Policy packages: Rhai rule scripts per jurisdiction, compiled once per content hash, evaluated
//! in a sandbox into a [`Decision`](crate::domain::Decision).
//!
//! A package is a folder `policies/<id>/` with `policy.toml` (see [`Manifest`]), `*.rhai` rule
//! files and `tests/*.toml` cases. Each rule file calls `rule(#{ id, on, cites, check })` for each
//! rule; `check` is a closure over the case `c` that returns nothing (the rule does not fire) or
//! one or more effects: `deny(msg)`, `allow(msg)`, `require([docs], msg)`, `approve([steps], msg)`,
//! `change(#{status, grade, class}, msg)`, `deadline(kind, date, msg)`.

mod compile;
mod error;
mod evaluate;
mod names;
mod package;
mod registry;
mod sandbox;
pub mod testing;

pub use compile::{CompiledPolicy, RuleInfo, compile_package, compile_stored_package};
pub use error::{PolicyError, PolicyLoadError, ScriptPosition};
pub use evaluate::{Case, EffectSite, evaluate, evaluate_traced, evaluate_transfer};
pub use package::{DocumentRef, Manifest, PackageSet, PackageSource, builtin_packages};
pub use registry::PolicyRegistry;
