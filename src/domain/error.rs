//! Input errors a registrar can act on: a stable code, the field, and a Chinese message.

use serde::{Deserialize, Serialize};

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message} ({code})")]
pub struct FieldError {
    /// Stable snake_case code, e.g. `id_card_check_digit`.
    pub code: String,
    /// Dotted path of the field, e.g. `guardians[0].phone`.
    pub field: String,
    /// What is wrong, in Chinese, for the registrar.
    pub message: String,
}

impl FieldError {
    pub fn new(code: &str, field: &str, message: impl Into<String>) -> Self {
        FieldError {
            code: code.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error, reported under another field name (e.g. `id_card` → `params.fields.id_card`).
    #[must_use]
    pub fn at(mut self, field: &str) -> Self {
        self.field = field.into();
        self
    }
}

/// Every invalid field of one input, so a form can show them all at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("invalid input: {}", .errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct InvalidInput {
    pub errors: Vec<FieldError>,
}

impl From<FieldError> for InvalidInput {
    fn from(e: FieldError) -> Self {
        InvalidInput { errors: vec![e] }
    }
}

/// Collects field errors while validating one input.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn check<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }
    pub fn push(&mut self, e: FieldError) {
        self.errors.push(e);
    }
    pub fn finish(self) -> Result<(), InvalidInput> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(InvalidInput {
                errors: self.errors,
            })
        }
    }
}
