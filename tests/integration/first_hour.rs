//! What the README's first hour promises an operator: `dev-token --admin` opens the admin
//! view, and `config/nginx-two-instances.conf`, as shipped, balances two instances (the
//! caller's `X-Request-Id` kept, Server-Sent Events unbuffered, attachment URLs naming the
//! proxy, uploads streamed through its `/attachments` location).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use crate::harness::*;
use crate::startup::chatkit;

fn dev_token(args: &[&str]) -> String {
    let mut all = vec!["dev-token", "--sub", "ops"];
    all.extend_from_slice(args);
    let (code, token, stderr) = chatkit(&[("CHATKIT__AUTH__JWT_SECRET", SECRET)], &all);
    assert_eq!(code, 0, "{stderr}");
    token.trim().to_string()
}

#[tokio::test]
async fn dev_token_admin_opens_the_admin_view() {
    let server = TestServer::start();
    let url = server.url("/admin/threads");
    let (status, body) = get_json(&url, Some(&dev_token(&[]))).await;
    assert_eq!(status, 403, "a plain dev token is no admin token: {body}");
    assert_eq!(body["error"]["code"], "forbidden");
    for admin in [
        dev_token(&["--admin"]),
        dev_token(&["--claim", "role=admin"]),
    ] {
        let (status, body) = get_json(&url, Some(&admin)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["data"].is_array(), "{body}");
    }
}

/// The shipped configuration with the README's ports (8000 in front, 8001 and 8002 behind)
/// replaced.
fn shipped_config(listen: &str, first: &str, second: &str) -> String {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/nginx-two-instances.conf"),
    )
    .unwrap();
    for address in ["127.0.0.1:8000;", "127.0.0.1:8001;", "127.0.0.1:8002;"] {
        assert_eq!(shipped.matches(address).count(), 1, "{address} once");
    }
    shipped
        .replace("127.0.0.1:8000;", &format!("{listen};"))
        .replace("127.0.0.1:8001;", &format!("{first};"))
        .replace("127.0.0.1:8002;", &format!("{second};"))
}

async fn start_nginx(first: &TestServer, second: &TestServer) -> Nginx {
    let binary = ensure_debian_binary(&["/usr/sbin/nginx", "/usr/bin/nginx"], "nginx-light");
    let prefix = std::env::temp_dir().join(format!("chatkit-it-nginx2-{}", rand_suffix()));
    std::fs::create_dir_all(&prefix).unwrap();
    let port = free_port();
    let conf = prefix.join("nginx-two-instances.conf");
    let listen = format!("127.0.0.1:{port}");
    std::fs::write(&conf, shipped_config(&listen, &first.addr, &second.addr)).unwrap();
    // The README's command line.
    let child = Command::new(&binary)
        .arg("-p")
        .arg(&prefix)
        .args(["-e", "stderr", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    register_child(child.id());
    let nginx = Nginx {
        url: format!("http://{listen}"),
        child,
        prefix,
    };
    Patience::within(Duration::from_secs(5))
        .every(Duration::from_millis(20))
        .until("nginx accepts connections", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
        })
        .await;
    nginx
}

#[tokio::test]
async fn the_shipped_nginx_config_balances_two_instances() {
    let schema = new_schema();
    let a = TestServer::start_node(&schema, "a", &[]);
    let b = TestServer::start_node(&schema, "b", &[]);
    let nginx = start_nginx(&a, &b).await;
    let http = reqwest::Client::new();
    let alice = token("alice");
    let chatkit = format!("{}/chatkit", nginx.url);

    // Both instances are behind it.
    let (status, instances) = get_json(
        &format!("{}/admin/instances", nginx.url),
        Some(&admin_token()),
    )
    .await;
    assert_eq!(status, 200, "{instances}");
    assert_eq!(
        instances["data"].as_array().unwrap().len(),
        2,
        "{instances}"
    );

    // The caller's request id reaches the instance (which answers with it).
    let listed = http
        .post(&chatkit)
        .bearer_auth(&alice)
        .header("x-request-id", "first-hour-4242")
        .body(json!({ "type": "threads.list", "params": {} }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.headers()["x-request-id"], "first-hour-4242");
    assert!(
        a.logs().contains("first-hour-4242") || b.logs().contains("first-hour-4242"),
        "the instance logged the caller's request id"
    );

    // Events pass as they are produced: the first text delta of a slow answer (30 chunks,
    // 50 ms apart) arrives long before its end.
    let started = Instant::now();
    let response = http
        .post(&chatkit)
        .bearer_auth(&alice)
        .body(create_request("slow 30").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = Vec::new();
    let mut first_delta = None;
    while let Some(chunk) = body.next().await {
        seen.extend_from_slice(&chunk.unwrap());
        if first_delta.is_none() && String::from_utf8_lossy(&seen).contains("text_delta") {
            first_delta = Some(started.elapsed());
        }
    }
    let (first_delta, total) = (first_delta.expect("a text delta"), started.elapsed());
    assert!(
        total - first_delta > Duration::from_millis(700),
        "first delta at {first_delta:?}, end at {total:?}: the stream was buffered"
    );

    // Upload URLs name the proxy (Host with its port), and uploads go through.
    let created = http
        .post(&chatkit)
        .bearer_auth(&alice)
        .body(
            op_request(
                "attachments.create",
                json!({ "name": "notes.txt", "size": 5, "mime_type": "text/plain" }),
            )
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let created: serde_json::Value = created.json().await.unwrap();
    let upload = created["upload_descriptor"]["url"].as_str().unwrap();
    assert!(
        upload.starts_with(&format!("{}/attachments/", nginx.url)),
        "{upload}"
    );
    let form = file_form("notes.txt", "text/plain", b"hello");
    let uploaded = http
        .post(upload)
        .header("content-type", &form.0)
        .body(form.1)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200, "{:?}", uploaded.text().await);
}
