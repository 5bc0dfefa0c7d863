//! Email addresses, normalised and validated once at the edge.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest address accepted (RFC 5321's path limit).
pub const EMAIL_LEN_MAX: usize = 254;

/// A normalised, validated email address: trimmed and lower-cased.
///
/// Lower-casing the local part is a product decision: `Alice@Example.com` and
/// `alice@example.com` are one person here, so one person cannot hold two seats by case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Email(String);

/// Why an address was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid email address: {reason}")]
pub struct EmailError {
    /// What was given (already trimmed).
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Email {
    /// Normalises and validates an address.
    pub fn parse(input: &str) -> Result<Email, EmailError> {
        let trimmed = input.trim();
        let fail = |reason| EmailError { input: trimmed.chars().take(300).collect(), reason };
        if trimmed.is_empty() {
            return Err(fail("it is empty"));
        }
        if trimmed.len() > EMAIL_LEN_MAX {
            return Err(fail("it is longer than 254 characters"));
        }
        if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail("it contains whitespace or control characters"));
        }
        let Some((local, domain)) = trimmed.rsplit_once('@') else {
            return Err(fail("it has no @"));
        };
        if local.is_empty() {
            return Err(fail("nothing comes before the @"));
        }
        if local.contains('@') {
            return Err(fail("it has more than one @"));
        }
        if local.len() > 64 {
            return Err(fail("the part before the @ is longer than 64 characters"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(fail("the part before the @ has a misplaced dot"));
        }
        if domain.is_empty() || !domain.contains('.') {
            return Err(fail("the domain needs a dot, as in example.com"));
        }
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !labels_ok {
            return Err(fail("the domain is not a valid host name"));
        }
        Ok(Email(trimmed.to_lowercase()))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Email {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Email::parse(s)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Email::parse(&raw).map_err(serde::de::Error::custom)
    }
}
