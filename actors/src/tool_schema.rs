//! A tool's argument schema as the model is sent it: shared by the configuration (client
//! tools), the MCP tool lists and the model client, so it depends on none of them.

use serde::Serialize;

/// The JSON schema of a tool's arguments, serialized once when its tool list arrives and
/// shared: every turn offering the tool copies a reference and writes the bytes as they are.
#[derive(Clone, Debug)]
pub struct ToolSchema(std::sync::Arc<serde_json::value::RawValue>);

impl ToolSchema {
    pub fn new(schema: &serde_json::Value) -> Self {
        let raw = serde_json::value::to_raw_value(schema).expect("a JSON value serializes");
        ToolSchema(std::sync::Arc::from(raw))
    }

    /// As a value (the Responses API's request is built as one).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).expect("written from a JSON value")
    }
}

impl PartialEq for ToolSchema {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Serialize for ToolSchema {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}
