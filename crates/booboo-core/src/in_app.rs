//! Built-in rules for which frames are the application's own code, per
//! platform, like Sentry's: an SDK's own `in_app` guess is kept unless a rule
//! knows the frame is a library, the runtime or the SDK itself. Rules only
//! ever take frames *out* of the application, so an SDK that already marks
//! its frames well (ours and sentry-sdk for Python) groups as before.
//!
//! Grouping and culprits read `in_app`, so these rules decide which frames
//! name an issue: the Rust SDK, for one, marks its own panic handler and the
//! C start-up code in-app, which made every panic's culprit
//! `sentry_panic::…::event_from_panic_info`.

use crate::event::{Event, Frame};

/// Applies the platform's rules to every stack of the event.
pub fn apply(event: &mut Event) {
    let rules: fn(&mut [Frame]) = match event.platform.as_str() {
        "rust" | "native" => rust,
        "javascript" | "node" => javascript,
        "python" => python,
        _ => return,
    };
    for exception in &mut event.exceptions {
        rules(&mut exception.stacktrace);
    }
    rules(&mut event.stacktrace);
}

/// Rust: the standard library (`/rustc/…` paths, `std::`, `core::`,
/// `alloc::`), crates from the cargo registry or git checkouts, the SDK
/// (`sentry*::`), the unwinding and start-up symbols (`__rust*`, `_start`,
/// `__libc_start*`), frames with neither file nor symbol, and everything
/// from the panic machinery (`core::panicking`) inward: the frame that called
/// into it is where the panic happened.
fn rust(frames: &mut [Frame]) {
    // Frames are oldest call first, so the panic machinery is at the end.
    let panic_start = frames.iter().position(|f| is_rust_panic_entry(&f.function)).unwrap_or(frames.len());
    for (i, frame) in frames.iter_mut().enumerate() {
        if i >= panic_start || is_rust_library(frame) {
            frame.in_app = false;
        }
    }
}

fn is_rust_panic_entry(function: &str) -> bool {
    let f = symbol_path(function);
    f.starts_with("core::panicking::")
        || f.starts_with("std::panicking::begin_panic")
        || f.starts_with("std::panicking::rust_panic")
        || f.starts_with("std::rt::begin_panic")
        || f.ends_with("rust_begin_unwind")
}

fn is_rust_library(frame: &Frame) -> bool {
    let path = frame.filename.replace('\\', "/");
    if path.starts_with("/rustc/") || path.contains("/.cargo/registry/") || path.contains("/.cargo/git/") {
        return true;
    }
    let function = symbol_path(&frame.function);
    let first_segment = function.split("::").next().unwrap_or("");
    if matches!(first_segment, "std" | "core" | "alloc" | "__rustc")
        || (first_segment.starts_with("sentry") && function.contains("::"))
        || function.starts_with("__rust")
        || function == "_start"
        || function.starts_with("__libc_start")
    {
        return true;
    }
    // Unsymbolicated frames and the `main` rustc generates around the
    // crate's own `main` say nothing about the application.
    path.is_empty() && (frame.function.is_empty() || frame.function == "<unknown>" || frame.function == "main")
}

/// `<alloc::boxed::Box<…> as core::ops::Fn>::call` → `alloc::boxed::Box<…> …`:
/// the path a trait-impl symbol starts with.
fn symbol_path(function: &str) -> &str {
    let mut f = function.trim_start_matches(['<', '&']);
    for prefix in ["dyn ", "mut "] {
        f = f.strip_prefix(prefix).unwrap_or(f);
    }
    f
}

/// JavaScript: dependencies (`node_modules`) and the SDK's own frames
/// (`@sentry/` packages, Sentry's CDN bundles).
fn javascript(frames: &mut [Frame]) {
    for frame in frames {
        let path = frame.filename.replace('\\', "/");
        if path.contains("/node_modules/") || path.contains("/@sentry/") || path.contains("sentry-cdn.com/") {
            frame.in_app = false;
        }
    }
}

/// Python: the standard library (`…/lib/pythonX.Y/…`) and the SDKs' own
/// packages. Other installed packages (`site-packages`) are left as the SDK
/// said: sentry-sdk and ours already mark them out of the app, and one marked
/// in-app was put there by the user's `in_app_include`, which a server-side
/// rule must not undo (it would regroup that installation's issues).
fn python(frames: &mut [Frame]) {
    const SDK_PACKAGES: &[&str] = &["sentry_sdk/", "raven/", "booboo/"];
    for frame in frames {
        let path = frame.filename.replace('\\', "/");
        let package =
            ["/site-packages/", "/dist-packages/"].iter().find_map(|m| path.find(m).map(|i| &path[i + m.len()..]));
        let is_sdk = package.is_some_and(|p| SDK_PACKAGES.iter().any(|sdk| p.starts_with(sdk)));
        if is_sdk || (package.is_none() && is_python_stdlib(&path)) {
            frame.in_app = false;
        }
    }
}

fn is_python_stdlib(path: &str) -> bool {
    let Some(pos) = path.find("/lib/python") else {
        return false;
    };
    let version = &path[pos + "/lib/python".len()..];
    version.split('/').next().is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, filename: &str) -> Frame {
        Frame { function: function.into(), filename: filename.into(), in_app: true, ..Frame::default() }
    }

    fn in_app_after(platform: &str, frames: Vec<Frame>) -> Vec<bool> {
        let mut event: Event = serde_json::from_value(serde_json::json!({
            "event_id": "0", "timestamp": "t", "level": "error", "message": "", "exception_type": ""
        }))
        .unwrap();
        event.platform = platform.into();
        event.stacktrace = frames;
        apply(&mut event);
        event.stacktrace.iter().map(|f| f.in_app).collect()
    }

    #[test]
    fn rust_keeps_only_the_crate_before_the_panic() {
        let frames = vec![
            frame("<unknown>", ""),
            frame("_start", ""),
            frame("__libc_start_main_impl", "./csu/../csu/libc-start.c"),
            frame("main", ""),
            frame(
                "<&dyn core::ops::function::Fn<()> as core::ops::FnOnce<()>>::call_once",
                "/rustc/abc/library/core/src/ops/function.rs",
            ),
            frame("shop::main", "/srv/shop/src/main.rs"),
            frame("__rust_try", ""),
            frame("shop::average", "/srv/shop/src/main.rs"),
            frame("core::panicking::panic_fmt", "/rustc/abc/library/core/src/panicking.rs"),
            frame("shop::hook", "/srv/shop/src/main.rs"),
            frame(
                "<sentry_panic::PanicIntegration as sentry_core::Integration>::setup",
                "/root/.cargo/registry/src/x/sentry-panic/src/lib.rs",
            ),
            frame("sentry_panic::panic_handler", "/home/a/.cargo/git/checkouts/sentry/src/lib.rs"),
        ];
        let flags = in_app_after("native", frames);
        assert_eq!(flags, [false, false, false, false, false, true, false, true, false, false, false, false]);
    }

    #[test]
    fn javascript_drops_dependencies_and_the_sdk() {
        let frames = vec![
            frame("a", "/srv/app/node_modules/express/lib/router.js"),
            frame("b", "webpack:///./node_modules/@sentry/browser/esm/helpers.js"),
            frame("c", "https://browser.sentry-cdn.com/11.0.0/bundle.min.js"),
            frame("d", "https://shop.example/static/app.js"),
        ];
        assert_eq!(in_app_after("javascript", frames), [false, false, false, true]);
    }

    #[test]
    fn python_drops_the_sdk_and_the_standard_library() {
        let frames = vec![
            frame("a", "/venv/lib/python3.12/site-packages/sentry_sdk/hub.py"),
            frame("b", "/usr/lib/python3.12/json/decoder.py"),
            frame("c", "/srv/lib/pythonic/app.py"),
            frame("d", "/srv/shop/app.py"),
            // In-app only by the user's `in_app_include`: kept.
            frame("e", "/venv/lib/python3.12/site-packages/shop_core/models.py"),
        ];
        assert_eq!(in_app_after("python", frames), [false, false, true, true, true]);
    }

    #[test]
    fn other_platforms_keep_what_the_sdk_said() {
        assert_eq!(in_app_after("", vec![frame("std::x", "/rustc/a.rs")]), [true]);
    }
}
