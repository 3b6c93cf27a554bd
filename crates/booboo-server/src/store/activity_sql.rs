//! The queries behind an issue's ownership and history (assignee, comments,
//! the activity list, pending invitations), written once for both backends:
//! a macro expanded in `sqlite.rs` and `postgres.rs`, like `alert_sql.rs`,
//! whose `q` turns the `?` placeholders into the backend's own.
//!
//! Every change to an issue records its entry with [`insert_activity`] on the
//! connection of the transaction that makes the change, so the history is
//! committed with the change or not at all.

/// Defines the activity functions for one backend: `$conn` is its
/// connection type, `$row` its row type.
macro_rules! activity_queries {
    ($conn:ty, $row:ty) => {

        const ACTIVITY_COLUMNS: &str =
            "a.id, a.issue_id, a.kind, u.email AS actor, a.created_at, a.detail FROM issue_activity a \
             LEFT JOIN users u ON u.id = a.actor_id";

        fn activity_from_row(row: &$row) -> Result<Activity, sqlx::Error> {
            let kind: String = row.try_get("kind")?;
            let detail: String = row.try_get("detail")?;
            Ok(Activity {
                id: row.try_get("id")?,
                issue_id: row.try_get("issue_id")?,
                kind: ActivityKind::parse(&kind)
                    .ok_or_else(|| sqlx::Error::Decode(format!("unknown activity kind {kind:?}").into()))?,
                actor: row.try_get("actor")?,
                created_at: row.try_get("created_at")?,
                detail: serde_json::from_str(&detail).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            })
        }

        /// Records one entry of an issue's history on the caller's
        /// connection, inside the transaction that makes the change. `actor`
        /// is the user who made it (`None`: booboo itself); an id that names
        /// no user is recorded as booboo. Returns the entry's id.
        #[allow(dead_code)]
        async fn insert_activity(
            conn: &mut $conn,
            issue_id: i64,
            actor: Option<i64>,
            kind: ActivityKind,
            detail: &serde_json::Value,
            at: i64,
        ) -> Result<i64, sqlx::Error> {
            sqlx::query_scalar(&q(
                "INSERT INTO issue_activity (issue_id, kind, actor_id, detail, created_at) \
                 VALUES (?, ?, (SELECT id FROM users WHERE id = ?), ?, ?) RETURNING id",
            ))
            .bind(issue_id)
            .bind(kind.as_str())
            .bind(actor)
            .bind(detail.to_string())
            .bind(at)
            .fetch_one(&mut *conn)
            .await
        }

        /// The organisation of an issue the viewer can see.
        async fn visible_issue_org(conn: &mut $conn, viewer: Viewer, issue_id: i64) -> Result<Option<i64>, sqlx::Error> {
            sqlx::query_scalar(&q(
                "SELECT p.org_id FROM issues i JOIN projects p ON p.id = i.project_id \
                 WHERE (? OR p.org_id IN (SELECT org_id FROM memberships WHERE user_id = ?)) AND i.id = ?",
            ))
            .bind(viewer.is_admin)
            .bind(viewer.user_id)
            .bind(issue_id)
            .fetch_optional(&mut *conn)
            .await
        }

        /// One page of an issue's history, newest first; only entries of
        /// `kind` when given. The caller has checked the viewer sees it.
        async fn activity_page(
            conn: &mut $conn,
            issue_id: i64,
            kind: Option<ActivityKind>,
            page: Page,
        ) -> Result<PageOf<Activity>, sqlx::Error> {
            // The kind is one of our own constant names, never user text.
            let of_kind = kind.map(|k| format!(" AND a.kind = '{}'", k.as_str())).unwrap_or_default();
            let rows = sqlx::query(&q(&format!(
                "SELECT {ACTIVITY_COLUMNS} WHERE a.issue_id = ?{of_kind} ORDER BY a.id DESC LIMIT ? OFFSET ?"
            )))
            .bind(issue_id)
            .bind(page.limit + 1)
            .bind(page.offset)
            .fetch_all(&mut *conn)
            .await?;
            let items = rows.iter().map(activity_from_row).collect::<Result<Vec<_>, _>>()?;
            Ok(PageOf::from_overfetch(items, page))
        }

        async fn activity_by_id(conn: &mut $conn, id: i64) -> Result<Activity, sqlx::Error> {
            let row = sqlx::query(&q(&format!("SELECT {ACTIVITY_COLUMNS} WHERE a.id = ?")))
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
            activity_from_row(&row)
        }

        /// Adds a comment as the viewer, in the caller's transaction; `None`
        /// when the viewer cannot see the issue. The text was checked.
        async fn add_comment_row(
            conn: &mut $conn,
            viewer: Viewer,
            issue_id: i64,
            text: &str,
            at: i64,
        ) -> Result<Option<Activity>, sqlx::Error> {
            if visible_issue_org(conn, viewer, issue_id).await?.is_none() {
                return Ok(None);
            }
            let detail = serde_json::json!({ "text": text });
            let id = insert_activity(conn, issue_id, Some(viewer.user_id), ActivityKind::Comment, &detail, at).await?;
            activity_by_id(conn, id).await.map(Some)
        }

        /// Assigns an issue to a member of its organisation (`None`:
        /// unassigns it) and records the change, in the caller's transaction.
        /// Assigning it to whom it already is changes and records nothing.
        async fn assign_issue_row(
            conn: &mut $conn,
            viewer: Viewer,
            issue_id: i64,
            email: Option<&str>,
            at: i64,
        ) -> Result<Assignment, sqlx::Error> {
            let Some(org_id) = visible_issue_org(conn, viewer, issue_id).await? else {
                return Ok(Assignment::IssueNotFound);
            };
            let assignee: Option<i64> = match email {
                None => None,
                Some(email) => {
                    let member: Option<i64> = sqlx::query_scalar(&q(
                        "SELECT u.id FROM users u JOIN memberships m ON m.user_id = u.id \
                         WHERE m.org_id = ? AND u.email = ?",
                    ))
                    .bind(org_id)
                    .bind(email)
                    .fetch_optional(&mut *conn)
                    .await?;
                    match member {
                        Some(id) => Some(id),
                        None => return Ok(Assignment::NotAMember),
                    }
                }
            };
            let changed = sqlx::query(&q(
                "UPDATE issues SET assignee_id = ? WHERE id = ? AND COALESCE(assignee_id, 0) <> COALESCE(?, 0)",
            ))
            .bind(assignee)
            .bind(issue_id)
            .bind(assignee)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if changed > 0 {
                let detail = serde_json::json!({ "assignee": email });
                insert_activity(conn, issue_id, Some(viewer.user_id), ActivityKind::Assignment, &detail, at).await?;
            }
            let row = sqlx::query(&q(&format!("SELECT {ISSUE_COLUMNS} FROM issues i WHERE i.id = ?")))
                .bind(issue_id)
                .fetch_one(&mut *conn)
                .await?;
            Ok(Assignment::Done(Box::new(issue_from_row(&row)?)))
        }

        /// Invitations of an organisation not yet used nor expired, newest
        /// first.
        async fn pending_invitation_rows(
            conn: &mut $conn,
            org_slug: &str,
            now: i64,
        ) -> Result<Vec<PendingInvitation>, sqlx::Error> {
            let rows = sqlx::query(&q(
                "SELECT i.email, i.role, i.created_at, i.expires_at FROM invitations i \
                 JOIN organisations o ON o.id = i.org_id \
                 WHERE o.slug = ? AND i.accepted_at IS NULL AND i.expires_at > ? \
                 ORDER BY i.created_at DESC, i.email",
            ))
            .bind(org_slug)
            .bind(now)
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|r| {
                    let role: String = r.try_get("role")?;
                    Ok(PendingInvitation {
                        email: r.try_get("email")?,
                        role: Role::parse(&role).unwrap_or(Role::Member),
                        created_at: r.try_get("created_at")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .collect()
        }

        /// Deletes the unused invitations of an organisation to one address,
        /// so their links stop working; how many there were.
        async fn revoke_invitation_rows(conn: &mut $conn, org_slug: &str, email: &str) -> Result<u64, sqlx::Error> {
            Ok(sqlx::query(&q(
                "DELETE FROM invitations WHERE accepted_at IS NULL AND email = ? \
                 AND org_id = (SELECT id FROM organisations WHERE slug = ?)",
            ))
            .bind(email)
            .bind(org_slug)
            .execute(&mut *conn)
            .await?
            .rows_affected())
        }
    };
}
pub(super) use activity_queries;
