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

#[derive(Debug, Clone, Deserialize)]
struct EngineFile {
    kind: String,
    url: Option<String>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
}

/// `[engine]`: where the outputs' scans, semi-joins, transforms and counts
/// run (issue #14). Linkage, objections, disclosure control, encryption,
/// signing, delivery and the ledger always run in dars.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Engine {
    /// polars, on this machine (no `[engine]` section).
    #[default]
    Polars,
    /// Spark, through Spark Connect; the datasets are paths the cluster reads.
    Spark(SparkEngine),
}

/// `[engine] kind = "spark"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkEngine {
    /// `sc://host:port`, with `/;use_ssl=true` and other parameters but
    /// never a token: the URL is logged.
    pub url: String,
    pub token: Option<TokenSource>,
}

/// Where the engine's token is read from, when the run connects. The token
/// itself is never held in the config, printed or logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The name of an environment variable.
    Env(String),
    /// A file readable by its owner only (mode 0600).
    File(PathBuf),
}

impl TokenSource {
    /// The token, or what is wrong (naming the variable or file, never the
    /// token).
    pub fn read(&self) -> Result<zeroize::Zeroizing<String>, String> {
        let token = match self {
            Self::Env(name) => std::env::var(name).map_err(|_| {
                format!("the environment variable {name} (engine.token_env) is not set")
            })?,
            Self::File(path) => {
                use std::os::unix::fs::PermissionsExt;
                let file = std::fs::File::open(path).map_err(|e| {
                    format!("cannot read engine.token_file {}: {e}", path.display())
                })?;
                let mode = file
                    .metadata()
                    .map_err(|e| format!("cannot read engine.token_file {}: {e}", path.display()))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(format!(
                        "engine.token_file {} is readable by group or others (mode {:04o}): run `chmod 600 {}`",
                        path.display(),
                        mode & 0o777,
                        path.display()
                    ));
                }
                let mut text = String::new();
                std::io::Read::read_to_string(&mut &file, &mut text).map_err(|e| {
                    format!("cannot read engine.token_file {}: {e}", path.display())
                })?;
                text
            }
        };
        let token = zeroize::Zeroizing::new(token.trim().to_string());
        if token.is_empty() || token.chars().any(|c| c.is_control() || c == ';') {
            return Err(match self {
                Self::Env(name) => format!("the environment variable {name} (engine.token_env) holds no usable token (empty, or a control character or `;`)"),
                Self::File(path) => format!("engine.token_file {} holds no usable token (empty, or a control character or `;`)", path.display()),
            });
        }
        Ok(token)
    }
}

impl Engine {
    /// Whether the datasets are read by a cluster, not from this machine.
    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Spark(_))
    }
}

/// Whether this build has the Spark Connect client (cargo feature `spark`).
pub const SPARK_BUILT: bool = cfg!(feature = "spark");

/// What is wrong with a Spark Connect URL, if anything. A token in the URL
/// is refused: the URL is logged, the token must never be.
pub fn check_spark_url(url: &str) -> Result<(), String> {
    if !url.starts_with("sc://") {
        return Err("is not a Spark Connect URL (sc://host:port)".into());
    }
    let params = url.split_once(';').map_or("", |(_, p)| p);
    if params.split(';').any(|kv| {
        kv.split('=')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("token"))
    }) {
        return Err("holds a token, and the URL is logged".into());
    }
    #[cfg(feature = "spark")]
    if let Err(e) = spark_connect_core::ChannelBuilder::parse(url) {
        return Err(format!("is not a Spark Connect URL: {}", e.message));
    }
    Ok(())
}

/// The `[engine]` table, or its problems.
fn engine_section(path: &Path, base: &Path, v: toml::Value, problems: &mut Vec<Problem>) -> Engine {
    let Some(e) = section::<EngineFile>(path, "engine", v, problems) else {
        return Engine::Polars;
    };
    match e.kind.as_str() {
        "polars" => {
            for (key, given) in [
                ("url", e.url.is_some()),
                ("token_env", e.token_env.is_some()),
                ("token_file", e.token_file.is_some()),
            ] {
                if given {
                    problems.push(Problem::error(
                        path,
                        format!("engine.{key}"),
                        "is for kind = \"spark\"; polars runs on this machine",
                        format!("remove engine.{key}, or set kind = \"spark\""),
                    ));
                }
            }
            Engine::Polars
        }
        "spark" => {
            let Some(url) = e.url else {
                problems.push(Problem::error(
                    path,
                    "engine.url",
                    "is missing",
                    "give the Spark Connect endpoint, e.g. url = \"sc://127.0.0.1:15002\"",
                ));
                return Engine::Polars;
            };
            if let Err(message) = check_spark_url(&url) {
                problems.push(Problem::error(path, "engine.url", message, "write it as sc://host:port, with /;use_ssl=true for TLS; the token goes in engine.token_env or engine.token_file"));
            }
            let token = match (e.token_env, e.token_file) {
                (Some(_), Some(_)) => {
                    problems.push(Problem::error(
                        path,
                        "engine.token_file",
                        "is given with engine.token_env: the token has one source",
                        "keep one of token_env and token_file",
                    ));
                    None
                }
                (Some(name), None) => {
                    if name.is_empty() || name.contains('=') || name.contains('\0') {
                        problems.push(Problem::error(
                            path,
                            "engine.token_env",
                            "is not the name of an environment variable",
                            "name the variable that holds the token, e.g. DARS_SPARK_TOKEN",
                        ));
                    }
                    Some(TokenSource::Env(name))
                }
                (None, Some(file)) => Some(TokenSource::File(resolve(base, &file))),
                (None, None) => None,
            };
            if let Some(t) = &token {
                // Read now so that `dars check` says what a run would find;
                // the token is dropped at once.
                if let Err(message) = t.read() {
                    let key = match t {
                        TokenSource::Env(_) => "engine.token_env",
                        TokenSource::File(_) => "engine.token_file",
                    };
                    problems.push(Problem::error(
                        path,
                        key,
                        message,
                        match t {
                            TokenSource::Env(_) => {
                                "export the variable in the environment dars runs in"
                            }
                            TokenSource::File(_) => "write the token alone in the file, mode 0600",
                        },
                    ));
                }
            }
            if !SPARK_BUILT {
                problems.push(Problem::error(
                    path,
                    "engine.kind",
                    "is \"spark\", and this dars was built without the Spark Connect client",
                    "build dars with `cargo build --release --features spark`, or remove [engine] to run on polars",
                ));
            }
            Engine::Spark(SparkEngine { url, token })
        }
        other => {
            problems.push(Problem::error(
                path,
                "engine.kind",
                format!("`{other}` is not an engine"),
                "use \"polars\" (this machine, the default) or \"spark\" (Spark Connect)",
            ));
            Engine::Polars
        }
    }
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
    /// `[engine]`; polars when the section is absent.
    pub engine: Engine,
}

const SECTIONS: [&str; 5] = ["sources", "datasets", "keys", "work", "engine"];

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
        let engine = match table.get("engine").cloned() {
            Some(v) => engine_section(path, base, v, &mut problems),
            None => Engine::Polars,
        };
        let mut dataset_map = BTreeMap::new();
        if let Some(toml::Value::Table(t)) = datasets {
            for (name, v) in t {
                let key = format!("datasets.{name}");
                if let Some(d) = section::<DatasetFile>(path, &key, v, &mut problems) {
                    // On a cluster a dataset is a path the cluster reads
                    // (`s3a://…`, `abfss://…`, `dbfs:/…`): kept as written,
                    // and not looked for here.
                    let remote_uri = engine.is_remote() && d.path.to_string_lossy().contains(':');
                    let p = if remote_uri {
                        d.path.clone()
                    } else {
                        resolve(base, &d.path)
                    };
                    if engine.is_remote() {
                        // The run reports a path the cluster cannot read.
                    } else if !dataset_exists(&p) {
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
                    engine,
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
