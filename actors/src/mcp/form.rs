//! An elicitation's form as questions, and the answers as the tool's content — pure: a flat
//! MCP schema → questions (`form_from_schema`), the recorded answers → typed content
//! (`content_from_answers`).

use serde_json::{Map, Number, Value};

use super::elicitation::ElicitAnswer;
use crate::protocol::structured_input::ChoiceOption;
use crate::protocol::{
    StructuredInput, StructuredInputItem, StructuredInputKind, StructuredInputStatus,
};

/// Questions a form may ask at most (more properties are refused: declined).
const MAX_FIELDS: usize = 20;

/// The kind of value a question answers for its property.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldType {
    /// An enum: the values, and the labels shown (the values when none are given).
    Choice {
        values: Vec<String>,
        labels: Vec<String>,
    },
    Boolean,
    Text,
    Number,
    Integer,
}

/// One property of the requested schema, asked as one question.
#[derive(Clone, Debug, PartialEq)]
pub struct FormField {
    pub name: String,
    pub kind: FieldType,
    pub required: bool,
}

const YES: &str = "Yes";
const NO: &str = "No";

/// The questions a flat MCP schema asks, one per property; why not when it is not one.
pub fn form_from_schema(schema: &Value) -> Result<(Vec<FormField>, Vec<StructuredInput>), String> {
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .ok_or("the requested schema has no properties")?;
    if properties.is_empty() || properties.len() > MAX_FIELDS {
        return Err(format!("a form asks 1 to {MAX_FIELDS} questions"));
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut fields = Vec::new();
    let mut inputs = Vec::new();
    for (name, property) in properties {
        let field = FormField {
            name: name.clone(),
            kind: field_type(property)
                .ok_or_else(|| format!("property {name} is not a flat type"))?,
            required: required.contains(&name.as_str()),
        };
        inputs.push(question_for(&field, property));
        fields.push(field);
    }
    Ok((fields, inputs))
}

fn field_type(property: &Value) -> Option<FieldType> {
    let strings = |key: &str| -> Option<Vec<String>> {
        property
            .get(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    if let Some(values) = strings("enum") {
        let labels = strings("enumNames")
            .filter(|l| l.len() == values.len())
            .unwrap_or_else(|| values.clone());
        return Some(FieldType::Choice { values, labels });
    }
    if let Some(one_of) = property.get("oneOf").and_then(Value::as_array) {
        // The titled enum form: `oneOf: [{const, title}]`.
        let pairs: Option<Vec<(String, String)>> = one_of
            .iter()
            .map(|o| {
                let value = o.get("const")?.as_str()?.to_string();
                let label = o
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or(&value)
                    .to_string();
                Some((value, label))
            })
            .collect();
        let (values, labels) = pairs?.into_iter().unzip();
        return Some(FieldType::Choice { values, labels });
    }
    match property.get("type")?.as_str()? {
        "boolean" => Some(FieldType::Boolean),
        "string" => Some(FieldType::Text),
        "number" => Some(FieldType::Number),
        "integer" => Some(FieldType::Integer),
        _ => None,
    }
}

fn question_for(field: &FormField, property: &Value) -> StructuredInput {
    let text = |key: &str| {
        property
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut question = text("title").unwrap_or_else(|| field.name.clone());
    if field.required {
        question.push_str(" (required)");
    }
    let choices = |labels: &[String]| StructuredInputKind::MultipleChoice {
        options: labels
            .iter()
            .map(|l| ChoiceOption { value: l.clone() })
            .collect(),
        multiple: false,
    };
    let kind = match &field.kind {
        FieldType::Choice { labels, .. } => choices(labels),
        FieldType::Boolean => choices(&[YES.to_string(), NO.to_string()]),
        FieldType::Text | FieldType::Number | FieldType::Integer => StructuredInputKind::Freeform {
            description: text("description"),
        },
    };
    StructuredInput {
        id: field.name.clone(),
        question,
        answer: None,
        kind,
    }
}

/// The recorded answers as the tool's answer: `accept` with typed content (a choice's value
/// for its label, numbers parsed, yes/no as booleans), `decline` when the question was
/// skipped. `Err` with what does not fit (the question is asked again with it).
pub fn content_from_answers(
    fields: &[FormField],
    answered: &StructuredInputItem,
) -> Result<ElicitAnswer, String> {
    if answered.status != StructuredInputStatus::Answered {
        return Ok(ElicitAnswer::Decline);
    }
    let mut content = Map::new();
    let mut problems = Vec::new();
    for field in fields {
        let value = answered
            .inputs
            .iter()
            .find(|i| i.id == field.name)
            .and_then(|i| i.answer.as_ref())
            .filter(|a| !a.skipped)
            .and_then(|a| a.values.first())
            .map(|v| v.trim());
        match value.map(|v| typed(&field.kind, v)) {
            Some(Ok(typed)) => {
                content.insert(field.name.clone(), typed);
            }
            Some(Err(problem)) => problems.push(format!("{}: {problem}", field.name)),
            None if field.required => {
                problems.push(format!("{}: an answer is required", field.name))
            }
            None => {}
        }
    }
    match problems.is_empty() {
        true => Ok(ElicitAnswer::Accept(content)),
        false => Err(problems.join("; ")),
    }
}

fn typed(kind: &FieldType, text: &str) -> Result<Value, String> {
    match kind {
        FieldType::Choice { values, labels } => labels
            .iter()
            .position(|l| l == text)
            .or_else(|| values.iter().position(|v| v == text))
            .map(|i| Value::String(values[i].clone()))
            .ok_or_else(|| format!("choose one of {}", labels.join(", "))),
        FieldType::Boolean => match text.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(Value::Bool(true)),
            "no" | "false" => Ok(Value::Bool(false)),
            _ => Err("answer yes or no".into()),
        },
        FieldType::Text => Ok(Value::String(text.to_string())),
        FieldType::Integer => text
            .parse::<i64>()
            .map(|n| Value::Number(n.into()))
            .map_err(|_| format!("{text:?} is not a whole number")),
        FieldType::Number => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{text:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::protocol::structured_input::{apply_submission, skip_all};

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "size": {"type": "string", "title": "Size", "enum": ["s", "l"], "enumNames": ["Small", "Large"]},
            "count": {"type": "integer", "title": "How many?", "description": "1 to 9"},
            "urgent": {"type": "boolean"},
            "weight": {"type": "number"},
            "note": {"type": "string", "description": "For the cook"}
        }, "required": ["size", "count"]})
    }

    #[test]
    fn each_property_is_one_question_of_its_kind() {
        let (fields, inputs) = form_from_schema(&schema()).unwrap();
        assert_eq!(fields.len(), 5);
        assert_eq!(
            serde_json::to_value(&inputs).unwrap(),
            json!([
                {"id": "size", "question": "Size (required)", "type": "multiple_choice", "options": [{"value": "Small"}, {"value": "Large"}], "multiple": false},
                {"id": "count", "question": "How many? (required)", "type": "freeform", "description": "1 to 9"},
                {"id": "urgent", "question": "urgent", "type": "multiple_choice", "options": [{"value": "Yes"}, {"value": "No"}], "multiple": false},
                {"id": "weight", "question": "weight", "type": "freeform"},
                {"id": "note", "question": "note", "type": "freeform", "description": "For the cook"}
            ])
        );
        for bad in [
            json!({}),
            json!({"properties": {}}),
            json!({"properties": {"a": {"type": "object"}}}),
        ] {
            assert!(form_from_schema(&bad).is_err(), "{bad}");
        }
    }

    fn answered(answers: Value) -> StructuredInputItem {
        let (_, inputs) = form_from_schema(&schema()).unwrap();
        let item = StructuredInputItem {
            status: StructuredInputStatus::Pending,
            inputs,
        };
        apply_submission(
            &item,
            &serde_json::from_value(json!({ "answers": answers })).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn answers_are_typed_by_their_schema() {
        let (fields, inputs) = form_from_schema(&schema()).unwrap();
        let item = answered(json!({
            "size": {"values": ["Large"]}, "count": {"values": [" 3 "]},
            "urgent": {"values": ["Yes"]}, "weight": {"values": ["0.5"]}
        }));
        assert_eq!(
            content_from_answers(&fields, &item),
            Ok(ElicitAnswer::Accept(
                json!({"size": "l", "count": 3, "urgent": true, "weight": 0.5})
                    .as_object()
                    .unwrap()
                    .clone()
            ))
        );
        let skipped = skip_all(&StructuredInputItem {
            status: StructuredInputStatus::Pending,
            inputs,
        });
        assert_eq!(
            content_from_answers(&fields, &skipped),
            Ok(ElicitAnswer::Decline)
        );
    }

    #[test]
    fn a_value_that_does_not_fit_is_named() {
        let (fields, _) = form_from_schema(&schema()).unwrap();
        let item = answered(json!({"size": {"values": ["Huge"]}, "count": {"values": ["three"]}}));
        assert_eq!(
            content_from_answers(&fields, &item),
            Err("size: choose one of Small, Large; count: \"three\" is not a whole number".into())
        );
        let missing = answered(json!({"size": {"values": ["s"]}}));
        assert_eq!(
            content_from_answers(&fields, &missing),
            Err("count: an answer is required".into())
        );
    }
}
