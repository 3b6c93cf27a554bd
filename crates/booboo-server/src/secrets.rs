//! Random tokens, their hashes, and password hashing. Nothing here logs or
//! prints a secret.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the operating system's random number generator failed");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A project's ingestion token: 128 random bits as 32 hex characters, the
/// shape both our DSN and Sentry's public key accept.
pub fn new_ingest_token() -> String {
    random_hex(16)
}

/// An API token: 256 random bits with a prefix that secret scanners can spot.
pub fn new_api_token() -> String {
    format!("bbt_{}", random_hex(32))
}

/// A session cookie, a CSRF token, a setup or invitation link: 256 bits.
pub fn new_session_token() -> String {
    random_hex(32)
}

/// A random event id for events that came without one.
pub fn new_event_id() -> String {
    random_hex(16)
}

/// API tokens are stored hashed: a stolen database does not grant access.
/// They are long and random, so a fast hash suffices.
pub fn token_hash(token: &str) -> String {
    Blake2b::<U32>::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// An Argon2id hash in PHC string form.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_argon2id_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (new_ingest_token(), new_ingest_token());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(new_api_token().starts_with("bbt_"));
        assert_eq!(token_hash("x").len(), 64);
    }
}
