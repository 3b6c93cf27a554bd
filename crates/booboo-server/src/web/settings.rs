//! Settings: the user's own password and API tokens, and the members of
//! each organisation (admins add, remove and change roles).

use super::account_mail;
use super::auth::{check_new_password, hash_password, verify_password};
use super::form::FormData;
use super::page_error::PageError;
use super::session::SignedIn;
use super::templates::page;
use super::time_text::duration_words;
use crate::access::{self, AdminOnly};
use crate::identifiers::check_email;
use crate::mail::MailError;
use crate::state::AppState;
use crate::store::{Invitation, Role, SignInLimits, SignInReservation};
use crate::{clock, secrets};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

/// E-mailed invitations per inviting account (the counters' "address"
/// slot), and per invited address before it is slowed to one every 20
/// minutes, in an hour (docs/security.md, "Accounts and links").
const INVITATION_LIMITS: SignInLimits = SignInLimits {
    window_ms: 3_600_000,
    checks_per_address: 20,
    checks_per_account: 3,
    slowed_interval_ms: 20 * 60_000,
};

/// What a settings page shows once beside its usual content.
#[derive(Default)]
struct Notice {
    status: Option<StatusCode>,
    error: Option<String>,
    success: Option<String>,
    /// A secret shown this once: a new API token or invitation link.
    secret: Option<String>,
}

async fn settings_page(state: &AppState, me: &SignedIn, notice: Notice) -> Result<Response, PageError> {
    let tokens = state.store.api_tokens_of(me.user.id).await?;
    let organisations = state.store.organisations_for(me.viewer()).await?;
    let opted_out = state.store.alert_email_opt_outs(me.user.id).await?;
    let alert_emails: Vec<_> = state
        .store
        .projects_for(me.viewer())
        .await?
        .into_iter()
        .map(|p| context! { id => p.id, org_slug => p.org_slug, slug => p.slug, wanted => !opted_out.contains(&p.id) })
        .collect();
    let body = page(
        "settings.html",
        context! {
            me => me.me(), tokens, organisations, alert_emails, nav => "settings",
            error => notice.error, success => notice.success, new_token => notice.secret,
        },
    )?;
    Ok((notice.status.unwrap_or(StatusCode::OK), body).into_response())
}

pub async fn show(State(state): State<AppState>, me: SignedIn) -> Result<Response, PageError> {
    settings_page(&state, &me, Notice::default()).await
}

pub async fn change_password(
    State(state): State<AppState>,
    me: SignedIn,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let current = form.secret("current_password").to_string();
    let matches = verify_password(current, Some(me.user.password_hash.clone())).await?;
    let refuse = |message: String| Notice {
        status: Some(StatusCode::UNPROCESSABLE_ENTITY),
        error: Some(message),
        ..Notice::default()
    };
    if !matches {
        return settings_page(&state, &me, refuse("The current password is wrong.".into())).await;
    }
    let password = match check_new_password(&form, "new_password", "new_password_repeat") {
        Ok(p) => p,
        Err(message) => return settings_page(&state, &me, refuse(message)).await,
    };
    let hash = hash_password(password).await?;
    state.store.set_password(me.user.id, &hash, &me.token_hash).await?;
    let notice =
        Notice { success: Some("Password changed. Your other sessions were signed out.".into()), ..Notice::default() };
    settings_page(&state, &me, notice).await
}

pub async fn create_token(State(state): State<AppState>, me: SignedIn, form: FormData) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let label = form.get("label");
    if label.is_empty() || label.chars().count() > 100 {
        let notice = Notice {
            status: Some(StatusCode::UNPROCESSABLE_ENTITY),
            error: Some("Give the token a name of 1 to 100 characters, such as \"CI\" or \"laptop\".".into()),
            ..Notice::default()
        };
        return settings_page(&state, &me, notice).await;
    }
    let token = secrets::new_api_token();
    state.store.create_api_token(me.user.id, &secrets::token_hash(&token), label, clock::now_millis()).await?;
    // Shown on this response only: the store keeps just its hash.
    settings_page(&state, &me, Notice { secret: Some(token), ..Notice::default() }).await
}

pub async fn revoke_token(
    State(state): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let id: i64 = id.parse().map_err(|_| PageError::NotFound("token"))?;
    if !state.store.revoke_api_token(me.user.id, id, clock::now_millis()).await? {
        return Err(PageError::NotFound("token"));
    }
    Ok(Redirect::to("/settings#tokens").into_response())
}

// --- members of an organisation ----------------------------------------------

async fn members_page(state: &AppState, me: &SignedIn, org: &str, notice: Notice) -> Result<Response, PageError> {
    let role = access::role(&*state.store, me.viewer(), org).await?;
    let members = state.store.members_of(me.viewer(), org).await?.ok_or(PageError::NotFound("organisation"))?;
    // Pending invitations are for admins, who can revoke them.
    let invitations = match role {
        Role::Admin => {
            state.store.pending_invitations(me.viewer(), org, clock::now_millis()).await?.unwrap_or_default()
        }
        Role::Member => Vec::new(),
    };
    let body = page(
        "members.html",
        context! {
            me => me.me(), org, members, invitations, is_admin => role == Role::Admin, nav => "settings",
            error => notice.error, success => notice.success, invitation_link => notice.secret,
            my_id => me.user.id, is_instance_admin => me.user.is_admin, mail_enabled => state.mailer.is_some(),
        },
    )?;
    Ok((notice.status.unwrap_or(StatusCode::OK), body).into_response())
}

pub async fn members(
    State(state): State<AppState>,
    me: SignedIn,
    Path(org): Path<String>,
) -> Result<Response, PageError> {
    members_page(&state, &me, &org, Notice::default()).await
}

fn parse_role(text: &str) -> Result<Role, PageError> {
    Role::parse(text).ok_or_else(|| PageError::BadRequest(format!("role must be member or admin, got {text:?}")))
}

pub async fn add_member(
    State(state): State<AppState>,
    me: SignedIn,
    Path(org): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    access::require_admin(&*state.store, me.viewer(), &org, AdminOnly::Members).await?;
    let role = parse_role(form.get("role"))?;
    let refuse = |message: &str| Notice {
        status: Some(StatusCode::UNPROCESSABLE_ENTITY),
        error: Some(message.to_string()),
        ..Notice::default()
    };
    let Ok(email) = check_email(form.get("email")) else {
        return members_page(&state, &me, &org, refuse("Enter an email address such as you@example.com.")).await;
    };
    if let Some(user) = state.store.user_by_email(&email).await? {
        state.store.set_membership(&org, user.id, role).await?;
        let notice = Notice {
            success: Some(format!("{email} already had an account and is now {} of {org}.", article(role))),
            ..Notice::default()
        };
        return members_page(&state, &me, &org, notice).await;
    }
    // No account has this email: only an invitation can create one, with a
    // password its owner chooses.
    let delivery = invitation_delivery(&me, state.mailer.is_some());
    if let InvitationDelivery::Unavailable = delivery {
        let message = format!(
            "{email} has no booboo account, and only instance administrators create accounts. Ask one to invite \
             {email} from this page or to run `booboo user create --email {email}`; then add them here."
        );
        return members_page(&state, &me, &org, refuse(&message)).await;
    }
    if state.mailer.is_some() {
        // Anyone may create an organisation and so invite: the limits keep
        // booboo's mail server from carrying spam.
        let sender_key = format!("invite-sender:{}", me.user.id);
        let recipient_key = format!("invite-recipient:{}", secrets::token_hash(&email));
        let reservation =
            state.store.reserve_sign_in(&sender_key, &recipient_key, &INVITATION_LIMITS, clock::now_millis()).await?;
        let wait = match reservation {
            SignInReservation::Granted => None,
            SignInReservation::AddressLimited { retry_after_ms } => Some(format!(
                "You sent many invitations within the hour. Try again in {}.",
                duration_words(retry_after_ms)
            )),
            SignInReservation::AccountSlowed { retry_after_ms } => Some(format!(
                "{email} was sent several invitations within the hour. Try again in {}.",
                duration_words(retry_after_ms)
            )),
        };
        if let Some(message) = wait {
            tracing::info!(%email, inviter = %me.user.email, "invitation e-mail refused: too many within the hour");
            let notice =
                Notice { status: Some(StatusCode::TOO_MANY_REQUESTS), error: Some(message), ..Notice::default() };
            return members_page(&state, &me, &org, notice).await;
        }
    }
    let token = secrets::new_session_token();
    let now = clock::now_millis();
    let invitation = Invitation {
        org_slug: org.clone(),
        email: email.clone(),
        role,
        expires_at: now + state.config.link_lifetime_ms(),
    };
    state.store.create_invitation(&secrets::token_hash(&token), &invitation, now).await?;
    let link = format!("{}/invitations/{token}", state.config.public_url);
    let days = state.config.link_lifetime_days;
    let sent = match &state.mailer {
        Some(mailer) => {
            let mail = account_mail::invitation(&state, &email, &link, &me.user.email, &org, article(role))
                .map_err(PageError::Internal)?;
            let sent = mailer.send(mail).await;
            match &sent {
                Ok(()) => tracing::info!(%email, %org, "invitation e-mailed"),
                Err(error) => tracing::warn!(%email, %org, %error, "invitation e-mail not sent"),
            }
            Some(sent)
        }
        None => None,
    };
    let notice = match (delivery, sent) {
        (InvitationDelivery::Email, Some(Ok(()))) => Notice {
            success: Some(format!(
                "An invitation to join {org} as {} is on its way to {email}. Its link works once, for {days} days.",
                article(role)
            )),
            ..Notice::default()
        },
        (InvitationDelivery::Email, Some(Err(error))) => Notice {
            // The link is not shown: only its owner may choose the password.
            status: Some(mail_failure_status(&error)),
            error: Some(format!(
                "The invitation to {email} could not be e-mailed: the mail server did not take it. Try again in a \
                 while; an instance administrator finds the reason in the server log."
            )),
            ..Notice::default()
        },
        (_, Some(Ok(()))) => Notice {
            success: Some(format!(
                "An invitation to join {org} as {} was e-mailed to {email}. Its link is below as well; give it to \
                 {email} only: whoever opens it chooses the password of the account. It works once, for {days} days.",
                article(role)
            )),
            secret: Some(link),
            ..Notice::default()
        },
        (_, Some(Err(error))) => Notice {
            status: Some(mail_failure_status(&error)),
            error: Some(format!(
                "The invitation could not be e-mailed ({error}). Give this link to {email} only: whoever opens it \
                 chooses the password of the account and joins {org} as {}. It works once, for {days} days.",
                article(role)
            )),
            secret: Some(link),
            ..Notice::default()
        },
        (_, None) => Notice {
            success: Some(format!(
                "Give this link to {email} only: whoever opens it chooses the password of the account and joins {org} \
                 as {}. It works once, for {days} days.",
                article(role)
            )),
            secret: Some(link),
            ..Notice::default()
        },
    };
    members_page(&state, &me, &org, notice).await
}

/// How an invitation to someone without an account reaches them. Without
/// e-mail the link can only be shown on screen, and only to an instance
/// administrator, who may create accounts anyway: an organisation admin
/// shown the link could open it, choose the password and later sign in as
/// that person wherever they are added. With e-mail the link goes to the
/// invited address, which organisation admins may then use too; they never
/// see the link.
enum InvitationDelivery {
    /// E-mailed when e-mail is configured, and shown.
    ShowToInstanceAdmin,
    /// E-mailed only.
    Email,
    Unavailable,
}

fn invitation_delivery(me: &SignedIn, mail_configured: bool) -> InvitationDelivery {
    match (me.user.is_admin, mail_configured) {
        (true, _) => InvitationDelivery::ShowToInstanceAdmin,
        (false, true) => InvitationDelivery::Email,
        (false, false) => InvitationDelivery::Unavailable,
    }
}

/// A mail server that refused the message for good is a problem with what
/// was asked (422); one that could not be reached may work later (503).
fn mail_failure_status(error: &MailError) -> StatusCode {
    match error {
        MailError::Permanent(_) => StatusCode::UNPROCESSABLE_ENTITY,
        MailError::Temporary(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Admin => "an admin",
        Role::Member => "a member",
    }
}

/// An organisation keeps at least one admin, or nobody could manage it.
async fn check_not_last_admin(state: &AppState, me: &SignedIn, org: &str, user_id: i64) -> Result<(), PageError> {
    let members = state.store.members_of(me.viewer(), org).await?.ok_or(PageError::NotFound("organisation"))?;
    let member = members.iter().find(|m| m.user_id == user_id).ok_or(PageError::NotFound("member"))?;
    let admins = members.iter().filter(|m| m.role == Role::Admin).count();
    if member.role == Role::Admin && admins == 1 {
        return Err(PageError::BadRequest(format!(
            "{} is the only admin of {org}; make someone else an admin first",
            member.email
        )));
    }
    Ok(())
}

pub async fn change_role(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, user)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    access::require_admin(&*state.store, me.viewer(), &org, AdminOnly::Members).await?;
    let user_id: i64 = user.parse().map_err(|_| PageError::NotFound("member"))?;
    let role = parse_role(form.get("role"))?;
    if role == Role::Member {
        check_not_last_admin(&state, &me, &org, user_id).await?;
    } else {
        let members = state.store.members_of(me.viewer(), &org).await?.unwrap_or_default();
        if !members.iter().any(|m| m.user_id == user_id) {
            return Err(PageError::NotFound("member"));
        }
    }
    state.store.set_membership(&org, user_id, role).await?;
    Ok(Redirect::to(&format!("/settings/orgs/{org}")).into_response())
}

pub async fn remove_member(
    State(state): State<AppState>,
    me: SignedIn,
    Path((org, user)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    access::require_admin(&*state.store, me.viewer(), &org, AdminOnly::Members).await?;
    let user_id: i64 = user.parse().map_err(|_| PageError::NotFound("member"))?;
    check_not_last_admin(&state, &me, &org, user_id).await?;
    if !state.store.remove_membership(&org, user_id).await? {
        return Err(PageError::NotFound("member"));
    }
    let target = if user_id == me.user.id && !me.user.is_admin {
        "/projects".to_string()
    } else {
        format!("/settings/orgs/{org}")
    };
    Ok(Redirect::to(&target).into_response())
}

/// Revokes the organisation's pending invitations to one address: their
/// links stop working at once.
pub async fn revoke_invitation(
    State(state): State<AppState>,
    me: SignedIn,
    Path(org): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    access::require_admin(&*state.store, me.viewer(), &org, AdminOnly::Members).await?;
    let email = check_email(form.get("email")).map_err(PageError::BadRequest)?;
    let notice = if state.store.revoke_invitation(me.viewer(), &org, &email).await? {
        Notice {
            success: Some(format!("The invitation to {email} is revoked: its link no longer works.")),
            ..Notice::default()
        }
    } else {
        Notice {
            status: Some(StatusCode::NOT_FOUND),
            error: Some(format!("There is no pending invitation to {email}: it was used, revoked or has expired.")),
            ..Notice::default()
        }
    };
    members_page(&state, &me, &org, notice).await
}

/// Stops or resumes alert e-mails of one project for the signed-in member
/// (rules that e-mail "the organisation's members" skip them).
pub async fn alert_emails(
    State(state): State<AppState>,
    me: SignedIn,
    Path(project): Path<String>,
    form: FormData,
) -> Result<Response, PageError> {
    me.check_csrf(&form)?;
    let project_id: i64 = project.parse().map_err(|_| PageError::NotFound("project"))?;
    let project = state
        .store
        .projects_for(me.viewer())
        .await?
        .into_iter()
        .find(|p| p.id == project_id)
        .ok_or(PageError::NotFound("project"))?;
    let stop = match form.get("alert_emails") {
        "stop" => true,
        "resume" => false,
        other => return Err(PageError::BadRequest(format!("alert_emails must be stop or resume, got {other:?}"))),
    };
    state.store.set_alert_email_opt_out(me.user.id, project.id, stop).await?;
    let what = if stop { "no longer get" } else { "get again" };
    let notice = Notice {
        success: Some(format!("You {what} alert e-mails of {}/{}.", project.org_slug, project.slug)),
        ..Notice::default()
    };
    settings_page(&state, &me, notice).await
}
