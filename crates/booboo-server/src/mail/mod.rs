//! E-mail over SMTP: password-reset links, invitations and (built on this)
//! alerts. A `Mailer` exists only when `--smtp-url` is set; everything that
//! sends mail holds an `Option<Arc<Mailer>>` and says what to configure
//! when it is `None`.
//!
//! Errors come back as values that say whether trying again can help: a 4xx
//! reply, a refused connection or a timeout is `Temporary`; a 5xx reply (an
//! unknown mailbox, a rejected sender) is `Permanent`.

mod message;
mod smtp_url;

pub use message::OutgoingMail;
pub use smtp_url::{Security, SmtpUrl};

use crate::config::Config;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::fmt;
use std::time::Duration;

/// Each connect and each SMTP command; a stalled server never holds a
/// sender for long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole conversation, greeting to QUIT.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailError {
    /// Trying again later may work: a 4xx reply, no connection, a timeout,
    /// a TLS failure.
    Temporary(String),
    /// Trying again will not work: a 5xx reply or a message that cannot be
    /// built (a recipient that is not an address).
    Permanent(String),
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailError::Temporary(m) | MailError::Permanent(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for MailError {}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    url: SmtpUrl,
}

/// The SMTP password never reaches `Debug` output or logs.
impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer").field("url", &self.url).field("from", &self.from.to_string()).finish()
    }
}

impl Mailer {
    /// `None` when `--smtp-url` is not set. A bad URL or sender is an error
    /// naming its flag, so the server refuses to start rather than fail at
    /// the first password reset.
    pub fn from_config(config: &Config) -> Result<Option<Mailer>, String> {
        let Some(url_text) = &config.smtp_url else {
            if config.email_from.is_some() {
                return Err("--email-from is set but --smtp-url is not; set both to send e-mail, or neither".into());
            }
            return Ok(None);
        };
        let url = SmtpUrl::parse(url_text)?;
        let from_text = config.email_from.as_deref().ok_or(
            "--email-from: required with --smtp-url; the address e-mail comes from, such as booboo@example.com",
        )?;
        let from: Mailbox = from_text.trim().parse().map_err(|_| {
            format!("--email-from: {from_text:?} is not an address such as booboo@example.com or \"booboo <booboo@example.com>\"")
        })?;
        Ok(Some(Mailer::new(url, from, hello_name(&config.public_url))?))
    }

    fn new(url: SmtpUrl, from: Mailbox, hello: ClientId) -> Result<Mailer, String> {
        let tls_parameters = || {
            TlsParameters::new(url.host.clone())
                .map_err(|e| format!("--smtp-url: cannot prepare TLS for {:?}: {e}", url.host))
        };
        let tls = match url.security {
            Security::StartTlsWhenOffered => Tls::Opportunistic(tls_parameters()?),
            Security::StartTlsRequired => Tls::Required(tls_parameters()?),
            Security::ImplicitTls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.clone())
            .port(url.port)
            .tls(tls)
            .hello_name(hello)
            .timeout(Some(COMMAND_TIMEOUT));
        if let Some((user, password)) = &url.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Mailer { transport: builder.build(), from, url })
    }

    /// Where mail goes, for the start-up log: no password.
    pub fn describe(&self) -> String {
        let security = match self.url.security {
            Security::StartTlsWhenOffered => "STARTTLS when offered",
            Security::StartTlsRequired => "STARTTLS required",
            Security::ImplicitTls => "implicit TLS",
        };
        format!("{}:{} ({security}), from {}", self.url.host, self.url.port, self.from)
    }

    pub async fn send(&self, mail: OutgoingMail) -> Result<(), MailError> {
        let message_id = format!("<{}@{}>", crate::secrets::new_event_id(), self.from.email.domain());
        let message = message::build(&self.from, &mail, message_id)?;
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.classify(&e)),
            Err(_) => Err(MailError::Temporary(format!(
                "the SMTP server {} did not finish within {} seconds",
                self.server(),
                SEND_TIMEOUT.as_secs()
            ))),
        }
    }

    fn server(&self) -> String {
        format!("{}:{}", self.url.host, self.url.port)
    }

    fn classify(&self, e: &lettre::transport::smtp::Error) -> MailError {
        let server = self.server();
        let detail = error_chain(e);
        if e.is_permanent() {
            MailError::Permanent(format!("the SMTP server {server} refused the message: {detail}"))
        } else if e.is_transient() {
            MailError::Temporary(format!("the SMTP server {server} answered with a temporary failure: {detail}"))
        } else if e.is_client() && detail.contains("STARTTLS") {
            MailError::Temporary(format!(
                "the SMTP server {server} does not offer STARTTLS, which ?starttls=required in --smtp-url demands; nothing was sent"
            ))
        } else if e.is_tls() || is_tls_failure(e) {
            MailError::Temporary(format!("TLS with the SMTP server {server} failed: {detail}"))
        } else if e.is_timeout() {
            MailError::Temporary(format!("the SMTP server {server} did not answer in time: {detail}"))
        } else {
            MailError::Temporary(format!("cannot send through the SMTP server {server}: {detail}"))
        }
    }
}

/// lettre's message on one line, without the repeated "Connection error: "
/// of an error it wrapped twice.
fn error_chain(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    while let Some(start) = text.find("Connection error: Connection error: ") {
        text.replace_range(start..start + "Connection error: ".len(), "");
    }
    text
}

/// Whether a TLS handshake or certificate check failed somewhere below:
/// lettre reports those as connection errors wrapping rustls' own.
fn is_tls_failure(e: &lettre::transport::smtp::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if inner.is::<rustls::Error>() {
                return true;
            }
        }
        cause = error.source();
    }
    false
}

/// EHLO names this server by its public host, as RFC 5321 asks, rather
/// than "localhost", which some servers refuse.
fn hello_name(public_url: &str) -> ClientId {
    let host = url::Url::parse(public_url).ok().and_then(|u| u.host().map(|h| h.to_owned()));
    match host {
        Some(url::Host::Domain(name)) => ClientId::Domain(name),
        Some(url::Host::Ipv4(ip)) => ClientId::Ipv4(ip),
        Some(url::Host::Ipv6(ip)) => ClientId::Ipv6(ip),
        None => ClientId::Domain("localhost".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn config(smtp_url: Option<&str>, email_from: Option<&str>) -> Config {
        Config::load(Overrides {
            smtp_url: smtp_url.map(Into::into),
            email_from: email_from.map(Into::into),
            public_url: Some("https://errors.example.com".into()),
            ..Overrides::default()
        })
        .unwrap()
    }

    #[test]
    fn no_smtp_url_means_no_mailer() {
        assert!(Mailer::from_config(&config(None, None)).unwrap().is_none());
        let err = Mailer::from_config(&config(None, Some("booboo@example.com"))).unwrap_err();
        assert!(err.contains("--smtp-url"), "{err}");
    }

    #[test]
    fn a_mailer_needs_a_valid_url_and_sender() {
        let err = Mailer::from_config(&config(Some("smtp://u:secret@mail.example.com"), None)).unwrap_err();
        assert!(err.starts_with("--email-from"), "{err}");
        let err = Mailer::from_config(&config(Some("smtp://mail.example.com"), Some("booboo\r\nBcc: x@example.com")))
            .unwrap_err();
        assert!(err.starts_with("--email-from"), "{err}");
        let err =
            Mailer::from_config(&config(Some("imap://mail.example.com"), Some("booboo@example.com"))).unwrap_err();
        assert!(err.starts_with("--smtp-url"), "{err}");
        let mailer = Mailer::from_config(&config(
            Some("smtp://u:secret@mail.example.com?starttls=required"),
            Some("booboo <booboo@example.com>"),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(mailer.describe(), "mail.example.com:587 (STARTTLS required), from booboo <booboo@example.com>");
        assert!(!format!("{mailer:?}").contains("secret"));
    }
}
