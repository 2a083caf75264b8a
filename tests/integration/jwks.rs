//! Tokens verified with keys from a JWKS URL: chosen by `kid`, cached, refreshed on an unknown
//! `kid` at most once per interval, algorithm still pinned; keys rotate.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::harness::*;

struct RsaKey {
    kid: String,
    private_pem: Vec<u8>,
    jwk: serde_json::Value,
}

fn rsa_key(kid: &str) -> RsaKey {
    ensure_debian_binary(&["/usr/bin/openssl"], "openssl");
    let dir = std::env::temp_dir().join(format!("chatkit-it-jwks-{}", rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("key.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(ok.status.success(), "openssl genpkey");
    let modulus = Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&pem)
        .output()
        .unwrap();
    let hex = String::from_utf8(modulus.stdout)
        .unwrap()
        .trim()
        .trim_start_matches("Modulus=")
        .to_string();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let private_pem = std::fs::read(&pem).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    RsaKey {
        kid: kid.to_string(),
        private_pem,
        jwk: json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64url(&n), "e": "AQAB" }),
    }
}

/// A token for `sub` signed with `key`, naming `kid` in its header (`None`: no `kid`).
fn sign_rs256_as(key: &RsaKey, kid: Option<&str>, sub: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    sign_with_key(
        header,
        &EncodingKey::from_rsa_pem(&key.private_pem).unwrap(),
        &json!({ "sub": sub, "exp": now() + 600 }),
    )
}

fn sign_rs256(key: &RsaKey, sub: &str) -> String {
    sign_rs256_as(key, Some(&key.kid), sub)
}

/// A tiny HTTP server publishing a JWKS document that the test can change.
struct JwksServer {
    url: String,
    doc: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(keys: &[&RsaKey]) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let doc = Arc::new(Mutex::new(String::new()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (d, f) = (doc.clone(), fetches.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                f.fetch_add(1, Ordering::SeqCst);
                let body = d.lock().unwrap().clone();
                let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            }
        });
        let server = JwksServer { url, doc, fetches };
        server.publish(keys);
        server
    }

    fn publish(&self, keys: &[&RsaKey]) {
        let keys: Vec<_> = keys.iter().map(|k| k.jwk.clone()).collect();
        *self.doc.lock().unwrap() = json!({ "keys": keys }).to_string();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn jwks_keys_by_kid_with_rotation_and_rate_limited_refresh() {
    let key_a = rsa_key("key-a");
    let key_b = rsa_key("key-b");
    let jwks = JwksServer::start(&[&key_a]);
    let server = TestServer::start_with(&[
        ("CHATKIT__AUTH__ALGORITHM", "RS256"),
        ("CHATKIT__AUTH__JWKS_URL", &jwks.url),
        ("CHATKIT__AUTH__JWKS_REFRESH_SECS", "2"),
    ]);
    let list = json!({ "type": "threads.list", "params": {} }).to_string();
    let call = |token: String| {
        let body = list.clone();
        let server = &server;
        async move { server.post_raw(Some(&token), body).await.status }
    };
    assert_eq!(call(sign_rs256(&key_a, "alice")).await, 200);
    let after_start = jwks.fetches();
    assert_eq!(after_start, 1, "fetched once at start-up, then cached");
    assert_eq!(call(sign_rs256(&key_a, "alice")).await, 200);
    assert_eq!(jwks.fetches(), 1);

    // Rotation: key b appears. A burst of unknown kids causes at most one fetch per interval.
    jwks.publish(&[&key_a, &key_b]);
    sleep_ms(2100).await;
    assert_eq!(
        call(sign_rs256(&key_b, "bob")).await,
        200,
        "the new key is fetched on demand"
    );
    assert_eq!(jwks.fetches(), 2);
    for i in 0..10 {
        let forged = sign_rs256_as(&key_b, Some(&format!("nope-{i}")), "mallory");
        assert_eq!(call(forged).await, 401);
    }
    assert_eq!(
        jwks.fetches(),
        2,
        "unknown kids within the interval do not refetch"
    );

    // The algorithm stays pinned: an HS256 token naming a known kid is refused.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("key-a".into());
    let hs = sign_with_key(
        header,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        &json!({ "sub": "alice", "exp": now() + 600 }),
    );
    assert_eq!(call(hs).await, 401);
    // No kid at all: refused.
    let no_kid = sign_rs256_as(&key_a, None, "alice");
    assert_eq!(call(no_kid).await, 401);
}
