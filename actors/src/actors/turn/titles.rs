//! The thread's title (protocol §8.7): generated after the first answer of an untitled
//! thread, saved unless a rename came first, and announced with `thread.updated`.

use super::events::EventWriter;
use crate::actors::env::{EngineEnv, Lease};
use crate::model::ChatMessage;
use crate::protocol::{Page, ThreadMeta, ThreadStreamEvent};
use crate::store::cluster::LeaseState;
use crate::store::WriteOp;
use crate::text::clip_chars;

/// Generates, saves and announces a title (protocol §8.7). Failures only cost the title.
pub(super) async fn save_title(
    env: &EngineEnv,
    lease: &Lease,
    mut meta: ThreadMeta,
    text: &str,
    writer: &mut EventWriter<'_>,
) -> Option<String> {
    let settings = &env.settings.titles;
    let messages = [
        ChatMessage::System {
            content: settings.prompt.clone(),
        },
        ChatMessage::User {
            content: text.into(),
        },
    ];
    let raw = match env.models.default_model().complete(&messages).await {
        Ok(raw) => raw,
        Err(error) => {
            tracing::warn!(thread_id = %meta.id, %error, "title generation failed");
            return None;
        }
    };
    let title = clean_title(&raw, settings.max_chars)?;
    let op = WriteOp::SetTitleIfUntitled {
        thread_id: meta.id.clone(),
        title: title.clone(),
    };
    if let Err(error) = env.persist_as(lease, LeaseState::Idle, vec![op]).await {
        tracing::warn!(thread_id = %meta.id, %error, "could not save the title");
        return None;
    }
    meta.title = Some(title.clone());
    writer
        .send(&ThreadStreamEvent::ThreadUpdated {
            thread: meta.to_wire(Page::empty()),
        })
        .await;
    Some(title)
}

/// One line, no surrounding quotes, at most `max_chars` characters; `None` if empty.
fn clean_title(raw: &str, max_chars: usize) -> Option<String> {
    let line = raw.lines().find(|l| !l.trim().is_empty())?.trim();
    let line = line
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '“' || c == '”')
        .trim();
    let (kept, cut) = clip_chars(line, max_chars);
    let mut title = kept.to_string();
    if cut {
        title = title.trim_end().to_string();
        title.push('…');
    }
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::clean_title;

    #[test]
    fn titles_are_one_clean_bounded_line() {
        assert_eq!(
            clean_title("\n \"Paris weather\"\nmore", 60).as_deref(),
            Some("Paris weather")
        );
        assert_eq!(clean_title("abcdef", 3).as_deref(), Some("abc…"));
        assert_eq!(clean_title("  \n ", 10), None);
    }
}
