//! Issue #14 end to end: the same agreement released on polars and on a
//! real Spark (a local Spark Connect server, started by `.ci/run` with
//! `.ci/spark-connect-server`), and the decrypted outputs compared byte for
//! byte. The dataset is split into several files and holds NULL keys,
//! duplicate episodes and people outside the cohort. Then the engine's
//! failures: unreachable, a refused token, a failing query, a path the
//! cluster cannot read — each named by the engine's URL and the dataset,
//! and nothing released.
//!
//! The server: `DARS_TEST_SPARK_URL` (sc://127.0.0.1:15002 by default) and
//! the token file `DARS_TEST_SPARK_TOKEN_FILE`.
#![cfg(feature = "spark")]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::release::{self, ok};
use common::*;
use polars::prelude::*;

fn spark_url() -> String {
    std::env::var("DARS_TEST_SPARK_URL").unwrap_or_else(|_| "sc://127.0.0.1:15002".into())
}

fn token_file() -> PathBuf {
    PathBuf::from(std::env::var("DARS_TEST_SPARK_TOKEN_FILE").expect(
        "DARS_TEST_SPARK_TOKEN_FILE names the token of a running Spark Connect server: \
         `.ci/spark-connect-server start DIR` starts one (DIR/token), as .ci/run does",
    ))
}

/// The synthetic episodes rewritten as a folder of three Parquet files,
/// with NULL keys, duplicated episodes and a postcode column.
fn split_dataset(w: &Workdir) -> PathBuf {
    let path = w.path("data/site/hes_apc.parquet");
    let df = ParquetReader::new(fs::File::open(&path).unwrap())
        .finish()
        .unwrap();
    let n = df.height();
    let postcodes = [
        Some("LS1 4AP"),
        Some("ls14ap"),
        Some(" EC1A  1BB "),
        Some("gir0aa"),
        Some("M1\u{a0}1AE"),
        Some("not a postcode"),
        None,
        Some("W1A 0AX"),
        Some("ſW1A 0AX"),
    ];
    let pc: Vec<Option<&str>> = (0..n).map(|i| postcodes[i % postcodes.len()]).collect();
    let mut df = df
        .lazy()
        .with_column(lit(Series::new("postcode".into(), pc)).alias("postcode"))
        .collect()
        .unwrap();
    // NULL keys (every 7th row), then every 5th row repeated.
    let ids = df.column("person_id").unwrap().i64().unwrap().clone();
    let nulled: Int64Chunked = ids
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 7 == 3 { None } else { v })
        .collect();
    df.replace("person_id", nulled.into_series().into())
        .unwrap();
    let dup = df
        .clone()
        .lazy()
        .with_row_index("i", None)
        .filter((col("i") % lit(5)).eq(lit(0)))
        .collect()
        .unwrap()
        .drop("i")
        .unwrap();
    df.vstack_mut(&dup).unwrap();
    let dir = w.path("data/site/hes_split");
    fs::create_dir_all(&dir).unwrap();
    let third = df.height() / 3;
    for (k, (off, len)) in [
        (0, third),
        (third, third),
        (2 * third, df.height() - 2 * third),
    ]
    .into_iter()
    .enumerate()
    {
        let mut part = df.slice(off as i64, len);
        let f = fs::File::create(dir.join(format!("part-{k}.parquet"))).unwrap();
        ParquetWriter::new(f).finish(&mut part).unwrap();
    }
    dir
}

/// The site config for `engine` (polars, or the test server), its own work
/// folder, the split dataset.
fn site(w: &Workdir, name: &str, dataset: &Path, engine: &str) -> PathBuf {
    w.write(
        name,
        &format!(
            r#"[sources]
demographics = "data/site/demographics.parquet"
objections = "data/site/objections.parquet"
[datasets.hes_apc]
path = "{}"
key = "person_id"
[keys]
signing_key = "keys/release_signing_ed25519"
signer = "releases@example.nhs.uk"
[work]
dir = "work_{name}"
{engine}
"#,
            dataset.display()
        ),
    );
    w.path(name)
}

fn spark_engine() -> String {
    format!(
        "[engine]\nkind = \"spark\"\nurl = \"{}\"\ntoken_file = \"{}\"\n",
        spark_url(),
        token_file().display()
    )
}

/// An agreement with every kind of output the engine computes, delivered
/// to `outbox`.
fn agreement(w: &Workdir, name: &str, outbox: &str) -> PathBuf {
    let text = w
        .agreement_text("2099-12-31", "")
        .replace("file://outbox", &format!("file://{outbox}"));
    let (head, tail) = text.split_once("[release]").unwrap();
    let head = head.split("[[outputs]]").next().unwrap();
    let text = format!(
        r#"{head}
[[outputs]]
name = "episodes"
kind = "records"
dataset = "hes_apc"
fields = ["admission_date:month", "admission_date:year", "diagnosis_primary", "age_at_admission:band5", "region", "postcode:district", "postcode:sector", "episode_id:pseudonym", "length_of_stay", "discharge_date"]

[[outputs]]
name = "episodes_csv"
kind = "records"
dataset = "hes_apc"
format = "csv"
fields = ["admission_date", "sex", "age_at_admission:band10"]
period = {{ column = "admission_date", from = 2016-01-01, to = 2020-12-31 }}

[[outputs]]
name = "persons_by_region_sex"
kind = "aggregate"
dataset = "hes_apc"
group_by = ["region", "sex"]
count = "persons"
totals = true
suppression = "hes"

[[outputs]]
name = "episodes_by_year_district"
kind = "aggregate"
dataset = "hes_apc"
group_by = ["admission_date:year", "postcode:district", "age_at_admission:band10"]
count = "records"
totals = true
suppression = "hes"
format = "csv"

[release]{tail}"#
    );
    w.write(name, &text);
    w.path(name)
}

fn run(w: &Workdir, site: &Path, agreement: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dars"))
        .current_dir(w.dir.path())
        .arg("--site")
        .arg(site)
        .arg("run")
        .arg(agreement)
        .env_remove("DARS_TODAY")
        .output()
        .unwrap()
}

/// One pseudonym key for the polars and the Spark run: the key is the
/// agreement's, kept in its work folder, and each site here has a work
/// folder of its own.
fn share_pseudonym_key(w: &Workdir) {
    let key = |site: &str| w.path(&format!("work_{site}/{}/pseudonym.key", release::REFERENCE));
    fs::create_dir_all(key("spark.toml").parent().unwrap()).unwrap();
    fs::set_permissions(
        key("spark.toml").parent().unwrap(),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::copy(key("polars.toml"), key("spark.toml")).unwrap();
}

/// Every sealed file under `outbox`, by name, decrypted.
fn decrypted(w: &Workdir, outbox: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out)
            } else {
                out.push(p)
            }
        }
    }
    walk(&w.path(outbox), &mut files);
    let mut out: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "age"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                w.age_decrypt(p),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn issue_14_the_same_agreement_on_polars_and_on_spark_releases_identical_files() {
    let w = Workdir::new(400, 80, 3000, 14);
    let dataset = split_dataset(&w);
    let polars = site(&w, "polars.toml", &dataset, "");
    let spark = site(&w, "spark.toml", &dataset, &spark_engine());
    fs::create_dir_all(w.path("outbox_polars")).unwrap();
    fs::create_dir_all(w.path("outbox_spark")).unwrap();
    let a_polars = agreement(&w, "a_polars.toml", "outbox_polars");
    let a_spark = agreement(&w, "a_spark.toml", "outbox_spark");

    let check = Command::new(env!("CARGO_BIN_EXE_dars"))
        .current_dir(w.dir.path())
        .args([
            "--site",
            spark.to_str().unwrap(),
            "check",
            a_spark.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    ok(&check);

    let by_polars = run(&w, &polars, &a_polars);
    ok(&by_polars);
    share_pseudonym_key(&w);
    let by_spark = run(&w, &spark, &a_spark);
    ok(&by_spark);
    let log = format!("{}{}", stdout(&by_spark), stderr(&by_spark));
    // The audit trail: the SQL sent, naming the dataset's files, and never
    // the token nor a person's key.
    assert!(log.contains("query sent to the engine"), "{log}");
    assert!(log.contains("LEFT SEMI JOIN dars_persons"), "{log}");
    assert!(log.contains("COUNT(DISTINCT"), "{log}");
    let token = fs::read_to_string(token_file()).unwrap();
    assert!(!log.contains(token.trim()), "the token was logged");

    let p = decrypted(&w, "outbox_polars");
    let s = decrypted(&w, "outbox_spark");
    let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "episodes.parquet.age",
            "episodes_by_year_district.csv.age",
            "episodes_csv.csv.age",
            "persons_by_region_sex.csv.age",
        ]
    );
    assert_eq!(names, s.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>());
    for ((name, a), (_, b)) in p.iter().zip(&s) {
        assert!(!a.is_empty(), "{name} is empty");
        if a != b && name.ends_with(".parquet.age") {
            let fa = ParquetReader::new(std::io::Cursor::new(a.clone()))
                .finish()
                .unwrap();
            let fb = ParquetReader::new(std::io::Cursor::new(b.clone()))
                .finish()
                .unwrap();
            eprintln!(
                "{:?}\n{:?}\nequal: {}",
                fa.schema(),
                fb.schema(),
                fa.equals_missing(&fb)
            );
            for c in fa.columns() {
                let d = fb.column(c.name()).unwrap();
                if !c
                    .as_materialized_series()
                    .equals_missing(d.as_materialized_series())
                {
                    eprintln!("column {} differs", c.name());
                }
            }
        }
        assert!(
            a == b,
            "{name}: the plaintexts differ ({} and {} bytes)",
            a.len(),
            b.len()
        );
    }
    // The comparison means something: rows were released, NULL keys and
    // people outside the cohort were not, duplicates were.
    let episodes = ParquetReader::new(std::io::Cursor::new(p[0].1.clone()))
        .finish()
        .unwrap();
    assert!(episodes.height() > 100, "{}", episodes.height());
    assert_eq!(episodes.column("study_id").unwrap().null_count(), 0);
    let districts = episodes.column("postcode_district").unwrap();
    assert!(districts.null_count() > 0 && districts.null_count() < episodes.height());
    let dup = episodes
        .clone()
        .lazy()
        .group_by([col("study_id"), col("episode_id_pseudonym")])
        .agg([len().alias("n")])
        .filter(col("n").gt(lit(1)))
        .collect()
        .unwrap();
    assert!(
        dup.height() > 0,
        "the duplicated episodes are released twice, as polars does"
    );
}

fn failing(w: &Workdir, engine: &str, dataset: &Path, outbox: &str) -> String {
    let site = site(w, &format!("{outbox}.toml"), dataset, engine);
    fs::create_dir_all(w.path(outbox)).unwrap();
    let a = agreement(w, &format!("{outbox}_a.toml"), outbox);
    let out = run(w, &site, &a);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(
        decrypted(w, outbox).is_empty() && fs::read_dir(w.path(outbox)).unwrap().next().is_none(),
        "nothing is released"
    );
    // Nothing under a final name in the release folder either.
    let mut sealed = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out)
            } else if p.extension().is_some_and(|e| e == "age") {
                out.push(p)
            }
        }
    }
    walk(&w.path(&format!("work_{outbox}.toml")), &mut sealed);
    assert!(sealed.is_empty(), "{sealed:?}");
    for internal in [
        "tonic",
        "grpc",
        "Status {",
        "at org.apache",
        "java.",
        "h2 protocol",
    ] {
        assert!(!text.contains(internal), "{internal} in: {text}");
    }
    text
}

/// A run killed while Spark's results stream back (the first batch of the
/// records output written, the file not finished) leaves nothing under a
/// final name, and the re-run resumes and releases what polars releases.
#[test]
fn issue_14_a_run_killed_while_results_stream_back_resumes() {
    let w = Workdir::new(300, 60, 2000, 1402);
    let dataset = split_dataset(&w);
    let polars = site(&w, "polars.toml", &dataset, "");
    let spark = site(&w, "spark.toml", &dataset, &spark_engine());
    fs::create_dir_all(w.path("outbox_polars")).unwrap();
    fs::create_dir_all(w.path("outbox_spark")).unwrap();
    let a_polars = agreement(&w, "a_polars.toml", "outbox_polars");
    let a_spark = agreement(&w, "a_spark.toml", "outbox_spark");
    ok(&run(&w, &polars, &a_polars));
    share_pseudonym_key(&w);

    let killed = Command::new(env!("CARGO_BIN_EXE_dars"))
        .current_dir(w.dir.path())
        .arg("--site")
        .arg(&spark)
        .arg("run")
        .arg(&a_spark)
        .env_remove("DARS_TODAY")
        .env("DARS_FAIL_AFTER", "stream:episodes")
        .output()
        .unwrap();
    assert!(!killed.status.success(), "{}", stderr(&killed));
    assert!(
        stderr(&killed).contains("DARS_FAIL_AFTER=stream:episodes"),
        "the run died mid-stream: {}",
        stderr(&killed)
    );
    assert!(
        decrypted(&w, "outbox_spark").is_empty(),
        "nothing delivered"
    );
    // No sealed file under its final name in the work folder either.
    let mut finals = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out)
            } else if p.file_name().is_some_and(|n| n == "episodes.parquet.age") {
                out.push(p)
            }
        }
    }
    walk(&w.path("work_spark.toml"), &mut finals);
    assert!(finals.is_empty(), "a final name after the kill: {finals:?}");

    let resumed = run(&w, &spark, &a_spark);
    ok(&resumed);
    let p = decrypted(&w, "outbox_polars");
    let s = decrypted(&w, "outbox_spark");
    assert_eq!(p.len(), 4);
    assert!(p == s, "the resumed Spark release differs from polars'");
}

#[test]
fn issue_14_engine_failures_name_the_url_and_dataset_and_release_nothing() {
    let w = Workdir::new(200, 40, 800, 15);
    let dataset = split_dataset(&w);

    // Unreachable: nothing listens on port 9 of loopback.
    let text = failing(
        &w,
        &format!(
            "[engine]\nkind = \"spark\"\nurl = \"sc://127.0.0.1:9\"\ntoken_file = \"{}\"\n",
            token_file().display()
        ),
        &dataset,
        "unreachable",
    );
    assert!(text.contains("engine sc://127.0.0.1:9"), "{text}");
    assert!(text.contains("dataset `hes_apc`"), "{text}");
    assert!(text.contains("cannot be reached"), "{text}");

    // A refused token.
    let wrong = w.path("wrong_token");
    fs::write(&wrong, "not-the-token\n").unwrap();
    fs::set_permissions(&wrong, fs::Permissions::from_mode(0o600)).unwrap();
    let text = failing(
        &w,
        &format!(
            "[engine]\nkind = \"spark\"\nurl = \"{}\"\ntoken_file = \"{}\"\n",
            spark_url(),
            wrong.display()
        ),
        &dataset,
        "refused",
    );
    assert!(text.contains(&format!("engine {}", spark_url())), "{text}");
    assert!(text.contains("refused the token"), "{text}");
    assert!(!text.contains("not-the-token"), "{text}");

    // A path the cluster cannot read.
    let text = failing(
        &w,
        &spark_engine(),
        &w.path("data/site/no_such_folder"),
        "nopath",
    );
    assert!(text.contains("dataset `hes_apc`"), "{text}");
    assert!(text.contains("cannot read the dataset's path"), "{text}");

    // A query that fails on the cluster while rows stream: an age outside
    // 0 to 150 under band5 (polars refuses the output too).
    let df = ParquetReader::new(fs::File::open(dataset.join("part-1.parquet")).unwrap())
        .finish()
        .unwrap();
    let ages: Int64Chunked = df
        .column("age_at_admission")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .map(|v| v.map(|a| a + 200))
        .collect();
    let mut df = df;
    df.replace("age_at_admission", ages.into_series().into())
        .unwrap();
    let bad = w.path("data/site/hes_bad_age");
    fs::create_dir_all(&bad).unwrap();
    ParquetWriter::new(fs::File::create(bad.join("part-0.parquet")).unwrap())
        .finish(&mut df)
        .unwrap();
    let text = failing(&w, &spark_engine(), &bad, "badquery");
    assert!(text.contains("dataset `hes_apc`"), "{text}");
    assert!(text.contains("outside 0 to 150"), "{text}");
}

#[test]
fn issue_14_check_validates_the_engine_section() {
    let w = Workdir::new(100, 20, 200, 16);
    let a = w.agreement("a.toml", "2099-12-31", "");
    let check = |engine: &str| {
        let site = site(
            &w,
            "site_check.toml",
            &w.path("data/site/hes_apc.parquet"),
            engine,
        );
        let out = Command::new(env!("CARGO_BIN_EXE_dars"))
            .current_dir(w.dir.path())
            .args([
                "--site",
                site.to_str().unwrap(),
                "check",
                a.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (
            out.status.code(),
            format!("{}{}", stdout(&out), stderr(&out)),
        )
    };
    let (code, text) = check(&spark_engine());
    assert_eq!(code, Some(0), "{text}");
    for (engine, key, says) in [
        ("[engine]\nkind = \"flink\"\n", "engine.kind", "not an engine"),
        ("[engine]\nkind = \"spark\"\n", "engine.url", "missing"),
        ("[engine]\nkind = \"spark\"\nurl = \"http://x:15002\"\n", "engine.url", "sc://"),
        ("[engine]\nkind = \"spark\"\nurl = \"sc://127.0.0.1:15002/;token=abc123\"\n", "engine.url", "holds a token"),
        ("[engine]\nkind = \"spark\"\nurl = \"sc://127.0.0.1:15002\"\ntoken_env = \"DARS_NO_SUCH_VARIABLE_14\"\n", "engine.token_env", "is not set"),
        ("[engine]\nkind = \"spark\"\nurl = \"sc://127.0.0.1:15002\"\ntoken_file = \"nope\"\n", "engine.token_file", "cannot read"),
        ("[engine]\nkind = \"spark\"\nurl = \"sc://127.0.0.1:15002\"\nport = 1\n", "engine.port", ""),
    ] {
        let (code, text) = check(engine);
        assert_eq!(code, Some(3), "{engine}: {text}");
        assert!(text.contains(key) && text.contains(says), "{engine}: {text}");
        assert!(!text.contains("abc123"), "the token is printed: {text}");
    }
}
