//! Three instances behind nginx doing round robin (the example config in `config/`), one
//! Postgres: concurrent conversations land on any instance, everything is stored once and in
//! order, the admin view sees every owner, a killed instance's threads continue, and a
//! SIGTERM drain under load fails no request.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

pub(crate) async fn start_nginx(backends: &[&TestServer]) -> Nginx {
    let binary = ensure_debian_binary(&["/usr/sbin/nginx", "/usr/bin/nginx"], "nginx-light");
    let prefix = std::env::temp_dir().join(format!("chatkit-it-nginx-{}", rand_suffix()));
    std::fs::create_dir_all(&prefix).unwrap();
    let port = free_port();
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/nginx-cluster.conf"),
    )
    .unwrap();
    let upstreams: String = backends
        .iter()
        .map(|b| format!("        server {};\n", b.addr))
        .collect();
    let conf = template
        .replace("{{PREFIX}}", &prefix.to_string_lossy())
        .replace("{{LISTEN}}", &format!("127.0.0.1:{port}"))
        .replace("{{UPSTREAMS}}", &upstreams);
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(&binary)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    register_child(child.id());
    Patience::within(Duration::from_secs(2))
        .every(Duration::from_millis(20))
        .until("nginx accepts connections", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
        })
        .await;
    let url = format!("http://127.0.0.1:{port}");
    Nginx { url, child, prefix }
}

fn node(schema: &str, name: &str) -> TestServer {
    TestServer::start_node(
        schema,
        name,
        &[
            ("CHATKIT__SERVER__DRAIN_TIMEOUT_SECS", "10"),
            // nginx's X-Forwarded-* headers count (config/nginx-cluster.conf).
            ("CHATKIT__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
}

/// One user's conversation through the balancer: `turns` turns saying `"{label} {turn}"`, on
/// `thread` or a new thread, each must be answered. The thread id and the announced items.
async fn conversation(
    base: String,
    user: String,
    mut thread: Option<String>,
    label: String,
    turns: usize,
) -> Result<(String, Vec<Value>), String> {
    let http = reqwest::Client::new();
    let token = token(&user);
    let mut announced = Vec::new();
    for turn in 0..turns {
        let body = turn_request(thread.as_deref(), &format!("{label} {turn}"));
        let stream = post_stream(&http, &base, &token, &body)
            .await
            .map_err(|e| format!("{user} turn {turn}: {e}"))?;
        let done = stream.done_items();
        if done
            .last()
            .map(|i| i["type"] != "assistant_message")
            .unwrap_or(true)
        {
            return Err(format!(
                "{user} turn {turn}: not answered: {:?}",
                stream.kinds()
            ));
        }
        thread.get_or_insert_with(|| stream.thread_id());
        announced.extend(done);
    }
    Ok((thread.unwrap(), announced))
}

/// A new user's conversation of `turns` turns through the balancer.
async fn new_conversation(
    base: String,
    user: String,
    turns: usize,
) -> Result<(String, Vec<Value>), String> {
    let label = format!("{user} turn");
    conversation(base, user, None, label, turns).await
}

#[tokio::test]
async fn three_instances_behind_round_robin_nginx() {
    let schema = new_schema();
    let mut nodes = vec![
        node(&schema, "node-1"),
        node(&schema, "node-2"),
        node(&schema, "node-3"),
    ];
    let nginx = start_nginx(&nodes.iter().collect::<Vec<_>>()).await;

    // Dozens of conversations at once, several turns each, through the balancer.
    let runs: Vec<_> = (0..24)
        .map(|u| tokio::spawn(new_conversation(nginx.url.clone(), format!("user-{u}"), 4)))
        .collect();
    let mut threads = Vec::new();
    for run in runs {
        threads.push(run.await.unwrap().expect("every turn answered"));
    }
    // Stored exactly once and in order.
    for (thread_id, announced) in &threads {
        let rows = shared().postgres.psql(&format!(
            "SELECT string_agg(body, E'\\n' ORDER BY created_at, seq) FROM {schema}.items WHERE thread_id = '{thread_id}'"
        ));
        let stored: Vec<Value> = rows
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(&stored, announced, "thread {thread_id}");
    }
    // Turns of one thread really landed on different instances (round robin).
    let served: std::collections::HashSet<String> = nodes
        .iter()
        .filter(|n| n.logs().contains("handing the thread over"))
        .map(|n| n.addr.clone())
        .collect();
    assert!(!served.is_empty(), "threads moved between instances");

    // The admin view, through the balancer, sees every live thread with its owner.
    let admin = admin_token();
    let (status, listed) = get_json(
        &format!("{}/admin/threads?limit=1000", nginx.url),
        Some(&admin),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    let rows = listed["data"].as_array().unwrap();
    assert_eq!(rows.len(), threads.len());
    let owners = shared().postgres.psql(&format!("SELECT string_agg(thread_id || '=' || instance_id, ',' ORDER BY thread_id) FROM {schema}.thread_leases"));
    for row in rows {
        let pair = format!(
            "{}={}",
            row["thread_id"].as_str().unwrap(),
            row["instance_id"].as_str().unwrap()
        );
        assert!(owners.contains(&pair), "{pair} not in {owners}");
    }
    let (status, instances) =
        get_json(&format!("{}/admin/instances", nginx.url), Some(&admin)).await;
    assert_eq!(status, 200, "{instances}");
    assert_eq!(instances["data"].as_array().unwrap().len(), 3);

    // Kill -9 one instance mid-stream: its threads continue on the others.
    let victim_thread = &threads[0].0;
    let owner = token("user-0");
    let mut live = nodes[0]
        .open_message_stream(&owner, victim_thread, "slow 40")
        .await;
    live.read_events(4).await;
    nodes[0].kill();
    drop(live);
    let (_, after) = conversation(
        nginx.url.clone(),
        "user-0".into(),
        Some(victim_thread.clone()),
        "again".into(),
        2,
    )
    .await
    .expect("the thread continues after the kill");
    assert_eq!(after.len(), 4);

    // SIGTERM one instance under load: no request fails.
    let base = Arc::new(nginx.url.clone());
    let load: Vec<_> = (0..8)
        .map(|u| {
            let base = base.clone();
            tokio::spawn(async move {
                new_conversation(base.to_string(), format!("drain-{u}"), 3).await
            })
        })
        .collect();
    sleep_ms(300).await;
    nodes[1].terminate();
    for run in load {
        run.await
            .unwrap()
            .expect("no request failed during the drain");
    }
    assert!(nodes[1].wait().success(), "the drained instance exited 0");
    nodes.truncate(1);
}

/// `path` through the balancer: status and body.
async fn post_json(http: &reqwest::Client, base: &str, token: &str, body: &Value) -> (u16, Value) {
    let response = http
        .post(format!("{base}/chatkit"))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn attachments_work_through_the_balancer_whatever_instance_serves_each_step() {
    let schema = new_schema();
    let nodes = [node(&schema, "node-1"), node(&schema, "node-2")];
    let nginx = start_nginx(&nodes.iter().collect::<Vec<_>>()).await;
    let http = reqwest::Client::new();
    let alice = token("alice");
    // Big enough to need the attachment location's body limit (the API's is 1 MiB).
    let mut image = b"\x89PNG\r\n\x1a\n".to_vec();
    image.extend((0..1_500_000u32).map(|i| (i % 253) as u8));
    for round in 0..4 {
        // Round robin: create, upload, message and preview alternate between the instances.
        let params =
            serde_json::json!({ "name": "a.png", "size": image.len(), "mime_type": "image/png" });
        let (status, created) = post_json(
            &http,
            &nginx.url,
            &alice,
            &op_request("attachments.create", params),
        )
        .await;
        assert_eq!(status, 200, "{created}");
        let upload = created["upload_descriptor"]["url"].as_str().unwrap();
        assert!(
            upload.starts_with(&nginx.url),
            "URLs name the balancer: {upload}"
        );
        let form = file_form("a.png", "image/png", &image);
        let uploaded = http
            .post(upload)
            .header("content-type", &form.0)
            .body(form.1)
            .send()
            .await
            .unwrap();
        assert_eq!(
            uploaded.status(),
            200,
            "round {round}: {}",
            uploaded.text().await.unwrap()
        );
        let id = created["id"].as_str().unwrap();
        let input = serde_json::json!({
            "content": [{ "type": "input_text", "text": format!("balanced {round}") }],
            "attachments": [id],
            "inference_options": {}
        });
        let stream = post_stream(
            &http,
            &nginx.url,
            &alice,
            &op_request("threads.create", serde_json::json!({ "input": input })),
        )
        .await
        .expect("answered");
        let preview = stream.done_items()[0]["attachments"][0]["preview_url"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(preview.starts_with(&nginx.url), "{preview}");
        for _ in 0..2 {
            let fetched = http.get(&preview).send().await.unwrap();
            assert_eq!(fetched.status(), 200);
            assert!(
                fetched.bytes().await.unwrap() == image,
                "the same bytes from every instance"
            );
        }
    }
}

#[tokio::test]
async fn a_widget_made_on_one_instance_takes_its_action_on_another() {
    let mcp = McpServer::start(&[]);
    let config = format!(
        r#"
[[mcp.servers]]
name = "tasks"
url = "{}"
forward_user_token = true

[[widget_actions]]
type = "tasks.complete"
tool = "tasks__complete_task_card"

[server]
trusted_proxies = ["127.0.0.1"]
"#,
        mcp.url()
    );
    let schema = new_schema();
    let nodes = [
        TestServer::start_node_with_config(&schema, "node-1", &config),
        TestServer::start_node_with_config(&schema, "node-2", &config),
    ];
    let nginx = start_nginx(&nodes.iter().collect::<Vec<_>>()).await;
    let http = reqwest::Client::new();
    let alice = token("alice");
    for round in 0..2 {
        // Round robin: the task, its card and the action land on alternating instances.
        let added = post_stream(
            &http,
            &nginx.url,
            &alice,
            &turn_request(None, &format!("add task balanced {round}")),
        )
        .await
        .expect("answered");
        let thread_id = added.thread_id();
        let task: Value =
            serde_json::from_str(added.answer_text().strip_prefix("Done: ").unwrap()).unwrap();
        let task_id = task["id"].as_str().unwrap();
        let show = format!(r#"call show_task {{"task_id":"{task_id}"}}"#);
        let shown = post_stream(
            &http,
            &nginx.url,
            &alice,
            &turn_request(Some(&thread_id), &show),
        )
        .await
        .expect("answered");
        let card = shown
            .done_items()
            .into_iter()
            .find(|i| i["type"] == "widget")
            .expect("a card");
        let params = serde_json::json!({
            "thread_id": thread_id,
            "item_id": card["id"],
            "action": {"type": "tasks.complete", "payload": {"task_id": task_id}}
        });
        let acted = post_stream(
            &http,
            &nginx.url,
            &alice,
            &op_request("threads.custom_action", params.clone()),
        )
        .await
        .expect("the action streams");
        assert_eq!(
            acted.kinds(),
            ["stream_options", "thread.item.replaced"],
            "round {round}"
        );
        assert!(acted.raw.contains(r#""label":"done""#), "{}", acted.raw);
        // The sync variant through the balancer: the card no longer holds that action.
        let (status, body) = post_json(
            &http,
            &nginx.url,
            &alice,
            &op_request("threads.sync_custom_action", params),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("action_not_in_widget")),
            "{body}"
        );
        // Every instance reads the replaced card.
        for _ in 0..2 {
            let (status, page) = post_json(
                &http,
                &nginx.url,
                &alice,
                &op_request(
                    "items.list",
                    serde_json::json!({"thread_id": thread_id, "order": "asc"}),
                ),
            )
            .await;
            assert_eq!(status, 200);
            let stored = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["id"] == card["id"])
                .unwrap()
                .clone();
            assert_eq!(stored, acted.events[1]["item"]);
        }
    }
}
