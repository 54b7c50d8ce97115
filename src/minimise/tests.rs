//! Unit tests for minimisation: field specs, identifier refusal, transforms.

use polars::prelude::*;

use super::*;
use crate::objections::Released;

#[test]
fn field_specs_parse_and_name_their_output() {
    let f = FieldSpec::parse("admission_date:month").unwrap();
    assert_eq!(f.transform, Some(Transform::Month));
    assert_eq!(f.output_name(), "admission_date_month");
    assert_eq!(FieldSpec::parse("region").unwrap().output_name(), "region");
    assert!(FieldSpec::parse("age:band7").unwrap_err().contains("band7"));
}

#[test]
fn direct_identifiers_are_refused_unless_generalised() {
    let id = |s: &str| {
        FieldSpec::parse(s)
            .unwrap()
            .is_direct_identifier(Some("person_id"))
    };
    assert!(id("nhs_number"));
    assert!(id("postcode"));
    assert!(id("date_of_birth"));
    assert!(id("person_id"));
    assert!(!id("postcode:district"));
    assert!(!id("date_of_birth:year"));
    assert!(!id("nhs_number:pseudonym"));
    assert!(!id("region"));
}

fn released() -> Released {
    let persons = df!(
        "study_id" => ["S1", "S2"],
        "person_id" => [10i64, 20],
    )
    .unwrap();
    Released::for_tests(persons)
}

#[test]
fn records_keep_only_the_cohort_and_the_listed_fields() {
    let dates = [
        chrono::NaiveDate::from_ymd_opt(2021, 3, 14).unwrap(),
        chrono::NaiveDate::from_ymd_opt(2022, 7, 1).unwrap(),
        chrono::NaiveDate::from_ymd_opt(2023, 1, 2).unwrap(),
    ];
    let dataset = df!(
        "person_id" => [10i64, 20, 30],
        "admission_date" => dates,
        "age_at_admission" => [37i64, 44, 50],
        "postcode" => ["LS1 4AP", "M1 1AE", "EC1A 1BB"],
        "diagnosis_primary" => ["I21.9", "J18.9", "C50.9"],
    )
    .unwrap();
    let spec = RecordsOutput {
        name: "episodes".into(),
        dataset: "hes_apc".into(),
        fields: vec![
            "admission_date:month".into(),
            "age_at_admission:band5".into(),
            "postcode:district".into(),
            "person_id:pseudonym".into(),
        ],
        format: crate::tables::FileFormat::Parquet,
        period: None,
        incremental: false,
        identifiers: Default::default(),
    };
    let key = PseudonymKey::from_bytes(&[7u8; 32]);
    let out = records(&spec, &released(), dataset.lazy(), "person_id", &key)
        .unwrap()
        .sort(["study_id"], Default::default())
        .unwrap();
    assert_eq!(
        out.get_column_names_owned(),
        [
            "study_id",
            "admission_date_month",
            "age_at_admission_band5",
            "postcode_district",
            "person_id_pseudonym"
        ]
    );
    assert_eq!(out.height(), 2, "person 30 is not in the cohort");
    let month: Vec<_> = out
        .column("admission_date_month")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(month, ["2021-03", "2022-07"]);
    let band: Vec<_> = out
        .column("age_at_admission_band5")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(band, [35, 40]);
    let district: Vec<_> = out
        .column("postcode_district")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(district, ["LS1", "M1"]);
    let p: Vec<_> = out
        .column("person_id_pseudonym")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(p[0], key.pseudonym("10"));
    assert_eq!(p[0].len(), 64);
    assert_ne!(
        p[0],
        PseudonymKey::from_bytes(&[8u8; 32]).pseudonym("10"),
        "a key per agreement"
    );
}

#[test]
fn an_unknown_column_names_the_field_and_lists_what_exists() {
    let dataset = df!("person_id" => [10i64], "region" => ["London"]).unwrap();
    let spec = RecordsOutput {
        name: "episodes".into(),
        dataset: "hes_apc".into(),
        fields: vec!["regoin".into()],
        format: crate::tables::FileFormat::Csv,
        period: None,
        incremental: false,
        identifiers: Default::default(),
    };
    let err = records(
        &spec,
        &released(),
        dataset.lazy(),
        "person_id",
        &PseudonymKey::from_bytes(&[0; 32]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("regoin") && err.contains("region"), "{err}");
}

/// Issue #12: identifiers passed under any name but the exact few.
#[test]
fn issue_12_identifiers_are_recognised_under_any_name() {
    let id = |s: &str| {
        FieldSpec::parse(s)
            .unwrap()
            .is_direct_identifier(Some("person_id"))
    };
    for name in [
        "nhs_no",
        "NEWNHSNO",
        "NHS Number",
        "dob",
        "DOB",
        "birth_date",
        "first_name",
        "last_name",
        "patient_postcode",
        "HOMEADD",
        "mother_nhs_number",
        "Address Line 1",
        "email",
        "patient_name",
        "telephone_number",
    ] {
        assert!(id(name), "{name} is an identifier");
    }
    for name in [
        "region",
        "admission_date",
        "provider_name",
        "NHSNOIND",
        "postcode_district",
        "dob_year",
        "lsoa",
    ] {
        assert!(!id(name), "{name} is not an identifier");
    }
    for safe in [
        "dob:year",
        "DOB:month",
        "patient_postcode:district",
        "HOMEADD:sector",
        "NEWNHSNO:pseudonym",
        "first_name:pseudonym",
    ] {
        assert!(!id(safe), "{safe} is generalised");
    }
    assert!(
        id("first_name:year"),
        "a year of a name generalises nothing"
    );
    assert!(id("dob:district"));
}

#[test]
fn issue_12_the_site_may_declare_identifier_columns() {
    let declared = vec!["Geo_Ref".to_string()];
    let f = FieldSpec::parse("geo ref").unwrap();
    let (kind, rule) = f.identifier_by_name(Some("person_id"), &declared).unwrap();
    assert_eq!((kind, rule), (IdentifierKind::Declared, Rule::Declared));
    let generalised = FieldSpec::parse("geo ref:year").unwrap();
    assert!(generalised
        .identifier_by_name(Some("person_id"), &declared)
        .is_none());
    assert!(f.identifier_by_name(Some("person_id"), &[]).is_none());
}

fn date(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Two released people with their dates of birth from the index.
fn released_with_dob() -> Released {
    let persons = df!(
        "study_id" => ["S1", "S2"],
        "person_id" => [10i64, 20],
        "date_of_birth" => [date(1980, 1, 2), date(1975, 6, 30)],
    )
    .unwrap();
    Released::for_tests(persons)
}

/// A dataset whose innocently named columns hold identifiers.
fn disguised() -> DataFrame {
    df!(
        "person_id" => [10i64, 10, 20],
        "ref" => ["943 476 5919", "943 476 5919", "401-023-2137"],
        "loc" => ["LS1 4AP", "LS1 4AP", "M1 1AE"],
        "event_dt" => [date(1980, 1, 2), date(1980, 1, 2), date(1975, 6, 30)],
        "admission_date" => [date(2021, 3, 14), date(2022, 7, 1), date(2023, 1, 2)],
        "age_at_admission" => [41i64, 42, 47],
    )
    .unwrap()
}

fn output(fields: &[&str], identifiable: bool) -> RecordsOutput {
    RecordsOutput {
        name: "episodes".into(),
        dataset: "hes_apc".into(),
        fields: fields.iter().map(|f| f.to_string()).collect(),
        format: crate::tables::FileFormat::Parquet,
        period: None,
        incremental: false,
        identifiers: IdentifierPolicy {
            identifiable,
            declared: Vec::new(),
        },
    }
}

#[test]
fn issue_12_identifiers_are_recognised_by_content() {
    let key = PseudonymKey::from_bytes(&[3; 32]);
    for (field, what) in [
        ("ref", "an NHS number"),
        ("loc", "a full postcode"),
        ("event_dt", "a date of birth"),
    ] {
        let err = records(
            &output(&[field, "admission_date:month"], false),
            &released_with_dob(),
            disguised().lazy(),
            "person_id",
            &key,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, MinimiseError::DirectIdentifier { field: f, rule: Rule::Content { .. }, .. } if f == field),
            "{field}: {text}"
        );
        assert!(
            text.contains(what) && text.contains("rule: content"),
            "{text}"
        );
        for value in ["943", "401", "LS1", "M1 1AE", "1980", "1975"] {
            assert!(!text.contains(value), "a value leaked: {text}");
        }
    }
    // Event dates, generalised columns and pseudonyms pass.
    let out = records(
        &output(
            &[
                "admission_date",
                "event_dt:year",
                "loc:district",
                "ref:pseudonym",
                "age_at_admission:band5",
            ],
            false,
        ),
        &released_with_dob(),
        disguised().lazy(),
        "person_id",
        &key,
    )
    .unwrap();
    assert_eq!(out.height(), 3);
    // An identifiable agreement may release them.
    let out = records(
        &output(&["ref", "loc", "event_dt"], true),
        &released_with_dob(),
        disguised().lazy(),
        "person_id",
        &key,
    )
    .unwrap();
    assert_eq!(out.width(), 4);
}

#[test]
fn issue_12_a_named_identifier_is_refused_at_run_time_too() {
    let dataset = disguised().lazy().rename(["ref"], ["NEWNHSNO"], true);
    let err = records(
        &output(&["NEWNHSNO"], false),
        &released_with_dob(),
        dataset,
        "person_id",
        &PseudonymKey::from_bytes(&[3; 32]),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            MinimiseError::DirectIdentifier {
                rule: Rule::Name,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn study_ids_that_are_nhs_numbers_are_refused() {
    let persons =
        df!("study_id" => ["9434765919", "4010232137"], "person_id" => [10i64, 20]).unwrap();
    let err = records(
        &output(&["admission_date:month"], false),
        &Released::for_tests(persons),
        disguised().lazy(),
        "person_id",
        &PseudonymKey::from_bytes(&[3; 32]),
    )
    .unwrap_err();
    assert!(
        matches!(err, MinimiseError::StudyIdIsIdentifier { .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("9434765919"));
}

#[test]
fn issue_12_a_readable_pseudonym_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pseudonym.key");
    let first = PseudonymKey::load_or_create(&path).unwrap();
    let again = PseudonymKey::load_or_create(&path).unwrap();
    assert_eq!(first.pseudonym("x"), again.pseudonym("x"));
    for mode in [0o640, 0o604, 0o644] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = PseudonymKey::load_or_create(&path).unwrap_err().to_string();
        assert!(
            err.contains("readable by group or others") && err.contains("chmod 600"),
            "{mode:o}: {err}"
        );
    }
}

#[test]
fn a_missing_key_column_lists_no_column_names() {
    // What a CSV file without a header looks like once read: its first
    // row's values became the column names.
    let headerless = df!("1" => [2i64], "9434765919" => ["x"], "Michael" => ["y"]).unwrap();
    let err = records(
        &output(&["region"], false),
        &released(),
        headerless.lazy(),
        "person_id",
        &PseudonymKey::from_bytes(&[0; 32]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no key column `person_id`"), "{err}");
    assert!(
        !err.contains("9434765919") && !err.contains("Michael"),
        "{err}"
    );
}

/// A dataset of `n` episodes for persons 10 and 20 (and 30, not in the
/// cohort), in a shuffled but fixed order; `note` holds a full postcode
/// from row `postcodes_from` on, and `-` before it.
fn long_dataset(n: usize, postcodes_from: usize) -> DataFrame {
    let person: Vec<i64> = (0..n).map(|i| [10i64, 30, 20][(i * 7) % 3]).collect();
    let seq: Vec<i64> = (0..n as i64).map(|i| (i * 7919) % n as i64).collect();
    let note: Vec<&str> = (0..n)
        .map(|i| if i >= postcodes_from { "LS1 4AP" } else { "-" })
        .collect();
    df!("person_id" => person, "seq" => seq, "note" => note).unwrap()
}

#[test]
fn issue_11_records_stream_in_batches_in_the_datasets_order() {
    let n = 2 * BATCH_ROWS + 1234;
    let data = long_dataset(n, usize::MAX);
    let spec = output(&["seq"], false);
    let key = PseudonymKey::from_bytes(&[5; 32]);
    let mut stream = plan_records(
        &spec,
        spec.field_specs(),
        &released(),
        data.clone().lazy(),
        "person_id",
        &key,
    )
    .unwrap();
    assert_eq!(
        stream
            .schema()
            .unwrap()
            .iter_names()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
        ["study_id", "seq"]
    );
    let mut sizes = Vec::new();
    let mut seqs = Vec::new();
    let rows = stream
        .run(&mut |df| {
            sizes.push(df.height());
            seqs.extend(df.column("seq")?.i64()?.into_no_null_iter());
            Ok(())
        })
        .unwrap();
    // Persons 10 and 20 only, in the dataset's own order, not sorted.
    let expected: Vec<i64> = data
        .column("person_id")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .zip(
            data.column("seq")
                .unwrap()
                .i64()
                .unwrap()
                .into_no_null_iter(),
        )
        .filter(|(p, _)| *p != 30)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(rows as usize, expected.len());
    assert_eq!(seqs, expected);
    assert!(
        seqs.windows(2).any(|w| w[0] > w[1]),
        "the order is the dataset's, not sorted"
    );
    // Every batch but the last is exactly BATCH_ROWS rows.
    assert!(sizes.len() >= 2);
    let (last, full) = sizes.split_last().unwrap();
    assert!(full.iter().all(|&s| s == BATCH_ROWS), "{sizes:?}");
    assert!(*last <= BATCH_ROWS && *last > 0);
}

#[test]
fn issue_11_an_identifier_only_in_late_batches_is_still_found() {
    // Full postcodes only in the last fifth of a stream of several batches:
    // a check of the first batch alone would pass it.
    let n = 4 * BATCH_ROWS;
    let data = long_dataset(n, n - n / 5);
    let spec = output(&["note"], false);
    let key = PseudonymKey::from_bytes(&[5; 32]);
    let stream = plan_records(
        &spec,
        spec.field_specs(),
        &released(),
        data.lazy(),
        "person_id",
        &key,
    )
    .unwrap();
    let mut batches = 0;
    let err = stream
        .run(&mut |_| {
            batches += 1;
            Ok(())
        })
        .unwrap_err();
    assert!(batches >= 3, "{batches}");
    assert!(
        matches!(&err, MinimiseError::DirectIdentifier { field, rule: Rule::Content { .. }, .. } if field == "note"),
        "{err}"
    );
    // The same column without postcodes streams through.
    let clean = long_dataset(n, usize::MAX);
    let stream = plan_records(
        &spec,
        spec.field_specs(),
        &released(),
        clean.lazy(),
        "person_id",
        &key,
    )
    .unwrap();
    assert!(stream.run(&mut |_| Ok(())).is_ok());
}

#[test]
fn issue_11_the_stream_sample_is_evenly_spaced_and_bounded() {
    for n in [0usize, 1, 999, identifiers::SAMPLE * 2, 123_457, 1_000_003] {
        let mut sample = Sample::default();
        let pos: Vec<i64> = (0..n as i64).collect();
        let whole = df!("pos" => pos).unwrap();
        let mut offset = 0;
        for chunk in [1000usize, 77, 40_000].iter().cycle() {
            if offset >= n {
                break;
            }
            let len = (*chunk).min(n - offset);
            sample
                .add(&whole.slice(offset as i64, len), offset as u64)
                .unwrap();
            offset += len;
        }
        let got: Vec<i64> = match &sample.frame {
            Some(f) => f
                .column("pos")
                .unwrap()
                .i64()
                .unwrap()
                .into_no_null_iter()
                .collect(),
            None => Vec::new(),
        };
        let stride = sample.stride as i64;
        let expected: Vec<i64> = (0..n as i64).step_by(stride as usize).collect();
        assert_eq!(got, expected, "n = {n}, stride {stride}");
        assert!(
            got.len() < 2 * identifiers::SAMPLE,
            "n = {n}: {}",
            got.len()
        );
        if n >= identifiers::SAMPLE {
            assert!(
                got.len() >= identifiers::SAMPLE / 2,
                "n = {n}: {}",
                got.len()
            );
        }
    }
}
