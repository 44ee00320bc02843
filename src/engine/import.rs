//! Bulk import of students from CSV or XLSX.
//!
//! Each row is validated exactly like a single `POST /v1/students`: the same form
//! ([`NewStudentForm`]) goes through [`Xueji::prepare_admission`], the first half of
//! [`Xueji::admit`] (school, fields, identity against the store, the policy in force), which
//! also builds what storing the row writes. On top of that, rows naming the same person as an
//! earlier row of the file are refused (`duplicate_in_file`). Only then are rows stored:
//! with `partial = false` nothing is stored unless every row is valid; with `partial = true`
//! the valid rows are stored and the others reported.
//!
//! Rows are validated on as many threads as there are cores (the duplicate check runs after, in
//! row order). The prepared admissions are then stored as decided, by one stream
//! ([`Xueji::store_admissions`]), which the writer packs into full batches. Several files are
//! one job ([`import_files`]): the next file is checked while the previous one is stored.
//! Imports are serialised with each other; a single create racing an import for the same person
//! can still make a validated row fail when stored (it is then reported with its error).

use serde::Serialize;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::student::NewStudentForm;
use crate::domain::{Actor, Date, FieldError, Guardian, NewStudent, School};
use crate::engine::{
    ADMIT_NEEDS_APPROVAL, Admission, AdmissionPlan, Outcome, Result, ServiceError, Xueji,
};
use crate::exchange::table::{self, Column, Table};
use crate::exchange::{FileFormat, invalid};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `None`: guessed from the bytes (an XLSX file is a ZIP archive).
    pub format: Option<FileFormat>,
    /// Store the valid rows even if others fail.
    pub partial: bool,
    /// Validate only; store nothing.
    pub dry_run: bool,
    /// The school of rows whose school column is missing or empty.
    pub school: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Every row valid (and, unless `dry_run`, stored).
    pub ok: bool,
    pub dry_run: bool,
    pub partial: bool,
    pub total: usize,
    /// Rows that passed validation.
    pub valid: usize,
    pub stored: usize,
    pub failed: usize,
    pub rows: Vec<RowReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowReport {
    /// The row number as a spreadsheet shows it (the header is row 1).
    pub row: usize,
    /// Valid (and stored, unless nothing was stored).
    pub ok: bool,
    /// The id of the student created from this row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student: Option<String>,
    pub errors: Vec<RowError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub code: String,
    /// The column (field name) at fault, or empty for the row as a whole.
    pub field: String,
    pub message: String,
}

impl RowError {
    fn new(code: &str, field: &str, message: impl Into<String>) -> Self {
        RowError {
            code: code.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One import at a time, so two uploads of the same file cannot both pass validation.
static IMPORTS: Mutex<()> = Mutex::new(());

/// Rows below which validation is not worth another thread.
const ROWS_PER_CHECKER: usize = 256;

/// Imports students from file bytes. `may_use` says whether the caller may create students at a
/// school (a school outside it is reported as unknown, like a single create).
pub fn import(
    x: &Xueji,
    bytes: &[u8],
    opts: &ImportOptions,
    actor: &Actor,
    may_use: &(dyn Fn(&School) -> bool + Sync),
) -> Result<ImportReport> {
    let mut report = None;
    import_files(x, [Ok(bytes)], opts, actor, may_use, |_, r| {
        report = Some(r)
    })?;
    report.unwrap_or_else(|| Err(ServiceError::Storage("import: no report".into())))
}

/// Imports several files as one job, in order, each on its own terms as if uploaded alone (all
/// or nothing unless `partial`), and calls `on_file` with each file's index and report (or why
/// it could not be read: the file's own error, or its table's) in file order. A row naming the same person as a row of an earlier file
/// of the job is refused (`duplicate_in_import`).
///
/// While one file is stored, the next is checked: storing keeps the writer thread busy and
/// checking the others, so a district's files (at most `MAX_ROWS` rows each) go in about the
/// time of the slower of the two rather than their sum. A storage failure stops the job; the
/// files stored before it stay stored.
pub fn import_files<F: AsRef<[u8]>>(
    x: &Xueji,
    files: impl IntoIterator<Item = Result<F>>,
    opts: &ImportOptions,
    actor: &Actor,
    may_use: &(dyn Fn(&School) -> bool + Sync),
    mut on_file: impl FnMut(usize, Result<ImportReport>),
) -> Result<()> {
    let _guard = IMPORTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Who each identity of the files checked so far belongs to: (file, row).
    let mut claimed: HashMap<String, (usize, usize)> = HashMap::new();
    std::thread::scope(|scope| {
        let mut storing: Option<Storing<'_>> = None;
        for (i, file) in files.into_iter().enumerate() {
            let checked = file
                .and_then(|bytes| check_file(x, bytes.as_ref(), i, &claimed, opts, actor, may_use));
            // Files are stored one after the other, in order.
            finish(storing.take(), &mut on_file)?;
            match checked {
                Err(ServiceError::Storage(m)) => return Err(ServiceError::Storage(m)),
                Err(e) => on_file(i, Err(e)),
                Ok(checked) if checked.work.is_empty() => on_file(i, Ok(checked.report)),
                Ok(checked) => {
                    claimed.extend(checked.claims);
                    let CheckedFile { report, work, .. } = checked;
                    storing = Some((i, scope.spawn(move || store_file(x, report, work))));
                }
            }
        }
        finish(storing.take(), &mut on_file)
    })
}

/// The file being stored: its index, and the thread storing it.
type Storing<'scope> = (
    usize,
    std::thread::ScopedJoinHandle<'scope, Result<ImportReport>>,
);

/// Waits for the file being stored, and reports it. Its storage failure stops the job.
fn finish(
    storing: Option<Storing<'_>>,
    on_file: &mut impl FnMut(usize, Result<ImportReport>),
) -> Result<()> {
    if let Some((i, handle)) = storing {
        let stored = handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        if let Err(ServiceError::Storage(m)) = stored {
            return Err(ServiceError::Storage(m));
        }
        on_file(i, stored);
    }
    Ok(())
}

/// A file checked: its report so far, the rows to store (row index, plan), and the identities
/// those rows claim.
struct CheckedFile {
    report: ImportReport,
    work: Vec<(usize, AdmissionPlan)>,
    claims: Vec<(String, (usize, usize))>,
}

/// Reads and checks one file: every row on its own (in parallel), then duplicates inside the
/// file and against the earlier files of the job (in row order, so the first row is the one
/// kept). Nothing to store when the check alone was asked, or a row failed without `partial`.
fn check_file(
    x: &Xueji,
    bytes: &[u8],
    file: usize,
    claimed: &HashMap<String, (usize, usize)>,
    opts: &ImportOptions,
    actor: &Actor,
    may_use: &(dyn Fn(&School) -> bool + Sync),
) -> Result<CheckedFile> {
    let format = opts.format.unwrap_or_else(|| FileFormat::sniff(bytes));
    let table = table::read(bytes, format)?;
    let columns = map_columns(&table, opts.school.is_some())?;
    let checked = check_rows(x, &table, &columns, opts, actor, may_use)?;
    let mut rows: Vec<RowReport> = Vec::with_capacity(table.rows.len());
    let mut plans: Vec<Option<Box<AdmissionPlan>>> = Vec::with_capacity(table.rows.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut row_keys: Vec<Vec<String>> = Vec::with_capacity(table.rows.len());
    for ((line, _), c) in table.rows.iter().zip(checked) {
        let Checked {
            plan,
            mut errors,
            keys,
        } = c;
        let mut own = Vec::with_capacity(keys.len());
        for (key, field, what) in keys {
            if let Some((earlier_file, earlier_row)) = claimed.get(&key) {
                errors.push(RowError::new(
                    "duplicate_in_import",
                    field,
                    format!(
                        "与本次导入第 {} 个文件第 {earlier_row} 行是同一学生({what}相同),不能重复建档",
                        earlier_file + 1
                    ),
                ));
            }
            match seen.get(&key) {
                Some(first) => errors.push(RowError::new(
                    "duplicate_in_file",
                    field,
                    format!("与第 {first} 行是同一学生({what}相同),不能重复建档"),
                )),
                None => {
                    seen.insert(key.clone(), *line);
                    own.push(key);
                }
            }
        }
        let ok = errors.is_empty();
        rows.push(RowReport {
            row: *line,
            ok,
            student: None,
            errors,
        });
        plans.push(plan.filter(|_| ok));
        row_keys.push(own);
    }
    let valid = rows.iter().filter(|r| r.ok).count();
    let report = ImportReport {
        ok: valid == rows.len(),
        dry_run: opts.dry_run,
        partial: opts.partial,
        total: rows.len(),
        valid,
        stored: 0,
        failed: rows.len() - valid,
        rows,
    };
    if opts.dry_run || (!report.ok && !opts.partial) {
        return Ok(CheckedFile {
            report,
            work: Vec::new(),
            claims: Vec::new(),
        });
    }
    let mut claims = Vec::new();
    let mut work: Vec<(usize, AdmissionPlan)> = Vec::with_capacity(valid);
    for (i, (plan, keys)) in plans.into_iter().zip(row_keys).enumerate() {
        if let Some(plan) = plan {
            let line = report.rows[i].row;
            claims.extend(keys.into_iter().map(|k| (k, (file, line))));
            work.push((i, *plan));
        }
    }
    Ok(CheckedFile {
        report,
        work,
        claims,
    })
}

/// Stores the rows of a checked file, as decided when it was checked.
fn store_file(
    x: &Xueji,
    mut report: ImportReport,
    mut work: Vec<(usize, AdmissionPlan)>,
) -> Result<ImportReport> {
    // Student ids grow with time, and the rows were checked on several threads at once: stored
    // in id order, every table keyed by student takes them at its end.
    work.sort_by(|a, b| a.1.student().id.cmp(&b.1.student().id));
    // One stream, in id order: encoding a row costs less than committing it, so this thread
    // keeps the writer's queue full and the writer packs full batches.
    let (rows, plans): (Vec<usize>, Vec<AdmissionPlan>) = work.into_iter().unzip();
    let results = rows.into_iter().zip(x.store_admissions(plans));
    for (i, result) in results {
        let row = &mut report.rows[i];
        match result {
            Ok(Outcome::Applied { student, .. }) => {
                row.student = Some(student.id.clone());
                report.stored += 1;
            }
            Ok(other) => {
                row.ok = false;
                row.errors = outcome_errors(&other);
            }
            Err(ServiceError::Storage(m)) => return Err(ServiceError::Storage(m)),
            Err(e) => {
                row.ok = false;
                row.errors = service_errors(e);
            }
        }
    }
    report.failed = report.rows.iter().filter(|r| !r.ok).count();
    report.valid = report.total - report.failed;
    report.ok = report.failed == 0;
    Ok(report)
}

/// A row checked on its own: everything but duplicates inside the file.
struct Checked {
    /// What storing the row writes, when it passed.
    plan: Option<Box<AdmissionPlan>>,
    errors: Vec<RowError>,
    /// The identities the row claims (none if its school is unknown).
    keys: Vec<(String, &'static str, &'static str)>,
}

/// Checks every row on its own, in parallel over contiguous runs of rows; the results are in row
/// order. A storage failure fails the whole import.
fn check_rows(
    x: &Xueji,
    table: &Table,
    columns: &[Option<Column>],
    opts: &ImportOptions,
    actor: &Actor,
    may_use: &(dyn Fn(&School) -> bool + Sync),
) -> Result<Vec<Checked>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(table.rows.len().div_ceil(ROWS_PER_CHECKER))
        .max(1);
    let chunk = table.rows.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<Checked>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = table
            .rows
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut schools: HashMap<String, Option<School>> = HashMap::new();
                    part.iter()
                        .map(|(_, cells)| {
                            check_row(x, columns, cells, opts, actor, may_use, &mut schools)
                        })
                        .collect::<Result<Vec<Checked>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::with_capacity(table.rows.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// The form of one row, its school, and a dry-run admit.
fn check_row(
    x: &Xueji,
    columns: &[Option<Column>],
    cells: &[String],
    opts: &ImportOptions,
    actor: &Actor,
    may_use: &(dyn Fn(&School) -> bool + Sync),
    schools: &mut HashMap<String, Option<School>>,
) -> Result<Checked> {
    let (form, mut errors) = to_form(columns, cells, opts.school.as_deref());
    let school = match schools.get(&form.school) {
        Some(s) => s.clone(),
        None => {
            let s = x.find_school(&form.school)?.filter(|s| may_use(s));
            schools.insert(form.school.clone(), s.clone());
            s
        }
    };
    let mut keys = Vec::new();
    let mut plan = None;
    match &school {
        None => errors.push(RowError::new(
            "unknown_school",
            "school",
            format!("学校「{}」不存在", form.school),
        )),
        Some(school) => {
            // A cell that could not be read is reported once, by its own error.
            keys = identity_keys(&form, school);
            let (admit_errors, ready) = check_admit(x, form, actor, opts.dry_run)?;
            let more: Vec<RowError> = admit_errors
                .into_iter()
                .filter(|e| !errors.iter().any(|p| p.field == e.field))
                .collect();
            errors.extend(more);
            plan = ready;
        }
    }
    Ok(Checked { plan, errors, keys })
}

/// The column of each header; unknown headers and missing required columns are refused.
fn map_columns(table: &Table, has_default_school: bool) -> Result<Vec<Option<Column>>> {
    let mut columns = Vec::with_capacity(table.headers.len());
    let mut found: HashMap<Column, &str> = HashMap::new();
    for h in &table.headers {
        if h.trim().is_empty() {
            columns.push(None);
            continue;
        }
        let Some(c) = Column::from_header(h) else {
            return Err(invalid(
                "unknown_column",
                h,
                format!(
                    "不认识的列「{h}」;可用的列:{}",
                    IMPORTED
                        .iter()
                        .map(|c| format!("{}({})", c.zh(), c.field()))
                        .collect::<Vec<_>>()
                        .join("、")
                ),
            ));
        };
        if let Some(first) = found.insert(c, h) {
            return Err(invalid(
                "duplicate_column",
                h,
                format!("列「{first}」和「{h}」是同一列"),
            ));
        }
        columns.push(c.imported().then_some(c));
    }
    let mut required = vec![
        Column::Name,
        Column::Gender,
        Column::BirthDate,
        Column::Grade,
        Column::EntryDate,
    ];
    if !has_default_school {
        required.insert(0, Column::School);
    }
    if let Some(missing) = required.iter().find(|c| !found.contains_key(c)) {
        return Err(invalid(
            "missing_column",
            missing.field(),
            format!("缺少必需的列「{}」({})", missing.zh(), missing.field()),
        ));
    }
    Ok(columns)
}

const IMPORTED: [Column; 13] = [
    Column::School,
    Column::Name,
    Column::Gender,
    Column::BirthDate,
    Column::IdCard,
    Column::NationalId,
    Column::Grade,
    Column::Class,
    Column::EntryDate,
    Column::ReportDeadline,
    Column::GuardianName,
    Column::GuardianRelation,
    Column::GuardianPhone,
];

/// The creation form of one row, and the cells that could not be read.
fn to_form(
    columns: &[Option<Column>],
    cells: &[String],
    default_school: Option<&str>,
) -> (NewStudentForm, Vec<RowError>) {
    let mut values: HashMap<Column, String> = HashMap::new();
    for (c, v) in columns.iter().zip(cells) {
        if let Some(c) = c {
            let v = table::unescape(v.trim()).to_owned();
            if !v.is_empty() {
                values.insert(*c, v);
            }
        }
    }
    let get = |c: Column| values.get(&c).cloned();
    let mut errors = Vec::new();
    let gender = match get(Column::Gender).as_deref() {
        Some("男" | "male" | "Male" | "MALE" | "M" | "m") => "male".to_owned(),
        Some("女" | "female" | "Female" | "FEMALE" | "F" | "f") => "female".to_owned(),
        Some(other) => {
            errors.push(RowError::new(
                "invalid_value",
                "gender",
                format!("性别「{other}」应为 男/女(或 male/female)"),
            ));
            "male".to_owned()
        }
        None => String::new(),
    };
    let grade = match get(Column::Grade) {
        None => 0,
        Some(g) => match parse_grade(&g) {
            Some(n) => n,
            None => {
                errors.push(RowError::new(
                    "invalid_value",
                    "grade",
                    format!("年级「{g}」应为数字,如 3"),
                ));
                1
            }
        },
    };
    let date = |c: Column| get(c).map(|s| normalize_date(&s));
    let guardian = [
        Column::GuardianName,
        Column::GuardianRelation,
        Column::GuardianPhone,
    ]
    .iter()
    .any(|c| values.contains_key(c));
    let form = NewStudentForm {
        school: get(Column::School)
            .or_else(|| default_school.map(str::to_owned))
            .unwrap_or_default(),
        name: get(Column::Name).unwrap_or_default(),
        gender,
        birth_date: date(Column::BirthDate).unwrap_or_default(),
        id_card: get(Column::IdCard),
        national_id: get(Column::NationalId),
        grade,
        class: get(Column::Class),
        entry_date: date(Column::EntryDate).unwrap_or_default(),
        report_deadline: date(Column::ReportDeadline),
        guardians: if guardian {
            vec![Guardian {
                name: get(Column::GuardianName).unwrap_or_default(),
                relation: get(Column::GuardianRelation).unwrap_or_default(),
                phone: get(Column::GuardianPhone).unwrap_or_default(),
            }]
        } else {
            Vec::new()
        },
        extra: None,
    };
    (form, errors)
}

/// `3`, `3.0` (a spreadsheet number) or `3年级`.
fn parse_grade(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches("年级").trim();
    s.parse::<i64>().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0 && f.abs() < 100.0)
            .map(|f| f as i64)
    })
}

/// Dates as spreadsheets rewrite them (`2016/5/1`, `2016.5.1`, `2016年5月1日`, `20160501`) become
/// `YYYY-MM-DD`; anything else is passed on unchanged for the form to refuse.
fn normalize_date(s: &str) -> String {
    let t = s.trim();
    let t = t.split([' ', 'T']).next().unwrap_or(t);
    if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
        return format!("{}-{}-{}", &t[..4], &t[4..6], &t[6..]);
    }
    let parts: Vec<&str> = t
        .trim_end_matches('日')
        .split(['-', '/', '.', '年', '月'])
        .collect();
    if let [y, m, d] = parts.as_slice()
        && y.len() == 4
        && let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>())
        && let Some(date) = Date::from_ymd(y, m, d)
    {
        return date.to_string();
    }
    s.to_owned()
}

/// The errors of an admission (none, and its plan, if the row can be stored). A row refused
/// because the person is live at another school opens a `duplicate_enrolment` problem, as a
/// single admission does, unless the import is a dry run.
fn check_admit(
    x: &Xueji,
    form: NewStudentForm,
    actor: &Actor,
    dry_run: bool,
) -> Result<(Vec<RowError>, Option<Box<AdmissionPlan>>)> {
    let school = form.school.clone();
    match x.prepare_admission(form, actor) {
        Ok(Admission::Ready(plan)) => Ok((Vec::new(), Some(plan))),
        Ok(Admission::Refused(decision)) if !decision.allowed => Ok((
            outcome_errors(&Outcome::Denied {
                decision: *decision,
            }),
            None,
        )),
        Ok(Admission::Refused(_)) => Ok((
            vec![RowError::new(
                "admit_needs_approval",
                "",
                ADMIT_NEEDS_APPROVAL,
            )],
            None,
        )),
        Err(ServiceError::Storage(m)) => Err(ServiceError::Storage(m)),
        Err(e) => {
            if !dry_run {
                x.note_duplicate(&e, &school, actor);
            }
            Ok((service_errors(e), None))
        }
    }
}

fn outcome_errors(outcome: &Outcome) -> Vec<RowError> {
    vec![RowError::new(
        "denied_by_policy",
        "",
        outcome.decision().denial_message(),
    )]
}

/// A refused admit as row errors, with the form's field names turned into column names.
fn service_errors(e: ServiceError) -> Vec<RowError> {
    match e {
        ServiceError::Invalid(i) => i.errors.into_iter().map(field_error).collect(),
        ServiceError::Duplicate { field, school, .. } => vec![RowError::new(
            "duplicate_identity",
            match field.as_str() {
                "name_gender_birth_date" => "name",
                f => f,
            },
            format!(
                "重复学籍:该{}在{}有在籍学籍,不能重复建档(请与该校核实,按问题学籍处理)",
                match field.as_str() {
                    "national_id" => "全国学籍号",
                    "id_card" => "身份证号",
                    _ => "学生(姓名、性别、出生日期相同)",
                },
                school
                    .as_ref()
                    .map_or_else(|| "其他学校".to_owned(), |s| format!("「{}」", s.name)),
            ),
        )],
        ServiceError::Conflict { code, message } | ServiceError::Refused { code, message } => {
            vec![RowError::new(code, "", message)]
        }
        ServiceError::Policy(p) => vec![RowError::new(
            p.code(),
            "",
            format!("政策规则执行失败,已拒绝办理:{p}"),
        )],
        ServiceError::NotFound { what, id } => vec![RowError::new(
            "unknown_school",
            "school",
            format!("{what}「{id}」不存在"),
        )],
        ServiceError::InvalidTransition { .. }
        | ServiceError::Storage(_)
        | ServiceError::Damaged { .. }
        | ServiceError::Forbidden { .. } => {
            vec![RowError::new("internal", "", e.to_string())]
        }
    }
}

fn field_error(e: FieldError) -> RowError {
    let field = match e.field.as_str() {
        f if f.starts_with("guardians[") && f.ends_with(".name") => "guardian_name",
        f if f.starts_with("guardians[") && f.ends_with(".relation") => "guardian_relation",
        f if f.starts_with("guardians[") && f.ends_with(".phone") => "guardian_phone",
        f => f,
    }
    .to_owned();
    RowError {
        code: e.code,
        field,
        message: e.message,
    }
}

/// The identities a row claims, as the store indexes them: the national number, the ID number,
/// and for a student without one, name + gender + birth date.
fn identity_keys(
    form: &NewStudentForm,
    school: &School,
) -> Vec<(String, &'static str, &'static str)> {
    let Ok(new) = NewStudent::parse(form.clone(), school, Date::today()) else {
        return Vec::new();
    };
    let mut keys = vec![(
        format!("n\u{1f}{}", new.national_id.as_str()),
        "national_id",
        "全国学籍号",
    )];
    match &new.id_card {
        Some(id) => keys.push((format!("i\u{1f}{}", id.as_str()), "id_card", "身份证号")),
        None => keys.push((
            format!(
                "p\u{1f}{}\u{1f}{}\u{1f}{}",
                new.name,
                new.gender.as_str(),
                new.birth_date
            ),
            "name",
            "姓名、性别、出生日期",
        )),
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreadsheet_dates_and_grades() {
        assert_eq!(normalize_date("2016/5/1"), "2016-05-01");
        assert_eq!(normalize_date("2016年5月1日"), "2016-05-01");
        assert_eq!(normalize_date("20160501"), "2016-05-01");
        assert_eq!(normalize_date("2016-05-01"), "2016-05-01");
        assert_eq!(normalize_date("2016-02-30"), "2016-02-30");
        assert_eq!(normalize_date("五月"), "五月");
        assert_eq!(parse_grade("3"), Some(3));
        assert_eq!(parse_grade("3.0"), Some(3));
        assert_eq!(parse_grade("3年级"), Some(3));
        assert_eq!(parse_grade("三"), None);
    }
}
