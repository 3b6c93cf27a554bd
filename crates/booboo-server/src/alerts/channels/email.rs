//! E-mail alerts: a plain-text and an HTML part with the issue's title,
//! culprit, project, environment, release, counts, first and last seen, a
//! short stack excerpt and a link; and the digest of alerts the
//! per-recipient cap held back. Event text is escaped in the HTML part; the
//! subject is made one line by the mailer.

use crate::alerts::message::{cut, AlertMessage};
use crate::store::HeldEmail;

/// `(subject, text, html)` of one alert.
pub fn render(message: &AlertMessage) -> (String, String, String) {
    let subject = format!("[booboo] {}", message.headline());
    let link = message.issue_url().unwrap_or_else(|| message.project_url());
    let facts = message.facts();
    let stack = message.stack_excerpt(5);
    let mut text = format!("{}\n\n", cut(&message.headline(), 1000));
    for (label, value) in &facts {
        text.push_str(&format!("{label}: {}\n", cut(value, 500)));
    }
    if !stack.is_empty() {
        text.push_str("\nMost recent call last:\n");
        for line in &stack {
            text.push_str(&format!("  {}\n", cut(line, 300)));
        }
    }
    text.push_str(&format!("\nOpen in booboo: {link}\n"));
    text.push_str(&footer_text(message));

    let mut html = format!(
        "<!doctype html><html><body style=\"font-family: sans-serif\"><h2><a href=\"{}\">{}</a></h2><table>",
        escape(&link),
        escape(&cut(&message.headline(), 1000))
    );
    for (label, value) in &facts {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            escape(label),
            escape(&cut(value, 500))
        ));
    }
    html.push_str("</table>");
    if !stack.is_empty() {
        html.push_str("<p>Most recent call last:</p><pre>");
        for line in &stack {
            html.push_str(&escape(&cut(line, 300)));
            html.push('\n');
        }
        html.push_str("</pre>");
    }
    html.push_str(&format!(
        "<p><a href=\"{}\">Open in booboo</a></p><p style=\"color: #777\">{}</p></body></html>",
        escape(&link),
        escape(&footer_text(message))
    ));
    (subject, text, html)
}

fn footer_text(message: &AlertMessage) -> String {
    format!(
        "You get this because a booboo alert rule of {} e-mails you. Members can stop alert e-mails per project in \
         their settings ({}/settings).\n",
        message.project_path(),
        message.public_url
    )
}

/// `(subject, text, html)` of the digest of alerts held back for one
/// recipient by the per-recipient cap.
pub fn digest(held: &[HeldEmail], cap: i64, period_ms: i64) -> (String, String, String) {
    let period = period_words(period_ms);
    let subject = format!("[booboo] {} more alerts held back in the last {period}", held.len());
    let mut text = format!(
        "booboo sends at most {cap} alert e-mails per {period} to one address; these {} alerts came after that:\n\n",
        held.len()
    );
    let mut html = format!(
        "<!doctype html><html><body style=\"font-family: sans-serif\"><p>booboo sends at most {cap} alert e-mails per \
         {period} to one address; these {} alerts came after that:</p><ul>",
        held.len()
    );
    for item in held {
        text.push_str(&format!("- {} {}\n", cut(&item.summary, 300), item.url));
        html.push_str(&format!("<li><a href=\"{}\">{}</a></li>", escape(&item.url), escape(&cut(&item.summary, 300))));
    }
    html.push_str("</ul></body></html>");
    (subject, text, html)
}

/// The cap's period in words after "per" and "in the last": "hour",
/// "30 minutes", "5 seconds".
fn period_words(ms: i64) -> String {
    let seconds = (ms / 1000).max(1);
    let (n, unit) = match seconds {
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 {
        unit.to_string()
    } else {
        format!("{n} {unit}s")
    }
}

/// HTML's five special characters, for text in elements and attributes.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}
