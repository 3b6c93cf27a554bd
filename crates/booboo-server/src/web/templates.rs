//! The page templates (minijinja, HTML auto-escaped). Debug builds read them
//! from `templates/` on every render, so an edit shows on reload; release
//! builds embed them, so the binary is all there is to deploy.

use super::time_text;
use crate::clock;
use axum::response::Html;
use minijinja::{Environment, Value};

/// Every template, for embedding; a test checks it matches the folder.
macro_rules! template_files {
    ($($name:literal),* $(,)?) => {
        pub const TEMPLATE_NAMES: &[&str] = &[$($name),*];
        #[cfg(not(debug_assertions))]
        const EMBEDDED: &[(&str, &str)] = &[$(($name, include_str!(concat!("../../templates/", $name)))),*];
    };
}

template_files!(
    "base.html",
    "macros.html",
    "error.html",
    "welcome.html",
    "setup.html",
    "signin.html",
    "invitation.html",
    "projects.html",
    "project_setup.html",
    "issues.html",
    "issue.html",
    "event.html",
    "settings.html",
    "members.html",
    "password.html",
    "alerts.html",
    "forgot_password.html",
    "email_password_reset.txt",
    "email_password_reset.html",
    "email_invitation.txt",
    "email_invitation.html",
    "confirm_delete.html",
    "merge_issues.html",
    "project_settings.html",
    "status_choices.html",
    "confirm_bulk.html",
);

fn configure(env: &mut Environment<'static>) {
    env.add_filter("ago", |ms: i64| time_text::ago(ms, clock::now_millis()));
    env.add_filter("exact", time_text::exact);
    env.add_filter("iso", time_text::iso);
    env.add_filter("thousands", thousands);
    env.add_global("asset_version", env!("CARGO_PKG_VERSION"));
}

#[cfg(debug_assertions)]
fn with_environment<T>(f: impl FnOnce(&Environment<'static>) -> T) -> T {
    let mut env = Environment::new();
    env.set_loader(minijinja::path_loader(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")));
    configure(&mut env);
    f(&env)
}

#[cfg(not(debug_assertions))]
fn with_environment<T>(f: impl FnOnce(&Environment<'static>) -> T) -> T {
    static ENV: std::sync::LazyLock<Environment<'static>> = std::sync::LazyLock::new(|| {
        let mut env = Environment::new();
        for (name, source) in EMBEDDED {
            env.add_template(name, source).expect("embedded templates are checked by the test suite");
        }
        configure(&mut env);
        env
    });
    f(&ENV)
}

pub fn render(name: &str, context: Value) -> Result<String, minijinja::Error> {
    if !TEMPLATE_NAMES.contains(&name) {
        // Debug builds would find it on disk; release builds would not.
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::TemplateNotFound,
            format!("{name} is not listed in web/templates.rs, so release builds would not embed it"),
        ));
    }
    with_environment(|env| env.get_template(name)?.render(context))
}

/// A template that failed to render, named; a page turns it into an
/// internal error (`page_error.rs`), which is why this module needs no page.
#[derive(Debug)]
pub struct TemplateError {
    pub name: String,
    pub source: minijinja::Error,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "template {}: {:#}", self.name, self.source)
    }
}

/// A whole page, or the error naming the template that failed.
pub fn page(name: &str, context: Value) -> Result<Html<String>, TemplateError> {
    render(name, context).map(Html).map_err(|source| TemplateError { name: name.to_string(), source })
}

/// `12345` → `12,345`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_file_is_listed_for_embedding() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".html") || n.ends_with(".txt"))
            .collect();
        files.sort();
        let mut listed: Vec<String> = TEMPLATE_NAMES.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(files, listed);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
