//! HS256 tokens for virtual users: `{"sub":"user-N","iat":…,"exp":…}` signed with the server's
//! secret, by jsonwebtoken (the crate the server verifies them with).

use jsonwebtoken::{EncodingKey, Header};

/// A signed token for `sub`, valid for `ttl_secs` from now.
pub fn sign_hs256(secret: &[u8], sub: &str, ttl_secs: u64) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({ "sub": sub, "iat": now, "exp": now + ttl_secs });
    jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("HS256 signing of JSON claims cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};

    #[test]
    fn token_verifies_with_the_secret_and_names_the_user() {
        let token = sign_hs256(b"bench-secret", "user-7", 60);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(b"bench-secret"),
            &validation,
        )
        .expect("valid token");
        assert_eq!(data.claims["sub"], "user-7");
        let (iat, exp) = (data.claims["iat"].as_u64(), data.claims["exp"].as_u64());
        assert_eq!(exp.zip(iat).map(|(e, i)| e - i), Some(60));
        let wrong = DecodingKey::from_secret(b"another-secret");
        assert!(decode::<serde_json::Value>(&token, &wrong, &validation).is_err());
    }
}
