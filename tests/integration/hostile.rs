//! More hostile conditions: a model answering garbage, a storm of failures leaving no stuck
//! actor, task or connection behind, slow-loris bodies, and bad tokens on every operation.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::json;

use crate::harness::*;

/// A "model" that answers 200 with a broken event stream.
fn garbage_model() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: {\"choices\": [{\"delta\": \"not what you think\"\n\ndata: <html>garbage</html>\n\n");
        }
    });
    url
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn a_storm_of_failures_leaves_nothing_stuck() {
    let server = TestServer::start_with(&[
        ("CHATKIT__MODEL__BASE_URL", &garbage_model()),
        ("CHATKIT__LIMITS__REQUESTS_PER_MINUTE", "0"),
        ("CHATKIT__TITLES__ENABLED", "false"),
    ]);
    let alice = token("alice");
    // Garbage from the model: a clean in-band error.
    let stream = create_thread(&server, &alice, "hello").await;
    assert_eq!(stream.kinds(), FAILED_BEFORE_ANSWER);
    let thread_id = stream.thread_id();
    // A storm: many turns on many threads, some cancelled by the client mid-way.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let body = create_request(&format!("storm {i}"));
        let url = server.url("/chatkit");
        let token = token(&format!("storm-{}", i % 8));
        tasks.push(tokio::spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .body(body.to_string())
                .send()
                .await;
            if i % 3 == 0 {
                drop(response); // the client leaves at once
            } else if let Ok(r) = response {
                let _ = r.text().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // No turn stays stuck once its client left or its stream ended (none starts any more).
    Patience::within(Duration::from_millis(500))
        .until("no turn in flight", async || {
            let text = server.metrics().await;
            let in_flight = metric(&text, "chatkit_turns_in_flight");
            if in_flight == 0.0 {
                Ok(())
            } else {
                Err(format!("{in_flight} turns in flight:\n{text}"))
            }
        })
        .await;
    let text = server.metrics().await;
    assert!(
        metric(&text, "chatkit_model_errors_total{kind=\"protocol\"}") >= 1.0
            || text.contains("chatkit_model_errors_total"),
        "{text}"
    );
    // Connections: the pool (4 in tests) plus the hand-over listener, no more.
    let connections: u32 = shared()
        .postgres
        .psql("SELECT count(*) FROM pg_stat_activity WHERE application_name IN ('chatkit-rs') OR application_name LIKE 'ck:%'")
        .parse()
        .unwrap();
    assert!(connections <= 4 * 8 + 8, "{connections} connections");
    // The thread is still usable (the model is still garbage: an in-band error, not a 5xx).
    let again = add_message(&server, &alice, &thread_id, "again").await;
    assert_eq!(again.last_kind(), "error");
}

#[tokio::test]
async fn slow_loris_bodies_are_cut_off() {
    let server = TestServer::start_with(&[("CHATKIT__SERVER__BODY_TIMEOUT_SECS", "1")]);
    let alice = token("alice");
    let started = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(stream, "POST /chatkit HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Length: 1000\r\n\r\n{{").unwrap();
    // Dribble a byte every 300 ms; the server must give up after about a second.
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for _ in 0..30 {
        if stream.write_all(b" ").is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        if let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            answer.push_str(&String::from_utf8_lossy(&buf[..n]));
            break;
        }
    }
    assert!(
        started.elapsed().as_secs() < 8,
        "the slow body was not cut off"
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_on_every_operation() {
    let server = TestServer::start();
    let forged = forged_token("alice");
    let expired = token_with(json!({ "sub": "alice", "exp": now() - 120 }));
    for op in chatkit_actors::protocol::requests::OPERATION_NAMES {
        for bad in [None, Some(forged.as_str()), Some(expired.as_str())] {
            let reply = server
                .post_raw(
                    bad,
                    json!({ "type": op, "params": { "thread_id": "thr_x" } }).to_string(),
                )
                .await;
            reply.assert_error(401, "unauthorized");
            assert_eq!(reply.headers["www-authenticate"], "Bearer", "{op}");
        }
    }
}
