//! The shapes of request and response bodies as the OpenAPI document names them.
//!
//! The domain types stay free of utoipa (see `schema.rs`): these structs mirror their serde
//! shape for the document only and are never built. `tests/it/codes_and_schemas.rs` checks real
//! answers of the server against them, so a field added to a domain type without its line here
//! fails a test.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::ToSchema;

use super::schema;

// ---- requests --------------------------------------------------------------------------

/// A guardian (监护人).
#[derive(ToSchema)]
pub struct Guardian {
    name: String,
    /// e.g. 父亲, 母亲.
    relation: String,
    phone: String,
}

/// `POST /v1/students`: admission (录取建档). Every invalid field is reported at once.
#[derive(ToSchema)]
pub struct NewStudentForm {
    school: String,
    name: String,
    #[schema(schema_with = schema::gender)]
    gender: String,
    #[schema(format = Date)]
    birth_date: String,
    /// 18-character citizen ID (GB 11643).
    id_card: Option<String>,
    /// 全国学籍号; found from `id_card` for a person with earlier enrolments.
    national_id: Option<String>,
    grade: i64,
    class: Option<String>,
    #[schema(format = Date)]
    entry_date: String,
    #[schema(format = Date)]
    report_deadline: Option<String>,
    #[schema(default = json!([]))]
    guardians: Option<Vec<Guardian>>,
    /// Fields of the jurisdiction's own (`extra`), visible to the roles that see them.
    extra: Option<BTreeMap<String, Value>>,
    /// An admission on another server's transfer certificate (as its
    /// `GET /v1/students/{id}/transfer-certificate` answered): then the body is only `school`,
    /// `grade`, `class`, `entry_date` and this; who the student is comes from the certificate.
    transfer_certificate: Option<SignedCertificate>,
}

/// A transfer certificate and its Ed25519 signature (hex).
#[derive(ToSchema)]
pub struct SignedCertificate {
    certificate: Certificate,
    signature: String,
}

/// What the signature covers: `core`, and a digest of `person`.
#[derive(ToSchema)]
pub struct Certificate {
    core: CertificateCore,
    person: CertifiedPerson,
}

#[derive(ToSchema)]
pub struct CertificateCore {
    version: u32,
    /// `cert_…`: the same for every copy of one enrolment's certificate; used once.
    id: String,
    key_id: String,
    issuer: String,
    issued_at: String,
    enrolment: CertifiedEnrolment,
    /// Hash of the enrolment's newest event, and the number of its events.
    history_head: String,
    history_length: u64,
    checkpoint: LogCheckpoint,
}

/// The enrolment that ended by `transfer_out`.
#[derive(ToSchema)]
pub struct CertifiedEnrolment {
    student: String,
    school: String,
    school_name: String,
    jurisdiction: String,
    #[schema(schema_with = schema::level)]
    level: String,
    grade: u8,
    class: Option<String>,
    #[schema(schema_with = schema::status)]
    status: String,
    #[schema(format = Date)]
    entry_date: String,
    #[schema(format = Date)]
    left_on: String,
}

/// The sending jurisdiction's log when the certificate was issued.
#[derive(ToSchema)]
pub struct LogCheckpoint {
    jurisdiction: String,
    size: u64,
    root: String,
}

#[derive(ToSchema)]
pub struct CertifiedPerson {
    /// Random: keeps the signed digest of the person from being guessed.
    nonce: String,
    national_id: String,
    name: String,
    #[schema(schema_with = schema::gender)]
    gender: String,
    #[schema(format = Date)]
    birth_date: String,
    id_card: Option<String>,
    guardians: Vec<Guardian>,
}

/// `GET /v1/keys`: the keys this server signs transfer certificates with (the newest last).
#[derive(ToSchema)]
pub struct PublishedKeys {
    issuer: String,
    keys: Vec<PublicKey>,
}

#[derive(ToSchema)]
pub struct PublicKey {
    key_id: String,
    issuer: String,
    /// Ed25519 public key, hex.
    public_key: String,
}

/// A supporting document (证明材料).
#[derive(ToSchema)]
pub struct Document {
    #[schema(schema_with = schema::document_kind)]
    kind: String,
    issuer: Option<String>,
    #[schema(schema_with = schema::issuer_level)]
    issuer_level: Option<String>,
    #[schema(schema_with = schema::hospital_grade)]
    hospital_grade: Option<String>,
    /// The registrar's reference to the paper or scanned original.
    r#ref: Option<String>,
}

/// `POST /v1/students/{id}/transitions`: a change of status, placement or information.
#[derive(ToSchema)]
pub struct TransitionInput {
    #[schema(schema_with = schema::transition_kind)]
    kind: String,
    #[schema(format = Date)]
    effective_date: String,
    #[schema(schema_with = schema::reason)]
    reason: Option<String>,
    /// Per kind (`until`, `class`, `to_school`, `fields`, …); an unknown key is refused.
    params: Option<BTreeMap<String, Value>>,
    documents: Option<Vec<Document>>,
    /// Refuse (409 `version_conflict`) instead of re-deciding when the student changed.
    expected_version: Option<u64>,
}

/// `POST /v1/transfers`: the receiving school files a transfer of a student it cannot see yet,
/// named by national number and name together.
#[derive(ToSchema)]
pub struct TransferBody {
    national_id: String,
    name: String,
    /// The receiving school (the caller's).
    to_school: String,
    to_grade: Option<u8>,
    to_class: Option<String>,
    #[schema(schema_with = schema::reason)]
    reason: Option<String>,
    #[schema(format = Date)]
    effective_date: String,
    documents: Option<Vec<Document>>,
}

/// An existing student, by id.
#[derive(ToSchema)]
pub struct StudentRef {
    id: String,
}

/// `POST /v1/policies/{jurisdiction}/evaluate`: decide without storing anything.
#[derive(ToSchema)]
pub struct EvaluateBody {
    /// `{"id"}` of an existing student, or the case fields of a hypothetical one (as in a
    /// package's `tests/*.toml`).
    #[schema(schema_with = evaluated_student)]
    student: Value,
    transition: TransitionInput,
    /// The school of a hypothetical student (as in a package's tests).
    school: Option<BTreeMap<String, Value>>,
    /// Decide as the deadline sweep would.
    #[schema(default = false)]
    sweep: Option<bool>,
}

fn evaluated_student() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Ref, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(Ref::from_schema_name("StudentRef"))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some("假设学生的案例字段 (grade, status, age, flags, …)"))
                .additional_properties(Some(ObjectBuilder::new())),
        )
        .build();
    Schema::OneOf(one_of)
}

// ---- responses: students and decisions -------------------------------------------------

/// A deadline on a student (报到期限, 休学期满, …).
#[derive(ToSchema)]
pub struct Deadline {
    kind: String,
    #[schema(format = Date)]
    date: String,
    #[schema(schema_with = schema::transition_kind)]
    on_expiry: Option<String>,
}

/// One enrolment (学籍) as the caller's role may see it: identity numbers, guardians and
/// `extra` masked or left out by role.
#[derive(ToSchema)]
pub struct Student {
    id: String,
    /// Masked (`G1101…1234`) for roles that may not see identity numbers.
    national_id: String,
    id_card: Option<String>,
    name: String,
    #[schema(schema_with = schema::gender)]
    gender: String,
    #[schema(format = Date)]
    birth_date: String,
    school: String,
    jurisdiction: String,
    #[schema(schema_with = schema::level)]
    level: String,
    grade: u8,
    class: Option<String>,
    #[schema(schema_with = schema::status)]
    status: String,
    /// The status's Chinese label.
    status_zh: String,
    /// Number of events in the student's history.
    version: u64,
    #[schema(format = Date)]
    entry_date: String,
    deadlines: Vec<Deadline>,
    guardians: Vec<Guardian>,
    /// Terms registered (higher education).
    terms: Vec<String>,
    flags: Vec<String>,
    /// Left out for roles that may not see it.
    extra: Option<BTreeMap<String, Value>>,
    /// The jurisdictions the student was transferred out of, oldest first.
    former_jurisdictions: Option<Vec<String>>,
    /// Hash of the newest event.
    head: String,
    /// On admission only: the person's earlier enrolments the caller may see (一人一号).
    previous: Option<Vec<PreviousEnrolment>>,
    /// In a person's enrolment list only: the school's name.
    school_name: Option<String>,
    /// In a person's enrolment list only: the date of the enrolment's newest event.
    #[schema(format = Date)]
    last_event_date: Option<String>,
}

/// An earlier enrolment of the same person: where and when, no personal data.
#[derive(ToSchema)]
pub struct PreviousEnrolment {
    id: String,
    school: String,
    school_name: String,
    #[schema(schema_with = schema::status)]
    status: String,
    status_zh: String,
    #[schema(format = Date)]
    entry_date: String,
    #[schema(format = Date)]
    last_event_date: Option<String>,
}

/// A person's enrolments the caller may see, oldest first.
#[derive(ToSchema)]
pub struct Enrolments {
    enrolments: Vec<Student>,
}

/// The package version that decided.
#[derive(ToSchema)]
pub struct PolicyRef {
    jurisdiction: String,
    version: String,
    content_hash: String,
}

/// A rule that fired, with its legal citation.
#[derive(ToSchema)]
pub struct FiredRule {
    id: String,
    #[schema(schema_with = schema::effect)]
    effect: String,
    citation: String,
    message: String,
}

/// What the decision changes beyond the transition's default.
#[derive(ToSchema)]
pub struct StudentChanges {
    #[schema(schema_with = schema::status)]
    status: Option<String>,
    grade: Option<u8>,
    class: Option<String>,
    school: Option<String>,
}

/// A policy's decision on one transition.
#[derive(ToSchema)]
pub struct Decision {
    allowed: bool,
    policy: PolicyRef,
    rules: Vec<FiredRule>,
    required_documents: Vec<String>,
    missing_documents: Option<Vec<String>>,
    #[schema(schema_with = approval_steps)]
    approvals: Vec<String>,
    changes: StudentChanges,
    deadlines: Vec<Deadline>,
    /// A transfer to another jurisdiction: its package, which decided the receiving side
    /// (`rules` holds both sides' rules).
    receiving_policy: Option<PolicyRef>,
}

fn approval_steps() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(schema::approval_step())
        .build()
}

/// Who did it.
#[derive(ToSchema)]
pub struct Actor {
    /// Token id (`tok_…`), or `system:…`.
    id: String,
    role: String,
}

/// Status and placement before or after an event.
#[derive(ToSchema)]
pub struct EventFacts {
    #[schema(schema_with = schema::status)]
    status: String,
    school: String,
    grade: u8,
    class: Option<String>,
}

/// One event of a student's history (hash-chained).
#[derive(ToSchema)]
pub struct Event {
    seq: u64,
    student: String,
    jurisdiction: String,
    #[schema(schema_with = schema::transition_kind)]
    kind: String,
    #[schema(format = Date)]
    effective_date: String,
    /// RFC 3339.
    recorded_at: String,
    actor: Actor,
    before: Option<EventFacts>,
    after: EventFacts,
    input: TransitionInput,
    decision: Decision,
    /// The approval request it closed.
    request: Option<String>,
    /// Hash of the decision context stored beside the event.
    context: Option<String>,
    /// A salted digest of each personal field the event set (field → hex), so that `verify`
    /// can check the stored record against the history without the history holding the values.
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    personal: Option<serde_json::Value>,
    prev_hash: String,
    hash: String,
}

/// One step's approval or rejection.
#[derive(ToSchema)]
pub struct ApprovalRecord {
    #[schema(schema_with = schema::approval_step)]
    step: String,
    approved: bool,
    actor: Actor,
    comment: Option<String>,
    at: String,
}

/// One step of a request and its clock: `opened` (the day the step was reached) and `due`
/// (`opened` + the policy's `approval_working_days` working days of the national holiday table).
#[derive(ToSchema)]
pub struct StepClock {
    #[schema(schema_with = schema::approval_step)]
    step: String,
    /// `approved`, `rejected`, `pending` (waited for), `waiting` (not reached), `expired`,
    /// `closed` (never reached).
    status: String,
    #[schema(format = Date)]
    opened: Option<String>,
    #[schema(format = Date)]
    due: Option<String>,
    /// The count ran through a year the holiday table does not cover (weekdays counted).
    due_estimated: Option<bool>,
    by: Option<Actor>,
    at: Option<String>,
    comment: Option<String>,
}

/// A problem record's resolution.
#[derive(ToSchema)]
pub struct Resolution {
    /// `delete`, `confirm` or `correct`.
    action: String,
    comment: String,
    by: Actor,
    at: String,
    /// `applied` or `pending`.
    outcome: String,
    /// The student's history event (`seq`) that recorded it.
    event: Option<u64>,
    request: Option<String>,
}

/// A problem record (问题学籍).
#[derive(ToSchema)]
pub struct Problem {
    id: String,
    /// `duplicate_enrolment`, `temporary_number`, `not_reported`, `overdue_request`.
    kind: String,
    student: Option<String>,
    school: String,
    jurisdiction: String,
    /// Other schools concerned, who see it too.
    other_schools: Option<Vec<String>>,
    #[schema(format = Date)]
    opened: String,
    opened_at: String,
    opened_by: Actor,
    #[schema(value_type = Object)]
    details: serde_json::Value,
    /// `open` or `resolved`.
    status: String,
    resolution: Option<Resolution>,
}

/// The answer to a resolution: the transition's answer and the problem as it now stands.
#[derive(ToSchema)]
pub struct ResolveAnswer {
    #[schema(schema_with = outcome)]
    outcome: Option<String>,
    decision: Decision,
    student: Option<Student>,
    event: Option<Event>,
    request: Option<ApprovalRequest>,
    error: Option<super::error::ErrorDetail>,
    problem: Problem,
}

/// A transition waiting for approval (申请). `input.params.fields` values are withheld.
#[derive(ToSchema)]
pub struct ApprovalRequest {
    id: String,
    student: String,
    jurisdiction: String,
    school: String,
    receiving_school: Option<String>,
    /// The receiving school's jurisdiction, for a transfer from another one.
    receiving_jurisdiction: Option<String>,
    input: TransitionInput,
    /// The steps in approval order, each with its clock.
    steps: Vec<StepClock>,
    approvals: Vec<ApprovalRecord>,
    #[schema(schema_with = schema::request_status)]
    status: String,
    opened_by: Actor,
    opened_at: String,
    decision: Decision,
    final_decision: Option<Decision>,
    student_version: u64,
    /// The step to approve next; null once closed.
    #[schema(schema_with = schema::approval_step)]
    next_step: Option<String>,
}

/// The answer to an admission or a transition: `outcome` says which of the other fields are
/// present (201 `applied`: `student`, `event`; 202 `pending`: `request`; 422 `denied`: `error`;
/// 200 with `dry_run`: only `decision`).
#[derive(ToSchema)]
pub struct TransitionAnswer {
    #[schema(schema_with = outcome)]
    outcome: Option<String>,
    dry_run: Option<bool>,
    decision: Decision,
    student: Option<Student>,
    event: Option<Event>,
    request: Option<ApprovalRequest>,
    error: Option<super::error::ErrorDetail>,
}

fn outcome() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["applied", "pending", "denied"]))
        .build()
}

/// `POST /v1/policies/{jurisdiction}/evaluate`.
#[derive(ToSchema)]
pub struct DryRunAnswer {
    dry_run: bool,
    decision: Decision,
}

/// The answer to an approval or a rejection.
#[derive(ToSchema)]
pub struct StepAnswer {
    request: ApprovalRequest,
    /// `approved` (steps remain), `applied`, `denied` (by the policy now in force), `rejected`.
    outcome: String,
    /// The event, when the last approval applied the transition.
    event: Option<Event>,
}

/// Result of checking one student's history chain.
#[derive(ToSchema)]
pub struct ChainReport {
    ok: bool,
    events: u64,
    head: String,
    first_bad: Option<BadEvent>,
}

/// The first event that does not check.
#[derive(ToSchema)]
pub struct BadEvent {
    seq: u64,
    /// e.g. `hash_mismatch`, `broken_link` (labels: `GET /v1/codes`).
    code: String,
    message: String,
}

/// `GET /v1/verify`.
#[derive(ToSchema)]
pub struct VerifyAllReport {
    ok: bool,
    students: u64,
    events: u64,
    /// `[student id, chain report]` pairs.
    chain_failures: Vec<Value>,
    stats_failures: Vec<BTreeMap<String, Value>>,
    /// Every recorded decision reproduced under its recorded version.
    decisions: BTreeMap<String, Value>,
    logs: Vec<BTreeMap<String, Value>>,
}

/// One student the sweep changed.
#[derive(ToSchema)]
pub struct SweepApplied {
    student: String,
    event: Event,
}

/// A student whose deadline rule failed (nothing applied).
#[derive(ToSchema)]
pub struct SweepFailure {
    student: String,
    code: String,
    message: String,
}

/// `POST /v1/sweeps`.
#[derive(ToSchema)]
pub struct SweepReport {
    #[schema(format = Date)]
    as_of: String,
    evaluated: u64,
    applied: Vec<SweepApplied>,
    failed: Vec<SweepFailure>,
    /// Requests closed `expired` (pending longer than `request_expiry_days`).
    expired_requests: Vec<String>,
    /// Problem records opened (`not_reported`, `overdue_request`).
    problems: Vec<String>,
}

// ---- responses: schools, tokens, policies, ops -----------------------------------------

/// One term of a school's calendar.
#[derive(ToSchema)]
pub struct Term {
    term: String,
    #[schema(format = Date)]
    starts: String,
    #[schema(format = Date)]
    report_deadline: Option<String>,
}

/// A school.
#[derive(ToSchema)]
pub struct School {
    id: String,
    name: String,
    jurisdiction: String,
    area: Option<String>,
    #[schema(schema_with = schema::level)]
    level: String,
    kind: Option<String>,
    calendar: Vec<Term>,
}

/// A token as stored: never the secret.
#[derive(ToSchema)]
pub struct TokenRecord {
    id: String,
    #[schema(schema_with = schema::role)]
    role: String,
    jurisdiction: Option<String>,
    area: Option<String>,
    school: Option<String>,
    class: Option<String>,
    student: Option<String>,
    label: Option<String>,
    created_at: String,
    created_by: Option<String>,
    revoked: bool,
    expires_at: Option<String>,
}

/// `POST /v1/tokens`: the record and, this once, the token.
#[derive(ToSchema)]
pub struct CreatedToken {
    id: String,
    #[schema(schema_with = schema::role)]
    role: String,
    jurisdiction: Option<String>,
    area: Option<String>,
    school: Option<String>,
    class: Option<String>,
    student: Option<String>,
    label: Option<String>,
    created_at: String,
    created_by: Option<String>,
    revoked: bool,
    expires_at: Option<String>,
    /// The bearer token: shown once, null in a replayed answer (`Idempotency-Key`).
    token: Option<String>,
    token_withheld: bool,
}

/// A policy package version.
#[derive(ToSchema)]
pub struct PolicySummary {
    id: String,
    name: String,
    extends: Option<String>,
    version: String,
    content_hash: String,
    #[schema(format = Date)]
    effective_from: String,
    /// The laws and notices it cites (`GET /v1/jurisdictions`).
    documents: Option<Vec<Value>>,
    /// Its rules (`GET /v1/policies/{jurisdiction}`, `PUT`).
    rules: Option<Vec<BTreeMap<String, Value>>>,
    manifest: Option<BTreeMap<String, Value>>,
    /// Relative path → file text.
    files: Option<BTreeMap<String, String>>,
    versions: Option<Vec<BTreeMap<String, Value>>>,
}

/// `POST /v1/policies/{jurisdiction}/impact`: the decisions a candidate would change.
#[derive(ToSchema)]
pub struct ImpactReport {
    jurisdiction: String,
    candidate_hash: String,
    replayed_events: u64,
    replayed_requests: u64,
    changed: Vec<BTreeMap<String, Value>>,
    by_school: BTreeMap<String, u64>,
    by_kind: BTreeMap<String, u64>,
    by_outcome: BTreeMap<String, u64>,
}

/// `GET /healthz`.
#[derive(ToSchema)]
pub struct Health {
    /// `ok`.
    status: String,
}

// ---- pages -----------------------------------------------------------------------------

macro_rules! page {
    ($name:ident, $item:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(ToSchema)]
        pub struct $name {
            items: Vec<$item>,
            /// Pass as `cursor` for the next page; null on the last.
            next_cursor: Option<String>,
        }
    };
}

page!(StudentPage, Student, "A page of students.");
page!(
    EventPage,
    Event,
    "A page of a student's history, oldest first."
);
page!(RequestPage, ApprovalRequest, "A page of approval requests.");
page!(
    ProblemPage,
    Problem,
    "A page of problem records (问题学籍)."
);
page!(SchoolPage, School, "A page of schools.");
page!(TokenPage, TokenRecord, "A page of tokens.");
page!(PolicyPage, PolicySummary, "Policy packages in force.");

// ---- codes -----------------------------------------------------------------------------

/// A code and its Chinese label.
#[derive(ToSchema)]
pub struct Code {
    code: String,
    label: String,
    /// 学籍变动代码 (transition kinds the national system records under one).
    national_code: Option<String>,
}

/// `GET /v1/codes`: every code the API uses, with its label.
#[derive(ToSchema)]
pub struct Codes {
    statuses: Vec<Code>,
    transition_kinds: Vec<Code>,
    reasons: Vec<Code>,
    document_kinds: Vec<Code>,
    approval_steps: Vec<Code>,
    request_statuses: Vec<Code>,
    /// Kinds of problem records (问题学籍).
    problem_kinds: Vec<Code>,
    levels: Vec<Code>,
    roles: Vec<Code>,
    /// Every 学籍变动代码 with its label.
    national_change_codes: Vec<Code>,
    /// Every error code (`error.code`, `details.errors[].code`, import rows, policy load
    /// errors, verification problems).
    errors: Vec<Code>,
}

// ---- rosters, statistics, import, logs -------------------------------------------------

/// `GET /v1/schools/{id}/roster?format=json`: a page of the roster (CSV and XLSX are files).
#[derive(ToSchema)]
pub struct RosterPage {
    /// One row per student, the roster's columns (masked by role).
    items: Vec<BTreeMap<String, Value>>,
    next_cursor: Option<String>,
    /// School id.
    school: String,
    #[schema(schema_with = schema::roster_kind)]
    kind: String,
    kind_zh: String,
    #[schema(format = Date)]
    as_of: String,
    year: i32,
    total: u64,
}

/// `GET /v1/stats`: counts, 巩固率 per cohort, the school year's 辍学率.
#[derive(ToSchema)]
pub struct Stats {
    school: Option<String>,
    jurisdiction: String,
    area: Option<String>,
    #[schema(format = Date)]
    as_of: String,
    students: u64,
    with_xueji: u64,
    in_school: u64,
    /// Status → count.
    by_status: BTreeMap<String, u64>,
    by_grade: Vec<BTreeMap<String, Value>>,
    by_class: Vec<BTreeMap<String, Value>>,
    /// Per entry year: entered, still with 学籍, 巩固率.
    cohorts: Vec<BTreeMap<String, Value>>,
    dropout: BTreeMap<String, Value>,
}

/// One row of an import, with its errors.
#[derive(ToSchema)]
pub struct ImportRow {
    /// The row number as a spreadsheet shows it (the header is row 1).
    row: u64,
    ok: bool,
    student: Option<String>,
    errors: Vec<ImportRowError>,
}

/// An error of one row's field (codes: `GET /v1/codes`).
#[derive(ToSchema)]
pub struct ImportRowError {
    code: String,
    field: String,
    message: String,
}

/// `POST /v1/students/import`.
#[derive(ToSchema)]
pub struct ImportReport {
    ok: bool,
    dry_run: bool,
    partial: bool,
    total: u64,
    valid: u64,
    stored: u64,
    failed: u64,
    rows: Vec<ImportRow>,
    /// With `register=true`: the registration batches started (one per school).
    batches: Option<Vec<String>>,
    /// On 422 (`import_rejected`): nothing was stored.
    error: Option<super::error::ErrorDetail>,
}

/// A jurisdiction log's checkpoint (size + RFC 9162 root).
#[derive(ToSchema)]
pub struct Checkpoint {
    jurisdiction: String,
    size: u64,
    root: String,
    taken_at: String,
}

page!(
    CheckpointPage,
    Checkpoint,
    "Checkpoints, one per jurisdiction."
);

/// A problem found in a jurisdiction's log.
#[derive(ToSchema)]
pub struct LogProblem {
    /// e.g. `event_altered`, `rolled_back` (labels: `GET /v1/codes`).
    code: String,
    index: Option<u64>,
    student: Option<String>,
    seq: Option<u64>,
    message: String,
}

/// A log checked against a checkpoint.
#[derive(ToSchema)]
pub struct LogReport {
    jurisdiction: String,
    ok: bool,
    size: u64,
    root: String,
    checkpoint: Option<Checkpoint>,
    problems: Vec<LogProblem>,
}

/// `POST /v1/checkpoints/verify`.
#[derive(ToSchema)]
pub struct CheckpointsReport {
    ok: bool,
    logs: Vec<LogReport>,
}

/// `GET /v1/jurisdictions/{id}/consistency`: RFC 9162 §2.1.4.
#[derive(ToSchema)]
pub struct ConsistencyProof {
    jurisdiction: String,
    old_size: u64,
    old_root: String,
    new_size: u64,
    new_root: String,
    proof: Vec<String>,
}

/// `POST /v1/backups`.
#[derive(ToSchema)]
pub struct Backup {
    /// Path of the copy on the server.
    file: String,
    records: u64,
    checkpoints: Vec<Checkpoint>,
}

// ---- batches (`/v1/batches`) -------------------------------------------------------------

/// `POST /v1/batches`: one kind of transition for many students of one school.
#[derive(ToSchema)]
pub struct BatchSpec {
    /// `register`, `promote`, `graduate`, `complete`, `repeat_grade`, `change_class`,
    /// `semester_register`.
    kind: String,
    school: String,
    /// Select this grade (and `class`) of the school; or list `students`; neither: the whole school.
    grade: Option<u8>,
    class: Option<String>,
    students: Option<Vec<String>>,
    #[schema(format = Date)]
    effective_date: String,
    #[schema(schema_with = schema::reason)]
    reason: Option<String>,
    /// Shared by every student, as in a single transition of the kind.
    params: Option<BTreeMap<String, Value>>,
    documents: Option<Vec<Document>>,
    /// `promote`: old class → new class; a class not listed keeps its name.
    class_map: Option<BTreeMap<String, String>>,
    /// The school's last grade where its system differs from the level's usual one (五四学制
    /// junior: 4): `promote` skips it ("graduate instead"), `graduate`/`complete` take only it.
    top_grade: Option<u8>,
}

/// `POST /v1/batches` (not a dry run): the batch runs in the background.
#[derive(ToSchema)]
pub struct BatchStarted {
    id: String,
    /// `running`.
    status: String,
    #[schema(schema_with = schema::transition_kind)]
    kind: String,
    school: String,
    /// Students selected.
    total: u64,
}

/// A batch's counts of students by outcome.
#[derive(ToSchema)]
pub struct BatchCounts {
    applied: u64,
    pending: u64,
    denied: u64,
    skipped: u64,
}

/// A rule that decided a student of a batch.
#[derive(ToSchema)]
pub struct BatchItemRule {
    id: String,
    citation: String,
    message: String,
}

/// One student's line of a batch report.
#[derive(ToSchema)]
pub struct BatchItem {
    student: String,
    name: String,
    grade: u8,
    class: Option<String>,
    /// `applied`, `pending`, `denied`, `skipped`.
    outcome: String,
    rules: Vec<BatchItemRule>,
    missing_documents: Vec<String>,
    /// The approval request opened (`pending`).
    request: Option<String>,
    /// The event's sequence number in the student's history (`applied`).
    event: Option<u64>,
    /// Why skipped or denied (Chinese).
    reason: Option<String>,
}

/// `POST /v1/batches?dry_run=true`: every student's item; nothing stored.
#[derive(ToSchema)]
pub struct BatchDryRun {
    #[schema(schema_with = schema::transition_kind)]
    kind: String,
    school: String,
    dry_run: bool,
    counts: BatchCounts,
    items: Vec<BatchItem>,
}

/// `GET /v1/batches/{id}`: status, counts, a page of items.
#[derive(ToSchema)]
pub struct BatchView {
    id: String,
    #[schema(schema_with = schema::transition_kind)]
    kind: String,
    school: String,
    /// `running`, `done`, `failed`.
    status: String,
    #[schema(format = Date)]
    effective_date: String,
    created_at: String,
    finished_at: Option<String>,
    total: u64,
    counts: BatchCounts,
    /// Why a `failed` batch stopped; its items say which students were done.
    error: Option<String>,
    items: Vec<BatchItem>,
    next_cursor: Option<String>,
}

/// `POST /v1/batches/{id}/approve`.
#[derive(ToSchema)]
pub struct BatchApproveCounts {
    /// Approved; the request waits for a later step.
    approved: u64,
    /// Approved at the last step: applied.
    applied: u64,
    /// Approved, but the policy in force now refuses.
    denied: u64,
    /// Not this caller's step now, or no longer pending.
    skipped: u64,
}
