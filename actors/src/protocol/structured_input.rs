//! Questions to the user (protocol §3.7, §6.6, §7.5): the `structured_input` item, the
//! submission `threads.add_structured_input` carries, and how a submission is recorded on the
//! item — serialized as openai-chatkit 1.6.5 does (key order, nulls left out).

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// protocol §6.6: the item's questions and where they stand.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StructuredInputItem {
    #[serde(default)]
    pub status: StructuredInputStatus,
    pub inputs: Vec<StructuredInput>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StructuredInputStatus {
    #[default]
    Pending,
    Answered,
    Skipped,
}

/// protocol §7.5: one question, `id, question, answer?` then `type` and its fields.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StructuredInput {
    pub id: String,
    pub question: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StructuredInputAnswer>,
    #[serde(flatten)]
    pub kind: StructuredInputKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum StructuredInputKind {
    #[serde(rename = "multiple_choice")]
    MultipleChoice {
        options: Vec<ChoiceOption>,
        #[serde(default)]
        multiple: bool,
    },
    #[serde(rename = "freeform")]
    Freeform {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
}

/// One choice of a multiple-choice question: the text shown, and submitted when chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceOption {
    pub value: String,
}

/// The answer recorded for a question (always both keys).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructuredInputAnswer {
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub skipped: bool,
}

impl StructuredInputAnswer {
    pub fn skipped() -> Self {
        StructuredInputAnswer {
            values: Vec::new(),
            skipped: true,
        }
    }
}

/// protocol §3.7: what the client submits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StructuredInputSubmission {
    #[serde(default)]
    pub status: SubmissionStatus,
    #[serde(default)]
    pub answers: SubmittedAnswers,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubmissionStatus {
    #[default]
    Answered,
    Skipped,
}

/// The submitted answers by question id, in the client's order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubmittedAnswers(pub Vec<(String, StructuredInputAnswer)>);

impl SubmittedAnswers {
    fn get(&self, id: &str) -> Option<&StructuredInputAnswer> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, a)| a)
    }
}

impl Serialize for SubmittedAnswers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (id, answer) in &self.0 {
            map.serialize_entry(id, answer)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SubmittedAnswers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = SubmittedAnswers;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of answers by question id")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, StructuredInputAnswer>()? {
                    entries.push(entry);
                }
                Ok(SubmittedAnswers(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// Why a submission cannot be recorded.
#[derive(Debug, PartialEq, Eq)]
pub struct NotPending;

/// protocol §3.7: the item with `submission` recorded. Unknown question ids are ignored; a
/// missing, empty or skipped answer (or a skipped submission) skips its question; a
/// single-choice question keeps the first value.
pub fn apply_submission(
    item: &StructuredInputItem,
    submission: &StructuredInputSubmission,
) -> Result<StructuredInputItem, NotPending> {
    if item.status != StructuredInputStatus::Pending {
        return Err(NotPending);
    }
    let mut updated = item.clone();
    for input in &mut updated.inputs {
        let answer = submission.answers.get(&input.id);
        input.answer = Some(match answer {
            Some(a)
                if submission.status == SubmissionStatus::Answered
                    && !a.skipped
                    && !a.values.is_empty() =>
            {
                let mut values = a.values.clone();
                if matches!(
                    input.kind,
                    StructuredInputKind::MultipleChoice {
                        multiple: false,
                        ..
                    }
                ) {
                    values.truncate(1);
                }
                StructuredInputAnswer {
                    values,
                    skipped: false,
                }
            }
            _ => StructuredInputAnswer::skipped(),
        });
    }
    updated.status = match submission.status {
        SubmissionStatus::Answered => StructuredInputStatus::Answered,
        SubmissionStatus::Skipped => StructuredInputStatus::Skipped,
    };
    Ok(updated)
}

/// The item with every question skipped (expired, superseded, or abandoned).
pub fn skip_all(item: &StructuredInputItem) -> StructuredInputItem {
    let mut skipped = item.clone();
    for input in &mut skipped.inputs {
        input.answer = Some(StructuredInputAnswer::skipped());
    }
    skipped.status = StructuredInputStatus::Skipped;
    skipped
}

/// How the official bridge shows the model a structured input (`structured_input_to_input`).
pub fn model_text(item: &StructuredInputItem) -> String {
    let status = match item.status {
        StructuredInputStatus::Pending => "pending",
        StructuredInputStatus::Answered => "answered",
        StructuredInputStatus::Skipped => "skipped",
    };
    let lines: Vec<String> = item
        .inputs
        .iter()
        .map(|q| match &q.answer {
            None => format!("- {}: unanswered", q.question),
            Some(a) if a.skipped => format!("- {}: skipped", q.question),
            Some(a) => format!("- {}: {}", q.question, a.values.join(", ")),
        })
        .collect();
    format!(
        "A structured input request was displayed to the user with the following status: {status}\n<StructuredInput>\n{}\n</StructuredInput>",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item() -> StructuredInputItem {
        serde_json::from_value(json!({"inputs": [
            {"id": "color", "question": "Color?", "type": "multiple_choice", "options": [{"value": "Red"}, {"value": "Blue"}]},
            {"id": "sizes", "question": "Sizes?", "type": "multiple_choice", "options": [{"value": "S"}], "multiple": true},
            {"id": "notes", "question": "Notes?", "type": "freeform", "description": "optional"}
        ]}))
        .unwrap()
    }

    fn submission(value: serde_json::Value) -> StructuredInputSubmission {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn keys_are_in_the_sdks_order_and_nulls_left_out() {
        let text = serde_json::to_string(&item()).unwrap();
        assert_eq!(
            text,
            r#"{"status":"pending","inputs":[{"id":"color","question":"Color?","type":"multiple_choice","options":[{"value":"Red"},{"value":"Blue"}],"multiple":false},{"id":"sizes","question":"Sizes?","type":"multiple_choice","options":[{"value":"S"}],"multiple":true},{"id":"notes","question":"Notes?","type":"freeform","description":"optional"}]}"#
        );
    }

    #[test]
    fn a_submission_is_recorded_as_the_sdk_records_it() {
        let answered = apply_submission(
            &item(),
            &submission(json!({"answers": {
                "color": {"values": ["Green", "Red"]},
                "sizes": {"values": ["S", "M"]},
                "ghost": {"values": ["x"]}
            }})),
        )
        .unwrap();
        assert_eq!(answered.status, StructuredInputStatus::Answered);
        let answers: Vec<_> = answered
            .inputs
            .iter()
            .map(|i| i.answer.clone().unwrap())
            .collect();
        // Free text outside the options is kept; single choice keeps the first value.
        assert_eq!(answers[0].values, ["Green"]);
        assert_eq!(answers[1].values, ["S", "M"]);
        assert_eq!(answers[2], StructuredInputAnswer::skipped());
        assert_eq!(
            apply_submission(&answered, &submission(json!({}))),
            Err(NotPending)
        );
    }

    #[test]
    fn skipped_empty_or_missing_answers_skip_their_question() {
        let item = item();
        for s in [
            json!({"status": "skipped", "answers": {"color": {"values": ["Red"]}}}),
            json!({"answers": {"color": {"values": ["Red"], "skipped": true}}}),
            json!({"answers": {"color": {"values": []}}}),
            json!({}),
        ] {
            let done = apply_submission(&item, &submission(s.clone())).unwrap();
            assert_eq!(
                done.inputs[0].answer,
                Some(StructuredInputAnswer::skipped()),
                "{s}"
            );
        }
        assert_eq!(skip_all(&item).status, StructuredInputStatus::Skipped);
    }

    #[test]
    fn the_model_reads_it_as_the_official_bridge_writes_it() {
        let done = apply_submission(
            &item(),
            &submission(
                json!({"answers": {"color": {"values": ["Red"]}, "sizes": {"values": ["S", "M"]}}}),
            ),
        )
        .unwrap();
        assert_eq!(
            model_text(&done),
            "A structured input request was displayed to the user with the following status: answered\n<StructuredInput>\n- Color?: Red\n- Sizes?: S, M\n- Notes?: skipped\n</StructuredInput>"
        );
    }
}
