//! The updates between two states of a streamed widget, as the SDK's `diff_widget`
//! (protocol §8.13): appends to the `value` of `Text`/`Markdown` nodes with an `id` are
//! `widget.streaming_text.value_delta`s, any other change one `widget.root.updated`.
//! Where the SDK raises (an id'd node that appears or a value that is not extended) we send
//! the whole tree instead.

use serde_json::{Map, Value};

use crate::protocol::ThreadItemUpdate;

/// The updates that turn `before` into `after` (none when they are equal).
pub fn diff_widget(before: &Value, after: &Value) -> Vec<ThreadItemUpdate> {
    let root_updated = || {
        vec![ThreadItemUpdate::WidgetRootUpdated {
            widget: after.clone(),
        }]
    };
    if full_replace(before, after) {
        return root_updated();
    }
    let mut before_nodes = Vec::new();
    streaming_text_nodes(before, &mut before_nodes);
    let mut after_nodes = Vec::new();
    streaming_text_nodes(after, &mut after_nodes);
    let mut updates = Vec::new();
    for (id, node) in after_nodes {
        let Some((_, old)) = before_nodes.iter().find(|(old_id, _)| *old_id == id) else {
            return root_updated();
        };
        let (old_value, new_value) = (text_value(old), text_value(node));
        if old_value == new_value {
            continue;
        }
        let Some(delta) = new_value.strip_prefix(old_value) else {
            return root_updated();
        };
        updates.push(ThreadItemUpdate::WidgetStreamingTextDelta {
            component_id: id.to_string(),
            delta: delta.to_string(),
            done: node.get("streaming").and_then(Value::as_bool) != Some(true),
        });
    }
    updates
}

/// A `Text` or `Markdown` node with an `id` and a string `value`.
fn streaming_text(node: &Map<String, Value>) -> bool {
    matches!(
        node.get("type").and_then(Value::as_str),
        Some("Text" | "Markdown")
    ) && node.get("value").is_some_and(Value::is_string)
        && node.get("id").is_some_and(Value::is_string)
}

fn text_value(node: &Map<String, Value>) -> &str {
    node.get("value")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn full_replace(before: &Value, after: &Value) -> bool {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return before != after;
    };
    for key in ["type", "id", "key"] {
        if b.get(key) != a.get(key) {
            return true;
        }
    }
    let lenient_value = streaming_text(b) && streaming_text(a);
    b.keys().chain(a.keys()).any(|key| {
        if lenient_value && key == "value" && text_value(a).starts_with(text_value(b)) {
            return false;
        }
        full_replace_value(b.get(key), a.get(key))
    })
}

fn full_replace_value(before: Option<&Value>, after: Option<&Value>) -> bool {
    match (before, after) {
        (Some(Value::Array(b)), Some(Value::Array(a))) => {
            b.len() != a.len()
                || b.iter()
                    .zip(a)
                    .any(|(b, a)| full_replace_value(Some(b), Some(a)))
        }
        (b, a) if b == a => false,
        (Some(b @ Value::Object(bm)), Some(a @ Value::Object(am)))
            if bm.contains_key("type") && am.contains_key("type") =>
        {
            full_replace(b, a)
        }
        _ => true,
    }
}

fn streaming_text_nodes<'a>(node: &'a Value, found: &mut Vec<(&'a str, &'a Map<String, Value>)>) {
    let Some(map) = node.as_object() else {
        return;
    };
    if streaming_text(map) {
        let id = map.get("id").and_then(Value::as_str).unwrap_or_default();
        found.push((id, map));
    }
    match map.get("children") {
        Some(Value::Array(children)) => {
            for child in children {
                streaming_text_nodes(child, found);
            }
        }
        Some(child @ Value::Object(_)) => streaming_text_nodes(child, found),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn card(value: &str, streaming: bool) -> Value {
        json!({"type": "Card", "children": [{"type": "Text", "id": "text", "value": value, "streaming": streaming}]})
    }

    fn kinds(updates: &[ThreadItemUpdate]) -> Vec<String> {
        updates
            .iter()
            .map(|u| {
                serde_json::to_value(u).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn the_sdk_cases() {
        let empty = json!({"type": "Card", "children": []});
        assert!(diff_widget(&empty, &empty).is_empty());
        assert_eq!(
            diff_widget(&card("Hello", true), &card("Hello, world!", true)),
            vec![ThreadItemUpdate::WidgetStreamingTextDelta {
                component_id: "text".into(),
                delta: ", world!".into(),
                done: false
            }]
        );
        assert_eq!(
            kinds(&diff_widget(
                &card("Hello", true),
                &card("Hello, world!", false)
            )),
            ["widget.root.updated"]
        );
        let plain = |v: &str| json!({"type": "Card", "children": [{"type": "Text", "value": v}]});
        assert_eq!(
            kinds(&diff_widget(&plain("Hello"), &plain("world!"))),
            ["widget.root.updated"]
        );
    }

    #[test]
    fn deltas_follow_the_reference_values() {
        // test_returns_widget_item_generator: "", "Hel", "Hello,", "Hello, world".
        let values = ["", "Hel", "Hello,", "Hello, world"];
        let deltas: Vec<String> = values
            .windows(2)
            .flat_map(|w| diff_widget(&card(w[0], true), &card(w[1], true)))
            .map(|u| match u {
                ThreadItemUpdate::WidgetStreamingTextDelta { delta, .. } => delta,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(deltas, ["Hel", "lo,", " world"]);
    }

    #[test]
    fn changes_the_sdk_refuses_send_the_whole_tree() {
        assert_eq!(
            kinds(&diff_widget(&card("Hello", true), &card("Help", true))),
            ["widget.root.updated"]
        );
        let added = json!({"type": "Card", "children": [
            {"type": "Text", "id": "text", "value": "Hello", "streaming": true},
            {"type": "Badge", "label": "final"}
        ]});
        assert_eq!(
            kinds(&diff_widget(&card("Hello", true), &added)),
            ["widget.root.updated"]
        );
    }
}
