//! Who the client is: one rule for every service that keys anything by address (login and
//! link-password throttles, visitor hashes, the gateway's per-address rate limit and the
//! `X-Forwarded-For` it sends on).
//!
//! `X-Forwarded-For` is believed only from a peer in `TRUSTED_PROXIES`. Its entries are
//! walked from the right (the hop nearest to us first), skipping trusted proxies; the first
//! untrusted hop is the client, and when every hop is trusted the leftmost is. A malformed
//! entry (anything but a bare IPv4 or IPv6 address) ends the walk at the last good
//! address, so a client can only ever name itself by what a trusted proxy appended. A peer
//! outside the list is the client whatever it sends: someone reaching a service around the
//! gateway cannot pick a fresh address per request. IPv4-mapped IPv6 addresses
//! (`::ffff:10.1.2.3`) count as the IPv4 address they carry.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use ipnet::IpNet;

/// The header proxies name the client in.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The default of `TRUSTED_PROXIES`: loopback and the private ranges, where the gateway
/// runs beside the services.
pub const DEFAULT_TRUSTED_PROXIES: &str =
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

/// The networks whose `X-Forwarded-For` is believed. Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Trusts nobody: every peer is the client.
    pub fn none() -> Self {
        Self(Arc::new([]))
    }

    /// Whether `peer` is a proxy whose `X-Forwarded-For` is believed.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }

    /// The client of a request that came from `peer` with these `X-Forwarded-For` field
    /// values, in the order they appeared (several fields are one list, RFC 9110 §5.3).
    /// Reads the values only when `peer` is trusted.
    pub fn client<'v, I>(&self, peer: IpAddr, forwarded_for: I) -> IpAddr
    where
        I: IntoIterator<Item = &'v [u8]>,
        I::IntoIter: DoubleEndedIterator,
    {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for field in forwarded_for.into_iter().rev() {
            for entry in field.rsplit(|b| *b == b',') {
                let Some(hop) = hop(entry) else {
                    return client;
                };
                client = hop;
                if !self.trusts(hop) {
                    return hop;
                }
            }
        }
        client
    }

    /// [`Self::client`] with the `X-Forwarded-For` fields of `headers`.
    pub fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.client(
            peer,
            headers
                .get_all(FORWARDED_FOR)
                .iter()
                .map(HeaderValue::as_bytes),
        )
    }
}

/// One `X-Forwarded-For` entry, if it is a bare address.
fn hop(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry.trim_ascii()).ok()?;
    text.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

impl Default for TrustedProxies {
    fn default() -> Self {
        DEFAULT_TRUSTED_PROXIES
            .parse()
            .expect("the default trusted proxies parse")
    }
}

/// Comma-separated CIDRs (`10.0.0.0/8`) or single addresses; empty or `none` trusts nobody.
impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        if list.trim().eq_ignore_ascii_case("none") {
            return Ok(Self::none());
        }
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("`{item}` is neither a CIDR (10.0.0.0/8) nor an address"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|nets| Self(nets.into()))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustedProxies({self})")
    }
}

/// The request's client address by [`TrustedProxies::client`], as an extractor. Without
/// a peer address (a router called without `ConnectInfo`) it is the unspecified address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S> FromRequestParts<S> for ClientAddr
where
    TrustedProxies: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(Self(
            TrustedProxies::from_ref(state).client_of(peer, &parts.headers),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn client(trusted: &TrustedProxies, peer: &str, fields: &[&str]) -> String {
        trusted
            .client(ip(peer), fields.iter().map(|f| f.as_bytes()))
            .to_string()
    }

    #[test]
    fn the_walk_goes_from_the_right_and_stops_at_the_first_untrusted_hop() {
        let trusted = TrustedProxies::default();
        // A client-sent entry on the left, the client as a trusted proxy saw it, then
        // another trusted proxy.
        let chain = ["6.6.6.6, 203.0.113.5, 10.0.0.2"];
        assert_eq!(client(&trusted, "127.0.0.1", &chain), "203.0.113.5");
        // Several fields are one list, in order.
        let split = ["6.6.6.6", "203.0.113.5, 10.0.0.2"];
        assert_eq!(client(&trusted, "127.0.0.1", &split), "203.0.113.5");
        // Every hop trusted: the leftmost.
        assert_eq!(
            client(&trusted, "10.0.0.1", &["192.168.1.4, 10.0.0.2"]),
            "192.168.1.4"
        );
        // No header: the peer.
        assert_eq!(client(&trusted, "10.0.0.1", &[]), "10.0.0.1");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(client(&trusted, "127.0.0.1", &["203.0.113.5"]), "127.0.0.1");
        assert_eq!(
            client(&trusted, "198.51.100.7", &["10.0.0.1"]),
            "198.51.100.7"
        );
        assert_eq!(
            client(&TrustedProxies::none(), "10.1.1.1", &["203.0.113.5"]),
            "10.1.1.1"
        );
    }

    #[test]
    fn a_malformed_entry_ends_the_walk_at_the_last_good_address() {
        let trusted = TrustedProxies::default();
        for (fields, expected) in [
            (&["203.0.113.5, garbage, 10.0.0.2"][..], "10.0.0.2"),
            (&["unknown"], "127.0.0.1"),
            (&[""], "127.0.0.1"),
            (&["203.0.113.5,,10.0.0.2"], "10.0.0.2"),
            (&["203.0.113.5:443"], "127.0.0.1"),
            (&["[2001:db8::1]"], "127.0.0.1"),
            (&["6.6.6.6, 203.0.113.5 "], "203.0.113.5"),
        ] {
            assert_eq!(
                client(&trusted, "127.0.0.1", fields),
                expected,
                "{fields:?}"
            );
        }
    }

    #[test]
    fn ipv6_and_mapped_addresses_follow_the_same_rule() {
        let trusted = TrustedProxies::default();
        assert_eq!(
            client(&trusted, "::1", &["2001:db8::7, fd00::3"]),
            "2001:db8::7"
        );
        // A dual-stack socket's view of an IPv4 proxy is that proxy.
        assert_eq!(
            client(&trusted, "::ffff:10.1.2.3", &["::ffff:203.0.113.9"]),
            "203.0.113.9"
        );
        assert_eq!(
            client(&trusted, "2001:db8::1", &["203.0.113.9"]),
            "2001:db8::1"
        );
        assert!(!trusted.trusts(ip("fe80::1")), "link-local is not listed");
    }

    #[test]
    fn the_setting_parses_cidrs_and_addresses_and_says_what_it_refuses() {
        let trusted: TrustedProxies = " 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32".parse().unwrap();
        assert_eq!(trusted.to_string(), "10.0.0.0/8,192.0.2.7/32,2001:db8::/32");
        assert!(trusted.trusts(ip("192.0.2.7")) && !trusted.trusts(ip("192.0.2.8")));
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::none()
        );
        assert_eq!(
            "none".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::none()
        );
        let err = "10.0.0.0/8,10.0.0.0/33"
            .parse::<TrustedProxies>()
            .unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert_eq!(
            TrustedProxies::default().to_string(),
            DEFAULT_TRUSTED_PROXIES
        );
    }
}
