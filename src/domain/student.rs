//! Students, their creation form, deadlines and transition inputs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::dates::Date;
use super::document::Document;
use super::error::{FieldError, InvalidInput, Validator};
use super::identity::{CitizenId, Gender, NationalNumber};
use super::school::School;
use super::status::{Reason, Status, TransitionKind};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardian {
    pub name: String,
    pub relation: String,
    pub phone: String,
}

/// A date by which something must happen, and what the deadline sweep attempts when it passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// e.g. `report_by`, `reserved_until`, `resume_by`.
    pub kind: String,
    pub date: Date,
    /// The transition the sweep asks the policy about once the date has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_expiry: Option<TransitionKind>,
}

impl Deadline {
    /// The transition a deadline of this kind leads to when it passes, if the policy names none.
    pub fn default_expiry(kind: &str) -> Option<TransitionKind> {
        match kind {
            "report_by" | "deferred_until" | "reserved_until" => {
                Some(TransitionKind::ForfeitAdmission)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Student {
    pub id: String,
    pub national_id: NationalNumber,
    pub id_card: Option<CitizenId>,
    pub name: String,
    pub gender: Gender,
    pub birth_date: Date,
    pub school: String,
    pub jurisdiction: String,
    pub level: super::school::Level,
    pub grade: u8,
    pub class: Option<String>,
    pub status: Status,
    /// Increases by one with every recorded event; `expected_version` is compared to it.
    pub version: u64,
    pub entry_date: Date,
    #[serde(default)]
    pub deadlines: Vec<Deadline>,
    #[serde(default)]
    pub guardians: Vec<Guardian>,
    /// Terms registered (学期注册), e.g. `2026-fall`.
    #[serde(default)]
    pub terms: Vec<String>,
    /// Review flags, e.g. `national_id_differs_from_id_card` after an ID change.
    #[serde(default)]
    pub flags: Vec<String>,
    #[serde(default)]
    pub extra: Map<String, Value>,
    /// Hash of the newest event in this student's chain (hex).
    pub head: String,
}

/// The body of a student creation, as a portal sends it. Parsed into [`NewStudent`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStudentForm {
    pub school: String,
    pub name: String,
    pub gender: String,
    pub birth_date: String,
    #[serde(default)]
    pub id_card: Option<String>,
    #[serde(default)]
    pub national_id: Option<String>,
    pub grade: i64,
    #[serde(default)]
    pub class: Option<String>,
    pub entry_date: String,
    #[serde(default)]
    pub report_deadline: Option<String>,
    #[serde(default)]
    pub guardians: Vec<Guardian>,
    #[serde(default)]
    pub extra: Option<Map<String, Value>>,
}

/// A validated student creation.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStudent {
    pub school: String,
    pub name: String,
    pub gender: Gender,
    pub birth_date: Date,
    pub id_card: Option<CitizenId>,
    pub national_id: NationalNumber,
    pub grade: u8,
    pub class: Option<String>,
    pub entry_date: Date,
    pub report_deadline: Option<Date>,
    pub guardians: Vec<Guardian>,
    pub extra: Map<String, Value>,
}

pub const MAX_NAME_CHARS: usize = 50;
/// Most guardians one student lists.
pub const MAX_GUARDIANS: usize = 10;

/// Checks a short free-text field: not blank, no control characters, bounded length.
pub fn check_text(value: &str, field: &str, max_chars: usize) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new("required", field, "不能为空"));
    }
    check_optional_text(value, field, max_chars)
}

/// Checks an optional free-text field (a comment, a label, a reference): may be empty, but no
/// control or direction-override characters, bounded length.
pub fn check_optional_text(value: &str, field: &str, max_chars: usize) -> Result<(), FieldError> {
    if value.chars().count() > max_chars {
        return Err(FieldError::new(
            "too_long",
            field,
            format!("不能超过 {max_chars} 个字符"),
        ));
    }
    if value.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(FieldError::new("invalid_character", field, "含有控制字符"));
    }
    Ok(())
}

/// Marks, embeddings, overrides and isolates that reorder how text is displayed: a name with
/// U+202E shows its characters reversed, so it can pass for another name in a list.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

impl NewStudent {
    /// Validates every field against the school, reporting all invalid fields at once.
    pub fn parse(
        form: NewStudentForm,
        school: &School,
        today: Date,
    ) -> Result<NewStudent, InvalidInput> {
        let mut v = Validator::default();
        v.check(check_text(&form.name, "name", MAX_NAME_CHARS));
        let gender = v.check(match form.gender.as_str() {
            "male" => Ok(Gender::Male),
            "female" => Ok(Gender::Female),
            other => Err(FieldError::new(
                "invalid_value",
                "gender",
                format!("性别「{other}」应为 male 或 female"),
            )),
        });
        let birth_date = v.check(
            Date::parse_field(&form.birth_date, "birth_date").and_then(|d| {
                if d > today {
                    Err(FieldError::new(
                        "invalid_date",
                        "birth_date",
                        "出生日期晚于今天",
                    ))
                } else {
                    Ok(d)
                }
            }),
        );
        let id_card = match &form.id_card {
            None => None,
            Some(raw) => v.check(
                CitizenId::parse_on(raw, today)
                    .map_err(|e| e.into_field_error("id_card", "id_card", "身份证号")),
            ),
        };
        if let (Some(id), Some(g)) = (&id_card, gender)
            && id.gender() != g
        {
            v.push(FieldError::new(
                "id_card_gender_mismatch",
                "gender",
                format!(
                    "填写的性别为{},但身份证号第 17 位表示{}",
                    g.zh(),
                    id.gender().zh()
                ),
            ));
        }
        if let (Some(id), Some(b)) = (&id_card, birth_date)
            && id.birth_date() != b
        {
            v.push(FieldError::new(
                "id_card_birth_date_mismatch",
                "birth_date",
                format!("填写的出生日期为 {b},但身份证号中为 {}", id.birth_date()),
            ));
        }
        let national_id = match (&form.national_id, &id_card) {
            (Some(raw), _) => v.check(
                NationalNumber::parse_on(raw, today)
                    .map_err(|e| e.into_field_error("national_id", "national_id", "全国学籍号")),
            ),
            (None, Some(id)) => Some(NationalNumber::from_citizen_id(id)),
            (None, None) => {
                if form.id_card.is_none() {
                    v.push(FieldError::new(
                        "required",
                        "national_id",
                        "没有身份证号的学生须填写全国学籍号(J 或 L 开头)",
                    ));
                }
                None
            }
        };
        let max = school.level.max_grade();
        let grade = v.check(match u8::try_from(form.grade) {
            Ok(g) if (1..=max).contains(&g) => Ok(g),
            _ => Err(FieldError::new(
                "invalid_value",
                "grade",
                format!("年级应在 1 到 {max} 之间"),
            )),
        });
        if let Some(class) = &form.class {
            v.check(check_text(class, "class", 20));
        }
        let entry_date = v.check(Date::parse_field(&form.entry_date, "entry_date"));
        let report_deadline = match &form.report_deadline {
            None => None,
            Some(raw) => v.check(Date::parse_field(raw, "report_deadline")),
        };
        if form.guardians.len() > MAX_GUARDIANS {
            v.push(FieldError::new(
                "too_many",
                "guardians",
                format!("监护人不能超过 {MAX_GUARDIANS} 位"),
            ));
        }
        for (i, g) in form.guardians.iter().enumerate().take(MAX_GUARDIANS) {
            v.check(check_text(
                &g.name,
                &format!("guardians[{i}].name"),
                MAX_NAME_CHARS,
            ));
            v.check(check_text(
                &g.relation,
                &format!("guardians[{i}].relation"),
                20,
            ));
            let phone_ok = (5..=20).contains(&g.phone.len())
                && g.phone
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == ' ');
            if !phone_ok {
                v.push(FieldError::new(
                    "invalid_phone",
                    &format!("guardians[{i}].phone"),
                    "电话号码格式不正确",
                ));
            }
        }
        let extra = form.extra.unwrap_or_default();
        if serde_json::to_vec(&extra)
            .map(|b| b.len())
            .unwrap_or(usize::MAX)
            > 16 * 1024
        {
            v.push(FieldError::new(
                "too_long",
                "extra",
                "附加信息不能超过 16 KiB",
            ));
        }
        v.finish()?;
        // INVARIANT: the validator returned Ok, so every required value above is Some.
        match (gender, birth_date, national_id, grade, entry_date) {
            (Some(gender), Some(birth_date), Some(national_id), Some(grade), Some(entry_date)) => {
                Ok(NewStudent {
                    school: form.school,
                    name: form.name.trim().to_owned(),
                    gender,
                    birth_date,
                    id_card,
                    national_id,
                    grade,
                    class: form.class,
                    entry_date,
                    report_deadline,
                    guardians: form.guardians,
                    extra,
                })
            }
            _ => Err(FieldError::new("invalid_input", "", "输入无效").into()),
        }
    }
}

/// A requested status change, as a registrar files it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionInput {
    pub kind: TransitionKind,
    pub effective_date: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<Document>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
}

impl TransitionInput {
    pub fn new(kind: TransitionKind, effective_date: Date) -> Self {
        TransitionInput {
            kind,
            effective_date,
            reason: None,
            params: Map::new(),
            documents: Vec::new(),
            expected_version: None,
        }
    }

    /// Checks the params against the transition kind: unknown keys and wrong types are refused.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let mut v = Validator::default();
        let allowed = self.kind.allowed_params();
        for (key, value) in &self.params {
            let field = format!("params.{key}");
            if !allowed.contains(&key.as_str()) {
                v.push(FieldError::new(
                    "unknown_param",
                    &field,
                    format!(
                        "{}不接受参数「{key}」;可用参数:{}",
                        self.kind.zh(),
                        allowed.join(", ")
                    ),
                ));
                continue;
            }
            let ok = match key.as_str() {
                "until" | "discharge_date" => {
                    value.as_str().is_some_and(|s| Date::parse(s).is_ok())
                }
                "grade" | "to_grade" => value.as_u64().is_some_and(|g| (1..=9).contains(&g)),
                "class" | "to_class" | "to_school" | "term" => value
                    .as_str()
                    .is_some_and(|s| check_text(s, &field, 50).is_ok()),
                "tuition_paid" => value.is_boolean(),
                "forms" => value.as_array().is_some_and(|a| {
                    a.iter()
                        .all(|f| matches!(f.as_str(), Some("written" | "electronic")))
                }),
                "fields" => value.as_object().is_some_and(|o| {
                    o.keys().all(|k| {
                        matches!(
                            k.as_str(),
                            "name"
                                | "gender"
                                | "birth_date"
                                | "id_card"
                                | "class"
                                | "guardians"
                                | "extra"
                        )
                    })
                }),
                _ => false,
            };
            if !ok {
                v.push(FieldError::new(
                    "invalid_param",
                    &field,
                    format!("参数「{key}」的值不正确"),
                ));
            }
        }
        if self.documents.len() > 32 {
            v.push(FieldError::new(
                "too_many",
                "documents",
                "证明材料不能超过 32 份",
            ));
        }
        for (i, d) in self.documents.iter().enumerate().take(32) {
            if let Some(issuer) = &d.issuer {
                v.check(check_optional_text(
                    issuer,
                    &format!("documents[{i}].issuer"),
                    100,
                ));
            }
            if let Some(reference) = &d.reference {
                v.check(check_optional_text(
                    reference,
                    &format!("documents[{i}].ref"),
                    200,
                ));
            }
        }
        v.finish()
    }

    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.params.get(key).and_then(Value::as_str)
    }
}

impl TransitionInput {
    /// What the transition changes when no rule says otherwise: the status from the state
    /// machine, and the placement its params name (a transfer's school, a promotion's grade).
    pub fn default_changes(&self, student: &Student) -> super::StudentChanges {
        let param_grade = |key: &str| {
            self.params
                .get(key)
                .and_then(Value::as_u64)
                .and_then(|g| u8::try_from(g).ok())
        };
        let param_text = |key: &str| self.param_str(key).map(str::to_owned);
        let mut c = super::StudentChanges {
            status: self.kind.default_target(),
            ..Default::default()
        };
        match self.kind {
            TransitionKind::Promote => {
                c.grade = param_grade("grade").or(Some(student.grade.saturating_add(1)));
                c.class = param_text("class");
            }
            TransitionKind::Resume
            | TransitionKind::ReturnFromDropout
            | TransitionKind::ChangeClass
            | TransitionKind::RepeatGrade
            | TransitionKind::Register => {
                c.grade = param_grade("grade");
                c.class = param_text("class");
            }
            TransitionKind::Transfer => {
                c.school = param_text("to_school");
                c.grade = param_grade("to_grade");
                c.class = param_text("to_class");
            }
            _ => {}
        }
        c
    }
}

/// The fields of a student that hold personal data. History records them only as salted
/// digests of [`Student::personal_value`]: every one of them in the admission's event, and those
/// an information change sets in its event.
pub const PERSONAL_FIELDS: &[&str] = &[
    "name",
    "national_id",
    "id_card",
    "gender",
    "birth_date",
    "guardians",
    "extra",
];

impl Student {
    /// A personal field's value as JSON (what its recorded digest covers); `None` for a field
    /// not in [`PERSONAL_FIELDS`].
    pub fn personal_value(&self, field: &str) -> Option<Value> {
        let v = match field {
            "name" => Value::String(self.name.clone()),
            "national_id" => Value::String(self.national_id.as_str().to_owned()),
            "id_card" => self
                .id_card
                .as_ref()
                .map_or(Value::Null, |c| Value::String(c.as_str().to_owned())),
            "gender" => Value::String(self.gender.as_str().to_owned()),
            "birth_date" => Value::String(self.birth_date.to_string()),
            "guardians" => serde_json::to_value(&self.guardians).unwrap_or(Value::Null),
            "extra" => Value::Object(self.extra.clone()),
            _ => return None,
        };
        Some(v)
    }

    /// The student once a decision on `input` is applied (`creating`: the admission): its
    /// changes, the information fields the input sets, the term registered, the deadlines, the
    /// version. The one definition of what an event does to a record: the engine stores it, and
    /// `verify` replays every recorded event through it. The head is the caller's (the event's
    /// hash).
    pub fn after_decision(
        &self,
        input: &TransitionInput,
        decision: &super::Decision,
        creating: bool,
    ) -> Student {
        let mut after = self.clone();
        let c = &decision.changes;
        if let Some(s) = c.status {
            after.status = s;
        }
        if let Some(g) = c.grade {
            after.grade = g;
        }
        if let Some(class) = &c.class {
            after.class = Some(class.clone());
        }
        if let Some(school) = &c.school {
            after.school.clone_from(school);
        }
        if let Some(fields) = input.params.get("fields").and_then(Value::as_object) {
            apply_fields(&mut after, fields);
        }
        if input.kind == TransitionKind::SemesterRegister
            && let Some(term) = input.param_str("term")
            && !after.terms.iter().any(|t| t == term)
        {
            after.terms.push(term.to_owned());
        }
        if !creating && after.status != self.status {
            after.deadlines.clear();
        }
        for d in &decision.deadlines {
            after.deadlines.retain(|x| x.kind != d.kind);
            after.deadlines.push(Deadline {
                kind: d.kind.clone(),
                date: d.date,
                on_expiry: d.on_expiry.or_else(|| Deadline::default_expiry(&d.kind)),
            });
        }
        after.version = if creating { 1 } else { self.version + 1 };
        after
    }
}

/// Applies validated information changes (key or non-key) to a student.
fn apply_fields(s: &mut Student, fields: &Map<String, Value>) {
    for (k, v) in fields {
        match (k.as_str(), v) {
            ("name", Value::String(n)) => s.name = n.trim().to_owned(),
            ("gender", Value::String(g)) => {
                s.gender = if g == "male" {
                    Gender::Male
                } else {
                    Gender::Female
                }
            }
            ("birth_date", Value::String(d)) => {
                if let Ok(d) = Date::parse(d) {
                    s.birth_date = d;
                }
            }
            ("id_card", Value::String(raw)) => {
                if let Ok(id) = CitizenId::parse(raw) {
                    // The national number is kept as issued; a mismatch is flagged for review.
                    let body = &s.national_id.as_str()[1..];
                    let flag = "national_id_differs_from_id_card".to_owned();
                    if body != id.as_str() && !s.flags.contains(&flag) {
                        s.flags.push(flag);
                    }
                    s.id_card = Some(id);
                }
            }
            ("class", Value::String(c)) => s.class = Some(c.clone()),
            ("guardians", g) => {
                if let Ok(g) = serde_json::from_value(g.clone()) {
                    s.guardians = g;
                }
            }
            ("extra", Value::Object(m)) => s.extra = m.clone(),
            _ => {}
        }
    }
}
