//! Who may see and change what, asked of the store in one place for the
//! dashboard and the API alike. A project, issue or organisation the viewer
//! is not a member of answers as not found, so its existence is not told;
//! a change only an organisation's admins may make is refused to its other
//! members in words that say who can. The store checks roles again inside
//! its own writes; these checks let a page or a response say so first.
//!
//! A refusal is typed here and put into words once at each edge: a page in
//! `web/page_error.rs`, a JSON error in `error.rs`.

use crate::store::{Issue, IssueDetail, Project, Role, Store, StoreError, Viewer};

/// The changes only an organisation's admins may make, checked before the
/// store is asked to make them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOnly {
    /// A project's ingestion keys: adding, revoking, deleting.
    Keys,
    /// The organisation's members and invitations.
    Members,
}

impl AdminOnly {
    /// What a viewer outside the organisation is told is missing: the
    /// project whose keys they asked for, or the organisation itself.
    pub fn missing(self) -> &'static str {
        match self {
            AdminOnly::Keys => "project",
            AdminOnly::Members => "organisation",
        }
    }

    /// What a member who is not an admin is told.
    pub fn refusal(self, org: &str) -> String {
        let what = match self {
            AdminOnly::Keys => "keys",
            AdminOnly::Members => "members",
        };
        format!("only admins of {org} can change its {what}; ask one of them")
    }
}

/// Why a request may not go on.
#[derive(Debug)]
pub enum Refusal {
    /// Not there, or not for this viewer: both answer the same. Names what.
    NotFound(&'static str),
    /// A member of `org` who is not one of its admins.
    NotAdmin {
        org: String,
        change: AdminOnly,
    },
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Refusal {
        Refusal::Store(e)
    }
}

/// A project the viewer is a member of (installation admins see all).
pub async fn project(store: &dyn Store, viewer: Viewer, org: &str, slug: &str) -> Result<Project, Refusal> {
    store.project_for(viewer, org, slug).await?.ok_or(Refusal::NotFound("project"))
}

/// An issue of a project the viewer is a member of.
pub async fn issue(store: &dyn Store, viewer: Viewer, id: i64) -> Result<IssueDetail, Refusal> {
    store.issue_detail(viewer, id).await?.ok_or(Refusal::NotFound("issue"))
}

/// An issue of one project, which the viewer is a member of: what a page
/// opened for that project may change.
pub async fn issue_of_project(store: &dyn Store, viewer: Viewer, project_id: i64, id: i64) -> Result<Issue, Refusal> {
    match store.issue_detail(viewer, id).await? {
        Some(detail) if detail.issue.project_id == project_id => Ok(detail.issue),
        _ => Err(Refusal::NotFound("issue")),
    }
}

/// The viewer's role in an organisation they are a member of.
pub async fn role(store: &dyn Store, viewer: Viewer, org: &str) -> Result<Role, Refusal> {
    store.role_in(viewer, org).await?.ok_or(Refusal::NotFound("organisation"))
}

/// Whether the viewer administers `org`, for pages that show admins more;
/// outside the organisation, simply not.
pub async fn is_admin(store: &dyn Store, viewer: Viewer, org: &str) -> Result<bool, StoreError> {
    Ok(store.role_in(viewer, org).await? == Some(Role::Admin))
}

/// Goes on only for an admin of `org`: a member is refused, a viewer outside
/// it is told that what the change is about does not exist.
pub async fn require_admin(store: &dyn Store, viewer: Viewer, org: &str, change: AdminOnly) -> Result<(), Refusal> {
    match store.role_in(viewer, org).await? {
        Some(Role::Admin) => Ok(()),
        Some(Role::Member) => Err(Refusal::NotAdmin { org: org.to_string(), change }),
        None => Err(Refusal::NotFound(change.missing())),
    }
}
