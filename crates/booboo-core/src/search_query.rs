//! The issue search language, shared by the dashboard's search box and the
//! API's `query` parameter (the grammar is in `docs/search.md`). Parsing is
//! pure: relative times are resolved against a `now` the caller passes in,
//! and every error names the term that caused it.

use std::fmt;

/// A parsed query: free-text words and typed filters, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Free-text words, lower-cased, split at anything that is not a letter
    /// or digit (the way both full-text indexes split text). Each must start
    /// a word of the title or culprit.
    pub words: Vec<String>,
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `is:unresolved|resolved|ignored`.
    Status { negated: bool, status: Status },
    /// `is:assigned` (true) or `is:unassigned` (false).
    HasAssignee(bool),
    /// `assigned:me` or `assigned:EMAIL`.
    Assigned { negated: bool, to: Assignee },
    /// `level:error`, `level:>=warning`: the levels that satisfy the term.
    Level { negated: bool, levels: Vec<&'static str> },
    /// `firstSeen:`, `lastSeen:`, `age:` (an alias of firstSeen).
    Time { negated: bool, field: TimeField, op: Comparison, at_ms: i64 },
    /// `timesSeen:>100`: compared with the count of matching events.
    TimesSeen { negated: bool, op: Comparison, count: i64 },
    /// A term on the events: environment, release, user or a tag. With
    /// several values, an event matches when it has any of them.
    Event { negated: bool, field: EventField, values: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unresolved,
    Resolved,
    Ignored,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unresolved => "unresolved",
            Status::Resolved => "resolved",
            Status::Ignored => "ignored",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    Me,
    /// Lower-cased.
    Email(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    FirstSeen,
    LastSeen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

impl Comparison {
    pub fn as_sql(self) -> &'static str {
        match self {
            Comparison::Equal => "=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventField {
    Environment,
    Release,
    UserId,
    UserEmail,
    Tag(String),
}

impl Filter {
    /// Whether the term is about events rather than issues.
    pub fn is_event_term(&self) -> bool {
        matches!(self, Filter::Event { .. })
    }
}

/// Levels from least to most severe.
pub const LEVELS: &[&str] = &["debug", "info", "warning", "error", "fatal"];

/// The longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 2_000;
/// The most values one `key:[a, b, …]` list may hold.
pub const MAX_LIST_VALUES: usize = 100;

/// What is wrong with a query: the offending term as written, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub term: String,
    pub reason: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid search term {:?}: {}", self.term, self.reason)
    }
}

impl std::error::Error for QueryError {}

/// Parses `text`; `now_ms` anchors relative times such as `-24h`.
pub fn parse(text: &str, now_ms: i64) -> Result<Query, QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError {
            term: text.chars().take(40).collect::<String>() + "…",
            reason: format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
        });
    }
    let mut query = Query::default();
    let mut lexer = Lexer { text, pos: 0 };
    while let Some(token) = lexer.next_token()? {
        match token {
            Token::Text { raw, value } => {
                let words = words_of(&value);
                if words.is_empty() {
                    return Err(QueryError {
                        term: raw,
                        reason: "free text must contain letters or digits (it matches the start of words)".into(),
                    });
                }
                query.words.extend(words);
            }
            Token::Pair { raw, negated, key, values, listed } => {
                query.filters.push(filter_of(&raw, negated, &key, values, listed, now_ms)?);
            }
        }
    }
    Ok(query)
}

/// Splits text into lower-cased runs of letters and digits.
pub fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

enum Token {
    Text { raw: String, value: String },
    Pair { raw: String, negated: bool, key: String, values: Vec<String>, listed: bool },
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(&self, start: usize, reason: &str) -> QueryError {
        let end = self.rest().find(char::is_whitespace).map_or(self.text.len(), |n| self.pos + n);
        QueryError { term: self.text[start..end.max(self.pos)].to_string(), reason: reason.into() }
    }

    /// Reads a `"quoted"` string (the opening quote is next), with `\"` and
    /// `\\` as escapes.
    fn quoted(&mut self, start: usize) -> Result<String, QueryError> {
        self.bump();
        let mut value = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(start, "a quoted value has no closing \"")),
                Some('"') => return Ok(value),
                Some('\\') => match self.bump() {
                    Some(c) => value.push(c),
                    None => return Err(self.error(start, "a quoted value has no closing \"")),
                },
                Some(c) => value.push(c),
            }
        }
    }

    /// Reads a bare value: up to whitespace (or, inside a list, `,` / `]`).
    fn bare(&mut self, in_list: bool) -> String {
        let mut value = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || (in_list && (c == ',' || c == ']')) {
                break;
            }
            value.push(c);
            self.bump();
        }
        value
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn next_token(&mut self) -> Result<Option<Token>, QueryError> {
        self.skip_space();
        let start = self.pos;
        let Some(first) = self.peek() else { return Ok(None) };
        if first == '"' {
            let value = self.quoted(start)?;
            return Ok(Some(Token::Text { raw: self.text[start..self.pos].to_string(), value }));
        }
        let negated = first == '!';
        if negated {
            self.bump();
        }
        // A key runs up to `:`; a word without one is free text.
        let key_start = self.pos;
        while let Some(c) = self.peek() {
            if c == ':' || c.is_whitespace() || c == '"' {
                break;
            }
            self.bump();
        }
        let key = self.text[key_start..self.pos].to_string();
        if self.peek() != Some(':') {
            let rest = self.bare(false);
            let raw = self.text[start..self.pos].to_string();
            if negated {
                return Err(QueryError {
                    term: raw,
                    reason: "! negates key:value terms only, such as !env:prod".into(),
                });
            }
            return Ok(Some(Token::Text { value: format!("{key}{rest}"), raw }));
        }
        self.bump(); // the colon
        if key.is_empty() {
            return Err(self.error(start, "a term needs a key before the colon, such as env:production"));
        }
        let (values, listed) = match self.peek() {
            Some('"') => (vec![self.quoted(start)?], false),
            Some('[') => {
                self.bump();
                let mut values = Vec::new();
                loop {
                    self.skip_space();
                    let value = match self.peek() {
                        Some('"') => self.quoted(start)?,
                        Some(_) => self.bare(true),
                        None => return Err(self.error(start, "a list of values has no closing ]")),
                    };
                    if value.is_empty() {
                        return Err(self.error(start, "a list of values has an empty value"));
                    }
                    values.push(value);
                    self.skip_space();
                    match self.bump() {
                        Some(',') => continue,
                        Some(']') => break,
                        None => return Err(self.error(start, "a list of values has no closing ]")),
                        _ => return Err(self.error(start, "values in a list are separated by commas and end with ]")),
                    }
                }
                (values, true)
            }
            _ => (vec![self.bare(false)], false),
        };
        if self.peek().is_some_and(|c| !c.is_whitespace()) {
            return Err(self.error(start, "put a space after a quoted value or list"));
        }
        let raw = self.text[start..self.pos].to_string();
        if values.iter().any(|v| v.is_empty()) {
            return Err(QueryError { term: raw, reason: format!("{key} needs a value after the colon") });
        }
        if values.len() > MAX_LIST_VALUES {
            return Err(QueryError { term: raw, reason: format!("a list may hold at most {MAX_LIST_VALUES} values") });
        }
        Ok(Some(Token::Pair { raw, negated, key, values, listed }))
    }
}

fn filter_of(
    raw: &str,
    negated: bool,
    key: &str,
    values: Vec<String>,
    listed: bool,
    now_ms: i64,
) -> Result<Filter, QueryError> {
    let fail = |reason: String| QueryError { term: raw.to_string(), reason };
    let event_field = match key {
        "environment" | "env" => Some(EventField::Environment),
        "release" => Some(EventField::Release),
        "user.id" => Some(EventField::UserId),
        "user.email" => Some(EventField::UserEmail),
        "is" | "assigned" | "level" | "firstSeen" | "lastSeen" | "age" | "timesSeen" => None,
        tag => {
            if tag.len() > 200 || !tag.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                return Err(fail(format!(
                    "{tag:?} is not a tag key: keys are letters, digits, _ . and - (up to 200 characters)"
                )));
            }
            Some(EventField::Tag(tag.to_string()))
        }
    };
    if let Some(field) = event_field {
        return Ok(Filter::Event { negated, field, values });
    }
    if listed {
        return Err(fail(format!("{key} takes one value; lists are for environment, release, user and tags")));
    }
    let value = values.into_iter().next().unwrap_or_default();
    match key {
        "is" => match value.as_str() {
            "unresolved" => Ok(Filter::Status { negated, status: Status::Unresolved }),
            "resolved" => Ok(Filter::Status { negated, status: Status::Resolved }),
            "ignored" => Ok(Filter::Status { negated, status: Status::Ignored }),
            "assigned" => Ok(Filter::HasAssignee(!negated)),
            "unassigned" => Ok(Filter::HasAssignee(negated)),
            other => {
                Err(fail(format!("is: takes unresolved, resolved, ignored, assigned or unassigned, not {other:?}")))
            }
        },
        "assigned" => {
            let to = if value == "me" {
                Assignee::Me
            } else if value.contains('@') {
                Assignee::Email(value.to_lowercase())
            } else {
                return Err(fail(format!("assigned: takes me or an e-mail address, not {value:?}")));
            };
            Ok(Filter::Assigned { negated, to })
        }
        "level" => {
            let (op, name) = comparison(&value);
            let Some(rank) = LEVELS.iter().position(|l| *l == name.to_lowercase()) else {
                return Err(fail(format!("level must be one of {}, not {name:?}", LEVELS.join(", "))));
            };
            let levels = LEVELS
                .iter()
                .enumerate()
                .filter(|(i, _)| match op {
                    Comparison::Equal => *i == rank,
                    Comparison::Greater => *i > rank,
                    Comparison::GreaterOrEqual => *i >= rank,
                    Comparison::Less => *i < rank,
                    Comparison::LessOrEqual => *i <= rank,
                })
                .map(|(_, l)| *l)
                .collect();
            Ok(Filter::Level { negated, levels })
        }
        "firstSeen" | "lastSeen" | "age" => {
            let field = if key == "lastSeen" { TimeField::LastSeen } else { TimeField::FirstSeen };
            let (op, at_ms) = time_value(&value, now_ms).map_err(fail)?;
            Ok(Filter::Time { negated, field, op, at_ms })
        }
        "timesSeen" => {
            let (op, number) = comparison(&value);
            let count = number
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| fail(format!("timesSeen takes a whole number such as >100, not {value:?}")))?;
            Ok(Filter::TimesSeen { negated, op, count })
        }
        _ => unreachable!("every key is matched above"),
    }
}

/// Splits a leading `>`, `>=`, `<` or `<=` off a value.
fn comparison(value: &str) -> (Comparison, &str) {
    for (prefix, op) in [
        (">=", Comparison::GreaterOrEqual),
        ("<=", Comparison::LessOrEqual),
        (">", Comparison::Greater),
        ("<", Comparison::Less),
    ] {
        if let Some(rest) = value.strip_prefix(prefix) {
            return (op, rest);
        }
    }
    (Comparison::Equal, value)
}

/// A time term's value: `-24h` (the last 24 hours), `+7d` (more than 7 days
/// ago), or an optional comparison and an instant, relative (`-2w`) or
/// ISO 8601 (`2026-01-31`, `2026-01-31T12:00:00Z`).
fn time_value(value: &str, now_ms: i64) -> Result<(Comparison, i64), String> {
    let (op, rest) = comparison(value);
    let relative = |text: &str| -> Option<i64> {
        let unit = match text.chars().last()? {
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 7 * 86_400_000,
            _ => return None,
        };
        let n: i64 = text[..text.len() - 1].parse().ok().filter(|n| (0..=100_000).contains(n))?;
        Some(n * unit)
    };
    let sign = rest.chars().next();
    if matches!(sign, Some('-' | '+')) {
        let span = relative(&rest[1..])
            .ok_or_else(|| format!("{value:?} is not a time: use -24h, +7d, -30m, -2w or a date such as 2026-01-31"))?;
        let at = now_ms - span;
        let op = match (op, sign) {
            (Comparison::Equal, Some('-')) => Comparison::GreaterOrEqual,
            (Comparison::Equal, _) => Comparison::LessOrEqual,
            (op, _) => op,
        };
        return Ok((op, at));
    }
    let instant = if rest.len() == 10 {
        crate::timestamp::parse(&format!("{rest}T00:00:00Z"))
    } else {
        crate::timestamp::parse(rest)
    }
    .map_err(|_| format!("{value:?} is not a time: use -24h, +7d, -30m, -2w or a date such as 2026-01-31"))?;
    let op = if op == Comparison::Equal { Comparison::GreaterOrEqual } else { op };
    Ok((op, crate::timestamp::unix_millis(instant)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn ok(text: &str) -> Query {
        parse(text, NOW).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn err(text: &str) -> QueryError {
        parse(text, NOW).expect_err(text)
    }

    fn one(text: &str) -> Filter {
        let q = ok(text);
        assert!(q.words.is_empty(), "{text:?} has no free text");
        assert_eq!(q.filters.len(), 1, "{text:?}");
        q.filters.into_iter().next().unwrap()
    }

    #[test]
    fn free_text_is_split_into_lower_case_words() {
        assert_eq!(ok("  ZeroDivision  handler_7 ").words, vec!["zerodivision", "handler", "7"]);
        assert_eq!(ok("\"division by zero\"").words, vec!["division", "by", "zero"]);
        assert_eq!(ok("").words, Vec::<String>::new());
        assert_eq!(ok("Grüße").words, vec!["grüße"]);
    }

    #[test]
    fn status_and_assignment() {
        assert_eq!(one("is:resolved"), Filter::Status { negated: false, status: Status::Resolved });
        assert_eq!(one("!is:ignored"), Filter::Status { negated: true, status: Status::Ignored });
        assert_eq!(one("is:unresolved"), Filter::Status { negated: false, status: Status::Unresolved });
        assert_eq!(one("is:assigned"), Filter::HasAssignee(true));
        assert_eq!(one("is:unassigned"), Filter::HasAssignee(false));
        assert_eq!(one("!is:unassigned"), Filter::HasAssignee(true));
        assert_eq!(one("assigned:me"), Filter::Assigned { negated: false, to: Assignee::Me });
        assert_eq!(
            one("!assigned:Ann@Example.com"),
            Filter::Assigned { negated: true, to: Assignee::Email("ann@example.com".into()) }
        );
    }

    #[test]
    fn levels_compare_by_severity() {
        assert_eq!(one("level:error"), Filter::Level { negated: false, levels: vec!["error"] });
        assert_eq!(one("level:>=warning"), Filter::Level { negated: false, levels: vec!["warning", "error", "fatal"] });
        assert_eq!(one("level:>error"), Filter::Level { negated: false, levels: vec!["fatal"] });
        assert_eq!(one("level:<info"), Filter::Level { negated: false, levels: vec!["debug"] });
        assert_eq!(one("!level:<=info"), Filter::Level { negated: true, levels: vec!["debug", "info"] });
    }

    #[test]
    fn times_relative_and_absolute() {
        let hour = 3_600_000;
        let t = |field, op, at_ms| Filter::Time { negated: false, field, op, at_ms };
        assert_eq!(one("firstSeen:-24h"), t(TimeField::FirstSeen, Comparison::GreaterOrEqual, NOW - 24 * hour));
        assert_eq!(one("lastSeen:-1h"), t(TimeField::LastSeen, Comparison::GreaterOrEqual, NOW - hour));
        assert_eq!(one("age:-7d"), t(TimeField::FirstSeen, Comparison::GreaterOrEqual, NOW - 7 * 24 * hour));
        assert_eq!(one("age:+2w"), t(TimeField::FirstSeen, Comparison::LessOrEqual, NOW - 14 * 24 * hour));
        assert_eq!(one("lastSeen:<-30m"), t(TimeField::LastSeen, Comparison::Less, NOW - 30 * 60_000));
        assert_eq!(one("firstSeen:>2026-01-31"), t(TimeField::FirstSeen, Comparison::Greater, 1_769_817_600_000));
        assert_eq!(
            one("lastSeen:<=2026-01-31T12:00:00Z"),
            t(TimeField::LastSeen, Comparison::LessOrEqual, 1_769_860_800_000)
        );
        assert_eq!(one("firstSeen:2026-01-31"), t(TimeField::FirstSeen, Comparison::GreaterOrEqual, 1_769_817_600_000));
    }

    #[test]
    fn times_seen() {
        assert_eq!(one("timesSeen:>100"), Filter::TimesSeen { negated: false, op: Comparison::Greater, count: 100 });
        assert_eq!(one("timesSeen:5"), Filter::TimesSeen { negated: false, op: Comparison::Equal, count: 5 });
        assert_eq!(one("!timesSeen:<=2"), Filter::TimesSeen { negated: true, op: Comparison::LessOrEqual, count: 2 });
    }

    #[test]
    fn event_terms_tags_lists_and_quotes() {
        let event = |negated, field, values: &[&str]| Filter::Event {
            negated,
            field,
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        assert_eq!(one("environment:production"), event(false, EventField::Environment, &["production"]));
        assert_eq!(one("!env:production"), event(true, EventField::Environment, &["production"]));
        assert_eq!(one("release:[1.2.3, 1.2.4]"), event(false, EventField::Release, &["1.2.3", "1.2.4"]));
        assert_eq!(one("release:[\"a b\",c]"), event(false, EventField::Release, &["a b", "c"]));
        assert_eq!(one("user.id:42"), event(false, EventField::UserId, &["42"]));
        assert_eq!(one("user.email:a@b.c"), event(false, EventField::UserEmail, &["a@b.c"]));
        assert_eq!(one("browser:\"Chrome 120\""), event(false, EventField::Tag("browser".into()), &["Chrome 120"]));
        assert_eq!(one("url:http://x/y?z=1"), event(false, EventField::Tag("url".into()), &["http://x/y?z=1"]));
        assert_eq!(one("say:\"a \\\"b\\\"\""), event(false, EventField::Tag("say".into()), &["a \"b\""]));
        let q = ok("timeout env:prod \"db pool\" level:error");
        assert_eq!(q.words, vec!["timeout", "db", "pool"]);
        assert_eq!(q.filters.len(), 2);
        assert!(q.filters[0].is_event_term() && !q.filters[1].is_event_term());
    }

    #[test]
    fn errors_name_the_bad_term() {
        let cases = [
            ("env:prod level:loud", "level:loud", "level must be one of"),
            ("is:open", "is:open", "is: takes"),
            ("assigned:bob", "assigned:bob", "e-mail"),
            ("firstSeen:-24x", "firstSeen:-24x", "not a time"),
            ("lastSeen:yesterday", "lastSeen:yesterday", "not a time"),
            ("timesSeen:>lots", "timesSeen:>lots", "whole number"),
            ("release:", "release:", "needs a value"),
            ("release:[1.2, ] x", "release:[1.2, ]", "empty value"),
            ("release:[1.2", "release:[1.2", "no closing ]"),
            ("browser:\"Chrome", "browser:\"Chrome", "no closing \""),
            ("\"unclosed", "\"unclosed", "no closing \""),
            ("!timeout", "!timeout", "negates key:value terms only"),
            (":x", ":x", "needs a key"),
            ("a*b:1", "a*b:1", "not a tag key"),
            ("level:[error, fatal]", "level:[error, fatal]", "takes one value"),
            ("%%", "%%", "letters or digits"),
            ("env:\"a\"b", "env:\"a\"b", "space after"),
        ];
        for (query, term, reason) in cases {
            let e = err(query);
            assert_eq!(e.term, term, "{query:?}: {e}");
            assert!(e.reason.contains(reason), "{query:?}: {e}");
            assert!(e.to_string().contains(&format!("{term:?}")), "{e}");
        }
        assert!(err(&"a ".repeat(1_500)).reason.contains("longer than"));
    }
}
