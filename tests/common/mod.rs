//! Shared set-up for end-to-end tests (xsv's `tests/workdir.rs`): each test
//! gets its own temporary folder with synthetic site data made by the real
//! `dars synth`, a site config, an agreement and a local destination, and
//! runs the real binary in it.
#![allow(dead_code)]

pub mod release;
pub mod sshd;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const SIGNER: &str = "releases@example.nhs.uk";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    /// A folder with synthetic data (`data/`), TEST-ONLY keys (`keys/`,
    /// private keys chmod 600 as git cannot keep the mode), a site config
    /// (`site.toml`) and an outbox.
    pub fn new(people: usize, cohort: usize, episodes: usize, seed: u64) -> Self {
        let w = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = w.run(&[
            "synth",
            "--out",
            "data",
            "--people",
            &people.to_string(),
            "--cohort",
            &cohort.to_string(),
            "--episodes",
            &episodes.to_string(),
            "--seed",
            &seed.to_string(),
        ]);
        assert!(out.status.success(), "synth failed: {}", stderr(&out));
        fs::create_dir_all(w.path("keys")).unwrap();
        for f in [
            "recipient_TEST-ONLY.agekey",
            "recipient_TEST-ONLY.agepub",
            "release_signing_ed25519",
            "release_signing_ed25519.pub",
            "allowed_signers",
        ] {
            fs::copy(repo().join("testdata/keys").join(f), w.path("keys").join(f)).unwrap();
        }
        for f in ["recipient_TEST-ONLY.agekey", "release_signing_ed25519"] {
            fs::set_permissions(w.path("keys").join(f), fs::Permissions::from_mode(0o600)).unwrap();
        }
        fs::create_dir_all(w.path("outbox")).unwrap();
        w.write(
            "site.toml",
            r#"[sources]
demographics = "data/site/demographics.parquet"
objections = "data/site/objections.parquet"
[datasets.hes_apc]
path = "data/site/hes_apc.parquet"
key = "person_id"
[keys]
signing_key = "keys/release_signing_ed25519"
signer = "releases@example.nhs.uk"
[work]
dir = "work"
"#,
        );
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(p, text).unwrap();
    }

    pub fn recipient(&self) -> String {
        let text = fs::read_to_string(self.path("keys/recipient_TEST-ONLY.agepub")).unwrap();
        text.split_whitespace()
            .find(|w| w.starts_with("age1"))
            .unwrap()
            .to_string()
    }

    /// The example agreement, with `end` and extra TOML as given.
    pub fn agreement(&self, name: &str, end: &str, extra_release: &str) -> PathBuf {
        let text = self.agreement_text(end, extra_release);
        self.write(name, &text);
        self.path(name)
    }

    /// The example agreement's text, for paths relative to the work folder.
    pub fn agreement_text(&self, end: &str, extra_release: &str) -> String {
        format!(
            r#"[agreement]
reference = "DARS-NIC-000001-DEMO1-01"
organisation = "Example University"
start = 2020-01-01
end = {end}
legal_basis = "section-251"

[cohort]
path = "data/cohort.csv"
validation_fields = ["nhs_number", "date_of_birth", "gender", "postcode"]

[objections]
apply = ["type1", "ndoo"]

[[outputs]]
name = "episodes"
kind = "records"
dataset = "hes_apc"
fields = ["admission_date:month", "diagnosis_primary", "age_at_admission:band5", "region"]

[[outputs]]
name = "admissions_by_region"
kind = "aggregate"
dataset = "hes_apc"
group_by = ["region", "sex"]
count = "persons"
totals = true
suppression = "hes"

[release]
recipients = ["{}"]
destination = "file://outbox"
{extra_release}
"#,
            self.recipient()
        )
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dars"));
        c.current_dir(self.dir.path())
            .arg("--site")
            .arg(self.path("site.toml"))
            .env_remove("DARS_TODAY");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dars"));
        c.current_dir(self.dir.path()).args(args);
        c.output().unwrap()
    }

    pub fn dars(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs dars as if today were `today` (YYYY-MM-DD).
    pub fn dars_on(&self, today: &str, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .env("DARS_TODAY", today)
            .output()
            .unwrap()
    }

    /// Runs a Python script in the work folder (pyarrow is installed by
    /// `.ci/run`): for data written as other tools write it.
    pub fn python(&self, script: &str) {
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .current_dir(self.dir.path())
            .output()
            .expect("python3 with pyarrow is installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "python: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
    }

    /// A released file decrypted by the real `age` command with the TEST-ONLY
    /// recipient key.
    pub fn age_decrypt(&self, file: &Path) -> Vec<u8> {
        let out = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(self.path("keys/recipient_TEST-ONLY.agekey"))
            .arg(file)
            .output()
            .expect("the age command is installed (.ci/run installs it)");
        assert!(out.status.success(), "age -d: {}", stderr(&out));
        out.stdout
    }

    /// Every file under the outbox, relative paths.
    pub fn outbox_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.path("outbox"), &mut out);
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A column's values as text (a null as ""), for comparing released
/// frames.
pub fn strings(df: &polars::prelude::DataFrame, column: &str) -> Vec<String> {
    df.column(column)
        .unwrap()
        .cast(&polars::prelude::DataType::String)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or("").to_string())
        .collect()
}

/// Reads a CSV file into header + rows.
pub fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}
