//! The auth matrix: every failure is a 401 JSON with `WWW-Authenticate: Bearer`, checked
//! before the body is read.

use jsonwebtoken::Algorithm;
use serde_json::json;

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
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

fn unsigned(claims: serde_json::Value, alg: &str) -> String {
    use base64_url as b64;
    let header = b64::encode(&json!({ "alg": alg, "typ": "JWT" }).to_string());
    let payload = b64::encode(&claims.to_string());
    format!("{header}.{payload}.")
}

/// Minimal base64url without padding (the test must not trust the library it is testing).
mod base64_url {
    pub fn encode(input: &str) -> String {
        const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = input.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
            for i in 0..=chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }
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
    // alg: none, with and without a signature part.
    assert_refused(
        &server,
        Some(&format!("Bearer {}", unsigned(good.clone(), "none"))),
    )
    .await;
    assert_refused(
        &server,
        Some(&format!("Bearer {}", unsigned(good.clone(), "HS256"))),
    )
    .await;
    // Wrong signature.
    let forged = sign(
        Algorithm::HS256,
        "another-secret-another-secret-0123456789",
        &good,
    );
    assert_refused(&server, Some(&format!("Bearer {forged}"))).await;
    // Tampered payload: a valid signature over other claims.
    let mut parts: Vec<String> = valid.split('.').map(str::to_string).collect();
    parts[1] = base64_url::encode(&json!({ "sub": "mallory", "exp": now() + 600, "aud": "chatkit", "iss": "https://issuer.test/" }).to_string());
    assert_refused(&server, Some(&format!("Bearer {}", parts.join(".")))).await;
    // Algorithm other than the pinned one, same secret.
    let hs384 = sign(Algorithm::HS384, SECRET, &good);
    assert_refused(&server, Some(&format!("Bearer {hs384}"))).await;
    // Expired, not yet valid, missing exp, missing sub, wrong aud, wrong iss.
    let mut claims = good.clone();
    claims["exp"] = json!(now() - 10);
    assert_refused(&server, Some(&format!("Bearer {}", token_with(claims)))).await;
    let mut claims = good.clone();
    claims["nbf"] = json!(now() + 600);
    assert_refused(&server, Some(&format!("Bearer {}", token_with(claims)))).await;
    let mut claims = good.clone();
    claims.as_object_mut().unwrap().remove("exp");
    assert_refused(&server, Some(&format!("Bearer {}", token_with(claims)))).await;
    let mut claims = good.clone();
    claims.as_object_mut().unwrap().remove("sub");
    assert_refused(&server, Some(&format!("Bearer {}", token_with(claims)))).await;
    let mut claims = good.clone();
    claims["aud"] = json!("someone-else");
    assert_refused(&server, Some(&format!("Bearer {}", token_with(claims)))).await;
    let mut claims = good.clone();
    claims["iss"] = json!("https://evil.test/");
    assert_refused(&server, Some(&format!("Bearer {}", token_with(claims)))).await;
    // Oversized token.
    let mut claims = good.clone();
    claims["pad"] = json!("x".repeat(10_000));
    assert_refused(&server, Some(&format!("Bearer {}", token_with(claims)))).await;
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
