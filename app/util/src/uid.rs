//! UIDs Focal makes itself (2.25 form), shared by exports and by files retrieved from a PACS.

use sha2::{Digest, Sha256};

/// Focal's implementation class UID (derived from the name).
pub fn implementation_class_uid() -> String {
    uid_from_bytes(b"focal implementation class")
}

/// A stable pseudonym of a UID: the first 8 bytes of its sha256, in hex (16 digits). Names
/// folders and table rows without putting identifiers in them.
pub fn key(uid: &str) -> String {
    crate::hex(&Sha256::digest(uid.as_bytes())[..8])
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// A keyed pseudonym of a UID: the first 8 bytes of HMAC-SHA256(key, uid), in hex (16 digits).
/// Without the key, the UID cannot be found from it by hashing candidate UIDs, as it can from
/// [`key`].
pub fn pseudonym(uid: &str, key: &[u8]) -> String {
    crate::hex(&hmac_sha256(key, uid.as_bytes())[..8])
}

/// The pseudonym key in `path`, made there when there is none: 32 bytes from the system's
/// random source, in a file only its owner can read (0600), created exclusively so that two
/// processes starting at once end up with the same key. A key file shorter than 16 bytes is
/// refused.
pub fn load_or_create_key(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    match std::fs::read(path) {
        Ok(key) if key.len() >= 16 => return Ok(key),
        Ok(key) => {
            return Err(std::io::Error::other(format!(
                "{}: a pseudonym key needs at least 16 bytes, it has {}",
                path.display(),
                key.len()
            )));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut key = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => {
            f.write_all(&key)?;
            f.sync_all()?;
            Ok(key)
        }
        // Another process made it first: use its key (written by now or very soon).
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for _ in 0..50 {
                let key = std::fs::read(path)?;
                if key.len() >= 16 {
                    return Ok(key);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::io::Error::other(format!("{}: the pseudonym key is incomplete", path.display())))
        }
        Err(e) => Err(e),
    }
}

/// A UID under 2.25 from the first 128 bits of sha256(bytes).
pub fn uid_from_bytes(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut n = [0u8; 16];
    n.copy_from_slice(&digest[..16]);
    format!("2.25.{}", u128::from_be_bytes(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test cases 1 and 2.
        let h = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(
            crate::hex(&h),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let h = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            crate::hex(&h),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_key_is_made_once_private_and_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("config").join("pseudonym.key");
        let key = load_or_create_key(&path).expect("made");
        assert_eq!(key.len(), 32);
        assert_eq!(load_or_create_key(&path).expect("read"), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let uid = "1.2.826.0.1.3680043.8.498.1";
        assert_ne!(pseudonym(uid, &key), super::key(uid), "keyed equals unkeyed");
        assert_ne!(pseudonym(uid, &key), pseudonym(uid, &[7u8; 32]));
        std::fs::write(&path, b"short").expect("write");
        assert!(load_or_create_key(&path).is_err());
    }
}
