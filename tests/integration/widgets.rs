//! Widgets and actions over MCP (`specs/widgets.md`) against the real `mcp-tasks` rmcp
//! server: widgets from `_meta`, from a `.widget` template and from a result-mode server;
//! streamed widgets; client effects and notices; actions that replace, respond or both;
//! sync actions while a reply streams; forged actions; a tool failing mid-action. Every
//! event and body is checked by the official SDK's types (the harness does it).

use serde_json::{json, Value};

use crate::harness::sdk;
use crate::harness::*;

fn widget_fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/widgets")
        .join(name)
        .display()
        .to_string()
}

/// The `tasks` server (widgets in `_meta`), the `board` server (widgets are the results),
/// the task list template, and the three actions the task card and list send.
fn config(mcp: &McpServer) -> String {
    format!(
        r#"
[[mcp.servers]]
name = "tasks"
url = "{tasks}"
timeout_secs = 5
forward_user_token = true

[[mcp.servers]]
name = "board"
url = "http://{addr}/widgets"
timeout_secs = 5
forward_user_token = true
widgets = "result"

[[widgets]]
tool = "tasks__list_tasks"
template = "{template}"

[[widget_actions]]
type = "tasks.complete"
tool = "tasks__complete_task_card"

[[widget_actions]]
type = "tasks.delete"
tool = "tasks__delete_task_card"
then = "both"

[[widget_actions]]
type = "tasks.add"
tool = "tasks__add_task"
then = "respond"

[[widget_actions]]
type = "report.redo"
tool = "tasks__draft_report"
"#,
        tasks = mcp.url(),
        addr = mcp.addr,
        template = widget_fixture("task_list.widget"),
    )
}

fn server_with_widgets(mcp: &McpServer) -> TestServer {
    TestServer::start_with_config(&config(mcp), &[("CHATKIT__TITLES__ENABLED", "false")])
}

/// Adds a task through the model (`add task …`); its id, from the answer (`Done: <json>`).
async fn add_task(
    server: &TestServer,
    token: &str,
    thread: Option<&str>,
    title: &str,
) -> (String, String) {
    let text = format!("add task {title}");
    let stream = match thread {
        None => answered_thread(server, token, &text).await,
        Some(thread_id) => {
            let stream = add_message(server, token, thread_id, &text).await;
            stream.assert_answered();
            stream
        }
    };
    let answer = stream.answer_text();
    let task: Value = serde_json::from_str(answer.strip_prefix("Done: ").unwrap()).unwrap();
    (stream.thread_id(), task["id"].as_str().unwrap().to_string())
}

/// A widget server with alice's thread holding one task she added through the model.
struct WithTask {
    mcp: McpServer,
    server: TestServer,
    alice: String,
    thread_id: String,
    task_id: String,
}

async fn with_a_task(title: &str) -> WithTask {
    let mcp = McpServer::start(&[]);
    let server = server_with_widgets(&mcp);
    let alice = token("alice");
    let (thread_id, task_id) = add_task(&server, &alice, None, title).await;
    WithTask {
        mcp,
        server,
        alice,
        thread_id,
        task_id,
    }
}

/// The widget items announced done in `stream`.
fn widgets_of(stream: &Stream) -> Vec<Value> {
    stream
        .done_items()
        .into_iter()
        .filter(|i| i["type"] == "widget")
        .collect()
}

/// Every string value of the tree under `key` (labels, values), depth first.
fn texts(node: &Value, key: &str, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(s)) = map.get(key) {
                out.push(s.clone());
            }
            for value in map.values() {
                texts(value, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| texts(v, key, out)),
        _ => {}
    }
}

fn labels(widget: &Value) -> Vec<String> {
    let mut out = Vec::new();
    texts(widget, "label", &mut out);
    out
}

/// Shows the task card of `task_id` in `thread_id`; the widget item.
async fn show_task(server: &TestServer, token: &str, thread_id: &str, task_id: &str) -> Value {
    let text = format!(r#"call show_task {{"task_id":"{task_id}"}}"#);
    let stream = add_message(server, token, thread_id, &text).await;
    stream.assert_answered();
    let widgets = widgets_of(&stream);
    assert_eq!(widgets.len(), 1, "{:?}", stream.kinds());
    widgets[0].clone()
}

fn action(thread_id: &str, item_id: &str, kind: &str, payload: Value) -> Value {
    json!({"thread_id": thread_id, "item_id": item_id, "action": {"type": kind, "payload": payload}})
}

/// The stored items of a thread (hidden ones are never listed).
async fn stored(server: &TestServer, token: &str, thread_id: &str) -> Vec<Value> {
    page_data(&server.items_asc(token, thread_id).await).clone()
}

#[tokio::test]
async fn a_widget_in_the_results_meta_is_shown_stored_and_given_to_the_model() {
    let WithTask {
        mcp: _mcp,
        server,
        alice,
        thread_id,
        task_id,
    } = with_a_task("Water the plants").await;

    let text = format!(r#"call show_task {{"task_id":"{task_id}"}}"#);
    let stream = add_message(&server, &alice, &thread_id, &text).await;
    stream.assert_answered();
    // The widget comes as one done item, after the user message and before the follow-up.
    let done: Vec<String> = stream
        .done_items()
        .iter()
        .map(|i| i["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(done, ["user_message", "widget", "assistant_message"]);
    let widget = &widgets_of(&stream)[0];
    assert_eq!(widget["widget"]["type"], "Card");
    assert_eq!(widget["copy_text"], "Water the plants");
    assert_eq!(labels(&widget["widget"]), ["open", "Complete", "Delete"]);
    assert!(widget["id"].as_str().unwrap().starts_with("msg_"));
    // The model got the tool's text in the turn, never its _meta.
    let request = shared()
        .mock
        .last_request_where("with show_task's result", |r| {
            last_message(r)["role"] == "tool"
                && r.to_string().contains(&task_id)
                && r.to_string().contains("show_task")
        });
    let tool_text = last_message(&request)["content"].as_str().unwrap();
    assert!(
        tool_text.contains("Water the plants") && !tool_text.contains("chatkit/"),
        "{tool_text}"
    );
    // Stored, in order, and shown to the model on the next turn as the official bridge does.
    let items = stored(&server, &alice, &thread_id).await;
    assert!(items.iter().any(|i| i == widget));
    add_message(&server, &alice, &thread_id, "and now?")
        .await
        .assert_answered();
    let next = shared().mock.last_request_containing("and now?");
    let expected = format!(
        "The following graphical UI widget (id: {}) was displayed to the user:{}",
        widget["id"].as_str().unwrap(),
        widget["widget"]
    );
    let messages = next["messages"].as_array().unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m["role"] == "user" && m["content"] == expected.as_str()),
        "{messages:?}"
    );
}

#[tokio::test]
async fn a_template_renders_the_results_json_and_a_result_server_gives_its_result() {
    let WithTask {
        mcp: _mcp,
        server,
        alice,
        thread_id,
        task_id: _,
    } = with_a_task("First").await;
    add_task(&server, &alice, Some(&thread_id), "Second").await;

    // list_tasks answers JSON text; the configured template makes it a card with a form.
    let listed = add_message(&server, &alice, &thread_id, "list tasks").await;
    listed.assert_answered();
    let card = &widgets_of(&listed)[0]["widget"];
    assert_eq!(card["id"], "task-list");
    let mut values = Vec::new();
    texts(card, "value", &mut values);
    assert!(values.contains(&"Tasks (2)".to_string()), "{values:?}");
    assert!(values.contains(&"First".to_string()) && values.contains(&"Second".to_string()));
    assert!(
        card.to_string()
            .contains(r#""onSubmitAction":{"type":"tasks.add"}"#),
        "{card}"
    );

    // The board server's tools return the widget root itself.
    let board = add_message(&server, &alice, &thread_id, "call task_board").await;
    board.assert_answered();
    let list = &widgets_of(&board)[0]["widget"];
    assert_eq!(list["type"], "ListView");
    assert_eq!(list["children"].as_array().unwrap().len(), 2);
    assert_eq!(list["children"][0]["type"], "ListViewItem");
}

#[tokio::test]
async fn an_invalid_widget_is_dropped_the_effects_and_notices_are_shown_not_stored() {
    let WithTask {
        mcp: _mcp,
        server,
        alice,
        thread_id,
        task_id,
    } = with_a_task("Check").await;

    let bad = add_message(&server, &alice, &thread_id, "call bad_widget").await;
    bad.assert_answered();
    assert!(widgets_of(&bad).is_empty(), "{:?}", bad.kinds());
    assert!(
        bad.answer_text().starts_with("Done: "),
        "the turn went on with text"
    );
    assert_eq!(server.log_count("widget rejected"), 1);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"chatkit_widgets_total{outcome="rejected",source="meta"} 1"#),
        "{metrics}"
    );

    let text = format!(r#"call highlight_task {{"task_id":"{task_id}"}}"#);
    let shown = add_message(&server, &alice, &thread_id, &text).await;
    shown.assert_answered();
    let kinds = shown.kinds();
    let effect = kinds
        .iter()
        .position(|k| k == "client_effect")
        .expect("an effect");
    let notice = kinds.iter().position(|k| k == "notice").expect("a notice");
    let answer = kinds.iter().rposition(|k| k == "thread.item.done").unwrap();
    assert!(effect < notice && notice < answer, "{kinds:?}");
    assert_eq!(
        shown.events[effect],
        json!({"type": "client_effect", "name": "highlight_task", "data": {"task_id": task_id}})
    );
    assert_eq!(
        shown.events[notice],
        json!({"type": "notice", "level": "info", "message": "Task highlighted.", "title": "Tasks"})
    );
    // Nothing of them was stored.
    let items = stored(&server, &alice, &thread_id).await;
    assert!(items.iter().all(|i| i["type"] != "widget"), "{items:?}");
}

#[tokio::test]
async fn a_tool_reporting_progress_streams_its_widget() {
    let WithTask {
        mcp: _mcp,
        server,
        alice,
        thread_id,
        task_id: _,
    } = with_a_task("Report").await;

    let text = r#"call draft_report {"topic":"rust","steps":4}"#;
    let stream = add_message(&server, &alice, &thread_id, text).await;
    stream.assert_answered();
    let kinds = stream.kinds();
    let added = kinds
        .iter()
        .position(|k| k == "thread.item.added")
        .expect("added");
    let item_id = stream.events[added]["item"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(stream.events[added]["item"]["type"], "widget");
    // Text appends as value deltas (the final state adds a badge: one root update).
    let deltas: Vec<String> = stream
        .events
        .iter()
        .filter(|e| e["update"]["type"] == "widget.streaming_text.value_delta")
        .map(|e| {
            assert_eq!(e["item_id"], item_id.as_str());
            assert_eq!(e["update"]["component_id"], "body");
            e["update"]["delta"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(
        !deltas.is_empty() && deltas.iter().all(|d| d.starts_with(" w")),
        "{deltas:?}"
    );
    assert!(
        kinds.iter().any(|k| k == "thread.item.updated:updated"),
        "{kinds:?}"
    );
    let done = widgets_of(&stream);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["id"], item_id.as_str());
    let final_widget = &done[0]["widget"];
    assert_eq!(final_widget["children"][1]["value"], "w0 w1 w2 w3");
    assert_eq!(final_widget["children"][1]["streaming"], false);
    assert_eq!(labels(final_widget), ["final", "Redo"]);
    // Announced before the follow-up text, stored in its final state.
    assert!(
        added
            < kinds
                .iter()
                .position(|k| k == "thread.item.updated:added")
                .unwrap()
    );
    let items = stored(&server, &alice, &thread_id).await;
    assert!(items.iter().any(|i| i == &done[0]));
}

#[tokio::test]
async fn an_actions_tool_reporting_progress_updates_the_card_it_replaces() {
    let WithTask {
        mcp: _mcp,
        server,
        alice,
        thread_id,
        task_id: _,
    } = with_a_task("Report").await;
    let drafted = add_message(
        &server,
        &alice,
        &thread_id,
        r#"call draft_report {"topic":"rust","steps":3}"#,
    )
    .await;
    let card = widgets_of(&drafted)[0].clone();
    let item_id = card["id"].as_str().unwrap();

    let params = action(
        &thread_id,
        item_id,
        "report.redo",
        json!({"topic": "rust", "steps": 3}),
    );
    let stream = server.stream(&alice, "threads.custom_action", params).await;
    assert_eq!(stream.status, 200, "{}", stream.raw);
    let kinds = stream.kinds();
    assert_eq!(kinds.first().map(String::as_str), Some("stream_options"));
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("thread.item.replaced"),
        "{kinds:?}"
    );
    // The card restarts (a root update: its text no longer extends), then grows by deltas.
    assert_eq!(kinds[1], "thread.item.updated:updated", "{kinds:?}");
    assert!(
        kinds.iter().any(|k| k == "thread.item.updated:value_delta"),
        "{kinds:?}"
    );
    assert!(stream
        .events
        .iter()
        .filter(|e| e["type"] == "thread.item.updated")
        .all(|e| e["item_id"] == item_id));
    let replaced = &stream.events.last().unwrap()["item"];
    assert_eq!(replaced["id"], item_id);
    assert_eq!(
        replaced["widget"], card["widget"],
        "the final card is drawn again"
    );
    let items = stored(&server, &alice, &thread_id).await;
    assert!(items.iter().any(|i| i == replaced));
}

#[tokio::test]
async fn a_button_action_replaces_the_card_and_the_model_learns_of_it() {
    let WithTask {
        mcp,
        server,
        alice,
        thread_id,
        task_id,
    } = with_a_task("Water the plants").await;
    let card = show_task(&server, &alice, &thread_id, &task_id).await;
    let item_id = card["id"].as_str().unwrap();

    let params = action(
        &thread_id,
        item_id,
        "tasks.complete",
        json!({"task_id": task_id}),
    );
    let stream = server.stream(&alice, "threads.custom_action", params).await;
    assert_eq!(stream.status, 200, "{}", stream.raw);
    assert_eq!(stream.kinds(), ["stream_options", "thread.item.replaced"]);
    let replaced = &stream.events[1]["item"];
    assert_eq!(replaced["id"], item_id);
    assert_eq!(replaced["created_at"], card["created_at"]);
    assert_eq!(labels(&replaced["widget"]), ["done", "Delete"]);
    // The tool ran with the caller's token on the transport (the MCP server saw alice).
    let call = mcp.tool_calls().pop().unwrap();
    assert_eq!(call["sub"], "alice");
    assert_eq!(call["tool"], "complete_task_card");
    assert_eq!(call["args"], json!({"task_id": task_id}));
    // Stored in place (same id, same position); the record is hidden from the client...
    let items = stored(&server, &alice, &thread_id).await;
    let position = items.iter().position(|i| i["id"] == item_id).unwrap();
    assert_eq!(&items[position], replaced);
    assert!(items.iter().all(|i| i["type"] != "hidden_context_item"));
    // ...and the model reads it on the next turn, with the card as it is now.
    add_message(&server, &alice, &thread_id, "what happened?")
        .await
        .assert_answered();
    let next = shared()
        .mock
        .last_request_containing("what happened?")
        .to_string();
    assert!(
        next.contains(r#"The user performed the action \"tasks.complete\""#),
        "{next}"
    );
    assert!(next.contains("complete_task_card returned"), "{next}");
    // The replaced card no longer offers Complete: that action is refused now.
    let again = action(
        &thread_id,
        item_id,
        "tasks.complete",
        json!({"task_id": task_id}),
    );
    server
        .post_op(&alice, "threads.custom_action", again)
        .await
        .assert_error(403, "action_not_in_widget");
}

#[tokio::test]
async fn a_form_submission_starts_a_model_answer_and_both_replaces_then_answers() {
    let WithTask {
        mcp,
        server,
        alice,
        thread_id,
        task_id,
    } = with_a_task("First").await;
    let listed = add_message(&server, &alice, &thread_id, "list tasks").await;
    let list = widgets_of(&listed)[0].clone();

    // The form's fields come merged into the payload, as the client sends them.
    let params = action(
        &thread_id,
        list["id"].as_str().unwrap(),
        "tasks.add",
        json!({"title": "From the form"}),
    );
    let stream = server.stream(&alice, "threads.custom_action", params).await;
    stream.assert_answered();
    assert_eq!(stream.kinds()[0], "stream_options");
    assert!(!stream.kinds().iter().any(|k| k == "thread.item.replaced"));
    let call = mcp.tool_calls().pop().unwrap();
    assert_eq!(call["tool"], "add_task");
    assert_eq!(call["args"]["title"], "From the form");
    // The model answered with the action's record as its newest input.
    let request = shared().mock.last_request_containing("From the form");
    let last = last_message(&request)["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        last.contains(r#"performed the action "tasks.add""#) && last.contains("<HiddenContext>"),
        "{last}"
    );

    // `both`: the card is replaced, then the model answers.
    let card = show_task(&server, &alice, &thread_id, &task_id).await;
    let params = action(
        &thread_id,
        card["id"].as_str().unwrap(),
        "tasks.delete",
        json!({"task_id": task_id}),
    );
    let stream = server.stream(&alice, "threads.custom_action", params).await;
    stream.assert_answered();
    let kinds = stream.kinds();
    assert_eq!(&kinds[..2], ["stream_options", "thread.item.replaced"]);
    let mut values = Vec::new();
    texts(&stream.events[1]["item"]["widget"], "value", &mut values);
    assert_eq!(values, ["Task deleted."]);
}

#[tokio::test]
async fn a_sync_action_runs_while_a_reply_streams() {
    let WithTask {
        mcp: _mcp,
        server,
        alice,
        thread_id,
        task_id,
    } = with_a_task("Sync me").await;
    let card = show_task(&server, &alice, &thread_id, &task_id).await;
    let item_id = card["id"].as_str().unwrap();

    let mut streaming = server
        .open_message_stream(&alice, &thread_id, "slow 60")
        .await;
    streaming.read_events(4).await;
    // A streaming action is busy, the sync one is not.
    let params = action(
        &thread_id,
        item_id,
        "tasks.complete",
        json!({"task_id": task_id}),
    );
    server
        .post_op(&alice, "threads.custom_action", params.clone())
        .await
        .assert_error(409, "thread_busy");
    let reply = server
        .post_op(&alice, "threads.sync_custom_action", params)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let updated = &body["updated_item"];
    sdk::check(Kind::Item, &updated.to_string());
    assert_eq!(updated["id"], item_id);
    assert_eq!(labels(&updated["widget"]), ["done", "Delete"]);
    streaming.read_to_end().await;
    let kinds: Vec<&str> = streaming
        .events
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.last(), Some(&"thread.item.done"), "{kinds:?}");
    // Both the reply and the replaced card are stored.
    let items = stored(&server, &alice, &thread_id).await;
    assert!(items.iter().any(|i| i == updated));
    assert_eq!(items.last().unwrap()["type"], "assistant_message");
    // A result without a widget answers `{}` (the record is still written).
    let list = add_message(&server, &alice, &thread_id, "list tasks").await;
    let list_id = widgets_of(&list)[0]["id"].as_str().unwrap().to_string();
    let reply = server
        .post_op(
            &alice,
            "threads.sync_custom_action",
            action(&thread_id, &list_id, "tasks.add", json!({"title": "x"})),
        )
        .await;
    assert_eq!((reply.status, reply.text.as_str()), (200, "{}"));
}

#[tokio::test]
async fn forged_actions_are_refused_before_anything_runs() {
    let mcp = McpServer::start(&[]);
    let server = server_with_widgets(&mcp);
    let alice = token("alice");
    let bob = token("bob");
    let (thread_id, task_id) = add_task(&server, &alice, None, "Mine").await;
    let card = show_task(&server, &alice, &thread_id, &task_id).await;
    let item_id = card["id"].as_str().unwrap();
    let calls_before = mcp.tool_calls().len();
    let items_before = stored(&server, &alice, &thread_id).await;
    let answer_id = items_before
        .iter()
        .find(|i| i["type"] == "assistant_message")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "an unmapped type",
            action(
                &thread_id,
                item_id,
                "tasks.explode",
                json!({"task_id": task_id}),
            ),
            400,
            "unknown_action",
        ),
        (
            "another task id",
            action(
                &thread_id,
                item_id,
                "tasks.complete",
                json!({"task_id": "t_other"}),
            ),
            403,
            "action_not_in_widget",
        ),
        (
            "a mapped type the card lacks",
            action(&thread_id, item_id, "tasks.add", json!({"title": "x"})),
            403,
            "action_not_in_widget",
        ),
        (
            "a message as sender",
            action(
                &thread_id,
                &answer_id,
                "tasks.complete",
                json!({"task_id": task_id}),
            ),
            400,
            "not_a_widget",
        ),
        (
            "an unknown item",
            action(
                &thread_id,
                "msg_nope",
                "tasks.complete",
                json!({"task_id": task_id}),
            ),
            404,
            "item_not_found",
        ),
        (
            "no item",
            json!({"thread_id": thread_id, "action": {"type": "tasks.complete", "payload": {"task_id": task_id}}}),
            400,
            "invalid_params",
        ),
        (
            "a list payload",
            action(&thread_id, item_id, "tasks.complete", json!([task_id])),
            400,
            "invalid_params",
        ),
    ];
    for op in ["threads.custom_action", "threads.sync_custom_action"] {
        for (what, params, status, code) in &cases {
            let reply = server.post_op(&alice, op, params.clone()).await;
            assert_eq!(reply.status, *status, "{op} with {what}: {}", reply.text);
            reply.assert_error(*status, code);
        }
        // Another user's thread looks like no thread.
        let params = action(
            &thread_id,
            item_id,
            "tasks.complete",
            json!({"task_id": task_id}),
        );
        server
            .post_op(&bob, op, params)
            .await
            .assert_error(404, "thread_not_found");
    }
    assert_eq!(mcp.tool_calls().len(), calls_before, "no tool ran");
    assert_eq!(
        stored(&server, &alice, &thread_id).await,
        items_before,
        "nothing was written"
    );
}

#[tokio::test]
async fn a_tool_failing_mid_action_writes_nothing() {
    let WithTask {
        mcp: _mcp,
        server,
        alice,
        thread_id,
        task_id,
    } = with_a_task("Doomed").await;
    let card = show_task(&server, &alice, &thread_id, &task_id).await;
    let item_id = card["id"].as_str().unwrap();
    // The task goes away behind the card's back: completing it is a tool error.
    let text = format!(r#"call delete_task {{"task_id":"{task_id}"}}"#);
    add_message(&server, &alice, &thread_id, &text)
        .await
        .assert_answered();
    let before = stored(&server, &alice, &thread_id).await;

    let params = action(
        &thread_id,
        item_id,
        "tasks.complete",
        json!({"task_id": task_id}),
    );
    let stream = server
        .stream(&alice, "threads.custom_action", params.clone())
        .await;
    assert_eq!(stream.kinds(), ["stream_options", "error"]);
    assert_eq!(
        stream.events[1],
        json!({"type": "error", "code": "custom", "message": "The action could not be completed.", "allow_retry": true})
    );
    let reply = server
        .post_op(&alice, "threads.sync_custom_action", params)
        .await;
    reply.assert_error(502, "action_failed");
    assert_eq!(stored(&server, &alice, &thread_id).await, before);
    // No record either: the model never hears of the failed action.
    add_message(&server, &alice, &thread_id, "anything new?")
        .await
        .assert_answered();
    let next = shared()
        .mock
        .last_request_containing("anything new?")
        .to_string();
    assert!(!next.contains("performed the action"), "{next}");
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"chatkit_widget_actions_total{outcome="failed"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn hostile_unicode_in_every_field_of_an_action_gets_no_5xx_and_forges_nothing() {
    const REQUESTS: usize = 400;
    let mcp = McpServer::start(&[]);
    let server = TestServer::start_with_config(
        &config(&mcp),
        &[
            ("CHATKIT__TITLES__ENABLED", "false"),
            ("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "0"),
            ("RUST_LOG", "warn"),
        ],
    );
    let alice = token("alice");
    let (thread_id, task_id) = add_task(&server, &alice, None, "Fuzzed").await;
    let card = show_task(&server, &alice, &thread_id, &task_id).await;
    let item_id = card["id"].as_str().unwrap().to_string();
    let mut rng = crate::fuzz::Rng(0x2545_f491_4f6c_dd1d);
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..REQUESTS {
        let op = ["threads.custom_action", "threads.sync_custom_action"][i % 2];
        // Each field hostile now and then, the others right, so that every check is reached.
        let hostile = |rng: &mut crate::fuzz::Rng, right: &str| {
            if rng.below(3) == 0 {
                Value::String(rng.hostile_string(64 * 1024))
            } else {
                Value::String(right.to_string())
            }
        };
        let kind = hostile(&mut rng, "tasks.delete");
        let item = hostile(&mut rng, &item_id);
        let thread = hostile(&mut rng, &thread_id);
        let mut payload = serde_json::Map::new();
        payload.insert("task_id".into(), hostile(&mut rng, "t_not_this_one"));
        let extra = rng.hostile_string(4096);
        payload.insert(extra, Value::String(rng.hostile_string(64 * 1024)));
        let params = json!({"thread_id": thread, "item_id": item, "action": {"type": kind, "payload": payload}});
        let reply = server.post_op(&alice, op, params).await;
        assert!(
            reply.status < 500,
            "request {i} got {}: {}",
            reply.text,
            reply.status
        );
        *statuses.entry(reply.status).or_insert(0) += 1;
    }
    // No payload named the card's task: no tool ran, nothing was written.
    let calls: Vec<Value> = mcp
        .tool_calls()
        .into_iter()
        .filter(|c| c["tool"] == "delete_task_card")
        .collect();
    assert!(calls.is_empty(), "{calls:?}");
    let items = stored(&server, &alice, &thread_id).await;
    assert!(items.iter().any(|i| i == &card), "the card is unchanged");
    assert_eq!(server.log_count("panic"), 0);
    eprintln!("action fuzz: {REQUESTS} requests, statuses {statuses:?}");
}

#[test]
fn widget_settings_are_checked_at_start_up() {
    let file = temp_path("widgets-config", "toml");
    std::fs::write(
        &file,
        r#"
[[mcp.servers]]
name = "tasks"
url = "http://127.0.0.1:9/mcp"

[[widgets]]
tool = "other__list"
template = "missing.widget"

[[widgets]]
tool = "tasks__list_tasks"
template = "missing.widget"

[[widget_actions]]
type = "a"
tool = "tasks__x"
then = "later"
"#,
    )
    .unwrap();
    let (code, _, problems) = crate::startup::chatkit(
        &[("CHATKIT__AUTH__JWT_SECRET", SECRET)],
        &["--config", file.to_str().unwrap(), "check-config"],
    );
    assert_eq!(code, 2, "{problems}");
    assert!(
        problems.contains(r#"widgets.tool "other__list" must be <mcp server>__<tool>"#),
        "{problems}"
    );
    assert!(
        problems.contains("missing.widget: cannot be read"),
        "{problems}"
    );
    assert!(problems.contains("widget_actions"), "{problems}");
}
