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
    let algorithm = parse_algorithm(&raw.algorithm)
        .map_err(|problem| problems.push(problem))
        .ok()?;
    let key = match raw.jwks_url() {
        // Keys come from the URL, fetched when the server runs.
        Some(url) => {
            problems.extend(jwks_problems(raw, url, algorithm));
            None
        }
        None => Some(
            verification_key(raw, algorithm)
                .map_err(|problem| problems.push(problem))
                .ok()?,
        ),
    };
    if raw.max_token_bytes < 64 {
        problems.push("auth.max_token_bytes is too small".into());
    }
    Some(AuthSettings {
        algorithm,
        key,
        jwks_url: raw.jwks_url().map(str::to_string),
        jwks_refresh: Duration::from_secs(raw.jwks_refresh_secs.max(1)),
        hs_secret: raw
            .secret()
            .filter(|_| is_hmac(algorithm))
            .map(str::to_string),
        audience: raw.audience.clone().filter(|a| !a.is_empty()),
        issuer: raw.issuer.clone().filter(|i| !i.is_empty()),
        leeway_secs: raw.leeway_secs,
        max_token_bytes: raw.max_token_bytes,
        admin_claim: String::new(),
        admin_value: String::new(),
    })
}

impl RawAuth {
    /// `auth.jwt_secret`, unless empty.
    fn secret(&self) -> Option<&str> {
        self.jwt_secret.as_deref().filter(|s| !s.is_empty())
    }

    /// `auth.public_key_pem`, unless blank.
    fn pem(&self) -> Option<&str> {
        self.public_key_pem
            .as_deref()
            .filter(|s| !s.trim().is_empty())
    }

    /// `auth.jwks_url` trimmed, unless blank.
    fn jwks_url(&self) -> Option<&str> {
        self.jwks_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
    }
}

/// The pinned algorithm: any jsonwebtoken verifies but EdDSA (whose keys we do not read).
fn parse_algorithm(written: &str) -> Result<Algorithm, String> {
    match Algorithm::from_str(written) {
        Ok(Algorithm::EdDSA) | Err(_) => Err(format!(
            "auth.algorithm {written:?} must be one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384"
        )),
        Ok(algorithm) => Ok(algorithm),
    }
}

fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

/// What is wrong with verifying by the keys at `url`: a URL that is not http(s), a shared
/// secret algorithm (a JWKS publishes public keys), a key given as well, no refresh period.
fn jwks_problems(raw: &RawAuth, url: &str, algorithm: Algorithm) -> Vec<String> {
    let mut problems = Vec::new();
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
        _ => problems.push("auth.jwks_url is not an http(s) URL".into()),
    }
    if is_hmac(algorithm) {
        problems.push(format!(
            "auth.jwks_url needs an asymmetric auth.algorithm, not {}",
            raw.algorithm
        ));
    }
    if raw.pem().is_some() {
        problems.push("set either auth.jwks_url or auth.public_key_pem, not both".into());
    }
    if raw.jwks_refresh_secs == 0 {
        problems.push("auth.jwks_refresh_secs must be positive".into());
    }
    problems
}

/// The configured key tokens are verified with: the shared secret (HS*, at least 32 bytes),
/// or the public key in PEM (an EC key for ES*, an RSA key for RS* and PS*).
fn verification_key(raw: &RawAuth, algorithm: Algorithm) -> Result<DecodingKey, String> {
    if is_hmac(algorithm) {
        return match raw.secret() {
            None => Err(format!(
                "auth.jwt_secret is required for {} (set CHATKIT__AUTH__JWT_SECRET)",
                raw.algorithm
            )),
            Some(s) if s.len() < 32 => Err("auth.jwt_secret must be at least 32 bytes long".into()),
            Some(s) => Ok(DecodingKey::from_secret(s.as_bytes())),
        };
    }
    let Some(pem) = raw.pem() else {
        return Err(format!(
            "auth.public_key_pem or auth.jwks_url is required for {} (set CHATKIT__AUTH__PUBLIC_KEY_PEM or CHATKIT__AUTH__JWKS_URL)",
            raw.algorithm
        ));
    };
    let parsed = if matches!(algorithm, Algorithm::ES256 | Algorithm::ES384) {
        DecodingKey::from_ec_pem(pem.as_bytes())
    } else {
        DecodingKey::from_rsa_pem(pem.as_bytes())
    };
    parsed.map_err(|_| {
        format!(
            "auth.public_key_pem is not a valid {} public key",
            raw.algorithm
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 public key (its private half thrown away).
    const EC_PUBLIC_KEY: &str = concat!(
        "-----BEGIN PUBLIC KEY-----\n",
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEUPcrsmmybeiSx4fYwHtxgMA1cIiM\n",
        "xJr6+hLJQbxhg2nO00GWDs04Q//VIHyx6Fp7Naq8Y7QzPV4pXmQO4Q6HcA==\n",
        "-----END PUBLIC KEY-----\n",
    );

    fn raw(algorithm: &str) -> RawAuth {
        RawAuth {
            algorithm: algorithm.into(),
            jwt_secret: None,
            public_key_pem: None,
            audience: None,
            issuer: None,
            leeway_secs: 30,
            max_token_bytes: 8192,
            jwks_url: None,
            jwks_refresh_secs: 300,
        }
    }

    #[test]
    fn the_algorithm_is_one_we_can_verify() {
        assert_eq!(parse_algorithm("RS256"), Ok(Algorithm::RS256));
        for written in ["EdDSA", "none", "hs256", ""] {
            let problem = parse_algorithm(written).unwrap_err();
            assert!(
                problem.starts_with(&format!("auth.algorithm {written:?} must be one of HS256,")),
                "{problem}"
            );
        }
    }

    #[test]
    fn a_shared_secret_is_required_and_long() {
        let mut hs = raw("HS384");
        let problem = |raw: &RawAuth| verification_key(raw, Algorithm::HS384).err();
        assert_eq!(
            problem(&hs).as_deref(),
            Some("auth.jwt_secret is required for HS384 (set CHATKIT__AUTH__JWT_SECRET)")
        );
        hs.jwt_secret = Some(String::new());
        assert!(problem(&hs).unwrap().contains("is required"));
        hs.jwt_secret = Some("x".repeat(31));
        assert_eq!(
            problem(&hs).as_deref(),
            Some("auth.jwt_secret must be at least 32 bytes long")
        );
        hs.jwt_secret = Some("x".repeat(32));
        assert_eq!(problem(&hs), None);
    }

    #[test]
    fn a_public_key_is_required_and_of_the_algorithm_s_kind() {
        let mut es = raw("ES256");
        assert_eq!(
            verification_key(&es, Algorithm::ES256).err().as_deref(),
            Some("auth.public_key_pem or auth.jwks_url is required for ES256 (set CHATKIT__AUTH__PUBLIC_KEY_PEM or CHATKIT__AUTH__JWKS_URL)")
        );
        es.public_key_pem = Some(EC_PUBLIC_KEY.into());
        assert!(verification_key(&es, Algorithm::ES256).is_ok());
        // An EC key is no RSA key.
        let mut rs = raw("RS256");
        rs.public_key_pem = Some(EC_PUBLIC_KEY.into());
        assert_eq!(
            verification_key(&rs, Algorithm::RS256).err().as_deref(),
            Some("auth.public_key_pem is not a valid RS256 public key")
        );
    }

    #[test]
    fn a_jwks_url_is_http_for_an_asymmetric_algorithm_without_a_key() {
        let rs = raw("RS256");
        assert!(jwks_problems(&rs, "https://idp.example/jwks", Algorithm::RS256).is_empty());
        let mut hs = raw("HS256");
        hs.public_key_pem = Some(EC_PUBLIC_KEY.into());
        hs.jwks_refresh_secs = 0;
        assert_eq!(
            jwks_problems(&hs, "ftp://idp.example/jwks", Algorithm::HS256),
            [
                "auth.jwks_url is not an http(s) URL",
                "auth.jwks_url needs an asymmetric auth.algorithm, not HS256",
                "set either auth.jwks_url or auth.public_key_pem, not both",
                "auth.jwks_refresh_secs must be positive",
            ]
        );
    }

    #[test]
    fn with_a_jwks_url_no_key_is_read_and_a_failed_key_check_stops_there() {
        let mut rs = raw("RS256");
        rs.jwks_url = Some(" https://idp.example/jwks ".into());
        let mut problems = Vec::new();
        let settings = validate_auth(&rs, &mut problems).expect("valid");
        assert!(problems.is_empty(), "{problems:?}");
        assert!(settings.key.is_none());
        assert_eq!(
            settings.jwks_url.as_deref(),
            Some("https://idp.example/jwks")
        );
        // Without a key, max_token_bytes is not looked at: one problem, the first.
        rs.jwks_url = None;
        rs.max_token_bytes = 3;
        assert!(validate_auth(&rs, &mut problems).is_none());
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn the_secret_is_kept_for_dev_tokens_only_with_an_hmac_algorithm() {
        let mut hs = raw("HS256");
        hs.jwt_secret = Some("s".repeat(32));
        let mut problems = Vec::new();
        let settings = validate_auth(&hs, &mut problems).expect("valid");
        assert_eq!(settings.hs_secret, hs.jwt_secret);
        let mut es = raw("ES256");
        es.jwt_secret = Some("s".repeat(32));
        es.public_key_pem = Some(EC_PUBLIC_KEY.into());
        let settings = validate_auth(&es, &mut problems).expect("valid");
        assert_eq!(settings.hs_secret, None);
        assert!(problems.is_empty(), "{problems:?}");
    }
}
