//! AWS Signature Version 4, header form, for requests the gateway sends to AWS-hosted MCP
//! servers (AgentCore runtimes, API Gateway, Lambda function URLs).
//!
//! The canonical request follows the AWS documentation ("Create a signed AWS API request")
//! and matches the AWS SDKs on the points the documentation leaves open:
//! - the path has `.`/`..` segments and repeated slashes removed and is percent-encoded a
//!   second time (`%3A` becomes `%253A`), except for S3, which signs the path as sent;
//! - query parameters are decoded, encoded again with only `A-Za-z0-9-._~` left bare (so a
//!   literal `+` is signed as `%2B`, never as a space) and sorted by name, then value;
//! - header names are lowercased, values trimmed with runs of spaces collapsed, repeated
//!   headers joined with `,` in the order sent; `authorization`, `user-agent`,
//!   `x-amzn-trace-id` and hop-by-hop headers are not signed (proxies change them);
//! - `host`, `x-amz-date`, `x-amz-security-token` (with session credentials) and, when asked,
//!   `x-amz-content-sha256` are always signed.
//!
//! Only the header form is implemented (no presigned URLs, no chunked payload signing): the
//! body must be known when signing. Secret keys never leave this module except inside the
//! HMAC.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use aws_lc_rs::hmac;
use http::{HeaderMap, HeaderName, HeaderValue};
use secrecy::zeroize::Zeroize;
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Headers never signed: computed by signing itself, or changed on the way by proxies and
/// HTTP stacks (the SDKs' common set plus the hop-by-hop headers).
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// How a request is turned into its canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningOptions {
    /// Remove `.` and `..` segments and repeated slashes from the path (all services but S3).
    pub normalize_path: bool,
    /// Percent-encode the already encoded path once more (all services but S3).
    pub double_encode_path: bool,
    /// Send and sign `x-amz-content-sha256` with the body's hash (S3 needs it; others accept
    /// it).
    pub content_sha256_header: bool,
    /// Sign `x-amz-security-token` when the credentials have one (it is sent either way). A
    /// few services want it added after signing.
    pub sign_session_token: bool,
}

impl SigningOptions {
    /// What the AWS SDKs do for `service`: S3 signs the path as sent; everything else
    /// normalizes and double-encodes it. The body hash header is always sent.
    pub fn for_service(service: &str) -> Self {
        let s3 = service == "s3";
        Self {
            normalize_path: !s3,
            double_encode_path: !s3,
            content_sha256_header: true,
            sign_session_token: true,
        }
    }
}

/// Access keys to sign with. The secret key is only read into the HMAC.
#[derive(Clone, Copy)]
pub struct AwsKeys<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    /// Present for temporary (STS, role, container) credentials.
    pub session_token: Option<&'a str>,
}

impl std::fmt::Debug for AwsKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKeys")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// The parts of a request that are signed, as they will be sent.
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    pub method: &'a str,
    /// The `Host` header value: the host, with the port only when it is not the scheme's
    /// default. A `host` entry in `headers` wins over this.
    pub host: &'a str,
    /// The path as sent (percent-encoded), e.g. `/runtimes/arn%3Aaws%3A.../invocations`.
    pub path: &'a str,
    /// The query as sent, without `?`; empty for none.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    /// Lowercase hex SHA-256 of the body ([`payload_hash`]).
    pub payload_sha256: &'a str,
}

/// Why a request cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("header {0} has a value that is not visible ASCII and cannot be signed")]
    HeaderValue(String),
    #[error("the request has no host to sign")]
    NoHost,
}

/// The result of signing: the headers to add, and the intermediate strings for tests and
/// debugging (they hold no secret).
#[derive(Debug, Clone)]
pub struct Signed {
    /// `x-amz-date`, `x-amz-security-token` (if any), `x-amz-content-sha256` (if asked) and
    /// `authorization` (marked sensitive). Insert them, replacing existing values.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub canonical_request: String,
    pub string_to_sign: String,
    /// Hex signature, as in the `authorization` header.
    pub signature: String,
}

/// Lowercase hex SHA-256 of a body, as SigV4 wants it.
pub fn payload_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

/// Signs `request` at `time` for `region` and `service`.
pub fn sign(
    request: &SignableRequest<'_>,
    keys: &AwsKeys<'_>,
    region: &str,
    service: &str,
    time: SystemTime,
    options: SigningOptions,
) -> Result<Signed, SigningError> {
    let time = chrono::DateTime::<chrono::Utc>::from(time);
    let amz_date = time.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];

    // Canonical headers: name -> values in the order sent.
    let mut canonical: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in request.headers {
        let name = name.as_str();
        if UNSIGNED_HEADERS.contains(&name)
            || name == X_AMZ_DATE
            || name == X_AMZ_SECURITY_TOKEN
            || name == X_AMZ_CONTENT_SHA256
        {
            continue;
        }
        let value = value
            .to_str()
            .map_err(|_| SigningError::HeaderValue(name.to_owned()))?;
        canonical
            .entry(name.to_owned())
            .or_default()
            .push(trim_all(value));
    }
    if !canonical.contains_key("host") {
        if request.host.is_empty() {
            return Err(SigningError::NoHost);
        }
        canonical.insert("host".to_owned(), vec![request.host.to_owned()]);
    }
    canonical.insert(X_AMZ_DATE.to_owned(), vec![amz_date.clone()]);
    if let Some(token) = keys.session_token
        && options.sign_session_token
    {
        canonical.insert(X_AMZ_SECURITY_TOKEN.to_owned(), vec![trim_all(token)]);
    }
    if options.content_sha256_header {
        canonical.insert(
            X_AMZ_CONTENT_SHA256.to_owned(),
            vec![request.payload_sha256.to_owned()],
        );
    }
    let signed_headers = canonical.keys().cloned().collect::<Vec<_>>().join(";");

    let mut canonical_request = String::with_capacity(512);
    canonical_request.push_str(request.method);
    canonical_request.push('\n');
    canonical_request.push_str(&canonical_path(request.path, options));
    canonical_request.push('\n');
    canonical_request.push_str(&canonical_query(request.query));
    canonical_request.push('\n');
    for (name, values) in &canonical {
        canonical_request.push_str(name);
        canonical_request.push(':');
        canonical_request.push_str(&values.join(","));
        canonical_request.push('\n');
    }
    canonical_request.push('\n');
    canonical_request.push_str(&signed_headers);
    canonical_request.push('\n');
    canonical_request.push_str(request.payload_sha256);

    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        payload_hash(canonical_request.as_bytes())
    );

    let mut k_secret = String::with_capacity(4 + keys.secret_access_key.len());
    k_secret.push_str("AWS4");
    k_secret.push_str(keys.secret_access_key);
    let k_date = hmac_sha256(k_secret.as_bytes(), date.as_bytes());
    k_secret.zeroize();
    let k_region = hmac_sha256(k_date.as_ref(), region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), service.as_bytes());
    let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
    let signature = hex(hmac_sha256(k_signing.as_ref(), string_to_sign.as_bytes()).as_ref());

    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        keys.access_key_id
    );
    let value = |v: &str, name: &str| {
        HeaderValue::from_str(v).map_err(|_| SigningError::HeaderValue(name.to_owned()))
    };
    let mut headers = vec![(
        HeaderName::from_static(X_AMZ_DATE),
        value(&amz_date, X_AMZ_DATE)?,
    )];
    if let Some(token) = keys.session_token {
        let mut v = value(token, X_AMZ_SECURITY_TOKEN)?;
        v.set_sensitive(true);
        headers.push((HeaderName::from_static(X_AMZ_SECURITY_TOKEN), v));
    }
    if options.content_sha256_header {
        headers.push((
            HeaderName::from_static(X_AMZ_CONTENT_SHA256),
            value(request.payload_sha256, X_AMZ_CONTENT_SHA256)?,
        ));
    }
    let mut auth = value(&authorization, "authorization")?;
    auth.set_sensitive(true);
    headers.push((http::header::AUTHORIZATION, auth));

    Ok(Signed {
        headers,
        canonical_request,
        string_to_sign,
        signature,
    })
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Trims spaces at both ends and collapses runs of spaces inside to one (only spaces, as the
/// AWS SDKs do).
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut previous_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' {
            if !previous_space {
                out.push(c);
            }
            previous_space = true;
        } else {
            out.push(c);
            previous_space = false;
        }
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes (uppercase hex) every byte for which `keep` is false.
fn encode(bytes: &[u8], keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if keep(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes `%XX` sequences; malformed ones stay as they are. `+` stays `+`.
fn decode(text: &str) -> Vec<u8> {
    fn hex_value(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
        {
            out.push((h << 4) | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn canonical_path(path: &str, options: SigningOptions) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let path = if options.normalize_path {
        normalize_path(path)
    } else {
        path.to_owned()
    };
    if options.double_encode_path {
        // Everything but unreserved characters and `/`, including the `%` of existing escapes.
        encode(path.as_bytes(), |b| is_unreserved(b) || b == b'/')
    } else {
        // The path as sent; only characters that cannot appear bare are escaped.
        encode(path.as_bytes(), |b| {
            is_unreserved(b) || b == b'/' || b == b'%'
        })
    }
}

/// RFC 3986 section 5.2.4 dot-segment removal, with empty segments (repeated slashes) dropped
/// too, keeping a trailing slash.
fn normalize_path(path: &str) -> String {
    let absolute = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    if !absolute.contains('.') && !absolute.contains("//") {
        return absolute;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in absolute.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(absolute.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    let trailing = ["/", "/.", "/..", "/./", "/../"]
        .iter()
        .any(|end| absolute.ends_with(end));
    if out.is_empty() || trailing {
        out.push('/');
    }
    out
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                encode(&decode(k), is_unreserved),
                encode(&decode(v), is_unreserved),
            )
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}
