//! The Rhai engine districts' scripts run in, and the functions it gives them.
//!
//! Built once from `Engine::new_raw()` with only the language packages rules need: no file or
//! module access, no `eval`, no clock, no sleep, no printing; limits on operations, call depth,
//! expression depth and sizes; a wall-clock budget per evaluation; strict variables and errors on
//! unknown map properties.

use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage, BasicMapPackage,
    BasicStringPackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FnPtr, ImmutableString, Map, NativeCallContext, Position,
};
use std::cell::{Cell, RefCell};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::domain::{
    ApprovalStep, Date, DecisionDeadline, Document, DocumentKind, Effect, HospitalGrade,
    IssuerLevel, Status, StudentChanges, TransitionKind,
};

/// Limits every script runs under. Operations are counted per rule call.
pub const MAX_OPERATIONS: u64 = 50_000;
pub const MAX_CALL_LEVELS: usize = 16;
pub const MAX_EXPR_DEPTH: usize = 64;
pub const MAX_FN_EXPR_DEPTH: usize = 32;
pub const MAX_STRING_SIZE: usize = 4_096;
pub const MAX_ARRAY_SIZE: usize = 1_000;
pub const MAX_MAP_SIZE: usize = 256;
pub const MAX_MESSAGE_CHARS: usize = 300;
/// Wall-clock budget for one whole evaluation (all rules of one decision).
pub const EVALUATION_BUDGET: Duration = Duration::from_millis(50);

/// The functions a rule makes its effects with.
pub const EFFECTS: &[&str] = &["deny", "allow", "require", "approve", "change", "deadline"];

/// Every free function the sandbox registers for scripts (effects, `rule`, dates).
pub const HELPERS: &[&str] = &[
    "rule",
    "deny",
    "allow",
    "require",
    "approve",
    "change",
    "deadline",
    "add_days",
    "add_weeks",
    "add_months",
    "add_years",
    "days_between",
    "is_date",
];

/// What the case `c` has: properties and methods (`c.has(...)`).
pub const CASE_PROPERTIES: &[&str] = &["student", "school", "transition", "date", "sweep"];
pub const CASE_METHODS: &[&str] = &[
    "has",
    "has_issued",
    "has_hospital",
    "setting",
    "has_setting",
    "param",
];

/// Functions of the language packages `build_engine` loads (strings, arrays, maps, arithmetic,
/// logic, iterators, function pointers) and of the core language, callable as `f(x)` or `x.f()`.
pub const LANGUAGE_FUNCTIONS: &[&str] = &[
    // core
    "type_of",
    "is_def_fn",
    "is_def_var",
    "is_shared",
    "Fn",
    "call",
    "curry",
    "to_string",
    "to_debug",
    "debug",
    "print",
    "range",
    "name",
    "is_anonymous",
    // arithmetic and logic
    "abs",
    "sign",
    "is_zero",
    "is_odd",
    "is_even",
    "min",
    "max",
    "to_int",
    "parse_int",
    "to_binary",
    "to_octal",
    "to_hex",
    // strings
    "len",
    "is_empty",
    "contains",
    "starts_with",
    "ends_with",
    "index_of",
    "sub_string",
    "crop",
    "truncate",
    "trim",
    "to_upper",
    "to_lower",
    "make_upper",
    "make_lower",
    "pad",
    "replace",
    "remove",
    "split",
    "split_rev",
    "get",
    "set",
    "chars",
    "to_chars",
    "bytes",
    "append",
    "clear",
    "pop",
    "shift",
    "insert",
    "to_blob",
    // arrays
    "push",
    "chop",
    "reverse",
    "splice",
    "extract",
    "filter",
    "map",
    "reduce",
    "reduce_rev",
    "some",
    "all",
    "find",
    "find_map",
    "sort",
    "sort_by",
    "sort_desc",
    "dedup",
    "retain",
    "drain",
    "zip",
    "for_each",
    "includes",
    // maps
    "keys",
    "values",
    "mixin",
    "fill_with",
    "to_json",
];

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static COLLECTOR: RefCell<Option<Vec<RawRule>>> = const { RefCell::new(None) };
}

/// Runs `f` with the wall-clock budget armed on this thread.
pub fn with_budget<T>(budget: Duration, f: impl FnOnce() -> T) -> T {
    DEADLINE.with(|d| d.set(Some(Instant::now() + budget)));
    let out = f();
    DEADLINE.with(|d| d.set(None));
    out
}

/// The marker an over-budget script is terminated with.
pub const TIMEOUT_TOKEN: &str = "xueji:wall_clock_budget";

/// A rule as a script declared it, before the package checks it.
#[derive(Clone)]
pub struct RawRule {
    pub id: String,
    pub on: Vec<String>,
    pub cites: String,
    pub replaces: Option<String>,
    pub check: FnPtr,
    pub position: Position,
}

/// Runs `f` (a script's top level) and returns the rules it declared with `rule(...)`.
pub fn collect_rules<T>(f: impl FnOnce() -> T) -> (T, Vec<RawRule>) {
    COLLECTOR.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = f();
    let rules = COLLECTOR
        .with(|c| c.borrow_mut().take())
        .unwrap_or_default();
    (out, rules)
}

/// One effect a rule produced, already checked for types and sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEffect {
    pub effect: Effect,
    pub message: String,
    pub documents: Vec<DocumentKind>,
    pub steps: Vec<ApprovalStep>,
    pub changes: StudentChanges,
    pub deadline: Option<DecisionDeadline>,
    /// Where in the script this effect was made (`deny(`, `approve(`, ...): the rule-coverage
    /// gate asks that every such place be reached by some case.
    pub site: Position,
}

impl RuleEffect {
    fn at(ctx: &NativeCallContext, effect: Effect, message: &str) -> RhaiResult<Self> {
        let mut e = Self::new(effect, message)?;
        e.site = ctx.call_position();
        Ok(e)
    }

    fn new(effect: Effect, message: &str) -> RhaiResult<Self> {
        let n = message.chars().count();
        if n == 0 || n > MAX_MESSAGE_CHARS {
            return Err(
                format!("message must be 1..={MAX_MESSAGE_CHARS} characters, got {n}").into(),
            );
        }
        Ok(RuleEffect {
            effect,
            message: message.to_owned(),
            documents: Vec::new(),
            steps: Vec::new(),
            changes: StudentChanges::default(),
            deadline: None,
            site: Position::NONE,
        })
    }
}

/// The case a rule looks at: `c.student`, `c.school`, `c.transition`, `c.date`, `c.sweep`, plus
/// methods over the documents and the package settings. Cheap to clone (shared).
#[derive(Clone)]
pub struct CaseHandle(pub Arc<CaseData>);

pub struct CaseData {
    pub student: Dynamic,
    pub school: Dynamic,
    pub transition: Dynamic,
    pub date: ImmutableString,
    pub sweep: bool,
    pub documents: Vec<Document>,
    pub settings: Arc<Map>,
}

fn parse_date(s: &str) -> RhaiResult<Date> {
    Date::parse(s).map_err(|m| m.into())
}

fn date_op(s: &str, n: i64, f: fn(Date, i64) -> Option<Date>) -> RhaiResult<ImmutableString> {
    let d = parse_date(s)?;
    f(d, n)
        .map(|d| d.to_string().into())
        .ok_or_else(|| "date out of range".into())
}

fn strings_of(arr: &Array, what: &str) -> RhaiResult<Vec<String>> {
    arr.iter()
        .map(|v| {
            v.clone()
                .into_immutable_string()
                .map(|s| s.to_string())
                .map_err(|t| format!("{what} must be strings, found {t}").into())
        })
        .collect()
}

fn parse_enum<T: FromStr>(s: &str, what: &str) -> RhaiResult<T> {
    T::from_str(s).map_err(|_| format!("unknown {what} `{s}`").into())
}

fn changes_from_map(m: &Map) -> RhaiResult<StudentChanges> {
    let mut c = StudentChanges::default();
    for (k, v) in m {
        match k.as_str() {
            "status" => {
                let s = v
                    .clone()
                    .into_immutable_string()
                    .map_err(|_| "status must be a string")?;
                c.status = Some(parse_enum::<Status>(&s, "status")?);
            }
            "grade" => {
                let g = v.as_int().map_err(|_| "grade must be an integer")?;
                c.grade = Some(
                    u8::try_from(g)
                        .ok()
                        .filter(|g| (1..=9).contains(g))
                        .ok_or("grade must be 1..=9")?,
                );
            }
            "class" | "school" => {
                let s = v
                    .clone()
                    .into_immutable_string()
                    .map_err(|_| format!("{k} must be a string"))?;
                if s.is_empty() || s.chars().count() > 50 {
                    return Err(format!("{k} must be 1..=50 characters").into());
                }
                if k == "class" {
                    c.class = Some(s.to_string())
                } else {
                    c.school = Some(s.to_string())
                }
            }
            other => {
                return Err(format!(
                    "change() does not know `{other}`; use status, grade, class or school"
                )
                .into());
            }
        }
    }
    Ok(c)
}

fn has_document(c: &CaseHandle, kind: &str, pred: impl Fn(&Document) -> bool) -> RhaiResult<bool> {
    let kind: DocumentKind = parse_enum(kind, "document kind")?;
    Ok(c.0.documents.iter().any(|d| d.kind == kind && pred(d)))
}

fn rule_decl(ctx: NativeCallContext, m: Map) -> RhaiResult<()> {
    let mut id = None;
    let mut on = None;
    let mut cites = None;
    let mut check = None;
    let mut replaces = None;
    for (k, v) in m {
        match k.as_str() {
            "id" => {
                id = Some(
                    v.into_immutable_string()
                        .map_err(|_| "rule id must be a string")?
                        .to_string(),
                )
            }
            "cites" => {
                cites = Some(
                    v.into_immutable_string()
                        .map_err(|_| "cites must be a string")?
                        .to_string(),
                )
            }
            "replaces" => {
                replaces = Some(
                    v.into_immutable_string()
                        .map_err(|_| "replaces must be a string")?
                        .to_string(),
                )
            }
            "on" => {
                on = Some(strings_of(
                    &v.into_array()
                        .map_err(|_| "on must be an array of transition kinds")?,
                    "on",
                )?)
            }
            "check" => {
                check = Some(
                    v.try_cast::<FnPtr>()
                        .ok_or("check must be a closure |c| { ... }")?,
                )
            }
            other => {
                return Err(format!(
                    "rule() does not know `{other}`; use id, on, cites, check, replaces"
                )
                .into());
            }
        }
    }
    let rule = RawRule {
        id: id.ok_or("rule() needs an id")?,
        on: on.ok_or("rule() needs `on`: the transition kinds it applies to")?,
        cites: cites.ok_or("rule() needs `cites`: the document and article it encodes")?,
        replaces,
        check: check.ok_or("rule() needs `check`")?,
        position: ctx.call_position(),
    };
    COLLECTOR.with(|c| match c.borrow_mut().as_mut() {
        Some(rules) => {
            rules.push(rule);
            Ok(())
        }
        None => Err("rule() may only be called at the top level of a rule file".into()),
    })
}

fn build_engine() -> Engine {
    let mut engine = Engine::new_raw();
    for lib in [
        ArithmeticPackage::new().as_shared_module(),
        LogicPackage::new().as_shared_module(),
        BasicStringPackage::new().as_shared_module(),
        MoreStringPackage::new().as_shared_module(),
        BasicIteratorPackage::new().as_shared_module(),
        BasicArrayPackage::new().as_shared_module(),
        BasicMapPackage::new().as_shared_module(),
        BasicFnPackage::new().as_shared_module(),
    ] {
        engine.register_global_module(lib);
    }
    engine
        .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new())
        .set_max_modules(0)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_FN_EXPR_DEPTH)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_ARRAY_SIZE)
        .set_max_map_size(MAX_MAP_SIZE)
        .set_max_variables(256)
        .set_max_functions(512)
        .disable_symbol("eval")
        .on_print(|_| {})
        .on_debug(|_, _, _| {})
        .on_progress(|ops| {
            if ops % 256 != 0 {
                return None;
            }
            let over = DEADLINE.with(|d| d.get().is_some_and(|t| Instant::now() > t));
            over.then(|| Dynamic::from(TIMEOUT_TOKEN))
        });

    engine.register_fn("rule", rule_decl);

    // Effects a rule returns.
    engine.register_type_with_name::<RuleEffect>("Effect");
    engine.register_fn("deny", |ctx: NativeCallContext, m: &str| {
        RuleEffect::at(&ctx, Effect::Deny, m)
    });
    engine.register_fn("allow", |ctx: NativeCallContext, m: &str| {
        RuleEffect::at(&ctx, Effect::Allow, m)
    });
    engine.register_fn(
        "require",
        |ctx: NativeCallContext, docs: Array, m: &str| -> RhaiResult<RuleEffect> {
            let mut e = RuleEffect::at(&ctx, Effect::Require, m)?;
            for d in strings_of(&docs, "documents")? {
                e.documents.push(parse_enum(&d, "document kind")?);
            }
            Ok(e)
        },
    );
    engine.register_fn(
        "approve",
        |ctx: NativeCallContext, steps: Array, m: &str| -> RhaiResult<RuleEffect> {
            let mut e = RuleEffect::at(&ctx, Effect::Approve, m)?;
            for s in strings_of(&steps, "approval steps")? {
                e.steps.push(parse_enum(&s, "approval step")?);
            }
            if e.steps.is_empty() {
                return Err("approve() needs at least one step".into());
            }
            Ok(e)
        },
    );
    engine.register_fn(
        "change",
        |ctx: NativeCallContext, changes: Map, m: &str| -> RhaiResult<RuleEffect> {
            let mut e = RuleEffect::at(&ctx, Effect::Change, m)?;
            e.changes = changes_from_map(&changes)?;
            Ok(e)
        },
    );
    fn deadline_effect(
        ctx: &NativeCallContext,
        kind: &str,
        date: &str,
        on_expiry: Option<&str>,
        m: &str,
    ) -> RhaiResult<RuleEffect> {
        let mut e = RuleEffect::at(ctx, Effect::Deadline, m)?;
        if kind.is_empty()
            || kind.len() > 40
            || !kind.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            return Err(format!(
                "deadline kind `{kind}` must be snake_case, at most 40 characters"
            )
            .into());
        }
        let on_expiry = on_expiry
            .map(|t| parse_enum::<TransitionKind>(t, "transition kind"))
            .transpose()?;
        e.deadline = Some(DecisionDeadline {
            kind: kind.to_owned(),
            date: parse_date(date)?,
            on_expiry,
        });
        Ok(e)
    }
    engine.register_fn(
        "deadline",
        |ctx: NativeCallContext, k: &str, d: &str, m: &str| deadline_effect(&ctx, k, d, None, m),
    );
    engine.register_fn(
        "deadline",
        |ctx: NativeCallContext, k: &str, d: &str, t: &str, m: &str| {
            deadline_effect(&ctx, k, d, Some(t), m)
        },
    );

    // Dates are `YYYY-MM-DD` strings; they compare correctly as strings.
    engine.register_fn("add_days", |s: &str, n: i64| date_op(s, n, Date::add_days));
    engine.register_fn("add_weeks", |s: &str, n: i64| {
        date_op(s, n, Date::add_weeks)
    });
    engine.register_fn("add_months", |s: &str, n: i64| {
        date_op(s, n, Date::add_months)
    });
    engine.register_fn("add_years", |s: &str, n: i64| {
        date_op(s, n, Date::add_years)
    });
    engine.register_fn("days_between", |a: &str, b: &str| -> RhaiResult<i64> {
        Ok(parse_date(a)?.days_until(parse_date(b)?))
    });
    engine.register_fn("is_date", |s: &str| Date::parse(s).is_ok());

    // The case.
    engine.register_type_with_name::<CaseHandle>("Case");
    engine.register_get("student", |c: &mut CaseHandle| c.0.student.clone());
    engine.register_get("school", |c: &mut CaseHandle| c.0.school.clone());
    engine.register_get("transition", |c: &mut CaseHandle| c.0.transition.clone());
    engine.register_get("date", |c: &mut CaseHandle| c.0.date.clone());
    engine.register_get("sweep", |c: &mut CaseHandle| c.0.sweep);
    engine.register_fn("has", |c: &mut CaseHandle, kind: &str| {
        has_document(c, kind, |_| true)
    });
    engine.register_fn(
        "has_issued",
        |c: &mut CaseHandle, kind: &str, min_level: &str| -> RhaiResult<bool> {
            let min: IssuerLevel = parse_enum(min_level, "issuer level")?;
            has_document(c, kind, |d| d.issuer_level.is_some_and(|l| l >= min))
        },
    );
    engine.register_fn(
        "has_hospital",
        |c: &mut CaseHandle, kind: &str, min_grade: &str| -> RhaiResult<bool> {
            let min: HospitalGrade = parse_enum(min_grade, "hospital grade")?;
            has_document(c, kind, |d| d.hospital_grade.is_some_and(|g| g >= min))
        },
    );
    engine.register_fn("setting", |c: &mut CaseHandle, name: &str| -> RhaiResult<Dynamic> {
        c.0.settings.get(name).cloned().ok_or_else(|| {
            format!("policy_setting_missing: 本政策包未设置「{name}」(policy.toml [params]),无法作出决定").into()
        })
    });
    // A setting the school may leave unset (41号令 第二十五条: the school's suspension limit):
    // the rule decides without it instead of refusing to decide.
    engine.register_fn("has_setting", |c: &mut CaseHandle, name: &str| {
        c.0.settings.contains_key(name)
    });
    engine.register_fn("param", |c: &mut CaseHandle, name: &str| -> Dynamic {
        let t = c.0.transition.read_lock::<Map>().and_then(|m| {
            m.get("params")
                .and_then(|p| p.read_lock::<Map>().and_then(|p| p.get(name).cloned()))
        });
        t.unwrap_or(Dynamic::UNIT)
    });
    engine
}

/// The one sandboxed engine of the process.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(build_engine)
}
