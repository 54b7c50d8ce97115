//! Unit tests for recipients, sealing, the manifest and the signing key.
//! The checks against the real `age` and `ssh-keygen` binaries are in
//! `tests/crypto_tools.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::*;
use crate::workdir::tmp_name;

/// `testdata/keys/NAME`.
pub(crate) fn key_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/keys")
        .join(name)
}

/// Copies a committed key into `dir` with the given mode (git does not keep 0600).
pub(crate) fn copy_key(name: &str, dir: &Path, mode: u32) -> PathBuf {
    let path = dir.join(name);
    fs::copy(key_file(name), &path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// The TEST-ONLY release signing key.
pub(crate) fn test_signing_key() -> SigningKey {
    let dir = tempfile::tempdir().unwrap();
    SigningKey::load(&copy_key("release_signing_ed25519", dir.path(), 0o600)).unwrap()
}

/// The TEST-ONLY age recipient, as an agreement would list it.
pub(crate) fn test_recipients() -> Recipients {
    let line = fs::read_to_string(key_file("recipient_TEST-ONLY.agepub")).unwrap();
    Recipients::parse(&[line.trim().to_string()]).unwrap()
}

fn test_identity() -> age::x25519::Identity {
    let text = fs::read_to_string(key_file("recipient_TEST-ONLY.agekey")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    age::x25519::Identity::from_str(line).unwrap()
}

fn decrypt(bytes: &[u8], identity: &age::x25519::Identity) -> Vec<u8> {
    let decryptor = age::Decryptor::new(bytes).unwrap();
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .unwrap();
    let mut plaintext = Vec::new();
    reader.read_to_end(&mut plaintext).unwrap();
    plaintext
}

const SSH_RECIPIENT: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICFpVf/9LEu1DHt5MZ2uYl42GggVTqXUV4TjdmYuzDBY TEST-ONLY";

#[test]
fn recipients_parse_age_and_ssh_ed25519_keys() {
    let age_key = fs::read_to_string(key_file("recipient_TEST-ONLY.agepub")).unwrap();
    let recipients =
        Recipients::parse(&[format!("  {}  ", age_key.trim()), SSH_RECIPIENT.to_string()]).unwrap();
    assert_eq!(recipients.len(), 2);
    assert!(!recipients.is_empty());
    let keys = recipients.public_keys();
    assert_eq!(keys[0], age_key.trim());
    assert!(keys[1].starts_with("ssh-ed25519 AAAA"), "{keys:?}");
    assert!(!keys[1].contains("TEST-ONLY"), "comments are dropped");
}

#[test]
fn recipients_refuse_an_empty_list() {
    let err = Recipients::parse(&[]).unwrap_err();
    assert!(matches!(err, PackageError::NoRecipients));
    assert!(err.to_string().contains("[release].recipients"), "{err}");
}

#[test]
fn recipients_name_the_bad_key_by_index_and_never_echo_a_secret() {
    let secret = fs::read_to_string(key_file("recipient_TEST-ONLY.agekey")).unwrap();
    let secret = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    let good = SSH_RECIPIENT.to_string();
    let err = Recipients::parse(&[good.clone(), secret.clone()]).unwrap_err();
    assert!(matches!(
        err,
        PackageError::SecretKeyAsRecipient { index: 1 }
    ));
    let message = err.to_string();
    assert!(message.contains("recipients[1]"), "{message}");
    assert!(!message.contains(&secret[15..]), "secret leaked: {message}");
    assert!(!format!("{err:?}").contains(&secret[15..]));

    let pem = fs::read_to_string(key_file("fail_ecdsa_signing_key")).unwrap();
    let err = Recipients::parse(std::slice::from_ref(&pem)).unwrap_err();
    assert!(matches!(
        err,
        PackageError::SecretKeyAsRecipient { index: 0 }
    ));

    // A damaged age key: one character changed breaks its checksum.
    let age_key = fs::read_to_string(key_file("recipient_TEST-ONLY.agepub")).unwrap();
    let mut damaged = age_key.trim().to_string();
    let last = damaged.pop().unwrap();
    damaged.push(if last == 'q' { 'p' } else { 'q' });
    let err = Recipients::parse(&[good.clone(), good.clone(), damaged.clone()]).unwrap_err();
    assert!(matches!(
        err,
        PackageError::InvalidRecipient { index: 2, .. }
    ));
    assert!(!err.to_string().contains(&damaged));

    let err = Recipients::parse(&["hello".to_string()]).unwrap_err();
    assert!(matches!(
        err,
        PackageError::InvalidRecipient { index: 0, .. }
    ));
    assert!(
        err.to_string().contains("age1"),
        "says what is expected: {err}"
    );
}

#[test]
fn recipient_problems_lists_every_bad_key_with_its_index() {
    let good = SSH_RECIPIENT.to_string();
    let keys = [
        good.clone(),
        "nonsense".to_string(),
        good,
        "AGE-SECRET-KEY-1QQ".to_string(),
    ];
    let problems = Recipients::problems(&keys);
    assert_eq!(problems.len(), 2);
    assert!(matches!(
        problems[0],
        PackageError::InvalidRecipient { index: 1, .. }
    ));
    assert!(matches!(
        problems[1],
        PackageError::SecretKeyAsRecipient { index: 3 }
    ));
    assert!(Recipients::problems(&keys[..1]).is_empty());
    assert!(matches!(
        Recipients::problems(&[])[..],
        [PackageError::NoRecipients]
    ));
}

#[test]
fn recipients_refuse_key_types_other_than_ed25519() {
    let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDE7nIXTGNuaRBN9toI/wNALuQec8mvlt0iJ7o3OaD2UvoKHJ7S8rmIn4FiQDUed/Vac3OhUibei1k+TBmm16u2Rj3klgWZOIDgi8d4vXKI5N3YBhxr3jsQ+kz1c+iZ4z/tTtz306+4K46XViVMWwyyg9j82Jn41mOAy9vdeDIfQ5fLeaGqn5KwlT61GNkZ+ozWK/ZNlQIlNCcoXxhJULIs9XrtczWyVBAea1nlDo0WHODePxoJjmsNHrpQXn5mf9O83xs10qfTUjnRUt48jRmedFy4tcra3QGmSTQ3KZne+wXXSb0cIpXLGvZjQSPHgG1hc4r3uBpiSzvesGLv79XL alice@rust";
    let err = Recipients::parse(&[rsa.to_string()]).unwrap_err();
    assert!(
        matches!(
            err,
            PackageError::UnsupportedRecipient {
                index: 0,
                kind: "ssh-rsa"
            }
        ),
        "{err:?}"
    );
    let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHFliOyIZs1gxGF3fmDxFykQhE88wy6AKDGFBfn0R6ZuvRmENABZQa9+pj9hMki+LX0qDJbmHTiWDbYv/cmFt/Q=";
    let err = Recipients::parse(&[ecdsa.to_string()]).unwrap_err();
    assert!(matches!(
        err,
        PackageError::UnsupportedRecipient { kind: "ECDSA", .. }
    ));
}

#[test]
fn seal_encrypts_to_the_recipient_and_hashes_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("episodes.csv.age");
    // Larger than one 64 KiB age chunk, written in odd-sized pieces.
    let plaintext: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sealed = seal(&path, &test_recipients(), |out| {
        for piece in plaintext.chunks(7_919) {
            out.write_all(piece)?;
        }
        Ok(())
    })
    .unwrap();

    let ciphertext = fs::read(&path).unwrap();
    assert_eq!(sealed.name, "episodes.csv.age");
    assert_eq!(sealed.bytes, ciphertext.len() as u64);
    assert_eq!(sealed.sha256, sha256_hex(&ciphertext));
    assert_eq!(sealed.plaintext_sha256, sha256_hex(&plaintext));
    assert!(ciphertext.starts_with(b"age-encryption.org/v1\n"));
    assert!(
        !ciphertext.windows(64).any(|w| plaintext.starts_with(w)),
        "plaintext visible in the ciphertext"
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!tmp_name(&path).exists());
    assert_eq!(decrypt(&ciphertext, &test_identity()), plaintext);
}

#[test]
fn seal_of_an_empty_output_still_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.csv.age");
    let sealed = seal(&path, &test_recipients(), |_| Ok(())).unwrap();
    assert_eq!(sealed.plaintext_sha256, sha256_hex(b""));
    assert!(decrypt(&fs::read(&path).unwrap(), &test_identity()).is_empty());
}

#[test]
fn seal_leaves_nothing_behind_when_the_producer_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("episodes.parquet.age");
    let err = seal(&path, &test_recipients(), |out| {
        out.write_all(b"half a table")?;
        Err("the frame could not be collected".into())
    })
    .unwrap_err();
    assert!(matches!(err, PackageError::Produce { .. }));
    assert!(err.to_string().contains("episodes.parquet.age"), "{err}");
    assert!(err.to_string().contains("could not be collected"), "{err}");
    assert!(!path.exists());
    assert!(!tmp_name(&path).exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn seal_into_a_missing_folder_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/folder/x.age");
    let err = seal(&path, &test_recipients(), |_| Ok(())).unwrap_err();
    assert!(matches!(err, PackageError::Write { .. }));
    assert!(err.to_string().contains("no/such/folder"), "{err}");
}

fn sample_manifest() -> Manifest {
    let mut counts = BTreeMap::new();
    counts.insert("released_persons".to_string(), serde_json::json!(1235));
    counts.insert(
        "admissions_by_region".to_string(),
        serde_json::json!({"z": 1, "a": "*"}),
    );
    Manifest {
        agreement: "DARS-NIC-000001-DEMO1-01".to_string(),
        run_id: "20260301T101500Z-1a2b".to_string(),
        created_at: "2026-03-01T10:15:00Z".to_string(),
        tool_version: "0.1.0".to_string(),
        ledger_head: Some(LedgerHead {
            seq: 4,
            sha256: "cd".repeat(32),
        }),
        objections: None,
        reused_linkage: None,
        files: vec![ManifestFile {
            name: "episodes.parquet.age".to_string(),
            bytes: 1234,
            sha256: "ab".repeat(32),
            rows: 99,
            kind: "records".to_string(),
            period: None,
            window: None,
        }],
        counts,
    }
}

#[test]
fn manifest_json_is_stable_pretty_and_round_trips() {
    let manifest = sample_manifest();
    let json = manifest.to_json();
    assert_eq!(json, manifest.clone().to_json());
    assert!(json.ends_with(b"}\n"));
    let text = String::from_utf8(json.clone()).unwrap();
    let order: Vec<usize> = [
        "\"agreement\"",
        "\"run_id\"",
        "\"created_at\"",
        "\"tool_version\"",
        "\"ledger_head\"",
        "\"files\"",
        "\"counts\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.find("\"a\"").unwrap() < text.find("\"z\"").unwrap());
    assert!(
        text.contains("\n  \"agreement\": "),
        "two-space indent: {text}"
    );
    assert_eq!(Manifest::from_json(&json).unwrap(), manifest);
}

#[test]
fn manifest_with_unknown_fields_is_refused() {
    let mut value: serde_json::Value =
        serde_json::from_slice(&sample_manifest().to_json()).unwrap();
    value["files"][0]["executable"] = serde_json::json!(true);
    let err = Manifest::from_json(&serde_json::to_vec(&value).unwrap()).unwrap_err();
    assert!(err.to_string().contains("executable"), "{err}");
}

#[test]
fn manifest_file_from_sealed() {
    let sealed = SealedFile {
        name: "a.csv.age".to_string(),
        bytes: 10,
        sha256: "cd".repeat(32),
        plaintext_sha256: "ef".repeat(32),
    };
    let line = ManifestFile::from_sealed(&sealed, 3, "aggregate");
    assert_eq!(line.name, "a.csv.age");
    assert_eq!(line.bytes, 10);
    assert_eq!(line.sha256, sealed.sha256);
    assert_eq!((line.rows, line.kind.as_str()), (3, "aggregate"));
}

#[test]
fn signed_data_matches_the_sshsig_layout() {
    let message = b"manifest bytes\n";
    let ours = sshsig_signed_data(MANIFEST_NAMESPACE, SshsigHash::Sha512, message);
    let reference =
        ssh_key::SshSig::signed_data(MANIFEST_NAMESPACE, ssh_key::HashAlg::Sha512, message)
            .unwrap();
    assert_eq!(ours, reference);
    let ours = sshsig_signed_data("file", SshsigHash::Sha256, message);
    let reference =
        ssh_key::SshSig::signed_data("file", ssh_key::HashAlg::Sha256, message).unwrap();
    assert_eq!(ours, reference);
}

#[test]
fn signing_key_loads_and_signs_a_verifiable_sshsig() {
    let key = test_signing_key();
    let public = fs::read_to_string(key_file("release_signing_ed25519.pub")).unwrap();
    assert_eq!(key.public_key_openssh(), public.trim());
    assert!(key.fingerprint().starts_with("SHA256:"));

    let message = sample_manifest().to_json();
    let armored = key.sign_sshsig(&message, MANIFEST_NAMESPACE);
    assert!(
        armored.starts_with("-----BEGIN SSH SIGNATURE-----\n"),
        "{armored}"
    );
    assert!(armored.trim_end().ends_with("-----END SSH SIGNATURE-----"));

    let sshsig = ssh_key::SshSig::from_pem(&armored).unwrap();
    assert_eq!(sshsig.namespace(), MANIFEST_NAMESPACE);
    assert_eq!(sshsig.hash_alg(), ssh_key::HashAlg::Sha512);
    assert_eq!(
        sshsig.public_key(),
        ssh_key::PublicKey::from_openssh(public.trim())
            .unwrap()
            .key_data()
    );
    let public_bytes = sshsig.public_key().ed25519().unwrap().as_ref().to_vec();
    let signed = sshsig_signed_data(MANIFEST_NAMESPACE, SshsigHash::Sha512, &message);
    let verifier =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public_bytes);
    verifier
        .verify(&signed, sshsig.signature_bytes())
        .expect("signature verifies");
    let mut tampered = message.clone();
    tampered[10] ^= 1;
    let signed = sshsig_signed_data(MANIFEST_NAMESPACE, SshsigHash::Sha512, &tampered);
    assert!(verifier.verify(&signed, sshsig.signature_bytes()).is_err());
}

#[test]
fn signing_key_debug_is_redacted() {
    let key = test_signing_key();
    let debug = format!("{key:?}");
    assert!(debug.contains("[redacted]"), "{debug}");
    assert!(debug.contains("SHA256:"), "{debug}");
    let pem = fs::read_to_string(key_file("release_signing_ed25519")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!debug.contains(&body[..40]));
}

#[test]
fn signing_key_readable_by_others_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o644, 0o640, 0o604] {
        let path = copy_key("release_signing_ed25519", dir.path(), mode);
        let err = SigningKey::load(&path).unwrap_err();
        assert!(
            matches!(err, PackageError::KeyPermissions { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("chmod 600 {}", path.display())),
            "{message}"
        );
    }
    let path = copy_key("release_signing_ed25519", dir.path(), 0o400);
    SigningKey::load(&path).expect("0400 is private enough");
}

#[test]
fn signing_key_refuses_encrypted_other_types_public_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let err = SigningKey::load(&copy_key("fail_encrypted_ed25519", dir.path(), 0o600)).unwrap_err();
    assert!(matches!(err, PackageError::KeyEncrypted { .. }), "{err:?}");
    assert!(err.to_string().contains("passphrase"), "{err}");

    let err = SigningKey::load(&copy_key("fail_ecdsa_signing_key", dir.path(), 0o600)).unwrap_err();
    assert!(
        matches!(&err, PackageError::KeyNotEd25519 { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("ssh-keygen -t ed25519"), "{err}");

    let err =
        SigningKey::load(&copy_key("release_signing_ed25519.pub", dir.path(), 0o644)).unwrap_err();
    assert!(matches!(err, PackageError::KeyIsPublic { .. }), "{err:?}");

    let garbage = dir.path().join("garbage");
    fs::write(&garbage, "not a key").unwrap();
    fs::set_permissions(&garbage, fs::Permissions::from_mode(0o600)).unwrap();
    let err = SigningKey::load(&garbage).unwrap_err();
    assert!(matches!(err, PackageError::KeyNotOpenssh { .. }), "{err:?}");

    let err = SigningKey::load(&dir.path().join("absent")).unwrap_err();
    assert!(matches!(err, PackageError::KeyRead { .. }), "{err:?}");
    assert!(err.to_string().contains("absent"), "{err}");
}

#[test]
fn signed_manifest_writes_manifest_then_signature() {
    let dir = tempfile::tempdir().unwrap();
    let signed = sample_manifest().sign(&test_signing_key());
    assert_eq!(signed.json, sample_manifest().to_json());
    assert_eq!(signed.sha256, sha256_hex(&signed.json));
    signed.write_to(dir.path()).unwrap();
    assert_eq!(
        fs::read(dir.path().join(MANIFEST_FILE)).unwrap(),
        signed.json
    );
    assert_eq!(
        fs::read_to_string(dir.path().join(SIGNATURE_FILE)).unwrap(),
        signed.signature
    );
}

#[test]
fn issue_16_a_file_hashes_as_its_bytes_do_across_read_pieces() {
    // The FIPS 180-2 example: SHA-256("abc").
    assert_eq!(
        super::sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let dir = tempfile::tempdir().unwrap();
    // Larger than one 1 MiB read, and not a multiple of it.
    let bytes: Vec<u8> = (0..(3 << 20) / 2 + 7)
        .map(|i: u32| (i % 251) as u8)
        .collect();
    let path = dir.path().join("f.bin");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        super::sha256_file(&path).unwrap(),
        super::sha256_hex(&bytes)
    );
    let (hex, len) = super::sha256_reader(bytes.as_slice()).unwrap();
    assert_eq!((hex, len), (super::sha256_hex(&bytes), bytes.len() as u64));
    assert!(super::sha256_file(&dir.path().join("missing")).is_err());
}
