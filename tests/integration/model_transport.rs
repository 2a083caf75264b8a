//! How chatkit-rs talks to the model: with `model.http2_prior_knowledge`, the model streams
//! of each thread running turns are multiplexed over one HTTP/2 connection (one file
//! descriptor per open chat stream instead of two), and a stream the model finished is read
//! to its end, so thousands of them do not make the HTTP/2 library close the shared
//! connection.

use crate::harness::*;

/// Client sockets of this machine connected to `port` on 127.0.0.1 (from /proc/net/tcp).
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let wanted = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // cols[2] = remote address, cols[3] = state (01 = ESTABLISHED)
            cols.len() > 3 && cols[2] == wanted && cols[3] == "01"
        })
        .count()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn h2c_model_streams_share_one_connection_per_thread_running_turns() {
    // This mock refuses HTTP/1.x: a turn answered proves the request went over HTTP/2.
    let mock = MockModel::start(&["--http-versions", "2"]);
    let server = TestServer::start_with_model(
        &mock,
        &[
            ("CHATKIT__MODEL__HTTP2_PRIOR_KNOWLEDGE", "true"),
            ("CHATKIT__TITLES__ENABLED", "false"),
            ("CHATKIT__ACTORS__ARBITERS", "2"),
        ],
    );
    // 24 users × 6 turns, all users at once: up to 24 model streams open together.
    let users: Vec<String> = (0..24)
        .map(|i| format!("h2-{i}-{}", rand_suffix()))
        .collect();
    let runs = users.iter().map(|user| {
        let server = &server;
        async move {
            let token = token(user);
            let first = answered_thread(server, &token, "hello over h2").await;
            let thread_id = first.thread_id();
            for turn in 1..6 {
                add_message(server, &token, &thread_id, &format!("turn {turn}"))
                    .await
                    .assert_answered();
            }
            (token, thread_id)
        }
    });
    let threads: Vec<(String, String)> = futures::future::join_all(runs).await;
    // Each of the 2 arbiters asks through its own client (a connection's I/O runs on the
    // thread that opened it): 144 streams, 24 at once, over at most 2 connections.
    let connections = established_to(port_of(&mock.addr));
    assert!(
        (1..=2).contains(&connections),
        "model streams share one HTTP/2 connection per arbiter: {connections} connections"
    );
    // Every message and answer was stored, in order.
    for (token, thread_id) in &threads {
        let page = server.items_asc(token, thread_id).await;
        let kinds = field_of(&page, "type");
        let expected: Vec<&str> = (0..6)
            .flat_map(|_| ["user_message", "assistant_message"])
            .collect();
        assert_eq!(kinds, expected);
    }
}

#[tokio::test]
async fn without_http2_the_same_mock_refuses_and_the_client_sees_an_inband_error() {
    // The control for the test above: over HTTP/1.1 this mock answers 505.
    let mock = MockModel::start(&["--http-versions", "2"]);
    let server = TestServer::start_with_model(&mock, &[("CHATKIT__TITLES__ENABLED", "false")]);
    let token = token(&format!("h1-{}", rand_suffix()));
    let stream = create_thread(&server, &token, "hello over h1").await;
    assert_eq!(stream.last_kind(), "error", "{:?}", stream.kinds());
}
