//! Generic webhooks signed per Standard Webhooks 1.0: `webhook-id` (the
//! same on every attempt of one alert), `webhook-timestamp` (seconds, this
//! attempt) and `webhook-signature: v1,<base64 HMAC-SHA256(key,
//! "id.timestamp.body")>`, where the key is the base64 after `whsec_`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a generated secret (Standard Webhooks asks for 24 to 64).
const SECRET_BYTES: usize = 32;

/// A new random `whsec_…` secret.
pub fn new_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut key).expect("the operating system's random number generator failed");
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// The key inside a `whsec_…` secret, or why it is not one.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or_else(|| format!("a webhook secret must start with {SECRET_PREFIX} followed by base64"))?;
    let key = BASE64.decode(encoded).map_err(|_| "a webhook secret's part after whsec_ must be base64".to_string())?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!("a webhook secret must hold 24 to 64 bytes, this one holds {}", key.len()));
    }
    Ok(key)
}

/// The `webhook-signature` header value for one attempt.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The three headers of one attempt.
pub fn headers(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<Vec<(&'static str, String)>, String> {
    let key = secret_key(secret)?;
    Ok(vec![
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature(&key, id, timestamp, body)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference
    /// libraries: this secret, id, timestamp and body sign to this value.
    #[test]
    fn signs_like_the_reference_libraries() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn generated_secrets_are_valid_and_bad_ones_say_why() {
        assert_eq!(secret_key(&new_secret()).unwrap().len(), 32);
        assert!(secret_key("nope").unwrap_err().contains("whsec_"));
        assert!(secret_key("whsec_!!!").unwrap_err().contains("base64"));
        assert!(secret_key("whsec_YWJj").unwrap_err().contains("24 to 64"));
    }
}
