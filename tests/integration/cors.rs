//! CORS for a ChatKit UI served from another origin (`server.cors_allowed_origins`).

use serde_json::json;

use crate::harness::*;
use crate::startup::chatkit;

const APP: &str = "https://app.example.com";

async fn preflight(server: &TestServer, path: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, server.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn listed_origins_get_cors_answers_and_others_do_not() {
    let server = TestServer::start_with(&[("CHATKIT__SERVER__CORS_ALLOWED_ORIGINS", APP)]);
    for path in ["/chatkit", "/attachments", "/attachments/atc_1/upload"] {
        let answer = preflight(&server, path, APP).await;
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        assert_eq!(
            header(&answer, "access-control-allow-origin"),
            APP,
            "{path}"
        );
        let allowed = header(&answer, "access-control-allow-headers").to_lowercase();
        assert!(
            allowed.contains("authorization") && allowed.contains("content-type"),
            "{allowed}"
        );
    }
    let alice = token("alice");
    let http = reqwest::Client::new();
    let listed = http
        .post(server.url("/chatkit"))
        .bearer_auth(&alice)
        .header("origin", APP)
        .body(json!({ "type": "threads.list", "params": {} }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    assert_eq!(header(&listed, "access-control-allow-origin"), APP);
    assert!(header(&listed, "access-control-expose-headers")
        .to_lowercase()
        .contains("x-request-id"));
    // Another origin is served, without the headers a browser would need to read the answer.
    let other = http
        .post(server.url("/chatkit"))
        .bearer_auth(&alice)
        .header("origin", "https://evil.example")
        .body(json!({ "type": "threads.list", "params": {} }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(header(&other, "access-control-allow-origin"), "");
    let answer = preflight(&server, "/chatkit", "https://evil.example").await;
    assert_eq!(header(&answer, "access-control-allow-origin"), "");
}

#[tokio::test]
async fn without_origins_there_is_no_cors_and_bad_origins_are_refused_at_start() {
    let server = TestServer::start();
    let answer = preflight(&server, "/chatkit", APP).await;
    assert_eq!(answer.status(), 405, "OPTIONS is not served without CORS");
    assert_eq!(header(&answer, "access-control-allow-origin"), "");
    let (code, _, stderr) = chatkit(
        &[
            ("CHATKIT__AUTH__JWT_SECRET", SECRET),
            (
                "CHATKIT__SERVER__CORS_ALLOWED_ORIGINS",
                "https://ok.example,not an origin",
            ),
        ],
        &["check-config"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("server.cors_allowed_origins \"not an origin\""),
        "{stderr}"
    );
}
