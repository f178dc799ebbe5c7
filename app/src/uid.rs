//! UIDs Focal makes itself (2.25 form), shared by exports and by files retrieved from a PACS.

use sha2::{Digest, Sha256};

/// Focal's implementation class UID (derived from the name).
pub fn implementation_class_uid() -> String {
    uid_from_bytes(b"focal implementation class")
}

/// A stable pseudonym of a UID: the first 8 bytes of its sha256, in hex (16 digits). Names
/// folders and table rows without putting identifiers in them.
pub fn key(uid: &str) -> String {
    crate::inference::manifest::hex(&Sha256::digest(uid.as_bytes())[..8])
}

/// A UID under 2.25 from the first 128 bits of sha256(bytes).
pub fn uid_from_bytes(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut n = [0u8; 16];
    n.copy_from_slice(&digest[..16]);
    format!("2.25.{}", u128::from_be_bytes(n))
}
