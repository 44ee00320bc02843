use serde::{Deserialize, Serialize};

/// Where in a package a problem is: file, line and column (1-based; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptPosition {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for ScriptPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl ScriptPosition {
    pub fn from_rhai(file: &str, pos: rhai::Position) -> Self {
        ScriptPosition {
            file: file.into(),
            line: pos.line().unwrap_or(0),
            column: pos.position().unwrap_or(0),
        }
    }
}

/// A package that cannot be activated: bad manifest, a script that does not compile, a rule
/// without citation, an undeclared override. Every problem is listed, with its position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code} at {position}: {message}")]
pub struct PolicyLoadError {
    /// `policy_manifest`, `policy_syntax`, `policy_rule`, `policy_citation`, `policy_override`,
    /// `policy_base`, `policy_too_large`, `policy_too_many_files`, `policy_test_file`,
    /// `policy_too_many_cases`, `policy_tests_too_long`.
    pub code: String,
    pub position: ScriptPosition,
    pub message: String,
}

impl PolicyLoadError {
    pub fn new(code: &str, file: &str, message: impl Into<String>) -> Self {
        PolicyLoadError {
            code: code.into(),
            position: ScriptPosition {
                file: file.into(),
                line: 0,
                column: 0,
            },
            message: message.into(),
        }
    }
    pub fn at(code: &str, position: ScriptPosition, message: impl Into<String>) -> Self {
        PolicyLoadError {
            code: code.into(),
            position,
            message: message.into(),
        }
    }
}

/// An evaluation that failed: the transition is refused (fails closed) with this error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PolicyError {
    /// A rule raised an error or returned something that is not an effect.
    #[error("rule {rule} failed at {position}: {message}")]
    Script {
        code: String,
        rule: String,
        position: ScriptPosition,
        message: String,
    },
    /// No package version is in force for the jurisdiction on the date.
    #[error("no policy for {jurisdiction} on {date}")]
    NoPolicy { jurisdiction: String, date: String },
}

impl PolicyError {
    pub fn code(&self) -> &str {
        match self {
            PolicyError::Script { code, .. } => code,
            PolicyError::NoPolicy { .. } => "policy_not_found",
        }
    }
}
