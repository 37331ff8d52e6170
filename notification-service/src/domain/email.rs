//! What a mail says: one notice at once, or a receiver's digest of several. Each has a
//! subject, a plain-text body and an HTML body (maud, escaped like every page), and ends
//! with the link that stops these mails.

use maud::{DOCTYPE, Markup, html};

/// One notice as a mail shows it.
#[derive(Debug, Clone)]
pub struct Notice {
    pub title: String,
    pub body: String,
    /// `WEB-42 · Ship it`, when it is about a task.
    pub task: Option<String>,
}

/// A composed mail, before addresses and headers.
#[derive(Debug, Clone)]
pub struct Letter {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The mail of one notice sent at once.
pub fn instant(notice: &Notice, unsubscribe: &str) -> Letter {
    compose(
        notice.title.clone(),
        std::slice::from_ref(notice),
        unsubscribe,
    )
}

/// The mail that combines a receiver's notices of one digest window.
pub fn digest(notices: &[Notice], unsubscribe: &str) -> Letter {
    let subject = match notices.len() {
        1 => "1 update in Nexus".to_owned(),
        n => format!("{n} updates in Nexus"),
    };
    compose(subject, notices, unsubscribe)
}

fn compose(subject: String, notices: &[Notice], unsubscribe: &str) -> Letter {
    let mut text = String::new();
    for notice in notices {
        text.push_str(&notice.title);
        text.push('\n');
        if let Some(task) = &notice.task {
            text.push_str(task);
            text.push('\n');
        }
        if !notice.body.is_empty() {
            text.push_str(&notice.body);
            text.push('\n');
        }
        text.push('\n');
    }
    text.push_str("--\nStop these emails: ");
    text.push_str(unsubscribe);
    text.push('\n');
    let html = page(&subject, notices, unsubscribe).into_string();
    Letter {
        subject,
        text,
        html,
    }
}

fn page(subject: &str, notices: &[Notice], unsubscribe: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (subject) } }
            body style="font-family:system-ui,sans-serif;color:#1f2328" {
                @for notice in notices {
                    div style="margin:0 0 1.2em" {
                        p style="margin:0;font-weight:600" { (notice.title) }
                        @if let Some(task) = &notice.task {
                            p style="margin:0;color:#59636e" { (task) }
                        }
                        @if !notice.body.is_empty() {
                            p style="margin:.3em 0 0;white-space:pre-wrap" { (notice.body) }
                        }
                    }
                }
                hr;
                p style="font-size:.85em;color:#59636e" {
                    "You get these emails because of your Nexus notification settings. "
                    a href=(unsubscribe) { "Stop these emails" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(title: &str, body: &str) -> Notice {
        Notice {
            title: title.into(),
            body: body.into(),
            task: Some("WEB-1 · Ship <it>".into()),
        }
    }

    #[test]
    fn an_instant_mail_is_titled_by_its_notice_and_escapes_what_users_wrote() {
        let letter = instant(
            &notice("New comment on WEB-1", "<b>hi</b>"),
            "https://x/u?t=1",
        );
        assert_eq!(letter.subject, "New comment on WEB-1");
        assert!(letter.text.contains("<b>hi</b>"), "{}", letter.text);
        assert!(
            letter
                .text
                .ends_with("Stop these emails: https://x/u?t=1\n")
        );
        assert!(
            letter.html.contains("&lt;b&gt;hi&lt;/b&gt;"),
            "{}",
            letter.html
        );
        assert!(letter.html.contains("Ship &lt;it&gt;"));
        assert!(!letter.html.contains("<b>hi"));
        assert!(letter.html.contains(r#"href="https://x/u?t=1""#));
    }

    #[test]
    fn a_digest_lists_every_notice_under_one_subject() {
        let notices: Vec<Notice> = (1..=3).map(|i| notice(&format!("n{i}"), "")).collect();
        let letter = digest(&notices, "u");
        assert_eq!(letter.subject, "3 updates in Nexus");
        for i in 1..=3 {
            assert!(letter.text.contains(&format!("n{i}\n")));
            assert!(letter.html.contains(&format!(">n{i}<")));
        }
    }
}
