//! The auth matrix: every failure is a 401 JSON with `WWW-Authenticate: Bearer`, checked
//! before the body is read.

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::harness::*;

fn list_body() -> String {
    json!({ "type": "threads.list", "params": {} }).to_string()
}

async fn assert_refused(server: &TestServer, header: Option<&str>) {
    let mut req = reqwest::Client::new()
        .post(server.url("/chatkit"))
        .body(list_body());
    if let Some(h) = header {
        req = req.header("authorization", h);
    }
    let response = req.send().await.unwrap();
    let www = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 401, "header {header:?} → {text}");
    assert_eq!(www.as_deref(), Some("Bearer"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

/// A token with these claims and this `alg` header but no signature (base64url of our own:
/// the test must not trust the library it is testing).
fn unsigned(claims: Value, alg: &str) -> String {
    let header = b64url(json!({ "alg": alg, "typ": "JWT" }).to_string().as_bytes());
    let payload = b64url(claims.to_string().as_bytes());
    format!("{header}.{payload}.")
}

#[tokio::test]
async fn every_bad_credential_is_a_401() {
    let server = TestServer::start_with(&[
        ("CHATKIT__AUTH__AUDIENCE", "chatkit"),
        ("CHATKIT__AUTH__ISSUER", "https://issuer.test/"),
        ("CHATKIT__AUTH__LEEWAY_SECS", "0"),
    ]);
    let good = json!({ "sub": "alice", "exp": now() + 600, "aud": "chatkit", "iss": "https://issuer.test/" });
    let valid = token_with(good.clone());

    // The valid token works.
    let reply = server.post_raw(Some(&valid), list_body()).await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    assert_refused(&server, None).await;
    assert_refused(&server, Some(&format!("Basic {valid}"))).await;
    assert_refused(&server, Some("Bearer")).await;
    assert_refused(&server, Some("Bearer ")).await;
    assert_refused(&server, Some("Bearer not.a.jwt")).await;

    // Tampered payload: a valid signature over other claims.
    let mut parts: Vec<String> = valid.split('.').map(str::to_string).collect();
    parts[1] = b64url(json!({ "sub": "mallory", "exp": now() + 600, "aud": "chatkit", "iss": "https://issuer.test/" }).to_string().as_bytes());
    let tampered = parts.join(".");
    // The good claims with one claim set to another value, or removed (`None`).
    let changed = |claim: &str, value: Option<Value>| {
        let mut claims = good.clone();
        match value {
            Some(value) => claims[claim] = value,
            None => {
                claims.as_object_mut().unwrap().remove(claim);
            }
        }
        token_with(claims)
    };
    let refused_tokens = [
        // alg: none, with and without a signature part.
        unsigned(good.clone(), "none"),
        unsigned(good.clone(), "HS256"),
        // Wrong signature.
        sign(
            Algorithm::HS256,
            "another-secret-another-secret-0123456789",
            &good,
        ),
        tampered,
        // Algorithm other than the pinned one, same secret.
        sign(Algorithm::HS384, SECRET, &good),
        // Expired, not yet valid, missing exp, missing sub, wrong aud, wrong iss.
        changed("exp", Some(json!(now() - 10))),
        changed("nbf", Some(json!(now() + 600))),
        changed("exp", None),
        changed("sub", None),
        changed("aud", Some(json!("someone-else"))),
        changed("iss", Some(json!("https://evil.test/"))),
        // Oversized token.
        changed("pad", Some(json!("x".repeat(10_000)))),
    ];
    for token in refused_tokens {
        assert_refused(&server, Some(&format!("Bearer {token}"))).await;
    }
}

#[tokio::test]
async fn auth_is_checked_before_the_body() {
    let server = TestServer::start();
    // A body that would be a 400 or 413 still gets 401 without a token.
    let reply = server.post_raw(None, "this is not json").await;
    assert_eq!(reply.status, 401);
    let reply = server.post_raw(None, vec![b'x'; 4 << 20]).await;
    assert_eq!(reply.status, 401);
}
