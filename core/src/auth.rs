//! Mutual challenge-response authentication with the cluster secret.
//!
//! Each side proves it knows the secret by an HMAC-SHA256 over both nonces,
//! with a different label per direction so that one side's proof can never
//! be replayed as the other's. Fresh nonces on both sides make every proof
//! single-use.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::frame::{NONCE_BYTES, PROOF_BYTES};

type HmacSha256 = Hmac<Sha256>;

const SERVER_LABEL: &[u8] = b"switchboard/1 server";
const CLIENT_LABEL: &[u8] = b"switchboard/1 client";

/// Smallest accepted cluster secret, in bytes.
pub const SECRET_BYTES_MIN: usize = 16;

/// The cluster secret shared by the server and its members.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A secret shorter than [`SECRET_BYTES_MIN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster secret is {len} bytes, at least {min} are required")]
pub struct SecretTooShort {
    /// Given length.
    pub len: usize,
    /// Required length.
    pub min: usize,
}

impl Secret {
    /// Wraps secret bytes; refuses secrets shorter than [`SECRET_BYTES_MIN`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Secret, SecretTooShort> {
        let bytes = bytes.into();
        if bytes.len() < SECRET_BYTES_MIN {
            return Err(SecretTooShort {
                len: bytes.len(),
                min: SECRET_BYTES_MIN,
            });
        }
        Ok(Secret(bytes))
    }

    fn proof(&self, label: &[u8], first: &[u8], second: &[u8]) -> [u8; PROOF_BYTES] {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(label);
        mac.update(first);
        mac.update(second);
        mac.finalize().into_bytes().into()
    }

    /// The server's proof for a client nonce and its own nonce.
    pub fn server_proof(
        &self,
        client_nonce: &[u8; NONCE_BYTES],
        server_nonce: &[u8; NONCE_BYTES],
    ) -> [u8; PROOF_BYTES] {
        self.proof(SERVER_LABEL, client_nonce, server_nonce)
    }

    /// The client's proof for the server nonce and its own nonce.
    pub fn client_proof(
        &self,
        server_nonce: &[u8; NONCE_BYTES],
        client_nonce: &[u8; NONCE_BYTES],
    ) -> [u8; PROOF_BYTES] {
        self.proof(CLIENT_LABEL, server_nonce, client_nonce)
    }
}

/// Compares two proofs in constant time.
pub fn proofs_equal(a: &[u8; PROOF_BYTES], b: &[u8; PROOF_BYTES]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_differ_by_direction_secret_and_nonce() {
        let s = Secret::new(*b"0123456789abcdef").expect("long enough");
        let t = Secret::new(*b"0123456789abcdeX").expect("long enough");
        let (a, b) = ([1u8; 16], [2u8; 16]);
        assert_ne!(s.server_proof(&a, &b), s.client_proof(&a, &b));
        assert_ne!(s.server_proof(&a, &b), t.server_proof(&a, &b));
        assert_ne!(s.server_proof(&a, &b), s.server_proof(&b, &a));
        assert!(proofs_equal(
            &s.server_proof(&a, &b),
            &s.server_proof(&a, &b)
        ));
        assert!(!proofs_equal(
            &s.server_proof(&a, &b),
            &t.server_proof(&a, &b)
        ));
    }

    #[test]
    fn short_secret_is_refused() {
        assert_eq!(
            Secret::new(b"short".to_vec()).err(),
            Some(SecretTooShort { len: 5, min: 16 })
        );
    }
}
