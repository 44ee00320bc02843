//! The engine: every student-status operation, from load through policy evaluation to one
//! atomic commit. Synchronous by design (policy evaluation and redb are blocking); the HTTP layer
//! calls it from `spawn_blocking`.
//!
//! The path of a transition: load the student and school → check the state machine → evaluate
//! the policy in force on the effective date → deny, open an approval request, or apply: the new
//! student state, its event (hash-chained) and index updates go to the writer as one command,
//! committed with others in one durable transaction.

pub mod audit;
pub mod batch;
mod clocks;
pub mod import;
pub mod lifecycle;
mod problems;
mod queries;
pub mod roster;
pub mod stats;

/// Files 0600 and folders 0700, for everything that holds personal data or secrets.
pub use crate::store::private;
/// What opens a store, for `cli`, tests, benches and embedders: [`Store::open`] (or
/// `open_with_backend` for the metering and fault-injecting backends), [`ReadOnlyStore`] beside a
/// running server for backups. Once open, the store is the engine's alone.
pub use crate::store::{
    COMMIT_BUCKETS_MICROS, CommitStats, CopyReport, Location, ReadOnlyStore, STORE_FILE, Store,
};
pub use clocks::{DEFAULT_APPROVAL_WORKING_DAYS, DEFAULT_REQUEST_EXPIRY_DAYS, clocks_json};
pub use problems::ResolveRequest;

use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use crate::auth::{Role, TokenCache, TokenRecord, generate_token, scope, token_hash};
use crate::domain::event::{
    BadEvent, ChainReport, DecisionContext, GENESIS_HASH, facts, verify_chain,
};
use crate::domain::replay::REDACTED_PREFIX;
use crate::domain::replay::{IndexMismatch, replay_record};
use crate::domain::student::{
    NewStudentForm, PERSONAL_FIELDS as PERSONAL_RECORD_FIELDS, check_info_fields,
    check_optional_text, check_text, parse_grade,
};
use crate::domain::tally::{self, Counter, TallyState};
use crate::domain::{
    Actor, ApprovalRecord, ApprovalRequest, ApprovalStep, CitizenId, Date, Deadline, Decision,
    Event, FieldError, InvalidInput, NewStudent, RequestStatus, School, Status, Student, Timeline,
    TransferForm, TransitionInput, TransitionKind,
};
use crate::policy::{Case, PolicyError, PolicyRegistry, evaluate, evaluate_transfer};
use crate::store::{
    Command, CommandOutput, DamagedRecord, Receipt, Snapshot, StoreError, StudentHistory,
    TallyCheck,
};

mod approvals;
mod certificates;
mod history;
mod sweeps;
mod tokens;

/// Why an operation did not happen. Each variant maps to one HTTP status in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// Another live enrolment of the person holds `field`; `school` is the school that holds
    /// it, when it could be read (what the registrar needs to call them, and nothing else).
    #[error("duplicate identity: {field} is already held by student {student}")]
    Duplicate {
        field: String,
        student: String,
        school: Option<HoldingSchool>,
    },
    #[error("{code}: {message}")]
    Conflict { code: &'static str, message: String },
    #[error("{kind:?} is not possible from status {status:?}")]
    InvalidTransition {
        kind: TransitionKind,
        status: Status,
    },
    #[error("policy failed: {0}")]
    Policy(#[from] PolicyError),
    /// Refused for a reason of its own (422), e.g. a transfer certificate that does not verify.
    #[error("{code}: {message}")]
    Refused { code: &'static str, message: String },
    #[error("storage failed: {0}")]
    Storage(String),
    /// A stored record does not decode: that record alone is unavailable.
    #[error("record damaged: table {table} key {key}")]
    Damaged { table: String, key: String },
    /// The caller's role or scope does not allow it; `what` says what was tried, in Chinese.
    #[error("forbidden: {what}")]
    Forbidden { what: String },
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate { field, student } => ServiceError::Duplicate {
                field,
                student,
                school: None,
            },
            StoreError::VersionConflict { expected, current } => ServiceError::Conflict {
                code: "version_conflict",
                message: format!(
                    "学生记录已被修改:期望版本 {expected},当前版本 {current},请刷新后重试"
                ),
            },
            StoreError::OpenRequestExists { kind, request, .. } => ServiceError::Conflict {
                code: "open_request_exists",
                message: format!("该学生已有待审批的{kind}申请 {request}"),
            },
            StoreError::RequestNotPending(id) => ServiceError::Conflict {
                code: "request_not_pending",
                message: format!("申请 {id} 已办结或已被他人处理"),
            },
            StoreError::AlreadyExists { what, id } => ServiceError::Conflict {
                code: "already_exists",
                message: format!("{what} {id} 已存在"),
            },
            StoreError::NotFound { what, id } => ServiceError::NotFound {
                what: if what == "student" {
                    "student"
                } else {
                    "record"
                },
                id,
            },
            StoreError::Damaged { table, key } => ServiceError::Damaged { table, key },
            other => ServiceError::Storage(other.to_string()),
        }
    }
}

impl From<FieldError> for ServiceError {
    fn from(e: FieldError) -> Self {
        ServiceError::Invalid(e.into())
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// The school holding a person's live enrolment, as a refused admission names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldingSchool {
    pub id: String,
    pub name: String,
}

/// One enrolment of a person, as `previous` and `GET /v1/persons/{national_id}/enrolments` list
/// it: the record, its school's name, and the effective date of its newest event.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub student: Student,
    pub school_name: String,
    pub last_event_date: Option<Date>,
}

/// What a transition (or a student creation) came to.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Applied {
        decision: Decision,
        student: Box<Student>,
        event: Box<Event>,
    },
    Pending {
        decision: Decision,
        request: Box<ApprovalRequest>,
    },
    Denied {
        decision: Decision,
    },
    DryRun {
        decision: Decision,
    },
}

/// One attempt at a transition ([`Xueji::attempt_transition`]).
pub enum Filing {
    /// Nothing to store: denied, or a dry run.
    Decided(Outcome),
    /// Queued to the writer: once it answers, [`Xueji::settle_filing`].
    Queued(Queued),
}

/// A transition queued to the writer: the writer's answer to come, and what follows it.
pub struct Queued {
    pub receipt: Receipt,
    pub then: AfterCommit,
}

/// What a queued transition comes to once the writer answers ([`Xueji::settle_filing`]).
pub struct AfterCommit {
    outcome: Outcome,
    /// A version conflict is decided again: the caller named no version, attempts are left.
    may_retry: bool,
}

impl AfterCommit {
    /// Whether settling writes to the store (an upgraded national number closes its problem):
    /// an async caller then waits and settles on the blocking thread that decided, which runs
    /// to the end even if the caller is dropped, so that the write is never left undone.
    pub fn writes(&self) -> bool {
        self.key_info_change().is_some()
    }

    /// The student and event of an applied `change_key_info`: once committed, the number it
    /// may have upgraded settles its problem record.
    fn key_info_change(&self) -> Option<(&Student, &Event)> {
        match &self.outcome {
            Outcome::Applied { student, event, .. }
                if event.input.kind == TransitionKind::ChangeKeyInfo =>
            {
                Some((student, event))
            }
            _ => None,
        }
    }
}

/// What [`Xueji::prepare_transition`] came to.
pub(crate) enum PreparedTransition {
    /// Nothing to store: denied, or a dry run.
    Decided(Outcome),
    /// Store `command`; once stored, the transition came to `outcome`.
    Write { command: Command, outcome: Outcome },
}

/// What [`Xueji::prepare_admission`] came to.
#[derive(Debug, Clone)]
pub enum Admission {
    /// Allowed without approval: ready to store.
    Ready(Box<AdmissionPlan>),
    /// Denied, or it would need approvals (which an admission cannot have).
    Refused(Box<Decision>),
}

/// An admission decided and built, not yet stored. Its parts are sealed together (the event's
/// hash covers the student and the context), so they are only readable.
#[derive(Debug, Clone)]
pub struct AdmissionPlan {
    decision: Decision,
    student: Student,
    event: Event,
    context: Vec<u8>,
}

impl AdmissionPlan {
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    pub fn student(&self) -> &Student {
        &self.student
    }
}

/// Whether what rosters and statistics read (the stored timeline, the schools' member index)
/// says what a sound chain says. Both are derived from the events; the history itself is intact.
fn derived_mismatch(student_id: &str, h: StudentHistory) -> Option<BadEvent> {
    let unlisted = h
        .events
        .iter()
        .find(|e| !h.listed_at.contains(&e.after.school));
    let replayed = Timeline::from_events(student_id.to_owned(), h.events.iter().cloned());
    if h.timeline.as_ref() != Some(&replayed) {
        let stored = h.timeline.map(|t| t.steps).unwrap_or_default();
        let seq = (0..replayed.steps.len().max(stored.len()))
            .find(|&i| replayed.steps.get(i) != stored.get(i))
            .and_then(|i| replayed.steps.get(i).or(stored.get(i)))
            .map_or(0, |step| step.seq);
        return Some(BadEvent {
            seq,
            code: "timeline_mismatch".into(),
            message:
                "名册与统计所用的学籍时间线与历史事件不一致(时间线由历史事件派生,历史本身完好)"
                    .into(),
        });
    }
    // A student with only their admission has no stored state yet (see `store::tables`).
    let expected_state = (replayed.steps.len() > 1).then(|| TallyState::of(&replayed));
    if h.tally_state != expected_state {
        return Some(BadEvent {
            seq: h.events.last().map_or(0, |e| e.seq),
            code: "tally_state_mismatch".into(),
            message: "统计用的学生状态摘要与历史事件不一致(摘要由历史事件派生,历史本身完好)".into(),
        });
    }
    unlisted.map(|e| BadEvent {
        seq: e.seq,
        code: "member_missing".into(),
        message: format!(
            "学校「{}」的学生索引缺少该生(名册与统计会漏掉他;索引由历史事件派生,历史本身完好)",
            e.after.school
        ),
    })
}

/// Finds the person a new enrolment belongs to, and refuses it while another enrolment of theirs
/// is live (一人一号: one live 学籍 per person). An ID number's earlier enrolments name the person:
/// the new enrolment keeps their national number, whatever number the ID number would give now
/// (it may have changed since, `national_id_differs_from_id_card`); a number given in the form
/// that is not the person's is refused. Returns the person's earlier (ended) enrolments, oldest
/// first. The writer checks again when it stores the admission, so this is the friendly answer
/// and the writer the guarantee.
fn find_person(
    snapshot: &Snapshot<'_>,
    s: &mut Student,
    national_given: bool,
) -> Result<Vec<Student>> {
    let load = |ids: Vec<String>| -> Result<Vec<Student>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(snapshot.student(&id)?);
        }
        Ok(out)
    };
    let live = |field: &str, enrolments: &[Student]| match enrolments
        .iter()
        .find(|e| e.id != s.id && e.status.is_live())
    {
        Some(e) => Err(ServiceError::Duplicate {
            field: field.into(),
            student: e.id.clone(),
            school: None,
        }),
        None => Ok(()),
    };
    if let Some(card) = s.id_card.clone() {
        let by_card = load(snapshot.enrolments_by_id_card(card.as_str())?)?;
        live("id_card", &by_card)?;
        if let Some(person) = by_card.last()
            && person.national_id != s.national_id
        {
            if national_given {
                return Err(FieldError::new(
                    "national_id_not_the_person",
                    "national_id",
                    "该身份证号的学生已有全国学籍号(一人一号,终身不变),与填写的不同:请核对,或不填全国学籍号以沿用原号",
                )
                .into());
            }
            s.national_id = person.national_id.clone();
        }
    } else {
        live(
            "name_gender_birth_date",
            &load(snapshot.enrolments_by_person(s)?)?,
        )?;
    }
    let earlier = load(snapshot.enrolments_of(s.national_id.as_str())?)?;
    live("national_id", &earlier)?;
    let mut earlier: Vec<Student> = earlier.into_iter().filter(|e| e.id != s.id).collect();
    earlier.sort_by(|a, b| (a.entry_date, &a.id).cmp(&(b.entry_date, &b.id)));
    Ok(earlier)
}

/// Why an admission cannot go through approvals, for single creations and imports alike.
pub const ADMIT_NEEDS_APPROVAL: &str =
    "录取建档不支持审批流程:请先建档,再以入学注册(register)提交审批";

impl Outcome {
    pub fn decision(&self) -> &Decision {
        match self {
            Outcome::Applied { decision, .. }
            | Outcome::Pending { decision, .. }
            | Outcome::Denied { decision }
            | Outcome::DryRun { decision } => decision,
        }
    }
}

/// What an approval came to.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalOutcome {
    pub request: ApprovalRequest,
    /// `pending`, `applied`, `denied` or `rejected`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student: Option<Student>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepApplied {
    pub student: String,
    pub event: Event,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub as_of: Date,
    pub evaluated: usize,
    pub applied: Vec<SweepApplied>,
    /// Students whose deadline rule failed to evaluate (fails closed: nothing applied).
    pub failed: Vec<SweepFailure>,
    /// Requests closed `expired`: pending longer than the policy's `request_expiry_days`.
    pub expired_requests: Vec<String>,
    /// Problem records this sweep opened (`not_reported`, `overdue_request`).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepFailure {
    pub student: String,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub students: usize,
    pub events: u64,
    pub failures: Vec<(String, ChainReport)>,
    /// Statistics counters whose stored sums disagree with the students' timelines.
    pub stats_failures: Vec<TallyMismatch>,
    /// Index entries no student record implies (those a record implies but the index lacks are
    /// in that student's failure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub index_failures: Vec<IndexMismatch>,
    /// Records whose bytes do not decode: students (their record, events or steps), schools,
    /// requests, tokens. Everything else is still served; these are not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<DamagedRecord>,
}

/// A statistics counter (`domain::tally`) whose stored sum is not what the timelines add up to.
/// The counters are derived data: the history is intact, but statistics read from them are wrong.
#[derive(Debug, Clone, Serialize)]
pub struct TallyMismatch {
    pub jurisdiction: String,
    /// `stats_mismatch`.
    pub code: &'static str,
    /// The day of the change; absent for the counter's total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<Date>,
    pub counter: Counter,
    pub stored: i64,
    pub replayed: i64,
    pub message: String,
}

/// Reported per jurisdiction at most, so that a damaged table does not flood the report.
const MAX_TALLY_MISMATCHES: usize = 20;

fn tally_mismatches(jurisdiction: &str, check: TallyCheck) -> Vec<TallyMismatch> {
    let mismatch = |date: Option<Date>, counter: &Counter, stored: i64, replayed: i64| {
        TallyMismatch {
            jurisdiction: jurisdiction.to_owned(),
            code: "stats_mismatch",
            date,
            counter: counter.clone(),
            stored,
            replayed,
            message: format!(
                "统计计数与学籍时间线不一致:存储为 {stored},按时间线应为 {replayed}(计数由历史事件派生,历史本身完好)"
            ),
        }
    };
    let replayed_totals = tally::totals(&check.replayed_changes);
    let mut out = Vec::new();
    let totals = check
        .stored_totals
        .keys()
        .chain(replayed_totals.keys())
        .collect::<std::collections::BTreeSet<_>>();
    for c in totals {
        let (s, r) = (
            check.stored_totals.get(c).copied().unwrap_or(0),
            replayed_totals.get(c).copied().unwrap_or(0),
        );
        if s != r {
            out.push(mismatch(None, c, s, r));
        }
    }
    let changes = check
        .stored_changes
        .keys()
        .chain(check.replayed_changes.keys())
        .collect::<std::collections::BTreeSet<_>>();
    for k in changes {
        let (s, r) = (
            check.stored_changes.get(k).copied().unwrap_or(0),
            check.replayed_changes.get(k).copied().unwrap_or(0),
        );
        if s != r {
            out.push(mismatch(Some(k.0), &k.1, s, r));
        }
    }
    out.truncate(MAX_TALLY_MISMATCHES);
    out
}

/// How many times a transition without `expected_version` is retried when another write to the
/// same student slipped in between evaluation and commit.
const CONFLICT_RETRIES: usize = 3;

/// Most terms a school's calendar lists.
pub const MAX_TERMS: usize = 100;

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The last student id handed out in this process (see [`student_id`]).
static LAST_STUDENT_ID: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since 1970 as the top 44 bits of a student id (good until the year 2527).
fn student_id_floor(ms: u64) -> u64 {
    ms << 20
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX >> 20)
        })
}

/// A new student id: `stu_` and 16 hex digits that grow with time (the milliseconds since 1970 in
/// the top 44 bits, a counter in the low 20), strictly increasing within the process and above
/// the largest time-ordered id of every store opened in it ([`note_student_id`]).
///
/// Why ordered: every table keyed by student id (the record, the locator, the status index,
/// events, decision contexts) then takes new students at its end instead of at a random leaf, so
/// creating students writes about 4× fewer pages (a bulk import of 200,000 rows: 11 KiB written
/// per row instead of 46, see `BENCHMARKS.md`). An id says when the record was created, which the
/// admission event records anyway, and nothing about the student.
fn student_id() -> String {
    let floor = student_id_floor(now_ms());
    let next = |last: u64| floor.max(last.saturating_add(1));
    let prev = LAST_STUDENT_ID
        .fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |last| {
            Some(next(last))
        })
        .unwrap_or_else(|last| last);
    format!("stu_{:016x}", next(prev))
}

/// Makes later ids of this process sort after `id`, if it is a time-ordered id (older stores
/// hold random ids anywhere in the range; those are ignored, as is anything past tomorrow).
fn note_student_id(id: &str) {
    let tomorrow = student_id_floor(now_ms().saturating_add(86_400_000));
    if let Some(v) = id
        .strip_prefix("stu_")
        .filter(|h| h.len() == 16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .filter(|v| *v <= tomorrow)
    {
        LAST_STUDENT_ID.fetch_max(v, AtomicOrdering::Relaxed);
    }
}

fn random_id(prefix: &str) -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("{prefix}_{}", hex::encode(b))
}

/// Fields of `change_key_info` / `correct_info` that hold personal data: recorded in history
/// only as salted digests.
const PERSONAL_FIELDS: &[&str] = &[
    "name",
    "national_id",
    "id_card",
    "birth_date",
    "gender",
    "guardians",
    "extra",
];

pub struct Xueji {
    store: Store,
    /// Transfer-certificate keys: this server's signing key and the keys it trusts.
    keys: Option<Arc<crate::domain::certificate::KeyRing>>,
    policies: Arc<PolicyRegistry>,
    tokens: TokenCache,
    /// The zone whose calendar says what "today" is (defaults, sweeps, rosters).
    time_zone: chrono_tz::Tz,
    /// Bounds on a candidate package's own test run (`lifecycle`).
    pub(crate) policy_test_limits: std::sync::RwLock<crate::policy::testing::TestLimits>,
    /// Batches of this process (`engine::batch`).
    pub(crate) batches: crate::engine::batch::Running,
}

impl Xueji {
    pub fn new(store: Store, policies: Arc<PolicyRegistry>) -> Self {
        // New ids sort after the store's newest, even if the clock went back since it was written.
        if let Ok(Some(last)) = store.last_student_id() {
            note_student_id(&last);
        }
        Xueji {
            store,
            keys: None,
            policies,
            tokens: TokenCache::default(),
            time_zone: crate::domain::dates::DEFAULT_TIME_ZONE,
            policy_test_limits: Default::default(),
            batches: Default::default(),
        }
    }

    /// The service takes "today" in `zone` instead of the default `Asia/Shanghai`.
    pub fn with_time_zone(mut self, zone: chrono_tz::Tz) -> Self {
        self.time_zone = zone;
        self
    }

    /// The zone the service's dates are in ("today", and recorded instants as the console shows them).
    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.time_zone
    }

    /// Today's date in the service's time zone.
    pub fn today(&self) -> Date {
        Date::today_in(self.time_zone)
    }

    /// The store itself, for tests and benches that look at what was written. Nothing in the
    /// crate outside `engine/` calls it: adapters read through the engine's methods
    /// (`queries`), which `tests/it/architecture.rs` holds them to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn policies(&self) -> &Arc<PolicyRegistry> {
        &self.policies
    }

    // ---- schools -------------------------------------------------------------------------

    pub fn create_school(&self, school: School) -> Result<School> {
        let mut v = Vec::new();
        let id_ok = !school.id.is_empty()
            && school.id.len() <= 64
            && school
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            v.push(FieldError::new(
                "invalid_value",
                "id",
                "学校编号只能包含字母、数字、- 和 _,不超过 64 个字符",
            ));
        }
        if let Err(e) = check_text(&school.name, "name", 100) {
            v.push(e);
        }
        if self.policies.latest(&school.jurisdiction).is_none() {
            v.push(FieldError::new(
                "unknown_jurisdiction",
                "jurisdiction",
                format!("没有名为「{}」的政策包", school.jurisdiction),
            ));
        }
        if let Some(a) = &school.area
            && let Err(e) = check_text(a, "area", 50)
        {
            v.push(e);
        }
        if let Some(k) = &school.kind
            && let Err(e) = check_optional_text(k, "kind", 50)
        {
            v.push(e);
        }
        if school.calendar.len() > MAX_TERMS {
            v.push(FieldError::new(
                "too_many",
                "calendar",
                format!("校历不能超过 {MAX_TERMS} 个学期"),
            ));
        }
        for (i, t) in school.calendar.iter().enumerate() {
            if let Err(e) = check_text(&t.term, &format!("calendar[{i}].term"), 50) {
                v.push(e);
            }
        }
        if !v.is_empty() {
            return Err(InvalidInput { errors: v }.into());
        }
        // School ids are the national 学校标识码, unique in the country: a taken one is
        // refused wherever it is held, with the same answer, naming nothing of the holder.
        self.store
            .submit(Command::PutSchool {
                school: Box::new(school.clone()),
                must_be_new: true,
            })
            .map_err(|e| match e {
                StoreError::AlreadyExists { .. } => ServiceError::Conflict {
                    code: "already_exists",
                    message: format!(
                        "学校标识码「{}」已被使用(学校标识码全国唯一,请核对)",
                        school.id
                    ),
                },
                other => other.into(),
            })?;
        Ok(school)
    }

    pub fn school(&self, id: &str) -> Result<School> {
        school_in(&self.store.snapshot()?, id)
    }

    // ---- students ------------------------------------------------------------------------

    pub fn student(&self, id: &str) -> Result<Student> {
        student_in(&self.store.snapshot()?, id)
    }

    /// Creates a student through the `admit` transition.
    pub fn admit(&self, form: NewStudentForm, actor: &Actor, dry_run: bool) -> Result<Outcome> {
        let admitting_school = form.school.clone();
        let prepared = match self.prepare_admission(form, actor) {
            Err(e @ ServiceError::Duplicate { .. }) if !dry_run => {
                self.note_duplicate(&e, &admitting_school, actor);
                return Err(e);
            }
            other => other?,
        };
        match prepared {
            Admission::Ready(plan) if dry_run => Ok(Outcome::DryRun {
                decision: plan.decision,
            }),
            Admission::Refused(decision) if dry_run => Ok(Outcome::DryRun {
                decision: *decision,
            }),
            Admission::Ready(plan) => self
                .store_admissions(vec![*plan])
                .pop()
                .unwrap_or_else(|| Err(ServiceError::Storage("no answer from the store".into()))),
            Admission::Refused(decision) if !decision.allowed => Ok(Outcome::Denied {
                decision: *decision,
            }),
            Admission::Refused(_) => Err(ServiceError::Conflict {
                code: "admit_needs_approval",
                message: ADMIT_NEEDS_APPROVAL.into(),
            }),
        }
    }

    /// Checks and decides an admission and builds what storing it writes, without storing it.
    /// `admit` is this then [`Xueji::store_admissions`]; a bulk import checks every row first
    /// and stores the plans after, so no row is decided twice.
    pub fn prepare_admission(&self, form: NewStudentForm, actor: &Actor) -> Result<Admission> {
        self.prepare_admission_on(form, actor, None)
    }

    /// [`Xueji::prepare_admission`], for an admission on a transfer certificate when `proof` is
    /// given: its proof is recorded in the admission's input (and so in its event and context).
    fn prepare_admission_on(
        &self,
        form: NewStudentForm,
        actor: &Actor,
        proof: Option<&crate::domain::certificate::CertificateProof>,
    ) -> Result<Admission> {
        let snapshot = self.store.snapshot()?;
        let school = snapshot.school(&form.school)?.ok_or_else(|| {
            InvalidInput::from(FieldError::new(
                "unknown_school",
                "school",
                format!("学校「{}」不存在", form.school),
            ))
        })?;
        let national_given = form.national_id.is_some();
        let new = NewStudent::parse(form, &school, self.today())?;
        let mut student = provisional_student(&new, &school, student_id());
        let earlier = find_person(&snapshot, &mut student, national_given)
            .map_err(|e| self.name_holder(e))?;
        let report_by = new.report_deadline.or_else(|| {
            school
                .calendar
                .iter()
                .filter(|t| {
                    t.starts >= new.entry_date
                        || t.report_deadline.is_some_and(|d| d >= new.entry_date)
                })
                .find_map(|t| t.report_deadline)
        });
        if let Some(date) = report_by {
            student.deadlines.push(Deadline {
                kind: "report_by".into(),
                date,
                on_expiry: Deadline::default_expiry("report_by"),
            });
        }
        let mut input = TransitionInput::new(TransitionKind::Admit, new.entry_date);
        if !earlier.is_empty() {
            // The new enrolment's history links to the person's earlier ones: the event (and the
            // context the policy saw) records each one's id and newest hash, so the link is
            // covered by the new chain's hashes and an edit of either side shows in `verify`.
            let links = earlier
                .iter()
                .map(|e| serde_json::json!({ "student": e.id, "head": e.head }))
                .collect();
            input.params.insert("previous".into(), Value::Array(links));
        }
        if let Some(proof) = proof {
            input.params.insert(
                "certificate".into(),
                serde_json::to_value(proof).map_err(|e| ServiceError::Storage(e.to_string()))?,
            );
        }
        let policy = self
            .policies
            .in_force(&school.jurisdiction, input.effective_date)?;
        let decision = evaluate(
            &policy,
            Case {
                student: &student,
                school: &school,
                input: &input,
                sweep: false,
            },
        )?;
        if !decision.allowed || !decision.approvals.is_empty() {
            return Ok(Admission::Refused(Box::new(decision)));
        }
        let (student, event, context) = self.apply_decision(
            &student, &school, &input, &decision, actor, None, true, false,
        )?;
        Ok(Admission::Ready(Box::new(AdmissionPlan {
            decision,
            student,
            event,
            context,
        })))
    }

    /// Stores prepared admissions, in one stream to the writer (see [`Store::submit_all`]); the
    /// answers are in the order of the plans. The writer checks again that each identity is
    /// still free, so a plan overtaken by another creation is refused alone.
    pub fn store_admissions(&self, plans: Vec<AdmissionPlan>) -> Vec<Result<Outcome>> {
        let mut applied = Vec::with_capacity(plans.len());
        let schools: Vec<String> = plans.iter().map(|p| p.student.school.clone()).collect();
        let commands = plans
            .into_iter()
            .map(|p| {
                let command = Command::CreateStudent {
                    student: Box::new(p.student.clone()),
                    event: Box::new(p.event.clone()),
                    context: Some(p.context),
                };
                applied.push(Outcome::Applied {
                    decision: p.decision,
                    student: Box::new(p.student),
                    event: Box::new(p.event),
                });
                command
            })
            .collect();
        let answers = self.store.submit_all(commands);
        applied
            .into_iter()
            .zip(answers)
            .zip(schools)
            .map(|((outcome, answer), school)| match answer {
                Ok(_) => {
                    if let Outcome::Applied { student, event, .. } = &outcome {
                        self.note_temporary_number(student, &event.actor);
                    }
                    Ok(outcome)
                }
                Err(e) => {
                    let e = self.name_holder(ServiceError::from(e));
                    if let Outcome::Applied { event, .. } = &outcome {
                        self.note_duplicate(&e, &school, &event.actor);
                    }
                    Err(e)
                }
            })
            .collect()
    }

    /// Names the school of the enrolment a `Duplicate` refusal found (best effort: a record
    /// that cannot be read leaves the refusal as it was).
    fn name_holder(&self, e: ServiceError) -> ServiceError {
        match e {
            ServiceError::Duplicate {
                field,
                student,
                school: None,
            } => {
                let school = self
                    .store
                    .student(&student)
                    .ok()
                    .flatten()
                    .and_then(|s| self.store.school(&s.school).ok().flatten())
                    .map(|sc| HoldingSchool {
                        id: sc.id,
                        name: sc.name,
                    });
                ServiceError::Duplicate {
                    field,
                    student,
                    school,
                }
            }
            other => other,
        }
    }

    /// Every enrolment of the person with this national number that `visible` lets through,
    /// oldest first (by entry date), each with its school's name and last event date.
    pub fn enrolments_of(
        &self,
        national_id: &str,
        visible: impl Fn(&Student, &School) -> bool,
    ) -> Result<Vec<Enrolment>> {
        let snapshot = self.store.snapshot()?;
        let mut out = Vec::new();
        for id in snapshot.enrolments_of(national_id)? {
            let Some(student) = snapshot.student(&id)? else {
                continue;
            };
            let Some(school) = snapshot.school(&student.school)? else {
                continue;
            };
            if !visible(&student, &school) {
                continue;
            }
            let last_event_date = snapshot.last_event_date(&student)?;
            out.push(Enrolment {
                student,
                school_name: school.name,
                last_event_date,
            });
        }
        out.sort_by(|a, b| {
            (a.student.entry_date, &a.student.id).cmp(&(b.student.entry_date, &b.student.id))
        });
        Ok(out)
    }

    /// The receiving school files a transfer (api.md v1.1, `POST /v1/transfers`): the student
    /// is the live enrolment of the national number whose name is the one given; anything else
    /// (no such number, another name, a school the caller may not file for) is not found,
    /// revealing nothing. Then it is the student's `transfer`, decided and routed as any.
    pub fn transfer_into(
        &self,
        form: &TransferForm,
        actor: &Actor,
        dry_run: bool,
        may_file_for: impl Fn(&School) -> bool,
    ) -> Result<Outcome> {
        let to = self.store.school(&form.to_school)?;
        if !to.as_ref().is_some_and(&may_file_for) {
            return Err(ServiceError::NotFound {
                what: "school",
                id: form.to_school.clone(),
            });
        }
        let snapshot = self.store.snapshot()?;
        let mut named = None;
        for id in snapshot.enrolments_of(form.national_id.trim())? {
            if let Some(s) = snapshot.student(&id)?
                && s.status.is_live()
                && s.name == form.name.trim()
            {
                named = Some(s.id);
            }
        }
        drop(snapshot);
        let Some(student) = named else {
            return Err(ServiceError::NotFound {
                what: "student",
                id: form.national_id.clone(),
            });
        };
        self.transition_in_scope(&student, form.input(), actor, dry_run, |_, _| true)
    }

    /// Files a transition: applies it, opens an approval request, or reports the denial.
    pub fn transition(
        &self,
        student_id: &str,
        input: TransitionInput,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<Outcome> {
        self.transition_in_scope(student_id, input, actor, dry_run, |_, _| true)
    }

    /// [`Xueji::transition`] for a caller who may see only some students: one the caller may
    /// not see (`in_scope` says no, given the student and their school, as stored in the
    /// snapshot the transition is decided on) is reported not found, before anything about it
    /// is checked or decided.
    pub fn transition_in_scope(
        &self,
        student_id: &str,
        input: TransitionInput,
        actor: &Actor,
        dry_run: bool,
        in_scope: impl Fn(&Student, &School) -> bool,
    ) -> Result<Outcome> {
        self.filed_by_hand(student_id, &input)?;
        self.file_in_scope(student_id, input, actor, dry_run, in_scope)
    }

    /// Refuses a `transfer_in` filed by hand, unless it finishes an admission on a transfer
    /// certificate (the admission stored, its `transfer_in` not filed: a crash between them):
    /// `transfer_in` belongs to that admission.
    fn filed_by_hand(&self, student_id: &str, input: &TransitionInput) -> Result<()> {
        if input.kind == TransitionKind::TransferIn
            && !self
                .store
                .events(student_id)?
                .first()
                .is_some_and(|e| e.input.params.contains_key("certificate"))
        {
            return Err(FieldError::new(
                "invalid_value",
                "kind",
                "转入由转学证明办理:请以 POST /v1/students 附转出学校开具的 transfer_certificate 建档",
            )
            .into());
        }
        Ok(())
    }

    /// [`Xueji::transition_in_scope`] for every kind, `transfer_in` included (the engine's own).
    fn file_in_scope(
        &self,
        student_id: &str,
        input: TransitionInput,
        actor: &Actor,
        dry_run: bool,
        in_scope: impl Fn(&Student, &School) -> bool,
    ) -> Result<Outcome> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt_filing(student_id, &input, actor, dry_run, attempt, &in_scope)? {
                Filing::Decided(outcome) => return Ok(outcome),
                Filing::Queued(Queued { receipt, then }) => {
                    if let Some(outcome) = self.settle_filing(then, receipt.wait()) {
                        return outcome;
                    }
                }
            }
        }
    }

    /// [`Xueji::transition_in_scope`] in two halves, for a caller that awaits the commit
    /// (the HTTP handler) rather than block a thread on it: this first half decides attempt
    /// number `attempt` (from 1) and queues what it writes; [`Xueji::settle_filing`], given the
    /// writer's answer, is the second. A version conflict with a transition committed
    /// meanwhile is decided again (a next attempt), at most three times, unless the caller
    /// gave the version it expects.
    pub fn attempt_transition(
        &self,
        student_id: &str,
        input: &TransitionInput,
        actor: &Actor,
        dry_run: bool,
        attempt: usize,
        in_scope: impl Fn(&Student, &School) -> bool,
    ) -> Result<Filing> {
        if attempt == 1 {
            self.filed_by_hand(student_id, input)?;
        }
        self.attempt_filing(student_id, input, actor, dry_run, attempt, &in_scope)
    }

    fn attempt_filing(
        &self,
        student_id: &str,
        input: &TransitionInput,
        actor: &Actor,
        dry_run: bool,
        attempt: usize,
        in_scope: &impl Fn(&Student, &School) -> bool,
    ) -> Result<Filing> {
        input.validate()?;
        if input.kind == TransitionKind::Admit {
            return Err(FieldError::new(
                "invalid_value",
                "kind",
                "录取建档请使用 POST /v1/students",
            )
            .into());
        }
        // One read transaction for the student, the schools and the statistics change.
        let snapshot = self.store.snapshot()?;
        let student = student_in(&snapshot, student_id)?;
        let not_found = || ServiceError::NotFound {
            what: "student",
            id: student_id.into(),
        };
        // A school missing from the store (no command deletes one) must not tell a caller
        // out of scope that the student exists, nor name their school.
        let school = snapshot.school(&student.school)?.ok_or_else(not_found)?;
        if !in_scope(&student, &school) {
            return Err(not_found());
        }
        if let Some(expected) = input.expected_version
            && expected != student.version
        {
            return Err(StoreError::VersionConflict {
                expected,
                current: student.version,
            }
            .into());
        }
        match self.prepare_transition(&snapshot, &student, &school, input, actor, dry_run)? {
            PreparedTransition::Decided(outcome) => Ok(Filing::Decided(outcome)),
            PreparedTransition::Write { command, outcome } => {
                let receipt = self.store.queue_in(&snapshot, command)?;
                // The snapshot ends before the wait: see `Store::submit_in`.
                drop(snapshot);
                Ok(Filing::Queued(Queued {
                    receipt,
                    then: AfterCommit {
                        outcome,
                        may_retry: input.expected_version.is_none() && attempt < CONFLICT_RETRIES,
                    },
                }))
            }
        }
    }

    /// The second half of [`Xueji::attempt_transition`]: the transition's outcome given the
    /// writer's answer, or `None` when it is to be decided again (a next attempt).
    pub fn settle_filing(
        &self,
        then: AfterCommit,
        answer: std::result::Result<CommandOutput, StoreError>,
    ) -> Option<Result<Outcome>> {
        match answer {
            Ok(_) => {
                if let Some((student, event)) = then.key_info_change() {
                    self.settle_upgraded_number(student, &event.actor, event.seq, None);
                }
                Some(Ok(then.outcome))
            }
            Err(StoreError::VersionConflict { .. }) if then.may_retry => None,
            Err(e) => Some(Err(e.into())),
        }
    }

    /// Decides a transition of `student` (as read in `snapshot`, in the caller's scope) and
    /// builds what recording it writes, without writing: the path of every single transition
    /// and of each student of a batch (`engine::batch`). Denied and dry runs are decided
    /// outcomes; otherwise the command to submit (the event, or the approval request) and the
    /// outcome it stands for once stored.
    pub(crate) fn prepare_transition(
        &self,
        snapshot: &Snapshot<'_>,
        student: &Student,
        school: &School,
        input: &TransitionInput,
        actor: &Actor,
        dry_run: bool,
    ) -> Result<PreparedTransition> {
        let decision = self.decide(snapshot, student, school, input, false)?;
        if dry_run {
            return Ok(PreparedTransition::Decided(Outcome::DryRun { decision }));
        }
        if !decision.allowed {
            return Ok(PreparedTransition::Decided(Outcome::Denied { decision }));
        }
        if decision.approvals.is_empty() {
            let (after, event, context) =
                self.apply_decision(student, school, input, &decision, actor, None, false, false)?;
            let command = Command::RecordEvent {
                before: Box::new(student.clone()),
                after: Box::new(after.clone()),
                event: Box::new(event.clone()),
                context: Some(context),
                close_request: None,
            };
            return Ok(PreparedTransition::Write {
                command,
                outcome: Outcome::Applied {
                    decision,
                    student: Box::new(after),
                    event: Box::new(event),
                },
            });
        }
        let request = ApprovalRequest {
            id: random_id("req"),
            student: student.id.clone(),
            jurisdiction: student.jurisdiction.clone(),
            school: student.school.clone(),
            receiving_school: input.param_str("to_school").map(str::to_owned),
            receiving_jurisdiction: decision
                .receiving_policy
                .as_ref()
                .map(|p| p.jurisdiction.clone()),
            // The request keeps the unredacted input until it is applied: the last approval
            // must apply exactly what was filed. History only ever gets the redacted form.
            input: input.clone(),
            steps: decision.approvals.clone(),
            approvals: Vec::new(),
            status: RequestStatus::Pending,
            opened_by: actor.clone(),
            opened_at: now_rfc3339(),
            decision: decision.clone(),
            final_decision: None,
            student_version: student.version,
        };
        Ok(PreparedTransition::Write {
            command: Command::OpenRequest {
                request: Box::new(request.clone()),
            },
            outcome: Outcome::Pending {
                decision,
                request: Box::new(request),
            },
        })
    }

    /// Checks the state machine and the inputs that need the store, then evaluates the policy in
    /// force on the effective date.
    fn decide(
        &self,
        snapshot: &Snapshot<'_>,
        student: &Student,
        school: &School,
        input: &TransitionInput,
        sweep: bool,
    ) -> Result<Decision> {
        if !input.kind.allowed_from().contains(&student.status) {
            return Err(ServiceError::InvalidTransition {
                kind: input.kind,
                status: student.status,
            });
        }
        if input.kind == TransitionKind::Transfer {
            let to = input.param_str("to_school").ok_or_else(|| {
                InvalidInput::from(FieldError::new(
                    "required",
                    "params.to_school",
                    "转学须填写转入学校",
                ))
            })?;
            let target = snapshot.school(to)?.ok_or_else(|| {
                InvalidInput::from(FieldError::new(
                    "unknown_school",
                    "params.to_school",
                    format!("转入学校「{to}」不存在"),
                ))
            })?;
            if target.id == student.school {
                return Err(FieldError::new(
                    "invalid_value",
                    "params.to_school",
                    "转入学校与当前学校相同",
                )
                .into());
            }
            if let Some(g) = input.params.get("to_grade").and_then(Value::as_i64) {
                parse_grade(g, target.level, "params.to_grade")?;
            }
            if target.jurisdiction != student.jurisdiction {
                let sending = self
                    .policies
                    .in_force(&student.jurisdiction, input.effective_date)?;
                let receiving = self
                    .policies
                    .in_force(&target.jurisdiction, input.effective_date)?;
                let case = Case {
                    student,
                    school,
                    input,
                    sweep,
                };
                return Ok(evaluate_transfer(&sending, &receiving, case, &target)?);
            }
        }
        // The same grade range as a creation in a school of this level.
        if let Some(g) = input.params.get("grade").and_then(Value::as_i64) {
            parse_grade(g, school.level, "params.grade")?;
        }
        if matches!(
            input.kind,
            TransitionKind::ChangeKeyInfo | TransitionKind::CorrectInfo
        ) {
            self.check_info_fields(student, input)?;
        }
        let policy = self
            .policies
            .in_force(&student.jurisdiction, input.effective_date)?;
        let decision = evaluate(
            &policy,
            Case {
                student,
                school,
                input,
                sweep,
            },
        )?;
        Ok(decision)
    }

    /// Validates the new values of an information change before any policy sees it, with the
    /// validators a creation uses; then whether a new ID number is free.
    fn check_info_fields(&self, student: &Student, input: &TransitionInput) -> Result<()> {
        let Some(fields) = input.params.get("fields").and_then(Value::as_object) else {
            return Err(FieldError::new("required", "params.fields", "请填写要变更的字段").into());
        };
        check_info_fields(input.kind, fields, Date::today())?;
        if let Some(raw) = fields.get("national_id").and_then(Value::as_str) {
            self.check_number_upgrade(student, fields, raw)?;
        }
        if let Some(raw) = fields.get("id_card").and_then(Value::as_str)
            && let Ok(id) = CitizenId::parse(raw)
            && let Some(other) = self.store.student_by_id_card(id.as_str())?
            && other != student.id
        {
            return Err(self.name_holder(ServiceError::Duplicate {
                field: "id_card".into(),
                student: other,
                school: None,
            }));
        }
        Ok(())
    }

    /// A national number given in a key-information change: only a temporary `L` number is
    /// upgraded (一人一号,终身不变), to `G` + the student's ID number (the one this change sets, or
    /// the one on record), or to a `J` number; and not to a number another live enrolment holds.
    fn check_number_upgrade(
        &self,
        student: &Student,
        fields: &serde_json::Map<String, Value>,
        raw: &str,
    ) -> Result<()> {
        let field = "params.fields.national_id";
        if !student.national_id.is_temporary() {
            return Err(FieldError::new(
                "national_id_not_temporary",
                field,
                "全国学籍号一人一号、终身不变:只有临时学籍号(L 开头)可以升级为正式学籍号",
            )
            .into());
        }
        if let Some(body) = raw.strip_prefix('G') {
            let card = fields
                .get("id_card")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| student.id_card.as_ref().map(|c| c.as_str().to_owned()));
            if card.as_deref() != Some(body) {
                return Err(FieldError::new(
                    "national_id_not_the_id_card",
                    field,
                    "正式学籍号应为 G 加学生本人的身份证号:请核对,或一并变更身份证号",
                )
                .into());
            }
        }
        let snapshot = self.store.snapshot()?;
        for other in snapshot.enrolments_of(raw)? {
            if other != student.id
                && snapshot
                    .student(&other)?
                    .is_some_and(|s| s.status.is_live())
            {
                return Err(self.name_holder(ServiceError::Duplicate {
                    field: "national_id".into(),
                    student: other,
                    school: None,
                }));
            }
        }
        Ok(())
    }

    /// The input as history records it: personal values replaced by salted digests.
    fn redact_input(&self, input: &TransitionInput) -> TransitionInput {
        let mut out = input.clone();
        if let Some(Value::Object(fields)) = out.params.get_mut("fields") {
            for (k, v) in fields.iter_mut() {
                if PERSONAL_FIELDS.contains(&k.as_str()) {
                    *v = Value::String(format!("{REDACTED_PREFIX}{}", self.personal_digest(v)));
                }
            }
        }
        out
    }

    /// The salted digest of a personal field's value, as events record it.
    fn personal_digest(&self, value: &Value) -> String {
        self.store.digest("field", &value.to_string())
    }

    /// What an event records of the personal fields it sets (see [`Event::personal`]).
    fn personal_digests(
        &self,
        after: &Student,
        input: &TransitionInput,
        creating: bool,
    ) -> std::collections::BTreeMap<String, String> {
        let set = input.params.get("fields").and_then(Value::as_object);
        PERSONAL_RECORD_FIELDS
            .iter()
            .filter(|f| creating || set.is_some_and(|s| s.contains_key(**f)))
            .filter_map(|f| {
                let v = after.personal_value(f)?;
                Some(((*f).to_owned(), self.personal_digest(&v)))
            })
            .collect()
    }

    /// The student after the decision, and the sealed event that records it.
    #[allow(clippy::too_many_arguments)]
    fn apply_decision(
        &self,
        student: &Student,
        school: &School,
        input: &TransitionInput,
        decision: &Decision,
        actor: &Actor,
        request: Option<&str>,
        creating: bool,
        sweep: bool,
    ) -> Result<(Student, Event, Vec<u8>)> {
        let receiving_school = match (&decision.receiving_policy, input.param_str("to_school")) {
            (Some(_), Some(to)) => self.store.school(to)?,
            _ => None,
        };
        let context = DecisionContext {
            student: policy_view(student),
            school: school.clone(),
            input: self.redact_input(input),
            sweep,
            receiving_school,
        }
        .to_bytes();
        let mut after = student.after_decision(input, decision, creating);
        let event = Event {
            seq: after.version,
            student: student.id.clone(),
            jurisdiction: student.jurisdiction.clone(),
            kind: input.kind,
            effective_date: input.effective_date,
            recorded_at: now_rfc3339(),
            actor: actor.clone(),
            before: (!creating).then(|| {
                facts(
                    student.status,
                    &student.school,
                    student.grade,
                    student.class.as_deref(),
                )
            }),
            after: facts(
                after.status,
                &after.school,
                after.grade,
                after.class.as_deref(),
            ),
            input: self.redact_input(input),
            decision: decision.clone(),
            request: request.map(str::to_owned),
            context: Some(DecisionContext::hash_of(&context)),
            personal: self.personal_digests(&after, input, creating),
            prev_hash: if creating {
                GENESIS_HASH.to_owned()
            } else {
                student.head.clone()
            },
            hash: String::new(),
        }
        .seal();
        after.head.clone_from(&event.hash);
        Ok((after, event, context))
    }
}

/// What [`Xueji::check_token`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Valid(Box<TokenRecord>),
    Expired,
    Unknown,
}

/// A token to issue ([`Xueji::issue_token`]): the role, its scope fields, a label, and
/// optionally an expiry (RFC 3339 or a date, see [`crate::auth::parse_expiry`]).
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub role: Role,
    pub jurisdiction: Option<String>,
    pub area: Option<String>,
    pub school: Option<String>,
    pub class: Option<String>,
    pub student: Option<String>,
    pub label: Option<String>,
    pub expires_at: Option<String>,
}

/// The student as a policy sees it, as recorded beside each decision: no name, ID number or
/// guardians; the national number replaced by a placeholder of the same kind (policies see the
/// kind only).
fn policy_view(s: &Student) -> Student {
    let placeholder = match s.national_id.as_str().as_bytes().first() {
        Some(b'J') => "J11010519491231002X",
        Some(b'L') => "L11010519491231AAAA",
        _ => "G11010519491231002X",
    };
    Student {
        name: String::new(),
        id_card: None,
        guardians: Vec::new(),
        national_id: crate::domain::NationalNumber::parse(placeholder)
            .unwrap_or_else(|_| s.national_id.clone()),
        ..s.clone()
    }
}

fn provisional_student(new: &NewStudent, school: &School, id: String) -> Student {
    Student {
        id,
        national_id: new.national_id.clone(),
        id_card: new.id_card.clone(),
        name: new.name.clone(),
        gender: new.gender,
        birth_date: new.birth_date,
        school: school.id.clone(),
        jurisdiction: school.jurisdiction.clone(),
        level: school.level,
        grade: new.grade,
        class: new.class.clone(),
        status: Status::Admitted,
        version: 0,
        entry_date: new.entry_date,
        deadlines: Vec::new(),
        guardians: new.guardians.clone(),
        terms: Vec::new(),
        flags: Vec::new(),
        extra: new.extra.clone(),
        former_jurisdictions: Vec::new(),
        head: GENESIS_HASH.to_owned(),
    }
}

fn student_in(snapshot: &Snapshot<'_>, id: &str) -> Result<Student> {
    snapshot.student(id)?.ok_or_else(|| ServiceError::NotFound {
        what: "student",
        id: id.into(),
    })
}

fn school_in(snapshot: &Snapshot<'_>, id: &str) -> Result<School> {
    snapshot.school(id)?.ok_or_else(|| ServiceError::NotFound {
        what: "school",
        id: id.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(id: &str) -> u64 {
        assert!(id.starts_with("stu_") && id.len() == 20, "{id}");
        u64::from_str_radix(&id[4..], 16).unwrap_or_else(|e| panic!("{id}: {e}"))
    }

    #[test]
    fn student_ids_are_unique_and_increase() {
        let per_thread: Vec<Vec<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..2_000).map(|_| value(&student_id())).collect()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for ids in &per_thread {
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "increasing per thread");
        }
        let mut all: Vec<u64> = per_thread.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 8_000, "unique");
        // The time part is the clock's (to the minute).
        let ms = value(&student_id()) >> 20;
        assert!(ms.abs_diff(now_ms()) < 60_000 * 60 * 24 + 60_000);
    }

    #[test]
    fn ids_seen_in_a_store_come_before_new_ones() {
        let ahead = student_id_floor(now_ms() + 3_600_000) + 7;
        note_student_id(&format!("stu_{ahead:016x}"));
        assert!(value(&student_id()) > ahead);
        // A random id of an older store, far in the future, is not followed.
        let far = u64::MAX - 5;
        note_student_id(&format!("stu_{far:016x}"));
        assert!(value(&student_id()) < far);
    }
}
