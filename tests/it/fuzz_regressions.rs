//! What the cargo-fuzz targets (`fuzz/`, `docs/fuzzing.md`) found, and the most hostile of their
//! seed edge cases, fed through the same public functions the targets call.

use std::collections::BTreeMap;
use xueji::domain::event::{DecisionContext, GENESIS_HASH, verify_chain};
use xueji::domain::identity::{CitizenId, NationalNumber};
use xueji::domain::student::NewStudentForm;
use xueji::domain::{Event, NewStudent, TransitionInput};
use xueji::policy::{Case, PackageSource, compile_package, evaluate};

use crate::helpers::*;

// ---- policy: a date function given a count chrono cannot hold --------------------------------

fn one_rule_package(check_body: &str) -> PackageSource {
    let rules = format!(
        "rule(#{{ id: \"test.fuzz.calls\", on: [\"*\"], cites: \"t 1\", check: |c| {{\n{check_body}\n}} }});\n"
    );
    let files: BTreeMap<String, String> = [
        (
            "policy.toml".to_owned(),
            TEST_MANIFEST
                .replace("extends = \"national-k12\"\n", "")
                .replace("overrides = [\"national_k12.review.school\"]\n", ""),
        ),
        ("fuzz.rhai".to_owned(), rules),
    ]
    .into();
    PackageSource { files }
}

fn evaluate_rule(check_body: &str) -> Result<xueji::domain::Decision, xueji::policy::PolicyError> {
    let policy = compile_package(&one_rule_package(check_body), None)
        .unwrap_or_else(|e| panic!("compiles: {e:?}"));
    let case: xueji::policy::testing::TestCase = toml::from_str(
        "name = \"x\"\ntransition = { kind = \"suspend\", effective_date = \"2026-03-02\" }\nexpect = { outcome = \"error\" }",
    )
    .expect("case");
    let (student, school) = case.build(&policy);
    evaluate(
        &policy,
        Case {
            student: &student,
            school: &school,
            input: &case.transition,
            sweep: false,
        },
    )
}

/// Found by the `policy` target (generated native calls): `add_days` with a count past
/// ±106 751 991 167 days (2^63 ms) panicked inside chrono (`TimeDelta::days out of bounds`) and
/// took the process down; `add_weeks` reached the same panic through `add_days`. Now the rule fails
/// with a coded error and the transition is refused like any other script failure.
#[test]
fn a_day_count_past_chronos_range_is_a_coded_error_not_a_panic() {
    for call in [
        // The minimised finding, and the input that first crashed.
        "add_days(c.date, 9223372036854775807)",
        "add_days(\"1992-02-15\", (-106751991167300))",
        "add_days(\"0000-01-01\", 9223372036854775807)",
        "add_days(c.date, -9223372036854775807 - 1)",
        "add_days(\"2026-03-02\", 106751991168)",
        "add_weeks(c.date, 1317624576693539401)",
        "add_weeks(\"9999-12-31\", 15250284452472)",
    ] {
        let err =
            evaluate_rule(&format!("deadline(\"resume_by\", {call}, \"期满\")")).expect_err(call);
        assert_eq!(err.code(), "policy_script_error", "{call}: {err}");
        assert!(
            err.to_string().contains("date out of range"),
            "{call}: {err}"
        );
    }
    assert_eq!(d("2026-03-02").add_days(i64::MAX), None);
    assert_eq!(d("2026-03-02").add_days(i64::MIN), None);
    assert_eq!(d("2026-03-02").add_weeks(i64::MAX / 7), None);
    // Counts that fit still count calendar days.
    let ok =
        evaluate_rule("deadline(\"resume_by\", add_days(c.date, 14), \"期满\")").expect("in range");
    assert_eq!(ok.deadlines[0].date, d("2026-03-16"));
}

// ---- identity: hostile seeds -----------------------------------------------------------------

#[test]
fn hostile_identity_numbers_get_their_codes() {
    let today = d("2026-11-28");
    let id = |s: &str| CitizenId::parse_on(s, today).expect_err(s).code("id_card");
    let nn = |s: &str| {
        NationalNumber::parse_on(s, today)
            .expect_err(s)
            .code("national_id")
    };
    // A lowercase check character is refused, not silently upper-cased.
    assert_eq!(id("11010519491231002x"), "id_card_check_character");
    assert_eq!(id("11010519491231002Ｘ"), "id_card_character");
    assert_eq!(id("李11010519491231002"), "id_card_character");
    assert_eq!(id(""), "id_card_length");
    assert_eq!(id("110105194912310021\u{0}"), "id_card_character");
    // Born on the day after "today".
    assert_eq!(id("110105202611290011"), "id_card_birth_date");
    assert_eq!(nn(""), "national_id_length");
    assert_eq!(nn("g11010519491231002X"), "national_id_prefix");
    assert_eq!(nn("G"), "national_id_length");
    assert_eq!(nn("\u{0}11010519491231002X"), "national_id_character");
    assert_eq!(nn("L1101051949123AAB9Z"), "national_id_character");
    // Whatever parses re-parses to the same value.
    let ok = CitizenId::parse_on("11010519491231002X", today).expect("valid");
    assert_eq!(CitizenId::parse_on(ok.as_str(), today), Ok(ok));
}

// ---- request bodies: hostile seeds ---------------------------------------------------------

#[test]
fn hostile_student_forms_are_refused_field_by_field() {
    let school = school("s1", None);
    let today = d("2026-11-28");
    let parse = |json: &str| {
        let form: NewStudentForm = serde_json::from_str(json).expect("decodes");
        NewStudent::parse(form, &school, today)
            .expect_err(json)
            .errors
            .into_iter()
            .map(|e| (e.code, e.field))
            .collect::<Vec<_>>()
    };
    let base = r#""school":"s1","name":"张三","gender":"female","birth_date":"1949-12-31","id_card":"11010519491231002X","entry_date":"2024-09-01""#;
    for grade in [
        "0",
        "7",
        "256",
        "-9223372036854775808",
        "9223372036854775807",
    ] {
        assert_eq!(
            parse(&format!("{{{base},\"grade\":{grade}}}")),
            [("invalid_value".to_owned(), "grade".to_owned())],
            "grade {grade}"
        );
    }
    let big = "x".repeat(16 * 1024);
    assert_eq!(
        parse(&format!(
            "{{{base},\"grade\":1,\"extra\":{{\"k\":\"{big}\"}}}}"
        )),
        [("too_long".to_owned(), "extra".to_owned())]
    );
    // Control characters and a name of blanks.
    assert_eq!(
        parse(&format!(
            "{{{},\"grade\":1}}",
            base.replace("张三", "\\u0000")
        )),
        [("invalid_character".to_owned(), "name".to_owned())]
    );
    assert_eq!(
        parse(&format!(
            "{{{},\"grade\":1}}",
            base.replace("张三", "\\u3000 ")
        )),
        [("required".to_owned(), "name".to_owned())]
    );
    // Unknown fields and wrong types never reach validation.
    assert!(
        serde_json::from_str::<NewStudentForm>(&format!("{{{base},\"grade\":1,\"admin\":true}}"))
            .is_err()
    );
    assert!(serde_json::from_str::<NewStudentForm>(&format!("{{{base},\"grade\":1.5}}")).is_err());
}

#[test]
fn hostile_transition_params_are_refused_with_codes() {
    let codes = |json: &str| {
        let t: TransitionInput = serde_json::from_str(json).expect("decodes");
        t.validate()
            .expect_err(json)
            .errors
            .into_iter()
            .map(|e| e.code)
            .collect::<Vec<_>>()
    };
    let t = |params: &str| {
        format!(r#"{{"kind":"promote","effective_date":"2026-09-01","params":{params}}}"#)
    };
    assert_eq!(codes(&t(r#"{"grade":1e300}"#)), ["invalid_param"]);
    assert_eq!(
        codes(&t(r#"{"grade":18446744073709551615}"#)),
        ["invalid_param"]
    );
    assert_eq!(codes(&t(r#"{"grade":-1}"#)), ["invalid_param"]);
    assert_eq!(codes(&t(r#"{"class":"\u0000"}"#)), ["invalid_param"]);
    assert_eq!(codes(&t(r#"{"until":"2026-02-30"}"#)), ["unknown_param"]);
    let docs = vec![r#"{"kind":"student_card"}"#; 33].join(",");
    assert_eq!(
        codes(&format!(
            r#"{{"kind":"suspend","effective_date":"2026-09-01","documents":[{docs}]}}"#
        )),
        ["too_many"]
    );
}

// ---- stored history: hostile seeds ---------------------------------------------------------

fn vector_events() -> Vec<Event> {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../vectors/event-v1.json")).expect("vectors");
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| serde_json::from_value(x["event"].clone()).expect("event"))
        .collect()
}

#[test]
fn hostile_chains_are_reported_not_trusted() {
    let events = vector_events();
    let head = events.last().expect("event").hash.clone();
    assert!(verify_chain(&events, Some(&head)).ok);
    let code = |events: &[Event], head: Option<&str>| {
        verify_chain(events, head)
            .first_bad
            .map(|b| (b.seq, b.code))
            .expect("reported")
    };
    // An empty chain where the student record names a head: every event was deleted.
    assert_eq!(code(&[], Some(&head)), (1, "head_mismatch".into()));
    assert!(verify_chain(&[], Some(GENESIS_HASH)).ok);
    // The same event twice, events swapped, a sequence number of 0 or u64::MAX.
    let twice = [events[0].clone(), events[0].clone()];
    assert_eq!(code(&twice, None), (1, "sequence_gap".into()));
    let swapped = [events[1].clone(), events[0].clone()];
    assert_eq!(code(&swapped, None), (2, "sequence_gap".into()));
    for seq in [0, u64::MAX] {
        let mut e = events[0].clone();
        e.seq = seq;
        assert_eq!(code(&[e], None), (seq, "sequence_gap".into()));
    }
    // A hash that is not hex, an empty one.
    for hash in ["", "zz", &"A".repeat(64)] {
        let mut e = events[0].clone();
        e.hash = hash.to_owned();
        assert_eq!(code(&[e], None), (1, "hash_mismatch".into()));
    }
}

// ---- stored history: numbers that drifted across a write and a read ----------------------------

/// JSON numbers whose value serde_json's default (fast, not correctly rounded) float parser moved
/// by one unit in the last place on every write/read cycle: `6.458023373509767e242` was read back
/// as `…768e242`, written and read again as `…769e242`.
const DRIFTING: &[&str] = &[
    "6.458023373509767e+242",
    "4.0398571096509664e+260",
    "3.0874735025227597e-80",
];

/// Found by the `event_decode` target's round-trip invariant (on a seed with such a number; the
/// fuzzer's mutations alone did not produce one in the budget): a stored `DecisionContext` or
/// event whose JSON held such a number re-encoded to other bytes, so `verify` reported an
/// untouched record as altered, and the number itself changed silently with each store cycle.
/// Fixed by parsing floats correctly (serde_json `float_roundtrip`): every float now reads back
/// as the value that was written.
#[test]
fn floats_read_back_as_written_so_untouched_records_verify() {
    let events = vector_events();
    for n in DRIFTING {
        // A decision context as `apply_decision` stores it, with the number in `student.extra`.
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../fuzz/seeds/event_decode/context"))
                .expect("seed");
        let mut v = v;
        v["student"]["extra"] = serde_json::from_str(&format!("{{\"x\":{n}}}")).expect("extra");
        let ctx: DecisionContext = serde_json::from_value(v).expect("context");
        let mut bytes = ctx.to_bytes();
        for _ in 0..3 {
            let again: DecisionContext = serde_json::from_slice(&bytes).expect("reads back");
            assert_eq!(again, ctx, "{n}");
            assert_eq!(
                DecisionContext::hash_of(&again.to_bytes()),
                DecisionContext::hash_of(&bytes),
                "{n}"
            );
            bytes = again.to_bytes();
        }
        // An event with the number in its input, sealed, stored, read back: the chain verifies.
        let mut e = events[0].clone();
        e.input.params = serde_json::from_str(&format!("{{\"grade\":{n}}}")).expect("params");
        let e = e.seal();
        let stored: Event =
            serde_json::from_slice(&serde_json::to_vec(&e).expect("writes")).expect("reads");
        assert_eq!(stored, e, "{n}");
        assert!(verify_chain(&[stored], Some(&e.hash)).ok, "{n}");
    }
}

/// The same through the service: a student admitted with such a number in `extra` keeps it, and
/// the decision context recorded for the admission still matches its event.
#[test]
fn an_admission_with_a_drifting_float_reproduces() {
    let t = engine();
    let x = &t.xueji;
    let mut f = form("浮点", &id_card("2016-05-01", 77));
    f.extra = Some(serde_json::from_str(&format!("{{\"score\":{}}}", DRIFTING[0])).expect("extra"));
    let want = f.extra.clone().expect("extra");
    let student = match x.admit(f, &registrar(), false).expect("admit") {
        xueji::engine::Outcome::Applied { student, .. } => student,
        other => panic!("not applied: {other:?}"),
    };
    assert_eq!(x.student(&student.id).expect("reads").extra, want);
    let report = x.reproduce_decisions(None).expect("reproduces");
    assert!(report.bad_contexts.is_empty(), "{:?}", report.bad_contexts);
    assert!(report.ok, "{report:?}");
    let chain = x.verify_student(&student.id).expect("verifies");
    assert!(chain.ok, "{chain:?}");
}
