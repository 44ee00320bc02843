//! The pure core: students, statuses, transitions, documents, decisions, approval requests and
//! history events. Nothing here knows about HTTP, redb or tokio (see `tests/it/architecture.rs`).

pub mod certificate;
pub mod clock;
pub mod dates;
pub mod decision;
pub mod document;
pub mod error;
pub mod event;
pub mod identity;
pub mod merkle;
pub mod problem;
pub mod replay;
pub mod request;
pub mod school;
pub mod status;
pub mod student;
pub mod tally;
pub mod timeline;
pub mod workdays;

pub use dates::Date;
pub use decision::{Decision, DecisionDeadline, Effect, FiredRule, PolicyRef, StudentChanges};
pub use document::{Document, DocumentKind, HospitalGrade, IssuerLevel};
pub use error::{FieldError, InvalidInput};
pub use event::{Event, EventFacts};
pub use identity::{CitizenId, Gender, NationalNumber};
pub use request::{ApprovalRecord, ApprovalRequest, ApprovalStep, RequestStatus, in_routing_order};
pub use school::{Level, School, Term};
pub use status::{Reason, Status, TransitionKind};
pub use student::{Deadline, Guardian, NewStudent, Student, TransferForm, TransitionInput};
pub use timeline::{Step, Timeline};

/// Who performed an action, as recorded in history. Never carries personal data: the token id and
/// role are enough to trace an action back to an account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    pub id: String,
    pub role: String,
}

impl Actor {
    pub fn system(what: &str) -> Self {
        Actor {
            id: format!("system:{what}"),
            role: "system".into(),
        }
    }
}
