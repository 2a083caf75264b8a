//! Bearer JWT verification. The algorithm is pinned by configuration (the token's header is
//! never trusted to choose it), `exp` and `sub` are required, `aud`/`iss` are checked when
//! configured. The user id is `sub`; nothing else identifies a caller. A token verified a moment
//! ago is not verified again (`verified_tokens.rs`).

use std::sync::Arc;

use chatkit_actors::{BearerToken, UserId};
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde::Deserialize;

use crate::jwks::JwksCache;
use crate::settings::AuthSettings;
use crate::verified_tokens::{Verified, VerifiedTokens};

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    /// Whether the token carries the configured admin claim (`admin.claim` = `admin.value`).
    pub is_admin: bool,
    /// The bearer token, kept only to forward to tool servers on the transport (its Debug
    /// is redacted).
    pub token: BearerToken,
}

/// Why a request was not authenticated. The message is safe to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing Authorization header")]
    Missing,
    #[error("Authorization header must use the Bearer scheme")]
    WrongScheme,
    #[error("bearer token is too large")]
    TooLarge,
    #[error("invalid or expired bearer token")]
    Invalid,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Every other claim (for the admin check).
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// Where verification keys come from.
#[derive(Clone)]
enum KeySource {
    Static(DecodingKey),
    Jwks(Arc<JwksCache>),
}

/// Verifies tokens against the configured key(s) and claims.
#[derive(Clone)]
pub struct Authenticator {
    settings: AuthSettings,
    validation: Validation,
    keys: KeySource,
    verified: Arc<VerifiedTokens>,
}

impl Authenticator {
    pub fn new(settings: AuthSettings) -> Self {
        let mut validation = Validation::new(settings.algorithm);
        validation.leeway = settings.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &settings.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &settings.issuer {
            validation.set_issuer(&[iss]);
        }
        let keys = match (&settings.jwks_url, &settings.key) {
            (Some(url), _) => KeySource::Jwks(Arc::new(JwksCache::new(
                url.clone(),
                settings.algorithm,
                settings.jwks_refresh,
            ))),
            (None, Some(key)) => KeySource::Static(key.clone()),
            (None, None) => unreachable!("settings validation requires a key or a JWKS URL"),
        };
        Authenticator {
            verified: Arc::new(VerifiedTokens::new(settings.leeway_secs)),
            settings,
            validation,
            keys,
        }
    }

    /// Loads the JWKS once at start-up (failures are logged; keys are fetched on demand).
    pub async fn warm_up(&self) {
        if let KeySource::Jwks(cache) = &self.keys {
            cache.fetch().await;
        }
    }

    /// Checks an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&[u8]>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        if header.len() > self.settings.max_token_bytes {
            return Err(AuthError::TooLarge);
        }
        let header = std::str::from_utf8(header).map_err(|_| AuthError::Invalid)?;
        let (scheme, token) = header.split_once(' ').ok_or(AuthError::WrongScheme)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::WrongScheme);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Invalid);
        }
        let verified = match self.verified.get(token) {
            Some(verified) => verified,
            None => self.verify(token).await?,
        };
        Ok(Caller {
            user_id: verified.user_id,
            is_admin: verified.is_admin,
            token: BearerToken::new(token),
        })
    }

    /// The full check of `token`: its key, signature and claims; kept when it passes.
    async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        let key = match &self.keys {
            KeySource::Static(key) => key.clone(),
            KeySource::Jwks(cache) => {
                let header = decode_header(token).map_err(|_| AuthError::Invalid)?;
                let kid = header
                    .kid
                    .filter(|k| !k.is_empty() && k.len() <= 256)
                    .ok_or(AuthError::Invalid)?;
                cache.key(&kid).await.ok_or(AuthError::Invalid)?
            }
        };
        let data =
            decode::<Claims>(token, &key, &self.validation).map_err(|_| AuthError::Invalid)?;
        let user_id = UserId::parse(data.claims.sub).map_err(|_| AuthError::Invalid)?;
        let is_admin = match data.claims.other.get(&self.settings.admin_claim) {
            Some(serde_json::Value::String(v)) => *v == self.settings.admin_value,
            Some(serde_json::Value::Array(values)) => values
                .iter()
                .any(|v| v.as_str() == Some(self.settings.admin_value.as_str())),
            _ => false,
        };
        let verified = Verified { user_id, is_admin };
        // `exp` is required and checked above; a fraction counts down, never up.
        if let Some(expires) = data.claims.other.get("exp").and_then(unix_seconds) {
            self.verified.put(token, verified.clone(), expires);
        }
        Ok(verified)
    }
}

fn unix_seconds(value: &serde_json::Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| *f >= 0.0)
            .map(|f| f.floor() as u64)
    })
}

/// Mints an HS token for local development (`POST /dev/token`).
pub fn mint_dev_token(settings: &AuthSettings, sub: &str, ttl_secs: u64) -> Result<String, String> {
    mint_dev_token_with(settings, sub, ttl_secs, serde_json::Map::new())
}

/// [`mint_dev_token`] with more claims (`chatkit-rs dev-token --admin --claim NAME=VALUE`);
/// `sub`, `iat`, `exp`, `aud` and `iss` are set here and not taken from `extra`.
pub fn mint_dev_token_with(
    settings: &AuthSettings,
    sub: &str,
    ttl_secs: u64,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Result<String, String> {
    let secret = settings
        .hs_secret
        .as_ref()
        .ok_or("dev-token needs an HS256/HS384/HS512 auth.jwt_secret")?;
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = serde_json::Value::Object(extra);
    claims["sub"] = sub.into();
    claims["iat"] = now.into();
    claims["exp"] = (now + ttl_secs).into();
    if let Some(aud) = &settings.audience {
        claims["aud"] = aud.clone().into();
    }
    if let Some(iss) = &settings.issuer {
        claims["iss"] = iss.clone().into();
    }
    let header = jsonwebtoken::Header::new(settings.algorithm);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}
