//! Planning a turn: from the thread as the actor holds it and what the client sent, decide
//! what to write before anything streams, what to announce once it committed, and what the
//! model sees. A pure function: the actor runs the plan, tests read it.

use std::borrow::Cow;

use crate::error::{EngineError, InactiveStatus};
use crate::ids::{prefix, ItemId};
use crate::model::history_messages;
use crate::protocol::{
    Attachment, InferenceOptions, ItemBody, Page, ThreadItem, ThreadMeta, ThreadStatus,
    ThreadStreamEvent, Timestamp, ToolCallStatus, UserMessage,
};
use crate::store::cluster::LeaseState;
use crate::store::WriteOp;

use super::history::LoadedThread;
use super::messages::{NewMessage, TurnInput};
use crate::actors::turn::{PlannedAction, TurnPlan, WidgetAction};
use crate::widgets::check_action_in_widget;

/// How many of the newest items the client-tool safety net looks at (protocol §3.3).
const STALE_CALL_WINDOW: usize = 20;

/// What planning needs besides the thread.
pub(crate) struct PlanSettings<'a> {
    /// This instance (the lease of a thread created here is its).
    pub instance_id: &'a str,
    /// Items of history sent to the model.
    pub history_limit: usize,
    pub titles_enabled: bool,
    /// The system message.
    pub instructions: &'a str,
}

/// The widget item that sent `action`, if it holds that action (protocol §3.5; no forged
/// calls: `widgets/actions.rs`).
pub(crate) fn action_sender(
    thread: &LoadedThread,
    action: &WidgetAction,
) -> Result<ThreadItem, EngineError> {
    let sender = thread
        .history
        .iter()
        .find(|i| action.item_id == i.id)
        .or(action.stored_sender.as_ref())
        .cloned()
        .ok_or(EngineError::ItemNotFound)?;
    let ItemBody::Widget(widget) = &sender.body else {
        return Err(EngineError::NotAWidget(action.item_id.to_string()));
    };
    check_action_in_widget(&widget.widget, &action.action_type, &action.payload)?;
    Ok(sender)
}

/// Plans the turn `input` starts on `thread`, or says why it cannot run.
pub(crate) fn plan_turn(
    thread: &LoadedThread,
    input: TurnInput,
    settings: &PlanSettings,
) -> Result<TurnPlan, EngineError> {
    let mut plan = TurnPlan {
        prelude_ops: Vec::new(),
        prelude_events: Vec::new(),
        prelude_items: Vec::new(),
        removed_ids: Vec::new(),
        model_input: Vec::new(),
        owner: thread.meta.user_id.clone(),
        inference: InferenceOptions::default(),
        last_created_at: thread.history.last().map(|i| i.created_at),
        title_from: None,
        action: None,
        creates_thread: false,
    };
    // Borrowed from the thread's history (a turn's new or changed items owned): the model's
    // input is built from them without copying the history first.
    let mut model_items: Vec<Cow<'_, ThreadItem>> =
        thread.history.iter().map(Cow::Borrowed).collect();
    match input {
        TurnInput::UserMessage(NewMessage { input, attachments })
            if is_resend_of_unanswered(thread, &input, &attachments) =>
        {
            plan_resend(thread, settings, &mut plan)?
        }
        TurnInput::UserMessage(message) => {
            plan_message(thread, message, settings, &mut plan, &mut model_items)?
        }
        TurnInput::ClientToolOutput(result) => {
            plan_tool_output(thread, result, &mut plan, &mut model_items)?
        }
        TurnInput::RetryAfter(item_id) => {
            plan_retry(thread, &item_id, &mut plan, &mut model_items)?
        }
        // Answers go to the turn that waits on their question (`questions.rs`).
        TurnInput::StructuredInput { item_id, .. } => {
            return Err(super::questions::unheld_answer_error(
                &thread.history,
                &item_id,
            ))
        }
        TurnInput::Action(action) => {
            refuse_inactive(&thread.meta.status)?;
            let sender = action_sender(thread, &action)?;
            plan.action = Some(PlannedAction {
                sender,
                action: *action,
                history: model_items.iter().map(|i| i.clone().into_owned()).collect(),
                history_limit: settings.history_limit,
            });
        }
    }
    plan_model_input(&mut plan, &model_items, settings);
    Ok(plan)
}

/// The same message again while the thread's newest item is that message with no answer
/// (its answer failed, or its commit timed out on our side and completed later): answer it
/// instead of storing a copy (specs/persistence.md).
fn plan_resend(
    thread: &LoadedThread,
    settings: &PlanSettings,
    plan: &mut TurnPlan,
) -> Result<(), EngineError> {
    refuse_inactive(&thread.meta.status)?;
    let unanswered = thread.history.last().expect("checked").clone();
    plan.title_from = title_from(thread, &unanswered, settings);
    plan.prelude_events
        .push(ThreadStreamEvent::ItemDone { item: unanswered });
    Ok(())
}

/// A new user message (protocol §3.1): stored with its attachments (stamped with the thread,
/// in the message's transaction), and the thread with it when it is new.
fn plan_message(
    thread: &LoadedThread,
    NewMessage { input, attachments }: NewMessage,
    settings: &PlanSettings,
    plan: &mut TurnPlan,
    model_items: &mut Vec<Cow<'_, ThreadItem>>,
) -> Result<(), EngineError> {
    refuse_inactive(&thread.meta.status)?;
    let attachments: Vec<Attachment> = attachments
        .into_iter()
        .map(|a| Attachment {
            thread_id: Some(thread.meta.id.to_string()),
            ..a
        })
        .collect();
    let link = (!attachments.is_empty()).then(|| WriteOp::LinkAttachments {
        thread_id: thread.meta.id.clone(),
        user_id: thread.meta.user_id.clone(),
        attachment_ids: attachments.iter().map(|a| a.id.clone()).collect(),
    });
    let item = ThreadItem {
        id: ItemId::generate(prefix::MESSAGE),
        thread_id: thread.meta.id.clone(),
        created_at: Timestamp::now_after(plan.last_created_at),
        body: ItemBody::UserMessage(UserMessage {
            content: input.content,
            attachments,
            quoted_text: input.quoted_text,
            inference_options: input.inference_options,
        }),
    };
    if !thread.persisted {
        plan.creates_thread = true;
        plan.prelude_ops
            .push(WriteOp::InsertThread(thread.meta.clone()));
        plan.prelude_ops.push(WriteOp::InsertLease {
            thread_id: thread.meta.id.clone(),
            instance_id: settings.instance_id.to_string(),
            // The state the prelude commits with (`Lease::fence` sets it).
            state: LeaseState::Streaming,
        });
        plan.prelude_events.push(ThreadStreamEvent::ThreadCreated {
            thread: thread.meta.to_wire(Page::empty()),
        });
    }
    plan.prelude_ops.push(WriteOp::put_item(&item));
    plan.prelude_ops.extend(link);
    plan.prelude_events
        .push(ThreadStreamEvent::ItemDone { item: item.clone() });
    plan.title_from = title_from(thread, &item, settings);
    plan.last_created_at = Some(item.created_at);
    model_items.push(Cow::Owned(item.clone()));
    plan.prelude_items.push(item);
    Ok(())
}

/// Protocol §3.3: the browser's result completes the pending client tool call; other
/// pending calls among the newest items go (the safety net).
fn plan_tool_output(
    thread: &LoadedThread,
    result: serde_json::Value,
    plan: &mut TurnPlan,
    model_items: &mut Vec<Cow<'_, ThreadItem>>,
) -> Result<(), EngineError> {
    refuse_inactive(&thread.meta.status)?;
    let position = awaiting_client_tool_output(&thread.history).ok_or_else(|| {
        EngineError::Conflict("the thread has no pending client tool call".into())
    })?;
    let mut completed = thread.history[position].clone();
    if let ItemBody::ClientToolCall(call) = &mut completed.body {
        call.status = ToolCallStatus::Completed;
        call.output = Some(result);
    }
    let stale: Vec<ItemId> = thread
        .history
        .iter()
        .rev()
        .take(STALE_CALL_WINDOW)
        .filter(|i| i.id != completed.id && is_pending_call(i))
        .map(|i| i.id.clone())
        .collect();
    plan.prelude_ops.push(WriteOp::put_item(&completed));
    if !stale.is_empty() {
        plan.prelude_ops.push(WriteOp::DeleteItems {
            thread_id: thread.meta.id.clone(),
            item_ids: stale.clone(),
        });
    }
    if let Some(call) = model_items.iter_mut().find(|i| i.id == completed.id) {
        *call = Cow::Owned(completed.clone());
    }
    model_items.retain(|i| !stale.contains(&i.id));
    plan.removed_ids = stale;
    plan.prelude_items.push(completed);
    Ok(())
}

/// Where the call a client tool output completes is: the newest pending client tool call
/// among the newest items, wherever it is among them (items stored after it, such as a
/// cancellation marker, or one stamped the same instant, do not hide it), unless the user
/// wrote since (the call is stale then).
fn awaiting_client_tool_output(history: &[ThreadItem]) -> Option<usize> {
    history
        .iter()
        .enumerate()
        .rev()
        .take(STALE_CALL_WINDOW)
        .take_while(|(_, item)| !matches!(item.body, ItemBody::UserMessage(_)))
        .find(|(_, item)| is_pending_call(item))
        .map(|(position, _)| position)
}

fn is_pending_call(item: &ThreadItem) -> bool {
    matches!(&item.body, ItemBody::ClientToolCall(c) if c.status == ToolCallStatus::Pending)
}

/// Protocol §3.4: everything after the user message `item_id` goes, in storage too (items
/// older than what memory holds could not come after it: memory holds the newest).
fn plan_retry(
    thread: &LoadedThread,
    item_id: &crate::ids::ItemId,
    plan: &mut TurnPlan,
    model_items: &mut Vec<Cow<'_, ThreadItem>>,
) -> Result<(), EngineError> {
    let position = thread
        .history
        .iter()
        .position(|i| *item_id == i.id)
        .ok_or(EngineError::ItemNotFound)?;
    if !matches!(thread.history[position].body, ItemBody::UserMessage(_)) {
        return Err(EngineError::InvalidInput(format!(
            "item {item_id} is not a user message"
        )));
    }
    refuse_inactive(&thread.meta.status)?;
    plan.removed_ids = thread.history[position + 1..]
        .iter()
        .map(|i| i.id.clone())
        .collect();
    plan.prelude_ops.push(WriteOp::DeleteItemsAfter {
        thread_id: thread.meta.id.clone(),
        item_id: item_id.clone(),
    });
    model_items.truncate(position + 1);
    plan.last_created_at = model_items.last().map(|i| i.created_at);
    Ok(())
}

/// The model's input (the newest `history_limit` items) and the inference options of the
/// newest user message among them.
fn plan_model_input(
    plan: &mut TurnPlan,
    model_items: &[Cow<'_, ThreadItem>],
    settings: &PlanSettings,
) {
    let skip = model_items.len().saturating_sub(settings.history_limit);
    let newest = model_items[skip..].iter().map(|item| &**item);
    plan.model_input = history_messages(settings.instructions, newest);
    plan.inference = model_items
        .iter()
        .rev()
        .find_map(|item| match &item.body {
            ItemBody::UserMessage(m) => Some(m.inference_options.clone()),
            _ => None,
        })
        .unwrap_or_default();
    // A forced tool applies to the answer of the message, not to the turns continuing it
    // (after a client tool's output the model would be forced to call it again).
    if !model_items
        .last()
        .is_some_and(|i| matches!(i.body, ItemBody::UserMessage(_)))
    {
        plan.inference.tool_choice = None;
    }
}

/// Protocol §8.7, the one title decision: an untitled thread is titled from its first
/// answered message (`message`, a user message), when titles are on.
fn title_from(
    thread: &LoadedThread,
    message: &ThreadItem,
    settings: &PlanSettings,
) -> Option<(ThreadMeta, String)> {
    let answered_before = thread
        .history
        .iter()
        .any(|i| matches!(i.body, ItemBody::AssistantMessage(_)));
    if !settings.titles_enabled || thread.meta.title.is_some() || answered_before {
        return None;
    }
    match &message.body {
        ItemBody::UserMessage(m) => Some((thread.meta.clone(), m.plain_text())),
        _ => None,
    }
}

/// Whether `input` repeats the thread's newest item, a stored user message nothing answered.
fn is_resend_of_unanswered(
    thread: &LoadedThread,
    input: &crate::protocol::requests::UserMessageInput,
    attachments: &[Attachment],
) -> bool {
    let Some(ItemBody::UserMessage(last)) = thread.history.last().map(|i| &i.body) else {
        return false;
    };
    thread.persisted
        && last.content == input.content
        && last.quoted_text == input.quoted_text
        && last.inference_options == input.inference_options
        && last
            .attachments
            .iter()
            .map(|a| &a.id)
            .eq(attachments.iter().map(|a| &a.id))
}

/// A locked or closed thread takes no new input.
pub(super) fn refuse_inactive(status: &ThreadStatus) -> Result<(), EngineError> {
    let (status, reason) = match status {
        ThreadStatus::Active => return Ok(()),
        ThreadStatus::Locked { reason } => (InactiveStatus::Locked, reason),
        ThreadStatus::Closed { reason } => (InactiveStatus::Closed, reason),
    };
    Err(EngineError::ThreadNotActive {
        status,
        reason: reason.clone(),
    })
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
