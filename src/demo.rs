//! `xueji serve --demo`: on an empty store, a small sample of the six seed jurisdictions so a
//! newcomer sees the service working at once: schools, tokens (written to the data folder),
//! students in several statuses, and an approval request left pending.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

use crate::auth::{Role, TokenRecord};
use crate::domain::identity::check_character;
use crate::domain::student::NewStudentForm;
use crate::domain::{
    Actor, ApprovalStep, Guardian, Level, School, Student, TransitionInput, TransitionKind,
};
use crate::engine::{Outcome, Xueji};

struct DemoSchool {
    id: &'static str,
    name: &'static str,
    jurisdiction: &'static str,
    area: Option<&'static str>,
    level: Level,
    /// Address code used for the sample ID numbers.
    region: &'static str,
    grade: i64,
    entry: &'static str,
}

const SCHOOLS: &[DemoSchool] = &[
    DemoSchool {
        id: "sy-zhongzhi-1",
        name: "沈阳市第一职业技术学校(示例)",
        jurisdiction: "shenyang-vocational",
        area: Some("和平区"),
        level: Level::Vocational,
        region: "210102",
        grade: 1,
        entry: "2026-09-01",
    },
    DemoSchool {
        id: "zh-xiangzhou-1",
        name: "珠海市香洲区第一小学(示例)",
        jurisdiction: "zhuhai-k12",
        area: Some("香洲区"),
        level: Level::Primary,
        region: "440402",
        grade: 3,
        entry: "2024-09-01",
    },
    DemoSchool {
        id: "yanhe-no4",
        name: "沿河县第四完全小学(示例)",
        jurisdiction: "yanhe-primary",
        area: Some("沿河县"),
        level: Level::Primary,
        region: "522228",
        grade: 3,
        entry: "2024-09-01",
    },
    DemoSchool {
        id: "rencheng-shiyan",
        name: "任城区实验中学(示例)",
        jurisdiction: "rencheng-junior",
        area: Some("任城区"),
        level: Level::Junior,
        region: "370811",
        grade: 1,
        entry: "2026-09-01",
    },
    DemoSchool {
        id: "tsinghua",
        name: "清华大学(示例)",
        jurisdiction: "tsinghua-undergrad",
        area: None,
        level: Level::Undergraduate,
        region: "110108",
        grade: 1,
        entry: "2026-08-20",
    },
    DemoSchool {
        id: "szu",
        name: "深圳大学(示例)",
        jurisdiction: "szu-undergrad",
        area: None,
        level: Level::Undergraduate,
        region: "440305",
        grade: 1,
        entry: "2026-08-25",
    },
];

const NAMES: &[(&str, &str)] = &[
    ("王小明", "male"),
    ("李小红", "female"),
    ("张伟", "male"),
    ("刘芳", "female"),
];

fn id_card(region: &str, birth: &str, seq: usize, male: bool) -> String {
    // The sequence's last digit is odd for men and even for women (GB 11643).
    let n = seq * 2 + usize::from(male);
    let first17 = format!("{region}{}{:03}", birth.replace('-', ""), n % 1000);
    format!("{first17}{}", check_character(first17.as_bytes()))
}

fn birth_for(level: Level) -> &'static str {
    match level {
        Level::Primary => "2017-04-12",
        Level::Junior => "2014-06-03",
        Level::Vocational | Level::Senior => "2011-03-21",
        _ => "2008-07-15",
    }
}

/// Files a transition and approves every step it needs, as the demo's system actor.
fn drive(
    x: &Xueji,
    student: &str,
    input: TransitionInput,
    actor: &Actor,
) -> Result<Option<Student>> {
    let outcome = match x.transition(student, input, actor, false) {
        Ok(o) => o,
        // A package that leaves a setting to the school refuses (fails closed): the sample
        // simply shows fewer changes there.
        Err(crate::engine::ServiceError::Policy(e)) => {
            tracing::warn!(
                student,
                code = e.code(),
                "demo transition refused by the policy"
            );
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    match outcome {
        Outcome::Applied { student, .. } => Ok(Some(*student)),
        Outcome::Pending { request, .. } => {
            for step in request.steps.clone() {
                x.approve(&request.id, step, actor, Some("示例数据:同意".into()))?;
            }
            Ok(Some(x.student(student)?))
        }
        Outcome::Denied { decision } => {
            tracing::warn!(student, reason = %decision.denial_message(), "demo transition denied");
            Ok(None)
        }
        Outcome::DryRun { .. } => Ok(None),
    }
}

fn transition(kind: TransitionKind, date: &str, extra: Value) -> Result<TransitionInput> {
    let mut v = json!({ "kind": kind, "effective_date": date });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    serde_json::from_value(v).context("demo transition")
}

/// Loads the sample when the store has no school yet. Returns the path of the tokens file.
pub fn load(x: &Xueji, data: &Path) -> Result<Option<PathBuf>> {
    if !x.schools()?.is_empty() {
        return Ok(None);
    }
    let actor = Actor::system("demo");
    let mut tokens = serde_json::Map::new();
    let mut issue = |x: &Xueji, key: String, record: TokenRecord| -> Result<()> {
        let (token, record) = x.create_token(record)?;
        tokens.insert(key, json!({ "token": token, "role": record.role, "scope": { "jurisdiction": record.jurisdiction, "area": record.area, "school": record.school } }));
        Ok(())
    };
    let blank = |role: Role| TokenRecord {
        label: Some("demo".into()),
        created_by: Some("demo".into()),
        ..TokenRecord::new(role)
    };
    for s in SCHOOLS {
        if x.policies().latest(s.jurisdiction).is_none() {
            continue;
        }
        x.create_school(School {
            id: s.id.into(),
            name: s.name.into(),
            jurisdiction: s.jurisdiction.into(),
            area: s.area.map(str::to_owned),
            level: s.level,
            kind: None,
            calendar: vec![],
        })?;
        for role in [Role::Registrar, Role::SchoolLeader] {
            issue(
                x,
                format!("{}:{}", s.id, role.as_str()),
                TokenRecord {
                    school: Some(s.id.into()),
                    jurisdiction: Some(s.jurisdiction.into()),
                    ..blank(role)
                },
            )?;
        }
        issue(
            x,
            format!("{}:district_officer", s.jurisdiction),
            TokenRecord {
                jurisdiction: Some(s.jurisdiction.into()),
                area: s.area.map(str::to_owned),
                ..blank(Role::DistrictOfficer)
            },
        )?;
        if s.area.is_some() {
            issue(
                x,
                format!("{}:city_officer", s.jurisdiction),
                TokenRecord {
                    jurisdiction: Some(s.jurisdiction.into()),
                    ..blank(Role::DistrictOfficer)
                },
            )?;
        }

        let mut enrolled = Vec::new();
        for (i, (name, gender)) in NAMES.iter().enumerate() {
            let birth = birth_for(s.level);
            let form = NewStudentForm {
                school: s.id.into(),
                name: (*name).into(),
                gender: (*gender).into(),
                birth_date: birth.into(),
                id_card: Some(id_card(s.region, birth, i + 1, *gender == "male")),
                national_id: None,
                grade: s.grade,
                class: Some("1".into()),
                entry_date: s.entry.into(),
                report_deadline: None,
                guardians: vec![Guardian {
                    name: format!("{}家长", &name[..3]),
                    relation: "父亲".into(),
                    phone: "13800000000".into(),
                }],
                extra: None,
            };
            let Outcome::Applied { student, .. } = x.admit(form, &actor, false)? else {
                continue;
            };
            // The last one stays admitted (待报到); the others register.
            if i + 1 == NAMES.len() {
                continue;
            }
            let register = transition(
                TransitionKind::Register,
                s.entry,
                json!({ "params": { "forms": ["written", "electronic"] }, "documents": [{ "kind": "admission_letter" }, { "kind": "guardian_signature" }, { "kind": "household_register" }, { "kind": "tuition_receipt" }, { "kind": "student_card" }] }),
            )?;
            if let Some(st) = drive(x, &student.id, register, &actor)? {
                enrolled.push(st);
            }
        }
        // A suspension applied and another one left pending, where the policy allows them.
        let suspension = |date: &str| {
            transition(
                TransitionKind::Suspend,
                date,
                json!({
                    "reason": "illness", "params": { "until": "2027-07-01" },
                    "documents": [
                        { "kind": "hospital_diagnosis", "issuer": "县人民医院", "issuer_level": "county", "hospital_grade": "2A" },
                        { "kind": "treatment_record" }, { "kind": "suspension_form" }, { "kind": "guardian_application" }
                    ]
                }),
            )
        };
        if let Some(first) = enrolled.first() {
            drive(x, &first.id, suspension("2026-10-08")?, &actor)?;
        }
        if let Some(second) = enrolled.get(1)
            && let Ok(Outcome::Pending { request, .. }) =
                x.transition(&second.id, suspension("2026-11-02")?, &actor, false)
        {
            tracing::info!(request = %request.id, next = ?request.next_step().map(ApprovalStep::as_str), "demo request left pending");
        }
    }
    let path = data.join("demo-tokens.json");
    crate::cli::write_secret(
        &path,
        &serde_json::to_string_pretty(&Value::Object(tokens))?,
    )?;
    Ok(Some(path))
}
