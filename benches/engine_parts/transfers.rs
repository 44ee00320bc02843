//! Transfers (issue #15): how long a transfer takes from filing to its last approval, within one
//! jurisdiction (Yanhe → Yanhe) and to another (Yanhe → Zhuhai, both packages deciding), on the
//! built-in packages, one caller at a time, every commit durable. The whole route is timed (the
//! filing and each approval, each its own commit), and the last approval alone: the commit that
//! moves the student (across jurisdictions it also re-keys the record, moves the timeline and
//! writes the event into both logs).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use xueji::domain::student::NewStudentForm;
use xueji::domain::{Actor, Guardian, Level, School, TransitionInput, TransitionKind};
use xueji::engine::{Outcome, Xueji};
use xueji::policy::{PolicyRegistry, builtin_packages};
use xueji::store::Store;

pub struct TransferFigures {
    /// Median of the whole route (filing + every approval), in microseconds.
    pub in_jurisdiction_us: f64,
    pub cross_jurisdiction_us: f64,
    /// Median of the last approval alone (the commit that moves the student).
    pub in_jurisdiction_last_us: f64,
    pub cross_jurisdiction_last_us: f64,
    /// Commits each route takes (filing and approvals).
    pub in_jurisdiction_commits: usize,
    pub cross_jurisdiction_commits: usize,
}

fn admin() -> Actor {
    Actor {
        id: "tok_bench".into(),
        role: "admin".into(),
    }
}

fn school(id: &str, jurisdiction: &str, area: &str) -> School {
    School {
        id: id.into(),
        name: format!("基准学校{id}"),
        jurisdiction: jurisdiction.into(),
        area: Some(area.into()),
        level: Level::Primary,
        kind: None,
        calendar: Vec::new(),
    }
}

/// Approves every step of a pending outcome; the time of the last approval and the number of
/// commits (the filing included).
fn settle(x: &Xueji, outcome: Outcome) -> Result<(f64, usize), String> {
    match outcome {
        Outcome::Applied { .. } => Ok((0.0, 1)),
        Outcome::Pending { request, .. } => {
            let mut last_us = 0.0;
            for step in &request.steps {
                let t = Instant::now();
                x.approve(&request.id, *step, &admin(), None)
                    .map_err(|e| e.to_string())?;
                last_us = t.elapsed().as_secs_f64() * 1e6;
            }
            Ok((last_us, 1 + request.steps.len()))
        }
        other => Err(format!("not applied: {other:?}")),
    }
}

fn id_card(seq: usize) -> String {
    let first17 = format!("522228201605{:02}{:03}", 1 + seq / 1000 % 28, seq % 1000);
    let c = xueji::domain::identity::check_character(first17.as_bytes());
    format!("{first17}{c}")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `rounds` transfers of each kind, alternating, each of a student of its own.
pub fn measure(root: &Path, rounds: usize) -> Result<TransferFigures, String> {
    let dir = tempfile::tempdir_in(root).map_err(|e| e.to_string())?;
    let store = Store::open(&dir.path().join("xueji.redb")).map_err(|e| e.to_string())?;
    let registry =
        PolicyRegistry::from_packages(&builtin_packages()).map_err(|e| format!("{e:?}"))?;
    let x = Arc::new(Xueji::new(store, Arc::new(registry)));
    for s in [
        school("yanhe-a", "yanhe-primary", "沿河县"),
        school("yanhe-b", "yanhe-primary", "沿河县"),
        school("zh-a", "zhuhai-k12", "香洲区"),
    ] {
        x.create_school(s).map_err(|e| e.to_string())?;
    }
    let (mut whole_in, mut whole_cross, mut last_in, mut last_cross) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut commits_in, mut commits_cross) = (0, 0);
    for i in 0..rounds * 2 {
        let card = id_card(i);
        let form = NewStudentForm {
            school: "yanhe-a".into(),
            name: format!("转学生{i}"),
            gender: if (card.as_bytes()[16] - b'0') % 2 == 1 {
                "male"
            } else {
                "female"
            }
            .into(),
            birth_date: format!("{}-{}-{}", &card[6..10], &card[10..12], &card[12..14]),
            id_card: Some(card),
            national_id: None,
            grade: 3,
            class: Some("1".into()),
            entry_date: "2025-09-01".into(),
            report_deadline: None,
            guardians: vec![Guardian {
                name: "家长".into(),
                relation: "母亲".into(),
                phone: "13800000000".into(),
            }],
            extra: None,
        };
        let student = match x.admit(form, &admin(), false).map_err(|e| e.to_string())? {
            Outcome::Applied { student, .. } => student,
            other => return Err(format!("admission not applied: {other:?}")),
        };
        let mut register = TransitionInput::new(TransitionKind::Register, student.entry_date);
        register.documents = vec![
            serde_json::from_value(json!({"kind": "guardian_signature"}))
                .map_err(|e| e.to_string())?,
        ];
        let outcome = x
            .transition(&student.id, register, &admin(), false)
            .map_err(|e| e.to_string())?;
        settle(&x, outcome)?;
        let cross = i % 2 == 1;
        let mut input = TransitionInput::new(
            TransitionKind::Transfer,
            xueji::domain::Date::parse("2026-03-02")?,
        );
        input.reason = Some(xueji::domain::Reason::HouseholdMove);
        input.params.insert(
            "to_school".into(),
            json!(if cross { "zh-a" } else { "yanhe-b" }),
        );
        input.documents = vec![
            serde_json::from_value(json!({"kind": "transfer_form"})).map_err(|e| e.to_string())?,
        ];
        let t = Instant::now();
        let outcome = x
            .transition(&student.id, input, &admin(), false)
            .map_err(|e| e.to_string())?;
        let (last, commits) = settle(&x, outcome)?;
        let whole = t.elapsed().as_secs_f64() * 1e6;
        if cross {
            whole_cross.push(whole);
            last_cross.push(last);
            commits_cross = commits;
        } else {
            whole_in.push(whole);
            last_in.push(last);
            commits_in = commits;
        }
    }
    Ok(TransferFigures {
        in_jurisdiction_us: median(whole_in),
        cross_jurisdiction_us: median(whole_cross),
        in_jurisdiction_last_us: median(last_in),
        cross_jurisdiction_last_us: median(last_cross),
        in_jurisdiction_commits: commits_in,
        cross_jurisdiction_commits: commits_cross,
    })
}

/// The part as the bench runs it: prints its lines, returns its figures for `summary.json`.
pub fn run(smoke: bool, quick: bool, root: &Path) -> Result<Vec<(&'static str, f64, i32)>, String> {
    let rounds = if smoke {
        2
    } else if quick {
        20
    } else {
        100
    };
    let t = measure(root, rounds)?;
    println!(
        "\ntransfers ({rounds} of each; whole route = filing + every approval, one durable commit each)\n  within a jurisdiction  {:>8.0} µs over {} commits (last approval {:.0} µs)\n  across jurisdictions   {:>8.0} µs over {} commits (last approval {:.0} µs)",
        t.in_jurisdiction_us,
        t.in_jurisdiction_commits,
        t.in_jurisdiction_last_us,
        t.cross_jurisdiction_us,
        t.cross_jurisdiction_commits,
        t.cross_jurisdiction_last_us
    );
    Ok(vec![
        ("transfer_in_jurisdiction_us", t.in_jurisdiction_us, 0),
        ("transfer_cross_jurisdiction_us", t.cross_jurisdiction_us, 0),
        (
            "transfer_cross_vs_in_ratio",
            t.cross_jurisdiction_us / t.in_jurisdiction_us,
            2,
        ),
        (
            "transfer_last_approval_cross_vs_in_ratio",
            t.cross_jurisdiction_last_us / t.in_jurisdiction_last_us,
            2,
        ),
        (
            "transfer_in_jurisdiction_commits",
            t.in_jurisdiction_commits as f64,
            0,
        ),
        (
            "transfer_cross_jurisdiction_commits",
            t.cross_jurisdiction_commits as f64,
            0,
        ),
    ])
}
