//! Parsing of request input that every service's API shares: JSON bodies and query parameters,
//! with errors that name the field at fault.
//!
//! Each service wraps these in its own axum extractors (which know its body limit and error
//! type) and converts [`InputError`] into its error enum. The rules:
//! - a JSON body must be sent as `application/json` (or `application/*+json`) and be a JSON
//!   object; syntax errors are `MalformedJson` (400), shape errors `Invalid` (422) naming the
//!   JSON path (`governance.owner_team`, `scopes[2]`), unknown fields included when the target
//!   type denies them;
//! - query parameters outside an endpoint's list, repeated ones and values over 1 KiB are
//!   refused (`InvalidQuery`, 400), naming the parameter;
//! - a body over the endpoint's limit is `PayloadTooLarge` (413).
//!
//! [`InputError::to_api`] is the one mapping of these errors to the envelope; the services'
//! error enums carry an `InputError` and hand it there.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::time::Timestamp;
use crate::validate::FieldError;

/// Why request input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the body must be sent as JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("{detail}")]
    MalformedJson {
        field: Option<String>,
        detail: String,
    },
    #[error(transparent)]
    Invalid(FieldError),
    #[error("query parameter {}: {}", .0.field, .0.message)]
    InvalidQuery(FieldError),
    /// The body exceeds the limit (bytes).
    #[error("the request body exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
}

impl InputError {
    /// The envelope: 415 `unsupported_media_type`, 400 `invalid_json` (with the field when
    /// one is at fault), 422 `invalid_request`, 400 `invalid_query`, 413 `payload_too_large`.
    pub fn to_api(&self) -> ApiError {
        use axum::http::StatusCode;
        match self {
            InputError::UnsupportedMediaType => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            InputError::PayloadTooLarge(limit) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body exceeds the limit of {limit} bytes"),
            ),
            InputError::InvalidQuery(f) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("query parameter {}: {}", f.field, f.message),
            )
            .with_field(f.field.clone()),
            InputError::MalformedJson { field, detail } => {
                let e = ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", detail.clone());
                match field {
                    Some(f) => e.with_field(f.clone()),
                    None => e,
                }
            }
            InputError::Invalid(f) => ApiError::invalid_field(f.field.clone(), f.message.clone()),
        }
    }
}

/// Whether the request declares a JSON body.
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

fn describe(path: &serde_path_to_error::Path, message: &str) -> (Option<String>, String) {
    let mut field = path.to_string();
    if field == "." || field.is_empty() {
        field.clear();
    }
    if (message.starts_with("missing field") || message.starts_with("unknown field"))
        && let Some(name) = backticked(message)
    {
        // serde_path_to_error already ends the path with an unknown field's name.
        let already_named = field == name || field.ends_with(&format!(".{name}"));
        if !already_named {
            field = if field.is_empty() {
                name
            } else {
                format!("{field}.{name}")
            };
        }
    }
    // serde reports positions in the whole document; they add nothing to a field path.
    let message = match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    ((!field.is_empty()).then_some(field), message.to_owned())
}

/// Parses JSON bytes into `T`: syntax errors and non-objects are `MalformedJson`, shape errors
/// `Invalid` naming the field.
pub fn parse_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, InputError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| InputError::MalformedJson {
            field: None,
            detail: format!("the body is not valid JSON: {e}"),
        })?;
    if !value.is_object() {
        // serde would read an array positionally into a struct; say what is expected instead.
        return Err(InputError::MalformedJson {
            field: None,
            detail: "the body must be a JSON object".to_owned(),
        });
    }
    parse_json_value(value)
}

/// Deserializes an already parsed value with the same error rules.
pub fn parse_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, InputError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let (field, message) = describe(e.path(), &e.inner().to_string());
        InputError::Invalid(FieldError::new(
            field.unwrap_or_else(|| "body".to_owned()),
            message,
        ))
    })
}

/// Query parameters, each at most once; names outside the endpoint's list are refused.
#[derive(Debug, Clone, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, InputError> {
        let mut map = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !allowed.contains(&k.as_ref()) {
                let supported = if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                };
                return Err(Self::bad(
                    &k,
                    format!("is not supported here; supported: {supported}"),
                ));
            }
            if v.len() > 1024 {
                return Err(Self::bad(&k, "must be at most 1024 bytes"));
            }
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(Self::bad(&k, "is given more than once"));
            }
        }
        Ok(Self(map))
    }

    fn bad(name: &str, message: impl Into<String>) -> InputError {
        InputError::InvalidQuery(FieldError::new(name, message))
    }

    /// The value of `name`; an empty value counts as absent.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn limit(&self, name: &str, max: u32, default: u32) -> Result<u32, InputError> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(Self::bad(
                    name,
                    format!("must be a whole number from 1 to {max} (got {v:?})"),
                )),
            },
        }
    }

    pub fn timestamp(&self, name: &str) -> Result<Option<Timestamp>, InputError> {
        self.text(name)
            .map(|v| {
                Timestamp::parse(v).map_err(|_| {
                    Self::bad(
                        name,
                        format!(
                            "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z (got {v:?})"
                        ),
                    )
                })
            })
            .transpose()
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, InputError> {
        match self.text(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(Self::bad(
                name,
                format!("must be true or false (got {other:?})"),
            )),
        }
    }

    /// An opaque cursor made by [`encode_cursor`]: the key of the last item of a page.
    pub fn cursor(&self, name: &str) -> Result<Option<String>, InputError> {
        self.text(name)
            .map(|v| {
                decode_cursor(v).ok_or_else(|| {
                    Self::bad(
                        name,
                        "is not a cursor this API issued; pass next_cursor back unchanged",
                    )
                })
            })
            .transpose()
    }

    /// The value of `name` checked by `parse`, whose error message is reported for `name`.
    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, InputError> {
        self.text(name)
            .map(|v| parse(v).map_err(|m| Self::bad(name, m)))
            .transpose()
    }
}

/// An opaque page cursor holding the key of the last item returned.
pub fn encode_cursor(key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("k:{key}"))
}

fn decode_cursor(text: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    s.strip_prefix("k:")
        .map(str::to_owned)
        .filter(|k| k.len() <= 256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(
        dead_code,
        reason = "only the errors of deserializing it are looked at"
    )]
    struct Body {
        name: String,
        inner: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(
        dead_code,
        reason = "only the errors of deserializing it are looked at"
    )]
    struct Inner {
        count: u32,
    }

    fn field_of(json: &str) -> Option<String> {
        match parse_json_bytes::<Body>(json.as_bytes()).unwrap_err() {
            InputError::Invalid(e) => Some(e.field),
            _ => None,
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"name": 1, "inner": {"count": 1}}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of(r#"{"name": "x", "inner": {"count": -1}}"#).as_deref(),
            Some("inner.count")
        );
        assert_eq!(field_of(r#"{"name": "x"}"#).as_deref(), Some("inner"));
        assert_eq!(
            field_of(r#"{"name": "x", "inner": {"count": 1, "extra": 2}}"#).as_deref(),
            Some("inner.extra")
        );
        assert!(matches!(
            parse_json_bytes::<Body>(b"[1]"),
            Err(InputError::MalformedJson { .. })
        ));
    }

    #[test]
    fn query_parameters_are_listed_single_and_bounded() {
        assert!(Params::parse(Some("a=1&a=2"), &["a"]).is_err());
        assert!(Params::parse(Some("b=1"), &["a"]).is_err());
        let p = Params::parse(
            Some("limit=5&since=2026-01-01T00:00:00Z"),
            &["limit", "since"],
        )
        .unwrap();
        assert_eq!(p.limit("limit", 10, 1).unwrap(), 5);
        assert!(p.timestamp("since").unwrap().is_some());
        let p = Params::parse(Some("limit=50"), &["limit"]).unwrap();
        assert!(p.limit("limit", 10, 1).is_err());
    }
}
