//! What a message may choose in its `inference_options` (protocol §7.2): a model of the
//! picker and an entry of the tool menu, checked before anything is stored.
//!
//! With a picker (`[[models]]`) or a tool menu (`[[tool_choices]]`) configured, an id they do
//! not list is refused (400); without one, the composer's choice is stored as sent and the
//! defaults answer (as the official SDK does with options it does not act on).

use std::collections::HashSet;
use std::sync::Mutex;

use crate::config::EngineSettings;
use crate::error::EngineError;
use crate::model::ModelCatalog;
use crate::protocol::InferenceOptions;
use crate::text::shorten_for_display;

/// How many distinct unlisted model ids are each warned about once (then they are not).
const WARNED_IDS_CAP: usize = 256;

/// Model ids answered by the default model although no picker lists them, warned about once.
#[derive(Default)]
pub(crate) struct UnlistedModels(Mutex<HashSet<String>>);

impl UnlistedModels {
    /// True the first time `id` is seen (while fewer than the cap were seen).
    fn first_time(&self, id: &str) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= WARNED_IDS_CAP || seen.contains(id) {
            return false;
        }
        seen.insert(id.to_string());
        true
    }
}

/// "this server offers: a, b" or "this server offers no <what>".
fn offer_list(what: &str, ids: &[&str]) -> String {
    if ids.is_empty() {
        format!("this server offers no {what}")
    } else {
        format!("this server offers: {}", ids.join(", "))
    }
}

/// Refuses a model or a tool choice that a configured picker or menu does not list.
pub(crate) fn check_inference(
    options: &InferenceOptions,
    models: &ModelCatalog,
    settings: &EngineSettings,
    unlisted: &UnlistedModels,
) -> Result<(), EngineError> {
    if let Some(model) = options.model.as_deref() {
        let Some(picked) = models.pick(Some(model)) else {
            let offered: Vec<&str> = settings.models.iter().map(|m| m.id.as_str()).collect();
            return Err(EngineError::InvalidInput(format!(
                "unknown model {:?}; {}",
                shorten_for_display(model, 64),
                offer_list("models", &offered)
            )));
        };
        if picked.unlisted && unlisted.first_time(model) {
            tracing::warn!(
                model = %shorten_for_display(model, 64),
                "a message chose a model but no [[models]] picker is configured; the default model answers"
            );
        }
    }
    if let Some(choice) = &options.tool_choice {
        let menu = &settings.tool_choices;
        if !menu.is_empty() && !menu.iter().any(|t| t.id == choice.id) {
            let offered: Vec<&str> = menu.iter().map(|t| t.id.as_str()).collect();
            return Err(EngineError::InvalidInput(format!(
                "unknown tool choice {:?}; {}",
                shorten_for_display(&choice.id, 64),
                offer_list("tool choices", &offered)
            )));
        }
    }
    Ok(())
}
