//! Nested data a client sent (a frame's locals, an event's extra data) as
//! HTML that reads without JavaScript: objects and arrays are
//! `<details>`/`<summary>` trees, open near the top and folded below
//! `OPEN_DEPTH` or when large; long strings are folded behind their first
//! characters. Everything from the client is escaped here, because the
//! templates insert the result as it is.

use serde_json::Value;
use std::fmt::Write;

/// Levels shown open; deeper containers start folded.
const OPEN_DEPTH: usize = 1;
/// Containers with more children than this start folded at any depth.
const OPEN_CHILDREN: usize = 20;
/// Strings longer than this show their start and fold the rest.
const FOLD_CHARS: usize = 200;
/// Deeper than this the value is shown as compact JSON text, so a hostile
/// payload cannot nest the page without bound.
const MAX_DEPTH: usize = 12;

/// The HTML for one value. Scalars are a `<code>`; containers a tree.
pub fn html(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Object(map) if !map.is_empty() && depth < MAX_DEPTH => {
            let summary = format!("{{…}} {} key{}", map.len(), if map.len() == 1 { "" } else { "s" });
            write_container(out, &summary, map.len(), depth, map.iter().map(|(k, v)| (k.clone(), v)));
        }
        Value::Array(items) if !items.is_empty() && depth < MAX_DEPTH => {
            let summary = format!("[…] {} item{}", items.len(), if items.len() == 1 { "" } else { "s" });
            write_container(
                out,
                &summary,
                items.len(),
                depth,
                items.iter().enumerate().map(|(i, v)| (i.to_string(), v)),
            );
        }
        Value::String(text) => write_string(out, text),
        other => {
            out.push_str("<code class=\"tree-scalar\">");
            escape_into(out, &other.to_string());
            out.push_str("</code>");
        }
    }
}

fn write_container<'a>(
    out: &mut String,
    summary: &str,
    len: usize,
    depth: usize,
    children: impl Iterator<Item = (String, &'a Value)>,
) {
    let open = depth < OPEN_DEPTH && len <= OPEN_CHILDREN;
    let _ = write!(out, "<details class=\"tree\"{}><summary class=\"muted\">", if open { " open" } else { "" });
    escape_into(out, summary);
    out.push_str("</summary><dl class=\"tree-items\">");
    for (key, child) in children {
        out.push_str("<dt><code>");
        escape_into(out, &key);
        out.push_str("</code></dt><dd>");
        write_value(out, child, depth + 1);
        out.push_str("</dd>");
    }
    out.push_str("</dl></details>");
}

fn write_string(out: &mut String, text: &str) {
    match text.char_indices().nth(FOLD_CHARS) {
        None => {
            out.push_str("<code class=\"wrap\">");
            escape_into(out, text);
            out.push_str("</code>");
        }
        Some((cut, _)) => {
            let _ = write!(out, "<details class=\"long-value\"><summary><code class=\"wrap\">");
            escape_into(out, &text[..cut]);
            let _ = write!(
                out,
                "</code>… <span class=\"muted\">({} characters)</span></summary><code class=\"wrap\">",
                text.chars().count()
            );
            escape_into(out, &text[cut..]);
            out.push_str("</code></details>");
        }
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_values_are_trees_open_at_the_top_and_folded_below() {
        let tree = html(&json!({"user": {"id": 7, "roles": ["admin"]}, "ok": true}));
        assert!(
            tree.starts_with("<details class=\"tree\" open><summary class=\"muted\">{…} 2 keys</summary>"),
            "{tree}"
        );
        assert!(
            tree.contains("<dt><code>user</code></dt><dd><details class=\"tree\"><summary class=\"muted\">{…} 2 keys")
        );
        assert!(tree.contains("<code class=\"tree-scalar\">7</code>") && tree.contains("[…] 1 item"));
        // Many children start folded even at the top.
        let big: Vec<i64> = (0..50).collect();
        assert!(html(&json!(big)).starts_with("<details class=\"tree\"><summary"));
    }

    #[test]
    fn long_strings_fold_and_everything_is_escaped() {
        let long = format!("<b>{}", "x".repeat(300));
        let tree = html(&json!({"<script>": long}));
        assert!(!tree.contains("<script>") && !tree.contains("<b>"), "{tree}");
        assert!(tree.contains("<dt><code>&lt;script&gt;</code></dt>"));
        assert!(tree.contains("<details class=\"long-value\"><summary><code class=\"wrap\">&lt;b&gt;xxx"));
        assert!(tree.contains("(303 characters)"));
        assert_eq!(html(&json!("short")), "<code class=\"wrap\">short</code>");
    }

    #[test]
    fn hostile_nesting_stops_at_a_depth() {
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!([deep]);
        }
        assert_eq!(html(&deep).matches("<details").count(), MAX_DEPTH);
    }
}
