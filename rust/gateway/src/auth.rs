//! Who a client is: signed session tokens and the development mode.
//!
//! How it works:
//! - A token is `nx1.<claims>.<mac>`: `claims` is the base64url (no padding) of a small JSON object
//!   `{"sub": id, "name": name, "role": "player"|"admin", "exp": unix_seconds}`, and `mac` the
//!   base64url HMAC-SHA256 of `nx1.<claims>` under the server secret. The version prefix lets a
//!   later format coexist; the MAC covers it so it cannot be swapped.
//! - [`Authenticator`] checks a token against the configured [`AuthMode`]. In signed mode only
//!   tokens minted with the server secret pass; in development mode any non-empty token passes and
//!   becomes the client's name (a signed token still passes with its own claims when a secret is set).
//! - MACs are compared in constant time (`Mac::verify_slice`).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Prefix (and version) of every signed token.
const TOKEN_PREFIX: &str = "nx1.";
/// Longest token accepted: real tokens are ~200 bytes; anything far larger is garbage or an attack.
pub const MAX_TOKEN_LEN: usize = 2048;
/// Longest client name accepted (bytes of UTF-8), signed or development.
pub const MAX_NAME_LEN: usize = 64;
/// Shortest server secret accepted: shorter HMAC keys are guessable.
pub const MIN_SECRET_LEN: usize = 16;

/// What a client may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Plays: moves its avatar, interacts with objects.
    Player,
    /// Also edits the environment (weather, time of day, terrain, environment objects).
    Admin,
}

impl Role {
    /// The stable lowercase name used in tokens, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Player => "player",
            Role::Admin => "admin",
        }
    }

    /// Parses `player` or `admin`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "player" => Some(Role::Player),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token says about its holder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Stable account id of the holder (not the per-connection client id the gateway assigns).
    #[serde(rename = "sub")]
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Expiry, in Unix seconds.
    #[serde(rename = "exp")]
    pub expires_at: u64,
}

/// Why a token was refused. `code()` is the stable snake_case code sent to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Empty token.
    Missing,
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLong,
    /// Not of the `nx1.<claims>.<mac>` shape, or claims that do not parse.
    Malformed(String),
    /// The MAC does not match: not minted with this server's secret, or altered.
    BadSignature,
    /// Past its expiry.
    Expired {
        /// When it expired (Unix seconds).
        expired_at: u64,
    },
    /// Name or id empty, too long or with control characters.
    BadName(String),
}

impl AuthError {
    /// Stable snake_case code for error events.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::Expired { .. } => "token_expired",
            AuthError::TooLong
            | AuthError::Malformed(_)
            | AuthError::BadSignature
            | AuthError::BadName(_) => "bad_token",
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing => write!(f, "the join request carries no token (payload.token)"),
            AuthError::TooLong => write!(f, "the token is longer than {MAX_TOKEN_LEN} bytes"),
            AuthError::Malformed(why) => write!(f, "the token is malformed: {why}"),
            AuthError::BadSignature => {
                write!(
                    f,
                    "the token's signature does not match this server's secret"
                )
            }
            AuthError::Expired { expired_at } => {
                write!(f, "the token expired at {expired_at} (Unix seconds)")
            }
            AuthError::BadName(why) => write!(f, "the token's name is not acceptable: {why}"),
        }
    }
}

impl std::error::Error for AuthError {}

/// Current Unix time in seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Current Unix time in seconds, with fractions.
pub fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn mac_for(secret: &[u8], signed_part: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(signed_part.as_bytes());
    mac
}

/// Mints a signed token for `claims` with `secret`.
pub fn mint_token(secret: &[u8], claims: &Claims) -> String {
    // Serialising a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let signed_part = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
    let tag = mac_for(secret, &signed_part).finalize().into_bytes();
    format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks a signed token: shape, MAC, expiry (against `now`, Unix seconds) and name.
pub fn verify_token(secret: &[u8], token: &str, now: u64) -> Result<Claims, AuthError> {
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::TooLong);
    }
    let rest = token
        .strip_prefix(TOKEN_PREFIX)
        .ok_or_else(|| AuthError::Malformed(format!("it does not start with `{TOKEN_PREFIX}`")))?;
    let (claims_b64, mac_b64) = rest
        .split_once('.')
        .ok_or_else(|| AuthError::Malformed("it has no signature part".into()))?;
    let tag = URL_SAFE_NO_PAD
        .decode(mac_b64)
        .map_err(|_| AuthError::Malformed("the signature is not base64url".into()))?;
    let signed_part = &token[..TOKEN_PREFIX.len() + claims_b64.len()];
    // Check the MAC before parsing anything the holder wrote.
    mac_for(secret, signed_part)
        .verify_slice(&tag)
        .map_err(|_| AuthError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(claims_b64)
        .map_err(|_| AuthError::Malformed("the claims are not base64url".into()))?;
    let claims: Claims = serde_json::from_slice(&json)
        .map_err(|e| AuthError::Malformed(format!("the claims do not parse: {e}")))?;
    if claims.expires_at <= now {
        return Err(AuthError::Expired {
            expired_at: claims.expires_at,
        });
    }
    check_name(&claims.name).map_err(AuthError::BadName)?;
    check_name(&claims.user_id).map_err(AuthError::BadName)?;
    Ok(claims)
}

/// Whether `name` is acceptable as a display name (non-empty, short, printable).
pub fn is_acceptable_name(name: &str) -> bool {
    check_name(name).is_ok()
}

/// A name must be non-empty, short and printable: it ends up in logs and other clients' views.
fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("it is longer than {MAX_NAME_LEN} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err("it contains control characters".into());
    }
    Ok(())
}

/// How the gateway authenticates joins.
#[derive(Clone)]
pub enum AuthMode {
    /// Only tokens signed with this secret are accepted.
    Signed {
        /// The HMAC key (at least [`MIN_SECRET_LEN`] bytes).
        secret: Vec<u8>,
    },
    /// Development: any non-empty token is accepted as the client's name, with `role`. If a secret
    /// is also given, tokens signed with it are still honoured with their own claims.
    Development {
        /// Optional HMAC key for signed tokens.
        secret: Option<Vec<u8>>,
        /// Role given to unsigned development tokens.
        role: Role,
    },
}

impl fmt::Debug for AuthMode {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMode::Signed { .. } => f.write_str("Signed { secret: <hidden> }"),
            AuthMode::Development { secret, role } => write!(
                f,
                "Development {{ secret: {}, role: {role} }}",
                if secret.is_some() { "<hidden>" } else { "none" }
            ),
        }
    }
}

impl AuthMode {
    /// True in development mode.
    pub fn is_development(&self) -> bool {
        matches!(self, AuthMode::Development { .. })
    }

    /// A one-line description for startup banners (`scripts/serve` prints it), without the secret.
    pub fn describe(&self) -> String {
        match self {
            AuthMode::Signed { .. } => {
                "signed tokens (HMAC-SHA256 with the server secret) are required".into()
            }
            AuthMode::Development { secret, role } => format!(
                "DEVELOPMENT MODE: any non-empty token is accepted as the client's name, with role {role}{}; never expose this server",
                if secret.is_some() {
                    " (signed tokens are honoured too)"
                } else {
                    ""
                }
            ),
        }
    }

    /// Checks the mode is usable.
    pub fn validate(&self) -> Result<(), String> {
        let secret = match self {
            AuthMode::Signed { secret } => Some(secret),
            AuthMode::Development { secret, .. } => secret.as_ref(),
        };
        match secret {
            Some(secret) if secret.len() < MIN_SECRET_LEN => Err(format!(
                "the server secret is {} bytes; at least {MIN_SECRET_LEN} are required",
                secret.len()
            )),
            _ => Ok(()),
        }
    }

    /// Authenticates a join token at time `now` (Unix seconds).
    pub fn authenticate(&self, token: &str, now: u64) -> Result<Claims, AuthError> {
        match self {
            AuthMode::Signed { secret } => verify_token(secret, token, now),
            AuthMode::Development { secret, role } => {
                if let Some(secret) = secret
                    && token.starts_with(TOKEN_PREFIX)
                {
                    return verify_token(secret, token, now);
                }
                if token.is_empty() {
                    return Err(AuthError::Missing);
                }
                let name = token.trim();
                check_name(name).map_err(AuthError::BadName)?;
                Ok(Claims {
                    user_id: name.to_string(),
                    name: name.to_string(),
                    role: *role,
                    expires_at: u64::MAX,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-test-secret";

    fn claims(role: Role, expires_at: u64) -> Claims {
        Claims {
            user_id: "u-42".into(),
            name: "Ada".into(),
            role,
            expires_at,
        }
    }

    #[test]
    fn minted_token_verifies_with_its_claims() {
        let c = claims(Role::Admin, 2_000);
        let token = mint_token(SECRET, &c);
        assert!(token.starts_with("nx1."));
        assert_eq!(verify_token(SECRET, &token, 1_000), Ok(c));
    }

    #[test]
    fn wrong_secret_and_tampering_are_refused() {
        let token = mint_token(SECRET, &claims(Role::Player, 2_000));
        assert_eq!(
            verify_token(b"another-secret-of-16+", &token, 1_000),
            Err(AuthError::BadSignature)
        );
        // Swap the claims for an admin's, keeping the player's MAC.
        let admin = mint_token(b"attacker-secret-1234", &claims(Role::Admin, 2_000));
        let forged = format!(
            "{}.{}",
            admin.rsplit_once('.').unwrap().0,
            token.rsplit_once('.').unwrap().1
        );
        assert_eq!(
            verify_token(SECRET, &forged, 1_000),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn expiry_is_enforced() {
        let token = mint_token(SECRET, &claims(Role::Player, 1_000));
        assert_eq!(
            verify_token(SECRET, &token, 1_000),
            Err(AuthError::Expired { expired_at: 1_000 })
        );
        assert_eq!(
            verify_token(SECRET, &token, 1_000).unwrap_err().code(),
            "token_expired"
        );
    }

    #[test]
    fn garbage_tokens_get_clear_errors() {
        for garbage in [
            "",
            "x",
            "nx1.",
            "nx1.abc",
            "nx1.!!.??",
            "nx1..",
            "nx1.e30.AAAA",
        ] {
            let err = verify_token(SECRET, garbage, 0).unwrap_err();
            assert!(
                matches!(err.code(), "bad_token" | "missing_token"),
                "{garbage:?} -> {err:?}"
            );
            assert!(!err.to_string().is_empty());
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(verify_token(SECRET, &long, 0), Err(AuthError::TooLong));
    }

    #[test]
    fn development_mode_takes_any_name_but_not_empty_or_control_characters() {
        let mode = AuthMode::Development {
            secret: None,
            role: Role::Player,
        };
        let c = mode.authenticate("  Ada ", 0).unwrap();
        assert_eq!((c.name.as_str(), c.role), ("Ada", Role::Player));
        assert_eq!(mode.authenticate("", 0), Err(AuthError::Missing));
        assert!(matches!(
            mode.authenticate("   ", 0),
            Err(AuthError::BadName(_))
        ));
        assert!(matches!(
            mode.authenticate("a\nb", 0),
            Err(AuthError::BadName(_))
        ));
    }

    #[test]
    fn development_mode_with_secret_honours_signed_tokens() {
        let mode = AuthMode::Development {
            secret: Some(SECRET.to_vec()),
            role: Role::Player,
        };
        let token = mint_token(SECRET, &claims(Role::Admin, u64::MAX));
        assert_eq!(mode.authenticate(&token, 0).unwrap().role, Role::Admin);
    }

    #[test]
    fn signed_mode_refuses_plain_names_and_short_secrets() {
        let mode = AuthMode::Signed {
            secret: SECRET.to_vec(),
        };
        assert_eq!(mode.authenticate("Ada", 0).unwrap_err().code(), "bad_token");
        assert!(
            AuthMode::Signed {
                secret: b"short".to_vec()
            }
            .validate()
            .is_err()
        );
        assert!(!format!("{mode:?}").contains("test-secret"));
    }
}
