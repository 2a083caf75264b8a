//! An MCP tool's elicitation asked as a question (`ask.rs`): each property of its schema one
//! input, the tool's message heading the first. The answer goes back typed (`accept`), or
//! `decline` when the user skipped; an answer that does not fit the schema asks again with a
//! notice; a question skipped for the user (expired, superseded, the actor retiring) is a
//! `cancel`.

use super::ask::Asker;
use super::run::Ended;
use crate::mcp::{content_from_answers, form_from_schema, ElicitAnswer, Elicitation};

impl Asker<'_, '_> {
    /// Asks until the answer fits (or the question is skipped), then answers the tool.
    pub async fn ask_for_tool(&mut self, asked: Elicitation) -> Result<(), Ended> {
        let Elicitation {
            message,
            schema,
            reply,
        } = asked;
        if *self.skipped {
            // A question of this turn was skipped: nobody listens any more.
            let _ = reply.send(ElicitAnswer::Cancel);
            return Ok(());
        }
        let (fields, mut inputs) = match form_from_schema(&schema) {
            Ok(form) => form,
            Err(problem) => {
                tracing::debug!(thread_id = %self.thread_id, %problem, "an elicitation is declined");
                let _ = reply.send(ElicitAnswer::Decline);
                return Ok(());
            }
        };
        if let Some(first) = inputs.first_mut() {
            first.question = format!("{} {}", message.trim(), first.question);
        }
        let mut notice = None;
        loop {
            let answered = self.ask(inputs.clone(), notice.take()).await?;
            if *self.skipped {
                let _ = reply.send(ElicitAnswer::Cancel);
                return Ok(());
            }
            match content_from_answers(&fields, &answered) {
                Ok(answer) => {
                    let _ = reply.send(answer);
                    return Ok(());
                }
                Err(problem) => notice = Some(format!("Please check your answer ({problem}).")),
            }
        }
    }
}
