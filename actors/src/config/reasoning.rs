//! The reasoning settings of a model (`reasoning_effort`, `reasoning_summary` in `[model]`
//! and `[[models]]`): serde enums whose names are the values the OpenAI APIs take, so what is
//! read from the configuration is what is sent.

use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::{DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Serialize};

/// How hard a reasoning model thinks: `reasoning_effort` (Chat Completions),
/// `reasoning.effort` (Responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    Minimal,
    Low,
    Medium,
    High,
}

/// The reasoning summaries asked of the Responses API (`reasoning.summary`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningSummary {
    Auto,
    Concise,
    Detailed,
}

/// A setting that takes one of an enum's values, written as their serde names.
pub(super) trait Choice: Copy + Serialize + DeserializeOwned + 'static {
    /// Every value, in the order a problem lists them.
    const ALL: &'static [Self];
}

impl Choice for ReasoningEffort {
    const ALL: &'static [Self] = &[Self::Minimal, Self::Low, Self::Medium, Self::High];
}

impl Choice for ReasoningSummary {
    const ALL: &'static [Self] = &[Self::Auto, Self::Concise, Self::Detailed];
}

/// The name a value is written and sent as.
fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        other => unreachable!("a unit variant serializes as a string: {other:?}"),
    }
}

/// `written` (the setting `key`) as a value of `T`; a problem line naming `key` and every
/// value when it is none of them. The text is read as written (`config` hands numbers
/// from the environment over as their text too).
fn parse_choice<T: Choice>(key: &str, written: &str) -> Result<T, String> {
    let text: StrDeserializer<'_, ValueError> = written.into_deserializer();
    T::deserialize(text).map_err(|_| {
        let allowed: Vec<String> = T::ALL.iter().map(name).collect();
        format!("{key} {written:?} is not one of {}", allowed.join(", "))
    })
}

/// An optional choice setting, its problem (if any) pushed to `problems`.
pub(super) fn read_choice<T: Choice>(
    key: &str,
    written: Option<&str>,
    problems: &mut Vec<String>,
) -> Option<T> {
    let written = written?;
    parse_choice(key, written)
        .map_err(|problem| problems.push(problem))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_read_and_sent_as_the_name_the_apis_take() {
        let efforts: Vec<String> = ReasoningEffort::ALL.iter().map(name).collect();
        assert_eq!(efforts, ["minimal", "low", "medium", "high"]);
        let summaries: Vec<String> = ReasoningSummary::ALL.iter().map(name).collect();
        assert_eq!(summaries, ["auto", "concise", "detailed"]);
        for effort in ReasoningEffort::ALL {
            assert_eq!(
                parse_choice::<ReasoningEffort>("k", &name(effort)),
                Ok(*effort)
            );
        }
        for summary in ReasoningSummary::ALL {
            assert_eq!(
                parse_choice::<ReasoningSummary>("k", &name(summary)),
                Ok(*summary)
            );
        }
    }

    #[test]
    fn anything_else_is_one_line_naming_the_key_and_every_value() {
        assert_eq!(
            parse_choice::<ReasoningEffort>("model.reasoning_effort", "huge"),
            Err(
                "model.reasoning_effort \"huge\" is not one of minimal, low, medium, high"
                    .to_string()
            )
        );
        // Names are exact: no other case, no blank.
        for written in ["High", " high", ""] {
            assert!(
                parse_choice::<ReasoningEffort>("k", written).is_err(),
                "{written:?}"
            );
        }
        let mut problems = Vec::new();
        let summary: Option<ReasoningSummary> = read_choice(
            "models \"deep\": reasoning_summary",
            Some("long"),
            &mut problems,
        );
        assert_eq!(summary, None);
        assert_eq!(
            problems,
            ["models \"deep\": reasoning_summary \"long\" is not one of auto, concise, detailed"]
        );
        let absent: Option<ReasoningSummary> = read_choice("k", None, &mut problems);
        assert_eq!((absent, problems.len()), (None, 1));
    }
}
