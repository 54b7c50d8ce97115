//! The custodian's Ed25519 release signing key and the OpenSSH SSHSIG
//! signatures it makes, so that recipients can check a manifest with stock
//! `ssh-keygen -Y verify` and no dars of their own.
//!
//! ssh-key parses the key file and encodes the SSHSIG envelope; ring does
//! the hashing and the Ed25519 signature. The secret seed lives only in
//! zeroizing storage and is never printed.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ring::digest::{digest, SHA256, SHA512};
use ring::signature::Ed25519KeyPair;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, Signature, SshSig};
use zeroize::Zeroizing;

use super::PackageError;

/// Key files are a few hundred bytes; anything this large is not one.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The hash inside an SSHSIG. dars signs with SHA-512 (OpenSSH's default);
/// verification accepts both, as `ssh-keygen -Y verify` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SshsigHash {
    Sha256,
    Sha512,
}

impl SshsigHash {
    pub(crate) fn name(self) -> &'static str {
        match self {
            SshsigHash::Sha256 => "sha256",
            SshsigHash::Sha512 => "sha512",
        }
    }
}

/// The bytes an SSHSIG signature covers (OpenSSH PROTOCOL.sshsig):
/// `"SSHSIG" || string(namespace) || string(reserved = "") ||
/// string(hash_algorithm) || string(H(message))`, each `string` a 32-bit
/// big-endian length then the bytes.
pub(crate) fn sshsig_signed_data(namespace: &str, hash: SshsigHash, message: &[u8]) -> Vec<u8> {
    let message_hash = match hash {
        SshsigHash::Sha256 => digest(&SHA256, message),
        SshsigHash::Sha512 => digest(&SHA512, message),
    };
    let mut out = Vec::with_capacity(6 + 4 * 4 + namespace.len() + 6 + 64);
    out.extend_from_slice(b"SSHSIG");
    for field in [
        namespace.as_bytes(),
        b"",
        hash.name().as_bytes(),
        message_hash.as_ref(),
    ] {
        // Every field is far below 4 GiB: a namespace, a hash name, a digest.
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// An Ed25519 release signing key loaded from an unencrypted OpenSSH
/// private key file.
pub struct SigningKey {
    seed: Zeroizing<[u8; 32]>,
    public: PublicKey,
}

impl SigningKey {
    /// Loads an OpenSSH Ed25519 private key. Refuses a file that group or
    /// others may read (the error says `chmod 600 PATH`), a passphrase-
    /// protected key, a key of another type, and a public key file.
    pub fn load(path: &Path) -> Result<Self, PackageError> {
        let read_error = |source| PackageError::KeyRead {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(read_error)?;
        // Check the open file, not the path, so that the mode checked is the
        // mode of the bytes read.
        let metadata = file.metadata().map_err(read_error)?;
        if !metadata.is_file() || metadata.len() > MAX_KEY_FILE_BYTES {
            return Err(PackageError::KeyNotOpenssh {
                path: path.to_path_buf(),
                reason: "not a small regular file".to_string(),
            });
        }
        // Sized up front so that the buffer never reallocates and leaves an
        // unzeroed copy of the key behind.
        let mut pem = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE_BYTES as usize + 1));
        file.take(MAX_KEY_FILE_BYTES)
            .read_to_end(&mut pem)
            .map_err(read_error)?;
        // A public key file is normally world-readable: say what it is
        // rather than ask for a chmod that would not help.
        if [b"ssh-".as_slice(), b"ecdsa-", b"sk-"]
            .iter()
            .any(|prefix| pem.starts_with(prefix))
        {
            return Err(PackageError::KeyIsPublic {
                path: path.to_path_buf(),
            });
        }
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(PackageError::KeyPermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
        Self::from_openssh(path, &pem)
    }

    fn from_openssh(path: &Path, pem: &[u8]) -> Result<Self, PackageError> {
        let private = PrivateKey::from_openssh(pem).map_err(|e| match e {
            // ssh-key is built with Ed25519 support only: other key types
            // (ECDSA) are unknown to it.
            ssh_key::Error::AlgorithmUnknown | ssh_key::Error::AlgorithmUnsupported { .. } => {
                PackageError::KeyNotEd25519 {
                    path: path.to_path_buf(),
                    algorithm: "an unsupported type".to_string(),
                }
            }
            e => PackageError::KeyNotOpenssh {
                path: path.to_path_buf(),
                reason: if pem.starts_with(b"-----BEGIN OPENSSH PRIVATE KEY-----") {
                    format!("the key data is damaged: {e}")
                } else if pem.starts_with(b"-----BEGIN") {
                    "it is a PEM or PKCS#8 key".to_string()
                } else {
                    "no OpenSSH private key header".to_string()
                },
            },
        })?;
        if private.is_encrypted() {
            return Err(PackageError::KeyEncrypted {
                path: path.to_path_buf(),
            });
        }
        let Some(keypair) = private.key_data().ed25519() else {
            return Err(PackageError::KeyNotEd25519 {
                path: path.to_path_buf(),
                algorithm: private.algorithm().as_str().to_string(),
            });
        };
        let seed = Zeroizing::new(*keypair.private.as_ref());
        // ssh-key (without its ed25519 feature) does not check that the two
        // halves belong together; ring does.
        if Ed25519KeyPair::from_seed_and_public_key(&seed[..], keypair.public.as_ref()).is_err() {
            return Err(PackageError::KeyMismatch {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            seed,
            public: private.public_key().clone(),
        })
    }

    /// An armored `-----BEGIN SSH SIGNATURE-----` SSHSIG over `message` in
    /// `namespace`, hash SHA-512, accepted by `ssh-keygen -Y verify`.
    ///
    /// # Panics
    /// If `namespace` is empty, which SSHSIG forbids; callers pass a constant
    /// such as [`super::MANIFEST_NAMESPACE`].
    pub fn sign_sshsig(&self, message: &[u8], namespace: &str) -> String {
        assert!(!namespace.is_empty(), "an SSHSIG namespace cannot be empty");
        let signed_data = sshsig_signed_data(namespace, SshsigHash::Sha512, message);
        let signature = self.keypair().sign(&signed_data);
        // An Ed25519 signature is always 64 bytes, which is what
        // `Signature::new` checks for this algorithm.
        let signature = Signature::new(Algorithm::Ed25519, signature.as_ref().to_vec())
            .expect("ring returns 64-byte Ed25519 signatures");
        // `SshSig::new` fails only on an empty namespace, refused above.
        let sshsig = SshSig::new(
            self.public.key_data().clone(),
            namespace,
            HashAlg::Sha512,
            signature,
        )
        .expect("namespace is not empty");
        // Encoding fails only if lengths overflow, impossible for a few
        // hundred bytes.
        sshsig
            .to_pem(LineEnding::LF)
            .expect("an SSHSIG of a few hundred bytes always encodes")
    }

    /// The public key as an OpenSSH line: `ssh-ed25519 AAAA… comment`.
    pub fn public_key_openssh(&self) -> String {
        // Encoding a 32-byte Ed25519 public key and a comment cannot fail.
        self.public
            .to_openssh()
            .expect("an Ed25519 public key always encodes")
    }

    /// The key's `SHA256:…` fingerprint, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.public.fingerprint(HashAlg::Sha256).to_string()
    }

    fn keypair(&self) -> Ed25519KeyPair {
        let public = self.public.key_data().ed25519().map(|k| k.as_ref());
        // `load` only builds a SigningKey from an Ed25519 key whose halves
        // ring accepted together, so both lookups succeed.
        Ed25519KeyPair::from_seed_and_public_key(
            &self.seed[..],
            public.expect("SigningKey holds an Ed25519 public key"),
        )
        .expect("checked by SigningKey::load")
    }
}

impl SigningKey {
    /// The public half, which checks what this key signed.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            public: self.public.clone(),
        }
    }
}

/// An Ed25519 public key that signatures are checked against: the public
/// half of the release signing key, from the key itself or from its `.pub`
/// file (for an auditor who holds no secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey {
    public: PublicKey,
}

impl VerifyingKey {
    /// Reads an OpenSSH public key file (`ssh-ed25519 AAAA… comment`).
    pub fn from_openssh_file(path: &Path) -> Result<Self, PackageError> {
        let text = std::fs::read_to_string(path).map_err(|source| PackageError::KeyRead {
            path: path.to_path_buf(),
            source,
        })?;
        let public =
            PublicKey::from_openssh(text.trim()).map_err(|e| PackageError::KeyNotOpenssh {
                path: path.to_path_buf(),
                reason: format!("not an OpenSSH public key line: {e}"),
            })?;
        if public.key_data().ed25519().is_none() {
            return Err(PackageError::KeyNotEd25519 {
                path: path.to_path_buf(),
                algorithm: public.algorithm().as_str().to_string(),
            });
        }
        Ok(Self { public })
    }

    /// The key's `SHA256:…` fingerprint, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.public.fingerprint(HashAlg::Sha256).to_string()
    }

    /// Checks that `armored` is an SSHSIG by this key over `message` in
    /// `namespace`. The error says what is wrong, for a message.
    pub fn check_sshsig(
        &self,
        message: &[u8],
        armored: &[u8],
        namespace: &str,
    ) -> Result<(), String> {
        let sshsig =
            SshSig::from_pem(armored).map_err(|e| format!("not an OpenSSH signature: {e}"))?;
        if sshsig.namespace() == namespace && sshsig.public_key() != self.public.key_data() {
            return Err(format!(
                "made by another key, {}",
                sshsig.public_key().fingerprint(HashAlg::Sha256)
            ));
        }
        check_sshsig(&sshsig, message, namespace).map_err(|problem| problem.to_string())
    }
}

/// Why an SSHSIG does not vouch for a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SshsigProblem {
    #[error("made for namespace \"{found}\", not \"{expected}\"")]
    WrongNamespace { found: String, expected: String },
    #[error("its reserved field is not empty")]
    ReservedNotEmpty,
    #[error("an unsupported hash, {0}")]
    UnsupportedHash(String),
    #[error("not Ed25519 but {0}")]
    UnsupportedAlgorithm(String),
    #[error("the signature does not match the signed content")]
    Mismatch,
}

/// Checks that `sshsig` is an Ed25519 SSHSIG in `namespace` over `message`
/// by the key inside it (whether that key is trusted is the caller's
/// question): the one check behind `dars verify` and the ledger's.
pub(crate) fn check_sshsig(
    sshsig: &SshSig,
    message: &[u8],
    namespace: &str,
) -> Result<(), SshsigProblem> {
    if sshsig.namespace() != namespace {
        return Err(SshsigProblem::WrongNamespace {
            found: sshsig.namespace().to_string(),
            expected: namespace.to_string(),
        });
    }
    if !sshsig.reserved().is_empty() {
        return Err(SshsigProblem::ReservedNotEmpty);
    }
    let hash = match sshsig.hash_alg() {
        HashAlg::Sha256 => SshsigHash::Sha256,
        HashAlg::Sha512 => SshsigHash::Sha512,
        other => return Err(SshsigProblem::UnsupportedHash(other.as_str().to_string())),
    };
    let (Some(public), Algorithm::Ed25519) = (sshsig.public_key().ed25519(), sshsig.algorithm())
    else {
        return Err(SshsigProblem::UnsupportedAlgorithm(
            sshsig.algorithm().as_str().to_string(),
        ));
    };
    let signed_data = sshsig_signed_data(namespace, hash, message);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public.as_ref())
        .verify(&signed_data, sshsig.signature_bytes())
        .map_err(|_| SshsigProblem::Mismatch)
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.fingerprint())
            .field("secret", &"[redacted]")
            .finish()
    }
}

#[cfg(test)]
impl SigningKey {
    /// A key from a fixed seed, for tests that need a second, untrusted key.
    pub(crate) fn from_seed_for_tests(seed: [u8; 32], comment: &str) -> Self {
        use ring::signature::KeyPair;
        use ssh_key::public::{Ed25519PublicKey, KeyData};
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        Self {
            seed: Zeroizing::new(seed),
            public: PublicKey::new(KeyData::Ed25519(Ed25519PublicKey(public)), comment),
        }
    }
}
