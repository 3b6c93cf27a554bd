//! Resolving in a release: what a resolution stores (pure, below) and the
//! two queries both backends expand from [`resolve_queries`] — reading a
//! project's releases, and inside the batch transaction deciding whether an
//! event regresses an issue resolved with respect to releases. The order of
//! releases and the regression rule are `booboo_core::release_order`'s.

use super::{Resolution, ResolvedIn, ResolvedInKind, StoreError};
use booboo_core::release_order::{self, ReleaseBound, ReleaseOrdering, SeenRelease};

/// What to store for `resolution`, given the project's releases with when
/// it first saw each. `None`: resolved now, nothing release-bound.
pub(super) fn resolved_in(
    resolution: &Resolution,
    releases: &[(String, i64)],
) -> Result<Option<ResolvedIn>, StoreError> {
    let names = releases.iter().map(|(r, _)| r.as_str());
    let (kind, release, ordering) = match resolution {
        Resolution::Now => return Ok(None),
        Resolution::InRelease(release) => {
            release_order::check_release_name(release).map_err(StoreError::Conflict)?;
            let ordering = ReleaseOrdering::for_releases(names.chain([release.as_str()]));
            (ResolvedInKind::Release, Some(release.clone()), ordering)
        }
        Resolution::NextRelease | Resolution::CurrentRelease => {
            let ordering = ReleaseOrdering::for_releases(names);
            let seen: Vec<_> =
                releases.iter().map(|(name, at)| SeenRelease { name: name.as_str(), first_seen: Some(*at) }).collect();
            let latest = release_order::latest(ordering, &seen).map(|r| r.name.to_string());
            if *resolution == Resolution::NextRelease {
                (ResolvedInKind::NextRelease, latest, ordering)
            } else {
                let latest = latest.ok_or_else(|| {
                    StoreError::Conflict(
                        "the project has no release yet, so there is no current release: resolve now, \
                         in the next release or in a named release"
                            .into(),
                    )
                })?;
                (ResolvedInKind::CurrentRelease, Some(latest), ordering)
            }
        }
    };
    Ok(Some(ResolvedIn { kind, release, semver: ordering == ReleaseOrdering::Semver }))
}

/// The regression rule a stored resolution sets.
pub(super) fn bound_of(resolved: &ResolvedIn) -> ReleaseBound {
    match (resolved.kind, &resolved.release) {
        (ResolvedInKind::NextRelease, last) => ReleaseBound::After(last.clone()),
        (_, Some(fixed)) => ReleaseBound::InRelease(fixed.clone()),
        // A release-bound resolution always names its release; should one
        // not, every event with a release regresses rather than none.
        (_, None) => ReleaseBound::After(None),
    }
}

/// Defines the resolve queries for one backend (`$conn` its connection
/// type); `q` turns `?` into the backend's placeholders.
macro_rules! resolve_queries {
    ($conn:ty) => {
        /// A project's releases with when it first saw each.
        async fn project_releases_seen(conn: &mut $conn, project_id: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
            sqlx::query_as(&q("SELECT release, first_seen FROM project_releases WHERE project_id = ?"))
                .bind(project_id)
                .fetch_all(&mut *conn)
                .await
        }

        /// Inside the batch transaction, for an event of an issue that is
        /// still resolved with a release bound: whether the event's release
        /// makes it a regression, and if so the issue is unresolved again
        /// (marked a regression, its resolution forgotten). The event's own
        /// release may not be in `project_releases` yet: then it is new, so
        /// newer than every release seen.
        async fn regress_by_release(
            conn: &mut $conn,
            project_id: i64,
            issue_id: i64,
            resolved: &ResolvedIn,
            event_release: &str,
        ) -> Result<bool, sqlx::Error> {
            if event_release.is_empty() {
                return Ok(false);
            }
            let other = resolved.release.as_deref().unwrap_or(event_release);
            let seen: Vec<(String, i64)> = sqlx::query_as(&q(
                "SELECT release, first_seen FROM project_releases WHERE project_id = ? AND release IN (?, ?)",
            ))
            .bind(project_id)
            .bind(event_release)
            .bind(other)
            .fetch_all(&mut *conn)
            .await?;
            let ordering = if resolved.semver {
                booboo_core::release_order::ReleaseOrdering::Semver
            } else {
                booboo_core::release_order::ReleaseOrdering::FirstSeen
            };
            let first_seen = |name: &str| seen.iter().find(|(r, _)| r == name).map(|(_, at)| *at);
            let bound = super::resolve_sql::bound_of(resolved);
            if !booboo_core::release_order::regresses(&bound, ordering, event_release, first_seen) {
                return Ok(false);
            }
            sqlx::query(&q("UPDATE issues SET status = 'unresolved', is_regression = ?, resolved_kind = NULL, \
                 resolved_release = NULL, resolved_semver = ? WHERE id = ?"))
            .bind(true)
            .bind(false)
            .bind(issue_id)
            .execute(&mut *conn)
            .await?;
            Ok(true)
        }
    };
}
pub(super) use resolve_queries;

#[cfg(test)]
mod tests {
    use super::*;

    fn releases(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(r, at)| (r.to_string(), *at)).collect()
    }

    #[test]
    fn next_and_current_release_are_the_projects_latest() {
        let known = releases(&[("1.10.0", 1), ("1.9.0", 2)]);
        let next = resolved_in(&Resolution::NextRelease, &known).unwrap().unwrap();
        assert_eq!(
            (next.kind, next.release.as_deref(), next.semver),
            (ResolvedInKind::NextRelease, Some("1.10.0"), true)
        );
        let current = resolved_in(&Resolution::CurrentRelease, &known).unwrap().unwrap();
        assert_eq!((current.kind, current.release.as_deref()), (ResolvedInKind::CurrentRelease, Some("1.10.0")));
        let mixed = releases(&[("1.10.0", 1), ("deadbeef", 2)]);
        let next = resolved_in(&Resolution::NextRelease, &mixed).unwrap().unwrap();
        assert_eq!((next.release.as_deref(), next.semver), (Some("deadbeef"), false));
    }

    #[test]
    fn without_releases_next_is_any_release_and_current_is_refused() {
        let next = resolved_in(&Resolution::NextRelease, &[]).unwrap().unwrap();
        assert_eq!(next.release, None);
        assert!(matches!(resolved_in(&Resolution::CurrentRelease, &[]), Err(StoreError::Conflict(_))));
        assert_eq!(resolved_in(&Resolution::Now, &[]).unwrap(), None);
    }

    #[test]
    fn a_named_release_may_be_one_not_seen_yet_and_counts_for_the_order() {
        let known = releases(&[("1.3.9", 1)]);
        let fixed = resolved_in(&Resolution::InRelease("1.4.0".into()), &known).unwrap().unwrap();
        assert_eq!((fixed.release.as_deref(), fixed.semver), (Some("1.4.0"), true));
        let fixed = resolved_in(&Resolution::InRelease("next-friday".into()), &known).unwrap().unwrap();
        assert!(!fixed.semver);
        assert!(resolved_in(&Resolution::InRelease(" ".into()), &known).is_err());
    }
}
