//! Every failure of `mcpgw-connect`, each with what to do about it. The messages are for a
//! person reading a terminal (or a client's log of our stderr): they name the URL involved and
//! never a token. The bridge turns them into JSON-RPC errors for the pending request.

/// What went wrong, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{url} could not be reached ({cause}); check the URL and that the gateway is running")]
    Unreachable { url: String, cause: String },
    #[error(
        "{url} answered {status} without asking for a sign-in (no 401 with WWW-Authenticate); \
         if it needs no token, run the bridge without `login`"
    )]
    NoChallenge { url: String, status: u16 },
    #[error("{url}: {detail}; the gateway's or authorization server's metadata is not usable")]
    Metadata { url: String, detail: String },
    #[error(
        "the authorization server {issuer} offers no dynamic client registration \
         (no registration_endpoint in its metadata); ask its operator to enable it"
    )]
    NoRegistration { issuer: String },
    #[error("the authorization server refused to register this client: {detail}")]
    Registration { detail: String },
    #[error("the sign-in did not complete: {error}{description}; run `mcpgw-connect login` again")]
    Denied { error: String, description: String },
    #[error("no sign-in arrived within {seconds} s; open the printed URL in a browser and sign in")]
    Timeout { seconds: u64 },
    #[error("the browser could not be started ({cause}); open the printed URL yourself")]
    Browser { cause: String },
    #[error("the token endpoint {url} refused: {detail}")]
    Token { url: String, detail: String },
    #[error("{path}: {cause}; check that the directory is writable by you (or pass --state-dir)")]
    Store { path: String, cause: String },
    #[error("SigV4: {detail}")]
    SigV4 { detail: String },
    #[error("the MCP client's stdin or stdout failed ({cause}); the client has gone away")]
    Stdio { cause: String },
}

/// An error and its sources, on one line (reqwest's own message names only the first step).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
