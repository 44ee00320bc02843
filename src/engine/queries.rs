//! What the adapters (HTTP, console, command line) read, and the few records they keep, through
//! the engine: the store stays behind it. Each is the store's read with its error as a
//! [`ServiceError`]. The `*_for` look-ups decide scope too (`auth::scope`): what a caller may
//! see of one school, student or request, the same answer for every adapter.

use std::path::Path;

use super::audit::{Backup, write_backup};
use super::batch::BatchRecord;
use super::{Result, ServiceError, Xueji};
use crate::auth::{TokenRecord, scope};
use crate::domain::problem::Problem;
use crate::domain::{ApprovalRequest, RequestStatus, School, Status, Student};
use crate::store::idempotency::unix_now;
use crate::store::{Command, CommitStats, StoreError};

impl Xueji {
    /// A school, if it exists.
    pub fn find_school(&self, id: &str) -> Result<Option<School>> {
        Ok(self.store.school(id)?)
    }

    /// A school the caller may see; `None` when it does not exist or is out of their scope (the
    /// two are one answer, so that a caller learns nothing of what it may not see).
    pub fn school_for(&self, caller: &TokenRecord, id: &str) -> Result<Option<School>> {
        Ok(self
            .find_school(id)?
            .filter(|school| scope::school(caller, school)))
    }

    /// A student the caller may see, with their school; `None` as for [`Xueji::school_for`].
    pub fn student_for(&self, caller: &TokenRecord, id: &str) -> Result<Option<(Student, School)>> {
        let Some(student) = self.find_student(id)? else {
            return Ok(None);
        };
        let Some(school) = self.find_school(&student.school)? else {
            return Ok(None);
        };
        Ok(scope::student(caller, &student, &school).then_some((student, school)))
    }

    /// A request the caller may see, with its school and, for a transfer, the receiving school;
    /// `None` as for [`Xueji::school_for`].
    pub fn request_for(
        &self,
        caller: &TokenRecord,
        id: &str,
    ) -> Result<Option<(ApprovalRequest, School, Option<School>)>> {
        let Some(request) = self.find_request(id)? else {
            return Ok(None);
        };
        let Some(school) = self.find_school(&request.school)? else {
            return Ok(None);
        };
        let receiving = match &request.receiving_school {
            Some(id) => self.find_school(id)?,
            None => None,
        };
        Ok(scope::request(caller, &school, receiving.as_ref())
            .then_some((request, school, receiving)))
    }

    /// Every school.
    pub fn schools(&self) -> Result<Vec<School>> {
        Ok(self.store.schools()?)
    }

    /// A page of schools that `keep` accepts, after the cursor `after`.
    pub fn schools_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl FnMut(&School) -> bool,
    ) -> Result<Vec<(String, School)>> {
        Ok(self.store.schools_page(after, limit, keep)?)
    }

    /// A student, if they exist.
    pub fn find_student(&self, id: &str) -> Result<Option<Student>> {
        Ok(self.store.student(id)?)
    }

    /// A page of a school's students (optionally one grade and class), in grade, class, id order.
    pub fn students_of_school(
        &self,
        jurisdiction: &str,
        school: &str,
        grade: Option<u8>,
        class: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Student)>> {
        Ok(self
            .store
            .students_of_school(jurisdiction, school, grade, class, after, limit)?)
    }

    /// A page of a jurisdiction's students with one status.
    pub fn students_with_status(
        &self,
        jurisdiction: &str,
        status: Status,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Student)>> {
        Ok(self
            .store
            .students_with_status(jurisdiction, status, after, limit)?)
    }

    /// A page of a jurisdiction's students.
    pub fn students_of_jurisdiction(
        &self,
        jurisdiction: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Student)>> {
        Ok(self
            .store
            .students_of_jurisdiction(jurisdiction, after, limit)?)
    }

    /// An approval request, if it exists.
    pub fn find_request(&self, id: &str) -> Result<Option<ApprovalRequest>> {
        Ok(self.store.request(id)?)
    }

    /// A page of a jurisdiction's requests with one status.
    pub fn requests_with_status(
        &self,
        jurisdiction: &str,
        status: RequestStatus,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, ApprovalRequest)>> {
        Ok(self
            .store
            .requests_with_status(jurisdiction, status, after, limit)?)
    }

    /// A problem record, if it exists.
    pub fn find_problem(&self, id: &str) -> Result<Option<Problem>> {
        Ok(self.store.problem(id)?)
    }

    /// A page of problem records that `keep` accepts, after the cursor `after`.
    pub fn problems(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: impl FnMut(&Problem) -> bool,
    ) -> Result<Vec<(String, Problem)>> {
        Ok(self.store.problems(after, limit, keep)?)
    }

    /// Every batch job.
    pub fn batches(&self) -> Result<Vec<BatchRecord>> {
        Ok(self.store.batches::<BatchRecord>()?)
    }

    /// Whether any token was ever created (the first one is made by `xueji token create`).
    pub fn has_tokens(&self) -> Result<bool> {
        Ok(self.store.has_tokens()?)
    }

    /// Whether the store still reads: after an I/O error redb refuses every later read and
    /// write on the handle until the file is reopened.
    pub fn probe(&self) -> Result<()> {
        Ok(self.store.probe()?)
    }

    /// The writer's commit counters, for `/metrics`.
    pub fn commit_stats(&self) -> &CommitStats {
        self.store.commit_stats()
    }

    /// The stored answer to a retried write (`http::idempotency`), while it has not expired.
    pub fn stored_answer(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.store.idempotent(digest, unix_now())?)
    }

    /// Stores the answer to a write under its digest, for a day.
    pub fn store_answer(&self, digest: String, answer: Vec<u8>) -> Result<()> {
        self.store.submit(Command::PutIdempotent {
            key: digest,
            value: answer,
            at: unix_now(),
        })?;
        Ok(())
    }

    /// The consistent copy of the store in `out` (`POST /v1/backups`), with its checkpoints.
    /// A file already there is a conflict; any other failure is `Storage`.
    pub fn backup_to(&self, out: &Path) -> Result<Backup> {
        write_backup(&self.store, out).map_err(|e| match e {
            StoreError::AlreadyExists { .. } => ServiceError::from(e),
            other => ServiceError::Storage(other.to_string()),
        })
    }
}
