//! Paging: both orders, cursors, limits, hidden items filtered after paging (protocol §2.1, §3.9, §3.10).

use serde_json::{json, Value};

use crate::harness::*;

fn ids(page: &Value) -> Vec<String> {
    field_of(page, "id")
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn threads_list_pages_newest_first_with_cursors() {
    let server = TestServer::start();
    let alice = token("alice");
    let texts: Vec<String> = (0..25).map(|i| format!("thread {i}")).collect();
    let created = create_threads(&server, &alice, &texts).await;
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    let list = |params: Value| server.list_threads(&alice, params);

    let first = list(json!({ "limit": 20 })).await;
    assert_eq!(ids(&first), newest_first[..20]);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["after"], json!(newest_first[19]));
    let second = list(json!({ "limit": 20, "after": first["after"] })).await;
    assert_eq!(ids(&second), newest_first[20..]);
    assert_eq!(second["has_more"], false);
    assert!(second.get("after").is_none());

    // limit 0 and null mean 20; asc order walks the other way.
    let zero = list(json!({ "limit": 0 })).await;
    assert_eq!(ids(&zero).len(), 20);
    let asc = list(json!({ "limit": 10, "order": "asc" })).await;
    assert_eq!(ids(&asc), created[..10]);
    let asc2 = list(json!({ "limit": 10, "order": "asc", "after": asc["after"] })).await;
    assert_eq!(ids(&asc2), created[10..20]);

    // Every listed thread has the empty items page and metadata {}.
    for thread in page_data(&first) {
        assert_eq!(thread["items"], json!({ "data": [], "has_more": false }));
        assert_eq!(thread["metadata"], json!({}));
    }

    // An unknown cursor is a 404 (as the reference), another user's cursor too.
    let reply = server
        .post_op(&alice, "threads.list", json!({ "after": "thr_nope" }))
        .await;
    reply.assert_error(404, "cursor_not_found");
    let bob = token("bob");
    let reply = server
        .post_op(&bob, "threads.list", json!({ "after": created[0] }))
        .await;
    reply.assert_error(404, "cursor_not_found");
}

#[tokio::test]
async fn items_list_pages_both_ways_and_get_by_id_shows_oldest_twenty() {
    let server = TestServer::start();
    let alice = token("alice");
    let thread_id = create_thread(&server, &alice, "m0").await.thread_id();
    for i in 1..13 {
        let s = add_message(&server, &alice, &thread_id, &format!("m{i}")).await;
        assert_eq!(s.status, 200);
    }
    // 13 turns = 26 items.
    let all = server
        .call(
            &alice,
            "items.list",
            json!({ "thread_id": thread_id, "limit": 100, "order": "asc" }),
            Kind::ItemsPage,
        )
        .await;
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 26);
    assert_eq!(all["has_more"], false);

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut params = json!({ "thread_id": thread_id, "limit": 7 });
        if let Some(a) = &after {
            params["after"] = json!(a);
        }
        let page = server
            .call(&alice, "items.list", params, Kind::ItemsPage)
            .await;
        seen.extend(ids(&page));
        if page["has_more"] == false {
            assert!(page.get("after").is_none());
            break;
        }
        after = Some(page["after"].as_str().unwrap().to_string());
    }
    let mut expected = all_ids.clone();
    expected.reverse();
    assert_eq!(seen, expected, "desc paging visits every item once");

    let thread = server.get_thread(&alice, &thread_id).await;
    assert_eq!(ids(&thread["items"]), all_ids[..20]);
    assert_eq!(thread["items"]["has_more"], true);
    assert_eq!(thread["items"]["after"], json!(all_ids[19]));

    let reply = server
        .post_op(
            &alice,
            "items.list",
            json!({ "thread_id": thread_id, "after": "msg_nope" }),
        )
        .await;
    reply.assert_error(404, "cursor_not_found");
}
