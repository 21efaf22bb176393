//! Key derivation.
//!
//! Soledad derives the local store key as `scrypt(local_secret, local_salt, N = 2^14, r = 8,
//! p = 1)` from a random 448-byte secret ([`ScryptParams::SOLEDAD`], [`scrypt_key`]). For a
//! person's passphrase, as the `blobs` command takes, that is too cheap, so
//! [`UserKeys::from_passphrase`] uses `N = 2^15` (32 MiB, about 0.1 s on one core here):
//! twice Soledad's cost per guess while staying inside the client's 64 MiB memory budget.
//! scrypt rather than PBKDF2 because it is memory-hard, which is what makes guessing on
//! GPUs and ASICs expensive; Argon2id would be as good, and scrypt is what the spec names.
//!
//! One scrypt run gives a 32-byte master key, salted with the user name so that two users
//! with one passphrase get different keys. From it, HKDF-SHA256 expands:
//! - the 512-byte `remote_secret` (the per-blob keys are HMACs keyed with it), which is the
//!   same on every device of the user, so each can read what the others uploaded;
//! - each local store's key, with that store's random 16-byte salt, so that two stores
//!   never share a key and a stolen store cannot be matched against another.

use aws_lc_rs::hkdf;
use blobs_crypto::BlobSecret;

/// scrypt's cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptParams {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
}

impl ScryptParams {
    /// Soledad's, for its random local secret.
    pub const SOLEDAD: ScryptParams = ScryptParams { log_n: 14, r: 8, p: 1 };
    /// For passphrases.
    pub const PASSPHRASE: ScryptParams = ScryptParams { log_n: 15, r: 8, p: 1 };
}

/// `scrypt(secret, salt)` into 32 bytes.
pub fn scrypt_key(secret: &[u8], salt: &[u8], params: ScryptParams) -> [u8; 32] {
    let p = scrypt::Params::new(params.log_n, params.r, params.p).expect("valid scrypt parameters");
    let mut out = [0u8; 32];
    scrypt::scrypt(secret, salt, &p, &mut out).expect("32 bytes is a valid scrypt output length");
    out
}

struct HkdfLen(usize);

impl hkdf::KeyType for HkdfLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand(master: &[u8; 32], salt: &[u8], info: &[u8], out: &mut [u8]) {
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(master)
        .expand(&[info], HkdfLen(out.len()))
        .and_then(|o| o.fill(out))
        .expect("HKDF-SHA256 output within its limit");
}

/// Length of Soledad's `remote_secret`.
pub const REMOTE_SECRET_LEN: usize = 512;

/// A user's keys, derived from their passphrase.
pub struct UserKeys {
    master: [u8; 32],
}

impl UserKeys {
    /// Runs scrypt once (about 0.1 s and 32 MiB).
    pub fn from_passphrase(passphrase: &[u8], user: &str) -> Self {
        let salt = [b"soledad-bench user\0".as_slice(), user.as_bytes()].concat();
        Self {
            master: scrypt_key(passphrase, &salt, ScryptParams::PASSPHRASE),
        }
    }

    /// The secret the per-blob keys come from: the same on every device.
    pub fn remote_secret(&self) -> BlobSecret {
        let mut secret = vec![0u8; REMOTE_SECRET_LEN];
        expand(&self.master, b"", b"soledad-bench remote secret", &mut secret);
        BlobSecret::new(secret).expect("512 bytes is a valid secret")
    }

    /// The key of the local store whose salt is `store_salt`.
    pub fn store_key(&self, store_salt: &[u8; 16]) -> [u8; 32] {
        let mut key = [0u8; 32];
        expand(&self.master, store_salt, b"soledad-bench local store", &mut key);
        key
    }
}

impl std::fmt::Debug for UserKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserKeys(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrypt_matches_the_rfc_7914_vector() {
        // RFC 7914 section 12, third vector (N = 16384, r = 8, p = 1), first 32 bytes.
        let out = scrypt_key(b"pleaseletmein", b"SodiumChloride", ScryptParams::SOLEDAD);
        assert_eq!(
            hex::encode(out),
            "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
        );
    }

    #[test]
    fn keys_depend_on_passphrase_user_and_store() {
        let a = UserKeys::from_passphrase(b"correct horse", "alice");
        let a2 = UserKeys::from_passphrase(b"correct horse", "alice");
        let b = UserKeys::from_passphrase(b"correct horse", "bob");
        let c = UserKeys::from_passphrase(b"battery staple", "alice");
        let id_key = |k: &UserKeys| k.remote_secret().blob_key("x").0;
        assert_eq!(id_key(&a), id_key(&a2), "devices of one user agree");
        assert_ne!(id_key(&a), id_key(&b));
        assert_ne!(id_key(&a), id_key(&c));
        assert_ne!(a.store_key(&[1; 16]), a.store_key(&[2; 16]));
        assert_eq!(a.store_key(&[1; 16]), a2.store_key(&[1; 16]));
    }
}
