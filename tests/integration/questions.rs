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
