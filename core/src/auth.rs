//! Mutual challenge-response authentication with the cluster secret.
//!
//! Each side proves it knows the secret by an HMAC-SHA256 over both nonces,
//! with a different label per direction so that one side's proof can never
//! be replayed as the other's. Fresh nonces on both sides make every proof
//! single-use.
//!
//! A registration also yields a per-session key that both sides derive and
//! neither ever sends ([`Secret::session_key`]); a `Resume` must carry a
//! proof made with it over the fresh nonces of the resuming handshake
//! ([`SessionKey::resume_proof`]), so knowing a member's ids and the
//! cluster secret is not enough to take over its session.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::frame::{NONCE_BYTES, PROOF_BYTES};

type HmacSha256 = Hmac<Sha256>;

const SERVER_LABEL: &[u8] = b"switchboard/1 server";
const CLIENT_LABEL: &[u8] = b"switchboard/1 client";
const SESSION_LABEL: &[u8] = b"switchboard/2 session";
const RESUME_LABEL: &[u8] = b"switchboard/2 resume";

/// One HMAC-SHA256 over the concatenated parts.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; PROOF_BYTES] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The identity of a session as both sides know it after a `Welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionIds {
    /// Member id from the `Welcome`.
    pub member_id: u64,
    /// The member's incarnation from its `Hello`.
    pub incarnation: u64,
    /// Server incarnation from the `Welcome`.
    pub server_incarnation: u64,
}

/// A per-session key, derived on both sides of a registration and never
/// sent. Its `Debug` output hides the bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionKey([u8; PROOF_BYTES]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// The resume proof for the nonces of a resuming handshake:
    /// `HMAC-SHA256(key, "switchboard/2 resume" | server_nonce | client_nonce)`.
    pub fn resume_proof(
        &self,
        server_nonce: &[u8; NONCE_BYTES],
        client_nonce: &[u8; NONCE_BYTES],
    ) -> [u8; PROOF_BYTES] {
        hmac(&self.0, &[RESUME_LABEL, server_nonce, client_nonce])
    }
}

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
        hmac(&self.0, &[label, first, second])
    }

    /// The key of the session a registration opened:
    /// `HMAC-SHA256(secret, "switchboard/2 session" | client_nonce |
    /// server_nonce | member_id | incarnation | server_incarnation)`, the
    /// integers as 8 big-endian bytes and the nonces those of the
    /// registering handshake.
    pub fn session_key(
        &self,
        client_nonce: &[u8; NONCE_BYTES],
        server_nonce: &[u8; NONCE_BYTES],
        ids: SessionIds,
    ) -> SessionKey {
        SessionKey(hmac(
            &self.0,
            &[
                SESSION_LABEL,
                client_nonce,
                server_nonce,
                &ids.member_id.to_be_bytes(),
                &ids.incarnation.to_be_bytes(),
                &ids.server_incarnation.to_be_bytes(),
            ],
        ))
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
    fn session_keys_depend_on_every_input() {
        let s = Secret::new(*b"0123456789abcdef").expect("long enough");
        let t = Secret::new(*b"0123456789abcdeX").expect("long enough");
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let ids = SessionIds {
            member_id: 7,
            incarnation: 8,
            server_incarnation: 9,
        };
        let k = s.session_key(&a, &b, ids);
        assert_eq!(k, s.session_key(&a, &b, ids));
        assert_ne!(k, t.session_key(&a, &b, ids));
        assert_ne!(k, s.session_key(&b, &a, ids));
        for other in [
            SessionIds {
                member_id: 6,
                ..ids
            },
            SessionIds {
                incarnation: 6,
                ..ids
            },
            SessionIds {
                server_incarnation: 6,
                ..ids
            },
        ] {
            assert_ne!(k, s.session_key(&a, &b, other));
        }
        // The resume proof is bound to the key and to both fresh nonces.
        let other = s.session_key(&a, &a, ids);
        assert_ne!(k.resume_proof(&a, &b), other.resume_proof(&a, &b));
        assert_ne!(k.resume_proof(&a, &b), k.resume_proof(&b, &a));
        assert_ne!(k.resume_proof(&a, &b), s.client_proof(&a, &b));
    }

    #[test]
    fn short_secret_is_refused() {
        assert_eq!(
            Secret::new(b"short".to_vec()).err(),
            Some(SecretTooShort { len: 5, min: 16 })
        );
    }
}
