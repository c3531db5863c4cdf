//! Machine secrets: registration keys, node credentials, API tokens. They
//! are long random strings, so a fast hash (SHA-256) is enough to store them:
//! unlike passwords they cannot be guessed from a dictionary.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new secret: `prefix` (which tells people what it is) followed by 256
/// random bits in hex.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// What is stored instead of the secret.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_random_and_hashed() {
        let a = super::generate("lmk_");
        let b = super::generate("lmk_");
        assert!(a.starts_with("lmk_") && a.len() == 4 + 64);
        assert_ne!(a, b);
        assert_eq!(super::hash(&a), super::hash(&format!(" {a}\n")));
        assert_ne!(super::hash(&a), super::hash(&b));
    }
}
