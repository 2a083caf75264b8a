//! Which model answers a turn's `inference_options.model` (protocol §7.2).

/// Which model answers a turn's `inference_options.model`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ModelPick {
    /// No choice, or the default model's own name.
    Default,
    /// The picker's entry at this index.
    Choice(usize),
    /// No picker is configured (no `[[models]]`): the default answers whatever was chosen.
    Unlisted,
    /// A picker is configured and lists no such id.
    Refused,
}

/// With `[[models]]` configured (`choices`), only their ids and the default model's own
/// `default_name` are accepted; without, the picker is off and any id is answered by the
/// default model (as the official SDK stores options it does not act on).
pub(super) fn pick_model<S: AsRef<str>>(
    id: Option<&str>,
    default_name: &str,
    choices: &[S],
) -> ModelPick {
    let Some(id) = id else {
        return ModelPick::Default;
    };
    if let Some(index) = choices.iter().position(|c| c.as_ref() == id) {
        ModelPick::Choice(index)
    } else if id == default_name {
        ModelPick::Default
    } else if choices.is_empty() {
        ModelPick::Unlisted
    } else {
        ModelPick::Refused
    }
}

#[cfg(test)]
mod tests {
    use super::{pick_model, ModelPick};

    #[test]
    fn no_choice_is_the_default() {
        assert_eq!(pick_model::<&str>(None, "gpt", &[]), ModelPick::Default);
        assert_eq!(pick_model(None, "gpt", &["fast"]), ModelPick::Default);
    }

    #[test]
    fn without_a_picker_any_id_is_answered_by_the_default() {
        assert_eq!(
            pick_model::<&str>(Some("gpt"), "gpt", &[]),
            ModelPick::Default
        );
        assert_eq!(
            pick_model::<&str>(Some("other"), "gpt", &[]),
            ModelPick::Unlisted
        );
    }

    #[test]
    fn with_a_picker_only_its_ids_and_the_default_name_are_accepted() {
        let choices = ["fast", "deep"];
        assert_eq!(
            pick_model(Some("deep"), "gpt", &choices),
            ModelPick::Choice(1)
        );
        assert_eq!(pick_model(Some("gpt"), "gpt", &choices), ModelPick::Default);
        assert_eq!(
            pick_model(Some("gpt-9"), "gpt", &choices),
            ModelPick::Refused
        );
    }

    #[test]
    fn a_picker_id_wins_over_the_default_name() {
        assert_eq!(
            pick_model(Some("gpt"), "gpt", &["gpt"]),
            ModelPick::Choice(0)
        );
    }
}
