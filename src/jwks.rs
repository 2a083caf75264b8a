//! Keys from a JWKS URL (Auth0, Clerk, Keycloak, Supabase…): chosen by `kid`, cached, and
//! re-fetched when a token names an unknown `kid`, at most once per refresh interval (so a
//! flood of forged `kid`s cannot turn into a flood of fetches). The algorithm stays pinned by
//! configuration: a key whose JWK declares another algorithm is ignored.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

pub struct JwksCache {
    url: String,
    algorithm: Algorithm,
    refresh_interval: Duration,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// Held while fetching (one fetch at a time); holds the time of the last fetch.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;

impl JwksCache {
    pub fn new(url: String, algorithm: Algorithm, refresh_interval: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with default TLS settings builds");
        JwksCache {
            url,
            algorithm,
            refresh_interval,
            http,
            keys: RwLock::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }

    /// The key for `kid`, fetching the set again if it is unknown and the last fetch is older
    /// than the refresh interval.
    pub async fn key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.cached(kid) {
            return Some(key);
        }
        let mut last = self.fetching.lock().await;
        if let Some(key) = self.cached(kid) {
            return Some(key); // fetched by someone else while we waited
        }
        if last.is_some_and(|t| t.elapsed() < self.refresh_interval) {
            return None;
        }
        *last = Some(Instant::now());
        self.fetch().await;
        self.cached(kid)
    }

    /// Fetches the key set now (also used at start-up); failures keep the old keys.
    pub async fn fetch(&self) {
        match self.download().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "JWKS refreshed");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
            }
            Err(error) => tracing::warn!(%error, "could not refresh the JWKS"),
        }
    }

    async fn download(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("JWKS answered HTTP {}", response.status()));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("JWKS document too large".into());
        }
        let set: JwkSet =
            serde_json::from_slice(&body).map_err(|e| format!("JWKS is not valid: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let declared = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            if declared.is_some_and(|alg| alg != self.algorithm) {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, key);
            }
        }
        Ok(keys)
    }
}
