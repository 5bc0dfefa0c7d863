//! The secret formats: member and bot tokens, invitation codes, account API tokens.
//!
//! A secret is `prefix` + 43 base62 characters carrying 256 random bits + 6 base62 characters of
//! CRC32C over everything before them. The prefix lets secret scanners recognise a leaked
//! secret; the checksum lets the gateway refuse a mistyped or made-up token without any lookup.
//! Only the SHA-256 of the whole string ([`TokenHash`]) and a short [`TokenHint`] are stored.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters carrying the 256 random bits.
pub const SECRET_BODY_LEN: usize = 43;
/// Characters of checksum.
pub const SECRET_CHECKSUM_LEN: usize = 6;
/// Length of every secret's prefix, e.g. `mwt_`.
pub const SECRET_PREFIX_LEN: usize = 4;
/// Total length of every secret.
pub const SECRET_LEN: usize = SECRET_PREFIX_LEN + SECRET_BODY_LEN + SECRET_CHECKSUM_LEN;

/// What a secret is for; each kind has its own prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    /// A member's workspace token, `mwt_`.
    MemberToken,
    /// A bot's workspace token, `mwb_`.
    BotToken,
    /// An invitation code, `mwi_`.
    InvitationCode,
    /// An account API token for the CLI and API, `mwa_`.
    AccountToken,
}

impl SecretKind {
    /// The prefix, including the underscore.
    pub const fn prefix(self) -> &'static str {
        match self {
            SecretKind::MemberToken => "mwt_",
            SecretKind::BotToken => "mwb_",
            SecretKind::InvitationCode => "mwi_",
            SecretKind::AccountToken => "mwa_",
        }
    }

    fn from_prefix(prefix: &str) -> Option<SecretKind> {
        [SecretKind::MemberToken, SecretKind::BotToken, SecretKind::InvitationCode, SecretKind::AccountToken]
            .into_iter()
            .find(|k| k.prefix() == prefix)
    }
}

/// A secret in clear. It is shown once, then only its hash is kept. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    kind: SecretKind,
    text: String,
}

/// Why a presented secret was refused without a lookup.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Wrong total length.
    #[error("the token has the wrong length ({0} characters; tokens have 53): copy the whole token")]
    Length(usize),
    /// Unknown prefix.
    #[error("the token does not start with a Rollcall prefix (mwt_, mwb_, mwi_ or mwa_)")]
    Prefix,
    /// A character outside base62.
    #[error("the token contains a character that no Rollcall token has: copy it again")]
    Alphabet,
    /// The checksum does not match: a typo or a made-up token.
    #[error("the token's checksum does not match: it was mistyped or truncated")]
    Checksum,
    /// A valid secret of the wrong kind (e.g. a bot token where an invitation code was expected).
    #[error("this is a {found} where a {expected} was expected")]
    WrongKind {
        /// What was expected.
        expected: &'static str,
        /// What was presented.
        found: &'static str,
    },
}

impl Secret {
    /// Builds a secret from 32 random bytes. The caller supplies the randomness (the domain has
    /// none): use a cryptographically secure generator.
    pub fn generate(kind: SecretKind, random: [u8; 32]) -> Secret {
        let mut text = String::with_capacity(SECRET_LEN);
        text.push_str(kind.prefix());
        text.push_str(&base62_fixed(&random, SECRET_BODY_LEN));
        let checksum = crc32c::crc32c(text.as_bytes());
        text.push_str(&base62_fixed(&checksum.to_be_bytes(), SECRET_CHECKSUM_LEN));
        Secret { kind, text }
    }

    /// Checks a presented secret's shape and checksum; no lookup.
    pub fn parse(input: &str) -> Result<Secret, SecretError> {
        let input = input.trim();
        if input.len() != SECRET_LEN {
            return Err(SecretError::Length(input.chars().count()));
        }
        if !input.is_ascii() {
            return Err(SecretError::Alphabet);
        }
        let kind = SecretKind::from_prefix(&input[..SECRET_PREFIX_LEN]).ok_or(SecretError::Prefix)?;
        let rest = &input.as_bytes()[SECRET_PREFIX_LEN..];
        if !rest.iter().all(u8::is_ascii_alphanumeric) {
            return Err(SecretError::Alphabet);
        }
        let (covered, checksum) = input.split_at(SECRET_PREFIX_LEN + SECRET_BODY_LEN);
        let expected = base62_fixed(&crc32c::crc32c(covered.as_bytes()).to_be_bytes(), SECRET_CHECKSUM_LEN);
        if !bool::from(expected.as_bytes().ct_eq(checksum.as_bytes())) {
            return Err(SecretError::Checksum);
        }
        Ok(Secret { kind, text: input.to_owned() })
    }

    /// Parses and insists on one kind.
    pub fn parse_kind(input: &str, kind: SecretKind) -> Result<Secret, SecretError> {
        let secret = Secret::parse(input)?;
        if secret.kind != kind {
            return Err(SecretError::WrongKind { expected: kind_name(kind), found: kind_name(secret.kind) });
        }
        Ok(secret)
    }

    /// What the secret is for.
    pub fn kind(&self) -> SecretKind {
        self.kind
    }

    /// The secret in clear, to show once.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The hash that is stored and looked up.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.text)
    }

    /// A short non-secret hint for lists: the prefix and the last four characters.
    pub fn hint(&self) -> TokenHint {
        TokenHint(format!("{}…{}", self.kind.prefix(), &self.text[SECRET_LEN - 4..]))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({:?}, {})", self.kind, self.hint().0)
    }
}

fn kind_name(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::MemberToken => "member token",
        SecretKind::BotToken => "bot token",
        SecretKind::InvitationCode => "invitation code",
        SecretKind::AccountToken => "account token",
    }
}

/// The SHA-256 of a secret: what events and read models keep. Cannot be confused with a token.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a secret's text.
    pub fn of(secret_text: &str) -> TokenHash {
        TokenHash(Sha256::digest(secret_text.as_bytes()).into())
    }

    /// Lower-case hex, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses lower- or upper-case hex.
    pub fn from_hex(text: &str) -> Option<TokenHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(TokenHash(bytes))
    }

    /// Compares in constant time, for checking a presented code against a stored hash.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({})", &self.to_hex()[..12])
    }
}

impl std::fmt::Display for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TokenHash::from_hex(&text).ok_or_else(|| serde::de::Error::custom("a token hash is 64 hex characters"))
    }
}

impl JsonSchema for TokenHash {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TokenHash".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "SHA-256 of a secret, lower-case hex",
            "type": "string",
            "pattern": "^[0-9a-f]{64}$"
        })
    }
}

/// A short non-secret hint of a token, e.g. `mwt_…x9Qa`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct TokenHint(pub String);

/// Encodes bytes as a big-endian number in base62, left-padded with zeros to `len` characters.
fn base62_fixed(bytes: &[u8], len: usize) -> String {
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(len);
    while digits.len() < len {
        let mut remainder: u32 = 0;
        for byte in number.iter_mut() {
            let value = (remainder << 8) | u32::from(*byte);
            *byte = (value / 62) as u8;
            remainder = value % 62;
        }
        digits.push(ALPHABET[remainder as usize]);
    }
    assert!(number.iter().all(|b| *b == 0), "base62 length too short for the input");
    digits.reverse();
    String::from_utf8(digits).expect("base62 alphabet is ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_and_typos_do_not() {
        let secret = Secret::generate(SecretKind::MemberToken, [7; 32]);
        assert!(secret.expose().starts_with("mwt_"));
        assert_eq!(secret.expose().len(), SECRET_LEN);
        assert_eq!(Secret::parse(secret.expose()).unwrap(), secret);
        let mut typo = secret.expose().to_owned().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        assert_eq!(Secret::parse(std::str::from_utf8(&typo).unwrap()), Err(SecretError::Checksum));
        assert_eq!(Secret::parse("mwt_short"), Err(SecretError::Length(9)));
    }

    #[test]
    fn extreme_randomness_fits() {
        for fill in [0u8, 255] {
            let secret = Secret::generate(SecretKind::BotToken, [fill; 32]);
            assert!(Secret::parse(secret.expose()).is_ok());
        }
    }
}
