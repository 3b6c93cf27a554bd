//! People and how they prove who they are ([`super::Accounts`]), written once
//! for both backends: a macro expanded in `sqlite.rs` and `postgres.rs`,
//! because sqlx's pool and row types differ per backend while the SQL does
//! not. What the backends do differently comes from their `SQL`
//! ([`super::dialect::SqlDialect`]); each also brings `begin_write` (its write
//! transaction) and the row readers of `rows.rs`.

/// Defines `impl Accounts` for one backend's store: `$conn` is its
/// connection type.
macro_rules! accounts_store {
    ($store:ty, $conn:ty) => {
        /// Reads a sign-in counter, creating it if new, inside the caller's
        /// transaction, which holds it until it ends (SQLite: the write lock;
        /// PostgreSQL: the upsert's row lock).
        async fn lock_counter(conn: &mut $conn, key: &str) -> StoreResult<sign_in_limits::Counter> {
            let row = sqlx::query(
                "INSERT INTO sign_in_limits (key, window_ends_at, checks, next_check_at) VALUES ($1, 0, 0, 0) \
                 ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING window_ends_at, checks, next_check_at",
            )
            .bind(key)
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable("reading a sign-in count"))?;
            counter_from_row(&row).map_err(unavailable("reading a sign-in count"))
        }

        #[async_trait]
        impl Accounts for $store {
            async fn create_user(
                &self,
                email: &str,
                password_hash: &str,
                is_admin: bool,
                at: i64,
            ) -> StoreResult<User> {
                let row = sqlx::query(
                    "INSERT INTO users (email, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING id, email, password_hash, is_admin",
                )
                .bind(email)
                .bind(password_hash)
                .bind(is_admin)
                .bind(at)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Conflict(format!("a user with the email {email} already exists"))
                    } else {
                        unavailable("creating a user")(e)
                    }
                })?;
                user_from_row(&row).map_err(unavailable("reading a user"))
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                if !SQL.can_hold(email) {
                    return Ok(None);
                }
                sqlx::query("SELECT id, email, password_hash, is_admin FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(unavailable("looking up a user"))?
                    .map(|r| user_from_row(&r))
                    .transpose()
                    .map_err(unavailable("reading a user"))
            }

            async fn user_count(&self) -> StoreResult<i64> {
                sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(unavailable("counting users"))
            }

            async fn create_api_token(&self, user_id: i64, token_hash: &str, label: &str, at: i64) -> StoreResult<()> {
                sqlx::query("INSERT INTO api_tokens (user_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(user_id)
                    .bind(token_hash)
                    .bind(label)
                    .bind(at)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable("creating an API token"))?;
                Ok(())
            }

            async fn user_for_api_token(&self, token_hash: &str) -> StoreResult<Option<User>> {
                sqlx::query(
                    "SELECT u.id, u.email, u.password_hash, u.is_admin \
                     FROM api_tokens t JOIN users u ON u.id = t.user_id \
                     WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up an API token"))?
                .map(|r| user_from_row(&r))
                .transpose()
                .map_err(unavailable("reading a user"))
            }

            async fn add_setup_token(&self, token_hash: &str, at: i64, expires_at: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO setup_tokens (token_hash, created_at, expires_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(token_hash)
                .bind(at)
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .map_err(unavailable("remembering a setup link"))?;
                Ok(())
            }

            async fn setup_token_valid(&self, token_hash: &str, now: i64) -> StoreResult<bool> {
                sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2) \
                     AND NOT EXISTS (SELECT 1 FROM users)",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(unavailable("checking a setup link"))
            }

            async fn create_first_admin(
                &self,
                setup_token_hash: &str,
                email: &str,
                password_hash: &str,
                at: i64,
            ) -> StoreResult<User> {
                // Two browsers (or two nodes) using the link at once cannot
                // both see "no user yet": SQLite's write lock or PostgreSQL's
                // advisory lock serialises them.
                let mut tx = self.begin_write().await?;
                if !SQL.lock_first_admin.is_empty() {
                    sqlx::query(SQL.lock_first_admin)
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable("locking the setup link"))?;
                }
                let known: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2)",
                )
                .bind(setup_token_hash)
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable("checking a setup link"))?;
                let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(unavailable("counting users"))?;
                if users > 0 {
                    return Err(StoreError::Conflict(
                        "an administrator already exists; sign in, or ask them for an account".into(),
                    ));
                }
                if !known {
                    return Err(StoreError::NotFound(
                        "this setup link is not valid or has expired; restart `booboo serve` for a new one".into(),
                    ));
                }
                let row = sqlx::query(
                    "INSERT INTO users (email, password_hash, is_admin, created_at) VALUES ($1, $2, TRUE, $3) \
                     RETURNING id, email, password_hash, is_admin",
                )
                .bind(email)
                .bind(password_hash)
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable("creating the administrator"))?;
                sqlx::query("DELETE FROM setup_tokens")
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable("forgetting setup links"))?;
                let user = user_from_row(&row).map_err(unavailable("reading a user"))?;
                tx.commit().await.map_err(unavailable("committing the administrator"))?;
                Ok(user)
            }

            async fn create_session(&self, token_hash: &str, user_id: i64, session: &Session) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(token_hash)
                .bind(user_id)
                .bind(&session.csrf_token)
                .bind(session.created_at)
                .bind(session.expires_at)
                .execute(&self.pool)
                .await
                .map_err(unavailable("starting a session"))?;
                Ok(())
            }

            async fn session(&self, token_hash: &str, now: i64) -> StoreResult<Option<(User, Session)>> {
                let row = sqlx::query(
                    "SELECT u.id, u.email, u.password_hash, u.is_admin, s.csrf_token, s.created_at, s.expires_at \
                     FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up a session"))?;
                let Some(row) = row else { return Ok(None) };
                let read = || -> Result<(User, Session), sqlx::Error> {
                    let user = user_from_row(&row)?;
                    let session = Session {
                        user_id: user.id,
                        csrf_token: row.try_get("csrf_token")?,
                        created_at: row.try_get("created_at")?,
                        expires_at: row.try_get("expires_at")?,
                    };
                    Ok((user, session))
                };
                read().map(Some).map_err(unavailable("reading a session"))
            }

            async fn end_session(&self, token_hash: &str) -> StoreResult<()> {
                sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await
                    .map_err(unavailable("ending a session"))?;
                Ok(())
            }

            async fn set_password(
                &self,
                user_id: i64,
                password_hash: &str,
                keep_session_hash: &str,
            ) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable("changing a password"))?;
                sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
                    .bind(user_id)
                    .bind(keep_session_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable("ending other sessions"))?;
                sqlx::query("DELETE FROM password_links WHERE user_id = $1 AND used_at IS NULL")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable("voiding password links"))?;
                tx.commit().await.map_err(unavailable("committing a password change"))
            }

            async fn reserve_sign_in(
                &self,
                address_key: &str,
                account_key: &str,
                limits: &SignInLimits,
                now: i64,
            ) -> StoreResult<SignInReservation> {
                // The read, the decision and the write are one step: SQLite's
                // write lock is taken before the counters are read; on
                // PostgreSQL the upserts lock both rows until commit, so another
                // node's request for the same address or account waits and then
                // reads this one's count. Always the address first: requests
                // lock in the same order.
                let mut tx = self.begin_write().await?;
                let address = lock_counter(&mut tx, address_key).await?;
                let account = lock_counter(&mut tx, account_key).await?;
                let (address, account) = match sign_in_limits::reserve(address, account, limits, now) {
                    Ok(counters) => counters,
                    // Nothing was changed; dropping the transaction rolls it back.
                    Err(refused) => return Ok(refused),
                };
                for (key, counter) in [(address_key, address), (account_key, account)] {
                    sqlx::query(
                        "UPDATE sign_in_limits SET window_ends_at = $1, checks = $2, next_check_at = $3 WHERE key = $4",
                    )
                    .bind(counter.window_ends_at)
                    .bind(counter.checks)
                    .bind(counter.next_check_at)
                    .bind(key)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable("counting a sign-in"))?;
                }
                tx.commit().await.map_err(unavailable("committing a sign-in count"))?;
                Ok(SignInReservation::Granted)
            }

            async fn sign_in_succeeded(&self, address_key: &str, account_key: &str) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(&format!(
                    "UPDATE sign_in_limits SET checks = {}(checks - 1, 0) WHERE key = $1",
                    SQL.greatest
                ))
                .bind(address_key)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("giving a sign-in check back"))?;
                sqlx::query("DELETE FROM sign_in_limits WHERE key = $1")
                    .bind(account_key)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable("clearing an account's sign-in count"))?;
                tx.commit().await.map_err(unavailable("committing a sign-in"))
            }

            async fn create_password_link(
                &self,
                token_hash: &str,
                user_id: i64,
                at: i64,
                expires_at: i64,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO password_links (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(token_hash)
                .bind(user_id)
                .bind(at)
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .map_err(unavailable("creating a password link"))?;
                Ok(())
            }

            async fn password_link(&self, token_hash: &str, now: i64) -> StoreResult<Option<User>> {
                sqlx::query(
                    "SELECT u.id, u.email, u.password_hash, u.is_admin \
                     FROM password_links l JOIN users u ON u.id = l.user_id \
                     WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > $2",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable("looking up a password link"))?
                .map(|r| user_from_row(&r))
                .transpose()
                .map_err(unavailable("reading a user"))
            }

            async fn use_password_link(&self, token_hash: &str, password_hash: &str, now: i64) -> StoreResult<User> {
                let mut tx = self.begin_write().await?;
                // Marking it used first makes a second, concurrent use find
                // nothing (on PostgreSQL it waits for this row lock, then finds
                // the link used).
                let user_id: i64 = sqlx::query_scalar(
                    "UPDATE password_links SET used_at = $1 \
                     WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 \
                     RETURNING user_id",
                )
                .bind(now)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable("using a password link"))?
                .ok_or_else(|| StoreError::NotFound(PASSWORD_LINK_GONE.into()))?;
                let row = sqlx::query(
                    "UPDATE users SET password_hash = $1 WHERE id = $2 RETURNING id, email, password_hash, is_admin",
                )
                .bind(password_hash)
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable("setting a password"))?;
                for (sql, doing) in [
                    ("DELETE FROM sessions WHERE user_id = $1", "ending sessions"),
                    ("DELETE FROM password_links WHERE user_id = $1 AND used_at IS NULL", "voiding password links"),
                ] {
                    sqlx::query(sql).bind(user_id).execute(&mut *tx).await.map_err(unavailable(doing))?;
                }
                let user = user_from_row(&row).map_err(unavailable("reading a user"))?;
                tx.commit().await.map_err(unavailable("committing a new password"))?;
                Ok(user)
            }

            async fn prune_expired(&self, now: i64) -> StoreResult<Pruned> {
                // Rows deleted: sessions, links, sign-in counters.
                let mut counts = [0u64; 3];
                for (sql, kind) in [
                    ("DELETE FROM sessions WHERE expires_at <= $1", 0),
                    ("DELETE FROM setup_tokens WHERE expires_at <= $1", 1),
                    ("DELETE FROM password_links WHERE expires_at <= $1", 1),
                    ("DELETE FROM invitations WHERE expires_at <= $1", 1),
                    ("DELETE FROM sign_in_limits WHERE window_ends_at <= $1 AND next_check_at <= $1", 2),
                ] {
                    counts[kind] += sqlx::query(sql)
                        .bind(now)
                        .execute(&self.pool)
                        .await
                        .map_err(unavailable("deleting expired sessions and links"))?
                        .rows_affected();
                }
                Ok(Pruned { sessions: counts[0], links: counts[1], sign_in_limits: counts[2] })
            }

            async fn api_tokens_of(&self, user_id: i64) -> StoreResult<Vec<ApiTokenInfo>> {
                sqlx::query("SELECT id, label, created_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id")
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(unavailable("listing API tokens"))?
                    .iter()
                    .map(|r| {
                        Ok(ApiTokenInfo {
                            id: r.try_get("id")?,
                            label: r.try_get("label")?,
                            created_at: r.try_get("created_at")?,
                            revoked_at: r.try_get("revoked_at")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(unavailable("reading API tokens"))
            }

            async fn revoke_api_token(&self, user_id: i64, token_id: i64, at: i64) -> StoreResult<bool> {
                let changed = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
                )
                .bind(at)
                .bind(token_id)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(unavailable("revoking an API token"))?
                .rows_affected();
                Ok(changed > 0)
            }
        }
    };
}

pub(super) use accounts_store;
