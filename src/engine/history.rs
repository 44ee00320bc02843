//! A student's history and its verification: the chain re-hashed and replayed against the
//! record and indexes, every student at once.

use super::*;

impl Xueji {
    pub fn events(&self, student_id: &str) -> Result<Vec<Event>> {
        self.student(student_id)?;
        Ok(self.store.events(student_id)?)
    }

    /// Re-hashes one student's chain against the head recorded in the student record, replays
    /// the events to the record they make and compares every field with the stored record, and
    /// checks the index entries that record implies.
    /// Why an admission on a transfer certificate no longer proves where the record came from:
    /// its recorded proof does not verify with the keys this server knows (its own and those it
    /// trusts). `None` for any other admission, or without keys to check with.
    fn unproven_certificate(&self, admission: Option<&Event>) -> Option<String> {
        let recorded = admission?.input.params.get("certificate")?;
        let ring = self.keys()?;
        match serde_json::from_value::<crate::domain::certificate::CertificateProof>(
            recorded.clone(),
        ) {
            Ok(proof) => ring.verify_proof(&proof).err().map(|r| r.message),
            Err(_) => Some("录取事件记录的转学证明无法读取".into()),
        }
    }

    pub fn verify_student(&self, student_id: &str) -> Result<ChainReport> {
        let h = self
            .store
            .history_of(student_id)?
            .ok_or_else(|| ServiceError::NotFound {
                what: "student",
                id: student_id.into(),
            })?;
        let mut report = verify_chain(&h.events, Some(&h.student.head));
        if !report.ok {
            // Events that do not hold cannot be replayed.
            return Ok(report);
        }
        if let Some(unproven) = self.unproven_certificate(h.events.first()) {
            report.ok = false;
            report.first_bad = Some(BadEvent {
                seq: 1,
                code: "certificate_unproven".into(),
                message: unproven,
            });
            return Ok(report);
        }
        let stored = h.student.clone();
        let last_seq = h.events.last().map_or(0, |e| e.seq);
        // An admission recorded before events named their context cannot be replayed.
        let replayable = h.events.first().is_some_and(|e| e.context.is_some());
        let replay = match Self::admission_context(&h)? {
            Some(context) => Some(replay_record(&context, &h.events, &stored, |v| {
                self.personal_digest(v)
            })),
            None => None,
        };
        let derived = derived_mismatch(student_id, h);
        let replayed = match replay {
            Some(r) => {
                report.record = r.mismatches;
                report.unrecorded = r.unrecorded.iter().map(|f| (*f).to_owned()).collect();
                r.student
            }
            None if !replayable => {
                report.unrecorded = vec!["record".into()];
                stored
            }
            None => {
                report.first_bad = Some(BadEvent {
                    seq: 1,
                    code: "context_mismatch".into(),
                    message: "录取事件的决策上下文缺失或被改动,无法按历史事件重放学生记录".into(),
                });
                stored
            }
        };
        report.indexes = self.store.index_mismatches(&replayed)?;
        if report.first_bad.is_none() && !report.record.is_empty() {
            let fields: Vec<&str> = report.record.iter().map(|m| m.field.as_str()).collect();
            report.first_bad = Some(BadEvent {
                seq: last_seq,
                code: "record_mismatch".into(),
                message: format!(
                    "学生记录的 {} 与按历史事件重放的结果不一致(记录被改动)",
                    fields.join("、")
                ),
            });
        }
        if report.first_bad.is_none() {
            report.first_bad = derived;
        }
        if report.first_bad.is_none() && !report.indexes.is_empty() {
            let tables: Vec<&str> = report.indexes.iter().map(|m| m.table.as_str()).collect();
            report.first_bad = Some(BadEvent {
                seq: last_seq,
                code: "index_mismatch".into(),
                message: format!(
                    "索引 {} 与学生记录不一致(索引由记录派生,查询与名单会出错)",
                    tables.join("、")
                ),
            });
        }
        report.ok = report.first_bad.is_none();
        Ok(report)
    }

    /// The context the admission was decided on, if it is stored unaltered (its hash is in the
    /// admission's event). A context that does not decode is a damaged record.
    fn admission_context(h: &StudentHistory) -> Result<Option<DecisionContext>> {
        let (Some(first), Some((key, bytes))) = (h.events.first(), &h.admission_context) else {
            return Ok(None);
        };
        if first.context.as_deref() != Some(DecisionContext::hash_of(bytes).as_str()) {
            return Ok(None);
        }
        serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|_| ServiceError::Damaged {
                table: "event_records".into(),
                key: key.replace('\u{1f}', "/"),
            })
    }

    /// Re-hashes and replays every student's history, checks the indexes and statistics, and
    /// names every record that does not decode.
    pub fn verify_all(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            ok: true,
            students: 0,
            events: 0,
            failures: Vec::new(),
            stats_failures: Vec::new(),
            index_failures: Vec::new(),
            damaged: Vec::new(),
        };
        for id in self.store.all_student_ids()? {
            let r = match self.verify_student(&id) {
                Ok(r) => r,
                Err(ServiceError::Damaged { table, key }) => {
                    report.damaged.push(DamagedRecord { table, key });
                    continue;
                }
                // Listed by the locator, without a record.
                Err(ServiceError::NotFound { .. }) => {
                    report.index_failures.push(IndexMismatch {
                        table: "student_locator".into(),
                        key: Some(id.clone()),
                        student: id,
                        code: "index_extra".into(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            report.students += 1;
            report.events += r.events;
            if !r.ok {
                report.failures.push((id, r));
            }
        }
        report.index_failures.extend(self.store.index_extras()?);
        report.damaged.extend(self.store.damaged_records()?);
        for (jurisdiction, check) in self.store.tallies_to_check()? {
            report
                .stats_failures
                .extend(tally_mismatches(&jurisdiction, check));
        }
        report.ok = report.failures.is_empty()
            && report.stats_failures.is_empty()
            && report.index_failures.is_empty()
            && report.damaged.is_empty();
        Ok(report)
    }
}
