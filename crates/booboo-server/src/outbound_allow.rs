//! The `--outbound-allow` list: hosts and networks that alerts may reach
//! although their addresses are refused by default (loopback, private,
//! link-local...). Only the list and its parsing live here, below `config`,
//! which reads it; `alerts/outbound.rs` checks and sends requests with it.

use std::net::IpAddr;

/// Hosts and networks outbound requests may reach although their addresses
/// are otherwise refused (`--outbound-allow`: comma-separated host names,
/// IP addresses or CIDRs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    hosts: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl OutboundPolicy {
    pub fn parse(text: &str) -> Result<OutboundPolicy, String> {
        let mut policy = OutboundPolicy::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Some((ip, bits)) = entry.split_once('/') {
                let ip: IpAddr =
                    ip.parse().map_err(|_| format!("--outbound-allow: {entry:?} is not a CIDR such as 10.0.0.0/8"))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits: u8 = bits
                    .parse()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("--outbound-allow: {entry:?} has a prefix length outside 0 to {max}"))?;
                policy.networks.push((ip, bits));
            } else if let Ok(ip) = entry.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
                policy.networks.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
            } else if entry.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
                policy.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!("--outbound-allow: {entry:?} is neither a host name, an IP address nor a CIDR"));
            }
        }
        Ok(policy)
    }

    /// Whether `host` (a name, compared without case) is on the list.
    pub fn allows_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// Whether `ip` lies in one of the listed addresses or networks.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|(net, bits)| in_network(ip, *net, *bits))
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V4(_)) => ip.to_ipv4_mapped().is_some_and(|v4| in_network(IpAddr::V4(v4), net, bits)),
        (IpAddr::V4(ip), IpAddr::V6(_)) => in_network(IpAddr::V6(ip.to_ipv6_mapped()), net, bits),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_addresses_and_networks_are_read_and_bad_entries_refused() {
        let policy = OutboundPolicy::parse(" Hooks.Internal , 10.0.0.0/8, ::1 ").unwrap();
        assert!(policy.allows_host("hooks.internal") && policy.allows_host("HOOKS.internal"));
        assert!(!policy.allows_host("other.internal"));
        assert!(policy.allows_ip("10.9.8.7".parse().unwrap()) && policy.allows_ip("::1".parse().unwrap()));
        assert!(policy.allows_ip("::ffff:10.1.1.1".parse().unwrap()), "an IPv4-mapped address is in the IPv4 network");
        assert!(!policy.allows_ip("11.0.0.1".parse().unwrap()));
        assert_eq!(OutboundPolicy::parse("").unwrap(), OutboundPolicy::default());
        assert!(OutboundPolicy::parse("10.0.0.0/33").unwrap_err().contains("prefix length"));
        assert!(OutboundPolicy::parse("bad host!").unwrap_err().contains("neither a host name"));
    }
}
