//! Request extractors that turn every malformed input into the error envelope, naming the
//! field: JSON bodies (content type, size limit, syntax, types, unknown fields), query
//! parameters (unknown, repeated or malformed ones) and `If-Match` revisions.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use mcpgw_core::time::Timestamp;
use mcpgw_core::validate::FieldError;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::RegistryError;

/// A JSON body, parsed with precise errors.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = RegistryError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
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
            .unwrap_or(false);
        if !is_json {
            return Err(RegistryError::UnsupportedMediaType);
        }
        let limit = state.config.max_body_bytes;
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                RegistryError::PayloadTooLarge(limit)
            } else {
                RegistryError::MalformedJson {
                    field: None,
                    detail: format!("the body could not be read: {}", rejection.body_text()),
                }
            }
        })?;
        parse_json_bytes(&bytes).map(ApiJson)
    }
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

/// Parses JSON bytes into `T`. Syntax errors and bodies that are not a JSON object → 400
/// `invalid_json`; shape errors → 422 `invalid_request` naming the field.
pub fn parse_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, RegistryError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| RegistryError::MalformedJson {
            field: None,
            detail: format!("the body is not valid JSON: {e}"),
        })?;
    if !value.is_object() {
        // serde would read an array positionally into a struct; say what is expected instead.
        return Err(RegistryError::MalformedJson {
            field: None,
            detail: "the body must be a JSON object".to_owned(),
        });
    }
    parse_json_value(value)
}

/// Deserializes an already parsed value with the same error rules.
pub fn parse_json_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, RegistryError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let (field, message) = describe(e.path(), &e.inner().to_string());
        FieldError::new(field.unwrap_or_else(|| "body".to_owned()), message).into()
    })
}

/// Query parameters, each at most once; names outside the endpoint's list are refused.
pub struct Params(BTreeMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, RegistryError> {
        let mut map = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            if !allowed.contains(&k.as_ref()) {
                return Err(RegistryError::InvalidQuery(FieldError::new(
                    k.as_ref(),
                    format!("is not supported here; supported: {}", allowed.join(", ")),
                )));
            }
            if v.len() > 1024 {
                return Err(RegistryError::InvalidQuery(FieldError::new(
                    k.as_ref(),
                    "must be at most 1024 bytes",
                )));
            }
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(RegistryError::InvalidQuery(FieldError::new(
                    k.as_ref(),
                    "is given more than once",
                )));
            }
        }
        Ok(Self(map))
    }

    fn bad(name: &str, message: impl Into<String>) -> RegistryError {
        RegistryError::InvalidQuery(FieldError::new(name, message))
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, RegistryError> {
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

    pub fn limit(&self, name: &str, max: u32, default: u32) -> Result<u32, RegistryError> {
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

    pub fn timestamp(&self, name: &str) -> Result<Option<Timestamp>, RegistryError> {
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

    pub fn parsed<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, RegistryError> {
        self.text(name)
            .map(|v| parse(v).map_err(|m| Self::bad(name, m)))
            .transpose()
    }

    /// An opaque cursor made by [`encode_cursor`].
    pub fn cursor(&self, name: &str) -> Result<Option<String>, RegistryError> {
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
}

impl FromRequestParts<AppState> for Params {
    type Rejection = RegistryError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        // Endpoints re-parse with their own allow-list; this form accepts none.
        Params::parse(parts.uri.query(), &[])
    }
}

/// Path parameters; a malformed one (bad percent-encoding) is refused in the envelope.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for ApiPath<T> {
    type Rejection = RegistryError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|rejection| {
                FieldError::new(
                    "path",
                    format!("is not a valid path parameter: {}", rejection.body_text()),
                )
                .into()
            })
    }
}

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("k:{key}"))
}

fn decode_cursor(text: &str) -> Option<String> {
    let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
    let s = String::from_utf8(raw).ok()?;
    s.strip_prefix("k:")
        .map(str::to_owned)
        .filter(|k| k.len() <= 256)
}

/// The revision named by `If-Match` (`"3"`, `W/"3"` or `3`), if any.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, RegistryError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<u64>().map(Some).map_err(|_| {
        FieldError::new(
            "If-Match",
            "must be the revision (ETag) of the server you read, e.g. \"3\"",
        )
        .into()
    })
}

pub fn etag(revision: u64) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{revision}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn field_of(json: &str) -> (Option<String>, String) {
        let api = parse_json_bytes::<Body>(json.as_bytes())
            .unwrap_err()
            .to_api();
        (api.body.field, api.body.code)
    }

    #[test]
    fn json_errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"name": 1, "inner": {"count": 1}}"#),
            (Some("name".into()), "invalid_request".into())
        );
        assert_eq!(
            field_of(r#"{"name": "x", "inner": {"count": -1}}"#)
                .0
                .as_deref(),
            Some("inner.count")
        );
        assert_eq!(field_of(r#"{"name": "x"}"#).0.as_deref(), Some("inner"));
        assert_eq!(
            field_of(r#"{"name": "x", "inner": {"count": 1, "extra": 2}}"#)
                .0
                .as_deref(),
            Some("inner.extra")
        );
        assert_eq!(field_of(r#"{"name": "x", "#), (None, "invalid_json".into()));
    }

    #[test]
    fn cursors_round_trip_and_forgeries_are_refused() {
        let c = encode_cursor("weather");
        let p = Params::parse(Some(&format!("cursor={c}")), &["cursor"]).unwrap();
        assert_eq!(p.cursor("cursor").unwrap().as_deref(), Some("weather"));
        let p = Params::parse(Some("cursor=weather"), &["cursor"]).unwrap();
        assert!(p.cursor("cursor").is_err());
        assert!(Params::parse(Some("a=1&a=2"), &["a"]).is_err());
        assert!(Params::parse(Some("b=1"), &["a"]).is_err());
    }
}
