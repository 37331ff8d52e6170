//! What the tests' SMTP server received: `cargo xtask test` runs `aiosmtpd` (its own, on
//! a free port) and tells the tests where (`NEXUS_TEST_SMTP_URL`) and which Maildir it
//! writes each mail into (`NEXUS_TEST_MAILDIR`); tests read the mails addressed to the
//! receivers they made up.

use std::path::PathBuf;
use std::time::Duration;

use mail_parser::MessageParser;

/// The SMTP server the services under test send to (`NEXUS_TEST_SMTP_URL`; without it,
/// the one an earlier `cargo xtask test` of this checkout started).
pub fn smtp_url() -> String {
    std::env::var("NEXUS_TEST_SMTP_URL").unwrap_or_else(|_| {
        let port = std::fs::read_to_string(state().join("mail/test.port")).unwrap_or_default();
        format!("smtp://127.0.0.1:{}", port.trim())
    })
}

fn state() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.nexus")
}

fn maildir() -> PathBuf {
    std::env::var_os("NEXUS_TEST_MAILDIR").map_or_else(|| state().join("mail/test"), PathBuf::from)
}

/// One received mail.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    /// Every header as `(name, value)`, values unfolded.
    pub headers: Vec<(String, String)>,
    /// The plain-text part, decoded.
    pub text: String,
    /// The HTML part, decoded.
    pub html: String,
}

impl Mail {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The mails received so far whose `To` is `address`.
pub fn mails_to(address: &str) -> Vec<Mail> {
    let mut found = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir().join(sub)) else {
            continue;
        };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let Ok(raw) = std::fs::read(&file) else {
                continue;
            };
            let Some(message) = MessageParser::default().parse(&raw) else {
                continue;
            };
            let to_them = message.to().is_some_and(|to| {
                to.iter()
                    .any(|a| a.address().is_some_and(|a| a.eq_ignore_ascii_case(address)))
            });
            if !to_them {
                continue;
            }
            found.push(Mail {
                subject: message.subject().unwrap_or_default().to_owned(),
                headers: message
                    .headers_raw()
                    .map(|(name, value)| {
                        let unfolded: String = value
                            .split(['\r', '\n'])
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ");
                        (name.to_owned(), unfolded)
                    })
                    .collect(),
                text: message.body_text(0).unwrap_or_default().into_owned(),
                html: message.body_html(0).unwrap_or_default().into_owned(),
            });
        }
    }
    found
}

/// Waits (at most `timeout`) until at least `n` mails reached `address`; all of them.
pub async fn wait_for_mails(address: &str, n: usize, timeout: Duration) -> Vec<Mail> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mails = mails_to(address);
        if mails.len() >= n {
            return mails;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} mails reached {address} in {timeout:?} (Maildir {}; the test SMTP \
             server at {} is started by `cargo xtask test`)",
            mails.len(),
            maildir().display(),
            smtp_url()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
