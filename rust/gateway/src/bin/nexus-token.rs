//! `nexus-token`: mints a signed session token for the Nexus Physics gateway.
//!
//! The secret comes from a file (`--secret-file`) or an environment variable (`--secret-env`,
//! default `NEXUS_GATEWAY_SECRET`), never from the command line, where other users could read it
//! in the process list. The token is printed on standard output, alone, so scripts can capture it.

use std::process::ExitCode;

use nexus_gateway::auth::{Claims, MIN_SECRET_LEN, Role, mint_token, unix_now};

const USAGE: &str = "\
nexus-token: mint a signed session token for the Nexus Physics gateway

usage: nexus-token --name NAME [--id ID] [--role player|admin] [--ttl SECONDS]
                   [--secret-file PATH | --secret-env VAR]

  --name NAME         display name carried by the token (required)
  --id ID             stable account id (default: the name)
  --role ROLE         player (default) or admin (admins may edit the environment)
  --ttl SECONDS       lifetime (default 86400, one day)
  --secret-file PATH  read the server secret from PATH (trailing newline ignored)
  --secret-env VAR    read the server secret from environment variable VAR
                      (default: NEXUS_GATEWAY_SECRET)
  -h, --help          show this help

The secret must be at least 16 bytes and match the gateway's.";

struct Options {
    name: String,
    id: Option<String>,
    role: Role,
    ttl: u64,
    secret_file: Option<String>,
    secret_env: String,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut name = None;
    let mut options = Options {
        name: String::new(),
        id: None,
        role: Role::Player,
        ttl: 86_400,
        secret_file: None,
        secret_env: "NEXUS_GATEWAY_SECRET".into(),
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--name" => name = Some(value("--name")?),
            "--id" => options.id = Some(value("--id")?),
            "--role" => {
                let role = value("--role")?;
                options.role = Role::parse(&role)
                    .ok_or_else(|| format!("--role must be player or admin, not {role:?}"))?;
            }
            "--ttl" => {
                let ttl = value("--ttl")?;
                options.ttl = ttl.parse().ok().filter(|t| *t > 0).ok_or_else(|| {
                    format!("--ttl must be a positive number of seconds, not {ttl:?}")
                })?;
            }
            "--secret-file" => options.secret_file = Some(value("--secret-file")?),
            "--secret-env" => options.secret_env = value("--secret-env")?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    options.name = name.ok_or("--name is required")?;
    Ok(Some(options))
}

fn read_secret(options: &Options) -> Result<Vec<u8>, String> {
    let mut secret = match &options.secret_file {
        Some(path) => std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?,
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

fn run() -> Result<(), String> {
    let Some(options) = parse(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let secret = read_secret(&options)?;
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
    };
    if !nexus_gateway::auth::is_acceptable_name(&claims.user_id) {
        return Err("--id must be non-empty, at most 64 bytes, without control characters".into());
    }
    println!("{}", mint_token(&secret, &claims));
    tracing::debug!(name = %claims.name, role = %claims.role, expires_at = claims.expires_at, "token minted");
    Ok(())
}

fn main() -> ExitCode {
    // Logs go to standard error (standard output carries the token alone), filtered by RUST_LOG.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::builder()
                .with_default_directive(tracing::Level::INFO.into())
                .from_env_lossy(),
        )
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("nexus-token: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
