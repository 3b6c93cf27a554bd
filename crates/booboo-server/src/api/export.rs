//! A project as JSON Lines, for `GET /api/v1/projects/{org}/{project}/export`
//! and `booboo export`: a `project` line, its issues, its stored events (each
//! in the API's own shape, with a `type` field), then an `end` line with the
//! counts. The export is cut at the moment it starts, so events arriving
//! meanwhile neither appear half-way nor shift pages; a stream without its
//! `end` line was cut short. Pages are read one at a time, so memory stays
//! flat however large the project.

use super::{event_json, issue_json, project_json};
use crate::clock;
use crate::store::{ExportMarks, Project, Store, StoreError};
use booboo_core::timestamp;
use serde_json::{json, Value};
use std::sync::Arc;

/// Rows read per query.
const PAGE: i64 = 200;

enum Phase {
    Start,
    Issues { after: i64 },
    Events { after: i64 },
    End,
    Done,
}

pub struct Export {
    store: Arc<dyn Store>,
    project: Project,
    marks: ExportMarks,
    phase: Phase,
    pub issues: u64,
    pub events: u64,
}

impl Export {
    pub async fn start(store: Arc<dyn Store>, project: Project) -> Result<Export, StoreError> {
        let marks = store.export_marks(project.id).await?;
        Ok(Export { store, project, marks, phase: Phase::Start, issues: 0, events: 0 })
    }

    /// The next lines, or `None` once the `end` line was given.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        match self.phase {
            Phase::Start => {
                let mut project = project_json(&self.project);
                tag(&mut project, "project");
                if let Value::Object(map) = &mut project {
                    let now = timestamp::format(timestamp::from_unix_millis(clock::now_millis()));
                    map.insert("exported_at".into(), json!(now));
                }
                line(&mut out, &project);
                self.phase = Phase::Issues { after: 0 };
            }
            Phase::Issues { after } => {
                let page = self.store.export_issues(self.project.id, after, self.marks.last_issue_id, PAGE).await?;
                self.phase = match page.last() {
                    Some(last) => Phase::Issues { after: last.id },
                    None => Phase::Events { after: 0 },
                };
                for issue in &page {
                    let mut value = issue_json(issue);
                    tag(&mut value, "issue");
                    line(&mut out, &value);
                }
                self.issues += page.len() as u64;
            }
            Phase::Events { after } => {
                let page = self.store.export_events(self.project.id, after, self.marks.last_event_row, PAGE).await?;
                self.phase = match page.last() {
                    Some((row, _)) => Phase::Events { after: *row },
                    None => Phase::End,
                };
                for (_, event) in &page {
                    let mut value = event_json(event);
                    tag(&mut value, "event");
                    line(&mut out, &value);
                }
                self.events += page.len() as u64;
            }
            Phase::End => {
                line(&mut out, &json!({ "type": "end", "issues": self.issues, "events": self.events }));
                self.phase = Phase::Done;
            }
            Phase::Done => return Ok(None),
        }
        Ok(Some(out))
    }
}

/// The line a stream ends with when reading failed after it began (the
/// status was already sent): no `end` line follows.
pub fn error_line(error: &StoreError) -> Vec<u8> {
    let mut out = Vec::new();
    line(&mut out, &json!({ "type": "error", "detail": format!("the export stopped: {error}") }));
    out
}

fn tag(value: &mut Value, kind: &str) {
    if let Value::Object(map) = value {
        map.shift_insert(0, "type".into(), json!(kind));
    }
}

fn line(out: &mut Vec<u8>, value: &Value) {
    // Serialising a Value cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
    out.push(b'\n');
}
