//! The model's `ask_user` tool (`agent.ask_user`): its arguments are the questions (multiple
//! choice or free text), asked as a `structured_input` item (`ask.rs`); the answers, as the
//! official bridge words them, are its result.

use std::sync::{Arc, LazyLock};

use serde::Deserialize;
use serde_json::json;

use super::events::WorkflowInProgress;
use super::round::RequestedCall;
use super::run::Ended;
use super::TurnRun;
use crate::config::ASK_USER_TOOL;
use crate::mcp::{OfferedTool, ToolOutput};
use crate::model::{FunctionSpec, ToolSpec};
use crate::protocol::structured_input::{model_text, ChoiceOption};
use crate::protocol::{StructuredInput, StructuredInputKind};
use crate::tool_schema::ToolSchema;

/// Questions per call, options per question, and characters of a question at most.
const MAX_QUESTIONS: usize = 10;
const MAX_OPTIONS: usize = 20;
const MAX_TEXT_CHARS: usize = 2000;

static SPEC: LazyLock<ToolSpec> = LazyLock::new(|| {
    ToolSpec::new(FunctionSpec {
        name: ASK_USER_TOOL.to_string(),
        description: Some(
            "Ask the user one or more questions and wait for the answers. Use it when you \
             need a choice or a detail only the user can give."
                .into(),
        ),
        parameters: ToolSchema::new(&json!({
            "type": "object",
            "properties": {
                "questions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "description": "A short stable id."},
                            "question": {"type": "string"},
                            "options": {
                                "type": "array", "items": {"type": "string"},
                                "description": "Choices to offer; leave out for a free-text answer."
                            },
                            "multiple": {"type": "boolean", "description": "Several choices allowed."},
                            "description": {"type": "string", "description": "Help shown with a free-text question."}
                        },
                        "required": ["question"]
                    }
                }
            },
            "required": ["questions"]
        })),
    })
});

/// The tools offered, with `ask_user` when `agent.ask_user` is on.
pub(super) fn with_ask_user(specs: Arc<[ToolSpec]>, ask_user: bool) -> Arc<[ToolSpec]> {
    if !ask_user {
        return specs;
    }
    specs.iter().cloned().chain([SPEC.clone()]).collect()
}

#[derive(Deserialize)]
struct Arguments {
    questions: Vec<Question>,
}

#[derive(Deserialize)]
struct Question {
    id: Option<String>,
    question: String,
    #[serde(default)]
    options: Vec<String>,
    #[serde(default)]
    multiple: bool,
    description: Option<String>,
}

/// The questions the model's arguments ask; why not, in words the model reads.
pub(super) fn questions_from_arguments(arguments: &str) -> Result<Vec<StructuredInput>, String> {
    let parsed: Arguments = serde_json::from_str(arguments)
        .map_err(|e| format!("ask_user needs {{\"questions\": [{{\"question\": …}}]}}: {e}"))?;
    if parsed.questions.is_empty() || parsed.questions.len() > MAX_QUESTIONS {
        return Err(format!("ask_user takes 1 to {MAX_QUESTIONS} questions"));
    }
    let mut inputs: Vec<StructuredInput> = Vec::with_capacity(parsed.questions.len());
    for (index, q) in parsed.questions.into_iter().enumerate() {
        let text = q.question.trim();
        if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
            return Err("each question needs a text of at most 2000 characters".into());
        }
        if q.options.len() > MAX_OPTIONS {
            return Err(format!("a question takes at most {MAX_OPTIONS} options"));
        }
        // Ids answer back: given ones kept when unique, else numbered.
        let id =
            q.id.filter(|id| !id.trim().is_empty() && !inputs.iter().any(|i| i.id == *id))
                .unwrap_or_else(|| format!("q{}", index + 1));
        let kind = if q.options.is_empty() {
            StructuredInputKind::Freeform {
                description: q.description,
            }
        } else {
            StructuredInputKind::MultipleChoice {
                options: q
                    .options
                    .into_iter()
                    .map(|value| ChoiceOption { value })
                    .collect(),
                multiple: q.multiple,
            }
        };
        inputs.push(StructuredInput {
            id,
            question: text.to_string(),
            answer: None,
            kind,
        });
    }
    Ok(inputs)
}

impl TurnRun<'_> {
    /// The round's `ask_user` calls answered (an open workflow closed first: the stream ends
    /// while the user answers); `None` for the other calls.
    pub(super) async fn ask_user_calls(
        &mut self,
        calls: &[RequestedCall],
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<Vec<Option<ToolOutput>>, Ended> {
        let agent = &self.env.settings.agent;
        if !agent.ask_user || !calls.iter().any(|c| c.name == ASK_USER_TOOL) {
            return Ok(vec![None; calls.len()]);
        }
        self.close_workflow(workflow).await?;
        self.answer_ask_user(calls).await
    }

    /// The other calls run as server tools; all outputs in call order.
    pub(super) async fn run_server_tools_besides(
        &mut self,
        calls: &[RequestedCall],
        asked: Vec<Option<ToolOutput>>,
        tools: &[OfferedTool],
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<Vec<ToolOutput>, Ended> {
        let rest: Vec<RequestedCall> = calls
            .iter()
            .zip(&asked)
            .filter(|(_, answer)| answer.is_none())
            .map(|(call, _)| call.clone())
            .collect();
        let mut ran = if rest.is_empty() {
            Vec::new()
        } else {
            self.run_server_tools(&rest, tools, workflow).await?
        }
        .into_iter();
        Ok(asked
            .into_iter()
            .map(|answer| answer.unwrap_or_else(|| ran.next().expect("one output per call")))
            .collect())
    }

    /// The round's `ask_user` calls, each asked in turn: each call's output (`None` for the
    /// other calls). `Err` when a commit failed.
    pub(super) async fn answer_ask_user(
        &mut self,
        calls: &[RequestedCall],
    ) -> Result<Vec<Option<ToolOutput>>, Ended> {
        let mut outputs = Vec::with_capacity(calls.len());
        for call in calls {
            if call.name != ASK_USER_TOOL || !self.env.settings.agent.ask_user {
                outputs.push(None);
                continue;
            }
            if self.question_skipped {
                outputs.push(Some(ToolOutput::Failed("not asked".into())));
                continue;
            }
            let output = match questions_from_arguments(&call.arguments) {
                Err(problem) => ToolOutput::Failed(problem),
                Ok(inputs) => {
                    let asked = self.asker().ask(inputs, None).await?;
                    ToolOutput::Ok(model_text(&asked))
                }
            };
            outputs.push(Some(output));
        }
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_models_questions_become_choices_or_free_text() {
        let inputs = questions_from_arguments(
            r#"{"questions": [
                {"id": "size", "question": "Which size?", "options": ["S", "M"]},
                {"id": "size", "question": " Anything else? ", "description": "optional"},
                {"question": "Toppings?", "options": ["a", "b"], "multiple": true}
            ]}"#,
        )
        .unwrap();
        let wire = serde_json::to_string(&inputs).unwrap();
        assert_eq!(
            wire,
            r#"[{"id":"size","question":"Which size?","type":"multiple_choice","options":[{"value":"S"},{"value":"M"}],"multiple":false},{"id":"q2","question":"Anything else?","type":"freeform","description":"optional"},{"id":"q3","question":"Toppings?","type":"multiple_choice","options":[{"value":"a"},{"value":"b"}],"multiple":true}]"#
        );
    }

    #[test]
    fn bad_arguments_are_told_to_the_model() {
        for bad in [
            "",
            "{}",
            r#"{"questions": []}"#,
            r#"{"questions": [{"question": "  "}]}"#,
        ] {
            assert!(questions_from_arguments(bad).is_err(), "{bad}");
        }
    }
}
