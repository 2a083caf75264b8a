//! The `[auth]` section: a pinned algorithm and its key (or a JWKS URL), checked at start-up.

use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};

use serde::Deserialize;

use super::AuthSettings;

#[derive(Deserialize)]
pub(super) struct RawAuth {
    algorithm: String,
    jwt_secret: Option<String>,
    public_key_pem: Option<String>,
    audience: Option<String>,
    issuer: Option<String>,
    leeway_secs: u64,
    max_token_bytes: usize,
    jwks_url: Option<String>,
    jwks_refresh_secs: u64,
}

pub(super) fn validate_auth(raw: &RawAuth, problems: &mut Vec<String>) -> Option<AuthSettings> {
    let algorithm = match Algorithm::from_str(&raw.algorithm) {
        Ok(Algorithm::EdDSA) | Err(_) => {
            problems.push(format!(
                "auth.algorithm {:?} must be one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384",
                raw.algorithm
            ));
            return None;
        }
        Ok(alg) => alg,
    };
    let secret = raw.jwt_secret.as_deref().filter(|s| !s.is_empty());
    let pem = raw
        .public_key_pem
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let is_hmac = matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    );
    let jwks_url = raw
        .jwks_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(url) = jwks_url {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => problems.push("auth.jwks_url is not an http(s) URL".into()),
        }
        if is_hmac {
            problems.push(format!(
                "auth.jwks_url needs an asymmetric auth.algorithm, not {}",
                raw.algorithm
            ));
        }
        if pem.is_some() {
            problems.push("set either auth.jwks_url or auth.public_key_pem, not both".into());
        }
        if raw.jwks_refresh_secs == 0 {
            problems.push("auth.jwks_refresh_secs must be positive".into());
        }
    }
    let key = if jwks_url.is_some() {
        None
    } else if is_hmac {
        match secret {
            None => {
                problems.push(format!(
                    "auth.jwt_secret is required for {} (set CHATKIT__AUTH__JWT_SECRET)",
                    raw.algorithm
                ));
                return None;
            }
            Some(s) if s.len() < 32 => {
                problems.push("auth.jwt_secret must be at least 32 bytes long".into());
                return None;
            }
            Some(s) => Some(DecodingKey::from_secret(s.as_bytes())),
        }
    } else {
        let Some(pem) = pem else {
            problems.push(format!(
                "auth.public_key_pem or auth.jwks_url is required for {} (set CHATKIT__AUTH__PUBLIC_KEY_PEM or CHATKIT__AUTH__JWKS_URL)",
                raw.algorithm
            ));
            return None;
        };
        let parsed = if matches!(algorithm, Algorithm::ES256 | Algorithm::ES384) {
            DecodingKey::from_ec_pem(pem.as_bytes())
        } else {
            DecodingKey::from_rsa_pem(pem.as_bytes())
        };
        match parsed {
            Ok(key) => Some(key),
            Err(_) => {
                problems.push(format!(
                    "auth.public_key_pem is not a valid {} public key",
                    raw.algorithm
                ));
                return None;
            }
        }
    };
    if raw.max_token_bytes < 64 {
        problems.push("auth.max_token_bytes is too small".into());
    }
    Some(AuthSettings {
        algorithm,
        key,
        jwks_url: jwks_url.map(str::to_string),
        jwks_refresh: Duration::from_secs(raw.jwks_refresh_secs.max(1)),
        hs_secret: if is_hmac {
            secret.map(str::to_string)
        } else {
            None
        },
        audience: raw.audience.clone().filter(|a| !a.is_empty()),
        issuer: raw.issuer.clone().filter(|i| !i.is_empty()),
        leeway_secs: raw.leeway_secs,
        max_token_bytes: raw.max_token_bytes,
        admin_claim: String::new(),
        admin_value: String::new(),
    })
}
