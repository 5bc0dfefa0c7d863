//! Password hashing with argon2id.
//!
//! Hashing is deliberately slow, so it runs on the blocking pool and never inside a lock.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::ApiError;

/// Shortest password accepted, in characters.
pub const PASSWORD_CHARS_MIN: usize = 10;
/// Longest password accepted, in bytes (argon2 takes any length; this bounds the work).
pub const PASSWORD_BYTES_MAX: usize = 1024;

/// The cost of argon2id. The default is OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> PasswordParams {
        PasswordParams { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

/// Hashes and verifies passwords.
#[derive(Clone, Debug)]
pub struct PasswordHashing {
    params: PasswordParams,
    /// A hash of nothing anyone knows, verified against when the address is unknown, so that an
    /// unknown address costs as much time as a wrong password.
    decoy_hash: String,
}

impl PasswordHashing {
    /// Prepares hashing with these parameters.
    pub fn new(params: PasswordParams) -> Result<PasswordHashing, ApiError> {
        let decoy_hash = hash_with(params, "rollcall decoy password for unknown addresses")?;
        Ok(PasswordHashing { params, decoy_hash })
    }

    /// Checks a new password's length.
    pub fn check_policy(password: &str) -> Result<(), ApiError> {
        if password.chars().count() < PASSWORD_CHARS_MIN {
            return Err(ApiError::invalid(
                "weak_password",
                format!("the password is too short: use at least {PASSWORD_CHARS_MIN} characters"),
            ));
        }
        if password.len() > PASSWORD_BYTES_MAX {
            return Err(ApiError::invalid(
                "invalid_password",
                format!("the password is longer than {PASSWORD_BYTES_MAX} bytes: use a shorter one"),
            ));
        }
        Ok(())
    }

    /// Hashes a password into a PHC string, on the blocking pool.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let params = self.params;
        tokio::task::spawn_blocking(move || hash_with(params, &password)).await.map_err(ApiError::internal)?
    }

    /// Verifies a password against a PHC string, or against the decoy when there is none.
    pub async fn verify(&self, stored: Option<String>, password: String) -> Result<bool, ApiError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.decoy_hash.clone());
        let matched = tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&phc) else { return false };
            Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
        })
        .await
        .map_err(ApiError::internal)?;
        Ok(known && matched)
    }
}

fn hash_with(params: PasswordParams, password: &str) -> Result<String, ApiError> {
    let argon_params = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
        .map_err(|e| ApiError::internal(format!("argon2 parameters: {e}")))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut salt_bytes = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| ApiError::internal(format!("argon2 salt: {e}")))?;
    let hash =
        argon.hash_password(password.as_bytes(), &salt).map_err(|e| ApiError::internal(format!("argon2 hash: {e}")))?;
    Ok(hash.to_string())
}
