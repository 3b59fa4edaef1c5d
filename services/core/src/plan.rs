//! What a setup step did, or would do in a dry run: one [`Change`] per object it owns. Shared
//! by the post-deploy setup binary and the services whose schema it ensures.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// Not applicable in this run (e.g. a dev-only user in production).
    Skipped,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Unchanged => "unchanged",
            Self::Skipped => "skipped",
        }
    }
}

/// One object's outcome: `object` names it the way an operator would look for it
/// (`client mcpgw-web`, `index servers.lifecycle_path`); `detail` says what differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    pub object: String,
    pub detail: Option<String>,
}

impl Change {
    pub fn create(object: impl Into<String>) -> Self {
        Self::new(Action::Create, object, None)
    }

    pub fn update(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Action::Update, object, Some(detail.into()))
    }

    pub fn unchanged(object: impl Into<String>) -> Self {
        Self::new(Action::Unchanged, object, None)
    }

    pub fn skipped(object: impl Into<String>, why: impl Into<String>) -> Self {
        Self::new(Action::Skipped, object, Some(why.into()))
    }

    pub fn new(action: Action, object: impl Into<String>, detail: Option<String>) -> Self {
        Self {
            action,
            object: object.into(),
            detail,
        }
    }

    /// Creates and updates; what a second run must not have.
    pub fn is_change(&self) -> bool {
        matches!(self.action, Action::Create | Action::Update)
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<9} {}", self.action.as_str(), self.object)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// Counts per action, for step lines and the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped: usize,
}

impl Tally {
    pub fn of(changes: &[Change]) -> Self {
        let mut t = Self::default();
        for c in changes {
            t.add(c.action);
        }
        t
    }

    pub fn add(&mut self, action: Action) {
        match action {
            Action::Create => self.created += 1,
            Action::Update => self.updated += 1,
            Action::Unchanged => self.unchanged += 1,
            Action::Skipped => self.skipped += 1,
        }
    }

    pub fn changes(&self) -> usize {
        self.created + self.updated
    }

    pub fn merge(&mut self, other: Tally) {
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} unchanged",
            self.created, self.updated, self.unchanged
        )?;
        if self.skipped > 0 {
            write!(f, ", {} skipped", self.skipped)?;
        }
        Ok(())
    }
}
