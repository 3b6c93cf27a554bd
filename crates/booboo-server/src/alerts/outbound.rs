//! Safe outbound HTTP: the only way alerts reach the network. Alert URLs
//! are chosen by users, so without care a rule could make the server call
//! its own admin ports, the cloud metadata service or the office network
//! (server-side request forgery). So: http(s) only; the host is resolved
//! here, every address it resolves to is checked, and the connection is
//! pinned to the checked address (no second lookup an attacker's DNS could
//! answer differently); loopback, private, link-local, shared and metadata
//! addresses are refused unless `--outbound-allow` names the host or a
//! network holding the address; 10 s timeout; redirects are not followed;
//! at most [`ANSWER_LIMIT`] bytes of an answer are read.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use crate::outbound_allow::OutboundPolicy;

/// How long one request may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an answer is read (and kept for the channel's last failure).
pub const ANSWER_LIMIT: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// Not an http(s) URL with a host.
    InvalidUrl(String),
    /// The target resolves to an address outbound requests may not reach.
    Refused(String),
    /// The host name could not be resolved.
    Unresolved(String),
    /// Connecting, sending or reading failed (including the timeout).
    Transport(String),
}

impl fmt::Display for OutboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundError::InvalidUrl(m)
            | OutboundError::Refused(m)
            | OutboundError::Unresolved(m)
            | OutboundError::Transport(m) => f.write_str(m),
        }
    }
}

/// What a receiver answered: its status and the first part of its body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A URL checked for sending: where to connect, pinned.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: reqwest::Url,
    pub host: String,
    pub address: SocketAddr,
}

impl OutboundPolicy {
    /// Checks a URL and resolves its host, refusing forbidden addresses.
    pub async fn resolve(&self, url: &str) -> Result<Target, OutboundError> {
        let url = check_url(url)?;
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| OutboundError::Unresolved(format!("cannot resolve {host}: {e}")))?
                .collect(),
        };
        let Some(first) = addresses.first().copied() else {
            return Err(OutboundError::Unresolved(format!("{host} resolves to no address")));
        };
        let host_allowed = self.allows_host(&host);
        if !host_allowed {
            if let Some(bad) = addresses.iter().find(|a| refused_reason(a.ip()).is_some() && !self.allows_ip(a.ip())) {
                return Err(OutboundError::Refused(format!(
                    "{host} resolves to {}, a {} address, which alerts may not reach; allow it with \
                     --outbound-allow (BOOBOO_OUTBOUND_ALLOW) if this is intended",
                    bad.ip(),
                    refused_reason(bad.ip()).unwrap_or("reserved")
                )));
            }
        }
        Ok(Target { url, host, address: first })
    }

    /// POSTs `body` to a URL under the rules above.
    pub async fn post(&self, url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Result<Answer, OutboundError> {
        let target = self.resolve(url).await?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .no_proxy()
            .resolve(&target.host, target.address)
            .user_agent(concat!("booboo-alerts/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OutboundError::Transport(format!("cannot build an HTTP client: {e}")))?;
        let mut request = client.post(target.url.clone()).header("content-type", "application/json").body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.send().await.map_err(|e| OutboundError::Transport(transport_text(&e)))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while bytes.len() < ANSWER_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk[..chunk.len().min(ANSWER_LIMIT - bytes.len())]),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(Answer { status, body: String::from_utf8_lossy(&bytes).into_owned() })
    }
}

fn transport_text(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        let mut detail = String::new();
        while let Some(s) = source {
            detail = s.to_string();
            source = s.source();
        }
        format!("cannot connect: {detail}")
    } else {
        e.to_string()
    }
}

/// An http(s) URL with a host and no credentials.
pub fn check_url(text: &str) -> Result<reqwest::Url, OutboundError> {
    let url = reqwest::Url::parse(text.trim())
        .map_err(|e| OutboundError::InvalidUrl(format!("{text:?} is not a URL ({e}); give https://…")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OutboundError::InvalidUrl(format!("{text:?} must start with https:// or http://")));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(OutboundError::InvalidUrl(format!("{text:?} has no host")));
    }
    Ok(url)
}

/// Why an address is refused by default, or `None` for a public address.
pub fn refused_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return refused_v4(v4);
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local, includes cloud metadata)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xff00 == 0xff00 {
                Some("multicast")
            } else if v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., a, b] = v6.segments();
                refused_v4(Ipv4Addr::from(((a as u32) << 16) | b as u32))
            } else {
                None
            }
        }
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (includes cloud metadata)")
    } else if a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT, includes cloud metadata)")
    } else if ip.is_multicast() || a >= 240 {
        Some("multicast or reserved")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("reserved")
    } else if a == 198 && (18..20).contains(&b) {
        Some("benchmarking")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(refused_reason(bad.parse().unwrap()).is_some(), "{bad} should be refused");
        }
        for good in ["93.184.215.14", "2606:4700::1111", "1.1.1.1"] {
            assert!(refused_reason(good.parse().unwrap()).is_none(), "{good} should be allowed");
        }
    }

    #[tokio::test]
    async fn the_allow_list_opens_hosts_and_networks_only() {
        let none = OutboundPolicy::default();
        let err = none.resolve("http://127.0.0.1:9/hook").await.unwrap_err();
        assert!(
            matches!(err, OutboundError::Refused(ref m) if m.contains("loopback") && m.contains("--outbound-allow"))
        );
        let cidr = OutboundPolicy::parse("127.0.0.0/8").unwrap();
        assert_eq!(cidr.resolve("http://127.0.0.1:9/hook").await.unwrap().address.port(), 9);
        assert!(cidr.resolve("http://10.0.0.1/hook").await.is_err());
        let host = OutboundPolicy::parse("localhost").unwrap();
        assert!(host.resolve("http://localhost:9/hook").await.is_ok());
        assert!(matches!(none.resolve("ftp://example.com/").await, Err(OutboundError::InvalidUrl(_))));
        assert!(matches!(none.resolve("not a url").await, Err(OutboundError::InvalidUrl(_))));
    }
}
