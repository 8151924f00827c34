//! `nexus-token`: mints a signed session token for the Nexus Physics gateway.
//!
//! The secret comes from a file (`--secret-file`) or an environment variable (`--secret-env`,
//! default `NEXUS_GATEWAY_SECRET`), never from the command line, where other users could read it
//! in the process list. The token is printed on standard output, alone, so scripts can capture it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use nexus_gateway::auth::{Claims, MIN_SECRET_LEN, Role, mint_token, unix_now};

/// Mint a signed session token for the Nexus Physics gateway.
///
/// The token is printed on standard output, alone. The secret must be at least 16 bytes and
/// match the gateway's; it is read from a file or an environment variable, never from the command
/// line (other users could read it in the process list).
#[derive(Parser, Debug)]
#[command(name = "nexus-token", version)]
struct Options {
    /// Display name carried by the token (at most 64 bytes, no control characters).
    #[arg(long, value_name = "NAME")]
    name: String,
    /// Stable account id (default: the name).
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// `player` or `admin` (admins may edit the environment).
    #[arg(long, value_name = "ROLE", default_value = "player", value_parser = parse_role)]
    role: Role,
    /// Bind the token to this campaign: it cannot join any other (default: any campaign).
    #[arg(long, value_name = "ID")]
    campaign: Option<String>,
    /// Lifetime of the token in seconds (default one day).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 86_400,
        allow_negative_numbers = true,
        value_parser = parse_ttl
    )]
    ttl: u64,
    /// Read the server secret from PATH (a trailing newline is ignored); takes precedence over
    /// --secret-env.
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
    /// Read the server secret from the environment variable VAR.
    #[arg(long, value_name = "VAR", default_value = "NEXUS_GATEWAY_SECRET")]
    secret_env: String,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| "must be player or admin".to_owned())
}

fn parse_ttl(text: &str) -> Result<u64, String> {
    text.parse()
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| "must be a positive number of seconds".to_owned())
}

fn read_secret(options: &Options) -> Result<Vec<u8>, String> {
    let mut secret = match &options.secret_file {
        Some(path) => {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        }
        None => std::env::var_os(&options.secret_env)
            .ok_or_else(|| {
                format!(
                    "no secret: set {} or pass --secret-file",
                    options.secret_env
                )
            })?
            .into_encoded_bytes(),
    };
    // Files written by editors and `echo` end with a newline that is not part of the secret.
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the secret is {} bytes; at least {MIN_SECRET_LEN} are required",
            secret.len()
        ));
    }
    Ok(secret)
}

fn run(options: &Options) -> Result<(), String> {
    let secret = read_secret(options)?;
    if !nexus_gateway::auth::is_acceptable_name(&options.name) {
        return Err(
            "--name must be non-empty, at most 64 bytes, without control characters".into(),
        );
    }
    let claims = Claims {
        user_id: options.id.clone().unwrap_or_else(|| options.name.clone()),
        name: options.name.clone(),
        role: options.role,
        expires_at: unix_now().saturating_add(options.ttl),
        campaign: options.campaign.clone(),
    };
    if !nexus_gateway::auth::is_acceptable_name(&claims.user_id) {
        return Err("--id must be non-empty, at most 64 bytes, without control characters".into());
    }
    if let Some(campaign) = &claims.campaign
        && !nexus_gateway::auth::is_acceptable_name(campaign)
    {
        return Err(
            "--campaign must be non-empty, at most 64 bytes, without control characters".into(),
        );
    }
    println!("{}", mint_token(&secret, &claims));
    tracing::debug!(name = %claims.name, role = %claims.role, campaign = ?claims.campaign, expires_at = claims.expires_at, "token minted");
    Ok(())
}

fn main() -> ExitCode {
    // Bad or missing options: clap's message and exit code 2.
    let options = Options::parse();
    // Logs go to standard error (standard output carries the token alone), filtered by RUST_LOG.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::builder()
                .with_default_directive(tracing::Level::INFO.into())
                .from_env_lossy(),
        )
        .init();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        // A missing or bad secret or name is a usage error too (exit 2, as before clap).
        Err(message) => Options::command()
            .error(ErrorKind::ValueValidation, message)
            .exit(),
    }
}
