//! The site config (`config/site.toml`): where the custodian's master
//! person index, objections register, datasets, signing key and work
//! directory live. One per installation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config_file::{read_toml, resolve, section, ConfigError, Problem, Severity};

#[derive(Debug, Clone, Deserialize)]
struct SourcesFile {
    demographics: PathBuf,
    objections: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
struct DatasetFile {
    path: PathBuf,
    key: String,
    #[serde(default)]
    identifiers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct KeysFile {
    signing_key: PathBuf,
    signer: String,
}

#[derive(Debug, Clone, Deserialize)]
struct WorkFile {
    dir: PathBuf,
}

/// A dataset the site can extract from: a Parquet or CSV file, a directory
/// of them, or a glob; `key` joins to `demographics.person_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetSource {
    pub path: PathBuf,
    pub key: String,
    /// Columns the site declares as direct identifiers, beside those dars
    /// recognises by name and content (`identifiers = ["nhs_no", "dob"]`):
    /// refused in clear unless the agreement is identifiable.
    pub identifiers: Vec<String>,
}

/// The loaded site config, with every path resolved.
#[derive(Debug, Clone)]
pub struct Site {
    pub file: PathBuf,
    pub demographics: PathBuf,
    pub objections: PathBuf,
    pub datasets: BTreeMap<String, DatasetSource>,
    pub signing_key: PathBuf,
    pub signer: String,
    pub work_dir: PathBuf,
}

const SECTIONS: [&str; 4] = ["sources", "datasets", "keys", "work"];

impl Site {
    /// Loads and checks the site config; every problem at once on failure.
    pub fn load(path: &Path) -> Result<Site, ConfigError> {
        let (site, problems) = Self::check(path);
        match site {
            Some(site) if !problems.iter().any(|p| p.severity == Severity::Error) => Ok(site),
            _ => Err(ConfigError { problems }),
        }
    }

    /// Every problem in the file, and the site when it could be built.
    /// Reads no data: only the existence of the paths is checked.
    pub fn check(path: &Path) -> (Option<Site>, Vec<Problem>) {
        let mut problems = Vec::new();
        let table = match read_toml(path) {
            Ok(t) => t,
            Err(p) => return (None, vec![p]),
        };
        let base = path.parent().unwrap_or(Path::new("."));
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                problems.push(Problem::error(
                    path,
                    key.clone(),
                    "unknown section",
                    format!(
                        "remove it; a site config has only [{}]",
                        SECTIONS.join("], [")
                    ),
                ));
            }
        }
        let mut need = |name: &str| -> Option<toml::Value> {
            let v = table.get(name).cloned();
            if v.is_none() {
                problems.push(Problem::error(
                    path,
                    name,
                    "missing section",
                    format!("add a [{name}] table (see config/site.toml in the repository)"),
                ));
            }
            v
        };
        let (sources, datasets, keys, work) = (
            need("sources"),
            need("datasets"),
            need("keys"),
            need("work"),
        );
        let sources: Option<SourcesFile> =
            sources.and_then(|v| section(path, "sources", v, &mut problems));
        let keys: Option<KeysFile> = keys.and_then(|v| section(path, "keys", v, &mut problems));
        let work: Option<WorkFile> = work.and_then(|v| section(path, "work", v, &mut problems));
        let mut dataset_map = BTreeMap::new();
        if let Some(toml::Value::Table(t)) = datasets {
            for (name, v) in t {
                let key = format!("datasets.{name}");
                if let Some(d) = section::<DatasetFile>(path, &key, v, &mut problems) {
                    let p = resolve(base, &d.path);
                    if !dataset_exists(&p) {
                        problems.push(Problem::error(
                            path,
                            format!("{key}.path"),
                            format!("no dataset at {}", p.display()),
                            "point it at a Parquet or CSV file, a directory of them, or a glob",
                        ));
                    } else if p.is_dir() {
                        if let Err(problem) = crate::tables::dataset_files(&p) {
                            let (what, fix) = problem.split_once("\n  fix: ").unwrap_or((
                                problem.as_str(),
                                "check the folder holds the extract's Parquet files",
                            ));
                            problems.push(Problem::error(path, format!("{key}.path"), what, fix));
                        }
                    }
                    let mut seen = std::collections::BTreeSet::new();
                    for (i, column) in d.identifiers.iter().enumerate() {
                        let normalised = crate::ingest::normalise_header(column);
                        if normalised.is_empty() {
                            problems.push(Problem::error(
                                path,
                                format!("{key}.identifiers[{i}]"),
                                "is empty",
                                "name a column of the dataset that holds a direct identifier",
                            ));
                        } else if !seen.insert(normalised) {
                            problems.push(Problem::error(
                                path,
                                format!("{key}.identifiers[{i}]"),
                                format!("`{column}` is listed twice"),
                                "list each column once",
                            ));
                        }
                    }
                    dataset_map.insert(
                        name,
                        DatasetSource {
                            path: p,
                            key: d.key,
                            identifiers: d.identifiers,
                        },
                    );
                }
            }
        }

        let mut empty_register = None;
        let mut exists = |key: &str, p: &Path, fix: &str| {
            if !p.exists() {
                problems.push(Problem::error(
                    path,
                    key,
                    format!("no file at {}", p.display()),
                    fix,
                ));
            }
        };
        let sources = sources.map(|s| {
            let d = resolve(base, &s.demographics);
            let o = resolve(base, &s.objections);
            exists(
                "sources.demographics",
                &d,
                "point it at the master person index (Parquet)",
            );
            exists(
                "sources.objections",
                &o,
                "point it at the objections register (Parquet)",
            );
            // An empty file is a failed export, never "no objectors".
            if std::fs::metadata(&o).is_ok_and(|m| m.is_file() && m.len() == 0) {
                // A warning here; `dars run` refuses it (exit 4) when it
                // reads the register, as it does one with a header only.
                empty_register = Some(Problem::warning(
                    path,
                    "sources.objections",
                    format!(
                        "{} is empty (0 bytes): a register always holds objections",
                        o.display()
                    ),
                    "export the objections register again: `dars run` refuses it",
                ));
            }
            (d, o)
        });
        let keys = keys.map(|k| {
            let p = resolve(base, &k.signing_key);
            exists(
                "keys.signing_key",
                &p,
                "point it at the OpenSSH ed25519 release signing key",
            );
            (p, k.signer)
        });
        problems.extend(empty_register);
        if let Some((_, signer)) = &keys {
            if signer.trim().is_empty() || signer.chars().any(char::is_whitespace) {
                problems.push(Problem::error(
                    path,
                    "keys.signer",
                    "must be one identity without spaces",
                    "use the principal of the allowed_signers line, e.g. releases@example.nhs.uk",
                ));
            }
        }
        let site = match (sources, keys, work) {
            (Some((demographics, objections)), Some((signing_key, signer)), Some(work)) => {
                Some(Site {
                    file: path.to_path_buf(),
                    demographics,
                    objections,
                    datasets: dataset_map,
                    signing_key,
                    signer,
                    work_dir: resolve(base, &work.dir),
                })
            }
            _ => None,
        };
        (site, problems)
    }
}

/// A file, a directory, or a glob whose parent directory exists.
fn dataset_exists(p: &Path) -> bool {
    if p.exists() {
        return true;
    }
    let s = p.to_string_lossy();
    s.contains('*') && p.parent().is_some_and(Path::exists)
}
