//! `--smtp-url`: where and how e-mail leaves this server.
//!
//! `smtp://user:pass@host:587` upgrades to TLS with STARTTLS when the server
//! offers it; `?starttls=required` refuses to send over a connection the
//! server would not encrypt (a man in the middle can strip the offer);
//! `smtps://host:465` speaks TLS from the first byte.

use std::fmt;

/// Submission ports (RFC 6409 and RFC 8314) when the URL names none.
const SUBMISSION_PORT: u16 = 587;
const SUBMISSIONS_PORT: u16 = 465;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// STARTTLS when the server offers it, plain text otherwise.
    StartTlsWhenOffered,
    /// STARTTLS or nothing is sent.
    StartTlsRequired,
    /// TLS from the first byte (`smtps://`).
    ImplicitTls,
}

#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// User name and password, percent-decoded.
    pub credentials: Option<(String, String)>,
}

/// The password never reaches `Debug` output or logs.
impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl SmtpUrl {
    /// Reads the URL; an error names the flag and says what is accepted.
    pub fn parse(text: &str) -> Result<SmtpUrl, String> {
        let shown = crate::store::redact_url(text);
        let url = url::Url::parse(text.trim()).map_err(|e| {
            format!(
                "--smtp-url: {shown:?} is not a URL ({e}); expected smtp://user:password@host:587 or smtps://host:465"
            )
        })?;
        let implicit_tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(format!(
                    "--smtp-url: the scheme {other:?} is not smtp:// (STARTTLS) or smtps:// (implicit TLS)"
                ))
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(name)) if !name.is_empty() => name.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(format!("--smtp-url: {shown:?} names no host")),
        };
        if !(url.path().is_empty() || url.path() == "/") {
            return Err(format!("--smtp-url: {shown:?} has a path; an SMTP URL is only user, password, host and port"));
        }
        let mut starttls_required = false;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("starttls", "required") if !implicit_tls => starttls_required = true,
                ("starttls", "opportunistic") if !implicit_tls => starttls_required = false,
                ("starttls", _) if implicit_tls => {
                    return Err("--smtp-url: smtps:// already speaks TLS from the start; drop ?starttls=".into())
                }
                ("starttls", other) => {
                    return Err(format!(
                        "--smtp-url: starttls={other:?} is not understood; use ?starttls=required or leave it out"
                    ))
                }
                (other, _) => {
                    return Err(format!(
                        "--smtp-url: the parameter {other:?} is not understood; only ?starttls=required is"
                    ))
                }
            }
        }
        let security = match (implicit_tls, starttls_required) {
            (true, _) => Security::ImplicitTls,
            (false, true) => Security::StartTlsRequired,
            (false, false) => Security::StartTlsWhenOffered,
        };
        let port = url.port().unwrap_or(if implicit_tls { SUBMISSIONS_PORT } else { SUBMISSION_PORT });
        let decode = |part: &str| -> Result<String, String> {
            percent_decode(part).ok_or_else(|| {
                format!("--smtp-url: the user or password in {shown:?} is not valid UTF-8 after percent-decoding")
            })
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(format!("--smtp-url: {shown:?} has a password but no user name")),
            (user, password) => Some((decode(user)?, decode(password.unwrap_or(""))?)),
        };
        Ok(SmtpUrl { host, port, security, credentials })
    }
}

/// `%40` back to `@`: passwords often hold characters a URL must escape.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_upgrades_when_offered_and_defaults_to_the_submission_port() {
        let url = SmtpUrl::parse("smtp://mailer:s%40cret@mail.example.com").unwrap();
        assert_eq!(url.host, "mail.example.com");
        assert_eq!(url.port, 587);
        assert_eq!(url.security, Security::StartTlsWhenOffered);
        assert_eq!(url.credentials, Some(("mailer".into(), "s@cret".into())));
    }

    #[test]
    fn starttls_can_be_demanded_and_smtps_is_implicit_tls() {
        let url = SmtpUrl::parse("smtp://127.0.0.1:2525?starttls=required").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.security), ("127.0.0.1", 2525, Security::StartTlsRequired));
        assert_eq!(url.credentials, None);
        let url = SmtpUrl::parse("smtps://user:pw@[::1]").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.security), ("::1", 465, Security::ImplicitTls));
    }

    #[test]
    fn bad_urls_name_the_flag_and_never_show_the_password() {
        for (text, expected) in [
            ("mail.example.com", "is not a URL"),
            ("http://mail.example.com", "scheme"),
            ("smtp://mail.example.com?starttls=yes", "starttls=\"yes\""),
            ("smtp://mail.example.com?tls=required", "\"tls\""),
            ("smtps://mail.example.com?starttls=required", "smtps://"),
            ("smtp://:secret@mail.example.com", "no user name"),
            ("smtp://u:secret@mail.example.com/inbox", "path"),
        ] {
            let err = SmtpUrl::parse(text).unwrap_err();
            assert!(err.starts_with("--smtp-url:"), "{text}: {err}");
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("secret"), "{text}: {err}");
        }
        let debug = format!("{:?}", SmtpUrl::parse("smtp://u:secret@mail.example.com").unwrap());
        assert!(!debug.contains("secret"), "{debug}");
    }
}
