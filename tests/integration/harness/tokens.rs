//! JWT minting: HS256 tokens with the secret every test server verifies with, admin tokens,
//! tokens signed with any algorithm and key, and a base64url encoder of our own (the tests
//! must not trust the library they test to build malformed tokens).

use serde_json::{json, Value};

/// The HS256 secret every test server verifies with.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

/// An HS256 token for `sub`, valid for an hour.
pub fn token(sub: &str) -> String {
    token_with(json!({ "sub": sub, "exp": now() + 3600 }))
}

/// An HS256 token with these claims, signed with [`SECRET`].
pub fn token_with(claims: Value) -> String {
    sign(jsonwebtoken::Algorithm::HS256, SECRET, &claims)
}

/// A token of the `ops` user with the admin role, valid for ten minutes.
pub fn admin_token() -> String {
    token_with(json!({ "sub": "ops", "role": "admin", "exp": now() + 600 }))
}

/// An HS256 token for `sub` signed with a secret the servers do not know.
pub fn forged_token(sub: &str) -> String {
    sign(
        jsonwebtoken::Algorithm::HS256,
        "forged-secret-forged-secret-0123456789",
        &json!({ "sub": sub, "exp": now() + 60 }),
    )
}

/// `claims` signed with an HMAC algorithm and `secret`.
pub fn sign(alg: jsonwebtoken::Algorithm, secret: &str, claims: &Value) -> String {
    sign_with_key(
        jsonwebtoken::Header::new(alg),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        claims,
    )
}

/// `claims` signed with any header (algorithm, `kid`) and key.
pub fn sign_with_key(
    header: jsonwebtoken::Header,
    key: &jsonwebtoken::EncodingKey,
    claims: &Value,
) -> String {
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// Seconds since the epoch (for `exp`, `nbf`).
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
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
