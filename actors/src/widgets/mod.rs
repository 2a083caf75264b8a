//! Widgets from MCP tool results, and what a widget action may call (`specs/widgets.md`).
//!
//! - `validate.rs` — what a widget root must be before it is stored; nulls scrubbed.
//! - `template.rs` — `.widget` templates (minijinja, strict undefined).
//! - `source.rs` — a tool result's widget (`_meta`, a template, or the result itself), client
//!   effect and notice.
//! - `diff.rs` — the updates between two states of a streamed widget.
//! - `actions.rs` — whether a widget holds the action a request names.

mod actions;
mod diff;
mod source;
mod template;
mod validate;

pub(crate) use actions::check_action_in_widget;
pub(crate) use diff::diff_widget;
pub(crate) use source::{progress_widget, tool_extras, ToolExtras, ToolWidget};
pub use template::WidgetTemplate;
pub use validate::{
    canonical, scrub_nulls, validated_root, WidgetError, MAX_WIDGET_BYTES, ROOT_TYPES,
};
