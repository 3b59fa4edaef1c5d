//! The entry of every request, on both endpoints: the route, the token, the session a GET or
//! DELETE names, a place among the caller's open streams. A refusal here has no JSON-RPC
//! method yet, so its exit is [`refused`]; a handler can only answer it as a [`Refused`],
//! which only [`Door::refuse`] makes, so no refusal is answered unrecorded or recorded twice.

use super::*;

use crate::aggregate::SESSION_SERVER;
use crate::caller::AuthFailure;
use crate::limits::StreamPermit;

/// Whether the token may be used on the route of `server` (`mcp`: the aggregated endpoint),
/// on every request (a remembered token too): an audience its issuer is configured with, or
/// the aggregated resource `<public_url>/mcp`, is good for every route; a server's resource
/// `<public_url>/<server>/mcp` (RFC 8707) for that route only. Anything else is a token for
/// another resource: `401 invalid_token`, so the client signs in for this URL.
fn for_this_route(gw: &Gateway, caller: Caller, server: &str) -> Result<Caller, AuthFailure> {
    use mcpgw_core::token::{ResourceAudience, TokenError, resource_audience};
    let token = &caller.token;
    let configured = gw
        .config
        .auth
        .issuers
        .iter()
        .find(|i| i.issuer == token.issuer)
        .map_or(&[][..], |i| &i.audiences[..]);
    let allowed = token.audiences.iter().any(|a| {
        configured.contains(a)
            || match resource_audience(&gw.public_base, a) {
                Some(ResourceAudience::Aggregated) => true,
                Some(ResourceAudience::Server(s)) => s == server && server != SESSION_SERVER,
                None => false,
            }
    });
    if allowed {
        Ok(caller)
    } else {
        Err(AuthFailure::Invalid(TokenError::OtherResource(
            token.audiences.join(", "),
        )))
    }
}

/// A refusal its exit has recorded, ready to be answered. Handlers return
/// `Result<Response, Refused>` and end early with `?` (boxed: refusals are rare, and the
/// common path should not carry a response's size).
pub struct Refused(Box<Response>);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// Where a request came in and since when: what its refusals are recorded with. `server` is
/// the path's server, or `mcp` for the aggregated endpoint.
#[derive(Clone, Copy)]
pub(crate) struct Door<'a> {
    pub(crate) gw: &'a Gateway,
    pub(crate) server: &'a str,
    pub(crate) request_id: &'a str,
    pub(crate) started: Instant,
}

impl<'a> Door<'a> {
    /// A request that arrives now.
    pub(crate) fn new(gw: &'a Gateway, server: &'a str, request_id: &'a str) -> Self {
        Self {
            gw,
            server,
            request_id,
            started: Instant::now(),
        }
    }

    /// Records `e` by its exit and makes its answer (`id`: the JSON-RPC request it answers).
    pub(crate) fn refuse(self, e: ProxyError, id: Option<&Value>) -> Refused {
        refused(self.gw, self.server, self.request_id, self.started, &e);
        Refused(Box::new(e.into_response(id)))
    }

    /// The caller of the request's token, if the token is for this route; a 401 points at
    /// `metadata_url` (RFC 9728).
    pub(crate) async fn authenticate(
        self,
        headers: &HeaderMap,
        metadata_url: impl FnOnce() -> String,
    ) -> Result<Caller, Refused> {
        let authenticated = match self.gw.auth.authenticate(headers).await {
            Ok(caller) => for_this_route(self.gw, caller, self.server),
            Err(failure) => Err(failure),
        };
        match authenticated {
            Ok(caller) => Ok(caller),
            Err(failure) => {
                let metadata_url = metadata_url();
                let e = ProxyError::Unauthenticated {
                    failure,
                    metadata_url,
                };
                // The body is never read for a stranger, so the server may close the
                // connection once this answer is out; saying so keeps the client from sending
                // its next request (an OAuth client's retry with its new token) on it and
                // losing it to the close ("server disconnected without a response").
                let mut refused = self.refuse(e, None);
                refused
                    .0
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                Err(refused)
            }
        }
    }

    /// The session `headers` name, if they name one: it must be open for this server and
    /// caller.
    pub(crate) fn session(
        self,
        headers: &HeaderMap,
        caller: &Caller,
    ) -> Result<Option<SessionState>, Refused> {
        let Some(sid) = headers.get(SESSION_HEADER) else {
            return Ok(None);
        };
        let opened = self
            .gw
            .sessions
            .open(sid.to_str().unwrap_or(""), self.server, &caller.digest);
        match opened {
            Ok(session) => Ok(Some(session)),
            Err(e) => Err(self.refuse(ProxyError::SessionNotFound(e), None)),
        }
    }

    /// The session `what` (a GET stream, a DELETE) needs: it must be named, and open.
    pub(crate) fn required_session(
        self,
        headers: &HeaderMap,
        caller: &Caller,
        what: &'static str,
    ) -> Result<SessionState, Refused> {
        self.session(headers, caller)?
            .ok_or_else(|| self.refuse(ProxyError::SessionRequired(what), None))
    }

    /// A GET stream is the session era's: a 2026-07-28 client listens with a request.
    pub(crate) fn get_stream(self, headers: &HeaderMap) -> Result<(), Refused> {
        let modern = headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v >= jsonrpc::LATEST_MODERN);
        if modern {
            let e = ProxyError::MethodNotAllowed(
                "the 2026-07-28 protocol has no GET stream; use subscriptions/listen",
            );
            return Err(self.refuse(e, None));
        }
        Ok(())
    }

    /// A place among the caller's open streams, held as long as the stream is open.
    pub(crate) fn stream(self, caller: &Caller) -> Result<StreamPermit, Refused> {
        stream_permit(self.gw, caller).map_err(|e| self.refuse(e, None))
    }
}

/// A place among `caller`'s open streams (`streams_per_caller`), or `TooManyStreams`.
pub(crate) fn stream_permit(gw: &Gateway, caller: &Caller) -> Result<StreamPermit, ProxyError> {
    gw.streams
        .acquire(
            caller.limit_key(),
            gw.config.limits.streams_per_caller,
            &gw.metrics.open_streams,
        )
        .ok_or(ProxyError::TooManyStreams)
}

/// The entry of a request to `/{server}/…`: its route and caller, as the [`Call`] that
/// carries them on.
pub(crate) async fn enter(
    gw: AppState,
    server: &str,
    headers: &HeaderMap,
    request_id: String,
) -> Result<Call, Refused> {
    let door = Door::new(&gw, server, &request_id);
    let started = door.started;
    let routes = gw.table.current();
    let Some(route) = routes.get(server).cloned() else {
        return Err(door.refuse(ProxyError::ServerNotFound(server.to_owned()), None));
    };
    let caller = door
        .authenticate(headers, || {
            caller::resource_metadata_url(&gw.public_base, Some(server))
        })
        .await?;
    Ok(Call {
        gw,
        routes,
        route,
        caller,
        request_id,
        started,
    })
}

impl Call {
    /// The door this request came in by, for refusals after its entry.
    pub(crate) fn door(&self) -> Door<'_> {
        Door {
            gw: &self.gw,
            server: self.server(),
            request_id: &self.request_id,
            started: self.started,
        }
    }
}

/// Reads a body of at most `max` bytes (read only after the caller is authenticated, so
/// strangers cannot make the gateway read megabytes).
pub(crate) async fn read_body(body: Body, max: usize) -> Result<Bytes, ProxyError> {
    axum::body::to_bytes(body, max)
        .await
        .map_err(|_| ProxyError::BodyTooLarge { max })
}
