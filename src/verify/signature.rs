//! Checking `manifest.json.sig`: an armored SSHSIG, Ed25519, namespace
//! `dars-manifest`, over the exact bytes of `manifest.json`, by a key the
//! recipient's allowed_signers file trusts for that namespace now.
//!
//! The cryptographic check comes first and uses the key inside the
//! signature, so that a changed manifest is reported as such whoever signed
//! it; only then is that key looked up among the trusted ones.

use std::path::Path;

use chrono::Utc;
use ssh_key::{HashAlg, SshSig};

use super::allowed_signers::{self, AllowedSigner};
use super::VerifyError;
use crate::package::{check_sshsig, SshsigProblem, MANIFEST_NAMESPACE};

/// Returns the principals of the allowed_signers line that vouches for the
/// signature over `manifest`.
pub(super) fn check(
    manifest: &[u8],
    signature: &[u8],
    allowed_signers_path: &Path,
    allowed_signers_text: &str,
) -> Result<String, VerifyError> {
    let sshsig = SshSig::from_pem(signature).map_err(|e| VerifyError::MalformedSignature {
        reason: e.to_string(),
    })?;
    check_sshsig(&sshsig, manifest, MANIFEST_NAMESPACE).map_err(|problem| match problem {
        SshsigProblem::WrongNamespace { found, expected } => {
            VerifyError::WrongNamespace { found, expected }
        }
        SshsigProblem::ReservedNotEmpty => VerifyError::MalformedSignature {
            reason: "the reserved field is not empty".to_string(),
        },
        SshsigProblem::UnsupportedHash(hash) => VerifyError::UnsupportedSignature {
            algorithm: format!("hash {hash}"),
        },
        SshsigProblem::UnsupportedAlgorithm(algorithm) => {
            VerifyError::UnsupportedSignature { algorithm }
        }
        SshsigProblem::Mismatch => VerifyError::BadSignature,
    })?;

    let (signers, skipped) = allowed_signers::parse(allowed_signers_text);
    let matching: Vec<&AllowedSigner> = signers
        .iter()
        .filter(|s| &s.key == sshsig.public_key())
        .collect();
    let now = Utc::now();
    if let Some(signer) = matching
        .iter()
        .find(|s| s.allows_namespace(MANIFEST_NAMESPACE) && s.invalid_at(now).is_none())
    {
        return Ok(signer.principals.clone());
    }
    // The key is known but not usable: say exactly why.
    if let Some(signer) = matching
        .iter()
        .find(|s| !s.allows_namespace(MANIFEST_NAMESPACE))
    {
        return Err(VerifyError::NamespaceNotAllowed {
            principals: signer.principals.clone(),
            allowed_signers: allowed_signers_path.to_path_buf(),
            line: signer.line,
            namespace: MANIFEST_NAMESPACE.to_string(),
        });
    }
    if let Some((signer, reason)) = matching
        .iter()
        .find_map(|s| s.invalid_at(now).map(|reason| (s, reason)))
    {
        return Err(VerifyError::SignerNotValidNow {
            principals: signer.principals.clone(),
            allowed_signers: allowed_signers_path.to_path_buf(),
            line: signer.line,
            reason,
        });
    }
    Err(VerifyError::NoMatchingSigner {
        fingerprint: sshsig.public_key().fingerprint(HashAlg::Sha256).to_string(),
        allowed_signers: allowed_signers_path.to_path_buf(),
        skipped: skipped
            .iter()
            .map(|s| format!(" (line {} skipped: {})", s.line, s.reason))
            .collect(),
    })
}
