//! Crash safety: under a steady load of conversations the server is killed with SIGKILL at
//! random moments, many times. After each restart every `thread.created` and
//! `thread.item.done` any client received exists in Postgres byte for byte, exactly once, and
//! every thread accepts a new message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::harness::*;

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow, default)]
    item: Option<&'a RawValue>,
    #[serde(borrow, default)]
    thread: Option<&'a RawValue>,
}

/// What clients were told: item id → (thread id, exact JSON), and created thread ids.
#[derive(Default)]
struct Acknowledged {
    items: HashMap<String, (String, String)>,
    threads: Vec<String>,
}

/// One streamed request, recording acknowledgements as they arrive; false on any failure.
async fn stream_once(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: Value,
    ack: &Mutex<Acknowledged>,
) -> (bool, Option<String>) {
    let Ok(mut response) = http
        .post(url)
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
    else {
        return (false, None);
    };
    if response.status() != 200 {
        return (false, None);
    }
    let mut buffer = String::new();
    let mut thread_id = None;
    let mut answered = false;
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
            Ok(None) => return (answered, thread_id),
            Err(_) => return (false, thread_id),
        }
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let json = frame.trim_end().strip_prefix("data: ").unwrap();
            let parsed: Frame = serde_json::from_str(json).unwrap();
            match (parsed.kind, parsed.item, parsed.thread) {
                ("thread.item.done", Some(item), _) => {
                    let v: Value = serde_json::from_str(item.get()).unwrap();
                    let tid = v["thread_id"].as_str().unwrap().to_string();
                    if v["type"] == "assistant_message" {
                        answered = true;
                    }
                    thread_id = Some(tid.clone());
                    ack.lock().unwrap().items.insert(
                        v["id"].as_str().unwrap().to_string(),
                        (tid, item.get().to_string()),
                    );
                }
                ("thread.created", _, Some(thread)) => {
                    let v: Value = serde_json::from_str(thread.get()).unwrap();
                    ack.lock()
                        .unwrap()
                        .threads
                        .push(v["id"].as_str().unwrap().to_string());
                }
                _ => {}
            }
        }
    }
}

/// A user's conversation loop: one thread, messages until the server dies.
async fn converse(
    url: String,
    token: String,
    ack: Arc<Mutex<Acknowledged>>,
    mut thread: Option<String>,
) -> Option<String> {
    let http = reqwest::Client::new();
    for turn in 0.. {
        let text = if turn % 3 == 2 {
            "slow 6".to_string()
        } else {
            format!("message {turn}")
        };
        let body = turn_request(thread.as_deref(), &text);
        let (ok, seen) = stream_once(&http, &url, &token, body, &ack).await;
        if thread.is_none() {
            thread = seen;
        }
        if !ok {
            break;
        }
    }
    thread
}

#[tokio::test]
async fn repeated_sigkill_under_load_loses_nothing_acknowledged() {
    const CYCLES: usize = 6;
    const CLIENTS: usize = 6;
    let mut server = TestServer::start_with(&[("CHATKIT__TITLES__ENABLED", "false")]);
    let ack = Arc::new(Mutex::new(Acknowledged::default()));
    let mut threads: Vec<Option<String>> = vec![None; CLIENTS];
    let tokens: Vec<String> = (0..CLIENTS)
        .map(|i| token(&format!("crash-user-{i}")))
        .collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for cycle in 0..CYCLES {
        let url = server.url("/chatkit");
        let handles: Vec<_> = (0..CLIENTS)
            .map(|i| {
                tokio::spawn(converse(
                    url.clone(),
                    tokens[i].clone(),
                    ack.clone(),
                    threads[i].clone(),
                ))
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        sleep_ms(300 + seed % 900).await;
        server.kill();
        for (i, handle) in handles.into_iter().enumerate() {
            threads[i] = handle.await.unwrap();
        }
        server.restart();
        verify(&server, &ack, cycle);
    }
    let acknowledged = ack.lock().unwrap().items.len();
    assert!(
        acknowledged > CYCLES * CLIENTS,
        "the load made progress: {acknowledged} items"
    );
    // Every thread accepts a new message after all this.
    for (i, thread) in threads.iter().enumerate() {
        if let Some(thread_id) = thread {
            add_message(&server, &tokens[i], thread_id, "still alive?")
                .await
                .assert_answered();
        }
    }
}

fn verify(server: &TestServer, ack: &Mutex<Acknowledged>, cycle: usize) {
    let pg = &shared().postgres;
    let rows = pg.psql(&format!(
        "SELECT id || chr(9) || thread_id || chr(9) || body FROM {}.items",
        server.schema
    ));
    let mut stored: HashMap<String, (String, String)> = HashMap::new();
    for line in rows.lines() {
        let mut parts = line.splitn(3, '\t');
        let (id, thread, body) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(
            stored
                .insert(id.to_string(), (thread.to_string(), body.to_string()))
                .is_none(),
            "item {id} stored twice"
        );
    }
    let ack = ack.lock().unwrap();
    for (id, (thread, body)) in &ack.items {
        let Some((stored_thread, stored_body)) = stored.get(id) else {
            panic!("cycle {cycle}: acknowledged item {id} was lost");
        };
        assert_eq!(stored_thread, thread);
        assert_eq!(
            stored_body, body,
            "cycle {cycle}: item {id} is not byte-identical"
        );
    }
    let thread_count: usize = pg
        .psql(&format!("SELECT count(*) FROM {}.threads", server.schema))
        .parse()
        .unwrap();
    assert!(thread_count >= ack.threads.len());
    for thread in &ack.threads {
        let exists = pg.psql(&format!(
            "SELECT count(*) FROM {}.threads WHERE id = '{thread}'",
            server.schema
        ));
        assert_eq!(
            exists, "1",
            "cycle {cycle}: acknowledged thread {thread} was lost"
        );
    }
}
