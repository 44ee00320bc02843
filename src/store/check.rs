//! What `verify` checks of the store beyond the histories: the indexes against the records they
//! are derived from, and the records whose bytes do not decode.

use serde::Serialize;

use super::records::read_steps;
use super::tables::*;
use super::writer::{IndexEntries, index_entries};
use super::{Store, StoreError, decode_at};
use crate::auth::TokenRecord;
use crate::domain::replay::IndexMismatch;
use crate::domain::{ApprovalRequest, School, Student};

/// A stored record whose bytes do not decode: served nowhere, named here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedRecord {
    pub table: String,
    /// The record's key (parts joined with `/`); a token's is the SHA-256 of the token.
    pub key: String,
}

fn is_identity(table: Table) -> bool {
    [IDX_NATIONAL, IDX_ID_CARD, IDX_PERSON]
        .iter()
        .any(|t| t.name() == table.name())
}

fn shown(table: Table, k: &str) -> Option<String> {
    (!is_identity(table)).then(|| k.replace(SEP, "/"))
}

/// Whether `e` (a student's entries) holds the key `k` of `table`.
fn expects(e: &IndexEntries, table: Table, k: &str) -> bool {
    match table.name() {
        n if n == IDX_NATIONAL.name() => e.national == k,
        n if n == IDX_ID_CARD.name() => e.id_card.as_deref() == Some(k),
        n if n == IDX_PERSON.name() => e.person.as_deref() == Some(k),
        n if n == IDX_CLASS.name() => e.class == k,
        n if n == IDX_STATUS.name() => e.status == k,
        n if n == IDX_DEADLINE.name() => e.deadlines.iter().any(|d| d == k),
        _ => false,
    }
}

/// A student as the index scan finds them.
enum Found {
    Missing,
    Damaged,
    /// The entries, and whether the enrolment is live.
    Entries(Box<IndexEntries>, bool),
}

impl Store {
    /// The index entries the record `s` implies that are absent, or that name another student.
    pub fn index_mismatches(&self, s: &Student) -> Result<Vec<IndexMismatch>, StoreError> {
        let e = index_entries(s, &self.salt);
        let txn = self.backend.begin_read()?;
        let mut out = Vec::new();
        let mut check = |table: Table, k: &str| -> Result<(), StoreError> {
            let holder = txn
                .open_table(table)?
                .get(k)?
                .map(|g| String::from_utf8_lossy(g.as_slice()).into_owned());
            // Identity entries name their student in the key (schema 9): present is right.
            let code = match holder {
                None => "index_missing",
                Some(_) => return Ok(()),
            };
            out.push(IndexMismatch {
                table: table.name().to_owned(),
                key: shown(table, k),
                student: s.id.clone(),
                code: code.into(),
            });
            Ok(())
        };
        check(IDX_NATIONAL, &e.national)?;
        if let Some(k) = &e.id_card {
            check(IDX_ID_CARD, k)?;
        }
        if let Some(k) = &e.person {
            check(IDX_PERSON, k)?;
        }
        check(IDX_CLASS, &e.class)?;
        check(IDX_STATUS, &e.status)?;
        for d in &e.deadlines {
            check(IDX_DEADLINE, d)?;
        }
        Ok(out)
    }

    /// Entries of the student indexes that no stored record implies: an entry of a student who
    /// does not exist, or one their record does not give (a second status, an old class, an ID
    /// number they no longer hold), and a school membership no step of their timeline gives.
    /// Entries of a student whose record is damaged are left to the damaged record's report.
    pub fn index_extras(&self) -> Result<Vec<IndexMismatch>, StoreError> {
        let txn = self.backend.begin_read()?;
        let locator = txn.open_table(STUDENT_LOCATOR)?;
        let students = txn.open_table(STUDENTS)?;
        let timelines = txn.open_table(TIMELINES)?;
        // Entries of one student often follow each other: the last one read is kept.
        let mut last: Option<(String, std::rc::Rc<Found>)> = None;
        let mut load = |id: &str| -> Result<std::rc::Rc<Found>, StoreError> {
            if let Some((cached, found)) = &last
                && cached == id
            {
                return Ok(found.clone());
            }
            let jur = locator
                .get(id)?
                .map(|g| String::from_utf8_lossy(g.as_slice()).into_owned());
            let found = match jur {
                None => Found::Missing,
                Some(jur) => {
                    let k = key(&[&jur, id]);
                    match students.get(k.as_str())? {
                        None => Found::Missing,
                        Some(g) => match decode_at::<Student>(STUDENTS, &k, g.as_slice()) {
                            Ok(s) => Found::Entries(
                                Box::new(index_entries(&s, &self.salt)),
                                s.status.is_live(),
                            ),
                            Err(_) => Found::Damaged,
                        },
                    }
                }
            };
            let found = std::rc::Rc::new(found);
            last = Some((id.to_owned(), found.clone()));
            Ok(found)
        };
        let mut out = Vec::new();
        // Where each index names its student: the key's part at that place, or its last part
        // (an ID number's key has a separator of its own).
        let tables: [(Table, Option<usize>); 6] = [
            (IDX_STATUS, Some(2)),
            (IDX_CLASS, Some(4)),
            (IDX_DEADLINE, Some(2)),
            (IDX_NATIONAL, None),
            (IDX_ID_CARD, None),
            (IDX_PERSON, None),
        ];
        for (table, part) in tables {
            // The identity value of the last live enrolment seen: a second live one under the
            // same value breaks 一人一号 (keys sort by value, so they follow each other).
            let mut live_under: Option<String> = None;
            for item in txn.open_table(table)?.iter()? {
                let (k, _) = item?;
                let k = k.as_str();
                let student = match part {
                    Some(i) => k.split(SEP).nth(i).unwrap_or_default().to_owned(),
                    None => k.rsplit(SEP).next().unwrap_or_default().to_owned(),
                };
                let found = load(&student)?;
                let extra = match &*found {
                    Found::Damaged => false,
                    Found::Missing => true,
                    Found::Entries(e, _) => !expects(e, table, k),
                };
                if part.is_none()
                    && let Found::Entries(_, true) = &*found
                {
                    let value = k.rsplit_once(SEP).map_or(k, |(v, _)| v);
                    if live_under.as_deref() == Some(value) {
                        out.push(IndexMismatch {
                            table: table.name().to_owned(),
                            key: None,
                            student: student.clone(),
                            code: "duplicate_live".into(),
                        });
                    }
                    live_under = Some(value.to_owned());
                }
                if extra {
                    out.push(IndexMismatch {
                        table: table.name().to_owned(),
                        key: shown(table, k),
                        student,
                        code: "index_extra".into(),
                    });
                }
            }
        }
        for item in txn.open_table(IDX_SCHOOL_MEMBERS)?.iter()? {
            let (k, _) = item?;
            let k = k.as_str();
            let mut parts = k.split(SEP);
            let (jur, school, student) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            // A student transferred to another jurisdiction keeps their memberships of its
            // schools; their steps moved with them.
            let home = match locator.get(student)? {
                Some(g) => String::from_utf8_lossy(g.as_slice()).into_owned(),
                None => jur.to_owned(),
            };
            let placed = match read_steps(&*timelines, &home, student) {
                Ok(steps) => steps.iter().any(|(s, _)| s.facts.school == school),
                // A damaged step is its student's report.
                Err(StoreError::Damaged { .. }) => true,
                Err(e) => return Err(e),
            };
            if !placed {
                out.push(IndexMismatch {
                    table: IDX_SCHOOL_MEMBERS.name().to_owned(),
                    key: Some(k.replace(SEP, "/")),
                    student: student.to_owned(),
                    code: "index_extra".into(),
                });
            }
        }
        Ok(out)
    }

    /// The records of schools, requests and tokens whose bytes do not decode (students and
    /// their histories are read, and reported, student by student).
    pub fn damaged_records(&self) -> Result<Vec<DamagedRecord>, StoreError> {
        fn scan<T: serde::de::DeserializeOwned>(
            txn: &dyn super::kv::ReadTxn,
            table: Table,
            out: &mut Vec<DamagedRecord>,
        ) -> Result<(), StoreError> {
            for item in txn.open_table(table)?.iter()? {
                let (k, v) = item?;
                if let Err(StoreError::Damaged { table, key }) =
                    decode_at::<T>(table, k.as_str(), v.as_slice())
                {
                    out.push(DamagedRecord { table, key });
                }
            }
            Ok(())
        }
        let txn = self.backend.begin_read()?;
        let mut out = Vec::new();
        scan::<School>(&*txn, SCHOOLS, &mut out)?;
        scan::<ApprovalRequest>(&*txn, REQUESTS, &mut out)?;
        scan::<TokenRecord>(&*txn, TOKENS, &mut out)?;
        scan::<crate::domain::problem::Problem>(&*txn, PROBLEMS, &mut out)?;
        Ok(out)
    }
}
