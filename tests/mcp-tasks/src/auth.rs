//! Bearer-JWT gate in front of the MCP service.
//!
//! Every HTTP request must carry `Authorization: Bearer <JWT>` signed HS256 with
//! the `--jwt-secret`, with `exp` and `sub` (and `aud`/`iss` when configured).
//! The verified `sub` travels to the tool handlers as a [`Caller`] in the HTTP
//! request extensions; rmcp hands those `http::request::Parts` to each handler.
//! Failures read like the reference server's: `error_description` names the
//! PyJWT exception the same token would raise there.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};

/// Longest `sub` accepted, in characters.
const MAX_SUB: usize = 256;

/// The authenticated user of one HTTP request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub sub: String,
}

/// Why a request was refused; the text becomes `error_description`.
#[derive(Debug)]
pub struct AuthError(pub String);

/// Checks bearer tokens against one secret, audience and issuer.
pub struct BearerAuth {
    key: DecodingKey,
    validation: Validation,
}

impl BearerAuth {
    pub fn new(secret: &str, audience: Option<&str>, issuer: Option<&str>) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // PyJWT's defaults: no leeway, `nbf` checked when present, `aud` and
        // `iss` required only when the server names one.
        validation.leeway = 0;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Verifies the raw `Authorization` header value and returns its `sub`.
    pub fn verify(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let header = match header {
            Some(header) if !header.is_empty() => header,
            _ => return Err(AuthError("missing bearer token".into())),
        };
        let (scheme, token) = header.split_once(' ').unwrap_or((header, ""));
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthError("malformed authorization header".into()));
        }
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|error| AuthError(format!("invalid token: {}", pyjwt_name(error.kind()))))?
            .claims;
        match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() && sub.chars().count() <= MAX_SUB => {
                Ok(Caller { sub: sub.clone() })
            }
            _ => Err(AuthError("invalid token: bad sub".into())),
        }
    }
}

/// The PyJWT exception class the reference server would report.
fn pyjwt_name(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "InvalidSignatureError",
        ErrorKind::ExpiredSignature => "ExpiredSignatureError",
        ErrorKind::ImmatureSignature => "ImmatureSignatureError",
        ErrorKind::InvalidAudience => "InvalidAudienceError",
        ErrorKind::InvalidIssuer => "InvalidIssuerError",
        ErrorKind::InvalidSubject => "InvalidSubjectError",
        ErrorKind::MissingRequiredClaim(_) => "MissingRequiredClaimError",
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "InvalidAlgorithmError",
        _ => "DecodeError",
    }
}

/// 401 with a JSON body and the bearer challenge, sent before any MCP processing.
pub fn unauthorized(error: &AuthError) -> Response<BoxBody<Bytes, Infallible>> {
    let body = json!({"error": "invalid_token", "error_description": error.0}).to_string();
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::WWW_AUTHENTICATE,
            r#"Bearer realm="mcp_tasks", error="invalid_token""#,
        )
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn token(claims: Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn future() -> u64 {
        jsonwebtoken::get_current_timestamp() + 600
    }

    #[test]
    fn accepts_a_good_token_and_reports_bad_ones_like_pyjwt() {
        let auth = BearerAuth::new("s3cret", Some("mcp"), Some("chatkit"));
        let good = token(
            json!({"sub": "alice", "exp": future(), "aud": "mcp", "iss": "chatkit"}),
            "s3cret",
        );
        assert_eq!(
            auth.verify(Some(&format!("Bearer {good}"))).unwrap().sub,
            "alice"
        );
        assert_eq!(
            auth.verify(Some(&format!("bearer  {good} "))).unwrap().sub,
            "alice"
        );

        let cases = [
            (None, "missing bearer token".to_owned()),
            (
                Some("Basic abc".to_owned()),
                "malformed authorization header".to_owned(),
            ),
            (
                Some("Bearer".to_owned()),
                "malformed authorization header".to_owned(),
            ),
            (
                Some("Bearer not.a.jwt".to_owned()),
                "invalid token: DecodeError".to_owned(),
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(
                        json!({"sub": "a", "exp": future(), "aud": "mcp", "iss": "chatkit"}),
                        "other"
                    )
                )),
                "invalid token: InvalidSignatureError".to_owned(),
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(
                        json!({"sub": "a", "exp": 1, "aud": "mcp", "iss": "chatkit"}),
                        "s3cret"
                    )
                )),
                "invalid token: ExpiredSignatureError".to_owned(),
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(
                        json!({"sub": "a", "exp": future(), "aud": "x", "iss": "chatkit"}),
                        "s3cret"
                    )
                )),
                "invalid token: InvalidAudienceError".to_owned(),
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(json!({"sub": "a", "exp": future(), "aud": "mcp"}), "s3cret")
                )),
                "invalid token: MissingRequiredClaimError".to_owned(),
            ),
            (
                Some(format!(
                    "Bearer {}",
                    token(
                        json!({"sub": "", "exp": future(), "aud": "mcp", "iss": "chatkit"}),
                        "s3cret"
                    )
                )),
                "invalid token: bad sub".to_owned(),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(auth.verify(header.as_deref()).unwrap_err().0, expected);
        }
    }

    #[test]
    fn audience_is_ignored_unless_configured() {
        let auth = BearerAuth::new("k", None, None);
        let with_aud = token(
            json!({"sub": "bob", "exp": future(), "aud": "anything"}),
            "k",
        );
        assert_eq!(
            auth.verify(Some(&format!("Bearer {with_aud}")))
                .unwrap()
                .sub,
            "bob"
        );
        let no_sub = token(json!({"exp": future()}), "k");
        assert_eq!(
            auth.verify(Some(&format!("Bearer {no_sub}")))
                .unwrap_err()
                .0,
            "invalid token: MissingRequiredClaimError"
        );
    }
}
