//! The agent part of a turn: model rounds until an answer, a client tool call or the limit
//! of model calls; each round's text streams as an assistant message, and each item is
//! committed before its `thread.item.done` leaves.

use std::sync::Arc;

use serde_json::{json, Value};

use super::choice::{offer, Offer};
use super::events::{AnswerInProgress, WorkflowInProgress};
use super::round::{RequestedCall, Round, ToolStep};
use super::run::{Ended, TurnRun};
use crate::ids::{prefix, ItemId};
use crate::mcp::{OfferedTool, OfferedTools};
use crate::model::{ChatMessage, ModelError, ModelStream, ToolCallRequest, ToolSpec};
use crate::protocol::{
    AssistantMessageContent, ClientToolCall, ItemBody, ThreadItem, ThreadItemUpdate,
    ThreadStreamEvent, ToolCallStatus, WorkflowKind,
};
use crate::store::cluster::LeaseState;
use crate::store::{ItemRecord, WriteOp};

/// What the turn starts while its input commits: the tools offered and the first model call.
pub(super) struct HeadStart {
    tools: Arc<[OfferedTool]>,
    specs: Arc<[ToolSpec]>,
    first: Result<ModelStream, ModelError>,
}

impl TurnRun<'_> {
    /// Lists the tools and starts the first model call; the turn runs this while its input
    /// commits, so the model's time to first byte overlaps the commit. Nothing of it reaches
    /// the client before the commit: the stream is only read by [`TurnRun::agent`].
    pub(super) async fn open_first_round(
        &mut self,
        input: &mut Vec<ChatMessage>,
    ) -> Result<HeadStart, Ended> {
        let env = self.env.clone();
        let agent = &env.settings.agent;
        let tools = if agent.mcp_servers.is_empty() {
            OfferedTools {
                tools: Arc::from([]),
                specs: Arc::from([]),
            }
        } else {
            let offered = self
                .mcp
                .offered_tools(&agent.mcp_servers, self.token.as_ref(), &env.mcp_health)
                .await;
            if !offered.missing.is_empty() {
                input.push(unavailable_tools_notice(&offered.missing));
            }
            offered.tools
        };
        let Offer {
            tools,
            specs,
            forced,
        } = offer(
            self.tool_choice.as_ref(),
            tools,
            &agent.client_tools,
            &self.thread_id,
        );
        let specs = super::ask_user::with_ask_user(specs, agent.ask_user);
        let first = self.model.stream(input, &specs, forced.as_deref()).await;
        Ok(HeadStart {
            tools,
            specs,
            first,
        })
    }

    /// Model rounds until an answer, a client tool call, or `agent.max_model_calls`; the
    /// first round reads the call `head` started.
    pub(super) async fn agent(&mut self, mut input: Vec<ChatMessage>, head: HeadStart) -> Ended {
        let agent = self.env.settings.agent.clone();
        let HeadStart {
            tools,
            specs,
            first,
        } = head;
        let mut first = Some(first);
        let mut workflow: Option<WorkflowInProgress> = None;
        for _ in 0..agent.max_model_calls.max(1) {
            match self
                .model_round(&input, &specs, first.take(), &mut workflow)
                .await
            {
                Round::Ended(ended) => return ended,
                Round::Text(answer) => {
                    if let Err(ended) = self.close_workflow(&mut workflow).await {
                        return ended;
                    }
                    return match self.complete_answer(answer, LeaseState::Idle).await {
                        Ok(()) => Ended::Answered,
                        Err(ended) => ended,
                    };
                }
                Round::ToolCalls(answer, calls, reasoning_items) => {
                    let step = ToolStep {
                        answer,
                        calls,
                        reasoning_items,
                    };
                    if let Some(ended) = self
                        .tool_step(step, &tools, &mut input, &mut workflow)
                        .await
                    {
                        return ended;
                    }
                }
            }
        }
        tracing::warn!(thread_id = %self.thread_id, max_model_calls = agent.max_model_calls, "agent.max_model_calls reached");
        Ended::Failed
    }

    /// After a round that called tools: its text committed, then a client tool call ends the
    /// turn, or the server tools run and their outputs extend `input` for the next round.
    /// `Some` when the turn ended.
    async fn tool_step(
        &mut self,
        step: ToolStep,
        tools: &[OfferedTool],
        input: &mut Vec<ChatMessage>,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Option<Ended> {
        let ToolStep {
            answer,
            calls,
            reasoning_items,
        } = step;
        let text = answer.text.clone();
        if answer.started {
            if let Err(ended) = self.complete_answer(answer, LeaseState::Streaming).await {
                return Some(ended);
            }
        }
        // Questions to the user first: the turn may wait for their answers.
        let asked = match self.ask_user_calls(&calls, workflow).await {
            Ok(asked) => asked,
            Err(ended) => return Some(ended),
        };
        let client_tools = &self.env.settings.agent.client_tools;
        if let Some(call) = calls
            .iter()
            .find(|c| client_tools.iter().any(|t| t.name == c.name))
        {
            if let Err(ended) = self.close_workflow(workflow).await {
                return Some(ended);
            }
            return Some(self.end_with_client_call(call).await);
        }
        // Reasoning ends where the tools start.
        if workflow
            .as_ref()
            .is_some_and(|w| w.kind == WorkflowKind::Reasoning)
        {
            if let Err(ended) = self.close_workflow(workflow).await {
                return Some(ended);
            }
        }
        let outputs = match self
            .run_server_tools_besides(&calls, asked, tools, workflow)
            .await
        {
            Ok(outputs) => outputs,
            Err(ended) => return Some(ended),
        };
        if self.question_skipped {
            // Nobody listens any more: the model reads the skipped question next turn.
            return Some(match self.close_workflow(workflow).await {
                Ok(()) => Ended::Answered,
                Err(ended) => ended,
            });
        }
        input.extend(reasoning_items.into_iter().map(ChatMessage::ProviderItem));
        input.push(ChatMessage::Assistant {
            content: (!text.is_empty()).then_some(text),
            tool_calls: calls
                .iter()
                .map(|c| {
                    ToolCallRequest::function(c.id.clone(), c.name.clone(), c.arguments.clone())
                })
                .collect(),
        });
        for (call, output) in calls.iter().zip(outputs) {
            input.push(ChatMessage::Tool {
                tool_call_id: call.id.clone(),
                content: output.text().to_string(),
            });
        }
        None
    }

    /// `content_part.done`, commit, `thread.item.done`.
    async fn complete_answer(
        &mut self,
        answer: AnswerInProgress,
        state: LeaseState,
    ) -> Result<(), Ended> {
        let item = answer.finish();
        let done = ThreadStreamEvent::ItemUpdated {
            item_id: item.id.clone(),
            update: ThreadItemUpdate::ContentPartDone {
                content_index: 0,
                content: AssistantMessageContent::text(answer.text.clone()),
            },
        };
        self.writer.send(&done).await;
        self.commit_and_announce(item, state).await
    }

    pub(super) async fn commit_and_announce(
        &mut self,
        item: ThreadItem,
        state: LeaseState,
    ) -> Result<(), Ended> {
        let row = ItemRecord::of(&item);
        // The row's body is the item's wire JSON: the event embeds it as it is.
        let mut done = Vec::with_capacity(row.body.len() + 48);
        ThreadStreamEvent::write_item_done_sse(&row.body, &mut done);
        match self
            .env
            .persist_as(&self.lease, state, vec![WriteOp::PutItem(row)])
            .await
        {
            Ok(()) => {
                self.writer.send_frame(&done).await;
                self.committed.push(item);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(thread_id = %self.thread_id, %error, "could not commit an item");
                Err(Ended::CommitFailed)
            }
        }
    }

    /// protocol §8.6: the turn ends with a pending `client_tool_call` the browser will run.
    async fn end_with_client_call(&mut self, call: &RequestedCall) -> Ended {
        let arguments = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => json!({}),
        };
        let item = ThreadItem {
            id: ItemId::generate(prefix::TOOL_CALL),
            thread_id: self.thread_id.clone(),
            created_at: self.next_timestamp(),
            body: ItemBody::ClientToolCall(ClientToolCall {
                status: ToolCallStatus::Pending,
                call_id: call.id.clone(),
                name: call.name.clone(),
                arguments,
                output: None,
            }),
        };
        match self.commit_and_announce(item, LeaseState::Idle).await {
            Ok(()) => Ended::Answered,
            Err(ended) => ended,
        }
    }
}

/// The one line that tells the model which tool servers' tools it cannot use this turn.
fn unavailable_tools_notice(servers: &[String]) -> ChatMessage {
    ChatMessage::System {
        content: format!(
            "The tools of these tool servers are unavailable right now: {}. Answer without them.",
            servers.join(", ")
        ),
    }
}
