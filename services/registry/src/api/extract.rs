//! Request extractors that turn every malformed input into the error envelope, naming the
//! field: JSON bodies (content type, size limit, syntax, types, unknown fields) and path
//! parameters with core's `ApiJson` / `ApiPath` (`mcpgw_core::extract`), the larger bodies of
//! gateway reports (as a JSON value or as bytes), query parameters (unknown, repeated or malformed ones) and
//! `If-Match` revisions.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{HeaderMap, header};
pub use mcpgw_core::extract::{ApiJson, ApiPath};
use mcpgw_core::extract::{BodyLimit, json_bytes};
pub use mcpgw_core::input::{Params, encode_cursor, parse_json_bytes, parse_json_value};
use mcpgw_core::validate::FieldError;

use crate::app::AppState;
use crate::error::RegistryError;

/// The registry's body limit for [`ApiJson`]: `max_body_bytes`.
impl FromRef<AppState> for BodyLimit {
    fn from_ref(state: &AppState) -> Self {
        BodyLimit(state.config.max_body_bytes)
    }
}

/// A JSON body of at most `LIMIT` bytes (or `max_body_bytes`, if larger), for the endpoints
/// whose bodies are larger by nature (gateway reports). Parsed into a JSON value only: the
/// endpoint checks sizes before it deserializes.
pub struct LargeJson<const LIMIT: usize>(pub serde_json::Value);

impl<const LIMIT: usize> FromRequest<AppState> for LargeJson<LIMIT> {
    type Rejection = RegistryError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let LargeBody(bytes) = LargeBody::<LIMIT>::from_request(req, state).await?;
        Ok(LargeJson(parse_json_bytes(&bytes)?))
    }
}

/// The bytes of a JSON body (content type checked) of at most `LIMIT` bytes (or
/// `max_body_bytes`, if larger), for an endpoint that parses them itself: gateway audit
/// batches, read in one pass straight into their type.
pub struct LargeBody<const LIMIT: usize>(pub Bytes);

impl<const LIMIT: usize> FromRequest<AppState> for LargeBody<LIMIT> {
    type Rejection = RegistryError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = LIMIT.max(state.config.max_body_bytes);
        Ok(LargeBody(json_bytes(req, limit).await?))
    }
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
    #[expect(dead_code, reason = "only deserialized: the tests look at the errors")]
    struct Body {
        name: String,
        inner: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only deserialized: the tests look at the errors")]
    struct Inner {
        count: u32,
    }

    fn field_of(json: &str) -> (Option<String>, String) {
        let api =
            RegistryError::from(parse_json_bytes::<Body>(json.as_bytes()).unwrap_err()).to_api();
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
