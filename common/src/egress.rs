//! Calls out to addresses that users name (webhook receivers today, imports of URLs
//! later): the one SSRF guard.
//!
//! A target is refused when it is, or resolves to, an address inside the fleet's reach
//! rather than the internet's: loopback, private, shared (CGNAT), link-local (cloud
//! metadata at `169.254.169.254`), multicast, unspecified, reserved; in every spelling the
//! URL parser accepts (`2130706433`, `0177.0.0.1`, `[::ffff:127.0.0.1]`, NAT64 and 6to4
//! forms carry their IPv4 address and are judged by it). Networks listed in the allow
//! list (`WEBHOOK_ALLOWED_NETWORKS`, CIDRs) are let through, for local development and
//! for receivers on a private network on purpose.
//!
//! The check runs twice: when the URL is given ([`Egress::check`], which resolves the
//! name), and at every connection, in the HTTP client's resolver ([`Egress::client`]), so
//! a name whose answer changes after it was checked (DNS rebinding) is refused at
//! delivery. The client follows no redirect and uses no proxy: a redirect is the
//! receiver's answer, never a second request.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{0}` is not a URL")]
    NotUrl(String),
    #[error("only http and https URLs are allowed")]
    Scheme,
    #[error("a URL must not carry a user name or password")]
    Credentials,
    #[error("the URL names no host")]
    NoHost,
    #[error("{address} is a {kind} address, which receivers may not use")]
    Address { address: IpAddr, kind: &'static str },
    #[error("{host} does not resolve: {error}")]
    Unresolved { host: String, error: String },
}

/// How names are resolved: the system's resolver, or (tests) a function.
pub type Lookup = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>
        + Send
        + Sync,
>;

/// The guard: which networks are let through despite the rules, and how names resolve.
#[derive(Clone)]
pub struct Egress {
    allowed: Arc<[IpNet]>,
    lookup: Lookup,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl Egress {
    /// A guard letting `allowed` through, resolving with the system's resolver.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        let lookup: Lookup = Arc::new(|host: String| {
            Box::pin(async move {
                let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
                Ok(addrs.map(|a| a.ip()).collect())
            })
        });
        Self::with_lookup(allowed, lookup)
    }

    /// A guard whose names resolve through `lookup`.
    pub fn with_lookup(allowed: Vec<IpNet>, lookup: Lookup) -> Self {
        Self {
            allowed: allowed.into(),
            lookup,
        }
    }

    /// Parses an allow list: CIDRs or single addresses, separated by commas (empty: none).
    pub fn parse_allowed(list: &str) -> Result<Vec<IpNet>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{item}` is not a CIDR or an IP address"))
            })
            .collect()
    }

    /// Refuses `address` unless it is public or allowed.
    pub fn check_address(&self, address: IpAddr) -> Result<(), Refusal> {
        let allowed = |ip: IpAddr| self.allowed.iter().any(|net| net.contains(&ip));
        if allowed(address) || embedded_v4(address).is_some_and(|v4| allowed(IpAddr::V4(v4))) {
            return Ok(());
        }
        match forbidden(address) {
            Some(kind) => Err(Refusal::Address { address, kind }),
            None => Ok(()),
        }
    }

    /// The URL's form: http or https, no credentials, a host; an address as host is
    /// judged here (a name needs [`Egress::check`]).
    pub fn check_url(&self, raw: &str) -> Result<Url, Refusal> {
        let url = Url::parse(raw).map_err(|_| Refusal::NotUrl(raw.to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refusal::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::Credentials);
        }
        match url.host() {
            None => Err(Refusal::NoHost),
            Some(url::Host::Ipv4(v4)) => self.check_address(IpAddr::V4(v4)).map(|()| url),
            Some(url::Host::Ipv6(v6)) => self.check_address(IpAddr::V6(v6)).map(|()| url),
            Some(url::Host::Domain(_)) => Ok(url),
        }
    }

    /// [`Egress::check_url`], then the name resolved: refused if it does not resolve or
    /// if any of its addresses is refused.
    pub async fn check(&self, raw: &str) -> Result<Url, Refusal> {
        let url = self.check_url(raw)?;
        if let Some(url::Host::Domain(host)) = url.host() {
            self.resolve(host).await?;
        }
        Ok(url)
    }

    /// `host`'s addresses, every one of them allowed.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, Refusal> {
        let unresolved = |error: String| Refusal::Unresolved {
            host: host.to_owned(),
            error,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addresses = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => (self.lookup)(host.to_owned())
                .await
                .map_err(|e| unresolved(e.to_string()))?,
        };
        if addresses.is_empty() {
            return Err(unresolved("no address".into()));
        }
        for address in &addresses {
            self.check_address(*address)?;
        }
        Ok(addresses)
    }

    /// An HTTP client bound by the guard: every name it connects to is resolved and
    /// checked at that moment, no redirect is followed, no proxy is used. Literal
    /// addresses do not pass through a resolver: check the URL with
    /// [`Egress::check_url`] before each request.
    pub fn client(&self, builder: reqwest::ClientBuilder) -> reqwest::Result<reqwest::Client> {
        builder
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(Guarded(self.clone())))
            .build()
    }
}

/// The client's resolver: [`Egress::resolve`].
struct Guarded(Egress);

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let egress = self.0.clone();
        Box::pin(async move {
            let addresses = egress.resolve(name.as_str()).await?;
            let addrs: reqwest::dns::Addrs = Box::new(
                addresses
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// The IPv4 address an IPv6 one carries: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(address: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = address else {
        return None;
    };
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0; 6] && !matches!(u32::from(low), 0 | 1) {
        return Some(low);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Why `address` is out of a receiver's bounds, if it is.
pub fn forbidden(address: IpAddr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(address) {
        return forbidden_v4(v4);
    }
    match address {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = v4.octets();
    Some(match (a, b) {
        (0, _) => "unspecified",
        (127, _) => "loopback",
        (10, _) | (192, 168) => "private",
        (172, b) if (16..32).contains(&b) => "private",
        (169, 254) => "link-local",
        (100, b) if (64..128).contains(&b) => "shared (carrier-grade NAT)",
        (192, 0) if c == 0 => "reserved",
        (198, b) if b == 18 || b == 19 => "reserved",
        (224..=239, _) => "multicast",
        (240..=255, _) => "reserved",
        _ => return None,
    })
}

fn forbidden_v6(v6: Ipv6Addr) -> Option<&'static str> {
    let first = v6.segments()[0];
    Some(if v6.is_unspecified() {
        "unspecified"
    } else if v6.is_loopback() {
        "loopback"
    } else if first & 0xfe00 == 0xfc00 {
        "private"
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        "link-local"
    } else if first & 0xff00 == 0xff00 {
        "multicast"
    } else {
        return None;
    })
}

/// An error with its causes, `outer: inner: innermost`, for a delivery log.
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(egress: &Egress, url: &str) -> Refusal {
        egress
            .check_url(url)
            .expect_err(&format!("{url} should be refused"))
    }

    #[test]
    fn every_spelling_of_an_inside_address_is_refused() {
        let egress = Egress::new(vec![]);
        for (url, kind) in [
            ("http://127.0.0.1/", "loopback"),
            ("http://[::1]/", "loopback"),
            ("http://[::ffff:127.0.0.1]/", "loopback"),
            ("http://2130706433/", "loopback"),
            ("http://0177.0.0.1/", "loopback"),
            ("http://0x7f.1/", "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://10.0.0.1/", "private"),
            ("http://172.31.255.255/", "private"),
            ("http://192.168.1.1/", "private"),
            ("http://[fd00::1]/", "private"),
            ("http://[fe80::1]/", "link-local"),
            ("http://0.0.0.0/", "unspecified"),
            ("http://[::]/", "unspecified"),
            ("http://224.0.0.1/", "multicast"),
            ("http://[ff02::1]/", "multicast"),
            ("http://100.64.0.1/", "shared (carrier-grade NAT)"),
            ("http://[64:ff9b::7f00:1]/", "loopback"),
            ("http://[2002:a00:1::]/", "private"),
            ("http://255.255.255.255/", "reserved"),
        ] {
            match refused(&egress, url) {
                Refusal::Address { kind: got, .. } => assert_eq!(got, kind, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn public_addresses_and_names_pass_the_form_check() {
        let egress = Egress::new(vec![]);
        for url in [
            "https://hooks.example.com/in",
            "http://93.184.216.34:8080/x",
            "http://[2606:2800:220:1::1]/",
            "http://172.32.0.1/",
            "http://100.128.0.1/",
        ] {
            egress.check_url(url).expect(url);
        }
    }

    #[test]
    fn the_form_of_a_url_is_checked() {
        let egress = Egress::new(vec![]);
        assert_eq!(refused(&egress, "ftp://example.com/"), Refusal::Scheme);
        assert_eq!(refused(&egress, "file:///etc/passwd"), Refusal::Scheme);
        assert_eq!(
            refused(&egress, "https://user:pw@example.com/"),
            Refusal::Credentials
        );
        assert_eq!(
            refused(&egress, "https://user@example.com/"),
            Refusal::Credentials
        );
        assert!(matches!(refused(&egress, "not a url"), Refusal::NotUrl(_)));
    }

    #[test]
    fn allowed_networks_are_let_through_in_every_spelling() {
        let allowed = Egress::parse_allowed("127.0.0.0/8, ::1").expect("a list");
        let egress = Egress::new(allowed);
        for url in [
            "http://127.0.0.1:9000/",
            "http://2130706433/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]/",
        ] {
            egress.check_url(url).expect(url);
        }
        assert!(matches!(
            refused(&egress, "http://10.0.0.1/"),
            Refusal::Address { .. }
        ));
        assert!(Egress::parse_allowed("10.0.0.0/33").is_err());
        assert_eq!(Egress::parse_allowed(" ").expect("empty"), vec![]);
    }

    fn fixed(answers: &'static [(&'static str, &'static str)]) -> Lookup {
        Arc::new(move |host: String| {
            Box::pin(async move {
                let found: Vec<IpAddr> = answers
                    .iter()
                    .filter(|(name, _)| *name == host)
                    .map(|(_, ip)| ip.parse().expect("an address"))
                    .collect();
                if found.is_empty() {
                    Err(std::io::Error::other("no such host"))
                } else {
                    Ok(found)
                }
            })
        })
    }

    #[tokio::test]
    async fn names_are_judged_by_every_address_they_resolve_to() {
        let egress = Egress::with_lookup(
            vec![],
            fixed(&[
                ("public.test", "93.184.216.34"),
                ("inside.test", "10.1.2.3"),
                ("mixed.test", "93.184.216.34"),
                ("mixed.test", "127.0.0.1"),
            ]),
        );
        egress
            .check("https://public.test/in")
            .await
            .expect("public");
        assert!(matches!(
            egress.check("https://inside.test/").await,
            Err(Refusal::Address {
                kind: "private",
                ..
            })
        ));
        assert!(matches!(
            egress.check("https://mixed.test/").await,
            Err(Refusal::Address {
                kind: "loopback",
                ..
            })
        ));
        assert!(matches!(
            egress.check("https://nowhere.test/").await,
            Err(Refusal::Unresolved { .. })
        ));
        // The system resolver: `localhost` is loopback.
        assert!(matches!(
            Egress::new(vec![]).check("http://localhost:8080/").await,
            Err(Refusal::Address {
                kind: "loopback",
                ..
            })
        ));
    }

    /// A name that passed its check and then resolves inside (DNS rebinding) is refused
    /// by the client at connect time: no request reaches the listener.
    #[tokio::test]
    async fn the_client_checks_names_when_it_connects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a listener");
        let port = listener.local_addr().expect("an address").port();
        let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = Arc::clone(&reached);
        tokio::spawn(async move {
            if listener.accept().await.is_ok() {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let egress = Egress::with_lookup(vec![], fixed(&[("rebound.test", "127.0.0.1")]));
        let client = egress.client(reqwest::Client::builder()).expect("a client");
        let err = client
            .get(format!("http://rebound.test:{port}/"))
            .send()
            .await
            .expect_err("refused");
        let text = crate::egress::error_text(&err);
        assert!(text.contains("loopback"), "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));

        // Allowed, the same name connects.
        let allowed = Egress::with_lookup(
            Egress::parse_allowed("127.0.0.1/32").expect("a list"),
            fixed(&[("rebound.test", "127.0.0.1")]),
        );
        let client = allowed
            .client(reqwest::Client::builder())
            .expect("a client");
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            client.get(format!("http://rebound.test:{port}/")).send(),
        )
        .await;
        assert!(reached.load(std::sync::atomic::Ordering::SeqCst));
    }
}
