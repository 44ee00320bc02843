//! What the batch engine (`crate::batch`) reads of the store: batch jobs and their report items,
//! a school's students by placement, a student's open requests; and the writer's receipts, so
//! that a batch keeps commands in flight while it decides the next students.

use serde::de::DeserializeOwned;
use std::ops::Bound::{Excluded, Included};

use super::tables::*;
use super::{Receipt, Snapshot, Store, StoreError, decode_at};
use crate::domain::Student;

impl Store {
    /// Queues a command decided on `snapshot` without waiting for its commit: the writer packs
    /// it with whatever else is queued; [`Receipt::wait`] returns its answer.
    pub fn queue_in(
        &self,
        snapshot: &Snapshot<'_>,
        command: super::Command,
    ) -> Result<Receipt, StoreError> {
        self.send(command, Some(snapshot))
    }

    /// A batch job's record.
    pub fn batch<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(BATCHES)?;
        let v = t.get(id)?;
        v.map(|g| decode_at(BATCHES, id, g.as_slice())).transpose()
    }

    /// Every batch job's record, by id.
    pub fn batches<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(BATCHES)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push(decode_at(BATCHES, k.as_str(), v.as_slice())?);
        }
        Ok(out)
    }

    /// A batch's report items from place `from` on, at most `limit`, in place order.
    pub fn batch_items<T: DeserializeOwned>(
        &self,
        batch: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        let txn = self.backend.begin_read()?;
        let t = txn.open_table(BATCH_ITEMS)?;
        let start = batch_item_key(batch, from);
        let (_, end) = prefix_range(&[batch]);
        let mut out = Vec::new();
        for item in t.range(Included(start.as_str()), Excluded(end.as_str()))? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let place = k
                .rsplit(SEP)
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| super::damaged(BATCH_ITEMS, k.as_str()))?;
            out.push((place, decode_at(BATCH_ITEMS, k.as_str(), v.as_slice())?));
        }
        Ok(out)
    }
}

impl Snapshot<'_> {
    /// The ids of a school's students as the class index lists them (grade, class, id order),
    /// optionally one grade and one class.
    pub fn student_ids_of_school(
        &self,
        jurisdiction: &str,
        school: &str,
        grade: Option<u8>,
        class: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let t = self.txn.open_table(IDX_CLASS)?;
        let g = grade.map(grade_part);
        let mut prefix = vec![jurisdiction, school];
        if let Some(g) = &g {
            prefix.push(g);
            if let Some(c) = class {
                prefix.push(c);
            }
        }
        let (start, end) = prefix_range(&prefix);
        let mut out = Vec::new();
        for item in t.range(Included(start.as_str()), Excluded(end.as_str()))? {
            let (k, _) = item?;
            let parts: Vec<&str> = k.as_str().split(SEP).collect();
            // jur␟school␟grade␟class␟student
            if let [_, _, _, c, id] = parts.as_slice()
                && class.is_none_or(|want| want == *c)
            {
                out.push((*id).to_owned());
            }
        }
        Ok(out)
    }

    /// The kinds of the student's pending requests, with their ids.
    pub fn open_requests_of(&self, student: &Student) -> Result<Vec<(String, String)>, StoreError> {
        let t = self.txn.open_table(IDX_OPEN_REQUEST)?;
        let (start, end) = prefix_range(&[&student.id]);
        let mut out = Vec::new();
        for item in t.range(Included(start.as_str()), Excluded(end.as_str()))? {
            let (k, v) = item?;
            let kind = k.as_str().rsplit(SEP).next().unwrap_or_default().to_owned();
            out.push((kind, String::from_utf8_lossy(v.as_slice()).into_owned()));
        }
        Ok(out)
    }
}
