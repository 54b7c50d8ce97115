//! End to end, the red team's data-side findings against issue #12
//! (FINDINGS_12.md: 01, 02, 03, 04, 05, 07, 12, 14). Datasets and registers
//! are written the way a custodian's tools write them, with pyarrow (real
//! partitioned Parquet, floats, dictionaries, binary, time zones, decimals),
//! from `dars synth` data; each result is judged against that data and the
//! files, not against dars's own rules.

mod common;

use std::fs;

use common::*;
use polars::prelude::*;

fn add_dataset(w: &Workdir, name: &str, path: &str, extra: &str) {
    let site = fs::read_to_string(w.path("site.toml")).unwrap().replace(
        "[keys]",
        &format!("[datasets.{name}]\npath = \"{path}\"\nkey = \"person_id\"\n{extra}[keys]"),
    );
    w.write("site.toml", &site);
}

/// The example agreement with the episodes output reading `dataset` with
/// `fields`.
fn agreement_on(w: &Workdir, file: &str, dataset: &str, fields: &str) -> String {
    let text = w
        .agreement_text("2099-12-31", "")
        .replace(
            "fields = [\"admission_date:month\", \"diagnosis_primary\", \"age_at_admission:band5\", \"region\"]",
            &format!("fields = [{fields}]"),
        )
        .replace(
            "dataset = \"hes_apc\"\nfields",
            &format!("dataset = \"{dataset}\"\nfields"),
        );
    assert!(text.contains(&format!("dataset = \"{dataset}\"")), "{text}");
    w.write(file, &text);
    file.to_string()
}

/// The released episodes table of the latest release, sorted.
fn released_episodes(w: &Workdir) -> DataFrame {
    let mut files: Vec<_> = w
        .outbox_files()
        .into_iter()
        .filter(|p| p.ends_with("episodes.parquet.age"))
        .collect();
    files.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
    let file = files.last().expect("a release at the destination");
    let bytes = w.age_decrypt(file);
    let df = ParquetReader::new(std::io::Cursor::new(bytes))
        .finish()
        .unwrap();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    df.sort(names, SortMultipleOptions::default()).unwrap()
}

fn clear_outbox(w: &Workdir) {
    fs::remove_dir_all(w.path("outbox")).unwrap();
    fs::create_dir_all(w.path("outbox")).unwrap();
}

// ---------------------------------------------------------------- 01

/// hes_apc with the index's identifiers joined in as a custodian's export
/// might hold them: other types, other spellings, a minority share, inside
/// notes; all under names that say nothing.
const IDENTIFIERS_ANY_TYPE: &str = r#"
import datetime, zoneinfo
import pyarrow as pa, pyarrow.parquet as pq
demo = pq.read_table('data/site/demographics.parquet').to_pylist()
by_person = {r['person_id']: r for r in demo}
hes = pq.read_table('data/site/hes_apc.parquet')
rows = hes.to_pylist()
nhs = [by_person[r['person_id']]['nhs_number'] for r in rows]
dob = [by_person[r['person_id']]['date_of_birth'] for r in rows]
pc = [by_person[r['person_id']]['postcode'] for r in rows]
london = zoneinfo.ZoneInfo('Europe/London')
cols = {
  'ref_float': pa.array([float(n) for n in nhs], pa.float64()),
  'ref_cat': pa.array(nhs, pa.string()).dictionary_encode(),
  'ref_bin': pa.array([n.encode() for n in nhs], pa.binary()),
  'ref_int': pa.array([int(n) for n in nhs], pa.int64()),
  'ref_spaced': pa.array([f'{n[:3]} {n[3:6]} {n[6:]}' for n in nhs]),
  'ref_dashed': pa.array([f'{n[:3]}-{n[3:6]}-{n[6:]}' for n in nhs]),
  # 4 in 10 NHS numbers, the rest blank or "not known"
  'ref_sparse': pa.array([n if i % 10 < 4 else (None if i % 10 < 7 else 'not known') for i, n in enumerate(nhs)]),
  # one note in twenty names the person
  'notes_nhs': pa.array([f'Seen in clinic; NHS no. {n[:3]} {n[3:6]} {n[6:]} confirmed.' if i % 20 == 0 else 'No concerns.' for i, n in enumerate(nhs)]),
  'notes_pc': pa.array([f'Home visit to {p} arranged.' if i % 20 == 0 and p else 'Reviewed on ward.' for i, p in enumerate(pc)]),
  'when_slash': pa.array([d.strftime('%d/%m/%Y') if d else None for d in dob]),
  'when_t': pa.array([d.strftime('%Y-%m-%dT00:00:00') if d else None for d in dob]),
  'when_compact': pa.array([d.strftime('%Y%m%d') if d else None for d in dob]),
  'when_int': pa.array([int(d.strftime('%Y%m%d')) if d else None for d in dob], pa.int64()),
  'when_tz': pa.array([datetime.datetime(d.year, d.month, d.day, tzinfo=london) if d else None for d in dob], pa.timestamp('us', tz='Europe/London')),
  'when_sparse': pa.array([d.isoformat() if (d and i % 10 < 4) else None for i, d in enumerate(dob)]),
}
t = hes
for name, arr in cols.items():
    t = t.append_column(name, arr)
pq.write_table(t, 'data/site/wide2.parquet')
"#;

#[test]
fn issue_12_identifiers_of_any_type_share_or_format_are_refused_by_their_values() {
    let w = Workdir::new(600, 120, 2400, 12101);
    w.python(IDENTIFIERS_ANY_TYPE);
    add_dataset(&w, "wide2", "data/site/wide2.parquet", "");
    for (field, what) in [
        ("ref_float", "an NHS number"),
        ("ref_cat", "an NHS number"),
        ("ref_bin", "an NHS number"),
        ("ref_int", "an NHS number"),
        ("ref_spaced", "an NHS number"),
        ("ref_dashed", "an NHS number"),
        ("ref_sparse", "an NHS number"),
        ("notes_nhs", "an NHS number"),
        ("notes_pc", "a full postcode"),
        ("when_slash", "a date of birth"),
        ("when_t", "a date of birth"),
        ("when_compact", "a date of birth"),
        ("when_int", "a date of birth"),
        ("when_tz", "a date of birth"),
        ("when_sparse", "a date of birth"),
    ] {
        let a = agreement_on(&w, "a.toml", "wide2", &format!("\"{field}\", \"region\""));
        let run = w.dars(&["run", &a]);
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(3), "{field}: {err}");
        assert!(
            err.contains(&format!("field `{field}`")) && err.contains(what),
            "{field}: {err}"
        );
        assert!(w.outbox_files().is_empty(), "{field}: nothing may leave");
    }
    // The dataset's own columns still leave: the rules do not refuse
    // everything.
    let a = agreement_on(
        &w,
        "b.toml",
        "wide2",
        "\"admission_date\", \"episode_id\", \"length_of_stay\", \"region\"",
    );
    let run = w.dars(&["run", &a]);
    assert!(run.status.success(), "{}", stderr(&run));
}

#[test]
fn issue_12_names_and_hospital_numbers_under_their_usual_names_are_refused() {
    let w = Workdir::new(300, 60, 600, 12102);
    let names = [
        "forename",
        "given_name",
        "family_name",
        "fname",
        "lname",
        "patient_name",
        "full_name",
        "mothers_maiden_name",
        "Middle Names",
        "hospital_number",
        "mrn",
        "MRN",
        "local_patient_id",
        "patient_id",
        "hosp_no",
        "Hospital No",
        "pas_number",
        "dobbaby_1",
        "dob_baby",
        "baby_dob",
    ];
    let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    w.python(&format!(
        r#"
import pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table('data/site/hes_apc.parquet')
for i, name in enumerate([{}]):
    t = t.append_column(name, pa.array(['X%07d' % (j + i) for j in range(t.num_rows)]))
pq.write_table(t, 'data/site/named.parquet')
"#,
        list.join(", ")
    ));
    add_dataset(&w, "named", "data/site/named.parquet", "");
    for name in names {
        let a = agreement_on(&w, "a.toml", "named", &format!("\"{name}\", \"region\""));
        let check = w.dars(&["check", &a]);
        let text = format!("{}{}", stdout(&check), stderr(&check));
        assert_eq!(check.status.code(), Some(3), "{name}: {text}");
        assert!(
            text.contains("outputs[0].fields[0]") && text.contains("rule: name"),
            "{name}: {text}"
        );
        let run = w.dars(&["run", &a]);
        assert_eq!(run.status.code(), Some(3), "{name}: {}", stderr(&run));
        assert!(w.outbox_files().is_empty(), "{name}: nothing may leave");
    }
    // Pseudonymised, a hospital number may leave.
    let a = agreement_on(&w, "b.toml", "named", "\"mrn:pseudonym\", \"region\"");
    let run = w.dars(&["run", &a]);
    assert!(run.status.success(), "{}", stderr(&run));
}

// ---------------------------------------------------------------- 02

#[test]
fn issue_12_bands_generalise_ages_only() {
    let w = Workdir::new(400, 80, 1200, 12103);
    w.python(r#"
import pyarrow as pa, pyarrow.parquet as pq
demo = {r['person_id']: r for r in pq.read_table('data/site/demographics.parquet').to_pylist()}
t = pq.read_table('data/site/hes_apc.parquet')
rows = t.to_pylist()
t = t.append_column('ref', pa.array([int(demo[r['person_id']]['nhs_number']) for r in rows], pa.int64()))
t = t.append_column('ymd', pa.array([int(demo[r['person_id']]['date_of_birth'].strftime('%Y%m%d')) for r in rows], pa.int64()))
t = t.append_column('NEWNHSNO', pa.array([demo[r['person_id']]['nhs_number'] for r in rows]))
pq.write_table(t, 'data/site/banded.parquet')
"#,
    );
    add_dataset(
        &w,
        "banded",
        "data/site/banded.parquet",
        "identifiers = [\"lsoa\", \"ref\"]\n",
    );
    // By name or declaration, a band does not lift the refusal.
    for field in ["NEWNHSNO:band5", "lsoa:band10", "ref:band5"] {
        let a = agreement_on(&w, "a.toml", "banded", &format!("\"{field}\", \"region\""));
        let check = w.dars(&["check", &a]);
        let text = format!("{}{}", stdout(&check), stderr(&check));
        assert_eq!(check.status.code(), Some(3), "{field}: {text}");
        assert!(text.contains("outputs[0].fields[0]"), "{field}: {text}");
        assert_eq!(w.dars(&["run", &a]).status.code(), Some(3), "{field}");
        assert!(w.outbox_files().is_empty(), "{field}: nothing may leave");
    }
    // Under names that say nothing, a band of a number that is not an age
    // is refused by the values.
    add_dataset(&w, "banded2", "data/site/banded.parquet", "");
    for field in ["ref:band5", "ymd:band10", "region:band5"] {
        let a = agreement_on(&w, "a.toml", "banded2", &format!("\"{field}\", \"sex\""));
        let run = w.dars(&["run", &a]);
        let err = stderr(&run);
        assert!(
            matches!(run.status.code(), Some(3) | Some(4)),
            "{field}: {err}"
        );
        assert!(
            err.contains("not an age") || err.contains("not a number"),
            "{field}: {err}"
        );
        assert!(w.outbox_files().is_empty(), "{field}: nothing may leave");
    }
    let a = agreement_on(
        &w,
        "b.toml",
        "banded2",
        "\"age_at_admission:band5\", \"sex\"",
    );
    let run = w.dars(&["run", &a]);
    assert!(run.status.success(), "{}", stderr(&run));
}

// ---------------------------------------------------------------- 03

#[test]
fn issue_12_a_partitioned_dataset_folder_is_read_whole() {
    let w = Workdir::new(500, 120, 3000, 12104);
    // The same rows as hes_apc.parquet, written as custodians' tools write
    // folders: Hive partitions by year, parts without an extension, a
    // Spark-style _SUCCESS marker.
    w.python(r#"
import os
import pyarrow as pa, pyarrow.parquet as pq, pyarrow.dataset as ds, pyarrow.compute as pc
t = pq.read_table('data/site/hes_apc.parquet')
t = t.cast(pa.schema([pa.field(f.name, pa.string() if f.type == pa.string_view() else f.type) for f in t.schema]))
t = t.append_column('adm_year', pc.year(t['admission_date']))
ds.write_dataset(t, 'data/site/hes_parts', format='parquet', partitioning=['adm_year'],
                 partitioning_flavor='hive', basename_template='part-{i}')
open('data/site/hes_parts/_SUCCESS', 'w').close()
n = sum(1 for _, _, fs in os.walk('data/site/hes_parts') for f in fs if f.startswith('part-'))
assert n >= 3, n
"#,
    );
    add_dataset(&w, "hes_parts", "data/site/hes_parts", "");
    let a = agreement_on(
        &w,
        "whole.toml",
        "hes_apc",
        "\"admission_date:month\", \"diagnosis_primary\", \"episode_id:pseudonym\", \"region\"",
    );
    let run = w.dars(&["run", &a]);
    assert!(run.status.success(), "{}", stderr(&run));
    let whole = released_episodes(&w);
    clear_outbox(&w);
    let a = agreement_on(
        &w,
        "parts.toml",
        "hes_parts",
        "\"admission_date:month\", \"diagnosis_primary\", \"episode_id:pseudonym\", \"region\", \"adm_year\"",
    );
    let run = w.dars(&["run", &a]);
    assert!(run.status.success(), "{}", stderr(&run));
    let parts = released_episodes(&w);
    assert!(whole.height() > 100, "{}", whole.height());
    assert_eq!(parts.height(), whole.height(), "every partition is read");
    let parts = parts.drop("adm_year").unwrap();
    assert!(parts.equals_missing(&whole), "the same rows");
}

#[test]
fn issue_12_a_dataset_folder_with_a_file_it_cannot_read_or_no_file_is_refused() {
    let w = Workdir::new(300, 60, 600, 12105);
    w.python(
        r#"
import os
import pyarrow.parquet as pq
t = pq.read_table('data/site/hes_apc.parquet')
os.makedirs('data/site/bad/region_split', exist_ok=True)
pq.write_table(t.slice(0, 300), 'data/site/bad/part-0.parquet')
pq.write_table(t.slice(300), 'data/site/bad/region_split/part-1.parquet')
open('data/site/bad/region_split/part-2.parquet', 'w').write('person_id,region\n1,North\n')
os.makedirs('data/site/empty', exist_ok=True)
"#,
    );
    add_dataset(&w, "bad", "data/site/bad", "");
    add_dataset(&w, "empty", "data/site/empty", "");
    for (dataset, what) in [
        ("bad", "region_split/part-2.parquet is not a Parquet file"),
        ("empty", "holds no data file"),
    ] {
        // The site config names the folder, so both `dars check` and `dars
        // run` refuse it as a configuration problem.
        let a = agreement_on(&w, "a.toml", dataset, "\"region\"");
        let run = w.dars(&["run", &a]);
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(3), "{dataset}: {err}");
        assert!(err.contains(what), "{dataset}: {err}");
        assert!(w.outbox_files().is_empty(), "{dataset}: nothing may leave");
        let check = w.dars(&["check", &a]);
        let text = format!("{}{}", stdout(&check), stderr(&check));
        assert_eq!(check.status.code(), Some(3), "{dataset}: {text}");
        assert!(text.contains(what), "{dataset}: {text}");
    }
}

// ---------------------------------------------------------------- 04

#[test]
fn issue_12_an_objections_register_with_no_rows_is_refused() {
    let w = Workdir::new(300, 60, 600, 12106);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let a = a.to_str().unwrap();
    // Header only, as an export that found nothing writes it; then a file
    // cut to nothing.
    w.python(
        r#"
import pyarrow.parquet as pq
t = pq.read_table('data/site/objections.parquet')
pq.write_table(t.slice(0, 0), 'data/site/objections.parquet')
"#,
    );
    let run = w.dars(&["run", a]);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(4), "{err}");
    assert!(
        err.contains("objections.parquet") && err.contains("no rows"),
        "{err}"
    );
    assert!(w.outbox_files().is_empty(), "nothing may leave");
    fs::write(w.path("data/site/objections.parquet"), b"").unwrap();
    let run = w.dars(&["run", a]);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(4), "{err}");
    assert!(err.contains("objections.parquet"), "{err}");
    assert!(w.outbox_files().is_empty(), "nothing may leave");
}

// ---------------------------------------------------------------- 05

#[test]
fn issue_12_objections_apply_unless_the_agreement_states_an_exemption() {
    let w = Workdir::new(300, 60, 600, 12107);
    let full = w.agreement_text("2099-12-31", "");
    let section = "[objections]\napply = [\"type1\", \"ndoo\"]\n";
    assert!(full.contains(section));
    for (name, replacement) in [
        ("none.toml", ""),
        ("empty.toml", "[objections]\napply = []\n"),
        ("type1.toml", "[objections]\napply = [\"type1\"]\n"),
        (
            "no_reason.toml",
            "[objections]\napply = [\"type1\"]\nexempt = [\"ndoo\"]\n",
        ),
    ] {
        w.write(name, &full.replace(section, replacement));
        let check = w.dars(&["check", name]);
        let text = format!("{}{}", stdout(&check), stderr(&check));
        assert_eq!(check.status.code(), Some(3), "{name}: {text}");
        assert!(text.contains("objections"), "{name}: {text}");
        let run = w.dars(&["run", name]);
        assert_eq!(run.status.code(), Some(3), "{name}: {}", stderr(&run));
        assert!(w.outbox_files().is_empty(), "{name}: nothing may leave");
    }
    // An exemption with its legal basis is allowed, and says so in the run
    // summary and in the manifest the recipient gets.
    let basis = "section 251 support, CAG reference 21/CAG/0099";
    w.write(
        "exempt.toml",
        &full.replace(
            section,
            &format!(
                "[objections]\napply = [\"type1\"]\nexempt = [\"ndoo\"]\nexemption = \"{basis}\"\n"
            ),
        ),
    );
    let run = w.dars(&["run", "exempt.toml"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let out = stdout(&run);
    assert!(out.contains("ndoo") && out.contains(basis), "{out}");
    let manifest = w
        .outbox_files()
        .into_iter()
        .find(|p| p.ends_with("manifest.json"))
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&fs::read(manifest).unwrap()).unwrap();
    assert_eq!(
        m["objections"]["exempt"],
        serde_json::json!(["ndoo"]),
        "{m}"
    );
    assert_eq!(m["objections"]["exemption"], basis, "{m}");
    assert_eq!(
        m["objections"]["apply"],
        serde_json::json!(["type1"]),
        "{m}"
    );
}

// ---------------------------------------------------------------- 07, 12

/// Rewrites the study ID of data rows `rows` (1-based, after the header)
/// of the cohort with `f(old, row)`.
fn rewrite_study_ids(w: &Workdir, rows: &[usize], f: impl Fn(&str, usize) -> String) {
    let text = fs::read_to_string(w.path("data/cohort.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for &r in rows {
        let (id, rest) = lines[r].split_once(',').unwrap();
        lines[r] = format!("{},{rest}", f(id, r));
    }
    w.write("data/cohort.csv", &(lines.join("\r\n") + "\r\n"));
}

#[test]
fn issue_12_study_ids_that_are_nhs_numbers_are_refused_at_ingest() {
    let w = Workdir::new(300, 60, 600, 12108);
    // Real NHS numbers from the index, as an applicant might key a cohort.
    let people = LazyFrame::scan_parquet(
        PlRefPath::try_from_path(&w.path("data/site/demographics.parquet")).unwrap(),
        Default::default(),
    )
    .unwrap()
    .select([col("nhs_number")])
    .limit(3)
    .collect()
    .unwrap();
    let numbers: Vec<String> = people
        .column("nhs_number")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap().to_string())
        .collect();
    let spaced = format!(
        "{} {} {}",
        &numbers[1][..3],
        &numbers[1][3..6],
        &numbers[1][6..]
    );
    let (n0, n2) = (numbers[0].clone(), numbers[2].clone());
    rewrite_study_ids(&w, &[3, 7, 9], |_, r| match r {
        3 => n0.clone(),
        7 => spaced.clone(),
        _ => n2.clone(),
    });
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let run = w.dars(&["run", a.to_str().unwrap()]);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(4), "{err}");
    for line in ["line 4", "line 8", "line 10"] {
        assert!(err.contains(line), "{line}: {err}");
    }
    assert!(err.contains("NHS number"), "{err}");
    for n in &numbers {
        let spaced = format!("{} {} {}", &n[..3], &n[3..6], &n[6..]);
        assert!(
            !err.contains(n.as_str()) && !err.contains(&spaced),
            "{n}: {err}"
        );
    }
    assert!(w.outbox_files().is_empty(), "nothing may leave");
}

#[test]
fn issue_12_study_ids_with_invisible_format_characters_are_refused() {
    let w = Workdir::new(300, 60, 600, 12109);
    // A zero-width space, a right-to-left override, a BOM inside, a soft
    // hyphen.
    rewrite_study_ids(&w, &[2, 4, 6, 8], |id, r| match r {
        2 => format!("{id}\u{200B}"),
        4 => format!("\u{202E}{id}"),
        6 => format!("{}\u{FEFF}{}", &id[..3], &id[3..]),
        _ => format!("{}\u{00AD}{}", &id[..2], &id[2..]),
    });
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let run = w.dars(&["run", a.to_str().unwrap()]);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(4), "{err}");
    for line in ["line 3", "line 5", "line 7", "line 9"] {
        assert!(err.contains(line), "{line}: {err}");
    }
    assert!(err.contains("invisible"), "{err}");
    for c in ['\u{200B}', '\u{202E}', '\u{FEFF}', '\u{00AD}'] {
        assert!(!err.contains(c), "{:?}: {err}", c);
    }
    assert!(w.outbox_files().is_empty(), "nothing may leave");
}

#[test]
fn issue_12_decisions_file_errors_never_print_a_value() {
    let w = Workdir::new(300, 60, 600, 12110);
    let a = w.agreement("agreement.toml", "2099-12-31", "");
    let text = fs::read_to_string(&a).unwrap().replace(
        "validation_fields",
        "review_decisions = \"decisions.csv\"\nvalidation_fields",
    );
    fs::write(&a, text).unwrap();
    let secrets = ["4711779965", "LS1 4AP", "987654321", "Okafor"];
    let header = "study_id,person_id,decision,reviewer,decided_on\n";
    for (body, lines) in [
        // A person the index does not hold; a pair not in the queue, under
        // a "study ID" that is an NHS number.
        (
            "S0000001,987654321,accept,a.reviewer,2026-02-01\n4711779965,1,accept,a.reviewer,2026-02-01\n",
            &["line 2", "line 3"][..],
        ),
        // A value pasted into the decision column.
        ("S0000001,1,LS1 4AP,a.reviewer,2026-02-01\n", &["line 2"][..]),
    ] {
        w.write("decisions.csv", &format!("{header}{body}"));
        let run = w.dars(&["run", a.to_str().unwrap()]);
        let err = stderr(&run);
        assert_eq!(run.status.code(), Some(4), "{err}");
        for line in lines {
            assert!(err.contains(line), "{line}: {err}");
        }
        for s in secrets {
            assert!(!err.contains(s), "{s}: {err}");
        }
    }
    // A file without its header: the values in the header's place.
    w.write(
        "decisions.csv",
        "4711779965,987654321,accept,Okafor,2026-02-01\n",
    );
    let run = w.dars(&["run", a.to_str().unwrap()]);
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(4), "{err}");
    assert!(err.contains("line 1"), "{err}");
    for s in secrets {
        assert!(!err.contains(s), "{s}: {err}");
    }
    assert!(w.outbox_files().is_empty(), "nothing may leave");
}

// ---------------------------------------------------------------- 14

#[test]
fn issue_12_a_decimal_column_does_not_panic() {
    let w = Workdir::new(300, 60, 600, 12111);
    w.python(
        r#"
import decimal
import pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table('data/site/hes_apc.parquet')
cost = [decimal.Decimal(i % 997) / 4 for i in range(t.num_rows)]
t = t.append_column('cost', pa.array(cost, pa.decimal128(12, 2)))
pq.write_table(t, 'data/site/costed.parquet')
"#,
    );
    add_dataset(&w, "costed", "data/site/costed.parquet", "");
    for fields in [
        "\"cost\", \"region\"",
        "\"region\", \"age_at_admission:band5\"",
    ] {
        let a = agreement_on(&w, "a.toml", "costed", fields);
        let run = w.dars(&["run", &a]);
        let err = stderr(&run);
        assert_ne!(run.status.code(), Some(101), "a panic: {err}");
        assert!(!err.contains("panicked"), "{err}");
        if run.status.success() {
            continue;
        }
        assert_eq!(run.status.code(), Some(4), "{err}");
        assert!(err.contains("`cost`") && err.contains("decimal"), "{err}");
        assert!(w.outbox_files().is_empty(), "nothing may leave");
    }
}
