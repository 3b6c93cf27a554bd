//! The e-mails accounts receive: a password-reset link and an invitation.
//! Both carry a one-time link, so both are sent only to the address the
//! link is for, and the link is never logged.

use super::templates::render;
use crate::mail::OutgoingMail;
use crate::state::AppState;
use minijinja::Value;

fn compose(to: &str, subject: String, template: &str, context: Value) -> Result<OutgoingMail, String> {
    let part = |ext: &str| {
        let name = format!("{template}.{ext}");
        render(&name, context.clone()).map_err(|e| format!("template {name}: {e:#}"))
    };
    Ok(OutgoingMail { to: to.to_string(), subject, text: part("txt")?, html: part("html")? })
}

pub fn password_reset(state: &AppState, email: &str, link: &str) -> Result<OutgoingMail, String> {
    let context = minijinja::context! {
        email, link, public_url => state.config.public_url, lifetime_days => state.config.link_lifetime_days,
    };
    compose(email, "Choose a new booboo password".into(), "email_password_reset", context)
}

pub fn invitation(
    state: &AppState,
    email: &str,
    link: &str,
    inviter: &str,
    org: &str,
    role: &str,
) -> Result<OutgoingMail, String> {
    let context = minijinja::context! {
        link, inviter, org, role, public_url => state.config.public_url,
        lifetime_days => state.config.link_lifetime_days,
    };
    compose(email, format!("You are invited to join {org} on booboo"), "email_invitation", context)
}
