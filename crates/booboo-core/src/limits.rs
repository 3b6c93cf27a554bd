//! Bounds on what one event may carry once normalised, so that one odd
//! client cannot make an event expensive to store or to show.

pub const MESSAGE_BYTES: usize = 16 * 1024;
pub const SHORT_TEXT_BYTES: usize = 1024;
pub const SOURCE_LINE_BYTES: usize = 1024;
pub const SOURCE_LINES: usize = 10;
pub const VAR_BYTES: usize = 4096;
pub const VARS_PER_FRAME: usize = 200;
pub const FRAMES: usize = 500;
pub const CHAIN_LENGTH: usize = 50;
pub const TAGS: usize = 200;
pub const TAG_VALUE_BYTES: usize = 1024;
/// Sentry SDKs keep 100 by default; the most recent are kept beyond this.
pub const BREADCRUMBS: usize = 200;

/// Keeps the first and last `max / 2` items: the entry point and the raise
/// site matter most in a deep recursion.
pub fn keep_ends<T>(mut items: Vec<T>, max: usize) -> Vec<T> {
    if items.len() > max {
        let tail = items.split_off(items.len() - max / 2);
        items.truncate(max - tail.len());
        items.extend(tail);
    }
    items
}

pub fn source_lines(lines: Vec<String>) -> Vec<String> {
    lines.into_iter().take(SOURCE_LINES).map(|l| crate::json_reader::truncate(l, SOURCE_LINE_BYTES)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keep_ends_keeps_both_ends() {
        let kept = super::keep_ends((0..10).collect(), 4);
        assert_eq!(kept, vec![0, 1, 8, 9]);
    }
}
