//! `--sigv4`: requests signed with AWS Signature Version 4 from the local credential chain
//! (environment, shared config and credentials files, SSO, web identity, container and instance
//! metadata: `aws-config`'s default chain), for MCP servers hosted on AWS behind IAM
//! authentication, where the signature replaces the OAuth bearer token.
//!
//! Rules:
//! - region and service come from the flags, else from an `*.amazonaws.com` host
//!   (`<…>.<service>.<region>.amazonaws.com`), else the region from the AWS configuration;
//!   a service that cannot be known is an error that says which flag to pass;
//! - what is signed: the method, the URL, `host`, `content-type` and the body's SHA-256
//!   (`x-amz-content-sha256` is sent, as services such as Lambda function URLs require);
//!   the other headers (`accept`, `mcp-session-id`, …) are sent unsigned, which SigV4 allows;
//! - credentials are asked of the chain for each request: it caches them and renews them before
//!   they expire.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use url::Url;

use crate::error::ConnectError;

/// A signer for one region and service, with the local credential chain.
pub struct Signer {
    region: String,
    service: String,
    provider: SharedCredentialsProvider,
}

impl Signer {
    /// The signer for `url`: flags first, then the host name, then the AWS configuration.
    pub async fn from_environment(
        url: &Url,
        region: Option<String>,
        service: Option<String>,
    ) -> Result<Signer, ConnectError> {
        let (host_service, host_region) = from_host(url.host_str().unwrap_or(""));
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let region = region
            .or(host_region)
            .or_else(|| config.region().map(|r| r.to_string()))
            .ok_or_else(|| ConnectError::SigV4 {
                detail: "no region: pass --region or set AWS_REGION".into(),
            })?;
        let service = service
            .or(host_service)
            .ok_or_else(|| ConnectError::SigV4 {
                detail: format!(
                    "the AWS service of {} is not known: pass --service (for example \
                 bedrock-agentcore, execute-api, lambda)",
                    url.host_str().unwrap_or("the URL")
                ),
            })?;
        let provider = config
            .credentials_provider()
            .ok_or_else(|| ConnectError::SigV4 {
                detail: "no AWS credential chain is configured".into(),
            })?;
        Ok(Signer {
            region,
            service,
            provider,
        })
    }

    /// The headers to add to a request (`authorization`, `x-amz-date`, …).
    pub async fn headers(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, ConnectError> {
        let credentials =
            self.provider
                .provide_credentials()
                .await
                .map_err(|e| ConnectError::SigV4 {
                    detail: format!(
                        "no AWS credentials from the local chain ({}); sign in with \
                         `aws sso login` or set AWS_PROFILE",
                        crate::error::chain(&e)
                    ),
                })?;
        let host = Url::parse(url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| u.port().map_or(h.to_owned(), |p| format!("{h}:{p}")))
            })
            .unwrap_or_default();
        let mut headers = vec![("host", host.as_str())];
        if let Some(c) = content_type {
            headers.push(("content-type", c));
        }
        sign_request(
            &credentials,
            &self.region,
            &self.service,
            SystemTime::now(),
            (method, url, &headers, body),
        )
    }
}

/// `(service, region)` of `<…>.<service>.<region>.amazonaws.com`.
pub fn from_host(host: &str) -> (Option<String>, Option<String>) {
    let Some(prefix) = host.strip_suffix(".amazonaws.com") else {
        return (None, None);
    };
    let mut labels = prefix.rsplit('.');
    let region = labels.next().filter(|r| r.contains('-')).map(str::to_owned);
    let service = region
        .as_ref()
        .and_then(|_| labels.next())
        .map(str::to_owned);
    (service, region)
}

/// A request to sign: method, URL, the headers to sign, the body.
pub type Request<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [u8]);

/// Signs `request` at `time`; the headers to add.
pub fn sign_request(
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
    (method, url, headers, body): Request<'_>,
) -> Result<Vec<(String, String)>, ConnectError> {
    let failed = |e: &dyn std::error::Error| ConnectError::SigV4 {
        detail: crate::error::chain(e),
    };
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's own SigV4 test suite, case `post-x-www-form-urlencoded` (signed body).
    #[test]
    fn a_request_is_signed_as_the_aws_test_suite_says() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("host", "example.amazonaws.com"),
            ("content-length", "13"),
        ];
        let added = sign_request(
            &credentials,
            "us-east-1",
            "service",
            time,
            (
                "POST",
                "https://example.amazonaws.com/",
                &headers,
                b"Param1=value1",
            ),
        )
        .unwrap();
        let get = |name: &str| {
            added
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            get("authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, \
                 Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
            )
        );
    }

    #[test]
    fn service_and_region_come_from_an_aws_host_name() {
        assert_eq!(
            from_host("abc123.execute-api.eu-west-1.amazonaws.com"),
            (Some("execute-api".into()), Some("eu-west-1".into()))
        );
        assert_eq!(
            from_host("bedrock-agentcore.us-east-1.amazonaws.com"),
            (Some("bedrock-agentcore".into()), Some("us-east-1".into()))
        );
        assert_eq!(from_host("gateway.example.com"), (None, None));
    }
}
