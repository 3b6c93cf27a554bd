//! Organisations and who belongs to them ([`super::Organisations`]):
//! memberships, roles and invitations, written once for both backends like
//! `accounts_sql.rs`.

/// Defines `impl Organisations` for one backend's store: `$conn` is its
/// connection type.
macro_rules! organisations_store {
    ($store:ty, $conn:ty) => {
        #[async_trait]
        impl Organisations for $store {
            async fn set_membership(&self, org_slug: &str, user_id: i64, role: Role) -> StoreResult<()> {
                let org_id: Option<i64> = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1")
                    .bind(org_slug)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable("looking up an organisation"))?;
                let org_id = org_id.ok_or_else(|| StoreError::NotFound(format!("no organisation named {org_slug}")))?;
                sqlx::query(
                    "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3) \
                     ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(org_id)
                .bind(user_id)
                .bind(role.as_str())
                .execute(&self.pool)
                .await
                .map_err(unavailable("adding a member"))?;
                Ok(())
            }

            async fn organisations_for(&self, viewer: Viewer) -> StoreResult<Vec<OrgAccess>> {
                let rows = sqlx::query(
                    "SELECT o.slug, CASE WHEN $1 THEN 'admin' ELSE m.role END AS role FROM organisations o \
                     LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = $2 \
                     WHERE $1 OR m.user_id IS NOT NULL ORDER BY o.slug",
                )
                .bind(viewer.is_admin)
                .bind(viewer.user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable("listing organisations"))?;
                rows.iter()
                    .map(|r| {
                        let role: String = r.try_get("role")?;
                        Ok(OrgAccess { org_slug: r.try_get("slug")?, role: Role::parse(&role).unwrap_or(Role::Member) })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(unavailable("reading organisations"))
            }

            async fn role_in(&self, viewer: Viewer, org_slug: &str) -> StoreResult<Option<Role>> {
                if !SQL.can_hold(org_slug) {
                    return Ok(None);
                }
                let role: Option<Option<String>> = sqlx::query_scalar(
                    "SELECT CASE WHEN $1 THEN 'admin' ELSE m.role END FROM organisations o \
                     LEFT JOIN memberships m ON m.org_id = o.id AND m.user_id = $2 WHERE o.slug = $3",
                )
                .bind(viewer.is_admin)
                .bind(viewer.user_id)
                .bind(org_slug)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up a role"))?;
                Ok(role.flatten().and_then(|r| Role::parse(&r)))
            }

            async fn members_of(&self, viewer: Viewer, org_slug: &str) -> StoreResult<Option<Vec<Member>>> {
                if self.role_in(viewer, org_slug).await?.is_none() {
                    return Ok(None);
                }
                let rows = sqlx::query(
                    "SELECT u.id, u.email, m.role FROM memberships m JOIN users u ON u.id = m.user_id \
                     JOIN organisations o ON o.id = m.org_id WHERE o.slug = $1 ORDER BY u.email",
                )
                .bind(org_slug)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable("listing members"))?;
                rows.iter()
                    .map(|r| {
                        let role: String = r.try_get("role")?;
                        Ok(Member {
                            user_id: r.try_get("id")?,
                            email: r.try_get("email")?,
                            role: Role::parse(&role).unwrap_or(Role::Member),
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()
                    .map(Some)
                    .map_err(unavailable("reading members"))
            }

            async fn remove_membership(&self, org_slug: &str, user_id: i64) -> StoreResult<bool> {
                let removed = sqlx::query(
                    "DELETE FROM memberships \
                     WHERE user_id = $1 AND org_id = (SELECT id FROM organisations WHERE slug = $2)",
                )
                .bind(user_id)
                .bind(org_slug)
                .execute(&self.pool)
                .await
                .map_err(unavailable("removing a member"))?
                .rows_affected();
                Ok(removed > 0)
            }

            async fn create_invitation(&self, token_hash: &str, invitation: &Invitation, at: i64) -> StoreResult<()> {
                let inserted = sqlx::query(
                    "INSERT INTO invitations (token_hash, org_id, email, role, created_at, expires_at) \
                     SELECT $1, id, $2, $3, $4, $5 FROM organisations WHERE slug = $6",
                )
                .bind(token_hash)
                .bind(&invitation.email)
                .bind(invitation.role.as_str())
                .bind(at)
                .bind(invitation.expires_at)
                .bind(&invitation.org_slug)
                .execute(&self.pool)
                .await
                .map_err(unavailable("creating an invitation"))?
                .rows_affected();
                if inserted == 0 {
                    return Err(StoreError::NotFound(format!("no organisation named {}", invitation.org_slug)));
                }
                Ok(())
            }

            async fn invitation(&self, token_hash: &str, now: i64) -> StoreResult<Option<Invitation>> {
                let row = sqlx::query(
                    "SELECT o.slug, i.email, i.role, i.expires_at \
                     FROM invitations i JOIN organisations o ON o.id = i.org_id \
                     WHERE i.token_hash = $1 AND i.accepted_at IS NULL AND i.expires_at > $2",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up an invitation"))?;
                let Some(row) = row else { return Ok(None) };
                let read = || -> Result<Invitation, sqlx::Error> {
                    let role: String = row.try_get("role")?;
                    Ok(Invitation {
                        org_slug: row.try_get("slug")?,
                        email: row.try_get("email")?,
                        role: Role::parse(&role).unwrap_or(Role::Member),
                        expires_at: row.try_get("expires_at")?,
                    })
                };
                read().map(Some).map_err(unavailable("reading an invitation"))
            }

            async fn accept_invitation(
                &self,
                token_hash: &str,
                password_hash: &str,
                now: i64,
            ) -> StoreResult<(User, bool)> {
                let mut tx = self.begin_write().await?;
                // Marking it used first makes a second, concurrent use find nothing.
                let row = sqlx::query(
                    "UPDATE invitations SET accepted_at = $1 \
                     WHERE token_hash = $2 AND accepted_at IS NULL AND expires_at > $1 \
                     RETURNING org_id, email, role",
                )
                .bind(now)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable("using an invitation"))?
                .ok_or_else(|| {
                    StoreError::NotFound("this invitation is unknown, used or expired; ask for a new one".into())
                })?;
                let org_id: i64 = row.try_get("org_id").map_err(unavailable("reading an invitation"))?;
                let email: String = row.try_get("email").map_err(unavailable("reading an invitation"))?;
                let role: String = row.try_get("role").map_err(unavailable("reading an invitation"))?;
                let created = sqlx::query(
                    "INSERT INTO users (email, password_hash, is_admin, created_at) VALUES ($1, $2, FALSE, $3) \
                     ON CONFLICT (email) DO NOTHING",
                )
                .bind(&email)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("creating an invited user"))?
                .rows_affected()
                    > 0;
                let user_row = sqlx::query("SELECT id, email, password_hash, is_admin FROM users WHERE email = $1")
                    .bind(&email)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unavailable("reading an invited user"))?;
                let user = user_from_row(&user_row).map_err(unavailable("reading a user"))?;
                sqlx::query(
                    "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3) \
                     ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
                )
                .bind(org_id)
                .bind(user.id)
                .bind(&role)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("adding an invited member"))?;
                tx.commit().await.map_err(unavailable("committing an invitation"))?;
                Ok((user, created))
            }

            async fn pending_invitations(
                &self,
                viewer: Viewer,
                org_slug: &str,
                now: i64,
            ) -> StoreResult<Option<Vec<PendingInvitation>>> {
                match self.role_in(viewer, org_slug).await? {
                    None => return Ok(None),
                    Some(Role::Member) => {
                        return Err(StoreError::Forbidden(
                            "only an admin of the organisation may see its invitations".into(),
                        ))
                    }
                    Some(Role::Admin) => {}
                }
                let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
                pending_invitation_rows(&mut conn, org_slug, now)
                    .await
                    .map(Some)
                    .map_err(unavailable("listing invitations"))
            }

            async fn revoke_invitation(&self, viewer: Viewer, org_slug: &str, email: &str) -> StoreResult<bool> {
                if self.role_in(viewer, org_slug).await? != Some(Role::Admin) {
                    return Err(StoreError::Forbidden(
                        "only an admin of the organisation may revoke its invitations".into(),
                    ));
                }
                let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
                let revoked = revoke_invitation_rows(&mut conn, org_slug, email)
                    .await
                    .map_err(unavailable("revoking an invitation"))?;
                Ok(revoked > 0)
            }
        }
    };
}

pub(super) use organisations_store;
