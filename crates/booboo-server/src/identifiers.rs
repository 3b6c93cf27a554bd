//! What the CLI and the dashboard accept as an e-mail address and as a slug
//! (an organisation's or a project's name in URLs and DSNs), in one place.

pub fn check_email(email: &str) -> Result<String, String> {
    let email = email.trim().to_ascii_lowercase();
    let valid =
        email.split_once('@').is_some_and(|(user, host)| !user.is_empty() && host.contains('.') || host == "localhost")
            && !email.contains(|c: char| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(format!("{email:?} is not an email address"))
    }
}

/// Slugs appear in URLs and DSNs: lowercase letters, digits, `-` and `_`.
pub fn check_slug(slug: &str, what: &str) -> Result<(), String> {
    let ok = !slug.is_empty()
        && slug.len() <= 50
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && slug.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} {slug:?} must be 1 to 50 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        ))
    }
}
