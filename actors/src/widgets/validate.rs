//! What a widget root must look like before it is stored (specs/widgets.md, "Validation"):
//! the official `WidgetRoot` rules (a `Card`, `ListView` or `Basic` root, nodes with a string
//! `type`) plus what the UI needs to act on it (well-formed actions) and bounds on depth and
//! size. Component types the server does not know pass through, as the SDK's
//! `DynamicWidgetComponent` passes them: newer clients draw components added since.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use serde_json::{Map, Value};

/// Roots allowed in a `widget` item (protocol §6.4).
pub const ROOT_TYPES: &[&str] = &["Card", "ListView", "Basic"];

/// The components of protocol §7.7 (roots included) and ChatKit JS 1.7's table parts; any
/// other type is let through and noted once at debug level.
const KNOWN_COMPONENTS: &[&str] = &[
    "Card",
    "ListView",
    "Basic",
    "ListViewItem",
    "Text",
    "Title",
    "Caption",
    "Markdown",
    "Badge",
    "Box",
    "Row",
    "Col",
    "Form",
    "Divider",
    "Icon",
    "Image",
    "Button",
    "Spacer",
    "Select",
    "DatePicker",
    "Checkbox",
    "Input",
    "Label",
    "RadioGroup",
    "Textarea",
    "Transition",
    "Chart",
    "Table",
    "Table.Row",
    "Table.Cell",
];

/// How many distinct unknown component types are noted (once each).
const NOTED_TYPES_CAP: usize = 256;

static NOTED_UNKNOWN_TYPES: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

/// Notes, once per type, a component type this server does not know.
fn note_unknown_type(kind: &str) {
    if KNOWN_COMPONENTS.contains(&kind) {
        return;
    }
    let mut noted = NOTED_UNKNOWN_TYPES
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if noted.len() < NOTED_TYPES_CAP && noted.insert(kind.to_string()) {
        tracing::debug!(component = %crate::text::shorten_for_display(kind, 64), "a widget holds a component type this server does not know; passed through");
    }
}

/// Props that hold an `ActionConfig`.
const ACTION_PROPS: &[&str] = &["onClickAction", "onSubmitAction", "onChangeAction"];

const MAX_DEPTH: usize = 64;
/// Largest widget stored, as compact JSON.
pub const MAX_WIDGET_BYTES: usize = 256 * 1024;

/// Why a widget was refused (logged, never shown to the user).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WidgetError {
    #[error("the root is not an object with type Card, ListView or Basic")]
    BadRoot,
    #[error("a node at {0} is not an object with a component type")]
    BadNode(String),
    #[error("{0} is not a string")]
    NotAString(String),
    #[error("the action at {0} is not an object with a non-empty type")]
    BadAction(String),
    #[error("deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("larger than {MAX_WIDGET_BYTES} bytes")]
    TooLarge,
    #[error("the template failed: {0}")]
    Template(String),
}

/// Checks `root` and returns it in its canonical form ([`canonical`]).
pub fn validated_root(root: &Value) -> Result<Value, WidgetError> {
    let canonical = canonical(root);
    match canonical.get("type").and_then(Value::as_str) {
        Some(kind) if ROOT_TYPES.contains(&kind) => {}
        _ => return Err(WidgetError::BadRoot),
    }
    check_node(&canonical, "$", 0)?;
    if serde_json::to_vec(&canonical).map_or(usize::MAX, |v| v.len()) > MAX_WIDGET_BYTES {
        return Err(WidgetError::TooLarge);
    }
    Ok(canonical)
}

/// A widget tree as the SDK serializes one built from a template (`DynamicWidgetRoot`):
/// every node's `key`, `id`, `type` and `children` first, then its other props in their
/// order; nulls dropped everywhere (`_drop_none` and `exclude_none`).
pub fn canonical(node: &Value) -> Value {
    const FIRST: [&str; 4] = ["key", "id", "type", "children"];
    match node {
        Value::Object(map) => {
            let mut out = Map::with_capacity(map.len());
            for key in FIRST {
                match map.get(key) {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(children)) if key == "children" => {
                        out.insert(
                            key.into(),
                            Value::Array(
                                children
                                    .iter()
                                    .filter(|c| !c.is_null())
                                    .map(canonical)
                                    .collect(),
                            ),
                        );
                    }
                    Some(child) if key == "children" => {
                        out.insert(key.into(), canonical(child));
                    }
                    Some(value) => {
                        out.insert(key.into(), value.clone());
                    }
                }
            }
            for (key, value) in map {
                if !FIRST.contains(&key.as_str()) && !value.is_null() {
                    out.insert(key.clone(), scrub_nulls(value));
                }
            }
            Value::Object(out)
        }
        other => scrub_nulls(other),
    }
}

/// Drops nulls (object values and array elements), recursively.
pub fn scrub_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(key, v)| (key.clone(), scrub_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|v| !v.is_null())
                .map(scrub_nulls)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn check_node(node: &Value, path: &str, depth: usize) -> Result<(), WidgetError> {
    if depth > MAX_DEPTH {
        return Err(WidgetError::TooDeep);
    }
    let Some(map) = node.as_object() else {
        return Err(WidgetError::BadNode(path.to_string()));
    };
    match map.get("type").and_then(Value::as_str) {
        Some(kind) if !kind.is_empty() => note_unknown_type(kind),
        _ => return Err(WidgetError::BadNode(path.to_string())),
    }
    for key in ["id", "key"] {
        if map.get(key).is_some_and(|v| !v.is_string()) {
            return Err(WidgetError::NotAString(format!("{path}.{key}")));
        }
    }
    check_actions(map, path)?;
    match map.get("children") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(children)) => {
            for (i, child) in children.iter().enumerate() {
                check_node(child, &format!("{path}.children[{i}]"), depth + 1)?;
            }
            Ok(())
        }
        Some(child @ Value::Object(_)) => check_node(child, &format!("{path}.children"), depth + 1),
        Some(_) => Err(WidgetError::BadNode(format!("{path}.children"))),
    }
}

fn check_actions(map: &Map<String, Value>, path: &str) -> Result<(), WidgetError> {
    for prop in ACTION_PROPS {
        if let Some(action) = map.get(*prop) {
            check_action(action, &format!("{path}.{prop}"))?;
        }
    }
    for footer in ["confirm", "cancel"] {
        if let Some(button) = map.get(footer) {
            let action = button.get("action").unwrap_or(&Value::Null);
            check_action(action, &format!("{path}.{footer}.action"))?;
        }
    }
    Ok(())
}

fn check_action(action: &Value, path: &str) -> Result<(), WidgetError> {
    let bad = || WidgetError::BadAction(path.to_string());
    let map = action.as_object().ok_or_else(bad)?;
    match map.get("type").and_then(Value::as_str) {
        Some(kind) if !kind.is_empty() => {}
        _ => return Err(bad()),
    }
    match map.get("handler") {
        None => {}
        Some(Value::String(h)) if h == "server" || h == "client" => {}
        Some(_) => return Err(bad()),
    }
    if map.get("streaming").is_some_and(|v| !v.is_boolean()) {
        return Err(bad());
    }
    Ok(())
}

/// Every action of the tree (`ActionConfig` objects), depth first.
pub fn actions_of(widget: &Value) -> Vec<&Map<String, Value>> {
    let mut found = Vec::new();
    collect_actions(widget, &mut found, 0);
    found
}

fn collect_actions<'a>(node: &'a Value, found: &mut Vec<&'a Map<String, Value>>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(map) = node.as_object() else {
        return;
    };
    for prop in ACTION_PROPS {
        if let Some(Value::Object(action)) = map.get(*prop) {
            found.push(action);
        }
    }
    for footer in ["confirm", "cancel"] {
        if let Some(Value::Object(action)) = map.get(footer).and_then(|b| b.get("action")) {
            found.push(action);
        }
    }
    match map.get("children") {
        Some(Value::Array(children)) => {
            for child in children {
                collect_actions(child, found, depth + 1);
            }
        }
        Some(child @ Value::Object(_)) => collect_actions(child, found, depth + 1),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_card_with_actions_is_valid_canonical_and_without_nulls() {
        let card = json!({"size": null, "children": [
            {"value": "hi", "type": "Text", "color": null},
            {"label": "Go", "type": "Button", "onClickAction": {"type": "a.go", "payload": {"x": null}}},
            null
        ], "type": "Card", "id": "c1"});
        let valid = validated_root(&card).unwrap();
        assert_eq!(
            serde_json::to_string(&valid).unwrap(),
            json!({"id": "c1", "type": "Card", "children": [
                {"type": "Text", "value": "hi"},
                {"type": "Button", "label": "Go", "onClickAction": {"type": "a.go", "payload": {}}}
            ]})
            .to_string()
        );
        assert_eq!(actions_of(&valid).len(), 1);
    }

    #[test]
    fn bad_roots_nodes_and_actions_are_refused() {
        for (widget, error) in [
            (json!({"type": "Text", "value": "x"}), WidgetError::BadRoot),
            (json!([1]), WidgetError::BadRoot),
            (
                json!({"type": "Card", "children": [{"type": ""}]}),
                WidgetError::BadNode("$.children[0]".into()),
            ),
            (
                json!({"type": "Card", "children": [{"type": 7}]}),
                WidgetError::BadNode("$.children[0]".into()),
            ),
            (
                json!({"type": "Card", "children": [{"value": "no type"}]}),
                WidgetError::BadNode("$.children[0]".into()),
            ),
            (
                json!({"type": "Card", "id": 3, "children": []}),
                WidgetError::NotAString("$.id".into()),
            ),
            (
                json!({"type": "Card", "children": [{"type": "Button", "onClickAction": {"type": ""}}]}),
                WidgetError::BadAction("$.children[0].onClickAction".into()),
            ),
            (
                json!({"type": "Card", "children": [], "confirm": {"label": "ok", "action": {"type": "x", "handler": "elsewhere"}}}),
                WidgetError::BadAction("$.confirm.action".into()),
            ),
        ] {
            assert_eq!(validated_root(&widget), Err(error), "{widget}");
        }
    }

    /// Issue 24, defect 3: ChatKit JS 1.7's tables (and any type added later) pass through.
    #[test]
    fn components_of_newer_clients_pass_through() {
        let card = json!({"type": "Card", "border": {"size": 1}, "children": [
            {"type": "Table", "children": [
                {"type": "Table.Row", "children": [{"type": "Table.Cell", "children": [{"type": "Text", "value": "a"}]}]}
            ]},
            {"type": "Sparkline", "values": [1, 2]}
        ]});
        assert_eq!(validated_root(&card).unwrap(), card);
        let broken = json!({"type": "Card", "children": [{"type": "Table.Row", "onClickAction": {"type": ""}}]});
        assert_eq!(
            validated_root(&broken),
            Err(WidgetError::BadAction("$.children[0].onClickAction".into()))
        );
    }

    #[test]
    fn depth_and_size_are_bounded() {
        let mut node = json!({"type": "Text", "value": "x"});
        for _ in 0..70 {
            node = json!({"type": "Box", "children": [node]});
        }
        let deep = json!({"type": "Basic", "children": [node]});
        assert_eq!(validated_root(&deep), Err(WidgetError::TooDeep));
        let big = json!({"type": "Card", "children": [{"type": "Text", "value": "x".repeat(MAX_WIDGET_BYTES)}]});
        assert_eq!(validated_root(&big), Err(WidgetError::TooLarge));
    }
}
