//! Batches: the registrar's year (issue #17). One kind of transition for many students of one
//! school (registration of an intake, promotion, graduation, …), each student through the
//! path of a single transition ([`Xueji::prepare_transition`]: state machine, policy in force,
//! one event or one approval request), with commits grouped by the writer.
//!
//! A real batch is a job: its record (what was asked, the students selected, in order) is
//! stored first, then each student's report item is stored **in the transaction of that
//! student's event or request** (`Command::ForBatch`). So a batch interrupted by a crash knows
//! exactly which students it has done: [`Xueji::resume_batches`] goes on with the others at
//! start, and no student is ever applied twice. A dry run decides every student the same way
//! and stores nothing.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use crate::domain::{
    Actor, ApprovalRequest, ApprovalStep, Date, Decision, Document, Level, Reason, RequestStatus,
    School, Student, TransitionInput, TransitionKind,
};
use crate::domain::{FieldError, InvalidInput};
use crate::engine::{Outcome, PreparedTransition, Result, ServiceError, Xueji};
use crate::store::{Command, Receipt, Snapshot, StoreError};

/// The kinds a batch runs, in the order of the year's end (毕业, 升级, then the intake).
pub const KINDS: [TransitionKind; 7] = [
    TransitionKind::Graduate,
    TransitionKind::Complete,
    TransitionKind::Promote,
    TransitionKind::RepeatGrade,
    TransitionKind::ChangeClass,
    TransitionKind::Register,
    TransitionKind::SemesterRegister,
];

/// Students decided on one snapshot and queued to the writer together. The writer packs what
/// is queued into one commit; the next chunk is decided while this one commits.
const CHUNK: usize = 512;

/// Most students one batch may select (a district's largest school is far below).
pub const MAX_STUDENTS: usize = 200_000;

/// How many times a student refused by the writer (another write to them slipped in between
/// the batch's snapshot and its commit) is decided again on a fresh snapshot.
const RETRIES: usize = 3;

/// What a batch is asked to do (`POST /v1/batches`, `xueji batch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// `register`, `promote`, `graduate`, `complete`, `repeat_grade`, `change_class` or
    /// `semester_register`.
    pub kind: String,
    pub school: String,
    /// Select the students of this grade (and `class`) of the school…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// …or these students of the school.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub students: Option<Vec<String>>,
    pub effective_date: Date,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Shared by every student (as in a single transition of the kind).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<Document>,
    /// `promote`: old class → new class (重新分班); a class not listed keeps its name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub class_map: BTreeMap<String, String>,
    /// The school's last grade, where its system differs from the level's usual one (a 五四学制
    /// junior school: 4); `promote` skips it, `graduate` and `complete` take only it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_grade: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    Applied,
    Pending,
    Denied,
    Skipped,
}

impl ItemOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::Applied => "applied",
            ItemOutcome::Pending => "pending",
            ItemOutcome::Denied => "denied",
            ItemOutcome::Skipped => "skipped",
        }
    }

    pub fn zh(self) -> &'static str {
        match self {
            ItemOutcome::Applied => "已办理",
            ItemOutcome::Pending => "待审批",
            ItemOutcome::Denied => "不予办理",
            ItemOutcome::Skipped => "跳过",
        }
    }
}

/// A rule that decided a student, with its citation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRule {
    pub id: String,
    pub citation: String,
    pub message: String,
}

/// One student's line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    pub student: String,
    pub name: String,
    pub grade: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    pub outcome: ItemOutcome,
    pub rules: Vec<ItemRule>,
    pub missing_documents: Vec<String>,
    /// The approval request opened (`pending`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The sequence number of the event recorded (`applied`, not in a dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<u64>,
    /// Why the student was skipped or denied, in Chinese.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub applied: usize,
    pub pending: usize,
    pub denied: usize,
    pub skipped: usize,
}

impl Counts {
    fn add(&mut self, o: ItemOutcome) {
        match o {
            ItemOutcome::Applied => self.applied += 1,
            ItemOutcome::Pending => self.pending += 1,
            ItemOutcome::Denied => self.denied += 1,
            ItemOutcome::Skipped => self.skipped += 1,
        }
    }

    pub fn of<'a>(items: impl IntoIterator<Item = &'a BatchItem>) -> Counts {
        let mut c = Counts::default();
        for i in items {
            c.add(i.outcome);
        }
        c
    }

    pub fn total(&self) -> usize {
        self.applied + self.pending + self.denied + self.skipped
    }

    /// One line for the registrar.
    pub fn summary_zh(&self, kind: TransitionKind) -> String {
        format!(
            "批量{}:已办理 {} 人,待审批 {} 人,不予办理 {} 人,跳过 {} 人",
            kind.zh(),
            self.applied,
            self.pending,
            self.denied,
            self.skipped
        )
    }
}

/// A batch job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub id: String,
    pub kind: TransitionKind,
    pub school: String,
    pub jurisdiction: String,
    pub spec: BatchSpec,
    /// The students selected when the batch started, in the order they are done; an item's
    /// place is its index here.
    pub students: Vec<String>,
    pub status: BatchStatus,
    pub created_by: Actor,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Set when the batch ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// Why a `failed` batch stopped (its items say which students were done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A dry run's answer: every student's item, nothing stored.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunReport {
    pub kind: TransitionKind,
    pub school: String,
    pub dry_run: bool,
    pub counts: Counts,
    pub items: Vec<BatchItem>,
}

/// What approving a step of a whole batch came to.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApproveCounts {
    /// Approved, the request still waits for a later step.
    pub approved: usize,
    /// Approved, and it was the last step: the transition was applied.
    pub applied: usize,
    /// Approved, but the policy in force now refuses: the request ended `denied`.
    pub denied: usize,
    /// Not approved: the step is not theirs now (another step first, already approved, not
    /// asked), the caller may not approve it, or the request is no longer pending.
    pub skipped: usize,
}

/// Batches running in this process, and the lock under which a new one checks that its
/// students are free.
#[derive(Default)]
pub struct Running {
    start: Mutex<()>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn new_batch_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("bat_{}", hex::encode(b))
}

fn invalid(code: &str, field: &str, message: impl Into<String>) -> ServiceError {
    InvalidInput::from(FieldError::new(code, field, message)).into()
}

/// The kind a spec names, if a batch runs it.
pub fn parse_kind(kind: &str) -> Result<TransitionKind> {
    let wanted = KINDS.iter().copied().find(|k| k.as_str() == kind);
    wanted.ok_or_else(|| {
        invalid(
            "invalid_value",
            "kind",
            format!(
                "批量办理不支持「{kind}」;可用:{}",
                KINDS.map(TransitionKind::as_str).join("、")
            ),
        )
    })
}

/// The last grade of a school: `top_grade` when the batch names it, else the level's usual
/// one under the 六三学制 (primary 6, junior 3), or 五四学制 when the school's kind says so
/// (primary 5, junior 4).
pub fn top_grade(school: &School, named: Option<u8>) -> u8 {
    if let Some(g) = named {
        return g;
    }
    let five_four = school
        .kind
        .as_deref()
        .is_some_and(|k| k.contains("五四") || k.contains("five_four"));
    match school.level {
        Level::Primary if five_four => 5,
        Level::Primary => 6,
        Level::Junior if five_four => 4,
        Level::Junior | Level::Senior | Level::Vocational => 3,
        Level::Undergraduate => 4,
        Level::Special => 9,
    }
}

/// What one student of a batch comes to before anything is stored.
enum Step {
    /// Nothing to store for the student but the item (denied, skipped, or a dry run).
    Item(BatchItem),
    /// Store `command` and the item together.
    Write { command: Command, item: BatchItem },
}

fn item_of(student: &Student, outcome: ItemOutcome) -> BatchItem {
    BatchItem {
        student: student.id.clone(),
        name: student.name.clone(),
        grade: student.grade,
        class: student.class.clone(),
        outcome,
        rules: Vec::new(),
        missing_documents: Vec::new(),
        request: None,
        event: None,
        reason: None,
    }
}

fn with_decision(mut item: BatchItem, d: &Decision) -> BatchItem {
    item.rules = d
        .rules
        .iter()
        .map(|r| ItemRule {
            id: r.id.clone(),
            citation: r.citation.clone(),
            message: r.message.clone(),
        })
        .collect();
    item.missing_documents.clone_from(&d.missing_documents);
    item
}

fn skipped(student: &Student, reason: impl Into<String>) -> BatchItem {
    BatchItem {
        reason: Some(reason.into()),
        ..item_of(student, ItemOutcome::Skipped)
    }
}

/// A refusal of one student, in words for the registrar.
pub fn reason_zh(e: &ServiceError) -> String {
    match e {
        ServiceError::Invalid(i) => i
            .errors
            .iter()
            .map(|f| f.message.clone())
            .collect::<Vec<_>>()
            .join(";"),
        ServiceError::Conflict { message, .. } | ServiceError::Refused { message, .. } => {
            message.clone()
        }
        ServiceError::InvalidTransition { kind, status } => {
            format!("学籍状态为「{}」,不能办理「{}」", status.zh(), kind.zh())
        }
        ServiceError::Duplicate { .. } => "重复学籍:该生的另一学籍仍有效".into(),
        ServiceError::Policy(p) => format!("政策规则执行出错,不予办理({})", p.code()),
        ServiceError::NotFound { .. } => "学生记录不存在".into(),
        ServiceError::Forbidden { .. } => "无权办理".into(),
        ServiceError::Damaged { .. } => "学生记录已损坏,无法读取".into(),
        ServiceError::Storage(_) => "存储故障".into(),
    }
}

/// Whether an error stops the whole batch (the store can no longer be written) rather than
/// one student.
fn stops_batch(e: &ServiceError) -> bool {
    matches!(e, ServiceError::Storage(_))
}

impl BatchRecord {
    /// The transition of `student`, or why the batch leaves them out.
    fn input_for(
        &self,
        student: &Student,
        school: &School,
    ) -> std::result::Result<TransitionInput, String> {
        let spec = &self.spec;
        let top = top_grade(school, spec.top_grade);
        let mut input = TransitionInput::new(self.kind, spec.effective_date);
        input.reason = spec.reason;
        input.params = spec.params.clone();
        input.documents = spec.documents.clone();
        match self.kind {
            TransitionKind::Promote => {
                if student.grade >= top {
                    return Err(format!(
                        "已是本学段最高年级({} 年级),应办理毕业而非升级",
                        student.grade
                    ));
                }
                if !input.params.contains_key("grade") {
                    input
                        .params
                        .insert("grade".into(), Value::from(student.grade + 1));
                }
                if !input.params.contains_key("class")
                    && let Some(old) = &student.class
                {
                    let new = spec.class_map.get(old).unwrap_or(old);
                    input
                        .params
                        .insert("class".into(), Value::from(new.clone()));
                }
            }
            TransitionKind::Graduate | TransitionKind::Complete if student.grade < top => {
                return Err(format!(
                    "未到毕业年级({} 年级,本校最高为 {top} 年级)",
                    student.grade
                ));
            }
            _ => {}
        }
        Ok(input)
    }
}

impl Xueji {
    /// Checks a batch and selects its students: the school in the caller's scope (404), a kind
    /// a batch runs and valid shared params (400), every listed student of that school (404
    /// naming the first that is not), a selection that is not empty (400).
    fn plan_batch(
        &self,
        spec: &BatchSpec,
        in_scope: &dyn Fn(&School) -> bool,
    ) -> Result<(TransitionKind, School, Vec<String>)> {
        let kind = parse_kind(&spec.kind)?;
        let snapshot = self.store().snapshot()?;
        let school = match snapshot.school(&spec.school)? {
            Some(s) if in_scope(&s) => s,
            _ => {
                return Err(ServiceError::NotFound {
                    what: "school",
                    id: spec.school.clone(),
                });
            }
        };
        // The shared part of the input, checked as a single transition's would be.
        let mut probe = TransitionInput::new(kind, spec.effective_date);
        probe.reason = spec.reason;
        probe.params = spec.params.clone();
        probe.documents = spec.documents.clone();
        probe.validate()?;
        if !spec.class_map.is_empty() && kind != TransitionKind::Promote {
            return Err(invalid(
                "conflicting_params",
                "class_map",
                "只有升级(promote)可以指定新班级对照表",
            ));
        }
        if let Some(g) = spec.top_grade
            && !(1..=9).contains(&g)
        {
            return Err(invalid("out_of_range", "top_grade", "最高年级应为 1–9"));
        }
        if let Some(g) = spec.grade
            && !(1..=9).contains(&g)
        {
            return Err(invalid("out_of_range", "grade", "年级应为 1–9"));
        }
        if spec.class.is_some() && spec.grade.is_none() {
            return Err(invalid("required", "grade", "按班级选择时须同时指定年级"));
        }
        let students = match &spec.students {
            Some(list) => {
                if spec.grade.is_some() {
                    return Err(invalid(
                        "conflicting_params",
                        "students",
                        "students 与 grade/class 只能选一种方式",
                    ));
                }
                if list.len() > MAX_STUDENTS {
                    return Err(invalid(
                        "too_many",
                        "students",
                        format!("一个批次最多 {MAX_STUDENTS} 名学生"),
                    ));
                }
                let mut seen = HashSet::new();
                for (i, id) in list.iter().enumerate() {
                    if !seen.insert(id.as_str()) {
                        return Err(invalid(
                            "duplicate_value",
                            &format!("students[{i}]"),
                            format!("学生 {id} 重复列出"),
                        ));
                    }
                    match snapshot.student(id) {
                        Ok(Some(s)) if s.school == school.id => {}
                        Ok(_) | Err(StoreError::Damaged { .. }) => {
                            return Err(ServiceError::NotFound {
                                what: "student",
                                id: id.clone(),
                            });
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                list.clone()
            }
            // The school's students as placed now, leaving out enrolments that have ended
            // (graduates of earlier years, transfers out, …): they stay in the class index.
            None => {
                let mut live = Vec::new();
                for id in snapshot.student_ids_of_school(
                    &school.jurisdiction,
                    &school.id,
                    spec.grade,
                    spec.class.as_deref(),
                )? {
                    if let Some(s) = snapshot.student(&id)?
                        && s.status.is_live()
                    {
                        live.push(id);
                    }
                }
                live
            }
        };
        if students.is_empty() {
            return Err(invalid(
                "empty_selection",
                "students",
                "所选范围内没有学生:请检查学校、年级、班级或学生名单",
            ));
        }
        if students.len() > MAX_STUDENTS {
            return Err(invalid(
                "too_many",
                "students",
                format!("一个批次最多 {MAX_STUDENTS} 名学生,请按年级分批"),
            ));
        }
        Ok((kind, school, students))
    }

    /// One student of a batch, decided on `snapshot`.
    fn batch_step(
        &self,
        snapshot: &Snapshot<'_>,
        school: &School,
        record: &BatchRecord,
        student_id: &str,
    ) -> Result<Step> {
        let student = match snapshot.student(student_id) {
            Ok(Some(s)) => s,
            Ok(None) | Err(StoreError::Damaged { .. }) => {
                let mut item = BatchItem {
                    student: student_id.to_owned(),
                    name: String::new(),
                    grade: 0,
                    class: None,
                    outcome: ItemOutcome::Skipped,
                    rules: Vec::new(),
                    missing_documents: Vec::new(),
                    request: None,
                    event: None,
                    reason: None,
                };
                item.reason = Some("学生记录不存在或无法读取".into());
                return Ok(Step::Item(item));
            }
            Err(e) => return Err(e.into()),
        };
        if student.school != record.school {
            return Ok(Step::Item(skipped(&student, "已不在本校(批次开始后转出)")));
        }
        // 先清理在办业务: a student with business pending is left for it to be closed.
        if let Some((kind, request)) = snapshot.open_requests_of(&student)?.first() {
            let kind = kind
                .parse::<TransitionKind>()
                .map_or_else(|_| kind.clone(), |k| k.zh().to_owned());
            return Ok(Step::Item(skipped(
                &student,
                format!("有待审批的「{kind}」申请 {request},请先办结"),
            )));
        }
        if !record.kind.allowed_from().contains(&student.status) {
            return Ok(Step::Item(skipped(
                &student,
                format!(
                    "学籍状态为「{}」,不能办理「{}」",
                    student.status.zh(),
                    record.kind.zh()
                ),
            )));
        }
        let input = match record.input_for(&student, school) {
            Ok(i) => i,
            Err(reason) => return Ok(Step::Item(skipped(&student, reason))),
        };
        let prepared = self.prepare_transition(
            snapshot,
            &student,
            school,
            &input,
            &record.created_by,
            false,
        );
        match prepared {
            Ok(PreparedTransition::Decided(Outcome::Denied { decision })) => {
                let item = BatchItem {
                    reason: Some(decision.denial_message()),
                    ..with_decision(item_of(&student, ItemOutcome::Denied), &decision)
                };
                Ok(Step::Item(item))
            }
            Ok(PreparedTransition::Decided(other)) => Err(ServiceError::Storage(format!(
                "internal: a batch step came to {other:?}"
            ))),
            Ok(PreparedTransition::Write { command, outcome }) => {
                let item = match &outcome {
                    Outcome::Applied {
                        decision, event, ..
                    } => BatchItem {
                        event: Some(event.seq),
                        ..with_decision(item_of(&student, ItemOutcome::Applied), decision)
                    },
                    Outcome::Pending { decision, request } => BatchItem {
                        request: Some(request.id.clone()),
                        ..with_decision(item_of(&student, ItemOutcome::Pending), decision)
                    },
                    other => {
                        return Err(ServiceError::Storage(format!(
                            "internal: a batch write came to {other:?}"
                        )));
                    }
                };
                Ok(Step::Write { command, item })
            }
            Err(e) if stops_batch(&e) => Err(e),
            Err(e @ ServiceError::Policy(_)) => Ok(Step::Item(BatchItem {
                reason: Some(reason_zh(&e)),
                ..item_of(&student, ItemOutcome::Denied)
            })),
            Err(e) => Ok(Step::Item(skipped(&student, reason_zh(&e)))),
        }
    }

    /// Decides every student of a batch as a real run would, and stores nothing. An applied or
    /// pending item is what the real run records on the same store state (without the event
    /// number or request id it would get).
    pub fn dry_run_batch(
        &self,
        spec: &BatchSpec,
        actor: &Actor,
        in_scope: &dyn Fn(&School) -> bool,
    ) -> Result<DryRunReport> {
        let (kind, school, students) = self.plan_batch(spec, in_scope)?;
        let record = self.new_record(spec, kind, &school, students, actor);
        let snapshot = self.store().snapshot()?;
        let mut items = Vec::with_capacity(record.students.len());
        for id in &record.students {
            let item = match self.batch_step(&snapshot, &school, &record, id)? {
                Step::Item(i) => i,
                Step::Write { item, .. } => BatchItem {
                    request: None,
                    event: None,
                    ..item
                },
            };
            items.push(item);
        }
        Ok(DryRunReport {
            kind,
            school: school.id,
            dry_run: true,
            counts: Counts::of(&items),
            items,
        })
    }

    fn new_record(
        &self,
        spec: &BatchSpec,
        kind: TransitionKind,
        school: &School,
        students: Vec<String>,
        actor: &Actor,
    ) -> BatchRecord {
        BatchRecord {
            id: new_batch_id(),
            kind,
            school: school.id.clone(),
            jurisdiction: school.jurisdiction.clone(),
            spec: spec.clone(),
            students,
            status: BatchStatus::Running,
            created_by: actor.clone(),
            created_at: now_rfc3339(),
            finished_at: None,
            counts: None,
            error: None,
        }
    }

    /// Checks a batch, selects its students and stores it as `running`; run it with
    /// [`Xueji::run_batch`] (or [`Xueji::spawn_batch`]). A student held by another running
    /// batch is a 409 (`batch_students_held`), and nothing is stored.
    pub fn create_batch(
        &self,
        spec: &BatchSpec,
        actor: &Actor,
        in_scope: &dyn Fn(&School) -> bool,
    ) -> Result<BatchRecord> {
        let (kind, school, students) = self.plan_batch(spec, in_scope)?;
        let record = self.new_record(spec, kind, &school, students, actor);
        // One batch at a time checks and claims its students.
        let _claim = self
            .batches
            .start
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let running: Vec<BatchRecord> = self
            .store()
            .batches::<BatchRecord>()?
            .into_iter()
            .filter(|b| b.status == BatchStatus::Running)
            .collect();
        if !running.is_empty() {
            let mine: HashSet<&str> = record.students.iter().map(String::as_str).collect();
            for other in &running {
                if let Some(held) = other.students.iter().find(|s| mine.contains(s.as_str())) {
                    return Err(ServiceError::Conflict {
                        code: "batch_students_held",
                        message: format!(
                            "学生 {held} 正由批次 {} 办理中,请待其结束后再提交",
                            other.id
                        ),
                    });
                }
            }
        }
        self.put_batch(&record, Vec::new())?;
        Ok(record)
    }

    fn put_batch(&self, record: &BatchRecord, items: Vec<(u64, Vec<u8>)>) -> Result<()> {
        self.store().submit(Command::PutBatch {
            batch: record.id.clone(),
            record: Some(serde_json::to_vec(record).map_err(StoreError::from)?),
            items,
        })?;
        Ok(())
    }

    /// A batch's record.
    pub fn batch(&self, id: &str) -> Result<BatchRecord> {
        self.store()
            .batch::<BatchRecord>(id)?
            .ok_or_else(|| ServiceError::NotFound {
                what: "batch",
                id: id.into(),
            })
    }

    /// A page of a batch's items, from place `from` (each with its place).
    pub fn batch_items(&self, id: &str, from: u64, limit: usize) -> Result<Vec<(u64, BatchItem)>> {
        Ok(self.store().batch_items(id, from, limit)?)
    }

    /// A batch's counts: stored when it ended, counted from its items while it runs.
    pub fn batch_counts(&self, record: &BatchRecord) -> Result<Counts> {
        if let Some(c) = record.counts {
            return Ok(c);
        }
        let items = self.batch_items(&record.id, 0, usize::MAX)?;
        Ok(Counts::of(items.iter().map(|(_, i)| i)))
    }

    /// Runs a batch's students not yet done, then marks it `done` (or `failed`, with why: its
    /// items then say exactly which students were done). `progress(done, total)` is called
    /// as students are committed. Runs on the calling thread.
    pub fn run_batch(&self, id: &str, progress: &dyn Fn(usize, usize)) -> Result<BatchRecord> {
        let mut record = self.batch(id)?;
        if record.status != BatchStatus::Running {
            return Ok(record);
        }
        let outcome = self.run_students(&record, progress);
        let items = self.batch_items(id, 0, usize::MAX);
        record.finished_at = Some(now_rfc3339());
        match (outcome, items) {
            (Ok(()), Ok(items)) => {
                record.status = BatchStatus::Done;
                record.counts = Some(Counts::of(items.iter().map(|(_, i)| i)));
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(batch = %record.id, error = %e, "batch failed");
                record.status = BatchStatus::Failed;
                record.error = Some(format!("批次中断:{}", reason_zh(&e)));
            }
        }
        self.put_batch(&record, Vec::new())?;
        tracing::info!(batch = %record.id, kind = record.kind.as_str(), status = ?record.status, "batch ended");
        Ok(record)
    }

    fn run_students(&self, record: &BatchRecord, progress: &dyn Fn(usize, usize)) -> Result<()> {
        let total = record.students.len();
        let done: HashSet<u64> = self
            .store()
            .batch_items::<serde::de::IgnoredAny>(&record.id, 0, usize::MAX)?
            .into_iter()
            .map(|(place, _)| place)
            .collect();
        let mut finished = done.len();
        progress(finished, total);
        let todo: Vec<(u64, &String)> = record
            .students
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u64, s))
            .filter(|(i, _)| !done.contains(i))
            .collect();
        // The receipts of the chunk being committed while the next one is decided.
        let mut in_flight: VecDeque<Vec<(u64, Option<String>, Receipt)>> = VecDeque::new();
        for chunk in todo.chunks(CHUNK) {
            let snapshot = self.store().snapshot()?;
            let school =
                snapshot
                    .school(&record.school)?
                    .ok_or_else(|| ServiceError::NotFound {
                        what: "school",
                        id: record.school.clone(),
                    })?;
            let mut receipts = Vec::with_capacity(chunk.len() + 1);
            let mut plain = Vec::new();
            for (place, id) in chunk {
                match self.batch_step(&snapshot, &school, record, id)? {
                    Step::Item(item) => plain.push((*place, encode(&item)?)),
                    Step::Write { command, item } => {
                        let receipt = self.store().queue_in(
                            &snapshot,
                            Command::ForBatch {
                                inner: Box::new(command),
                                batch: record.id.clone(),
                                index: *place,
                                item: encode(&item)?,
                            },
                        )?;
                        receipts.push((*place, Some((*id).clone()), receipt));
                    }
                }
            }
            if !plain.is_empty() {
                let count = plain.len();
                let receipt = self.store().queue_in(
                    &snapshot,
                    Command::PutBatch {
                        batch: record.id.clone(),
                        record: None,
                        items: plain,
                    },
                )?;
                // A plain receipt stands for `count` students.
                receipts.push((count as u64, None, receipt));
            }
            drop(snapshot);
            if let Some(previous) = in_flight.pop_front() {
                finished += self.settle(record, previous)?;
                progress(finished, total);
            }
            in_flight.push_back(receipts);
        }
        while let Some(previous) = in_flight.pop_front() {
            finished += self.settle(record, previous)?;
            progress(finished, total);
        }
        Ok(())
    }

    /// Waits for a chunk's commits; a student the writer refused (changed since the snapshot)
    /// is decided again alone. Returns how many students the chunk finished.
    fn settle(
        &self,
        record: &BatchRecord,
        receipts: Vec<(u64, Option<String>, Receipt)>,
    ) -> Result<usize> {
        let mut finished = 0;
        for (place, student, receipt) in receipts {
            let answer = receipt.wait();
            match (student, answer) {
                (None, Ok(_)) => finished += place as usize,
                (Some(_), Ok(_)) => finished += 1,
                (_, Err(StoreError::Storage(e))) => return Err(ServiceError::Storage(e)),
                (None, Err(e)) => return Err(e.into()),
                (Some(id), Err(_refused)) => {
                    self.retry_student(record, place, &id)?;
                    finished += 1;
                }
            }
        }
        Ok(finished)
    }

    /// One student again, alone, on a fresh snapshot; after [`RETRIES`] refusals they are
    /// skipped with the last reason.
    fn retry_student(&self, record: &BatchRecord, place: u64, id: &str) -> Result<()> {
        let mut last = String::new();
        for _ in 0..RETRIES {
            let snapshot = self.store().snapshot()?;
            let school =
                snapshot
                    .school(&record.school)?
                    .ok_or_else(|| ServiceError::NotFound {
                        what: "school",
                        id: record.school.clone(),
                    })?;
            let command = match self.batch_step(&snapshot, &school, record, id)? {
                Step::Item(item) => Command::PutBatch {
                    batch: record.id.clone(),
                    record: None,
                    items: vec![(place, encode(&item)?)],
                },
                Step::Write { command, item } => Command::ForBatch {
                    inner: Box::new(command),
                    batch: record.id.clone(),
                    index: place,
                    item: encode(&item)?,
                },
            };
            match self.store().submit_in(snapshot, command) {
                Ok(_) => return Ok(()),
                Err(StoreError::Storage(e)) => return Err(ServiceError::Storage(e)),
                Err(e) => last = reason_zh(&e.into()),
            }
        }
        let item = BatchItem {
            reason: Some(format!("学生记录办理中被其他操作修改,未办理:{last}")),
            ..BatchItem {
                student: id.to_owned(),
                name: String::new(),
                grade: 0,
                class: None,
                outcome: ItemOutcome::Skipped,
                rules: Vec::new(),
                missing_documents: Vec::new(),
                request: None,
                event: None,
                reason: None,
            }
        };
        self.store().submit(Command::PutBatch {
            batch: record.id.clone(),
            record: None,
            items: vec![(place, encode(&item)?)],
        })?;
        Ok(())
    }

    /// The registration batches of the students an import stored (`xueji import --register`,
    /// `POST /v1/students/import?register=true`): one `register` batch per school, created and
    /// not yet run, so that one upload yields an enrolled intake (or, where the policy asks a
    /// review, one request per student for the school to approve at once).
    pub fn register_imported(
        &self,
        students: &[String],
        effective_date: Date,
        actor: &Actor,
    ) -> Result<Vec<BatchRecord>> {
        let mut by_school: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for id in students {
            if let Some(s) = self.store().student(id)? {
                by_school.entry(s.school).or_default().push(s.id);
            }
        }
        let mut out = Vec::new();
        for (school, ids) in by_school {
            let spec = BatchSpec {
                kind: TransitionKind::Register.as_str().into(),
                school,
                grade: None,
                class: None,
                students: Some(ids),
                effective_date,
                reason: None,
                params: Map::new(),
                documents: Vec::new(),
                class_map: BTreeMap::new(),
                top_grade: None,
            };
            out.push(self.create_batch(&spec, actor, &|_| true)?);
        }
        Ok(out)
    }

    /// Runs a batch on a thread of its own.
    pub fn spawn_batch(self: &Arc<Self>, id: String) {
        let x = self.clone();
        let spawned = std::thread::Builder::new()
            .name("xueji-batch".into())
            .spawn(move || {
                if let Err(e) = x.run_batch(&id, &|_, _| {}) {
                    tracing::error!(batch = %id, error = %e, "batch could not run");
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "no thread for a batch");
        }
    }

    /// Batches left `running` by a process that stopped (or was killed) mid-way: each goes on
    /// with the students it had not done, on a thread of its own. Returns their ids.
    pub fn resume_batches(self: &Arc<Self>) -> Result<Vec<String>> {
        let ids: Vec<String> = self
            .store()
            .batches::<BatchRecord>()?
            .into_iter()
            .filter(|b| b.status == BatchStatus::Running)
            .map(|b| b.id)
            .collect();
        for id in &ids {
            tracing::info!(batch = %id, "resuming an interrupted batch");
            self.spawn_batch(id.clone());
        }
        Ok(ids)
    }

    /// Approves `step` of every pending request of the batch that `may_approve` lets the
    /// caller approve, one request at a time through [`Xueji::approve`] (each recorded on its
    /// own); the items of those applied are updated.
    pub fn approve_batch(
        &self,
        id: &str,
        step: ApprovalStep,
        actor: &Actor,
        comment: Option<String>,
        may_approve: &dyn Fn(&ApprovalRequest) -> bool,
    ) -> Result<ApproveCounts> {
        let record = self.batch(id)?;
        let mut counts = ApproveCounts::default();
        let mut changed = Vec::new();
        for (place, mut item) in self.batch_items(&record.id, 0, usize::MAX)? {
            let Some(request_id) = item.request.clone() else {
                continue;
            };
            if item.outcome != ItemOutcome::Pending {
                continue;
            }
            let request = match self.store().request(&request_id)? {
                Some(r) if r.status == RequestStatus::Pending => r,
                _ => {
                    counts.skipped += 1;
                    continue;
                }
            };
            if !may_approve(&request) || request.next_step() != Some(step) {
                counts.skipped += 1;
                continue;
            }
            match self.approve(&request_id, step, actor, comment.clone()) {
                Ok(out) => match out.outcome {
                    "applied" => {
                        counts.applied += 1;
                        item.outcome = ItemOutcome::Applied;
                        item.event = out.event.map(|e| e.seq);
                        changed.push((place, encode(&item)?));
                    }
                    "denied" => {
                        counts.denied += 1;
                        item.outcome = ItemOutcome::Denied;
                        item.reason = out
                            .request
                            .final_decision
                            .as_ref()
                            .map(Decision::denial_message);
                        changed.push((place, encode(&item)?));
                    }
                    _ => counts.approved += 1,
                },
                Err(e) if stops_batch(&e) => return Err(e),
                Err(_) => counts.skipped += 1,
            }
        }
        if !changed.is_empty() {
            // An ended batch's stored counts follow its items, in the same commit.
            let record = record.counts.map(|mut c| {
                c.pending -= counts.applied + counts.denied;
                c.applied += counts.applied;
                c.denied += counts.denied;
                BatchRecord {
                    counts: Some(c),
                    ..record.clone()
                }
            });
            self.store().submit(Command::PutBatch {
                batch: record
                    .as_ref()
                    .map_or_else(|| id.to_owned(), |r| r.id.clone()),
                record: record
                    .as_ref()
                    .map(serde_json::to_vec)
                    .transpose()
                    .map_err(StoreError::from)?,
                items: changed,
            })?;
        }
        Ok(counts)
    }
}

fn encode(item: &BatchItem) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(item).map_err(StoreError::from)?)
}
