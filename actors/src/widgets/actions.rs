//! Whether a widget action request names an action the sender widget really holds: the type
//! must match one of its actions, and every key of that action's declared payload must come
//! back unchanged (the client merges form fields into the payload, so extra keys are fine).

use serde_json::Value;

use super::validate::actions_of;
use crate::error::EngineError;

pub fn check_action_in_widget(
    widget: &Value,
    action_type: &str,
    payload: &Value,
) -> Result<(), EngineError> {
    let sent = match payload {
        Value::Null => None,
        Value::Object(map) => Some(map),
        _ => {
            return Err(EngineError::InvalidInput(
                "action.payload must be an object or null".into(),
            ))
        }
    };
    let holds = actions_of(widget).into_iter().any(|action| {
        if action.get("type").and_then(Value::as_str) != Some(action_type) {
            return false;
        }
        match action.get("payload") {
            None | Some(Value::Null) => true,
            Some(Value::Object(declared)) => declared
                .iter()
                .all(|(key, value)| sent.and_then(|s| s.get(key)) == Some(value)),
            // A declared non-object payload must come back as it is.
            Some(declared) => payload == declared,
        }
    });
    if holds {
        Ok(())
    } else {
        Err(EngineError::ActionNotInWidget(
            "the widget has no such action".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_actions_the_widget_holds_pass() {
        let widget = json!({"type": "Card", "children": [
            {"type": "Button", "onClickAction": {"type": "tasks.complete", "payload": {"task_id": "t1"}}},
            {"type": "Form", "onSubmitAction": {"type": "tasks.add"}, "children": []}
        ]});
        let ok = |t: &str, p: Value| check_action_in_widget(&widget, t, &p).is_ok();
        assert!(ok("tasks.complete", json!({"task_id": "t1"})));
        assert!(ok("tasks.complete", json!({"task_id": "t1", "extra": 1})));
        assert!(ok("tasks.add", json!({"title": "from the form"})));
        assert!(ok("tasks.add", Value::Null));
        assert!(!ok("tasks.complete", json!({"task_id": "t2"})));
        assert!(!ok("tasks.complete", json!({})));
        assert!(!ok("tasks.delete", json!({"task_id": "t1"})));
        assert!(matches!(
            check_action_in_widget(&widget, "tasks.add", &json!([1])),
            Err(EngineError::InvalidInput(_))
        ));
    }
}
