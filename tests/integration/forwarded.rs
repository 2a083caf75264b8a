//! `Forwarded` / `X-Forwarded-*` count only from `server.trusted_proxies`: anyone else could
//! point the attachment URLs we hand out at a host of their choosing.

use serde_json::json;

use crate::harness::*;

/// The upload URL `attachments.create` hands out when the request carries `headers`.
async fn upload_url(server: &TestServer, headers: &[(&str, &str)]) -> String {
    let mut req = reqwest::Client::new()
        .post(server.url("/chatkit"))
        .bearer_auth(token("alice"))
        .body(
            json!({ "type": "attachments.create", "params": { "name": "a.txt", "size": 3, "mime_type": "text/plain" } })
                .to_string(),
        );
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let reply = Reply::read(req.send().await.unwrap()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["upload_descriptor"]["url"]
        .as_str()
        .unwrap()
        .to_string()
}

const SPOOFS: &[&[(&str, &str)]] = &[
    &[("x-forwarded-host", "evil.example")],
    &[
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
    ],
    &[("forwarded", "host=evil.example;proto=https")],
];

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    // The test client connects from 127.0.0.1, which is not trusted here.
    let server = TestServer::start_with(&[("CHATKIT__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,::1")]);
    let own = server.url("/attachments/");
    for headers in SPOOFS {
        let url = upload_url(&server, headers).await;
        assert!(url.starts_with(&own), "{headers:?} → {url}");
    }
    // The default trusts nobody.
    let server = TestServer::start();
    let url = upload_url(&server, SPOOFS[2]).await;
    assert!(url.starts_with(&server.url("/attachments/")), "{url}");
}

#[tokio::test]
async fn forwarded_headers_from_a_trusted_proxy_make_the_urls() {
    let server = TestServer::start_with(&[("CHATKIT__SERVER__TRUSTED_PROXIES", "127.0.0.0/8")]);
    let url = upload_url(&server, SPOOFS[1]).await;
    assert!(
        url.starts_with("https://evil.example/attachments/"),
        "{url}"
    );
    let url = upload_url(&server, SPOOFS[2]).await;
    assert!(
        url.starts_with("https://evil.example/attachments/"),
        "{url}"
    );
    let url = upload_url(&server, &[]).await;
    assert!(url.starts_with(&server.url("/attachments/")), "{url}");
}
