//! One e-mail: a plain-text and an HTML part of the same words
//! (multipart/alternative), headers that user data cannot add to.

use super::MailError;
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, Message};

/// A subject longer than this is cut: mail clients show less anyway, and an
/// issue title can be as long as an exception message.
const MAX_SUBJECT_CHARS: usize = 200;

/// What to send, to whom. `subject` and `to` may hold user data (an issue
/// title, an invited address): they are checked here, never trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A recipient must be one bare address: a line break, a second address or
/// a display name cannot come through here.
pub fn recipient(to: &str) -> Result<Address, MailError> {
    to.trim()
        .parse::<Address>()
        .map_err(|_| MailError::Permanent(format!("{:?} is not an e-mail address", shorten(to, 80))))
}

/// The subject on one line: control characters (CR and LF above all, which
/// would start a new header) become spaces, and long titles are cut.
pub fn subject_line(subject: &str) -> String {
    let one_line: String = subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    shorten(one_line.trim(), MAX_SUBJECT_CHARS)
}

pub fn build(from: &Mailbox, mail: &OutgoingMail, message_id: String) -> Result<Message, MailError> {
    let to = recipient(&mail.to)?;
    Message::builder()
        .from(from.clone())
        .to(Mailbox::new(None, to))
        .subject(subject_line(&mail.subject))
        .message_id(Some(message_id))
        .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
        .map_err(|e| MailError::Permanent(format!("cannot build the message: {e}")))
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> Mailbox {
        "booboo <booboo@example.com>".parse().unwrap()
    }

    fn mail(to: &str, subject: &str) -> OutgoingMail {
        OutgoingMail {
            to: to.into(),
            subject: subject.into(),
            text: "Reset your password: https://errors.example.com/password/abc".into(),
            html: "<p>Reset your <b>password</b></p>".into(),
        }
    }

    fn headers(message: &Message) -> String {
        let formatted = String::from_utf8(message.formatted()).unwrap();
        formatted.split("\r\n\r\n").next().unwrap().to_string()
    }

    #[test]
    fn a_message_has_a_text_and_an_html_part() {
        let message =
            build(&from(), &mail("ada@example.com", "Reset your password"), "<1@example.com>".into()).unwrap();
        let formatted = String::from_utf8(message.formatted()).unwrap();
        let head = headers(&message);
        assert!(head.contains("From: booboo <booboo@example.com>"), "{head}");
        assert!(head.contains("To: ada@example.com"), "{head}");
        assert!(head.contains("Subject: Reset your password"), "{head}");
        assert!(head.contains("Message-ID: <1@example.com>"), "{head}");
        assert!(head.contains("multipart/alternative"), "{head}");
        assert!(formatted.contains("Content-Type: text/plain; charset=utf-8"), "{formatted}");
        assert!(formatted.contains("Content-Type: text/html; charset=utf-8"), "{formatted}");
        assert!(formatted.contains("https://errors.example.com/password/abc"), "{formatted}");
        assert_eq!(message.envelope().to().len(), 1);
    }

    #[test]
    fn a_subject_cannot_add_headers() {
        let message = build(
            &from(),
            &mail("ada@example.com", "KeyError\r\nBcc: everyone@example.com\nX-Evil: 1"),
            "<2@example.com>".into(),
        )
        .unwrap();
        let head = headers(&message);
        let names: Vec<&str> =
            head.lines().filter(|l| !l.starts_with(' ')).filter_map(|l| l.split_once(':').map(|(n, _)| n)).collect();
        assert!(!names.iter().any(|n| n.eq_ignore_ascii_case("bcc") || n.eq_ignore_ascii_case("x-evil")), "{head}");
        assert_eq!(names.iter().filter(|n| n.eq_ignore_ascii_case("subject")).count(), 1, "{head}");
        assert_eq!(message.envelope().to().len(), 1);
        assert_eq!(subject_line("a\r\nb\tc"), "a  b c");
        assert_eq!(subject_line(&"x".repeat(500)).chars().count(), MAX_SUBJECT_CHARS + 1);
    }

    #[test]
    fn a_recipient_is_one_bare_address() {
        for bad in [
            "ada@example.com\r\nBcc: everyone@example.com",
            "ada@example.com, bob@example.com",
            "Ada <ada@example.com>",
            "not an address",
            "",
        ] {
            let err = build(&from(), &mail(bad, "hi"), "<3@example.com>".into()).unwrap_err();
            assert!(
                matches!(err, MailError::Permanent(ref m) if m.contains("not an e-mail address")),
                "{bad:?}: {err}"
            );
        }
    }
}
