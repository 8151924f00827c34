//! Who a client is: signed session tokens and the development mode.
//!
//! How it works:
//! - A token is `nx1.<claims>.<mac>`: `claims` is the base64url (no padding) of a small JSON object
//!   `{"sub": id, "name": name, "role": "player"|"admin", "exp": unix_seconds, "cmp": campaign}`
//!   (`cmp` optional: without it the token joins any campaign), and `mac` the base64url
//!   HMAC-SHA256 of `nx1.<claims>` under the server secret. The version prefix lets a later format
//!   coexist; the MAC covers it so it cannot be swapped.
//! - [`AuthMode::authenticate`] checks a token against the configured mode. In signed mode only
//!   tokens minted with the server secret (or, during a key rotation, the previous secret) pass;
//!   in development mode any non-empty token passes and becomes the client's name (a signed token
//!   still passes with its own claims when a secret is set).
//! - Tokens are checked when a client joins: expiry, signature and the campaign they are bound to.
//!   A session that has joined outlives its token, as a ticket lets its holder stay for the show.
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
/// Longest token accepted, the protocol's `max_token_bytes`: real tokens are ~300 bytes; anything
/// far larger is garbage or an attack.
pub const MAX_TOKEN_LEN: usize = 4096;
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
    /// The only campaign the token may join; `None` (no `cmp` claim) joins any campaign.
    #[serde(rename = "cmp", default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
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
    /// Bound to another campaign than the one the client asks to join.
    WrongCampaign {
        /// The campaign the token is for.
        token_campaign: String,
        /// The campaign the client asked for.
        requested: String,
    },
}

impl AuthError {
    /// Stable snake_case code for error events.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::Expired { .. } => "token_expired",
            AuthError::WrongCampaign { .. } => "token_wrong_campaign",
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
            AuthError::WrongCampaign {
                token_campaign,
                requested,
            } => write!(
                f,
                "the token is for campaign {token_campaign:?}, not {:?}",
                truncate(requested, 64)
            ),
        }
    }
}

impl std::error::Error for AuthError {}

/// At most `max` bytes of `text`, cut at a character boundary (for messages quoting client input).
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

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
    verify_token_with_any(&[secret], token, now).map(|(claims, _)| claims)
}

/// [`verify_token`] against several secrets (a key rotation: the current one first); also says
/// which secret matched (its index in `secrets`).
pub fn verify_token_with_any(
    secrets: &[&[u8]],
    token: &str,
    now: u64,
) -> Result<(Claims, usize), AuthError> {
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
    let key_index = secrets
        .iter()
        .position(|secret| mac_for(secret, signed_part).verify_slice(&tag).is_ok())
        .ok_or(AuthError::BadSignature)?;
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
    if let Some(campaign) = &claims.campaign {
        check_name(campaign).map_err(|why| AuthError::Malformed(format!("its campaign: {why}")))?;
    }
    Ok((claims, key_index))
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
    /// Only tokens signed with this secret (or the previous one) are accepted.
    Signed {
        /// The HMAC key (at least [`MIN_SECRET_LEN`] bytes).
        secret: Vec<u8>,
        /// During a key rotation, the secret being retired: tokens it signed still pass until it
        /// is removed, while new tokens are minted with `secret`.
        previous_secret: Option<Vec<u8>>,
    },
    /// Development: any non-empty token is accepted as the client's name, with `role`. If a secret
    /// is also given, tokens signed with it are still honoured with their own claims.
    Development {
        /// Optional HMAC key for signed tokens.
        secret: Option<Vec<u8>>,
        /// The secret being retired (see [`AuthMode::Signed`]); needs `secret`.
        previous_secret: Option<Vec<u8>>,
        /// Role given to unsigned development tokens.
        role: Role,
    },
}

/// A token that passed: what it says, and whether the previous (retiring) secret signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The holder's claims.
    pub claims: Claims,
    /// True when the previous secret signed it: such joins are counted, so an operator sees when
    /// the old secret can go.
    pub with_previous_secret: bool,
}

impl fmt::Debug for AuthMode {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |secret: &Option<Vec<u8>>| if secret.is_some() { "<hidden>" } else { "none" };
        match self {
            AuthMode::Signed {
                previous_secret, ..
            } => write!(
                f,
                "Signed {{ secret: <hidden>, previous_secret: {} }}",
                hidden(previous_secret)
            ),
            AuthMode::Development {
                secret,
                previous_secret,
                role,
            } => write!(
                f,
                "Development {{ secret: {}, previous_secret: {}, role: {role} }}",
                hidden(secret),
                hidden(previous_secret)
            ),
        }
    }
}

impl AuthMode {
    /// Signed mode with one secret.
    pub fn signed(secret: impl Into<Vec<u8>>) -> Self {
        AuthMode::Signed {
            secret: secret.into(),
            previous_secret: None,
        }
    }

    /// True in development mode.
    pub fn is_development(&self) -> bool {
        matches!(self, AuthMode::Development { .. })
    }

    /// True while a key rotation's previous secret is accepted.
    pub fn has_previous_secret(&self) -> bool {
        self.secrets().len() > 1
    }

    /// Sets (or clears) the previous secret of a key rotation.
    pub fn set_previous_secret(&mut self, previous: Option<Vec<u8>>) {
        match self {
            AuthMode::Signed {
                previous_secret, ..
            }
            | AuthMode::Development {
                previous_secret, ..
            } => *previous_secret = previous,
        }
    }

    /// The secrets that verify tokens, the current one first.
    fn secrets(&self) -> Vec<&[u8]> {
        let (secret, previous) = match self {
            AuthMode::Signed {
                secret,
                previous_secret,
            } => (Some(secret), previous_secret),
            AuthMode::Development {
                secret,
                previous_secret,
                ..
            } => (secret.as_ref(), previous_secret),
        };
        secret
            .into_iter()
            .chain(previous)
            .map(Vec::as_slice)
            .collect()
    }

    /// A one-line description for startup banners (`scripts/serve` prints it), without the secret.
    pub fn describe(&self) -> String {
        let rotation = |previous: &Option<Vec<u8>>| {
            if previous.is_some() {
                "; tokens signed with the previous secret are accepted too (key rotation)"
            } else {
                ""
            }
        };
        match self {
            AuthMode::Signed {
                previous_secret, ..
            } => format!(
                "signed tokens (HMAC-SHA256 with the server secret) are required{}",
                rotation(previous_secret)
            ),
            AuthMode::Development {
                secret,
                previous_secret,
                role,
            } => format!(
                "DEVELOPMENT MODE: any non-empty token is accepted as the client's name, with role {role}{}{}; never expose this server",
                if secret.is_some() {
                    " (signed tokens are honoured too)"
                } else {
                    ""
                },
                rotation(previous_secret)
            ),
        }
    }

    /// Checks the mode is usable.
    pub fn validate(&self) -> Result<(), String> {
        let (secret, previous) = match self {
            AuthMode::Signed {
                secret,
                previous_secret,
            } => (Some(secret), previous_secret.as_ref()),
            AuthMode::Development {
                secret,
                previous_secret,
                ..
            } => (secret.as_ref(), previous_secret.as_ref()),
        };
        if previous.is_some() && secret.is_none() {
            return Err(
                "a previous secret is set without a current one: set the new secret too (the previous one only verifies tokens during a key rotation)"
                    .into(),
            );
        }
        for (what, key) in [("server secret", secret), ("previous secret", previous)] {
            if let Some(key) = key
                && key.len() < MIN_SECRET_LEN
            {
                return Err(format!(
                    "the {what} is {} bytes; at least {MIN_SECRET_LEN} are required",
                    key.len()
                ));
            }
        }
        Ok(())
    }

    /// Authenticates a join to `campaign_id` at time `now` (Unix seconds).
    pub fn authenticate(
        &self,
        token: &str,
        campaign_id: &str,
        now: u64,
    ) -> Result<Authenticated, AuthError> {
        // Development mode takes plain names; a signed-looking token goes through the secrets.
        let development_role = match self {
            AuthMode::Development { secret, role, .. }
                if secret.is_none() || !token.starts_with(TOKEN_PREFIX) =>
            {
                Some(*role)
            }
            _ => None,
        };
        let Some(role) = development_role else {
            let (claims, key_index) = verify_token_with_any(&self.secrets(), token, now)?;
            if let Some(bound) = &claims.campaign
                && bound != campaign_id
            {
                return Err(AuthError::WrongCampaign {
                    token_campaign: bound.clone(),
                    requested: campaign_id.to_string(),
                });
            }
            return Ok(Authenticated {
                claims,
                with_previous_secret: key_index > 0,
            });
        };
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let name = token.trim();
        check_name(name).map_err(AuthError::BadName)?;
        Ok(Authenticated {
            claims: Claims {
                user_id: name.to_string(),
                name: name.to_string(),
                role,
                expires_at: u64::MAX,
                campaign: None,
            },
            with_previous_secret: false,
        })
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
            campaign: None,
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
            previous_secret: None,
            role: Role::Player,
        };
        let c = mode.authenticate("  Ada ", "0", 0).unwrap().claims;
        assert_eq!((c.name.as_str(), c.role), ("Ada", Role::Player));
        assert_eq!(mode.authenticate("", "0", 0), Err(AuthError::Missing));
        assert!(matches!(
            mode.authenticate("   ", "0", 0),
            Err(AuthError::BadName(_))
        ));
        assert!(matches!(
            mode.authenticate("a\nb", "0", 0),
            Err(AuthError::BadName(_))
        ));
    }

    #[test]
    fn development_mode_with_secret_honours_signed_tokens() {
        let mode = AuthMode::Development {
            secret: Some(SECRET.to_vec()),
            previous_secret: None,
            role: Role::Player,
        };
        let token = mint_token(SECRET, &claims(Role::Admin, u64::MAX));
        assert_eq!(
            mode.authenticate(&token, "0", 0).unwrap().claims.role,
            Role::Admin
        );
    }

    #[test]
    fn signed_mode_refuses_plain_names_and_short_secrets() {
        let mode = AuthMode::signed(SECRET);
        assert_eq!(
            mode.authenticate("Ada", "0", 0).unwrap_err().code(),
            "bad_token"
        );
        assert!(AuthMode::signed(b"short".to_vec()).validate().is_err());
        assert!(!format!("{mode:?}").contains("test-secret"));
    }

    #[test]
    fn a_token_bound_to_a_campaign_joins_only_that_campaign() {
        let mode = AuthMode::signed(SECRET);
        let bound = Claims {
            campaign: Some("arena".into()),
            ..claims(Role::Player, 2_000)
        };
        let token = mint_token(SECRET, &bound);
        let joined = mode.authenticate(&token, "arena", 1_000).unwrap();
        assert_eq!(joined.claims, bound);
        let err = mode.authenticate(&token, "lobby", 1_000).unwrap_err();
        assert_eq!(
            err,
            AuthError::WrongCampaign {
                token_campaign: "arena".into(),
                requested: "lobby".into()
            }
        );
        assert_eq!(err.code(), "token_wrong_campaign");
        assert!(
            err.to_string().contains("\"arena\", not \"lobby\""),
            "{err}"
        );
        // Without the claim the token joins any campaign (tokens minted before the claim existed).
        let unbound = mint_token(SECRET, &claims(Role::Player, 2_000));
        assert!(!unbound.contains("cmp"));
        for campaign in ["arena", "lobby"] {
            assert!(mode.authenticate(&unbound, campaign, 1_000).is_ok());
        }
        // A quoted campaign id is cut short in the message, even a multi-byte one.
        let long = "é".repeat(100);
        let err = mode.authenticate(&token, &long, 1_000).unwrap_err();
        assert!(err.to_string().len() < 140, "{err}");
    }

    #[test]
    fn key_rotation_accepts_the_previous_secret_until_it_is_removed() {
        const NEW: &[u8] = b"the-new-secret-after-rotation";
        let old_token = mint_token(SECRET, &claims(Role::Player, 2_000));
        let new_token = mint_token(NEW, &claims(Role::Player, 2_000));
        let mut mode = AuthMode::signed(NEW);
        assert_eq!(
            mode.authenticate(&old_token, "0", 1_000),
            Err(AuthError::BadSignature)
        );
        mode.set_previous_secret(Some(SECRET.to_vec()));
        assert!(mode.validate().is_ok());
        let old = mode.authenticate(&old_token, "0", 1_000).unwrap();
        let new = mode.authenticate(&new_token, "0", 1_000).unwrap();
        assert!(old.with_previous_secret && !new.with_previous_secret);
        assert!(mode.has_previous_secret() && mode.describe().contains("previous secret"));
        assert!(!format!("{mode:?}").contains("test-secret"));
        // A third secret is still refused, and expiry applies to old tokens too.
        let stranger = mint_token(b"a-third-secret-0123456789", &claims(Role::Player, 2_000));
        assert_eq!(
            mode.authenticate(&stranger, "0", 1_000),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            mode.authenticate(&old_token, "0", 2_000),
            Err(AuthError::Expired { expired_at: 2_000 })
        );
        mode.set_previous_secret(None);
        assert_eq!(
            mode.authenticate(&old_token, "0", 1_000),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn a_previous_secret_must_be_long_and_come_with_a_current_one() {
        let mut mode = AuthMode::signed(SECRET);
        mode.set_previous_secret(Some(b"short".to_vec()));
        assert!(mode.validate().unwrap_err().contains("previous secret"));
        let lonely = AuthMode::Development {
            secret: None,
            previous_secret: Some(SECRET.to_vec()),
            role: Role::Admin,
        };
        assert!(
            lonely
                .validate()
                .unwrap_err()
                .contains("without a current one")
        );
    }
}
