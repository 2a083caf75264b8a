//! ChatKit's `.widget` files (the widget builder's export): a Jinja template that renders the
//! widget's JSON from data. Rendered with minijinja in strict-undefined mode, as the SDK's
//! `WidgetTemplate` renders with Jinja2's `StrictUndefined`.

use std::path::Path;

use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::validate::{validated_root, WidgetError};

/// Bounds a render (a template looping over large data): minijinja's instruction fuel.
const RENDER_FUEL: u64 = 5_000_000;

/// The fields of a `.widget` file we use (the others, such as `encodedWidget`, are the
/// builder's own).
#[derive(Deserialize)]
struct WidgetFile {
    version: String,
    name: String,
    template: String,
}

/// One compiled `.widget` template.
pub struct WidgetTemplate {
    name: String,
    env: Environment<'static>,
}

impl std::fmt::Debug for WidgetTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WidgetTemplate")
            .field("name", &self.name)
            .finish()
    }
}

const TEMPLATE_NAME: &str = "widget";

impl WidgetTemplate {
    /// Reads and compiles a `.widget` file; the error is one line for the start-up report.
    pub fn from_file(path: &Path) -> Result<WidgetTemplate, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read ({e})"))?;
        Self::from_json(&text)
    }

    /// Compiles the JSON text of a `.widget` file.
    pub fn from_json(text: &str) -> Result<WidgetTemplate, String> {
        let file: WidgetFile =
            serde_json::from_str(text).map_err(|e| format!("is not a .widget file ({e})"))?;
        if file.version != "1.0" {
            return Err(format!(
                "has widget spec version {:?}; 1.0 is supported",
                file.version
            ));
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(RENDER_FUEL));
        env.add_filter("tojson", strict_tojson);
        env.add_template_owned(TEMPLATE_NAME, file.template)
            .map_err(|e| format!("has a template that does not compile ({e})"))?;
        Ok(WidgetTemplate {
            name: file.name,
            env,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renders the template with `data` and checks the result as a widget root.
    pub fn render(&self, data: &Map<String, Value>) -> Result<Value, WidgetError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .expect("added at compile time");
        let text = template
            .render(minijinja::Value::from(minijinja::value::Serde(data)))
            .map_err(|e| WidgetError::Template(one_line(&e.to_string())))?;
        let root: Value = serde_json::from_str(&text)
            .map_err(|e| WidgetError::Template(format!("the output is not JSON ({e})")))?;
        validated_root(&root)
    }
}

/// `tojson` that refuses an undefined value, as Jinja2's does under `StrictUndefined`
/// (minijinja's strict mode lets filters take undefined values, and its `tojson` writes
/// `null`).
fn strict_tojson(
    value: &minijinja::Value,
    indent: Option<minijinja::Value>,
    args: minijinja::value::Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::UndefinedError,
            "tojson of an undefined value",
        ));
    }
    minijinja::filters::tojson(value, indent, args)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::{json, Value};

    use super::*;
    use crate::widgets::canonical;

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/widgets")
    }

    /// The builder's `encodedWidget` (base64url JSON) holds the data `outputJsonPreview` was
    /// rendered with.
    fn default_state(file: &Value) -> Map<String, Value> {
        let encoded = file["encodedWidget"].as_str().expect("encodedWidget");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .expect("base64url");
        let builder: Value = serde_json::from_slice(&bytes).expect("JSON");
        builder["defaultState"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn exported_widget_files_render_their_preview_and_the_sdk_test_outputs() {
        let mut rendered = 0;
        for entry in std::fs::read_dir(fixtures()).expect("tests/fixtures/widgets") {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("widget") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let file: Value = serde_json::from_str(&text).unwrap();
            let template = WidgetTemplate::from_json(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let preview = template
                .render(&default_state(&file))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                preview,
                canonical(&file["outputJsonPreview"]),
                "{}",
                path.display()
            );
            // The official SDK's own test data, where it has some.
            let data = path.with_extension("data.json");
            if data.exists() {
                let data: Map<String, Value> =
                    serde_json::from_str(&std::fs::read_to_string(&data).unwrap()).unwrap();
                let expected: Value = serde_json::from_str(
                    &std::fs::read_to_string(path.with_extension("json")).unwrap(),
                )
                .unwrap();
                assert_eq!(
                    template.render(&data).unwrap(),
                    expected,
                    "{}",
                    path.display()
                );
            }
            rendered += 1;
        }
        assert!(rendered >= 6, "only {rendered} .widget files");
    }

    fn widget_file(template: &str) -> String {
        json!({"version": "1.0", "name": "t", "template": template, "jsonSchema": {}}).to_string()
    }

    #[test]
    fn jinja_features_the_builder_uses() {
        let template = WidgetTemplate::from_json(&widget_file(concat!(
            r#"{% set heading %}Tasks ({{ count }}){% endset %}"#,
            r#"{"type":"Card","children":[{"type":"Title","value":{{ heading | tojson }}}"#,
            r#"{% for t in tasks[:2] %},{"type":"Text","value":{{ t.title | tojson }}"#,
            r#"{% if t.done %},"color":"secondary"{% endif %}}{% endfor %}"#,
            r#",{"type":"Caption","value":{{ (note | default("none")) | tojson }}}]}"#
        )))
        .unwrap();
        let data = json!({"count": 3, "tasks": [
            {"title": "a \"quoted\" <b>", "done": true}, {"title": "b", "done": false}, {"title": "c", "done": false}
        ]});
        let out = template.render(data.as_object().unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"type": "Card", "children": [
                {"type": "Title", "value": "Tasks (3)"},
                {"type": "Text", "value": "a \"quoted\" <b>", "color": "secondary"},
                {"type": "Text", "value": "b"},
                {"type": "Caption", "value": "none"}
            ]})
        );
    }

    #[test]
    fn undefined_values_and_bad_files_fail() {
        let template = WidgetTemplate::from_json(&widget_file(
            r#"{"type":"Card","children":[{"type":"Text","value":{{ missing | tojson }}}]}"#,
        ))
        .unwrap();
        let rendered = template.render(&Map::new());
        assert!(
            matches!(rendered, Err(WidgetError::Template(_))),
            "{rendered:?}"
        );
        let not_a_root =
            WidgetTemplate::from_json(&widget_file(r#"{"type":"Text","value":"x"}"#)).unwrap();
        assert_eq!(not_a_root.render(&Map::new()), Err(WidgetError::BadRoot));
        assert!(WidgetTemplate::from_json("{}").is_err());
        assert!(WidgetTemplate::from_json(&widget_file("{% for %}")).is_err());
        let v2 = json!({"version": "2.0", "name": "t", "template": "{}"}).to_string();
        assert!(WidgetTemplate::from_json(&v2)
            .unwrap_err()
            .contains("version"));
    }
}
