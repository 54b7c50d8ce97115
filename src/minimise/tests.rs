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
