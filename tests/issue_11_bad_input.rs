//! Issue #11, bad input: a dataset file that is truncated or corrupt midway
//! through the scan, and a dataset whose key column has the wrong type.
//! The files are written and damaged with pyarrow and plain byte surgery,
//! as a failed copy or a lost disk block would leave them, not by dars.

mod common;

use std::fs;

use common::*;

fn add_dataset(w: &Workdir, name: &str, path: &str) {
    let site = fs::read_to_string(w.path("site.toml")).unwrap().replace(
        "[keys]",
        &format!("[datasets.{name}]\npath = \"{path}\"\nkey = \"person_id\"\n[keys]"),
    );
    w.write("site.toml", &site);
}

/// The example agreement, both outputs reading `dataset`.
fn agreement_on(w: &Workdir, file: &str, dataset: &str) -> String {
    let text = w
        .agreement_text("2099-12-31", "")
        .replace("dataset = \"hes_apc\"", &format!("dataset = \"{dataset}\""));
    assert!(text.contains(&format!("dataset = \"{dataset}\"")), "{text}");
    w.write(file, &text);
    file.to_string()
}

/// Nothing at the destination, and no file under a final name in the work
/// folder's release either.
fn assert_nothing_released(w: &Workdir, context: &str) {
    assert!(
        w.outbox_files().is_empty(),
        "{context}: nothing may leave: {:?}",
        w.outbox_files()
    );
}

/// hes_apc as a folder of three Parquet files, zstd-compressed with small
/// row groups, as an extract's tools write them.
const SPLIT: &str = r#"
import os
import pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table('data/site/hes_apc.parquet')
t = t.cast(pa.schema([pa.field(f.name, pa.string() if f.type == pa.string_view() else f.type) for f in t.schema]))
os.makedirs('data/site/hes_split', exist_ok=True)
n = t.num_rows
for i in range(3):
    part = t.slice(i * n // 3, (i + 1) * n // 3 - i * n // 3)
    pq.write_table(part, f'data/site/hes_split/part-{i}.parquet', compression='zstd', row_group_size=200)
"#;

/// Damages part-1 in the middle while leaving its footer whole, so its
/// schema reads and the damage is met only while the rows are scanned.
fn damage_midway(w: &Workdir, how: &str) {
    let script = format!(
        r#"
import pyarrow.parquet as pq
path = 'data/site/hes_split/part-1.parquet'
meta = pq.ParquetFile(path).metadata
assert meta.num_row_groups >= 3, meta.num_row_groups
data = bytearray(open(path, 'rb').read())
footer_len = int.from_bytes(data[-8:-4], 'little')
footer_start = len(data) - 8 - footer_len
# the first byte of the second row group's first column chunk
rg = meta.row_group(1).column(0)
start = rg.dictionary_page_offset or rg.data_page_offset
how = '{how}'
if how == 'zeroed':
    # a lost disk block: zeros over the middle row groups' pages
    end = min(footer_start, start + 4096)
    data[start:end] = bytes(end - start)
    out = bytes(data)
elif how == 'truncated':
    # the copy stopped midway and the footer was written after what arrived
    out = bytes(data[:start]) + bytes(data[footer_start:])
open(path, 'wb').write(out)
"#
    );
    w.python(&script);
}

#[test]
fn issue_11_a_dataset_file_damaged_midway_is_named_and_nothing_is_released() {
    let w = Workdir::new(400, 100, 3000, 11001);
    w.python(SPLIT);
    add_dataset(&w, "hes_split", "data/site/hes_split");
    let a = agreement_on(&w, "split.toml", "hes_split");
    // The whole folder releases.
    let good = w.dars(&["run", &a]);
    assert!(good.status.success(), "{}", stderr(&good));
    let released = w.outbox_files().len();
    assert!(released > 0);
    fs::remove_dir_all(w.path("outbox")).unwrap();
    fs::create_dir_all(w.path("outbox")).unwrap();
    let pristine = fs::read(w.path("data/site/hes_split/part-1.parquet")).unwrap();

    for how in ["zeroed", "truncated"] {
        damage_midway(&w, how);
        // A new reference each time, so that nothing is reused from the
        // run that released.
        let text = fs::read_to_string(w.path(&a))
            .unwrap()
            .replace("DEMO1", &format!("DEMO{}", how.len()));
        w.write("damaged.toml", &text);
        let run = w.dars(&["run", "damaged.toml"]);
        let err = stderr(&run);
        assert!(
            !run.status.success(),
            "{how}: a damaged file must stop the run"
        );
        assert_eq!(err.matches("fix:").count(), 1, "{how}: one fix: {err}");
        assert!(
            err.contains("part-1.parquet"),
            "{how}: the damaged file is named: {err}"
        );
        assert!(
            !err.contains("part-0.parquet") && !err.contains("part-2.parquet"),
            "{how}: only the damaged file is named: {err}"
        );
        assert!(
            !err.to_lowercase().contains("panicked"),
            "{how}: no panic: {err}"
        );
        assert_nothing_released(&w, how);

        // Put the file back: the same run resumes and releases.
        fs::write(w.path("data/site/hes_split/part-1.parquet"), &pristine).unwrap();
        let again = w.dars(&["run", "damaged.toml"]);
        assert!(again.status.success(), "{how}: re-run: {}", stderr(&again));
        assert_eq!(w.outbox_files().len(), released, "{how}");
        fs::remove_dir_all(w.path("outbox")).unwrap();
        fs::create_dir_all(w.path("outbox")).unwrap();
    }
}

#[test]
fn issue_11_a_single_dataset_file_damaged_midway_is_named() {
    let w = Workdir::new(300, 80, 2000, 11002);
    w.python(SPLIT);
    damage_midway(&w, "zeroed");
    // The damaged part alone, as the dataset's one file.
    fs::rename(
        w.path("data/site/hes_split/part-1.parquet"),
        w.path("data/site/hes_one.parquet"),
    )
    .unwrap();
    add_dataset(&w, "hes_one", "data/site/hes_one.parquet");
    let a = agreement_on(&w, "one.toml", "hes_one");
    let run = w.dars(&["run", &a]);
    let err = stderr(&run);
    assert!(!run.status.success(), "{err}");
    assert!(err.contains("hes_one.parquet"), "{err}");
    assert_nothing_released(&w, "single file");
}

/// The key column as custodians' tools sometimes write it: text, floats.
#[test]
fn issue_11_a_key_column_of_the_wrong_type_names_the_column_and_the_type() {
    let w = Workdir::new(300, 80, 2000, 11003);
    w.python(
        r#"
import pyarrow as pa, pyarrow.parquet as pq
t = pq.read_table('data/site/hes_apc.parquet')
i = t.schema.get_field_index('person_id')
text = t.set_column(i, 'person_id', pa.array(['P' + str(v) for v in t['person_id'].to_pylist()]))
pq.write_table(text, 'data/site/hes_text_key.parquet')
floats = t.set_column(i, 'person_id', pa.array([float(v) for v in t['person_id'].to_pylist()], pa.float64()))
pq.write_table(floats, 'data/site/hes_float_key.parquet')
"#,
    );
    for (name, found) in [
        ("hes_text_key", "text"),
        ("hes_float_key", "floating-point"),
    ] {
        add_dataset(&w, name, &format!("data/site/{name}.parquet"));
        let a = agreement_on(&w, &format!("{name}.toml"), name);
        for verb in ["check", "run"] {
            let out = w.dars(&[verb, &a]);
            let text = format!("{}{}", stdout(&out), stderr(&out));
            assert!(!out.status.success(), "{name} {verb}: {text}");
            assert!(
                text.contains("person_id"),
                "{name} {verb}: names the column: {text}"
            );
            assert!(
                text.contains("integer"),
                "{name} {verb}: names the type it expected: {text}"
            );
            assert!(
                text.to_lowercase().contains(found),
                "{name} {verb}: says what it found: {text}"
            );
            for raw in [
                "datatypes of join keys",
                "SchemaMismatch",
                "polars",
                "ComputeError",
            ] {
                assert!(
                    !text.contains(raw),
                    "{name} {verb}: no raw polars message: {text}"
                );
            }
            assert_nothing_released(&w, name);
        }
    }
}
