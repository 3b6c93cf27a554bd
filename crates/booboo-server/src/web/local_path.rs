//! Where a form may send the browser next (`next` after sign-in, `back`
//! after an issue action): a path on this server and nothing else.
//!
//! Browsers forgive a lot in a `Location` header: they drop tabs and line
//! breaks and read `\` as `/`, so `/\t/evil.example` arrives as
//! `//evil.example`, another site. Rather than list what browsers forgive,
//! only plain printable ASCII is accepted, and anything else gives the
//! fallback, which is also safe to put in a header (no 500).

/// `candidate` if it is a path on this server, else `fallback`.
pub fn same_origin_path<'a>(candidate: &'a str, fallback: &'a str) -> &'a str {
    if is_same_origin_path(candidate) {
        candidate
    } else {
        fallback
    }
}

fn is_same_origin_path(candidate: &str) -> bool {
    let bytes = candidate.as_bytes();
    // Visible ASCII only: no space, no control character (which browsers
    // strip), nothing that cannot go into a header unencoded.
    let plain = bytes.iter().all(|b| (0x21..=0x7e).contains(b) && *b != b'\\');
    plain && bytes.first() == Some(&b'/') && bytes.get(1) != Some(&b'/')
}

#[cfg(test)]
mod tests {
    use super::same_origin_path;

    #[test]
    fn only_paths_on_this_server_are_followed() {
        for good in ["/projects", "/projects/acme/web?status=all&q=a%20b", "/issues/3#event", "/"] {
            assert_eq!(same_origin_path(good, "/fallback"), good);
        }
        for bad in [
            "",
            "projects",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            " //evil.example",
            "/ /evil.example",
            "/\\/evil.example",
            "/projects\\..\\",
            "https://evil.example/",
            "/é",
            "/\u{7f}/evil.example",
            "/\0",
        ] {
            assert_eq!(same_origin_path(bad, "/fallback"), "/fallback", "{bad:?}");
        }
    }
}
