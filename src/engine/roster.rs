//! Rosters of a school: 新生名册 (new), 在校生名册 (current), 毕(结、肄)业生名册 (graduates).
//!
//! - `current`: students whose placement on the roster date (replayed from history) is this
//!   school with status `enrolled` or `suspended`. 在校生 = 在籍在校 + 休学: students who dropped
//!   out keep 学籍 but are not at school; they are counted in the statistics, not listed here.
//! - `new`: students admitted at this school whose admission (entry date) falls in `year`,
//!   whatever became of them; their placement columns are as of the roster date (or of the
//!   admission, if the roster date is earlier).
//! - `graduates`: students who graduated (毕业), completed (结业) or left with a certificate
//!   (肄业) from this school with an effective date in `year`; `left_on` is that date.
//!
//! The roster date is `as_of` if given, else the end of `year` or today, whichever is earlier,
//! else today. `year` defaults to the roster date's year.

use serde::{Deserialize, Serialize};

use crate::auth::Visibility;
use crate::domain::identity::mask;
use crate::domain::{Date, Gender, School, Status, Timeline};
use crate::engine::{Result, ServiceError, Xueji};
use crate::exchange::table::{Cell, Column};
use crate::exchange::{FileFormat, invalid};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Default,
    strum::EnumIter,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RosterKind {
    New,
    #[default]
    Current,
    Graduates,
}

impl RosterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RosterKind::New => "new",
            RosterKind::Current => "current",
            RosterKind::Graduates => "graduates",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            RosterKind::New => "新生名册",
            RosterKind::Current => "在校生名册",
            RosterKind::Graduates => "毕(结、肄)业生名册",
        }
    }
}

impl std::str::FromStr for RosterKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "new" => Ok(RosterKind::New),
            "current" => Ok(RosterKind::Current),
            "graduates" => Ok(RosterKind::Graduates),
            other => Err(format!(
                "unknown roster kind {other:?}: new, current or graduates"
            )),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RosterQuery {
    pub kind: RosterKind,
    pub year: Option<i32>,
    pub as_of: Option<Date>,
    /// Only the students of this grade, as placed on the roster's date.
    pub grade: Option<u8>,
    /// Only the students of this class, as placed on the roster's date (a head teacher's list).
    pub class: Option<String>,
}

impl RosterQuery {
    /// The roster date and year (see the module documentation).
    pub fn resolve(&self, today: Date) -> Result<(Date, i32)> {
        if let Some(y) = self.year
            && !(1900..=2200).contains(&y)
        {
            return Err(invalid(
                "invalid_value",
                "year",
                "年份应在 1900 到 2200 之间",
            ));
        }
        let date = match (self.as_of, self.year) {
            (Some(d), _) => d,
            (None, Some(y)) => Date::from_ymd(y, 12, 31).map_or(today, |end| end.min(today)),
            (None, None) => today,
        };
        Ok((date, self.year.unwrap_or(date.year())))
    }
}

/// One line of a roster. Field names are the column field names ([`Column::field`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RosterRow {
    pub student: String,
    pub national_id: String,
    pub name: String,
    pub gender: Gender,
    pub birth_date: Date,
    pub id_card: Option<String>,
    pub school: String,
    pub grade: u8,
    pub class: Option<String>,
    pub status: Status,
    pub status_zh: &'static str,
    pub entry_date: Date,
    pub guardian_name: Option<String>,
    pub guardian_relation: Option<String>,
    pub guardian_phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_on: Option<Date>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Roster {
    pub school: String,
    pub school_name: String,
    /// The grade and class the roster was narrowed to, if any.
    pub grade: Option<u8>,
    pub class: Option<String>,
    pub kind: RosterKind,
    pub kind_zh: &'static str,
    pub as_of: Date,
    pub year: i32,
    pub rows: Vec<RosterRow>,
}

/// The roster of a school, masked for the caller's visibility.
pub fn roster(x: &Xueji, school: &School, q: &RosterQuery, vis: Visibility) -> Result<Roster> {
    let (as_of, year) = q.resolve(x.today())?;
    let mut rows = Vec::new();
    // One snapshot: the timelines and the students' records agree, and one read transaction
    // (file locks in the served mode) serves the whole roster.
    let snapshot = x.store().snapshot()?;
    for t in snapshot.timelines_of_school(&school.jurisdiction, &school.id)? {
        let Some((facts, left_on)) = select(&t, school, q.kind, as_of, year) else {
            continue;
        };
        if q.grade.is_some_and(|g| facts.grade != g)
            || q.class
                .as_ref()
                .is_some_and(|c| facts.class.as_ref() != Some(c))
        {
            continue;
        }
        let Some(s) = snapshot.student(&t.student)? else {
            continue;
        };
        let guardian = s.guardians.first();
        let mut row = RosterRow {
            student: s.id.clone(),
            national_id: s.national_id.as_str().to_owned(),
            name: s.name.clone(),
            gender: s.gender,
            birth_date: s.birth_date,
            id_card: s.id_card.as_ref().map(|c| c.as_str().to_owned()),
            school: facts.school.clone(),
            grade: facts.grade,
            class: facts.class.clone(),
            status: facts.status,
            status_zh: facts.status.zh(),
            entry_date: s.entry_date,
            guardian_name: guardian.map(|g| g.name.clone()),
            guardian_relation: guardian.map(|g| g.relation.clone()),
            guardian_phone: guardian.map(|g| g.phone.clone()),
            left_on,
        };
        if !vis.identity_numbers {
            row.national_id = s.national_id.masked();
            row.id_card = s.id_card.as_ref().map(|c| c.masked());
        }
        if !vis.guardians {
            row.guardian_name = row.guardian_name.map(|n| mask(&n, 1, 0));
            row.guardian_phone = row.guardian_phone.map(|p| mask(&p, 3, 2));
        }
        rows.push(row);
    }
    rows.sort_by(|a, b| {
        (a.grade, &a.class, &a.national_id, &a.student).cmp(&(
            b.grade,
            &b.class,
            &b.national_id,
            &b.student,
        ))
    });
    Ok(Roster {
        school: school.id.clone(),
        school_name: school.name.clone(),
        grade: q.grade,
        class: q.class.clone(),
        kind: q.kind,
        kind_zh: q.kind.zh(),
        as_of,
        year,
        rows,
    })
}

/// Whether a timeline belongs on the roster, with the placement to show and the leaving date.
fn select(
    t: &Timeline,
    school: &School,
    kind: RosterKind,
    as_of: Date,
    year: i32,
) -> Option<(crate::domain::EventFacts, Option<Date>)> {
    match kind {
        RosterKind::Current => t
            .as_of(as_of)
            .filter(|f| {
                f.school == school.id && matches!(f.status, Status::Enrolled | Status::Suspended)
            })
            .map(|f| (f.clone(), None)),
        RosterKind::New => {
            let adm = t.admission()?;
            if adm.facts.school != school.id || adm.date.year() != year {
                return None;
            }
            let f = t.as_of(as_of.max(adm.date)).unwrap_or(&adm.facts);
            Some((f.clone(), None))
        }
        RosterKind::Graduates => t
            .steps
            .iter()
            .find(|s| {
                matches!(
                    s.facts.status,
                    Status::Graduated | Status::Completed | Status::Attended
                ) && s.facts.school == school.id
                    && s.date.year() == year
            })
            .map(|s| (s.facts.clone(), Some(s.date))),
    }
}

impl Roster {
    /// The columns of this roster, in file order.
    pub fn columns(&self) -> Vec<Column> {
        use Column::*;
        let mut c = vec![
            NationalId,
            Name,
            Gender,
            BirthDate,
            IdCard,
            School,
            Grade,
            Class,
            Status,
            EntryDate,
            GuardianName,
            GuardianRelation,
            GuardianPhone,
        ];
        if self.kind == RosterKind::Graduates {
            c.push(LeftOn);
        }
        c.push(Student);
        c
    }

    fn cells(&self) -> Vec<Vec<Cell>> {
        let cols = self.columns();
        self.rows
            .iter()
            .map(|r| cols.iter().map(|c| cell(r, *c)).collect())
            .collect()
    }

    /// The roster as a file: CSV (UTF-8 with BOM) or XLSX, with Chinese headers.
    pub fn to_file(&self, format: FileFormat) -> Result<Vec<u8>> {
        let headers: Vec<&str> = self.columns().iter().map(|c| c.zh()).collect();
        match format {
            FileFormat::Csv => crate::exchange::table::write_csv(&headers, &self.cells()),
            FileFormat::Xlsx => {
                crate::exchange::table::write_xlsx(self.kind.zh(), &headers, &self.cells())
            }
        }
    }

    /// `沿河县第四完全小学-在校生名册-2026-05-01.csv`, with `-3年级4班` before the extension for a
    /// class's list (graduates and new: the year instead of the date). Characters a file
    /// system refuses in a name are replaced by `_`.
    pub fn file_name(&self, format: FileFormat) -> String {
        let name: String = self
            .school_name
            .chars()
            .map(|c| {
                if c.is_control()
                    || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
                {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let mut placement = String::new();
        if let Some(g) = self.grade {
            placement.push_str(&format!("-{g}年级"));
        }
        if let Some(c) = &self.class {
            placement.push_str(&format!(
                "{}{c}班",
                if self.grade.is_some() { "" } else { "-" }
            ));
        }
        format!(
            "{name}-{}-{}{placement}.{}",
            self.kind.zh(),
            self.period(),
            format.extension()
        )
    }

    /// An ASCII file name for clients that do not read RFC 5987 names (the school's id).
    pub fn ascii_file_name(&self, format: FileFormat) -> String {
        format!(
            "roster-{}-{}-{}.{}",
            self.school,
            self.kind.as_str(),
            self.period(),
            format.extension()
        )
    }

    fn period(&self) -> String {
        match self.kind {
            RosterKind::Current => self.as_of.to_string(),
            _ => self.year.to_string(),
        }
    }
}

fn cell(r: &RosterRow, c: Column) -> Cell {
    let text = |s: &str| Cell::Text(s.to_owned());
    let opt = |s: &Option<String>| Cell::Text(s.clone().unwrap_or_default());
    match c {
        Column::NationalId => text(&r.national_id),
        Column::Name => text(&r.name),
        Column::Gender => text(r.gender.zh()),
        Column::BirthDate => Cell::Text(r.birth_date.to_string()),
        Column::IdCard => opt(&r.id_card),
        Column::School => text(&r.school),
        Column::Grade => Cell::Number(f64::from(r.grade)),
        Column::Class => opt(&r.class),
        Column::Status => text(r.status_zh),
        Column::EntryDate => Cell::Text(r.entry_date.to_string()),
        Column::ReportDeadline => Cell::Text(String::new()),
        Column::GuardianName => opt(&r.guardian_name),
        Column::GuardianRelation => opt(&r.guardian_relation),
        Column::GuardianPhone => opt(&r.guardian_phone),
        Column::LeftOn => Cell::Text(r.left_on.map(|d| d.to_string()).unwrap_or_default()),
        Column::Student => text(&r.student),
    }
}

/// The school of a roster, or 404.
pub fn school(x: &Xueji, id: &str) -> Result<School> {
    x.find_school(id)?.ok_or_else(|| ServiceError::NotFound {
        what: "school",
        id: id.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        Date::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_roster_date() {
        let today = d("2026-05-01");
        let q = |year, as_of| RosterQuery {
            kind: RosterKind::Current,
            year,
            as_of,
            ..RosterQuery::default()
        };
        let r = |q: RosterQuery| q.resolve(today).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r(q(None, None)), (today, 2026));
        assert_eq!(r(q(Some(2025), None)), (d("2025-12-31"), 2025));
        assert_eq!(r(q(Some(2026), None)), (today, 2026));
        assert_eq!(
            r(q(Some(2024), Some(d("2025-03-01")))),
            (d("2025-03-01"), 2024)
        );
        assert!(q(Some(20), None).resolve(today).is_err());
    }
}
