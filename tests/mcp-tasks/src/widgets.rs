//! The ChatKit widgets and `_meta` entries the widget tools send (see
//! `specs/widgets.md`): plain JSON builders, nothing here knows about MCP.
//!
//! A result's `_meta` is for the interface only (it never reaches the model):
//! - `chatkit/widget`: a widget root (`Card`, `ListView` or `Basic`);
//! - `chatkit/copy_text`: the text the item's copy button copies;
//! - `chatkit/client_effect`: `{"name", "data"?}`, a client effect event;
//! - `chatkit/notice`: `{"level", "message", "title"?}`, a notice event.

use rmcp::model::{MetaObject, NotificationMetaObject};
use serde_json::{json, Map, Value};

use crate::store::{Task, TaskStatus};

pub const WIDGET: &str = "chatkit/widget";
pub const COPY_TEXT: &str = "chatkit/copy_text";
pub const CLIENT_EFFECT: &str = "chatkit/client_effect";
pub const NOTICE: &str = "chatkit/notice";

/// A result `_meta` holding these entries.
pub fn meta<const N: usize>(entries: [(&str, Value); N]) -> MetaObject {
    MetaObject::from(object(entries))
}

/// A progress notification `_meta` holding one widget state.
pub fn progress_meta(state: Value) -> NotificationMetaObject {
    NotificationMetaObject::from(object([(WIDGET, state)]))
}

fn object<const N: usize>(entries: [(&str, Value); N]) -> Map<String, Value> {
    entries
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

/// The card of one task: title, status badge, description, and its actions
/// (Complete only while the task is not done).
pub fn task_card(task: &Task) -> Value {
    let done = task.status == TaskStatus::Done;
    let mut buttons = Vec::with_capacity(2);
    if !done {
        buttons.push(json!({
            "type": "Button",
            "label": "Complete",
            "onClickAction": {"type": "tasks.complete", "payload": {"task_id": task.id}},
        }));
    }
    buttons.push(json!({
        "type": "Button",
        "label": "Delete",
        "style": "secondary",
        "onClickAction": {"type": "tasks.delete", "payload": {"task_id": task.id}},
    }));
    json!({
        "type": "Card",
        "id": card_id(&task.id),
        "children": [
            {"type": "Row", "children": [
                {"type": "Title", "value": task.title},
                {"type": "Spacer"},
                {
                    "type": "Badge",
                    "label": task.status.as_str(),
                    "color": if done { "success" } else { "secondary" },
                },
            ]},
            {"type": "Text", "value": task.description.as_deref().unwrap_or("")},
            {"type": "Row", "children": buttons},
        ],
    })
}

/// What replaces a task's card once the task is deleted.
pub fn deleted_card(task_id: &str) -> Value {
    json!({
        "type": "Card",
        "id": card_id(task_id),
        "children": [{"type": "Text", "value": "Task deleted."}],
    })
}

fn card_id(task_id: &str) -> String {
    format!("task-{task_id}")
}

/// One state of `draft_report`'s card: the first `words` words (`w0 w1 …`)
/// while streaming; when `last`, every word, not streaming, and a `final`
/// badge (a new node, so a root change rather than a text delta) and a Redo
/// button.
pub fn report_card(topic: &str, words: usize, last: bool) -> Value {
    let body: Vec<String> = (0..words).map(|i| format!("w{i}")).collect();
    let mut children = vec![
        json!({"type": "Title", "value": format!("Report: {topic}")}),
        json!({"type": "Markdown", "id": "body", "value": body.join(" "), "streaming": !last}),
    ];
    if last {
        children.push(json!({"type": "Badge", "label": "final"}));
        // Drafting again is an action (`report.redo`), its progress updating this card.
        children.push(json!({"type": "Button", "label": "Redo", "onClickAction":
            {"type": "report.redo", "payload": {"topic": topic, "steps": words}}}));
    }
    json!({"type": "Card", "id": "report", "children": children})
}

/// `highlight_task`'s client effect.
pub fn highlight_effect(task_id: &str) -> Value {
    json!({"name": "highlight_task", "data": {"task_id": task_id}})
}

/// `highlight_task`'s notice.
pub fn highlight_notice() -> Value {
    json!({"level": "info", "message": "Task highlighted.", "title": "Tasks"})
}

/// A widget no client can draw (a node without a type), for the rejection path.
pub fn bad_widget() -> Value {
    json!({"type": "Card", "children": [{"value": "a node without a type"}]})
}

/// The `/widgets` board: one row per task, a click completes it.
pub fn task_board(tasks: &[Task]) -> Value {
    let rows: Vec<Value> = if tasks.is_empty() {
        vec![json!({"type": "ListViewItem", "children": [{"type": "Text", "value": "No tasks."}]})]
    } else {
        tasks
            .iter()
            .map(|task| {
                json!({
                    "type": "ListViewItem",
                    "id": format!("row-{}", task.id),
                    "children": [
                        {"type": "Text", "value": task.title},
                        {"type": "Badge", "label": task.status.as_str()},
                    ],
                    "onClickAction": {"type": "tasks.complete", "payload": {"task_id": task.id}},
                })
            })
            .collect()
    };
    json!({"type": "ListView", "children": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(status: TaskStatus, description: Option<&str>) -> Task {
        Task {
            id: "task_1".into(),
            title: "Buy milk".into(),
            description: description.map(str::to_owned),
            status,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn task_card_offers_complete_only_while_open() {
        let open = task_card(&task(TaskStatus::Open, None));
        assert_eq!(open["id"], "task-task_1");
        assert_eq!(open["children"][0]["children"][2]["label"], "open");
        assert_eq!(open["children"][0]["children"][2]["color"], "secondary");
        assert_eq!(open["children"][1], json!({"type": "Text", "value": ""}));
        let buttons = open["children"][2]["children"].as_array().unwrap();
        assert_eq!(buttons.len(), 2);
        assert_eq!(
            buttons[0]["onClickAction"],
            json!({"type": "tasks.complete", "payload": {"task_id": "task_1"}})
        );

        let done = task_card(&task(TaskStatus::Done, Some("2 l")));
        assert_eq!(done["children"][0]["children"][2]["color"], "success");
        assert_eq!(done["children"][1]["value"], "2 l");
        assert_eq!(
            done["children"][2]["children"],
            json!([{
                "type": "Button", "label": "Delete", "style": "secondary",
                "onClickAction": {"type": "tasks.delete", "payload": {"task_id": "task_1"}},
            }])
        );
    }

    #[test]
    fn report_states_grow_then_end_with_a_badge() {
        assert_eq!(
            report_card("x", 1, false),
            json!({"type": "Card", "id": "report", "children": [
                {"type": "Title", "value": "Report: x"},
                {"type": "Markdown", "id": "body", "value": "w0", "streaming": true},
            ]})
        );
        let last = report_card("x", 3, true);
        assert_eq!(last["children"][1]["value"], "w0 w1 w2");
        assert_eq!(last["children"][1]["streaming"], false);
        assert_eq!(
            last["children"][2],
            json!({"type": "Badge", "label": "final"})
        );
    }

    #[test]
    fn board_has_a_placeholder_row_when_empty() {
        assert_eq!(
            task_board(&[]),
            json!({"type": "ListView", "children": [
                {"type": "ListViewItem", "children": [{"type": "Text", "value": "No tasks."}]},
            ]})
        );
        let board = task_board(&[task(TaskStatus::Done, None)]);
        assert_eq!(board["children"][0]["id"], "row-task_1");
        assert_eq!(board["children"][0]["children"][1]["label"], "done");
    }
}
