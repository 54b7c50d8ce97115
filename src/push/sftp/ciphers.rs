//! Cipher policy: which ciphers and MACs dars asks an SFTP server for, in
//! what order, and how the list is handed to libssh2.
//!
//! Only AEAD modes and AES-CTR with SHA-2 HMACs are offered: no CBC, no
//! arcfour, no SHA-1. The order follows the CPU: AES-256-GCM first where
//! the CPU has AES instructions, ChaCha20-Poly1305 first where it has not.
//! Compression stays off (see [`super::session`]): the files are age
//! ciphertext.

use ssh2::{MethodType, Session};

/// Ciphers in order of preference, with AES hardware; each one is used only
/// if this libssh2 build has it. AES-256-GCM first: with AES-NI and
/// carry-less multiply OpenSSL runs it in constant time at a fraction of
/// ChaCha20-Poly1305's cost, on our side and, above all, on the server's,
/// which is what bounds an upload (benches/sftp_upload.rs, 1 GiB to
/// OpenSSH's sshd on loopback: 342 MB/s against 226 MB/s with
/// chacha20-poly1305). libssh2 feeds OpenSSL whole runs of blocks through
/// the patch in vendor/libssh2-sys; unpatched it went 16 bytes per call,
/// and AES-GCM cost 5.8 client CPU s/GiB rather than 1.7. AEAD modes
/// before CTR.
const CIPHERS_AES_HARDWARE: &[&str] = &[
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
];

/// Without AES hardware, OpenSSH's own first choice leads: ChaCha20 is
/// fast and constant-time in software, where AES is neither.
const CIPHERS_SOFTWARE: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
];

/// MACs, for the CTR ciphers (AEAD ciphers carry their own tag):
/// encrypt-then-MAC first.
const MACS: &[&str] = &[
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
];

/// Whether this CPU has AES and carry-less multiply instructions, which
/// OpenSSL uses for AES-GCM.
fn aes_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

fn ciphers() -> &'static [&'static str] {
    if aes_hardware() {
        CIPHERS_AES_HARDWARE
    } else {
        CIPHERS_SOFTWARE
    }
}

/// Sets the cipher and MAC preferences, both directions, before the
/// handshake.
pub(super) fn apply(session: &Session) {
    prefer(session, MethodType::CryptCs, ciphers());
    prefer(session, MethodType::CryptSc, ciphers());
    prefer(session, MethodType::MacCs, MACS);
    prefer(session, MethodType::MacSc, MACS);
}

/// Sets a preference list to those of `wanted` this libssh2 supports;
/// false if it supports none of them (libssh2's defaults then stand).
pub(super) fn prefer(session: &Session, method: MethodType, wanted: &[&str]) -> bool {
    let Ok(supported) = session.supported_algs(method) else {
        return false;
    };
    let list: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| supported.contains(w))
        .collect();
    !list.is_empty() && session.method_pref(method, &list.join(",")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_gcm_leads_only_with_aes_hardware_and_both_lists_offer_the_same() {
        let first = ciphers()[0];
        assert_eq!(first == "aes256-gcm@openssh.com", aes_hardware(), "{first}");
        let mut a = CIPHERS_AES_HARDWARE.to_vec();
        let mut b = CIPHERS_SOFTWARE.to_vec();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        assert!(a
            .iter()
            .all(|c| !c.contains("cbc") && !c.contains("arcfour")));
    }
}
