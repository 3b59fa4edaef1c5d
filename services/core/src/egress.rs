//! Egress policy for URLs that someone registers and the platform will later call.
//!
//! A registry that stores URLs for a gateway to call is a server-side request forgery target.
//! The rules, applied at registration and update (and again by the gateway at connect time,
//! because DNS answers can change):
//! - only `http` and `https`, with a host, and no credentials in the URL;
//! - link-local and cloud metadata addresses (169.254.0.0/16 including 169.254.169.254,
//!   fe80::/10, fd00:ec2::254) are always refused;
//! - unspecified, multicast and broadcast addresses are always refused;
//! - loopback and private ranges are refused unless the config allows them;
//! - a host name is resolved and every address it resolves to must pass; a name that does not
//!   resolve is refused.

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

/// IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) IPv6 addresses are judged
/// as the IPv4 address they carry (`::` and `::1` keep their IPv6 meaning).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6].iter().all(|x| *x == 0) && !v6.is_unspecified() && !v6.is_loopback() {
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

const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            if v6 == AWS_METADATA_V6 {
                return Class::Forbidden("a cloud metadata address");
            }
            let seg0 = v6.segments()[0];
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
                Class::Forbidden("a NAT64 address")
            } else {
                Class::Public
            }
        }
    }
}

fn classify_v4(v4: Ipv4Addr) -> Class {
    let o = v4.octets();
    if v4.is_link_local() {
        // 169.254.0.0/16 holds the metadata services of AWS, GCP, Azure and others.
        if v4 == Ipv4Addr::new(169, 254, 169, 254) {
            Class::Forbidden("a cloud metadata address")
        } else {
            Class::Forbidden("a link-local address")
        }
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

/// A `reqwest` resolver that refuses addresses the egress policy forbids, checked at connect
/// time, so a name that resolved to a public address at registration cannot later point
/// inside. Shared by the gateway's upstream client and the registry's health probe.
pub struct EgressResolver {
    pub policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for EgressResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<std::net::SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<std::net::SocketAddr> = addrs
                .into_iter()
                .filter(|a| policy.check_ip(&host, a.ip()).is_ok())
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("{host} resolves only to addresses the egress policy refuses").into(),
                );
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
