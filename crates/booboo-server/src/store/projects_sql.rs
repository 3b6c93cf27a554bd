//! Projects, their keys and their limits ([`super::Projects`]), and the two
//! access checks other verbs share (`project_visible`, `require_org_admin`),
//! written once for both backends like `accounts_sql.rs`.

/// Defines `impl Projects` for one backend's store, with the access checks:
/// `$conn` is its connection type.
macro_rules! projects_store {
    ($store:ty, $conn:ty) => {
        /// Creates a project in an organisation with its first key: the end that
        /// both ways of creating a project share. The caller commits.
        async fn insert_project(
            conn: &mut $conn,
            org_id: i64,
            org_slug: &str,
            project_slug: &str,
            token: &str,
            at: i64,
        ) -> StoreResult<(Project, ProjectKey)> {
            let project_id: i64 = sqlx::query_scalar(
                "INSERT INTO projects (org_id, slug, name, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(org_id)
            .bind(project_slug)
            .bind(project_slug)
            .bind(at)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("project {org_slug}/{project_slug} already exists"))
                } else {
                    unavailable("creating a project")(e)
                }
            })?;
            let key_row = sqlx::query(
                "INSERT INTO project_keys (project_id, token, label, created_at) VALUES ($1, $2, 'default', $3) \
                 RETURNING id, project_id, token, label, created_at, revoked_at",
            )
            .bind(project_id)
            .bind(token)
            .bind(at)
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable("creating a project key"))?;
            let key = key_from_row(&key_row).map_err(unavailable("reading a project key"))?;
            let project_row = sqlx::query(&format!(
                "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id WHERE p.id = $1"
            ))
            .bind(project_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable("reading a project"))?;
            let project = project_from_row(&project_row).map_err(unavailable("reading a project"))?;
            Ok((project, key))
        }

        impl $store {
            /// Whether the viewer may see a project: the access rule of every read.
            async fn project_visible(&self, viewer: Viewer, project_id: i64) -> StoreResult<bool> {
                sqlx::query_scalar(&format!(
                    "SELECT EXISTS (SELECT 1 FROM projects p WHERE {VISIBLE_ORG} AND p.id = $3)"
                ))
                .bind(viewer.is_admin)
                .bind(viewer.user_id)
                .bind(project_id)
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable("checking access to a project"))
            }

            /// The organisation of a project the viewer may see; `None` if it
            /// may not (or there is no such project).
            async fn visible_project_org(&self, viewer: Viewer, project_id: i64) -> StoreResult<Option<i64>> {
                sqlx::query_scalar(&format!("SELECT p.org_id FROM projects p WHERE {VISIBLE_ORG} AND p.id = $3"))
                    .bind(viewer.is_admin)
                    .bind(viewer.user_id)
                    .bind(project_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable("looking up a project"))
            }

            /// `Forbidden` unless the viewer administers the organisation (or the
            /// installation).
            async fn require_org_admin(&self, viewer: Viewer, org_id: i64, doing: &str) -> StoreResult<()> {
                if viewer.is_admin {
                    return Ok(());
                }
                let role: Option<String> =
                    sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
                        .bind(org_id)
                        .bind(viewer.user_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(unavailable("looking up a role"))?;
                if role.as_deref() == Some("admin") {
                    Ok(())
                } else {
                    Err(StoreError::Forbidden(format!("only an admin of the organisation may {doing}")))
                }
            }
        }

        #[async_trait]
        impl Projects for $store {
            async fn create_project(
                &self,
                org_slug: &str,
                project_slug: &str,
                token: &str,
                at: i64,
            ) -> StoreResult<(Project, ProjectKey)> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO organisations (slug, name, created_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (slug) DO NOTHING",
                )
                .bind(org_slug)
                .bind(org_slug)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("creating an organisation"))?;
                let org_id: i64 = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1")
                    .bind(org_slug)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unavailable("looking up an organisation"))?;
                let created = insert_project(&mut tx, org_id, org_slug, project_slug, token, at).await?;
                tx.commit().await.map_err(unavailable("committing a project"))?;
                Ok(created)
            }

            async fn project_with_keys(
                &self,
                org_slug: &str,
                project_slug: &str,
            ) -> StoreResult<Option<(Project, Vec<ProjectKey>)>> {
                let row = sqlx::query(&format!(
                    "SELECT {PROJECT_COLUMNS} \
                     FROM projects p JOIN organisations o ON o.id = p.org_id WHERE o.slug = $1 AND p.slug = $2"
                ))
                .bind(org_slug)
                .bind(project_slug)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up a project"))?;
                let Some(row) = row else { return Ok(None) };
                let project = project_from_row(&row).map_err(unavailable("reading a project"))?;
                let keys = sqlx::query(
                    "SELECT id, project_id, token, label, created_at, revoked_at FROM project_keys \
                     WHERE project_id = $1 AND revoked_at IS NULL ORDER BY id",
                )
                .bind(project.id)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable("reading project keys"))?
                .iter()
                .map(key_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map_err(unavailable("reading project keys"))?;
                Ok(Some((project, keys)))
            }

            async fn projects_for(&self, viewer: Viewer) -> StoreResult<Vec<Project>> {
                sqlx::query(&format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id \
                     WHERE {VISIBLE_ORG} ORDER BY o.slug, p.slug"
                ))
                .bind(viewer.is_admin)
                .bind(viewer.user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable("listing projects"))?
                .iter()
                .map(project_from_row)
                .collect::<Result<_, _>>()
                .map_err(unavailable("reading projects"))
            }

            async fn project_for(
                &self,
                viewer: Viewer,
                org_slug: &str,
                project_slug: &str,
            ) -> StoreResult<Option<Project>> {
                // PostgreSQL text cannot hold U+0000, and no slug has one: not found.
                if !SQL.can_hold(org_slug) || !SQL.can_hold(project_slug) {
                    return Ok(None);
                }
                sqlx::query(&format!(
                    "SELECT {PROJECT_COLUMNS} FROM projects p JOIN organisations o ON o.id = p.org_id \
                     WHERE {VISIBLE_ORG} AND o.slug = $3 AND p.slug = $4"
                ))
                .bind(viewer.is_admin)
                .bind(viewer.user_id)
                .bind(org_slug)
                .bind(project_slug)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up a project"))?
                .map(|r| project_from_row(&r))
                .transpose()
                .map_err(unavailable("reading a project"))
            }

            async fn create_project_for(
                &self,
                viewer: Viewer,
                org_slug: &str,
                project_slug: &str,
                token: &str,
                at: i64,
            ) -> StoreResult<(Project, ProjectKey)> {
                // `ON CONFLICT DO NOTHING RETURNING` tells who created the
                // organisation: of two people creating it at once, one gets its
                // id and becomes its admin, the other finds it existing (on
                // SQLite the write lock already runs them one after the other).
                let mut tx = self.begin_write().await?;
                let created: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO organisations (slug, name, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (slug) DO NOTHING RETURNING id",
                )
                .bind(org_slug)
                .bind(org_slug)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable("creating an organisation"))?;
                let org_id = match created {
                    Some(id) => {
                        sqlx::query("INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'admin')")
                            .bind(id)
                            .bind(viewer.user_id)
                            .execute(&mut *tx)
                            .await
                            .map_err(unavailable("making the creator an admin"))?;
                        id
                    }
                    None => {
                        let id: i64 = sqlx::query_scalar("SELECT id FROM organisations WHERE slug = $1")
                            .bind(org_slug)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(unavailable("looking up an organisation"))?;
                        let role: Option<String> =
                            sqlx::query_scalar("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
                                .bind(id)
                                .bind(viewer.user_id)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(unavailable("looking up a role"))?;
                        if !viewer.is_admin && role.as_deref() != Some("admin") {
                            return Err(StoreError::Forbidden(format!(
                                "only an admin of the organisation {org_slug} can create projects in it"
                            )));
                        }
                        id
                    }
                };
                let created = insert_project(&mut tx, org_id, org_slug, project_slug, token, at).await?;
                tx.commit().await.map_err(unavailable("committing a project"))?;
                Ok(created)
            }

            async fn project_keys(&self, viewer: Viewer, project_id: i64) -> StoreResult<Option<Vec<ProjectKey>>> {
                if !self.project_visible(viewer, project_id).await? {
                    return Ok(None);
                }
                sqlx::query(
                    "SELECT id, project_id, token, label, created_at, revoked_at \
                     FROM project_keys WHERE project_id = $1 ORDER BY id",
                )
                .bind(project_id)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable("reading project keys"))?
                .iter()
                .map(key_from_row)
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
                .map_err(unavailable("reading project keys"))
            }

            async fn add_project_key(
                &self,
                viewer: Viewer,
                project_id: i64,
                token: &str,
                label: &str,
                at: i64,
            ) -> StoreResult<Option<ProjectKey>> {
                if !self.project_visible(viewer, project_id).await? {
                    return Ok(None);
                }
                let row = sqlx::query(
                    "INSERT INTO project_keys (project_id, token, label, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING id, project_id, token, label, created_at, revoked_at",
                )
                .bind(project_id)
                .bind(token)
                .bind(label)
                .bind(at)
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable("creating a project key"))?;
                key_from_row(&row).map(Some).map_err(unavailable("reading a project key"))
            }

            async fn revoke_project_key(
                &self,
                viewer: Viewer,
                project_id: i64,
                key_id: i64,
                at: i64,
            ) -> StoreResult<bool> {
                if !self.project_visible(viewer, project_id).await? {
                    return Ok(false);
                }
                let changed = sqlx::query(
                    "UPDATE project_keys SET revoked_at = $1 WHERE id = $2 AND project_id = $3 AND revoked_at IS NULL",
                )
                .bind(at)
                .bind(key_id)
                .bind(project_id)
                .execute(&self.pool)
                .await
                .map_err(unavailable("revoking a project key"))?
                .rows_affected();
                Ok(changed > 0)
            }

            async fn project_limits_all(&self) -> StoreResult<Vec<(i64, ProjectLimits)>> {
                let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
                all_limit_rows(&mut conn).await.map_err(unavailable("reading project limits"))
            }

            async fn set_project_limits(
                &self,
                viewer: Viewer,
                project_id: i64,
                patch: &ProjectLimitsPatch,
            ) -> StoreResult<Option<ProjectLimits>> {
                if let Err((field, message)) = patch.check() {
                    return Err(StoreError::Conflict(format!("{field}: {message}")));
                }
                let org_id = self.visible_project_org(viewer, project_id).await?;
                let Some(org_id) = org_id else { return Ok(None) };
                self.require_org_admin(viewer, org_id, "change a project's limits").await?;
                let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
                // Deleted between the look-up and the change: as good as unseen.
                set_limit_row(&mut conn, project_id, patch).await.map_err(unavailable("changing a project's limits"))
            }

            async fn delete_project_key(&self, viewer: Viewer, project_id: i64, key_id: i64) -> StoreResult<bool> {
                if !self.project_visible(viewer, project_id).await? {
                    return Ok(false);
                }
                let mut conn = self.pool.acquire().await.map_err(unavailable("connecting"))?;
                delete_key_row(&mut conn, project_id, key_id).await.map_err(unavailable("deleting a project key"))
            }
        }
    };
}

pub(super) use projects_store;
