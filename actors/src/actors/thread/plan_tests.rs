//! Unit tests of `plan_turn` (`plan.rs`).
use serde_json::json;

use super::*;
use crate::ids::ItemId;
use crate::model::ChatMessage;
use crate::protocol::requests::UserMessageInput;
use crate::protocol::{AssistantMessage, ClientToolCall, SdkHiddenContext, UserMessageContent};

const SETTINGS: PlanSettings<'static> = PlanSettings {
    instance_id: "inst_a",
    history_limit: 50,
    titles_enabled: true,
    instructions: "Be brief.",
};

fn thread(persisted: bool, history: Vec<ThreadItem>) -> LoadedThread {
    LoadedThread {
        meta: ThreadMeta::new("thr_1".into(), "alice".into(), Timestamp::now()),
        history,
        persisted,
    }
}

fn message(text: &str) -> TurnInput {
    TurnInput::UserMessage(NewMessage {
        input: serde_json::from_value::<UserMessageInput>(json!({
            "content": [{ "type": "input_text", "text": text }],
            "attachments": [],
            "inference_options": {}
        }))
        .unwrap(),
        attachments: Vec::new(),
    })
}

fn item(id: &str, body: ItemBody) -> ThreadItem {
    ThreadItem {
        id: id.into(),
        thread_id: "thr_1".into(),
        created_at: Timestamp::now(),
        body,
    }
}

fn user_item(id: &str, text: &str) -> ThreadItem {
    item(
        id,
        ItemBody::UserMessage(UserMessage {
            content: vec![UserMessageContent::InputText { text: text.into() }],
            attachments: Vec::new(),
            quoted_text: None,
            inference_options: Default::default(),
        }),
    )
}

fn pending_call(id: &str) -> ThreadItem {
    item(
        id,
        ItemBody::ClientToolCall(ClientToolCall {
            status: ToolCallStatus::Pending,
            call_id: format!("call_{id}"),
            name: "get_selection".into(),
            arguments: json!({}),
            output: None,
        }),
    )
}

fn kinds(ops: &[WriteOp]) -> Vec<&'static str> {
    ops.iter()
        .map(|op| match op {
            WriteOp::InsertThread(_) => "insert_thread",
            WriteOp::InsertLease { .. } => "insert_lease",
            WriteOp::PutItem(_) => "put_item",
            WriteOp::DeleteItems { .. } => "delete_items",
            WriteOp::DeleteItemsAfter { .. } => "delete_after",
            WriteOp::LinkAttachments { .. } => "link_attachments",
            _ => "other",
        })
        .collect()
}

#[test]
fn resending_the_unanswered_newest_message_answers_it_without_a_copy() {
    let history = vec![user_item("msg_1", "hello"), user_item("msg_2", "again")];
    let plan = plan_turn(&thread(true, history.clone()), message("again"), &SETTINGS).unwrap();
    assert!(plan.prelude_ops.is_empty(), "nothing stored twice");
    assert!(
        matches!(&plan.prelude_events[..], [ThreadStreamEvent::ItemDone { item }] if item.id == "msg_2")
    );
    assert_eq!(
        plan.model_input.len(),
        3,
        "instructions and the two messages"
    );
    // Anything else, or a message that was answered, is a new message.
    let plan = plan_turn(&thread(true, history), message("other"), &SETTINGS).unwrap();
    assert_eq!(kinds(&plan.prelude_ops), ["put_item"]);
    let answered = vec![
        user_item("msg_1", "again"),
        item(
            "msg_2",
            ItemBody::AssistantMessage(AssistantMessage { content: vec![] }),
        ),
    ];
    let plan = plan_turn(&thread(true, answered), message("again"), &SETTINGS).unwrap();
    assert_eq!(kinds(&plan.prelude_ops), ["put_item"]);
}

#[test]
fn a_first_message_creates_the_thread_and_asks_for_a_title() {
    let plan = plan_turn(&thread(false, vec![]), message("Hello"), &SETTINGS).unwrap();
    assert_eq!(
        kinds(&plan.prelude_ops),
        ["insert_thread", "insert_lease", "put_item"]
    );
    assert!(matches!(
        plan.prelude_events.as_slice(),
        [
            ThreadStreamEvent::ThreadCreated { .. },
            ThreadStreamEvent::ItemDone { .. }
        ]
    ));
    assert_eq!(
        plan.title_from.as_ref().map(|t| t.1.as_str()),
        Some("Hello")
    );
    // System message, then the user's.
    assert_eq!(plan.model_input.len(), 2);
    assert_eq!(plan.last_created_at, Some(plan.prelude_items[0].created_at));
}

#[test]
fn a_follow_up_only_stores_the_message() {
    let history = vec![user_item("msg_1", "Hi")];
    let previous = history[0].created_at;
    let plan = plan_turn(&thread(true, history), message("Again"), &SETTINGS).unwrap();
    assert_eq!(kinds(&plan.prelude_ops), ["put_item"]);
    assert!(plan.prelude_events.len() == 1 && plan.title_from.is_some());
    assert!(
        plan.prelude_items[0].created_at > previous,
        "sorts after the history"
    );
    assert_eq!(plan.model_input.len(), 3);
}

#[test]
fn locked_threads_are_refused() {
    let mut locked = thread(true, vec![]);
    locked.meta.status = ThreadStatus::Locked { reason: None };
    assert!(matches!(
        plan_turn(&locked, message("x"), &SETTINGS),
        Err(EngineError::ThreadNotActive {
            status: InactiveStatus::Locked,
            ..
        })
    ));
}

#[test]
fn attachments_are_stamped_with_the_thread_linked_in_the_same_commit_and_sent_as_parts() {
    let photo = Attachment {
        id: "atc_1".into(),
        name: "cat.png".into(),
        mime_type: "image/png".into(),
        upload_descriptor: None,
        thread_id: None,
        kind: crate::protocol::AttachmentKind::Image,
        preview_url: Some("http://x/attachments/atc_1/content?expires=1&signature=s".into()),
    };
    let TurnInput::UserMessage(mut new) = message("look") else {
        unreachable!()
    };
    new.attachments = vec![photo.clone()];
    let plan = plan_turn(
        &thread(true, vec![]),
        TurnInput::UserMessage(new),
        &SETTINGS,
    )
    .unwrap();
    assert_eq!(kinds(&plan.prelude_ops), ["put_item", "link_attachments"]);
    let ItemBody::UserMessage(stored) = &plan.prelude_items[0].body else {
        panic!("a user message")
    };
    assert_eq!(stored.attachments[0].thread_id.as_deref(), Some("thr_1"));
    assert_eq!(stored.attachments[0].preview_url, photo.preview_url);
    use crate::model::{ContentPart, UserContent};
    match plan.model_input.last() {
        Some(ChatMessage::User {
            content: UserContent::Parts(parts),
        }) => {
            assert_eq!(
                parts[0],
                ContentPart::Text {
                    text: "look".into()
                }
            );
            assert!(matches!(&parts[1], ContentPart::Attachment(a) if a.id == "atc_1"));
            assert_eq!(parts.len(), 2);
        }
        other => panic!("a user message with parts, not {other:?}"),
    }
    assert!(crate::attachments::model_input::has_attachments(
        &plan.model_input
    ));
}

#[test]
fn client_tool_output_completes_the_pending_call_and_drops_stale_ones() {
    let history = vec![
        pending_call("tc_old"),
        user_item("msg_1", "x"),
        pending_call("tc_new"),
    ];
    let output = TurnInput::ClientToolOutput(json!({ "selection": "d1" }));
    let plan = plan_turn(&thread(true, history), output, &SETTINGS).unwrap();
    assert_eq!(kinds(&plan.prelude_ops), ["put_item", "delete_items"]);
    assert_eq!(plan.removed_ids, ["tc_old"]);
    match &plan.prelude_items[0].body {
        ItemBody::ClientToolCall(call) => {
            assert_eq!(call.status, ToolCallStatus::Completed);
            assert_eq!(call.output, Some(json!({ "selection": "d1" })));
        }
        other => panic!("expected the completed call, got {other:?}"),
    }
    let no_call = plan_turn(
        &thread(true, vec![user_item("msg_1", "x")]),
        TurnInput::ClientToolOutput(json!(null)),
        &SETTINGS,
    );
    assert!(matches!(no_call, Err(EngineError::Conflict(_))));
}

/// Issue 26, item 6 (openai/chatkit-python PR #123): items after the pending call (a hidden
/// cancellation marker, an assistant message stamped the same instant) do not hide it; a
/// user message after it makes it stale.
#[test]
fn client_tool_output_finds_the_pending_call_among_the_newest_items() {
    let marker = item(
        "shcx_1",
        ItemBody::SdkHiddenContext(SdkHiddenContext {
            content: "The user cancelled the stream.".into(),
        }),
    );
    let answer = item(
        "msg_2",
        ItemBody::AssistantMessage(AssistantMessage { content: vec![] }),
    );
    let history = vec![
        user_item("msg_1", "x"),
        pending_call("tc_new"),
        answer,
        marker,
    ];
    let output = TurnInput::ClientToolOutput(json!({ "ok": true }));
    let plan = plan_turn(&thread(true, history), output, &SETTINGS).unwrap();
    assert_eq!(kinds(&plan.prelude_ops), ["put_item"]);
    assert_eq!(plan.prelude_items[0].id, "tc_new");
    assert!(plan.removed_ids.is_empty());
    let tool_results = plan
        .model_input
        .iter()
        .filter(|m| format!("{m:?}").contains(r#"{\"ok\":true}"#))
        .count();
    assert_eq!(
        tool_results, 1,
        "the model sees the output: {:?}",
        plan.model_input
    );

    let moved_on = vec![pending_call("tc_1"), user_item("msg_1", "never mind")];
    let stale = plan_turn(
        &thread(true, moved_on),
        TurnInput::ClientToolOutput(json!(null)),
        &SETTINGS,
    );
    assert!(matches!(stale, Err(EngineError::Conflict(_))));

    let mut too_old = vec![pending_call("tc_1")];
    too_old.extend((0..STALE_CALL_WINDOW).map(|n| {
        item(
            &format!("msg_{n}"),
            ItemBody::AssistantMessage(AssistantMessage { content: vec![] }),
        )
    }));
    let out_of_reach = plan_turn(
        &thread(true, too_old),
        TurnInput::ClientToolOutput(json!(null)),
        &SETTINGS,
    );
    assert!(matches!(out_of_reach, Err(EngineError::Conflict(_))));
}

#[test]
fn retry_deletes_what_follows_the_user_message() {
    let history = vec![
        user_item("msg_1", "first"),
        item(
            "msg_2",
            ItemBody::AssistantMessage(AssistantMessage { content: vec![] }),
        ),
        user_item("msg_3", "second"),
    ];
    let live = thread(true, history);
    let retry = |id: &str| TurnInput::RetryAfter(ItemId::parse(id).unwrap());
    let plan = plan_turn(&live, retry("msg_1"), &SETTINGS).unwrap();
    assert_eq!(kinds(&plan.prelude_ops), ["delete_after"]);
    assert_eq!(plan.removed_ids, ["msg_2", "msg_3"]);
    assert_eq!(plan.model_input.len(), 2);
    assert!(plan.prelude_events.is_empty());
    assert!(matches!(
        plan_turn(&live, retry("msg_2"), &SETTINGS),
        Err(EngineError::InvalidInput(_))
    ));
    assert!(matches!(
        plan_turn(&live, retry("msg_9"), &SETTINGS),
        Err(EngineError::ItemNotFound)
    ));
}

#[test]
fn the_model_sees_at_most_the_history_limit() {
    let history: Vec<ThreadItem> = (0..10)
        .map(|i| user_item(&format!("msg_{i}"), "x"))
        .collect();
    let settings = PlanSettings {
        history_limit: 4,
        ..SETTINGS
    };
    let plan = plan_turn(&thread(true, history), message("y"), &settings).unwrap();
    assert_eq!(plan.model_input.len(), 1 + 4);
}
