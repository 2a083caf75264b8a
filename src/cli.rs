//! Command-line interface: `chatkit-rs [--config FILE] [COMMAND]`; no command = `serve`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// A production ChatKit backend: actors, Postgres, SSE.
#[derive(Debug, Parser)]
#[command(name = "chatkit-rs", version, about, long_about = None)]
pub struct Cli {
    /// TOML file layered over config/default.toml (the environment, CHATKIT__SECTION__KEY,
    /// overrides both; the model API key comes from OPENAI_API_KEY only).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Print a short-lived HS token signed with the configured secret (local use only).
    DevToken(DevToken),
}

/// What `dev-token` puts in the token.
#[derive(Debug, Args)]
pub struct DevToken {
    /// The user id (`sub` claim).
    #[arg(long, default_value = "dev-user")]
    pub sub: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// Make it an admin token (the claim `admin.claim` = `admin.value`, `role=admin` by
    /// default), for `/admin` in development.
    #[arg(long)]
    pub admin: bool,
    /// One more claim, NAME=VALUE (repeatable). A VALUE that is JSON (a number, a list, …)
    /// goes in as JSON, anything else as a string.
    #[arg(long = "claim", value_name = "NAME=VALUE", value_parser = parse_claim)]
    pub claims: Vec<(String, serde_json::Value)>,
}

/// Claims `dev-token` sets itself (from `--sub`, `--ttl` and `[auth]`).
const RESERVED_CLAIMS: [&str; 5] = ["sub", "exp", "iat", "aud", "iss"];

/// Parses `--claim NAME=VALUE`.
fn parse_claim(text: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{text:?} has no claim name"));
    }
    if RESERVED_CLAIMS.contains(&name) {
        return Err(format!(
            "the {name} claim is set by dev-token itself (--sub, --ttl, auth.audience, auth.issuer)"
        ));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| value.into());
    Ok((name.to_string(), value))
}

impl DevToken {
    /// The claims beyond `sub`, `iat`, `exp`, `aud` and `iss`: the `--claim`s in order, then
    /// the admin claim with `--admin` (which wins over a `--claim` of the same name).
    pub fn extra_claims(
        &self,
        admin_claim: &str,
        admin_value: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut claims: serde_json::Map<_, _> = self.claims.iter().cloned().collect();
        if self.admin {
            claims.insert(admin_claim.to_string(), admin_value.into());
        }
        claims
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dev_token(args: &[&str]) -> Result<DevToken, clap::Error> {
        let cli = Cli::try_parse_from(["chatkit-rs", "dev-token"].iter().chain(args))?;
        match cli.command {
            Some(Command::DevToken(token)) => Ok(token),
            other => panic!("not dev-token: {other:?}"),
        }
    }

    #[test]
    fn admin_adds_the_configured_admin_claim() {
        let token = dev_token(&["--sub", "ops", "--admin"]).unwrap();
        assert_eq!(token.sub, "ops");
        let claims = token.extra_claims("role", "admin");
        assert_eq!(serde_json::Value::Object(claims), json!({"role": "admin"}));
        let claims = token.extra_claims("groups", "chatkit-ops");
        assert_eq!(
            serde_json::Value::Object(claims),
            json!({"groups": "chatkit-ops"})
        );
        let plain = dev_token(&[]).unwrap();
        assert!(plain.extra_claims("role", "admin").is_empty());
    }

    #[test]
    fn claims_are_strings_or_json_and_admin_wins() {
        let token = dev_token(&[
            "--claim",
            "role=admin",
            "--claim",
            "tier=3",
            "--claim",
            "groups=[\"a\",\"b\"]",
            "--claim",
            "note=a=b",
        ])
        .unwrap();
        assert_eq!(
            serde_json::Value::Object(token.extra_claims("role", "admin")),
            json!({"role": "admin", "tier": 3, "groups": ["a", "b"], "note": "a=b"})
        );
        let token = dev_token(&["--claim", "role=viewer", "--admin"]).unwrap();
        assert_eq!(token.extra_claims("role", "admin")["role"], "admin");
    }

    #[test]
    fn malformed_or_reserved_claims_are_refused() {
        for bad in ["role", "=admin", "sub=mallory", "exp=1", "aud=x"] {
            let error = dev_token(&["--claim", bad]).unwrap_err().to_string();
            assert!(error.contains("--claim"), "{bad}: {error}");
        }
    }
}
