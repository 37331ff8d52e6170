//! What a visit records about its visitor, and nothing more: the referrer's host, whether
//! the agent looks like a bot, and a salted hash standing for the visitor. No raw IP or
//! user agent is stored or published. Who the visitor is (the address) is
//! `common::client`'s rule, applied by the flusher (`crate::visits`).

use sha2::{Digest, Sha256};

/// Substrings (lowercase) of user agents that are not people: crawlers, link-preview
/// fetchers of chat apps, command-line clients, headless browsers.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawler",
    "spider",
    "slurp",
    "curl",
    "wget",
    "python-requests",
    "python-urllib",
    "httpx",
    "aiohttp",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "headless",
    "phantomjs",
    "preview",
    "slack",
    "facebookexternalhit",
    "whatsapp",
    "telegram",
    "discord",
    "embedly",
    "lighthouse",
    "monitor",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentClass {
    Browser,
    Bot,
}

impl AgentClass {
    /// "bot" for known automated agents and for requests without a user agent.
    pub fn of(user_agent: &str) -> Self {
        let ua = user_agent.to_ascii_lowercase();
        if ua.trim().is_empty() || BOT_MARKERS.iter().any(|m| ua.contains(m)) {
            Self::Bot
        } else {
            Self::Browser
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Browser => "browser",
            Self::Bot => "bot",
        }
    }
}

/// The host of the `Referer`, if it is an http(s) URL; never its path or query.
pub fn referrer_host(referer: &str) -> Option<String> {
    let rest = referer
        .strip_prefix("https://")
        .or_else(|| referer.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?.to_ascii_lowercase();
    (!host.is_empty() && host.len() <= 253).then_some(host)
}

/// 16 hex digits of SHA-256(salt, UTC date, IP, user agent): the same visitor on the same
/// day hashes alike, and nobody can go back from the hash to the address.
pub fn visitor_hash(salt: &[u8], date: chrono::NaiveDate, ip: &str, user_agent: &str) -> String {
    visitor_hash_on(salt, &date.to_string(), ip, user_agent)
}

/// [`visitor_hash`] with the date already written (`YYYY-MM-DD`), for a batch of visits of
/// one day.
pub fn visitor_hash_on(salt: &[u8], day: &str, ip: &str, user_agent: &str) -> String {
    hex::encode(visitor_digest_on(salt, day, ip, user_agent))
}

/// The 8 bytes [`visitor_hash_on`] writes in hex.
pub fn visitor_digest_on(salt: &[u8], day: &str, ip: &str, user_agent: &str) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(day)
        .chain_update([0])
        .chain_update(ip)
        .chain_update([0])
        .chain_update(user_agent)
        .finalize();
    let mut first = [0; 8];
    first.copy_from_slice(&digest[..8]);
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crawlers_and_tools_are_bots_and_browsers_are_not() {
        for ua in [
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "facebookexternalhit/1.1",
            "curl/8.5.0",
            "python-requests/2.31",
            "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0",
            "",
        ] {
            assert_eq!(AgentClass::of(ua), AgentClass::Bot, "{ua}");
        }
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
        assert_eq!(AgentClass::of(firefox), AgentClass::Browser);
    }

    #[test]
    fn only_the_referrers_host_is_kept() {
        assert_eq!(
            referrer_host("https://user:pw@Mail.Example.com:8443/inbox?id=secret").as_deref(),
            Some("mail.example.com")
        );
        assert_eq!(referrer_host("android-app://com.slack"), None);
    }

    #[test]
    fn visitor_hashes_hide_the_address_and_rotate_daily() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let a = visitor_hash(b"s", day, "203.0.113.9", "ua");
        assert_eq!(a.len(), 16);
        assert!(!a.contains("203"));
        assert_eq!(a, visitor_hash(b"s", day, "203.0.113.9", "ua"));
        assert_ne!(
            a,
            visitor_hash(b"s", day.succ_opt().unwrap(), "203.0.113.9", "ua")
        );
        assert_ne!(a, visitor_hash(b"t", day, "203.0.113.9", "ua"));
    }
}
