//! JSON fixtures for every protocol type (`tests/fixtures/*.jsonl`): each line parses into our
//! type, serializes back to the same bytes, and validates with the official SDK.

use chatkit_actors::protocol::{
    Attachment, ChatKitRequest, Page, Thread, ThreadItem, ThreadStreamEvent,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::harness::sdk::{self, Kind};

fn lines(name: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn round_trip<T: DeserializeOwned + Serialize>(name: &str, kind: Kind) -> usize {
    let lines = lines(name);
    for line in &lines {
        let value: T = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: {e}\n{line}"));
        let again = serde_json::to_string(&value).unwrap();
        assert_eq!(
            &again, line,
            "{name}: not byte-identical after a round trip"
        );
        sdk::check(kind, line);
    }
    lines.len()
}

#[test]
fn events_round_trip() {
    assert!(round_trip::<ThreadStreamEvent>("events.jsonl", Kind::Event) >= 12);
}

#[test]
fn items_round_trip() {
    assert!(round_trip::<ThreadItem>("items.jsonl", Kind::Item) >= 8);
}

#[test]
fn attachments_round_trip() {
    assert!(round_trip::<Attachment>("attachments.jsonl", Kind::Attachment) >= 4);
}

#[test]
fn threads_round_trip() {
    round_trip::<Thread>("threads.jsonl", Kind::Thread);
    round_trip::<Page<Thread>>("threads_pages.jsonl", Kind::ThreadsPage);
    round_trip::<Page<ThreadItem>>("items_pages.jsonl", Kind::ItemsPage);
}

#[test]
fn requests_round_trip_for_all_sixteen_ops() {
    let lines = lines("requests.jsonl");
    let mut ops = std::collections::BTreeSet::new();
    for line in &lines {
        let request =
            ChatKitRequest::parse(line.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{line}"));
        ops.insert(request.op.name());
        assert_eq!(&serde_json::to_string(&request).unwrap(), line);
        sdk::check(Kind::Request, line);
    }
    assert_eq!(ops.len(), 16, "{ops:?}");
}

#[test]
fn sdk_and_we_refuse_the_same_shapes() {
    // A thread item without its discriminator, and an event with an unknown type.
    for (kind, bad) in [
        (
            Kind::Item,
            r#"{"id":"m","thread_id":"t","created_at":"2025-01-01T00:00:00","content":[]}"#,
        ),
        (Kind::Event, r#"{"type":"thread.exploded"}"#),
    ] {
        assert!(sdk::validate(kind, bad).is_err(), "the SDK accepts {bad}");
    }
    assert!(serde_json::from_str::<ThreadItem>(
        r#"{"id":"m","thread_id":"t","created_at":"2025-01-01T00:00:00","content":[]}"#
    )
    .is_err());
    assert!(serde_json::from_str::<ThreadStreamEvent>(r#"{"type":"thread.exploded"}"#).is_err());
}
