//! The axum extractors of JSON APIs that every service shares: a JSON body ([`ApiJson`]) and
//! path parameters ([`ApiPath`]), refused in the error envelope through [`InputError::to_api`].
//!
//! The rules:
//! - a body is read only when the request declares JSON (415 otherwise) and only up to the
//!   service's limit, [`BodyLimit`], which its state provides (`FromRef`); over it is 413;
//! - the body is parsed by [`crate::input::parse_json_bytes`], so errors name the field;
//! - a path parameter that does not decode (bad percent-encoding, not a number) is 422
//!   `invalid_request` on the field `path`.
//!
//! Their rejection is [`InputError`] itself (it answers with its envelope), so a handler's own
//! error type never needs to know about body reading.

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::input::{self, InputError};
use crate::validate::FieldError;

/// The largest request body a service accepts (bytes): `max_body_bytes` of its config.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl IntoResponse for InputError {
    fn into_response(self) -> Response {
        self.to_api().into_response()
    }
}

/// A JSON body, parsed with precise errors.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
    BodyLimit: FromRef<S>,
{
    type Rejection = InputError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, BodyLimit::from_ref(state).0).await?;
        Ok(ApiJson(input::parse_json_bytes(&bytes)?))
    }
}

/// The body of a request that declares JSON, at most `limit` bytes (this request's limit
/// replaces the router's `DefaultBodyLimit`, so an endpoint may allow more than the rest).
pub async fn json_bytes(req: Request, limit: usize) -> Result<Bytes, InputError> {
    use tower::{Layer, ServiceExt};
    if !input::is_json(req.headers()) {
        return Err(InputError::UnsupportedMediaType);
    }
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
            InputError::PayloadTooLarge(limit)
        } else {
            InputError::MalformedJson {
                field: None,
                detail: format!("the body could not be read: {}", rejection.body_text()),
            }
        }
    })
}

/// Path parameters; a malformed one (bad percent-encoding) is refused in the envelope.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = InputError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|rejection| {
                InputError::Invalid(FieldError::new(
                    "path",
                    format!("is not a valid path parameter: {}", rejection.body_text()),
                ))
            })
    }
}
