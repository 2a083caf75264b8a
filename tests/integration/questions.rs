//! Questions to the user (protocol §3.7, §6.6, §8.12): the model's `ask_user` tool and MCP
//! elicitation make a pending `structured_input` item, the stream ends, and
//! `threads.add_structured_input` answers it and continues the turn in its own stream. A
//! question expires, is superseded by a new message, and never leaves the thread busy.

use serde_json::{json, Value};

use crate::harness::*;

const ASK_USER: &str = r#"
[agent]
ask_user = true
"#;

const ANSWER: &str = "threads.add_structured_input";

fn answer(thread_id: &str, item_id: &Value, input: Value) -> Value {
    json!({ "thread_id": thread_id, "item_id": item_id, "input": input })
}

/// The thread's stored items, oldest first.
async fn stored(server: &TestServer, token: &str, thread_id: &str) -> Vec<Value> {
    page_data(&server.items_asc(token, thread_id).await).clone()
}

#[tokio::test]
async fn the_model_asks_and_the_answer_continues_the_turn() {
    let server = TestServer::start_with_config(ASK_USER, &[("CHATKIT__TITLES__ENABLED", "false")]);
    let (alice, first) = alice_starts(&server, "ask me").await;
    assert_eq!(
        first.kinds(),
        [
            "thread.created",
            "thread.item.done",
            "stream_options",
            "thread.item.done"
        ]
    );
    let question = first.events[3]["item"].clone();
    assert_eq!(question["type"], "structured_input");
    assert_eq!(question["status"], "pending");
    assert_eq!(
        question["inputs"],
        json!([
            {"id": "color", "question": "Which color?", "type": "multiple_choice", "options": [{"value": "Red"}, {"value": "Blue"}], "multiple": false},
            {"id": "notes", "question": "Anything else?", "type": "freeform", "description": "optional"}
        ])
    );
    let thread_id = first.thread_id();
    let offered = shared().mock.last_request_containing("ask me");
    assert!(offered["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["function"]["name"] == "ask_user"));

    // Another user's answer finds no thread; an unknown item is not found.
    let bob = token("bob");
    let submission =
        json!({"answers": {"color": {"values": ["Blue", "Red"]}, "ghost": {"values": ["x"]}}});
    server
        .post_op(
            &bob,
            ANSWER,
            answer(&thread_id, &question["id"], submission.clone()),
        )
        .await
        .assert_error(404, "thread_not_found");
    server
        .post_op(
            &alice,
            ANSWER,
            answer(&thread_id, &json!("msg_nope"), submission.clone()),
        )
        .await
        .assert_error(404, "item_not_found");

    let answered = server
        .stream(
            &alice,
            ANSWER,
            answer(&thread_id, &question["id"], submission.clone()),
        )
        .await;
    let kinds = answered.kinds();
    assert_eq!(
        kinds[..2],
        ["stream_options", "thread.item.replaced"],
        "{kinds:?}"
    );
    answered.assert_answered();
    let replaced = &answered.events[1]["item"];
    assert_eq!(replaced["id"], question["id"]);
    assert_eq!(replaced["status"], "answered");
    assert_eq!(
        replaced["inputs"][0]["answer"],
        json!({"values": ["Blue"], "skipped": false})
    );
    assert_eq!(
        replaced["inputs"][1]["answer"],
        json!({"values": [], "skipped": true})
    );
    // The answers were the tool's result.
    assert!(
        answered.answer_text().starts_with(
            "Done: A structured input request was displayed to the user with the following status: answered"
        ),
        "{}",
        answered.answer_text()
    );

    let items = stored(&server, &alice, &thread_id).await;
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["user_message", "structured_input", "assistant_message"]
    );
    assert_eq!(&items[1], replaced);

    // Answered once: a second answer is a clear 409.
    server
        .post_op(
            &alice,
            ANSWER,
            answer(&thread_id, &question["id"], submission),
        )
        .await
        .assert_error(409, "invalid_thread_state");
}

#[tokio::test]
async fn a_new_message_supersedes_a_pending_question() {
    let server = TestServer::start_with_config(ASK_USER, &[("CHATKIT__TITLES__ENABLED", "false")]);
    let (alice, first) = alice_starts(&server, "ask me").await;
    let thread_id = first.thread_id();
    let question = first.events[3]["item"].clone();
    // Not busy: the message is answered, the question skipped.
    add_message(&server, &alice, &thread_id, "never mind")
        .await
        .assert_answered();
    let items = stored(&server, &alice, &thread_id).await;
    let asked = items.iter().find(|i| i["id"] == question["id"]).unwrap();
    assert_eq!(asked["status"], "skipped");
    assert_eq!(
        asked["inputs"][0]["answer"],
        json!({"values": [], "skipped": true})
    );
    // The model read the skipped question with the new message.
    let request = shared().mock.last_request_containing("never mind");
    assert!(request.to_string().contains("following status: skipped"));
    server
        .post_op(
            &alice,
            ANSWER,
            answer(&thread_id, &question["id"], json!({})),
        )
        .await
        .assert_error(409, "invalid_thread_state");
}

#[tokio::test]
async fn an_unanswered_question_expires() {
    let config = format!("{ASK_USER}ask_timeout_secs = 1\n");
    let server = TestServer::start_with_config(&config, &[("CHATKIT__TITLES__ENABLED", "false")]);
    let (alice, first) = alice_starts(&server, "ask me").await;
    let thread_id = first.thread_id();
    let question = first.events[3]["item"].clone();
    let mut status = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let items = stored(&server, &alice, &thread_id).await;
        status = items.iter().find(|i| i["id"] == question["id"]).unwrap()["status"].clone();
        if status == "skipped" {
            break;
        }
    }
    assert_eq!(status, "skipped");
    server
        .post_op(
            &alice,
            ANSWER,
            answer(&thread_id, &question["id"], json!({})),
        )
        .await
        .assert_error(409, "invalid_thread_state");
    add_message(&server, &alice, &thread_id, "hello again")
        .await
        .assert_answered();
}

fn with_tasks(mcp: &McpServer) -> TestServer {
    // A 1 s tool timeout: the time the user takes to answer does not count.
    let config = format!(
        "[[mcp.servers]]\nname = \"tasks\"\nurl = \"{}\"\ntimeout_secs = 1\nforward_user_token = true\n",
        mcp.url()
    );
    TestServer::start_with_config(&config, &[("CHATKIT__TITLES__ENABLED", "false")])
}

/// The request and its stream, for the note `CHATKIT_TEST_NOTE` names (if any).
fn note(lines: &mut Vec<String>, title: &str, request: Option<&Value>, stream: &Stream) {
    lines.push(format!("## {title}"));
    if let Some(request) = request {
        lines.push(format!("request: {request}"));
    }
    lines.push(stream.raw.trim_end().to_string());
}

#[tokio::test]
async fn an_mcp_tool_elicits_and_gets_typed_answers() {
    let mcp = McpServer::start(&[]);
    let server = with_tasks(&mcp);
    let mut lines = Vec::new();
    let (alice, first) = alice_starts(&server, "call order_pizza").await;
    note(&mut lines, "a turn whose tool asks", None, &first);
    assert_eq!(
        first.kinds(),
        [
            "thread.created",
            "thread.item.done",
            "stream_options",
            "thread.item.done"
        ]
    );
    let thread_id = first.thread_id();
    let question = first.events[3]["item"].clone();
    assert_eq!(
        question["inputs"],
        json!([
            {"id": "size", "question": "How should the pizza be? Size (required)", "type": "multiple_choice", "options": [{"value": "Small"}, {"value": "Large"}], "multiple": false},
            {"id": "count", "question": "How many? (required)", "type": "freeform", "description": "1 to 9"},
            {"id": "urgent", "question": "Urgent?", "type": "multiple_choice", "options": [{"value": "Yes"}, {"value": "No"}], "multiple": false},
            {"id": "note", "question": "note", "type": "freeform", "description": "For the cook"}
        ])
    );
    // Longer than the tool's timeout: waiting for the user does not count.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    // A count that is no number: the question again, with a notice; not a tool error.
    let params = answer(
        &thread_id,
        &question["id"],
        json!({"answers": {"size": {"values": ["Large"]}, "count": {"values": ["three"]}}}),
    );
    let again = server.stream(&alice, ANSWER, params.clone()).await;
    note(
        &mut lines,
        "an answer that does not fit",
        Some(&params),
        &again,
    );
    assert_eq!(
        again.kinds(),
        [
            "stream_options",
            "thread.item.replaced",
            "notice",
            "thread.item.done"
        ]
    );
    assert!(again.events[2]["message"]
        .as_str()
        .unwrap()
        .contains("\"three\" is not a whole number"));
    let second = again.events[3]["item"].clone();
    assert_eq!(second["status"], "pending");
    assert_ne!(second["id"], question["id"]);

    let params = answer(
        &thread_id,
        &second["id"],
        json!({"answers": {"size": {"values": ["Small"]}, "count": {"values": ["2"]}, "urgent": {"values": ["Yes"]}}}),
    );
    let answered = server.stream(&alice, ANSWER, params.clone()).await;
    note(
        &mut lines,
        "the answering request",
        Some(&params),
        &answered,
    );
    assert_eq!(
        answered.kinds()[..2],
        ["stream_options", "thread.item.replaced"]
    );
    answered.assert_answered();
    assert_eq!(
        answered.answer_text(),
        r#"Done: {"action":"accept","content":{"size":"s","count":2,"urgent":true}}"#
    );
    let items = stored(&server, &alice, &thread_id).await;
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "user_message",
            "structured_input",
            "structured_input",
            "assistant_message"
        ]
    );
    lines.push(format!("## the stored item\n{}", items[2]));
    if let Ok(path) = std::env::var("CHATKIT_TEST_NOTE") {
        std::fs::write(path, lines.join("\n\n") + "\n").unwrap();
    }

    // Skipped by the user: the tool is told `decline`.
    let skipping = add_message(&server, &alice, &thread_id, "call order_pizza").await;
    let asked = skipping.done_items().last().unwrap()["id"].clone();
    let skipped = server
        .stream(
            &alice,
            ANSWER,
            answer(&thread_id, &asked, json!({"status": "skipped"})),
        )
        .await;
    assert_eq!(skipped.events[1]["item"]["status"], "skipped");
    assert_eq!(skipped.answer_text(), r#"Done: {"action":"decline"}"#);
}

#[tokio::test]
async fn a_superseded_elicitation_cancels_the_tool_and_the_thread_goes_on() {
    let mcp = McpServer::start(&[]);
    let server = with_tasks(&mcp);
    // A tool that asks again after a cancel is told cancel at once: the turn ends.
    let (alice, first) = alice_starts(&server, r#"call order_pizza {"retries": 2}"#).await;
    let thread_id = first.thread_id();
    add_message(&server, &alice, &thread_id, "forget the pizza")
        .await
        .assert_answered();
    let calls = mcp.tool_calls();
    assert_eq!(
        calls.last().unwrap()["args"]["answer"],
        r#"{"action":"cancel"}"#
    );
    let items = stored(&server, &alice, &thread_id).await;
    assert_eq!(items[1]["type"], "structured_input");
    assert_eq!(items[1]["status"], "skipped");
}

/// The stored status of `item`, once it is `want` (or what it was after 5 s).
async fn status_becomes(
    server: &TestServer,
    token: &str,
    thread_id: &str,
    item: &Value,
    want: &str,
) -> Value {
    let mut status = Value::Null;
    for _ in 0..50 {
        let items = stored(server, token, thread_id).await;
        status = items.iter().find(|i| i["id"] == *item).unwrap()["status"].clone();
        if status == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    status
}

#[tokio::test]
async fn a_passivated_thread_skips_its_question() {
    let config = format!("{ASK_USER}\n[actors]\nmax_live = 1\n");
    let server = TestServer::start_with_config(&config, &[("CHATKIT__TITLES__ENABLED", "false")]);
    let (alice, first) = alice_starts(&server, "ask me").await;
    let thread_id = first.thread_id();
    let question = first.events[3]["item"]["id"].clone();
    // A second live thread passivates the first, whose turn waits on the question.
    answered_thread(&server, &alice, "hello").await;
    let status = status_becomes(&server, &alice, &thread_id, &question, "skipped").await;
    assert_eq!(status, "skipped");
    server
        .post_op(&alice, ANSWER, answer(&thread_id, &question, json!({})))
        .await
        .assert_error(409, "invalid_thread_state");
    add_message(&server, &alice, &thread_id, "still there?")
        .await
        .assert_answered();
}

#[tokio::test]
async fn after_a_restart_a_pending_question_is_skipped_not_stuck() {
    let mut server =
        TestServer::start_with_config(ASK_USER, &[("CHATKIT__TITLES__ENABLED", "false")]);
    let (alice, first) = alice_starts(&server, "ask me").await;
    let thread_id = first.thread_id();
    let question = first.events[3]["item"]["id"].clone();
    server.kill();
    server.restart();
    // The turn that held the question is gone: its answer is refused, the question skipped.
    server
        .post_op(&alice, ANSWER, answer(&thread_id, &question, json!({})))
        .await
        .assert_error(409, "invalid_thread_state");
    let status = status_becomes(&server, &alice, &thread_id, &question, "skipped").await;
    assert_eq!(status, "skipped");
    add_message(&server, &alice, &thread_id, "hello again")
        .await
        .assert_answered();
    let request = shared().mock.last_request_containing("hello again");
    assert!(request.to_string().contains("following status: skipped"));
}
