//! Grouping: which events are "the same problem".
//!
//! The default fingerprint is the exception type plus the application's frames
//! of the raised exception, each as a normalised file path, the function and
//! the trimmed source line. Line numbers and messages stay out, so an issue
//! survives deploys that move code and messages that carry ids. SDKs that send
//! no source lines (browser JavaScript, Rust, other native code) would then
//! group by file and function alone, merging every error a function throws,
//! so for them the normalised message joins the frames: "too many values: 5"
//! and "…: 7" stay one issue, "attempt to divide by zero" is another. Python
//! events (and the booboo protocol's, which name no platform) keep the rule
//! without the message, so their existing issues do not regroup. A log record
//! without an exception (Sentry's `logentry`, or the booboo protocol's) groups
//! by its logger and its message template instead: the same `logger.error`
//! line is one problem whatever its arguments and whichever caller reached it.
//! The rules are pinned by the fixture files in `tests/fixtures/grouping/`.

use crate::event::{Event, Frame};
use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};

/// The element of a client fingerprint that stands for the default one.
const DEFAULT_MARKER: &str = "{{default}}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// 32 hex characters; one issue per fingerprint within a project.
    pub fingerprint: String,
    /// What went into it, for explaining a grouping to a person.
    pub components: Vec<String>,
}

pub fn group(event: &Event) -> Grouping {
    let components = match &event.fingerprint {
        Some(custom) if !custom.is_empty() => {
            let mut out = Vec::new();
            for part in custom {
                if part.chars().filter(|c| !c.is_whitespace()).collect::<String>() == DEFAULT_MARKER {
                    out.extend(default_components(event));
                } else {
                    out.push(format!("custom:{part}"));
                }
            }
            out
        }
        _ => default_components(event),
    };
    let mut hasher = Blake2b::<U16>::new();
    for c in &components {
        hasher.update(c.as_bytes());
        hasher.update([0u8]);
    }
    let fingerprint = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Grouping { fingerprint, components }
}

pub fn default_components(event: &Event) -> Vec<String> {
    let exception_type =
        event.exceptions.first().map(|e| e.exception_type.as_str()).unwrap_or(event.exception_type.as_str());
    if event.exceptions.is_empty() && exception_type.is_empty() {
        if let Some(log) = &event.logentry {
            return vec![
                "type:".to_string(),
                format!("logger:{}", event.logger),
                format!("template:{}", normalise_message(&log.template)),
            ];
        }
    }
    let frames = event.raised_frames();
    let in_app: Vec<&Frame> = frames.iter().filter(|f| f.in_app).collect();
    let chosen: Vec<&Frame> = if in_app.is_empty() { frames.iter().collect() } else { in_app };

    let mut components = vec![format!("type:{exception_type}")];
    if chosen.is_empty() {
        let message = event.exceptions.first().map(|e| e.value.as_str()).unwrap_or(event.message.as_str());
        components.push(format!("message:{}", normalise_message(message)));
        return components;
    }
    let has_source = chosen.iter().any(|f| f.context_line.as_deref().is_some_and(|l| !l.trim().is_empty()));
    let with_message = !has_source && !matches!(event.platform.as_str(), "" | "python");
    for frame in chosen {
        let component = format!(
            "frame:{} {} {}",
            path_key(frame),
            frame.function,
            frame.context_line.as_deref().unwrap_or("").trim()
        );
        // Recursion repeats the same frame; its depth is not a different bug.
        if components.last() != Some(&component) {
            components.push(component);
        }
    }
    if with_message {
        let message = event.exceptions.first().map(|e| e.value.as_str()).unwrap_or(event.message.as_str());
        components.push(format!("message:{}", normalise_message(message)));
    }
    components
}

/// The part of a path that stays the same across machines, virtualenvs and
/// deploy directories: the path inside site-packages or the standard library
/// for libraries, the file name for application code. A URL's query string
/// and fragment, and the content hash a bundler puts into a script's name
/// (`app.3f9a1c2b.js?v=2`), change with every deploy and stay out.
pub fn path_key(frame: &Frame) -> String {
    let mut path = frame.filename.replace('\\', "/");
    if let Some(cut) = path.find(['?', '#']) {
        path.truncate(cut);
    }
    let path = path;
    if path.is_empty() {
        return frame.module.clone().unwrap_or_default();
    }
    for marker in ["site-packages/", "dist-packages/"] {
        if let Some(pos) = path.rfind(marker) {
            return path[pos + marker.len()..].to_string();
        }
    }
    if let Some(pos) = path.find("/lib/python") {
        let rest = &path[pos + "/lib/python".len()..];
        if let Some(slash) = rest.find('/') {
            return rest[slash + 1..].to_string();
        }
    }
    without_content_hash(path.rsplit('/').next().unwrap_or(&path))
}

/// `app.3f9a1c2b.js`, `index-BdT3x9Qa.js`, `main.5f2b9c.chunk.js` → `app.js`,
/// `index.js`, `main.chunk.js`. Only scripts and style sheets: bundlers name
/// those, and a Python or Rust file name is left as it is.
fn without_content_hash(name: &str) -> String {
    const BUNDLED: &[&str] = &[".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".css", ".map"];
    if !BUNDLED.iter().any(|ext| name.ends_with(ext)) {
        return name.to_string();
    }
    let Some((stem, ext)) = name.split_once('.') else {
        return name.to_string();
    };
    // The first `.`-part may end in `-hash` (Vite); later ones may be a hash.
    let stem = match stem.rsplit_once('-') {
        Some((base, tail)) if !base.is_empty() && is_content_hash(tail) => base,
        _ => stem,
    };
    let rest: Vec<&str> = ext.split('.').collect();
    let (last, middle) = rest.split_last().expect("split yields at least one part");
    let mut out = stem.to_string();
    for part in middle.iter().filter(|p| !is_content_hash(p)) {
        out.push('.');
        out.push_str(part);
    }
    out.push('.');
    out.push_str(last);
    out
}

fn is_content_hash(part: &str) -> bool {
    let has_digit = part.bytes().any(|b| b.is_ascii_digit());
    let alnum = part.bytes().all(|b| b.is_ascii_alphanumeric());
    let hex = part.bytes().all(|b| b.is_ascii_hexdigit());
    has_digit && alnum && (part.len() >= 8 || (part.len() >= 6 && hex))
}

/// A message with its variable parts (numbers, hex ids, UUIDs) replaced, for
/// grouping errors that have no stack.
pub fn normalise_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut run = String::new();
    let is_run_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    for c in message.chars().chain(std::iter::once('\n')) {
        if is_run_char(c) {
            run.push(c);
            continue;
        }
        if !run.is_empty() {
            out.push_str(&normalise_run(&run));
            run.clear();
        }
        out.push(c);
    }
    out.pop();
    out
}

fn normalise_run(run: &str) -> String {
    if is_uuid(run) {
        return "<uuid>".into();
    }
    let mut out = String::new();
    let mut piece = String::new();
    for c in run.chars().chain(std::iter::once('\0')) {
        if c == '-' || c == '_' || c == '\0' {
            out.push_str(&normalise_piece(&piece));
            piece.clear();
            if c != '\0' {
                out.push(c);
            }
        } else {
            piece.push(c);
        }
    }
    out
}

fn normalise_piece(piece: &str) -> String {
    let all_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(rest) = piece.strip_prefix("0x").or_else(|| piece.strip_prefix("0X")) {
        if all_hex(rest) {
            return "<hex>".into();
        }
    }
    if !piece.is_empty() && piece.bytes().all(|b| b.is_ascii_digit()) {
        return "<n>".into();
    }
    if piece.len() >= 8 && all_hex(piece) && piece.bytes().any(|b| b.is_ascii_digit()) {
        return "<hex>".into();
    }
    piece.to_string()
}

fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    match bytes.len() {
        32 => bytes.iter().all(u8::is_ascii_hexdigit),
        36 => bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_lose_their_variable_parts() {
        assert_eq!(normalise_message("User 42 not found"), "User <n> not found");
        assert_eq!(
            normalise_message("object at 0x7f3a2b1c9d00 id=5f3c2a1b-1111-4a2b-9c3d-0123456789ab"),
            "object at <hex> id=<uuid>"
        );
        assert_eq!(normalise_message("sha deadbeef1234 in utf8"), "sha <hex> in utf8");
        assert_eq!(normalise_message("retry-3 of order_17"), "retry-<n> of order_<n>");
        assert_eq!(normalise_message(""), "");
    }

    #[test]
    fn library_paths_drop_the_virtualenv() {
        let frame = |p: &str| Frame { filename: p.into(), ..Frame::default() };
        assert_eq!(path_key(&frame("/home/a/.venv/lib/python3.11/site-packages/flask/app.py")), "flask/app.py");
        assert_eq!(path_key(&frame("/usr/lib/python3/dist-packages/flask/app.py")), "flask/app.py");
        assert_eq!(path_key(&frame("/usr/local/lib/python3.12/json/decoder.py")), "json/decoder.py");
        assert_eq!(path_key(&frame("/srv/releases/41/app/views.py")), "views.py");
        assert_eq!(path_key(&frame("C:\\app\\views.py")), "views.py");
    }

    #[test]
    fn script_urls_drop_queries_and_content_hashes() {
        let frame = |p: &str| Frame { filename: p.into(), ..Frame::default() };
        assert_eq!(path_key(&frame("http://127.0.0.1:5000/static/app.3f9a1c2b.js?v=20261202")), "app.js");
        assert_eq!(path_key(&frame("https://shop.example/assets/index-BdT3x9Qa.js#x")), "index.js");
        assert_eq!(path_key(&frame("/static/js/main.5f2b9c.chunk.js")), "main.chunk.js");
        assert_eq!(path_key(&frame("https://cdn.example/jquery-3.6.0.min.js")), "jquery-3.6.0.min.js");
        assert_eq!(path_key(&frame("/srv/app/handler.js")), "handler.js");
        assert_eq!(path_key(&frame("/srv/app/deadbeef12.py")), "deadbeef12.py");
    }
}
