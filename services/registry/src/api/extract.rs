//! Request extractors that turn every malformed input into the error envelope, naming the
//! field: JSON bodies (content type, size limit, syntax, types, unknown fields), query
//! parameters (unknown, repeated or malformed ones) and `If-Match` revisions.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use mcpgw_core::input::InputError;
use mcpgw_core::validate::FieldError;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::RegistryError;

/// A JSON body, parsed with precise errors.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = RegistryError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state.config.max_body_bytes).await?;
        Ok(ApiJson(parse_json_bytes(&bytes)?))
    }
}

/// A JSON body of at most `LIMIT` bytes (or `max_body_bytes`, if larger), for the endpoints
/// whose bodies are larger by nature (gateway audit batches). Parsed into a JSON value only:
/// the endpoint checks sizes before it deserializes.
pub struct LargeJson<const LIMIT: usize>(pub serde_json::Value);

impl<const LIMIT: usize> FromRequest<AppState> for LargeJson<LIMIT> {
    type Rejection = RegistryError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = LIMIT.max(state.config.max_body_bytes);
        let bytes = json_bytes(req, limit).await?;
        Ok(LargeJson(parse_json_bytes(&bytes)?))
    }
}

/// The body of a request that declares JSON, at most `limit` bytes.
async fn json_bytes(req: Request, limit: usize) -> Result<Bytes, RegistryError> {
    use tower::{Layer, ServiceExt};
    if !mcpgw_core::input::is_json(req.headers()) {
        return Err(RegistryError::UnsupportedMediaType);
    }
    // The router's DefaultBodyLimit is `max_body_bytes`; this request's limit replaces it.
    let read = tower::service_fn(|req: Request| async move {
        Ok::<_, std::convert::Infallible>(Bytes::from_request(req, &()).await)
    });
    let read = axum::extract::DefaultBodyLimit::max(limit).layer(read);
    let result = match read.oneshot(req).await {
        Ok(result) => result,
        Err(never) => match never {},
    };
    result.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            RegistryError::PayloadTooLarge(limit)
        } else {
            RegistryError::MalformedJson {
                field: None,
                detail: format!("the body could not be read: {}", rejection.body_text()),
            }
        }
    })
}

pub use mcpgw_core::input::{Params, encode_cursor, parse_json_bytes, parse_json_value};

impl From<InputError> for RegistryError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::UnsupportedMediaType => RegistryError::UnsupportedMediaType,
            InputError::MalformedJson { field, detail } => {
                RegistryError::MalformedJson { field, detail }
            }
            InputError::Invalid(f) => RegistryError::Invalid(f),
            InputError::InvalidQuery(f) => RegistryError::InvalidQuery(f),
        }
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
