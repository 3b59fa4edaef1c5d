//! Egress policy for URLs that someone registers and the platform will later call.
//!
//! A registry that stores URLs for a gateway to call is a server-side request forgery target.
//! The rules, applied at registration and update (and again by the gateway at connect time,
//! because DNS answers can change):
//! - only `http` and `https`, with a host, and no credentials in the URL;
//! - link-local addresses (169.254.0.0/16, fe80::/10) and the clouds' metadata, credential
//!   and resolver addresses (listed in [`CLOUD_V4`] and [`CLOUD_V6`] with their sources, and
//!   AWS's whole fd00:ec2::/32) are always refused, even where the range around them (private,
//!   or public for Azure's 168.63.129.16) is allowed;
//! - unspecified, multicast and broadcast addresses are always refused;
//! - loopback and private ranges are refused unless the config allows them;
//! - IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//!   `::a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d` of RFC 2765, NAT64 `64:ff9b::/96` of
//!   RFC 6052) are judged as that IPv4 address, so `::ffff:0:a9fe:a9fe` is the metadata
//!   address and `::ffff:0:7f00:1` loopback;
//! - a host name is resolved and every address it resolves to must pass; a name that does not
//!   resolve is refused.
//!
//! Checking a URL and then letting the HTTP client resolve its name again would leave a gap:
//! a name that answers a public address to the check and a forbidden one to the connection
//! (DNS rebinding). So every client that calls registered URLs is built by [`client_builder`]:
//! its resolver ([`EgressResolver`]) resolves with the policy's own resolver, drops refused
//! addresses and hands the client only the checked ones, on every new connection. Literal IP
//! hosts never reach a resolver; callers check them with [`check_literal_ip`]. Redirects are
//! not followed and no HTTP proxy is used (a proxy would resolve the name out of sight).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use url::{Host, Url};

/// What the deployment allows besides public addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Allow 127.0.0.0/8 and ::1 (local development). Default false.
    #[serde(default)]
    pub allow_loopback: bool,
    /// Allow 10/8, 172.16/12, 192.168/16, 100.64/10 and fc00::/7 (servers inside a VPC).
    /// Default false.
    #[serde(default)]
    pub allow_private: bool,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("is not a valid URL: {0}")]
    Malformed(String),
    #[error("must use http or https (got {0:?})")]
    Scheme(String),
    #[error("must name a host")]
    NoHost,
    #[error("must not carry a user name or password; configure upstream_auth instead")]
    Credentials,
    #[error("host {host:?} does not resolve: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error("{target} is {class}, which is never allowed as a destination")]
    Forbidden { target: String, class: &'static str },
    #[error(
        "{target} is {class}; this deployment does not allow it (set egress.{setting} = true to allow)"
    )]
    NotAllowed {
        target: String,
        class: &'static str,
        setting: &'static str,
    },
}

/// Resolves host names; a trait so tests can pin answers.
#[async_trait::async_trait]
pub trait Resolve: Send + Sync {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>>;
}

/// The operating system's resolver, with a time limit.
pub struct SystemResolver {
    pub timeout: Duration,
}

#[async_trait::async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<IpAddr>> {
        let lookup = tokio::net::lookup_host((host, port));
        match tokio::time::timeout(self.timeout, lookup).await {
            Ok(result) => Ok(result?.map(|a| a.ip()).collect()),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "name resolution timed out",
            )),
        }
    }
}

/// Checks URLs against an [`EgressConfig`].
#[derive(Clone)]
pub struct EgressPolicy {
    config: EgressConfig,
    resolver: Arc<dyn Resolve>,
}

impl EgressPolicy {
    pub fn new(config: EgressConfig) -> Self {
        Self::with_resolver(
            config,
            Arc::new(SystemResolver {
                timeout: Duration::from_secs(3),
            }),
        )
    }

    pub fn with_resolver(config: EgressConfig, resolver: Arc<dyn Resolve>) -> Self {
        Self { config, resolver }
    }

    pub fn config(&self) -> EgressConfig {
        self.config
    }

    /// Parses `raw` and checks it, resolving its host. Returns the parsed URL.
    pub async fn check_url(&self, raw: &str) -> Result<Url, EgressError> {
        let url = Url::parse(raw).map_err(|e| EgressError::Malformed(e.to_string()))?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(EgressError::Scheme(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::Credentials);
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses = match url.host() {
            None => return Err(EgressError::NoHost),
            Some(Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(Host::Domain(name)) => {
                if name.is_empty() {
                    return Err(EgressError::NoHost);
                }
                let resolved = self.resolver.resolve(name, port).await.map_err(|e| {
                    EgressError::Unresolvable {
                        host: name.to_owned(),
                        reason: e.to_string(),
                    }
                })?;
                if resolved.is_empty() {
                    return Err(EgressError::Unresolvable {
                        host: name.to_owned(),
                        reason: "no addresses".to_owned(),
                    });
                }
                resolved
            }
        };
        for ip in addresses {
            self.check_ip(url.host_str().unwrap_or_default(), ip)?;
        }
        Ok(url)
    }

    /// Checks one address; `host` is only used in the message.
    /// What a connection to `host` may use: its addresses that the policy allows, with port 0
    /// (the client puts the URL's port on them); an error when none is left. Every HTTP client
    /// that calls registered URLs resolves through this, on every new connection.
    pub async fn allowed_addrs(
        &self,
        host: &str,
    ) -> Result<Vec<std::net::SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let addrs = self.resolver.resolve(host, 0).await?;
        let allowed: Vec<std::net::SocketAddr> = addrs
            .into_iter()
            .filter(|ip| self.check_ip(host, *ip).is_ok())
            .map(|ip| std::net::SocketAddr::new(ip, 0))
            .collect();
        if allowed.is_empty() {
            return Err(
                format!("{host} resolves only to addresses the egress policy refuses").into(),
            );
        }
        Ok(allowed)
    }

    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), EgressError> {
        let ip = canonical(ip);
        let target = if host.trim_matches(['[', ']']) == ip.to_string() {
            ip.to_string()
        } else {
            format!("{host} ({ip})")
        };
        match classify(ip) {
            Class::Public => Ok(()),
            Class::Forbidden(class) => Err(EgressError::Forbidden { target, class }),
            Class::Loopback if self.config.allow_loopback => Ok(()),
            Class::Loopback => Err(EgressError::NotAllowed {
                target,
                class: "a loopback address",
                setting: "allow_loopback",
            }),
            Class::Private if self.config.allow_private => Ok(()),
            Class::Private => Err(EgressError::NotAllowed {
                target,
                class: "a private-network address",
                setting: "allow_private",
            }),
        }
    }
}

enum Class {
    Public,
    Loopback,
    Private,
    Forbidden(&'static str),
}

/// IPv6 addresses that carry an IPv4 address in their last 32 bits are judged as that IPv4
/// address: IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96` (`::` and `::1` keep their
/// IPv6 meaning), IPv4-translated `::ffff:0:0:0/96` (RFC 2765) and the NAT64 well-known prefix
/// `64:ff9b::/96` (RFC 6052), through which a NAT64 gateway reaches the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let compatible =
                s[..6].iter().all(|x| *x == 0) && !v6.is_unspecified() && !v6.is_loopback();
            let translated = s[..4].iter().all(|x| *x == 0) && s[4] == 0xffff && s[5] == 0;
            let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|x| *x == 0);
            if compatible || translated || nat64 {
                return IpAddr::V4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// IPv4 addresses of cloud metadata, credential and resolver services, refused with a name of
/// their own. Those in 169.254.0.0/16 would be refused as link-local anyway; the others sit in
/// ranges a deployment may allow (private, CGNAT, or public for Azure).
pub const CLOUD_V4: &[(Ipv4Addr, &str)] = &[
    // AWS IMDS (docs.aws.amazon.com, "Access instance metadata"), GCP's
    // metadata.google.internal (cloud.google.com/compute/docs/metadata/overview), Azure IMDS
    // (learn.microsoft.com, "Azure Instance Metadata Service"), Oracle Cloud IMDS, DigitalOcean,
    // IBM Cloud VPC, Hetzner, Huawei Cloud and OpenStack metadata services.
    (
        Ipv4Addr::new(169, 254, 169, 254),
        "a cloud metadata address",
    ),
    // AWS ECS task metadata and task-role credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI).
    (
        Ipv4Addr::new(169, 254, 170, 2),
        "the AWS ECS credentials address",
    ),
    // AWS EKS Pod Identity Agent (docs.aws.amazon.com/eks, "pod-id-how-it-works").
    (
        Ipv4Addr::new(169, 254, 170, 23),
        "the AWS EKS Pod Identity address",
    ),
    // Amazon Route 53 Resolver in every VPC (docs.aws.amazon.com/vpc, "AmazonDNS").
    (
        Ipv4Addr::new(169, 254, 169, 253),
        "the AWS VPC DNS resolver address",
    ),
    // Tencent Cloud metadata (metadata.tencentyun.com, cloud.tencent.com/document/product/213/4934).
    (
        Ipv4Addr::new(169, 254, 0, 23),
        "the Tencent Cloud metadata address",
    ),
    // Alibaba Cloud ECS metadata (alibabacloud.com/help/ecs, "instance metadata"), in 100.64/10.
    (
        Ipv4Addr::new(100, 100, 100, 200),
        "the Alibaba Cloud metadata address",
    ),
    // Azure WireServer: the host's virtual public IP for DNS, DHCP, health probes and the VM
    // agent's goal state (learn.microsoft.com, "What is IP address 168.63.129.16?").
    (
        Ipv4Addr::new(168, 63, 129, 16),
        "the Azure WireServer address",
    ),
    // Oracle Cloud metadata, as listed in SSRF references (in 192.0.0.0/24, reserved anyway).
    (
        Ipv4Addr::new(192, 0, 0, 192),
        "the Oracle Cloud metadata address",
    ),
];

/// IPv6 addresses of cloud metadata, credential and resolver services. All are unique local
/// addresses (fc00::/7), which `allow_private` would otherwise let through.
pub const CLOUD_V6: &[(Ipv6Addr, &str)] = &[
    // AWS IMDS over IPv6 (docs.aws.amazon.com, "Access instance metadata", IPv6 endpoint).
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        "a cloud metadata address",
    ),
    // AWS EKS Pod Identity Agent over IPv6.
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23),
        "the AWS EKS Pod Identity address",
    ),
    // Amazon Route 53 Resolver over IPv6 (Nitro instances).
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x253),
        "the AWS VPC DNS resolver address",
    ),
    // Amazon Time Sync Service over IPv6.
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x123),
        "the AWS time service address",
    ),
    // GCP metadata server for IPv6-only instances (cloud.google.com/compute/docs/metadata).
    (
        Ipv6Addr::new(0xfd20, 0xce, 0, 0, 0, 0, 0, 0x254),
        "a cloud metadata address",
    ),
    // Oracle Cloud IMDS over IPv6 (docs.oracle.com, "Getting Instance Metadata"; the OCI SDKs'
    // instance-principal signer).
    (
        Ipv6Addr::new(0xfd00, 0xc1, 0, 0, 0, 0, 0xa9fe, 0xa9fe),
        "a cloud metadata address",
    ),
    // Scaleway instance metadata over IPv6 (its IPv4 one, 169.254.42.42, is link-local).
    (
        Ipv6Addr::new(0xfd00, 0x42, 0, 0, 0, 0, 0, 0x42),
        "a cloud metadata address",
    ),
    // Akamai (Linode) metadata service over IPv6 (techdocs.akamai.com, "Metadata service API").
    (
        Ipv6Addr::new(0xfd00, 0xa9fe, 0xa9fe, 0, 0, 0, 0, 1),
        "a cloud metadata address",
    ),
];

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if let Some((_, class)) = CLOUD_V6.iter().find(|(a, _)| *a == v6) {
                return Class::Forbidden(class);
            }
            let seg0 = v6.segments()[0];
            if seg0 == 0xfd00 && v6.segments()[1] == 0xec2 {
                // AWS puts its instance services in fd00:ec2::/32; new ones appear there.
                return Class::Forbidden("an AWS instance service address");
            }
            if v6.is_unspecified() {
                Class::Forbidden("the unspecified address")
            } else if v6.is_multicast() {
                Class::Forbidden("a multicast address")
            } else if (seg0 & 0xffc0) == 0xfe80 {
                Class::Forbidden("a link-local address")
            } else if v6.is_loopback() {
                Class::Loopback
            } else if (seg0 & 0xfe00) == 0xfc00 || (seg0 & 0xffc0) == 0xfec0 {
                Class::Private
            } else if seg0 == 0x2002 || (seg0 == 0x2001 && v6.segments()[1] == 0) {
                // 6to4 and Teredo embed IPv4 addresses we cannot judge reliably.
                Class::Forbidden("a tunnelled IPv4 address (6to4/Teredo)")
            } else if seg0 == 0x0064 && v6.segments()[1] == 0xff9b {
                // The well-known /96 was judged by its IPv4 address; this is the local-use
                // 64:ff9b:1::/48 (RFC 8215), whose embedding we cannot know.
                Class::Forbidden("a NAT64 address")
            } else {
                Class::Public
            }
        }
    }
}

fn classify_v4(v4: Ipv4Addr) -> Class {
    let o = v4.octets();
    if let Some((_, class)) = CLOUD_V4.iter().find(|(a, _)| *a == v4) {
        Class::Forbidden(class)
    } else if v4.is_link_local() {
        Class::Forbidden("a link-local address")
    } else if v4.is_unspecified() || o[0] == 0 {
        Class::Forbidden("the unspecified address")
    } else if v4.is_broadcast() {
        Class::Forbidden("the broadcast address")
    } else if v4.is_multicast() || o[0] >= 240 {
        Class::Forbidden("a multicast or reserved address")
    } else if o[0] == 192 && o[1] == 0 && (o[2] == 0 || o[2] == 2)
        || o[0] == 198 && (o[1] & 0xfe) == 18
        || o[0] == 198 && o[1] == 51 && o[2] == 100
        || o[0] == 203 && o[1] == 0 && o[2] == 113
    {
        // IETF protocol assignments, benchmarking and documentation ranges: never real servers.
        Class::Forbidden("a reserved address")
    } else if v4.is_loopback() {
        Class::Loopback
    } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
        Class::Private
    } else {
        Class::Public
    }
}

/// A `reqwest` resolver that resolves with the policy's resolver and hands the client only
/// the addresses the policy allows, on every new connection, so the address connected to is
/// the address checked: a name that resolved to a public address at registration (or at the
/// check just before) cannot point inside when the connection is made.
pub struct EgressResolver {
    pub policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let allowed = policy.allowed_addrs(name.as_str()).await?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The builder of every HTTP client that calls URLs someone registered (gateway upstreams,
/// the registry's health checks, tool discovery, agent cards and embeddings, OAuth token
/// requests for upstream credentials): names resolve through [`EgressResolver`], redirects are
/// not followed (a 3xx is an answer, never a second destination) and no proxy is used (it
/// would resolve the name itself, out of the policy's sight). Literal IP hosts skip every
/// resolver: check them with [`check_literal_ip`] (or [`EgressPolicy::check_url`]) before
/// each request.
pub fn client_builder(policy: Arc<EgressPolicy>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(EgressResolver { policy }))
}

/// Refuses a URL whose host is a literal IP the egress policy forbids (no resolver runs for
/// those, so [`EgressResolver`] never sees them).
pub fn check_literal_ip(policy: &EgressPolicy, url: &Url) -> Result<(), String> {
    let ip = match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    policy
        .check_ip(&ip.to_string(), ip)
        .map_err(|e| format!("refused by the egress policy: {e}"))
}

/// A resolver that answers `first` to its first lookup and `then` to every later one: DNS
/// rebinding, as an attacker's name server with a zero TTL does it, without needing one.
#[cfg(test)]
pub(crate) struct Rebinding {
    pub first: IpAddr,
    pub then: IpAddr,
    pub lookups: std::sync::atomic::AtomicUsize,
}

#[cfg(test)]
impl Rebinding {
    /// A public address first, loopback after.
    pub fn to_loopback() -> Arc<Self> {
        Arc::new(Self {
            first: IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)),
            then: IpAddr::V4(Ipv4Addr::LOCALHOST),
            lookups: Default::default(),
        })
    }
}

#[cfg(test)]
#[async_trait::async_trait]
impl Resolve for Rebinding {
    async fn resolve(&self, _host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
        let n = self
            .lookups
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(vec![if n == 0 { self.first } else { self.then }])
    }
}

/// A loopback listener that counts the connections it accepts (and answers none).
#[cfg(test)]
pub(crate) async fn counting_listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, accepted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;

    #[tokio::test]
    async fn a_name_that_rebinds_after_its_check_is_never_connected_to() {
        let (port, accepted) = counting_listener().await;
        let rebinding = Rebinding::to_loopback();
        let policy = Arc::new(EgressPolicy::with_resolver(
            EgressConfig::default(),
            rebinding.clone(),
        ));
        let url = format!("http://rebind.example:{port}/mcp");
        // The check sees the public address ...
        policy.check_url(&url).await.unwrap();
        // ... the connection resolves again, gets loopback, and is refused before connecting.
        let client = client_builder(Arc::clone(&policy)).build().unwrap();
        let err = client.get(&url).send().await.unwrap_err();
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push_str(&format!(": {s}"));
            source = s.source();
        }
        assert!(chain.contains("egress policy refuses"), "{chain}");
        assert_eq!(rebinding.lookups.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing connected");
    }

    #[tokio::test]
    async fn the_shared_client_follows_no_redirect() {
        // A loopback server (allowed here) that redirects to the metadata address.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new().route(
            "/mcp",
            axum::routing::get(|| async {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", "http://169.254.169.254/latest/meta-data/")],
                )
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let policy = Arc::new(EgressPolicy::new(EgressConfig {
            allow_loopback: true,
            allow_private: false,
        }));
        let client = client_builder(policy).build().unwrap();
        let r = client
            .get(format!("http://localhost:{port}/mcp"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::FOUND);
    }

    struct Pinned(HashMap<&'static str, Vec<IpAddr>>);

    #[async_trait::async_trait]
    impl Resolve for Pinned {
        async fn resolve(&self, host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
            self.0
                .get(host)
                .cloned()
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"))
        }
    }

    fn policy(allow_loopback: bool, allow_private: bool) -> EgressPolicy {
        let mut m = HashMap::new();
        m.insert("public.example", vec!["93.184.216.34".parse().unwrap()]);
        m.insert("metadata.example", vec!["169.254.169.254".parse().unwrap()]);
        m.insert(
            "mixed.example",
            vec![
                "93.184.216.34".parse().unwrap(),
                "10.0.0.7".parse().unwrap(),
            ],
        );
        EgressPolicy::with_resolver(
            EgressConfig {
                allow_loopback,
                allow_private,
            },
            Arc::new(Pinned(m)),
        )
    }

    #[tokio::test]
    async fn metadata_addresses_are_refused_even_when_everything_else_is_allowed() {
        let p = policy(true, true);
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]/",
            "http://metadata.example/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::169.254.169.254]/",
            "http://198.18.0.1/",
            "http://192.0.0.8/",
            "http://169.254.10.1/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
        ] {
            let err = p.check_url(url).await.unwrap_err();
            assert!(matches!(err, EgressError::Forbidden { .. }), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn every_clouds_metadata_credential_and_resolver_addresses_are_refused() {
        let p = policy(true, true);
        for url in [
            "http://169.254.170.2/v2/credentials",
            "http://169.254.170.23/v1/credentials",
            "http://169.254.169.253/",
            "http://169.254.0.23/",
            "http://100.100.100.200/latest/meta-data/",
            "http://168.63.129.16/machine?comp=goalstate",
            "http://192.0.0.192/latest/",
            "http://[fd00:ec2::23]/v1/credentials",
            "http://[fd00:ec2::253]/",
            "http://[fd00:ec2::123]/",
            "http://[fd00:ec2::1:2]/",
            "http://[fd20:ce::254]/computeMetadata/v1/",
            "http://[fd00:c1::a9fe:a9fe]/opc/v2/instance/",
            "http://[fd00:42::42]/",
            "http://[fd00:a9fe:a9fe::1]/",
        ] {
            let err = p.check_url(url).await.unwrap_err();
            assert!(matches!(err, EgressError::Forbidden { .. }), "{url}: {err}");
        }
        // The ranges around them stay as configured: another 100.64/10 or ULA address passes
        // with allow_private, a public address beside Azure's passes anyway.
        for url in [
            "http://100.100.100.201/",
            "http://[fd00:ec3::1]/",
            "http://168.63.129.17/",
        ] {
            assert!(p.check_url(url).await.is_ok(), "{url}");
        }
        let err = p
            .check_url("http://100.100.100.200/")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("Alibaba Cloud metadata"), "{err}");
    }

    #[tokio::test]
    async fn ipv6_forms_that_embed_an_ipv4_address_are_judged_by_it() {
        let lax = policy(true, true);
        let strict = policy(false, false);
        // IPv4-translated (RFC 2765), NAT64 (RFC 6052), mapped and compatible forms of the
        // metadata address: refused whatever the config.
        for url in [
            "http://[::ffff:0:a9fe:a9fe]/",
            "http://[::ffff:0:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b::169.254.170.2]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[::a9fe:a9fe]/",
            "http://[::ffff:0:6464:64c8]/",
        ] {
            let err = lax.check_url(url).await.unwrap_err();
            assert!(matches!(err, EgressError::Forbidden { .. }), "{url}: {err}");
        }
        // Loopback and private in any of the forms need the setting.
        for (url, setting) in [
            ("http://[::ffff:0:7f00:1]/", "allow_loopback"),
            ("http://[64:ff9b::7f00:1]/", "allow_loopback"),
            ("http://[::ffff:0:a00:1]/", "allow_private"),
            ("http://[64:ff9b::c0a8:101]/", "allow_private"),
        ] {
            let err = strict.check_url(url).await.unwrap_err();
            assert!(
                matches!(err, EgressError::NotAllowed { setting: s, .. } if s == setting),
                "{url}: {err}"
            );
            assert!(lax.check_url(url).await.is_ok(), "{url}");
        }
        // A public address behind NAT64 is public; the local-use NAT64 prefix stays refused.
        assert!(
            strict
                .check_url("http://[64:ff9b::5db8:d822]/")
                .await
                .is_ok()
        );
        assert!(matches!(
            lax.check_url("http://[64:ff9b:1::a9fe:a9fe]/").await,
            Err(EgressError::Forbidden { .. })
        ));
    }

    #[tokio::test]
    async fn loopback_and_private_need_the_config() {
        let strict = policy(false, false);
        assert!(matches!(
            strict.check_url("http://127.0.0.1:8080/mcp").await,
            Err(EgressError::NotAllowed {
                setting: "allow_loopback",
                ..
            })
        ));
        assert!(matches!(
            strict.check_url("https://10.1.2.3/mcp").await,
            Err(EgressError::NotAllowed {
                setting: "allow_private",
                ..
            })
        ));
        // A public name that also resolves to a private address is refused.
        assert!(strict.check_url("https://mixed.example/").await.is_err());
        assert!(strict.check_url("https://public.example/mcp").await.is_ok());
        assert!(matches!(
            strict.check_url("http://[::127.0.0.1]/").await,
            Err(EgressError::NotAllowed {
                setting: "allow_loopback",
                ..
            })
        ));
        let lax = policy(true, true);
        assert!(lax.check_url("http://127.0.0.1:8080/mcp").await.is_ok());
        assert!(lax.check_url("https://mixed.example/").await.is_ok());
    }

    #[tokio::test]
    async fn other_schemes_credentials_and_unknown_hosts_are_refused() {
        let p = policy(true, true);
        assert!(matches!(
            p.check_url("file:///etc/passwd").await,
            Err(EgressError::Scheme(_))
        ));
        assert!(matches!(
            p.check_url("gopher://x/").await,
            Err(EgressError::Scheme(_))
        ));
        assert!(matches!(
            p.check_url("https://user:pw@public.example/").await,
            Err(EgressError::Credentials)
        ));
        assert!(matches!(
            p.check_url("https://nowhere.example/").await,
            Err(EgressError::Unresolvable { .. })
        ));
        assert!(matches!(
            p.check_url("not a url").await,
            Err(EgressError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn the_system_resolver_is_used_for_names() {
        // localhost resolves to loopback through the real resolver, so it is judged as loopback.
        let p = EgressPolicy::new(EgressConfig::default());
        let err = p.check_url("http://localhost:9/").await.unwrap_err();
        assert!(
            matches!(
                err,
                EgressError::NotAllowed {
                    setting: "allow_loopback",
                    ..
                }
            ),
            "{err}"
        );
    }
}
