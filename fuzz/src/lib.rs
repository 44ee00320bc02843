//! Shared pieces of the fuzz targets: structured cases drawn from fuzzer bytes, and the checks
//! every policy decision and error must pass.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Value};
use strum::IntoEnumIterator;
use xueji::domain::{
    Date, Deadline, Decision, Document, Effect, Gender, Level, Reason, Status, Term,
    TransitionInput, TransitionKind,
};
use xueji::policy::testing::{CaseSchool, CaseStudent, TestCase};
use xueji::policy::{CompiledPolicy, Manifest, PolicyError, PolicyLoadError};

/// Codes a package that does not compile may report (see `PolicyLoadError`).
pub const LOAD_CODES: &[&str] = &[
    "policy_manifest",
    "policy_syntax",
    "policy_script",
    "policy_rule",
    "policy_citation",
    "policy_override",
    "policy_base",
    "policy_limit",
];

/// Codes an evaluation may fail with (see `policy::evaluate`).
pub const EVAL_CODES: &[&str] = &[
    "policy_timeout",
    "policy_too_many_operations",
    "policy_stack_overflow",
    "policy_data_too_large",
    "policy_unknown_field",
    "policy_unknown_variable",
    "policy_unknown_function",
    "policy_module_forbidden",
    "policy_setting_missing",
    "policy_script_error",
    "policy_bad_result",
];

const WORDS: &[&str] = &[
    "",
    " ",
    "report_by",
    "reserved_until",
    "resume_by",
    "deferred_until",
    "2026-fall",
    "2027-spring",
    "technical",
    "沿河县",
    "东区",
    "national_id_differs_from_id_card",
    "1",
    "4",
    "s1",
    "test-school",
    "\u{0}",
    "a\nb",
    "2026-02-30",
    "9999-12-31",
    "0000-01-01",
];

const PARAM_KEYS: &[&str] = &[
    "until",
    "discharge_date",
    "grade",
    "to_grade",
    "class",
    "to_class",
    "to_school",
    "term",
    "tuition_paid",
    "forms",
    "fields",
];

const DOCUMENT_KINDS: &[&str] = &[
    "hospital_diagnosis",
    "treatment_record",
    "major_event_proof",
    "suspension_form",
    "transfer_form",
    "guardian_application",
    "guardian_signature",
    "leave_survey",
    "household_register",
    "admission_letter",
    "local_certificate",
    "enlistment_notice",
    "discharge_certificate",
    "tuition_receipt",
    "bureau_certificate",
    "student_card",
    "written_report",
    "review_report",
];
const ISSUERS: &[&str] = &["township", "county", "city", "province", "national"];
const GRADES: &[&str] = &["1C", "1B", "1A", "2C", "2B", "2A", "3C", "3B", "3A"];
const LEVELS: &[&str] = &[
    "primary",
    "junior",
    "senior",
    "vocational",
    "undergraduate",
    "special",
];

fn pick<'a, T>(u: &mut Unstructured, xs: &'a [T]) -> Result<&'a T> {
    u.choose(xs)
}

pub fn text(u: &mut Unstructured) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok((*pick(u, WORDS)?).to_owned())
    } else {
        let s: String = u.arbitrary()?;
        Ok(s.chars().take(80).collect())
    }
}

/// Mostly plausible dates, sometimes the ends of what `YYYY-MM-DD` can spell.
pub fn date(u: &mut Unstructured) -> Result<Date> {
    let y = match u.int_in_range(0..=9u8)? {
        0 => 0,
        1 => 9999,
        2 => u.int_in_range(0..=9999)?,
        _ => u.int_in_range(1990..=2035)?,
    };
    let m = u.int_in_range(1..=12)?;
    let d = u.int_in_range(1..=31)?;
    Ok(Date::from_ymd(y, m, d)
        .or_else(|| Date::from_ymd(y, m, 28))
        .unwrap_or_else(|| Date::from_ymd(2026, 3, 2).expect("date")))
}

pub fn json(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let top = if depth >= 3 { 6 } else { 8 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(*pick(u, &[0i64, 1, 2, 3, 9, 10, -1, i64::MAX, i64::MIN])?),
        4 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        5 => Value::String(date(u)?.to_string()),
        6 => Value::String(text(u)?),
        7 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| json(u, depth + 1)).collect::<Result<_>>()?)
        }
        _ => Value::Object(map(u, depth + 1)?),
    })
}

pub fn map(u: &mut Unstructured, depth: u32) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let key = if u.ratio(2, 3)? {
            (*pick(u, PARAM_KEYS)?).to_owned()
        } else {
            text(u)?
        };
        m.insert(key, json(u, depth)?);
    }
    Ok(m)
}

fn from_name<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_value(Value::String(name.to_owned()))
        .unwrap_or_else(|e| panic!("fixture name {name}: {e}"))
}

pub fn transition(u: &mut Unstructured) -> Result<TransitionInput> {
    let kinds: Vec<TransitionKind> = TransitionKind::iter().collect();
    let mut t = TransitionInput::new(*pick(u, &kinds)?, date(u)?);
    if u.arbitrary()? {
        let reasons: Vec<Reason> = Reason::iter().collect();
        t.reason = Some(*pick(u, &reasons)?);
    }
    t.params = map(u, 0)?;
    for _ in 0..u.int_in_range(0..=4)? {
        t.documents.push(Document {
            kind: from_name(pick(u, DOCUMENT_KINDS)?),
            issuer: if u.arbitrary()? { Some(text(u)?) } else { None },
            issuer_level: if u.arbitrary()? {
                Some(from_name(pick(u, ISSUERS)?))
            } else {
                None
            },
            hospital_grade: if u.arbitrary()? {
                Some(from_name(pick(u, GRADES)?))
            } else {
                None
            },
            reference: None,
        });
    }
    t.expected_version = u.arbitrary()?;
    Ok(t)
}

/// A hypothetical case, as a package's own tests (and `POST /v1/policies/{j}/evaluate`) build
/// one.
pub fn case(u: &mut Unstructured) -> Result<TestCase> {
    let statuses: Vec<Status> = Status::iter().collect();
    let opt_text = |u: &mut Unstructured| -> Result<Option<String>> {
        Ok(if u.arbitrary()? { Some(text(u)?) } else { None })
    };
    let mut student = CaseStudent {
        status: Some(*pick(u, &statuses)?),
        grade: Some(if u.ratio(4, 5)? {
            u.int_in_range(1..=9)?
        } else {
            u.arbitrary()?
        }),
        class: opt_text(u)?,
        gender: Some(if u.arbitrary()? {
            Gender::Male
        } else {
            Gender::Female
        }),
        birth_date: Some(date(u)?),
        entry_date: Some(date(u)?),
        ..Default::default()
    };
    for _ in 0..u.int_in_range(0..=3)? {
        student.deadlines.push(Deadline {
            kind: text(u)?,
            date: date(u)?,
            on_expiry: None,
        });
    }
    for _ in 0..u.int_in_range(0..=2)? {
        student.terms.push(text(u)?);
    }
    for _ in 0..u.int_in_range(0..=2)? {
        student.flags.push(text(u)?);
    }
    student.extra = map(u, 1)?;
    let mut school = CaseSchool {
        id: opt_text(u)?,
        level: if u.arbitrary()? {
            Some(from_name::<Level>(pick(u, LEVELS)?))
        } else {
            None
        },
        kind: opt_text(u)?,
        area: opt_text(u)?,
        calendar: Vec::new(),
    };
    for _ in 0..u.int_in_range(0..=2)? {
        school.calendar.push(Term {
            term: text(u)?,
            starts: date(u)?,
            report_deadline: if u.arbitrary()? { Some(date(u)?) } else { None },
        });
    }
    Ok(TestCase {
        name: String::new(),
        student,
        school,
        transition: transition(u)?,
        sweep: u.arbitrary()?,
        expect: Default::default(),
    })
}

/// A decision must be internally consistent and survive the JSON round trip into history.
pub fn check_decision(policy: &CompiledPolicy, input: &TransitionInput, d: &Decision) {
    assert_eq!(d.policy, policy.policy_ref());
    let denied = d.rules.iter().any(|r| r.effect == Effect::Deny);
    assert_eq!(d.allowed, !denied && d.missing_documents.is_empty());
    for m in &d.missing_documents {
        assert!(d.required_documents.contains(m));
        assert!(!input.documents.iter().any(|doc| doc.kind.as_str() == m));
    }
    assert!(
        d.approvals.windows(2).all(|w| w[0] < w[1]),
        "approvals sorted, unique"
    );
    for r in &d.rules {
        assert!(
            policy.rules.iter().any(|x| x.info.id == r.id),
            "fired unknown rule {}",
            r.id
        );
        let n = r.message.chars().count();
        assert!((1..=300).contains(&n), "message of {n} characters");
    }
    for (i, a) in d.deadlines.iter().enumerate() {
        assert!(
            d.deadlines[i + 1..].iter().all(|b| b.kind != a.kind),
            "deadline kinds unique"
        );
    }
    let json = serde_json::to_vec(d).expect("decision encodes");
    let back: Decision = serde_json::from_slice(&json).expect("decision decodes");
    assert_eq!(&back, d);
}

pub fn check_eval_error(e: &PolicyError) {
    assert!(
        EVAL_CODES.contains(&e.code()),
        "uncoded policy error: {e:?}"
    );
}

pub fn check_load_errors(errors: &[PolicyLoadError]) {
    assert!(!errors.is_empty());
    for e in errors {
        assert!(
            LOAD_CODES.contains(&e.code.as_str()),
            "uncoded load error: {e:?}"
        );
    }
}

/// A Rhai string literal of `s` (control characters dropped).
fn lit(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars().filter(|c| !c.is_control()) {
        if ch == '"' || ch == '\\' {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

fn int(u: &mut Unstructured) -> Result<i64> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => *pick(
            u,
            &[
                0,
                1,
                -1,
                14,
                i64::MAX,
                i64::MIN,
                i64::from(i32::MAX),
                i64::from(u32::MAX),
                106_751_991_167_300,
                -106_751_991_167_300,
            ],
        )?,
        1 => u.int_in_range(-100_000..=100_000)?,
        _ => u.arbitrary()?,
    })
}

/// A Rhai integer expression (`i64::MIN` has no literal).
fn int_expr(n: i64) -> String {
    if n == i64::MIN {
        "(-9223372036854775807 - 1)".into()
    } else if n < 0 {
        format!("({n})")
    } else {
        n.to_string()
    }
}

fn date_lit(u: &mut Unstructured) -> Result<String> {
    Ok(if u.ratio(4, 5)? {
        lit(&date(u)?.to_string())
    } else if u.arbitrary()? {
        "c.date".into()
    } else {
        lit(&text(u)?)
    })
}

fn message(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => lit(""),
        1 => format!("{}.pad(301, \"字\")", lit("长")),
        _ => lit(&text(u)?.chars().take(40).collect::<String>()),
    })
}

/// One rule whose check calls the sandbox's native functions with drawn arguments, in the
/// package `manifest` describes (its rule prefix, its first cited document).
pub fn native_calls_rule(u: &mut Unstructured, manifest: &Manifest) -> Result<String> {
    let doc = manifest
        .documents
        .keys()
        .next()
        .cloned()
        .unwrap_or_else(|| "none".into());
    let mut body = Vec::new();
    for i in 0..u.int_in_range(1..=6)? {
        let call = match u.int_in_range(0..=15u8)? {
            0 => format!("add_days({}, {})", date_lit(u)?, int_expr(int(u)?)),
            1 => format!("add_weeks({}, {})", date_lit(u)?, int_expr(int(u)?)),
            2 => format!("add_months({}, {})", date_lit(u)?, int_expr(int(u)?)),
            3 => format!("add_years({}, {})", date_lit(u)?, int_expr(int(u)?)),
            4 => format!("days_between({}, {})", date_lit(u)?, date_lit(u)?),
            5 => format!("is_date({})", date_lit(u)?),
            6 => format!(
                "deadline({}, {}, {})",
                lit(&text(u)?),
                date_lit(u)?,
                message(u)?
            ),
            7 => format!(
                "deadline({}, {}, {}, {})",
                lit(pick(u, &["report_by", "resume_by", "x"])?),
                date_lit(u)?,
                lit(&text(u)?),
                message(u)?
            ),
            8 => format!(
                "change(#{{ grade: {}, status: {}, class: {} }}, {})",
                int_expr(int(u)?),
                lit(pick(u, &["enrolled", "suspended", "graduated", "nope"])?),
                lit(&text(u)?),
                message(u)?
            ),
            9 => format!(
                "require([{}], {})",
                lit(pick(u, DOCUMENT_KINDS)?),
                message(u)?
            ),
            10 => format!(
                "approve([{}], {})",
                lit(pick(
                    u,
                    &["school", "district", "city", "receiving_school", "x"]
                )?),
                message(u)?
            ),
            11 => format!("c.param({})", lit(pick(u, PARAM_KEYS)?)),
            12 => format!("c.setting({})", lit(&text(u)?)),
            13 => format!(
                "c.has_issued({}, {})",
                lit(pick(u, DOCUMENT_KINDS)?),
                lit(pick(u, ISSUERS)?)
            ),
            14 => format!(
                "c.has_hospital({}, {})",
                lit(pick(u, DOCUMENT_KINDS)?),
                lit(pick(u, GRADES)?)
            ),
            _ => format!("allow({})", message(u)?),
        };
        body.push(format!("let v{i} = {call};"));
    }
    let n = body.len();
    let result = match u.int_in_range(0..=2u8)? {
        0 => "()".to_owned(),
        1 => format!("v{}", n - 1),
        _ => format!(
            "[{}]",
            (0..n)
                .map(|i| format!("v{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok(format!(
        "rule(#{{ id: \"{}.fuzz.calls\", on: [\"*\"], cites: \"{doc} 1\", check: |c| {{\n    {}\n    {result}\n}} }});\n",
        manifest.rule_prefix,
        body.join("\n    ")
    ))
}
