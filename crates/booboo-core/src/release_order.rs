//! Which release is newer, and whether an event of a resolved issue is a
//! regression. Pure: the store reads the facts (the releases a project has
//! seen and when each was first seen) and this file decides.
//!
//! A project's releases are ordered by semantic version when all of them
//! parse as one (`1.2.3`, `v1.2.3-rc.1`, `pkg@1.2.3`); otherwise, and for
//! any two releases that cannot be compared so (different packages, one of
//! them not a version), by the time the project first saw them. A release
//! not seen yet counts as newer than every release seen.

use std::cmp::Ordering;

use crate::limits::SHORT_TEXT_BYTES;

/// A release parsed as a semantic version, with the package before `@`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version<'a> {
    pub package: &'a str,
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Dot-separated pre-release identifiers (`rc.1`); empty for a release.
    pub pre: Vec<&'a str>,
}

/// Parses `[package@][v]MAJOR.MINOR.PATCH[-PRE][+BUILD]` as semver 2.0
/// defines it (build metadata is read and ignored, as precedence says).
pub fn parse_version(release: &str) -> Option<Version<'_>> {
    let (package, version) = match release.rsplit_once('@') {
        Some((package, version)) if !package.is_empty() => (package, version),
        Some(_) => return None,
        None => ("", release),
    };
    let version = version.strip_prefix('v').unwrap_or(version);
    let version = match version.split_once('+') {
        Some((v, build)) => {
            if !build.split('.').all(is_identifier) {
                return None;
            }
            v
        }
        None => version,
    };
    let (core, pre) = match version.split_once('-') {
        Some((core, pre)) => (core, pre.split('.').collect::<Vec<_>>()),
        None => (version, Vec::new()),
    };
    if !pre.iter().all(|p| is_identifier(p) && !(is_numeric(p) && p.len() > 1 && p.starts_with('0'))) {
        return None;
    }
    let mut numbers = core.split('.').map(|n| {
        if !is_numeric(n) || (n.len() > 1 && n.starts_with('0')) {
            None
        } else {
            n.parse::<u64>().ok()
        }
    });
    let (major, minor, patch) = (numbers.next()??, numbers.next()??, numbers.next()??);
    if numbers.next().is_some() {
        return None;
    }
    Some(Version { package, major, minor, patch, pre })
}

fn is_identifier(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn is_numeric(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Semver precedence of two versions of one package; `None` for versions of
/// different packages.
pub fn compare_versions(a: &Version<'_>, b: &Version<'_>) -> Option<Ordering> {
    if a.package != b.package {
        return None;
    }
    let core = (a.major, a.minor, a.patch).cmp(&(b.major, b.minor, b.patch));
    if core != Ordering::Equal {
        return Some(core);
    }
    // A pre-release comes before its release; identifiers compare one by
    // one, numbers numerically and below text, a shorter list first.
    Some(match (a.pre.is_empty(), b.pre.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            for (x, y) in a.pre.iter().zip(&b.pre) {
                let order = match (is_numeric(x), is_numeric(y)) {
                    // Without leading zeros, a longer number is a larger one.
                    (true, true) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return Some(order);
                }
            }
            a.pre.len().cmp(&b.pre.len())
        }
    })
}

/// How a project's releases are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOrdering {
    /// Every release the project had seen parsed as a semantic version.
    Semver,
    /// By when the project first saw each release.
    FirstSeen,
}

impl ReleaseOrdering {
    /// Semver when every one of `releases` parses as a version (also when
    /// there are none), else first-seen.
    pub fn for_releases<'a>(releases: impl IntoIterator<Item = &'a str>) -> ReleaseOrdering {
        if releases.into_iter().all(|r| parse_version(r).is_some()) {
            ReleaseOrdering::Semver
        } else {
            ReleaseOrdering::FirstSeen
        }
    }
}

/// A release with when the project first saw it (`None`: not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenRelease<'a> {
    pub name: &'a str,
    pub first_seen: Option<i64>,
}

/// Orders two releases. Under semver ordering two versions of one package
/// compare by precedence; everything else compares by first-seen time, a
/// release not yet seen being the newest, then by name so the order is total.
pub fn compare(ordering: ReleaseOrdering, a: SeenRelease<'_>, b: SeenRelease<'_>) -> Ordering {
    if a.name == b.name {
        return Ordering::Equal;
    }
    if ordering == ReleaseOrdering::Semver {
        if let (Some(x), Some(y)) = (parse_version(a.name), parse_version(b.name)) {
            if let Some(order) = compare_versions(&x, &y) {
                return order;
            }
        }
    }
    let seen = |r: SeenRelease<'_>| r.first_seen.unwrap_or(i64::MAX);
    seen(a).cmp(&seen(b)).then_with(|| a.name.cmp(b.name))
}

/// The newest of a project's releases under `ordering`.
pub fn latest<'a>(ordering: ReleaseOrdering, releases: &[SeenRelease<'a>]) -> Option<SeenRelease<'a>> {
    releases.iter().copied().max_by(|a, b| compare(ordering, *a, *b))
}

/// How a resolved issue was resolved with respect to releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseBound {
    /// Fixed in this release: events from it or a later one are regressions.
    /// "In the current release" is this with the project's latest release.
    InRelease(String),
    /// Fixed in the release after this one (the project's latest when it was
    /// resolved; `None` when it had none): only events from later releases
    /// are regressions.
    After(Option<String>),
}

/// Whether an event from `event_release` (empty: none) makes an issue
/// resolved with `bound` a regression. An event without a release never
/// does. `seen` gives when the project first saw a release.
pub fn regresses(
    bound: &ReleaseBound,
    ordering: ReleaseOrdering,
    event_release: &str,
    seen: impl Fn(&str) -> Option<i64>,
) -> bool {
    if event_release.is_empty() {
        return false;
    }
    let event = SeenRelease { name: event_release, first_seen: seen(event_release) };
    match bound {
        ReleaseBound::InRelease(fixed) => {
            let fixed = SeenRelease { name: fixed, first_seen: seen(fixed) };
            compare(ordering, event, fixed) != Ordering::Less
        }
        ReleaseBound::After(None) => true,
        ReleaseBound::After(Some(last)) => {
            let last = SeenRelease { name: last, first_seen: seen(last) };
            compare(ordering, event, last) == Ordering::Greater
        }
    }
}

/// Why a text cannot name a release to resolve in.
pub fn check_release_name(release: &str) -> Result<(), String> {
    if release.trim().is_empty() {
        return Err("a release must not be empty".into());
    }
    if release.len() > SHORT_TEXT_BYTES {
        return Err(format!("a release is at most {SHORT_TEXT_BYTES} bytes long"));
    }
    if release != release.trim() || release.chars().any(char::is_control) {
        return Err(format!("release {release:?} must not start or end with spaces or hold control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(ordering: ReleaseOrdering, releases: &[(&str, Option<i64>)]) {
        for pair in releases.windows(2) {
            let a = SeenRelease { name: pair[0].0, first_seen: pair[0].1 };
            let b = SeenRelease { name: pair[1].0, first_seen: pair[1].1 };
            assert_eq!(compare(ordering, a, b), Ordering::Less, "{} < {}", a.name, b.name);
            assert_eq!(compare(ordering, b, a), Ordering::Greater, "{} > {}", b.name, a.name);
        }
    }

    #[test]
    fn semver_precedence_follows_the_spec_example() {
        // The list in semver 2.0's paragraph 11, oldest first.
        let list = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.9.0",
            "1.10.0",
            "2.0.0",
        ];
        // First-seen times the other way round, so only semver can pass.
        let seen: Vec<_> = list.iter().enumerate().map(|(i, r)| (*r, Some(1000 - i as i64))).collect();
        ordered(ReleaseOrdering::Semver, &seen);
    }

    #[test]
    fn versions_with_a_package_or_v_prefix_parse_and_build_metadata_is_ignored() {
        let v = parse_version("my-app@v1.2.3-rc.1+build.5").unwrap();
        assert_eq!((v.package, v.major, v.minor, v.patch, v.pre), ("my-app", 1, 2, 3, vec!["rc", "1"]));
        let a = parse_version("1.2.3+a").unwrap();
        let b = parse_version("1.2.3+b").unwrap();
        assert_eq!(compare_versions(&a, &b), Some(Ordering::Equal));
        let other = parse_version("other@1.2.3").unwrap();
        assert_eq!(compare_versions(&a, &other), None);
    }

    #[test]
    fn what_is_not_a_version() {
        for text in ["", "1.2", "1.2.3.4", "01.2.3", "1.2.3-", "1.2.3-01", "abc1234", "@1.2.3", "1.2.x", "1.2.3+"] {
            assert!(parse_version(text).is_none(), "{text:?} parsed");
        }
    }

    #[test]
    fn one_release_that_is_not_a_version_orders_the_project_by_first_seen() {
        assert_eq!(ReleaseOrdering::for_releases(["1.0.0", "pkg@2.0.0"]), ReleaseOrdering::Semver);
        assert_eq!(ReleaseOrdering::for_releases(["1.0.0", "a1b2c3"]), ReleaseOrdering::FirstSeen);
        ordered(ReleaseOrdering::FirstSeen, &[("2.0.0", Some(5)), ("1.0.0", Some(9)), ("later", None)]);
    }

    #[test]
    fn under_semver_different_packages_fall_back_to_first_seen() {
        ordered(ReleaseOrdering::Semver, &[("b@9.0.0", Some(1)), ("a@1.0.0", Some(2))]);
        ordered(ReleaseOrdering::Semver, &[("a@1.0.1", Some(3)), ("a@1.0.2", Some(1))]);
    }

    #[test]
    fn latest_is_the_highest_version_or_the_last_seen() {
        let releases =
            [SeenRelease { name: "1.10.0", first_seen: Some(1) }, SeenRelease { name: "1.9.0", first_seen: Some(2) }];
        assert_eq!(latest(ReleaseOrdering::Semver, &releases).unwrap().name, "1.10.0");
        assert_eq!(latest(ReleaseOrdering::FirstSeen, &releases).unwrap().name, "1.9.0");
        assert_eq!(latest(ReleaseOrdering::Semver, &[]), None);
    }

    fn seen_at(name: &str) -> Option<i64> {
        match name {
            "1.3.8" => Some(10),
            "1.3.9" => Some(20),
            "hotfix" => Some(30),
            _ => None,
        }
    }

    #[test]
    fn resolved_in_a_release_regresses_from_that_release_on() {
        let bound = ReleaseBound::InRelease("1.4.0".into());
        let semver = ReleaseOrdering::Semver;
        assert!(!regresses(&bound, semver, "1.3.9", seen_at));
        assert!(!regresses(&bound, semver, "1.4.0-rc.1", seen_at));
        assert!(regresses(&bound, semver, "1.4.0", seen_at));
        assert!(regresses(&bound, semver, "2.0.0", seen_at));
        assert!(!regresses(&bound, semver, "", seen_at));
    }

    #[test]
    fn resolved_in_the_next_release_regresses_only_after_the_latest() {
        let bound = ReleaseBound::After(Some("1.3.9".into()));
        let semver = ReleaseOrdering::Semver;
        assert!(!regresses(&bound, semver, "1.3.8", seen_at));
        assert!(!regresses(&bound, semver, "1.3.9", seen_at));
        assert!(regresses(&bound, semver, "1.3.10", seen_at));
        assert!(!regresses(&bound, semver, "", seen_at));
        // With no release known, any release is a later one.
        assert!(regresses(&ReleaseBound::After(None), semver, "0.0.1", seen_at));
        assert!(!regresses(&ReleaseBound::After(None), semver, "", seen_at));
    }

    #[test]
    fn by_first_seen_a_release_never_seen_is_the_newest() {
        let first_seen = ReleaseOrdering::FirstSeen;
        let next = ReleaseBound::After(Some("hotfix".into()));
        assert!(!regresses(&next, first_seen, "1.3.9", seen_at));
        assert!(!regresses(&next, first_seen, "hotfix", seen_at));
        assert!(regresses(&next, first_seen, "brand-new", seen_at));
        // Fixed in a release not seen yet: everything seen so far is older.
        let fixed = ReleaseBound::InRelease("future".into());
        assert!(!regresses(&fixed, first_seen, "hotfix", seen_at));
        assert!(regresses(&fixed, first_seen, "future", seen_at));
    }

    #[test]
    fn release_names_to_resolve_in() {
        assert!(check_release_name("1.4.0").is_ok());
        assert!(check_release_name("backend@2024.05.01").is_ok());
        assert!(check_release_name("").is_err());
        assert!(check_release_name(" 1.4.0").is_err());
        assert!(check_release_name("1.4\n").is_err());
        assert!(check_release_name(&"x".repeat(SHORT_TEXT_BYTES + 1)).is_err());
    }
}
