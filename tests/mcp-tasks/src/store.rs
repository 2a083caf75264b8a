//! The task lists, kept in memory and partitioned by user (the JWT `sub`).
//!
//! Nothing here knows about MCP or HTTP: each operation takes the caller's own
//! [`TaskList`] and returns either a value to serialise or a [`ToolError`] whose
//! message is what the reference `mcp_tasks.py` raises for the same input.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use rmcp::schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest title accepted, in characters (as the reference server counts them).
pub const MAX_TITLE: usize = 500;
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION: usize = 5000;

/// Whether a task still needs doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(crate = "rmcp::schemars", inline)]
pub enum TaskStatus {
    Open,
    Done,
}

impl TaskStatus {
    /// The status as the tools write it (`"open"`, `"done"`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Done => "done",
        }
    }
}

/// One task, serialised exactly as the tools return it.
#[derive(Clone, Debug, Serialize)]
pub struct Task {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub status: TaskStatus,
    pub created_at: String,
    pub updated_at: String,
}

/// A failure the caller may read and fix: it becomes an MCP tool error
/// (`isError: true`), never a JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolError(pub String);

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every user's tasks. A user only ever reaches their own list, so knowing
/// another user's task id is useless.
#[derive(Default)]
pub struct TaskStore {
    by_user: Mutex<HashMap<String, TaskList>>,
}

impl TaskStore {
    /// Runs `op` on the list of `sub`, creating it empty on first use. The
    /// lock is held for the whole operation, so each tool call is atomic.
    pub fn with_user<R>(&self, sub: &str, op: impl FnOnce(&mut TaskList) -> R) -> R {
        let mut by_user = self.by_user.lock().unwrap_or_else(PoisonError::into_inner);
        op(by_user.entry(sub.to_owned()).or_default())
    }
}

/// One user's tasks, in creation order (the order `list_tasks` reports).
#[derive(Default)]
pub struct TaskList {
    tasks: Vec<Task>,
}

impl TaskList {
    pub fn add(&mut self, title: &str, description: Option<&str>) -> Result<Task, ToolError> {
        let title = check_title(title)?;
        let description = check_description(description)?;
        let stamp = now_iso();
        let task = Task {
            id: new_task_id(),
            title,
            description,
            status: TaskStatus::Open,
            created_at: stamp.clone(),
            updated_at: stamp,
        };
        self.tasks.push(task.clone());
        Ok(task)
    }

    pub fn list(&self, status: Option<TaskStatus>) -> Vec<Task> {
        self.tasks
            .iter()
            .filter(|task| status.is_none_or(|wanted| task.status == wanted))
            .cloned()
            .collect()
    }

    /// Changes the given fields. Unlike the reference server, every field is
    /// validated before any is written, so a rejected update changes nothing.
    pub fn update(
        &mut self,
        task_id: &str,
        title: Option<&str>,
        description: Option<&str>,
        status: Option<TaskStatus>,
    ) -> Result<Task, ToolError> {
        let index = self.position(task_id)?;
        let title = title.map(check_title).transpose()?;
        let description = check_description(description)?;
        let task = &mut self.tasks[index];
        if let Some(title) = title {
            task.title = title;
        }
        if description.is_some() {
            task.description = description;
        }
        if let Some(status) = status {
            task.status = status;
        }
        task.updated_at = now_iso();
        Ok(task.clone())
    }

    pub fn get(&self, task_id: &str) -> Result<Task, ToolError> {
        let index = self.position(task_id)?;
        Ok(self.tasks[index].clone())
    }

    pub fn complete(&mut self, task_id: &str) -> Result<Task, ToolError> {
        let index = self.position(task_id)?;
        let task = &mut self.tasks[index];
        task.status = TaskStatus::Done;
        task.updated_at = now_iso();
        Ok(task.clone())
    }

    pub fn delete(&mut self, task_id: &str) -> Result<(), ToolError> {
        let index = self.position(task_id)?;
        self.tasks.remove(index);
        Ok(())
    }

    fn position(&self, task_id: &str) -> Result<usize, ToolError> {
        self.tasks
            .iter()
            .position(|task| task.id == task_id)
            .ok_or_else(|| ToolError(format!("no task with id {}", py_repr(task_id))))
    }
}

fn check_title(title: &str) -> Result<String, ToolError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(ToolError("title must not be empty".into()));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(ToolError(format!(
            "title longer than {MAX_TITLE} characters"
        )));
    }
    Ok(title.to_owned())
}

fn check_description(description: Option<&str>) -> Result<Option<String>, ToolError> {
    match description {
        Some(text) if text.chars().count() > MAX_DESCRIPTION => Err(ToolError(format!(
            "description longer than {MAX_DESCRIPTION} characters"
        ))),
        other => Ok(other.map(str::to_owned)),
    }
}

/// `task_` and 12 hex digits, like the reference server's `uuid4().hex[:12]`.
fn new_task_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("task_{}", &hex[..12])
}

/// UTC now in ISO 8601 with an explicit `+00:00` offset, as Python's
/// `datetime.now(timezone.utc).isoformat()` writes it.
fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}

/// Python's `repr()` of a string, so "no task with id 'x'" reads the same as
/// the reference server's message.
fn py_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_repr("task_1"), "'task_1'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr("x\ny\\"), "'x\\ny\\\\'");
    }

    #[test]
    fn rejected_update_changes_nothing() {
        let mut list = TaskList::default();
        let task = list.add(" Buy milk ", None).unwrap();
        assert_eq!(task.title, "Buy milk");
        let long = "x".repeat(MAX_DESCRIPTION + 1);
        let err = list
            .update(&task.id, Some("New"), Some(&long), None)
            .unwrap_err();
        assert_eq!(err.0, "description longer than 5000 characters");
        assert_eq!(list.list(None)[0].title, "Buy milk");
    }

    #[test]
    fn titles_are_checked() {
        let mut list = TaskList::default();
        assert_eq!(
            list.add("   ", None).unwrap_err().0,
            "title must not be empty"
        );
        assert_eq!(
            list.add(&"é".repeat(MAX_TITLE + 1), None).unwrap_err().0,
            "title longer than 500 characters"
        );
        assert!(list.add(&"é".repeat(MAX_TITLE), None).is_ok());
    }
}
