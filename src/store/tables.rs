//! Table definitions and key layouts. Keys lead with the jurisdiction wherever a record belongs to
//! one, so a sharded backend can split the key space by jurisdiction. The separator is U+001F
//! (unit separator), which no validated id or name contains.

pub use super::kv::Table;

pub const META: Table = Table::new("meta");
pub const SCHOOLS: Table = Table::new("schools");
/// `jur␟student` → Student.
pub const STUDENTS: Table = Table::new("students");
/// A jurisdiction's events in the order of its log, each beside the context it was decided on:
/// `jur␟index(12)␟e` → Event, `jur␟index(12)␟c` → its DecisionContext (whose hash is in the
/// event). Appended, so the events of one commit fill the same few leaves, however many
/// students they belong to (schema 8; keyed by student, in two tables, before). A student's
/// events are found from their timeline steps. Key builders and parsers are in `store::records`.
pub const EVENT_RECORDS: Table = Table::new("event_records");
/// What rosters and statistics read of a student's history, compact, apart from the events:
///
/// - `jur␟student␟seq(12)` → the timeline step of event `seq` (sequence, kind, effective date, the
///   placement after it, and the event's place in the log, a JSON array), written in the
///   event's transaction;
/// - `jur␟student␟~t` → the student's `domain::tally::TallyState` (JSON): where their history
///   stands for the statistics, so an event dated after all their others needs no timeline read.
///   Stored from a student's second event on: a new student's is their one-step timeline.
///
/// Digits sort before `~`, so the newest step and the tally state share a leaf (schema 8; the
/// tally states had a table of their own before).
pub const TIMELINES: Table = Table::new("timeline_steps");
/// `student` → jurisdiction: finds a student's key from its id alone.
pub const STUDENT_LOCATOR: Table = Table::new("student_locator");
/// `national_id␟student` → empty: every enrolment of a person (一人一号), live or ended, for
/// life. At most one of them is live (`Status::is_live`); the writer checks it (schema 9; the
/// key was the national number alone, one student per number, before).
pub const IDX_NATIONAL: Table = Table::new("idx_national_id");
/// `id_card_key␟student` → empty (the salted key of the ID number, see `store::id_card_key`):
/// every enrolment under that ID number; at most one live, all of one national number.
pub const IDX_ID_CARD: Table = Table::new("idx_id_card");
/// `digest␟student` → empty (salted digest of name, gender and birth date), for enrolments
/// without an ID number; at most one of them live.
pub const IDX_PERSON: Table = Table::new("idx_person");
/// `jur␟school␟grade(2 digits)␟class␟student` → empty.
pub const IDX_CLASS: Table = Table::new("idx_class");
/// `jur␟status␟student` → empty.
pub const IDX_STATUS: Table = Table::new("idx_status");
/// `jur␟date␟student␟kind` → empty: what the deadline sweep scans.
pub const IDX_DEADLINE: Table = Table::new("idx_deadline");
/// `request` → ApprovalRequest.
pub const REQUESTS: Table = Table::new("requests");
/// `student␟kind` → request, while a request is pending.
pub const IDX_OPEN_REQUEST: Table = Table::new("idx_open_request");
/// `jur␟status␟request` → empty.
pub const IDX_REQUEST_STATUS: Table = Table::new("idx_request_status");
/// SHA-256 of a token → TokenRecord. Tokens themselves are never stored.
pub const TOKENS: Table = Table::new("tokens");
/// token id → token hash.
pub const TOKEN_IDS: Table = Table::new("token_ids");
/// `jur␟effective_from␟content_hash` → stored policy version.
pub const POLICIES: Table = Table::new("policy_versions");
/// `jur␟index(12 digits)` → the event's 32-byte hash then its name `jur␟student␟seq(12)`: the
/// leaves of the jurisdiction's Merkle log, in the order the events were committed. The event
/// itself is stored at the same index (`EVENT_RECORDS`).
pub const LOG_LEAVES: Table = Table::new("log_leaves");
/// `jur` → the log's frontier (size and the roots of its perfect subtrees).
pub const LOG_HEADS: Table = Table::new("log_heads");
/// The tables of schemas 7 and older that the migration to schema 8 reads once on open and then
/// deletes.
pub mod legacy {
    use super::Table;
    /// `jur␟student␟seq(12)` → Event.
    pub const EVENTS: Table = Table::new("events");
    /// `jur␟student␟seq(12)` → DecisionContext.
    pub const CONTEXTS: Table = Table::new("decision_contexts");
    /// Schemas 3 to 6: `jur␟student` → all the student's steps in one JSON array.
    pub const TIMELINES: Table = Table::new("timelines");
    /// Schemas 6 and 7: `jur␟student` → TallyState.
    pub const TALLY_STATES: Table = Table::new("tally_states");
}
/// `jur␟school␟student` → empty: every school a student has been placed at by any event.
pub const IDX_SCHOOL_MEMBERS: Table = Table::new("idx_school_members");
/// `jur␟counter` → i64 (little-endian): the sum of every student's dated changes of a statistics
/// counter (`domain::tally`), what it stands at after the last step. Absent when zero.
pub const STAT_TOTALS: Table = Table::new("stat_totals");
/// `jur␟date␟counter` → i64: the sum of the changes of a counter dated on that day; statistics as
/// of a date are the totals minus the changes dated after it. Absent when zero.
pub const STAT_CHANGES: Table = Table::new("stat_changes");
/// transfer certificate id (`cert_…`) → the student admitted on it: each is used once.
pub const CERTIFICATES_USED: Table = Table::new("certificates_used");
/// `problem` → Problem (问题学籍), open or resolved; kept for ever.
pub const PROBLEMS: Table = Table::new("problems");
/// a problem's `key` (kind and what it is about) → its id, while it is open: at most one open
/// problem per key, so a daily sweep does not open the same one twice.
pub const IDX_OPEN_PROBLEM: Table = Table::new("idx_open_problem");
/// idempotency key (scoped by caller) → stored response.
pub const IDEMPOTENCY: Table = Table::new("idempotency");

/// `batch` → a batch job (`crate::batch::BatchRecord`, JSON): what was asked, the students it
/// selected, its status.
pub const BATCHES: Table = Table::new("batches");
/// `batch␟place(8)` → the report item of the batch's student at that place (JSON), written in
/// the transaction that records the student's event or request (`Command::ForBatch`).
pub const BATCH_ITEMS: Table = Table::new("batch_items");

/// The key of a batch's report item.
pub fn batch_item_key(batch: &str, index: u64) -> String {
    key(&[batch, &format!("{index:08}")])
}

pub const ALL: &[Table] = &[
    META,
    SCHOOLS,
    STUDENTS,
    EVENT_RECORDS,
    TIMELINES,
    STUDENT_LOCATOR,
    IDX_NATIONAL,
    IDX_ID_CARD,
    IDX_PERSON,
    IDX_CLASS,
    IDX_STATUS,
    IDX_DEADLINE,
    REQUESTS,
    IDX_OPEN_REQUEST,
    IDX_REQUEST_STATUS,
    TOKENS,
    TOKEN_IDS,
    POLICIES,
    IDEMPOTENCY,
    LOG_LEAVES,
    LOG_HEADS,
    IDX_SCHOOL_MEMBERS,
    STAT_TOTALS,
    STAT_CHANGES,
    BATCHES,
    BATCH_ITEMS,
    CERTIFICATES_USED,
    PROBLEMS,
    IDX_OPEN_PROBLEM,
];

pub const SEP: char = '\u{1f}';

pub fn key(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            s.push(SEP);
        }
        s.push_str(p);
    }
    s
}

/// The half-open key range of everything under a prefix (`prefix␟…`).
pub fn prefix_range(parts: &[&str]) -> (String, String) {
    let mut start = key(parts);
    start.push(SEP);
    let mut end = key(parts);
    end.push('\u{20}');
    (start, end)
}

pub fn seq_part(seq: u64) -> String {
    format!("{seq:012}")
}

pub fn log_index_part(index: u64) -> String {
    format!("{index:012}")
}

pub fn grade_part(grade: u8) -> String {
    format!("{grade:02}")
}
