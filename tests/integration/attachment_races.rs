//! Attachments under concurrent requests of one user (issue 29): the quota holds against
//! creates and direct uploads racing each other, and an attachment joins one thread only.

use serde_json::{json, Value};

use crate::harness::pgbouncer::{Backend, PgBouncer};
use crate::harness::*;

const QUOTA: &str = "4096";
const SIZE: usize = 4000;
const RACERS: usize = 16;

/// (attachments, bytes they reserve, bytes stored) of `user` on `server`.
fn usage(server: &TestServer, user: &str) -> (u64, u64, u64) {
    let row = shared().postgres.psql(&format!(
        "SELECT count(*), coalesce(sum(greatest(declared_size, coalesce(size, 0))), 0),
                coalesce((SELECT sum(octet_length(c.data)) FROM {0}.attachment_chunks c
                          JOIN {0}.attachments a ON a.id = c.attachment_id
                          WHERE a.user_id = '{user}'), 0)
         FROM {0}.attachments WHERE user_id = '{user}'",
        server.schema
    ));
    let numbers: Vec<u64> = row.split('|').map(|n| n.parse().unwrap()).collect();
    (numbers[0], numbers[1], numbers[2])
}

/// The replies that are 200, after checking every other one is a 413 `quota_exceeded`.
fn accepted(replies: &[Reply]) -> Vec<&Reply> {
    for reply in replies.iter().filter(|r| r.status != 200) {
        reply.assert_error(413, "quota_exceeded");
    }
    replies.iter().filter(|r| r.status == 200).collect()
}

#[tokio::test]
async fn concurrent_creates_and_direct_uploads_stay_within_the_quota() {
    let server = TestServer::start_with(&[("CHATKIT__ATTACHMENTS__MAX_BYTES_PER_USER", QUOTA)]);
    race_for_the_quota(&server).await;
}

/// The same through PgBouncer in transaction mode, without prepared statements: the count and
/// the write still take turns (the lock lives as long as the transaction).
#[tokio::test]
async fn the_quota_holds_through_pgbouncer_in_transaction_mode() {
    let schema = new_schema();
    let (socket_dir, pg_port) = shared().postgres.socket();
    let backend = Backend {
        host: socket_dir.display().to_string(),
        port: pg_port,
        user: chatkit_server::embedded_pg::ROLE.into(),
        dbname: chatkit_server::embedded_pg::DATABASE.into(),
    };
    let bouncer = PgBouncer::start(backend, &schema, 3).await;
    let url = bouncer.url();
    let server = TestServer::start_node(
        &schema,
        "quota-pgb",
        &[
            ("CHATKIT__DATABASE__URL", url.as_str()),
            ("CHATKIT__DATABASE__LISTEN_URL", &shared().postgres.url()),
            ("CHATKIT__DATABASE__PREPARED_STATEMENTS", "false"),
            ("CHATKIT__ATTACHMENTS__MAX_BYTES_PER_USER", QUOTA),
        ],
    );
    race_for_the_quota(&server).await;
}

/// Sixteen creates, then sixteen direct uploads, of 4,000 bytes each at once against a quota
/// of 4,096: one of each is accepted, the others are 413 and leave nothing stored.
async fn race_for_the_quota(server: &TestServer) {
    let quota: u64 = QUOTA.parse().unwrap();

    // Two-phase: sixteen creates of 4,000 bytes at once; one fits.
    let alice = token("alice");
    let creates = (0..RACERS).map(|i| {
        let params = json!({ "name": format!("{i}.txt"), "size": SIZE, "mime_type": "text/plain" });
        server.post_op(&alice, "attachments.create", params)
    });
    let replies = futures::future::join_all(creates).await;
    let created = accepted(&replies);
    assert_eq!(created.len(), 1, "one create of {SIZE} fits {QUOTA} bytes");
    let url = created[0].json()["upload_descriptor"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let form = file_form("0.txt", "text/plain", &[b'a'; SIZE]);
    let uploaded = server.post_form(&url, None, &form).await;
    assert_eq!(uploaded.status, 200, "{}", uploaded.text);
    assert_eq!(usage(server, "alice"), (1, SIZE as u64, SIZE as u64));

    // Direct: sixteen uploads of 4,000 bytes at once; one is stored, the others leave nothing.
    let bob = token("bob");
    let form = file_form("b.txt", "text/plain", &[b'b'; SIZE]);
    let uploads = (0..RACERS).map(|_| server.post_form("/attachments", Some(&bob), &form));
    let replies = futures::future::join_all(uploads).await;
    assert_eq!(
        accepted(&replies).len(),
        1,
        "one upload of {SIZE} fits {QUOTA} bytes"
    );
    eventually("the refused uploads are gone", || {
        usage(server, "bob").0 == 1
    })
    .await;
    let (_, reserved, stored) = usage(server, "bob");
    assert_eq!((reserved, stored), (SIZE as u64, SIZE as u64));
    assert!(stored <= quota);
}

/// `threads.create` naming `attachment_id`.
fn thread_with(attachment_id: &str, round: usize) -> Value {
    json!({ "input": {
        "content": [{ "type": "input_text", "text": format!("round {round}") }],
        "attachments": [attachment_id],
        "inference_options": {}
    } })
}

#[tokio::test]
async fn an_attachment_joins_one_thread_however_many_ask_at_once() {
    // Six streams of one user at once.
    let server = TestServer::start_with(&[("CHATKIT__LIMITS__MAX_STREAMS_PER_USER", "0")]);
    let (alice, bob) = (token("alice"), token("bob"));
    for round in 0..3 {
        let form = file_form("a.txt", "text/plain", b"shared notes");
        let uploaded = server.post_form("/attachments", Some(&alice), &form).await;
        assert_eq!(uploaded.status, 200, "{}", uploaded.text);
        let id = uploaded.json()["id"].as_str().unwrap().to_string();
        let threads_before = server.list_threads(&alice, json!({ "limit": 100 })).await;
        let before = page_data(&threads_before).len();

        let creates =
            (0..6).map(|_| server.post_op(&alice, "threads.create", thread_with(&id, round)));
        // Bob creates a thread at the same moment: a refused write committed with his in
        // one group commit must not fail it.
        let text = format!("bystander {round}");
        let (replies, bystander) = futures::join!(
            futures::future::join_all(creates),
            create_thread(&server, &bob, &text)
        );
        bystander.assert_answered();
        let (won, lost): (Vec<Reply>, Vec<Reply>) =
            replies.into_iter().partition(|r| r.status == 200);
        for reply in &lost {
            reply.assert_error(400, "invalid_params");
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: one thread gets the attachment"
        );
        let stream = Stream::parse(won.into_iter().next().unwrap());
        stream.assert_answered();

        let threads_after = server.list_threads(&alice, json!({ "limit": 100 })).await;
        assert_eq!(
            page_data(&threads_after).len(),
            before + 1,
            "round {round}: nothing is stored for the refused requests"
        );
        let linked = shared().postgres.psql(&format!(
            "SELECT thread_id FROM {}.attachments WHERE id = '{id}'",
            server.schema
        ));
        assert_eq!(linked, stream.thread_id(), "round {round}");
    }
}
