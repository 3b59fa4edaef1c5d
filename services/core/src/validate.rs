//! Field validation helpers that name the field at fault.
//!
//! Validation happens once, at the boundary, and produces a [`FieldError`] carrying the JSON
//! path of the bad field. Past the boundary, values are held in types that cannot be invalid.

use std::fmt;

/// One invalid input field: its JSON path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field path, so nested validators can report full paths.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

impl From<FieldError> for crate::error::ApiError {
    fn from(e: FieldError) -> Self {
        crate::error::ApiError::invalid_field(e.field, e.message)
    }
}

/// Checks free text: trimmed length within `min..=max` characters and no control characters
/// other than newline and tab. Returns the trimmed text.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Result<String, FieldError> {
    let trimmed = value.trim();
    let len = trimmed.chars().count();
    if len < min {
        return Err(if min == 1 {
            FieldError::new(field, "must not be empty")
        } else {
            FieldError::new(field, format!("must be at least {min} characters"))
        });
    }
    if len > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters (got {len})"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Like [`text`] but for an optional value; empty text counts as absent.
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    match value {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => text(field, v, 1, max).map(Some),
    }
}

/// Checks a short identifier: `1..=max` characters, first an ASCII lowercase letter or digit,
/// the rest ASCII lowercase letters, digits or one of `extra`.
pub fn identifier(field: &str, value: &str, max: usize, extra: &str) -> Result<String, FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters (got {})", value.len()),
        ));
    }
    let mut chars = value.chars();
    let first = chars.next().unwrap_or(' ');
    let ok_first = first.is_ascii_lowercase() || first.is_ascii_digit();
    let ok_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c));
    if !ok_first || !ok_rest {
        return Err(FieldError::new(
            field,
            format!(
                "{value:?} is not allowed: use lowercase letters and digits{}, starting with a letter or digit",
                if extra.is_empty() {
                    String::new()
                } else {
                    format!(" and {:?}", extra)
                }
            ),
        ));
    }
    Ok(value.to_owned())
}

/// Checks a list's length and validates each element, naming `field[i]` on error.
pub fn list<T, U>(
    field: &str,
    values: &[T],
    max: usize,
    mut each: impl FnMut(&str, &T) -> Result<U, FieldError>,
) -> Result<Vec<U>, FieldError> {
    if values.len() > max {
        return Err(FieldError::new(
            field,
            format!("must have at most {max} entries (got {})", values.len()),
        ));
    }
    values
        .iter()
        .enumerate()
        .map(|(i, v)| each(&format!("{field}[{i}]"), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_the_field_and_the_limit() {
        let err = text("name", &"x".repeat(5), 1, 4).unwrap_err();
        assert_eq!(err.field, "name");
        assert!(err.message.contains("at most 4"), "{err}");
        assert_eq!(text("name", "  ok ", 1, 4).unwrap(), "ok");
        assert!(text("name", "a\u{0007}b", 1, 10).is_err());
        assert!(text("name", "   ", 1, 10).is_err());
    }

    #[test]
    fn identifier_rejects_uppercase_and_leading_punctuation() {
        assert!(identifier("tag", "Prod", 64, "-").is_err());
        assert!(identifier("tag", "-prod", 64, "-").is_err());
        assert_eq!(identifier("tag", "prod-1", 64, "-").unwrap(), "prod-1");
    }

    #[test]
    fn nested_field_paths_join_with_dots_and_brackets() {
        let e = FieldError::new("url", "bad").within("endpoint");
        assert_eq!(e.field, "endpoint.url");
        let e = FieldError::new("[2]", "bad").within("tags");
        assert_eq!(e.field, "tags[2]");
    }
}
