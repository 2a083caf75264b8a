//! Workflow items as a turn streams them (protocol §8.5): tool calls as `custom` tasks, the
//! model's reasoning as a `reasoning` workflow of `thought` tasks; each committed and
//! announced with its duration when it closes.

use std::time::Instant;

use super::events::{thoughts, WorkflowInProgress, WorkflowTask, THOUGHT_UPDATE_INTERVAL};
use super::run::{Ended, TurnRun};
use crate::protocol::{ThreadItemUpdate, ThreadStreamEvent, WorkflowKind};
use crate::store::cluster::LeaseState;

impl TurnRun<'_> {
    /// Adds a task, opening the workflow (with that task) if none is open (protocol §8.5).
    pub(super) async fn add_workflow_task(
        &mut self,
        workflow: &mut Option<WorkflowInProgress>,
        task: WorkflowTask,
    ) -> usize {
        match workflow {
            Some(open) => {
                let event = ThreadStreamEvent::ItemUpdated {
                    item_id: open.id.clone(),
                    update: ThreadItemUpdate::WorkflowTaskAdded {
                        task_index: open.tasks.len(),
                        task: task.to_value(),
                    },
                };
                open.tasks.push(task);
                let index = open.tasks.len() - 1;
                self.writer.send(&event).await;
                index
            }
            None => {
                let opened = WorkflowInProgress::new(
                    WorkflowKind::Custom,
                    self.next_timestamp(),
                    vec![task],
                );
                let event = ThreadStreamEvent::ItemAdded {
                    item: opened.item(&self.thread_id, false),
                };
                self.writer.send(&event).await;
                *workflow = Some(opened);
                0
            }
        }
    }

    pub(super) async fn update_workflow_task(
        &mut self,
        workflow: &mut Option<WorkflowInProgress>,
        index: usize,
        task: WorkflowTask,
    ) {
        let Some(open) = workflow else { return };
        let event = ThreadStreamEvent::ItemUpdated {
            item_id: open.id.clone(),
            update: ThreadItemUpdate::WorkflowTaskUpdated {
                task_index: index,
                task: task.to_value(),
            },
        };
        open.tasks[index] = task;
        self.writer.send(&event).await;
    }

    /// Shows the model's reasoning as a `reasoning` workflow (protocol §8.5): opened (closing a
    /// tool workflow first) with `thread.item.added` and no tasks, then one `thought` task per
    /// paragraph, the one being written re-sent at most every [`THOUGHT_UPDATE_INTERVAL`].
    pub(super) async fn show_reasoning(
        &mut self,
        workflow: &mut Option<WorkflowInProgress>,
        delta: &str,
    ) -> Result<(), Ended> {
        if workflow
            .as_ref()
            .is_some_and(|w| w.kind != WorkflowKind::Reasoning)
        {
            self.close_workflow(workflow).await?;
        }
        let open = match workflow {
            Some(open) => open,
            None => {
                let opened =
                    WorkflowInProgress::new(WorkflowKind::Reasoning, self.next_timestamp(), vec![]);
                let event = ThreadStreamEvent::ItemAdded {
                    item: opened.item(&self.thread_id, false),
                };
                self.writer.send(&event).await;
                workflow.insert(opened)
            }
        };
        open.reasoning.push_str(delta);
        self.show_thoughts(open, false).await;
        Ok(())
    }

    /// Brings the client's thoughts up to the reasoning text: new paragraphs are added, a
    /// finished one is sent whole, the one being written when it is due (or `flush`).
    async fn show_thoughts(&mut self, open: &mut WorkflowInProgress, flush: bool) {
        let due = flush
            || open
                .shown_at
                .is_none_or(|at| at.elapsed() >= THOUGHT_UPDATE_INTERVAL);
        let current: Vec<String> = thoughts(&open.reasoning)
            .into_iter()
            .map(str::to_string)
            .collect();
        let last_thought = current.len().saturating_sub(1);
        for (index, thought) in current.iter().enumerate() {
            let index = open.thoughts_from + index;
            let last = open.thoughts_from + last_thought;
            let task = WorkflowTask::thought(thought);
            let update = if index >= open.tasks.len() {
                let update = ThreadItemUpdate::WorkflowTaskAdded {
                    task_index: index,
                    task: task.to_value(),
                };
                open.tasks.push(task);
                update
            } else if open.tasks[index] != task && (due || index < last) {
                let update = ThreadItemUpdate::WorkflowTaskUpdated {
                    task_index: index,
                    task: task.to_value(),
                };
                open.tasks[index] = task;
                update
            } else {
                continue;
            };
            let event = ThreadStreamEvent::ItemUpdated {
                item_id: open.id.clone(),
                update,
            };
            self.writer.send(&event).await;
        }
        if due {
            open.shown_at = Some(Instant::now());
        }
    }

    /// Shows every thought so far and starts the next ones after the tasks present, so a
    /// hosted tool step can join an open reasoning workflow between thoughts.
    pub(super) async fn settle_thoughts(&mut self, open: &mut WorkflowInProgress) {
        if open.kind == WorkflowKind::Reasoning {
            self.show_thoughts(open, true).await;
            open.reasoning.clear();
        }
    }

    /// Commits and announces an open workflow with its duration summary.
    pub(super) async fn close_workflow(
        &mut self,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<(), Ended> {
        let Some(mut open) = workflow.take() else {
            return Ok(());
        };
        if open.kind == WorkflowKind::Reasoning {
            self.show_thoughts(&mut open, true).await;
        }
        let item = open.item(&self.thread_id, true);
        self.commit_and_announce(item, LeaseState::Streaming).await
    }
}
