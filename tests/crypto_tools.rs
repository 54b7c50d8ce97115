//! The release crypto against the real tools a recipient uses: `age` must
//! decrypt what `dars::package::seal` wrote, `ssh-keygen -Y verify` must
//! accept what `SigningKey::sign_sshsig` signed (and `dars verify` what
//! `ssh-keygen -Y sign` signed), and `verify_release` and the ledger must
//! catch each kind of damage, naming the file or line.
//!
//! Needs `age` and `ssh-keygen` on PATH (`apt-get install age openssh-client`).
//! The committed keys in `testdata/keys/` are TEST-ONLY; git does not keep
//! mode 0600, so each test copies them into its own temporary folder and
//! sets the mode there.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use dars::ledger::{Ledger, LedgerError, LedgerEvent};
use dars::package::{
    seal, Manifest, ManifestFile, PackageError, Recipients, SigningKey, MANIFEST_FILE,
    MANIFEST_NAMESPACE, SIGNATURE_FILE,
};
use dars::verify::{verify_release, VerifyError};

const SIGNER: &str = "releases@example.nhs.uk";
const AGE_IDENTITY: &str = "recipient_TEST-ONLY.agekey";
const AGE_RECIPIENT: &str = "recipient_TEST-ONLY.agepub";
const SIGNING_KEY: &str = "release_signing_ed25519";

fn committed_key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/keys")
        .join(name)
}

/// A temporary folder holding copies of the committed TEST-ONLY keys, private
/// keys at mode 0600.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, mode) in [
            (AGE_IDENTITY, 0o600),
            (AGE_RECIPIENT, 0o644),
            (SIGNING_KEY, 0o600),
            ("release_signing_ed25519.pub", 0o644),
            ("allowed_signers", 0o644),
        ] {
            let path = dir.path().join(name);
            fs::copy(committed_key(name), &path).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn recipient_line(&self) -> String {
        fs::read_to_string(self.path(AGE_RECIPIENT))
            .unwrap()
            .trim()
            .to_string()
    }

    fn recipients(&self) -> Recipients {
        Recipients::parse(&[self.recipient_line()]).unwrap()
    }

    fn signing_key(&self) -> SigningKey {
        SigningKey::load(&self.path(SIGNING_KEY)).unwrap()
    }
}

fn run(program: &str, args: &[&str], stdin: Option<&Path>) -> Output {
    let mut command = Command::new(program);
    command.args(args);
    if let Some(path) = stdin {
        command.stdin(Stdio::from(fs::File::open(path).unwrap()));
    }
    command.output().unwrap_or_else(|e| {
        panic!("cannot run `{program}` ({e}): install it with `apt-get install age openssh-client`")
    })
}

fn age_decrypt(identity: &Path, file: &Path) -> Vec<u8> {
    let out = run(
        "age",
        &[
            "-d",
            "-i",
            identity.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A CSV-like plaintext of `rows` lines.
fn table(rows: usize) -> Vec<u8> {
    (0..rows)
        .flat_map(|row| format!("S{row:06},2024-0{},E11.{}\n", row % 9 + 1, row % 10).into_bytes())
        .collect()
}

fn seal_table(path: &Path, recipients: &Recipients, plaintext: &[u8]) -> ManifestFile {
    let sealed = seal(path, recipients, |out| {
        // Uneven writes, as a CSV or Parquet writer makes them.
        for piece in plaintext.chunks(10_007) {
            out.write_all(piece)?;
        }
        Ok(())
    })
    .unwrap();
    ManifestFile::from_sealed(
        &sealed,
        plaintext.iter().filter(|&&b| b == b'\n').count() as u64,
        "records",
    )
}

/// A release in its folder, `ROOT/REFERENCE/RUN_ID`, as delivered (dars
/// verify refuses one anywhere else).
struct Release {
    _root: tempfile::TempDir,
    dir: PathBuf,
}

impl Release {
    fn path(&self) -> &Path {
        &self.dir
    }
}

/// A complete release: two sealed files, the manifest, the signature.
fn build_release(keys: &Keys, key: &SigningKey) -> Release {
    let root = tempfile::tempdir().unwrap();
    let dir = Release {
        dir: root
            .path()
            .join("DARS-NIC-000001-DEMO1-01/20260301T101500Z"),
        _root: root,
    };
    fs::create_dir_all(dir.path()).unwrap();
    let files = vec![
        seal_table(
            &dir.path().join("episodes.csv.age"),
            &keys.recipients(),
            &table(5_000),
        ),
        seal_table(
            &dir.path().join("admissions_by_region.csv.age"),
            &keys.recipients(),
            &table(40),
        ),
    ];
    let manifest = Manifest {
        agreement: "DARS-NIC-000001-DEMO1-01".to_string(),
        run_id: "20260301T101500Z".to_string(),
        created_at: "2026-03-01T10:15:00Z".to_string(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        ledger_head: None,
        objections: None,
        reused_linkage: None,
        files,
        counts: BTreeMap::from([("hes_region_sex.cells".to_string(), serde_json::json!(40))]),
    };
    manifest.sign(key).write_to(dir.path()).unwrap();
    dir
}

fn ssh_keygen_verify(keys: &Keys, release: &Path) -> Output {
    run(
        "ssh-keygen",
        &[
            "-Y",
            "verify",
            "-f",
            keys.path("allowed_signers").to_str().unwrap(),
            "-I",
            SIGNER,
            "-n",
            MANIFEST_NAMESPACE,
            "-s",
            release.join(SIGNATURE_FILE).to_str().unwrap(),
        ],
        Some(&release.join(MANIFEST_FILE)),
    )
}

/// A fresh unencrypted Ed25519 key made by ssh-keygen in `dir`.
fn ssh_keygen_ed25519(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "TEST-ONLY",
            "-f",
            path.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn age_recovers_the_plaintext_of_seal() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("episodes.csv.age");
    let plaintext = table(20_000); // several 64 KiB age chunks
    seal_table(&path, &keys.recipients(), &plaintext);
    assert_eq!(age_decrypt(&keys.path(AGE_IDENTITY), &path), plaintext);
}

#[test]
fn age_decrypts_for_an_ssh_ed25519_recipient_too() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let ssh_key = ssh_keygen_ed25519(dir.path(), "recipient_ed25519");
    let ssh_public = fs::read_to_string(ssh_key.with_extension("pub")).unwrap();
    let recipients =
        Recipients::parse(&[keys.recipient_line(), ssh_public.trim().to_string()]).unwrap();
    assert_eq!(recipients.len(), 2);

    let path = dir.path().join("out.csv.age");
    let plaintext = table(300);
    seal_table(&path, &recipients, &plaintext);
    assert_eq!(
        age_decrypt(&ssh_key, &path),
        plaintext,
        "ssh-ed25519 recipient"
    );
    assert_eq!(
        age_decrypt(&keys.path(AGE_IDENTITY), &path),
        plaintext,
        "age recipient"
    );
}

#[test]
fn ssh_keygen_accepts_sign_sshsig_and_rejects_a_tampered_manifest() {
    let keys = Keys::new();
    let release = build_release(&keys, &keys.signing_key());
    let out = ssh_keygen_verify(&keys, release.path());
    assert!(
        out.status.success(),
        "ssh-keygen -Y verify refused: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Good \"dars-manifest\" signature"));

    let manifest = release.path().join(MANIFEST_FILE);
    let text = fs::read_to_string(&manifest).unwrap();
    let tampered = text.replacen("40", "41", 1);
    assert_ne!(tampered, text, "the tamper must change the manifest");
    fs::write(&manifest, tampered).unwrap();
    let out = ssh_keygen_verify(&keys, release.path());
    assert!(
        !out.status.success(),
        "ssh-keygen accepted a tampered manifest"
    );
}

#[test]
fn public_key_line_matches_ssh_keygen() {
    let keys = Keys::new();
    let out = run(
        "ssh-keygen",
        &["-y", "-f", keys.path(SIGNING_KEY).to_str().unwrap()],
        None,
    );
    assert!(out.status.success());
    let from_tool = String::from_utf8(out.stdout).unwrap();
    assert_eq!(keys.signing_key().public_key_openssh(), from_tool.trim());
}

#[test]
fn verify_release_accepts_a_signature_made_by_ssh_keygen() {
    let keys = Keys::new();
    let release = build_release(&keys, &keys.signing_key());
    let signature = release.path().join(SIGNATURE_FILE);
    fs::remove_file(&signature).unwrap();
    let out = run(
        "ssh-keygen",
        &[
            "-Y",
            "sign",
            "-f",
            keys.path(SIGNING_KEY).to_str().unwrap(),
            "-n",
            MANIFEST_NAMESPACE,
            release.path().join(MANIFEST_FILE).to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(signature.exists());
    let verified = verify_release(release.path(), &keys.path("allowed_signers")).unwrap();
    assert_eq!(verified.signer, SIGNER);
}

#[test]
fn a_good_release_verifies_and_decrypts() {
    let keys = Keys::new();
    let release = build_release(&keys, &keys.signing_key());
    let verified = verify_release(release.path(), &keys.path("allowed_signers")).unwrap();
    assert_eq!(verified.signer, SIGNER);
    assert_eq!(verified.files_checked, 2);
    assert_eq!(verified.manifest.agreement, "DARS-NIC-000001-DEMO1-01");
    let episodes = age_decrypt(
        &keys.path(AGE_IDENTITY),
        &release.path().join("episodes.csv.age"),
    );
    assert_eq!(episodes, table(5_000));
}

/// Builds a good release, damages it, and returns the verification error.
fn verify_after(damage: impl FnOnce(&Path)) -> VerifyError {
    let keys = Keys::new();
    let release = build_release(&keys, &keys.signing_key());
    damage(release.path());
    verify_release(release.path(), &keys.path("allowed_signers")).unwrap_err()
}

#[test]
fn one_flipped_byte_is_a_hash_mismatch_naming_the_file() {
    for name in ["episodes.csv.age", "admissions_by_region.csv.age"] {
        let err = verify_after(|dir| {
            let path = dir.join(name);
            let mut bytes = fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x80;
            fs::write(&path, bytes).unwrap();
        });
        assert!(matches!(err, VerifyError::HashMismatch { .. }), "{err:?}");
        assert_eq!(err.file_name(), Some(name));
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let err = verify_after(|dir| fs::remove_file(dir.join("episodes.csv.age")).unwrap());
    assert!(matches!(err, VerifyError::MissingFile { .. }), "{err:?}");
    assert!(err.to_string().contains("episodes.csv.age"), "{err}");
}

#[test]
fn an_extra_file_is_named() {
    let err = verify_after(|dir| fs::write(dir.join("readme.txt"), "hi").unwrap());
    assert!(matches!(err, VerifyError::ExtraFile { .. }), "{err:?}");
    assert!(err.to_string().contains("readme.txt"), "{err}");
}

#[test]
fn a_truncated_file_is_named() {
    let err = verify_after(|dir| {
        let path = dir.join("admissions_by_region.csv.age");
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert!(matches!(err, VerifyError::SizeMismatch { .. }), "{err:?}");
    assert!(
        err.to_string().contains("admissions_by_region.csv.age"),
        "{err}"
    );
}

#[test]
fn a_bad_signature_is_refused() {
    let err = verify_after(|dir| {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("DEMO1", "DEMO2")).unwrap();
    });
    assert!(matches!(err, VerifyError::BadSignature), "{err:?}");
    assert!(err.to_string().contains(SIGNATURE_FILE), "{err}");
}

#[test]
fn a_key_not_in_allowed_signers_is_refused() {
    let keys = Keys::new();
    let other = tempfile::tempdir().unwrap();
    let stranger = SigningKey::load(&ssh_keygen_ed25519(other.path(), "stranger")).unwrap();
    let release = build_release(&keys, &stranger);
    let err = verify_release(release.path(), &keys.path("allowed_signers")).unwrap_err();
    assert!(
        matches!(err, VerifyError::NoMatchingSigner { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&stranger.fingerprint()), "{err}");
    // ssh-keygen agrees.
    assert!(!ssh_keygen_verify(&keys, release.path()).status.success());
}

#[test]
fn a_signing_key_readable_by_others_is_refused() {
    let keys = Keys::new();
    let path = keys.path(SIGNING_KEY);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = SigningKey::load(&path).unwrap_err();
    assert!(
        matches!(err, PackageError::KeyPermissions { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("chmod 600 {}", path.display())),
        "{err}"
    );
}

fn ledger_of(n: usize) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let key = Keys::new().signing_key();
    let ledger = Ledger::open(&dir.path().join("ledger.jsonl"), key.verifying_key());
    for i in 0..n {
        ledger
            .append(
                LedgerEvent::Release {
                    agreement: "DARS-NIC-000001-DEMO1-01".to_string(),
                    run_id: format!("run-{i}"),
                    destination: "file:///outbox".to_string(),
                    manifest_sha256: "0f".repeat(32),
                    files: vec![],
                    forced: false,
                    register: None,
                    linkage: None,
                },
                &key,
            )
            .unwrap();
    }
    (dir, ledger)
}

fn edit_lines(ledger: &Ledger, edit: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = fs::read_to_string(ledger.path())
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect();
    edit(&mut lines);
    fs::write(ledger.path(), lines.concat()).unwrap();
}

#[test]
fn the_ledger_verifies_and_its_chain_checks_out_with_sha256sum() {
    let (_dir, ledger) = ledger_of(3);
    assert_eq!(ledger.verify().unwrap().entries.len(), 3);
    // An auditor's check with stock tools, as the module documents it.
    let entries = ledger.entries().unwrap();
    let line_2 = fs::read_to_string(ledger.path())
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string()
        + "\n";
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(line_2.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let digest = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        digest.split_whitespace().next().unwrap(),
        entries[2].prev_sha256
    );
}

#[test]
fn the_ledger_names_an_edited_line() {
    let (_dir, ledger) = ledger_of(4);
    edit_lines(&ledger, |lines| {
        lines[1] = lines[1].replace("run-1", "run-X")
    });
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::EditedLine { line: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 2 "), "{err}");
}

#[test]
fn the_ledger_names_a_deleted_line() {
    let (_dir, ledger) = ledger_of(4);
    edit_lines(&ledger, |lines| {
        lines.remove(1);
    });
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::DeletedLines { line: 2, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn the_ledger_names_a_swapped_pair() {
    let (_dir, ledger) = ledger_of(4);
    edit_lines(&ledger, |lines| lines.swap(2, 3));
    let err = ledger.verify().unwrap_err();
    assert!(
        matches!(err, LedgerError::ReorderedLine { line: 3, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 3 "), "{err}");
}

/// The README's check of one ledger line with stock tools: the line
/// without its `sig` field is the signed message, the field is the SSHSIG
/// with its armor taken off.
#[test]
fn issue_12_a_ledger_line_signature_checks_out_with_ssh_keygen() {
    let keys = Keys::new();
    let (dir, ledger) = ledger_of(2);
    let allowed = dir.path().join("ledger_signers");
    fs::write(
        &allowed,
        format!(
            "{SIGNER} namespaces=\"dars-ledger\" {}",
            fs::read_to_string(keys.path("release_signing_ed25519.pub")).unwrap()
        ),
    )
    .unwrap();
    let script = format!(
        r#"set -eu
line=$(sed -n "$N"p {ledger})
printf '%s\n' "$line" | sed 's/,"sig":"[^"]*"}}$/}}/' > body
{{ echo '-----BEGIN SSH SIGNATURE-----'
  printf '%s\n' "$line" | sed 's/.*,"sig":"\([^"]*\)"}}$/\1/' | fold -w 70
  echo '-----END SSH SIGNATURE-----'; }} > body.sig
ssh-keygen -Y verify -f {allowed} -I {SIGNER} -n dars-ledger -s body.sig < body
"#,
        ledger = ledger.path().display(),
        allowed = allowed.display(),
    );
    for n in ["1", "2"] {
        let out = Command::new("bash")
            .args(["-c", &script])
            .env("N", n)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "line {n}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The same check fails once the line is edited.
    edit_lines(&ledger, |lines| {
        lines[1] = lines[1].replace("run-1", "run-X")
    });
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("N", "2")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
}
