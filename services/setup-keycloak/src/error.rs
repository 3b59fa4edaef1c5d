//! Failures, sorted into classes that the exit code tells apart, so automation can decide
//! what to do next (fix the input, wait and retry, fix credentials, look at the target).

use std::fmt;

/// What kind of failure stopped the run; each has its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Flags, Terraform outputs or the realm spec are missing or malformed. Nothing was
    /// changed: every input is checked before the first write.
    Input,
    /// A host did not resolve, did not answer, or did not become ready in time.
    Unreachable,
    /// A system refused the credentials (Keycloak admin, a database, AWS).
    Credentials,
    /// A target refused or failed a change (Keycloak, Secrets Manager, a database).
    Apply,
    /// Everything was set up, but the end-to-end check failed.
    Validation,
    /// A fault in this program.
    Internal,
}

impl FailureClass {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Internal => 1,
            Self::Input => 2,
            Self::Unreachable => 3,
            Self::Credentials => 4,
            Self::Apply => 5,
            Self::Validation => 6,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Input => "bad input",
            Self::Unreachable => "unreachable",
            Self::Credentials => "credentials refused",
            Self::Apply => "change failed",
            Self::Validation => "end-to-end check failed",
            Self::Internal => "internal error",
        }
    }
}

/// A failure: its class, what went wrong, and what to do next.
#[derive(Debug)]
pub struct SetupError {
    pub class: FailureClass,
    pub message: String,
    /// The next thing to try, when there is one to suggest.
    pub hint: Option<String>,
}

impl SetupError {
    pub fn new(class: FailureClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
            hint: None,
        }
    }

    pub fn input(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Input, message)
    }

    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Unreachable, message)
    }

    pub fn credentials(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Credentials, message)
    }

    pub fn apply(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Apply, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Validation, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(FailureClass::Internal, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Classifies a transport error from an HTTP call to `what`.
    pub fn from_http(what: &str, e: &reqwest::Error) -> Self {
        if e.is_connect() || e.is_timeout() {
            Self::unreachable(format!("{what}: {}", error_chain(e)))
        } else {
            Self::apply(format!("{what}: {}", error_chain(e)))
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  next: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SetupError {}

pub type Result<T, E = SetupError> = std::result::Result<T, E>;

/// An error with its sources, on one line (reqwest hides the useful part in the chain).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
