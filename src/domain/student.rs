//! Students, their creation form, deadlines and transition inputs.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::dates::Date;
use super::document::Document;
use super::error::{FieldError, InvalidInput, Validator};
use super::identity::{CitizenId, Gender, NationalNumber};
use super::school::{Level, School};
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
    /// The jurisdictions this enrolment was transferred out of, oldest first: its earlier
    /// history is in their logs, and its statistics count at the schools of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub former_jurisdictions: Vec<String>,
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

// ---- One validator per kind of student field ----------------------------------------------
//
// Every path that writes a student field (a creation, an import row, an information change,
// a transition's params) calls these, so the same value gets the same answer, with the same
// code, whichever way it comes in. `field` is the path reported back, e.g. `guardians[2].phone`
// or `params.fields.guardians[2].phone`.

/// Longest class name (班级).
pub const MAX_CLASS_CHARS: usize = 20;
/// Longest guardian relation (关系), e.g. 母亲.
pub const MAX_RELATION_CHARS: usize = 20;
/// Largest `extra` object, as compact JSON.
pub const MAX_EXTRA_BYTES: usize = 16 * 1024;

/// The same error, its message saying which field it is about (`姓名不能为空`), for a registrar
/// who reads the message rather than the path.
fn labelled<T>(r: Result<T, FieldError>, label: &str) -> Result<T, FieldError> {
    r.map_err(|mut e| {
        e.message = format!("{label}{}", e.message);
        e
    })
}

/// A student's or guardian's name.
pub fn check_name(value: &str, field: &str) -> Result<(), FieldError> {
    labelled(check_text(value, field, MAX_NAME_CHARS), "姓名")
}

pub fn parse_gender(value: &str, field: &str) -> Result<Gender, FieldError> {
    match value {
        "male" => Ok(Gender::Male),
        "female" => Ok(Gender::Female),
        other => Err(FieldError::new(
            "invalid_value",
            field,
            format!("性别「{}」应为 male 或 female", shown(other)),
        )),
    }
}

/// A birth date: a real date, not after today.
pub fn parse_birth_date(raw: &str, field: &str, today: Date) -> Result<Date, FieldError> {
    let d = Date::parse_field(raw, field)?;
    if d > today {
        return Err(FieldError::new("invalid_date", field, "出生日期晚于今天"));
    }
    Ok(d)
}

pub fn parse_id_card(raw: &str, field: &str, today: Date) -> Result<CitizenId, FieldError> {
    CitizenId::parse_on(raw, today).map_err(|e| e.into_field_error(field, "id_card", "身份证号"))
}

pub fn parse_national_id(
    raw: &str,
    field: &str,
    today: Date,
) -> Result<NationalNumber, FieldError> {
    NationalNumber::parse_on(raw, today)
        .map_err(|e| e.into_field_error(field, "national_id", "全国学籍号"))
}

/// A grade of a school of this level: 1 to the level's last grade.
pub fn parse_grade(value: i64, level: Level, field: &str) -> Result<u8, FieldError> {
    let max = level.max_grade();
    match u8::try_from(value) {
        Ok(g) if (1..=max).contains(&g) => Ok(g),
        _ => Err(FieldError::new(
            "invalid_value",
            field,
            format!("年级应在 1 到 {max} 之间"),
        )),
    }
}

pub fn check_class(value: &str, field: &str) -> Result<(), FieldError> {
    labelled(check_text(value, field, MAX_CLASS_CHARS), "班级")
}

/// A phone number: 5 to 20 of digits, `-`, `+` and spaces.
pub fn check_phone(value: &str, field: &str) -> Result<(), FieldError> {
    let ok = (5..=20).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == ' ');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "invalid_phone",
            field,
            "电话号码格式不正确:应为 5 到 20 位数字、-、+ 或空格",
        ))
    }
}

/// The guardian list: at most [`MAX_GUARDIANS`], each with a name, a relation and a phone.
pub fn check_guardians(guardians: &[Guardian], field: &str, v: &mut Validator) {
    if guardians.len() > MAX_GUARDIANS {
        v.push(FieldError::new(
            "too_many",
            field,
            format!("监护人不能超过 {MAX_GUARDIANS} 位"),
        ));
    }
    // The first ones are enough to show what is wrong; a list of thousands is refused above.
    for (i, g) in guardians.iter().enumerate().take(MAX_GUARDIANS) {
        let label = format!("第 {} 位监护人的", i + 1);
        v.check(labelled(
            check_name(&g.name, &format!("{field}[{i}].name")),
            &label,
        ));
        v.check(labelled(
            check_text(
                &g.relation,
                &format!("{field}[{i}].relation"),
                MAX_RELATION_CHARS,
            ),
            &format!("{label}关系"),
        ));
        v.check(labelled(
            check_phone(&g.phone, &format!("{field}[{i}].phone")),
            &label,
        ));
    }
}

/// Free fields (health, family, ...): any JSON object up to [`MAX_EXTRA_BYTES`].
pub fn check_extra(extra: &Map<String, Value>, field: &str) -> Result<(), FieldError> {
    let size = serde_json::to_vec(extra).map_or(usize::MAX, |b| b.len());
    if size > MAX_EXTRA_BYTES {
        return Err(FieldError::new(
            "too_long",
            field,
            format!("附加信息不能超过 {} KiB", MAX_EXTRA_BYTES / 1024),
        ));
    }
    Ok(())
}

/// At most 20 characters of an input, to quote in a message without echoing a whole attack.
fn shown(value: &str) -> String {
    let cut: String = value
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .take(20)
        .collect();
    if value.chars().count() > 20 {
        format!("{cut}…")
    } else {
        cut
    }
}

/// How an information change may write a field of the student.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoField {
    /// 关键信息: only `change_key_info`.
    Key,
    /// 非关键信息: `correct_info`.
    Correctable,
    /// Placement and record-keeping fields: only the transition that governs them writes them,
    /// with its own policy rules and approvals. The message says which one to file.
    Governed(&'static str),
}

impl InfoField {
    /// `None` for a name that is no field of a student.
    pub fn of(name: &str) -> Option<InfoField> {
        use InfoField::*;
        Some(match name {
            "name" | "gender" | "birth_date" | "id_card" => Key,
            "guardians" | "extra" => Correctable,
            "class" => Governed("班级不能通过信息更正修改:调班请办理 change_class(调班)"),
            "grade" => {
                Governed("年级不能通过信息更正修改:请办理 promote(升级)或 repeat_grade(留级)")
            }
            "school" | "jurisdiction" | "level" => Governed(
                "学校不能通过信息更正修改:转学请办理 transfer(转学),转出系统外请办理 transfer_out",
            ),
            "status" => Governed(
                "学籍状态不能通过信息更正修改:请办理相应的学籍异动(如 suspend 休学、resume 复学)",
            ),
            "entry_date" => Governed(
                "入学日期在录取建档(admit)时确定,不能更正;录入有误请办理 cancel_admission(取消入学资格)后重新建档",
            ),
            "national_id" => Governed(
                "全国学籍号不能更正;身份证号有误或临时学籍号(L)升级请办理 change_key_info(关键信息变更)",
            ),
            "terms" => Governed("学期注册记录不能更正:请办理 semester_register(学期注册)"),
            "deadlines" => Governed("期限由政策在办理学籍异动时确定,不能更正"),
            "id" | "version" | "head" | "flags" => Governed("此字段由系统维护,不能更正"),
            _ => return None,
        })
    }
}

/// Checks the `fields` of a `change_key_info` / `correct_info` with the validators a creation
/// uses, each error under `params.fields.<name>`. Whether a new ID number is free is the
/// store's question, asked by the service after this.
pub fn check_info_fields(
    kind: TransitionKind,
    fields: &Map<String, Value>,
    today: Date,
) -> Result<(), InvalidInput> {
    let mut v = Validator::default();
    if fields.is_empty() {
        v.push(FieldError::new(
            "required",
            "params.fields",
            "请填写要变更的字段",
        ));
    }
    for (k, value) in fields {
        let field = format!("params.fields.{k}");
        // 一人一号: the one change a national number takes is a temporary `L` number's upgrade
        // to the formal `G` (or `J`) number; whether the student holds an `L` number is the
        // service's question.
        if k == "national_id" && kind == TransitionKind::ChangeKeyInfo {
            match value.as_str().map(|s| parse_national_id(s, &field, today)) {
                Some(Ok(n)) if !n.is_temporary() => {}
                Some(Ok(_)) => v.push(FieldError::new(
                    "invalid_value",
                    &field,
                    "临时学籍号只能升级为正式学籍号(G 或 J 开头)",
                )),
                Some(Err(e)) => v.push(e),
                None => v.push(FieldError::new("invalid_value", &field, "应为文字")),
            }
            continue;
        }
        let is_key = match InfoField::of(k) {
            None => {
                v.push(FieldError::new(
                    "unknown_field",
                    &field,
                    format!("学生没有字段「{}」", shown(k)),
                ));
                continue;
            }
            Some(InfoField::Governed(why)) => {
                v.push(FieldError::new("field_not_correctable", &field, why));
                continue;
            }
            Some(InfoField::Key) => true,
            Some(InfoField::Correctable) => false,
        };
        if is_key != (kind == TransitionKind::ChangeKeyInfo) {
            v.push(FieldError::new(
                "wrong_change_kind",
                &field,
                if is_key {
                    "姓名、性别、出生日期、身份证号属关键信息,须走关键信息变更(change_key_info)"
                } else {
                    "非关键信息请走信息更正(correct_info)"
                },
            ));
            continue;
        }
        let text = || {
            value
                .as_str()
                .ok_or_else(|| FieldError::new("invalid_value", &field, "应为文字"))
        };
        match k.as_str() {
            "name" => {
                v.check(text().and_then(|s| check_name(s, &field)));
            }
            "gender" => {
                v.check(text().and_then(|s| parse_gender(s, &field)));
            }
            "birth_date" => {
                v.check(text().and_then(|s| parse_birth_date(s, &field, today)));
            }
            "id_card" => {
                v.check(text().and_then(|s| parse_id_card(s, &field, today)));
            }
            "guardians" => {
                let n = value.as_array().map_or(0, Vec::len);
                if n > MAX_GUARDIANS {
                    // Said before decoding, so a list of thousands is not decoded to be refused.
                    v.push(FieldError::new(
                        "too_many",
                        &field,
                        format!("监护人不能超过 {MAX_GUARDIANS} 位"),
                    ));
                    continue;
                }
                match serde_json::from_value::<Vec<Guardian>>(value.clone()) {
                    Ok(g) => check_guardians(&g, &field, &mut v),
                    Err(_) => v.push(FieldError::new(
                        "invalid_value",
                        &field,
                        "监护人应为列表,每位含 name、relation、phone 三项文字",
                    )),
                }
            }
            "extra" => match value.as_object() {
                Some(m) => {
                    v.check(check_extra(m, &field));
                }
                None => v.push(FieldError::new("invalid_value", &field, "应为对象")),
            },
            _ => {}
        }
    }
    v.finish()
}

impl NewStudent {
    /// Validates every field against the school, reporting all invalid fields at once.
    pub fn parse(
        form: NewStudentForm,
        school: &School,
        today: Date,
    ) -> Result<NewStudent, InvalidInput> {
        let mut v = Validator::default();
        v.check(check_name(&form.name, "name"));
        let gender = v.check(parse_gender(&form.gender, "gender"));
        let birth_date = v.check(parse_birth_date(&form.birth_date, "birth_date", today));
        let id_card = match &form.id_card {
            None => None,
            Some(raw) => v.check(parse_id_card(raw, "id_card", today)),
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
            (Some(raw), _) => v.check(parse_national_id(raw, "national_id", today)),
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
        let grade = v.check(parse_grade(form.grade, school.level, "grade"));
        if let Some(class) = &form.class {
            v.check(check_class(class, "class"));
        }
        let entry_date = v.check(Date::parse_field(&form.entry_date, "entry_date"));
        let report_deadline = match &form.report_deadline {
            None => None,
            Some(raw) => v.check(Date::parse_field(raw, "report_deadline")),
        };
        check_guardians(&form.guardians, "guardians", &mut v);
        let extra = form.extra.unwrap_or_default();
        v.check(check_extra(&extra, "extra"));
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

/// The receiving school's side of a transfer (`POST /v1/transfers`): its registrar cannot see
/// the student yet, and names them by national number and name together, as the national
/// system does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferForm {
    pub national_id: String,
    pub name: String,
    pub to_school: String,
    #[serde(default)]
    pub to_grade: Option<u8>,
    #[serde(default)]
    pub to_class: Option<String>,
    #[serde(default)]
    pub reason: Option<Reason>,
    pub effective_date: Date,
    #[serde(default)]
    pub documents: Vec<Document>,
}

impl TransferForm {
    /// The `transfer` this form files on the student it names.
    pub fn input(&self) -> TransitionInput {
        let mut input = TransitionInput::new(TransitionKind::Transfer, self.effective_date);
        input.reason = self.reason;
        input.documents.clone_from(&self.documents);
        input
            .params
            .insert("to_school".into(), Value::String(self.to_school.clone()));
        if let Some(g) = self.to_grade {
            input.params.insert("to_grade".into(), Value::from(g));
        }
        if let Some(c) = &self.to_class {
            input
                .params
                .insert("to_class".into(), Value::String(c.clone()));
        }
        input
    }
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
                "until" => {
                    match value.as_str().map(Date::parse) {
                        Some(Ok(ends)) if ends <= self.effective_date => {
                            // An end on or before the start records a period that never ran: a
                            // resumption checked against it would be decided on nonsense.
                            v.push(FieldError::new(
                                "until_not_after_effective_date",
                                &field,
                                format!(
                                    "期满日期({ends})须在生效日期({})之后",
                                    self.effective_date
                                ),
                            ));
                            continue;
                        }
                        Some(Ok(_)) => true,
                        _ => false,
                    }
                }
                "discharge_date" => value.as_str().is_some_and(|s| Date::parse(s).is_ok()),
                "grade" | "to_grade" => value.as_u64().is_some_and(|g| (1..=9).contains(&g)),
                "class" | "to_class" => value
                    .as_str()
                    .is_some_and(|s| check_class(s, &field).is_ok()),
                "to_school" | "term" => value
                    .as_str()
                    .is_some_and(|s| check_text(s, &field, 50).is_ok()),
                "tuition_paid" => value.is_boolean(),
                "forms" => value.as_array().is_some_and(|a| {
                    a.iter()
                        .all(|f| matches!(f.as_str(), Some("written" | "electronic")))
                }),
                // Each field's value is checked by `check_info_fields`, with its own path.
                "fields" => value
                    .as_object()
                    .is_some_and(|o| o.keys().all(|k| InfoField::of(k).is_some())),
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
        if let Some(receiving) = &decision.receiving_policy
            && input.kind == TransitionKind::Transfer
            && receiving.jurisdiction != self.jurisdiction
        {
            after.former_jurisdictions.push(self.jurisdiction.clone());
            after.jurisdiction.clone_from(&receiving.jurisdiction);
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

/// Applies validated information changes (key or non-key) to a student. Placement fields are
/// not among them for a new change: `check_info_fields` refuses them, their transitions write
/// them. `class` is still applied because events recorded before that rule set it this way, and
/// `verify` replays them as the engine applied them then.
fn apply_fields(s: &mut Student, fields: &Map<String, Value>) {
    // A temporary number's upgrade first, so that an ID number set in the same change is
    // compared with the number the student will hold (as `verify`'s replay, which restores the
    // national number before it applies the other fields).
    if let Some(Value::String(raw)) = fields.get("national_id")
        && let Ok(n) = NationalNumber::parse(raw)
    {
        s.national_id = n;
    }
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
