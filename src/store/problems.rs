//! Reading problem records (问题学籍). They are few beside students (a handful per school at a
//! time), so a list reads the table through and the caller filters by scope.

use std::ops::Bound::{Excluded, Unbounded};

use super::tables::{IDX_OPEN_PROBLEM, PROBLEMS};
use super::{Store, StoreError, decode_at};
use crate::domain::problem::Problem;

impl Store {
    pub fn problem(&self, id: &str) -> Result<Option<Problem>, StoreError> {
        self.get(PROBLEMS, id)
    }

    /// The open problem with this key, if any.
    pub fn open_problem(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.get_str(IDX_OPEN_PROBLEM, key)
    }

    /// Problems by id after `after` (exclusive) that `keep` lets through, at most `limit`.
    /// A record that does not decode is left out: that record alone is unavailable, and
    /// `verify` names it (`damaged`).
    pub fn problems(
        &self,
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&Problem) -> bool,
    ) -> Result<Vec<(String, Problem)>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(PROBLEMS)?;
        let mut out = Vec::new();
        let range = match after {
            Some(a) => t.range(Excluded(a), Unbounded)?,
            None => t.iter()?,
        };
        for item in range {
            let (k, v) = item?;
            let id = k.as_str();
            let Ok(p) = decode_at::<Problem>(PROBLEMS, id, v.as_slice()) else {
                continue;
            };
            if keep(&p) {
                out.push((id.to_owned(), p));
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
