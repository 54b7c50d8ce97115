//! Issue #14: on random small datasets (NULL keys, keys outside the
//! cohort, duplicate rows, one person under two study IDs, postcodes in
//! every layout and none, ages at the edges, a split into several files,
//! with and without a period and recruitment dates), the records output and
//! the count tables Spark computes are the ones polars computes: the same
//! columns, types, rows in the same order, the same cells and counts.
//!
//! Runs against the local Spark Connect server `.ci/run` starts
//! (`DARS_TEST_SPARK_URL`, `DARS_TEST_SPARK_TOKEN_FILE`).
#![cfg(feature = "spark")]

use std::path::PathBuf;

use chrono::NaiveDate;
use polars::prelude::*;
use proptest::prelude::*;

use dars::aggregate::{count_fields, AggregateOutput, CountKind};
use dars::engine::Spark;
use dars::minimise::{PseudonymKey, RecordsOutput};
use dars::objections::{ObjectionCounts, Released};
use dars::period::Period;
use dars::site::{DatasetSource, Engine, SparkEngine, TokenSource};

fn spark() -> Spark {
    let url =
        std::env::var("DARS_TEST_SPARK_URL").unwrap_or_else(|_| "sc://127.0.0.1:15002".into());
    let token = PathBuf::from(std::env::var("DARS_TEST_SPARK_TOKEN_FILE").expect(
        "DARS_TEST_SPARK_TOKEN_FILE names the token of a running Spark Connect server (.ci/spark-connect-server)",
    ));
    Spark::for_site(&Engine::Spark(SparkEngine {
        url,
        token: Some(TokenSource::File(token)),
    }))
    .expect("the test engine")
    .expect("a spark engine")
}

const POSTCODES: [Option<&str>; 10] = [
    Some("LS1 4AP"),
    Some("ls14ap"),
    Some("EC1A 1BB"),
    Some("gir0aa"),
    Some("M1\u{2003}1AE"),
    Some("SW1A1AA"),
    Some("ſW1A 0AX"),
    Some("12345"),
    Some(""),
    None,
];
const REGIONS: [Option<&str>; 5] = [
    Some("North"),
    Some("South"),
    Some("Unknown"),
    Some("Ëast"),
    None,
];

#[derive(Debug, Clone)]
struct Row {
    key: Option<i64>,
    day: Option<i32>,
    age: Option<i64>,
    region: usize,
    postcode: usize,
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    proptest::collection::vec(
        (
            prop_oneof![1 => Just(None), 8 => (0i64..30).prop_map(Some)],
            prop_oneof![1 => Just(None), 8 => (16000i32..19000).prop_map(Some)],
            prop_oneof![1 => Just(None), 8 => (0i64..=150).prop_map(Some)],
            0..REGIONS.len(),
            0..POSTCODES.len(),
        )
            .prop_map(|(key, day, age, region, postcode)| Row {
                key,
                day,
                age,
                region,
                postcode,
            }),
        0..120,
    )
}

fn frame(rows: &[Row]) -> DataFrame {
    let key: Vec<Option<i64>> = rows.iter().map(|r| r.key).collect();
    let day: Vec<Option<i32>> = rows.iter().map(|r| r.day).collect();
    let age: Vec<Option<i64>> = rows.iter().map(|r| r.age).collect();
    let region: Vec<Option<&str>> = rows.iter().map(|r| REGIONS[r.region]).collect();
    let postcode: Vec<Option<&str>> = rows.iter().map(|r| POSTCODES[r.postcode]).collect();
    let n = rows.len();
    DataFrame::new(
        n,
        vec![
            Series::new("person_id".into(), key).into_column(),
            Series::new("admission_date".into(), day)
                .cast(&DataType::Date)
                .unwrap()
                .into_column(),
            Series::new("age".into(), age).into_column(),
            Series::new("region".into(), region).into_column(),
            Series::new("postcode".into(), postcode).into_column(),
        ],
    )
    .unwrap()
}

/// The cohort: persons 0 to 19 (10 to 29 are outside it), person 3 under
/// two study IDs.
fn released(recruited: bool) -> Released {
    let mut ids: Vec<i64> = (0..20).collect();
    ids.push(3);
    let study: Vec<String> = (0..ids.len()).map(|i| format!("S{i:03}")).collect();
    let dob: Vec<i32> = ids.iter().map(|i| -5000 + *i as i32 * 37).collect();
    let mut cols = vec![
        Series::new("study_id".into(), study).into_column(),
        Series::new("person_id".into(), ids.clone()).into_column(),
        Series::new("date_of_birth".into(), dob)
            .cast(&DataType::Date)
            .unwrap()
            .into_column(),
    ];
    if recruited {
        let on: Vec<Option<i32>> = ids
            .iter()
            .map(|i| {
                if i % 6 == 5 {
                    None
                } else {
                    Some(16500 + (*i as i32 % 4) * 300)
                }
            })
            .collect();
        cols.push(
            Series::new("recruited_on".into(), on)
                .cast(&DataType::Date)
                .unwrap()
                .into_column(),
        );
    }
    Released {
        persons: DataFrame::new(ids.len(), cols).unwrap(),
        counts: ObjectionCounts::default(),
    }
}

fn period(on: bool) -> Option<Period> {
    on.then(|| Period {
        column: "admission_date".into(),
        from: NaiveDate::from_ymd_opt(2015, 1, 1).unwrap(),
        to: NaiveDate::from_ymd_opt(2020, 6, 30).unwrap(),
    })
}

fn records_spec(period: Option<Period>) -> RecordsOutput {
    RecordsOutput {
        name: "episodes".into(),
        dataset: "hes".into(),
        fields: [
            "admission_date:month",
            "admission_date:year",
            "age:band5",
            "age:band10",
            "region",
            "postcode:district",
            "postcode:sector",
            "region:pseudonym",
            "admission_date",
            "age",
        ]
        .map(String::from)
        .to_vec(),
        format: Default::default(),
        period,
        incremental: false,
        identifiers: Default::default(),
    }
}

fn aggregate_spec(
    group_by: &[&str],
    count: CountKind,
    totals: bool,
    period: Option<Period>,
) -> AggregateOutput {
    let text = format!(
        "name = \"t\"\ndataset = \"hes\"\ngroup_by = [{}]\ncount = \"{}\"\ntotals = {totals}\nsuppression = \"hes\"\n",
        group_by.iter().map(|g| format!("\"{g}\"")).collect::<Vec<_>>().join(", "),
        match count {
            CountKind::Persons => "persons",
            CountKind::Records => "records",
        }
    );
    let mut spec: AggregateOutput = toml::from_str(&text).expect("an aggregate output");
    spec.period = period;
    spec
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        rng_seed: proptest::test_runner::RngSeed::Fixed(1414),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn issue_14_spark_computes_what_polars_computes(
        data in rows(),
        files in 1usize..4,
        with_period in any::<bool>(),
        recruited in any::<bool>(),
    ) {
        let spark = spark();
        let dir = tempfile::tempdir().unwrap();
        let df = frame(&data);
        let folder = dir.path().join("hes");
        std::fs::create_dir_all(&folder).unwrap();
        let per = df.height().div_ceil(files).max(1);
        for k in 0..files {
            let mut part = df.slice((k * per) as i64, per);
            ParquetWriter::new(std::fs::File::create(folder.join(format!("part-{k}.parquet"))).unwrap())
                .finish(&mut part)
                .unwrap();
        }
        let source = DatasetSource { path: folder.clone(), key: "person_id".into(), identifiers: vec![] };
        let released = released(recruited);
        let key = PseudonymKey::from_bytes(&[7u8; 32]);
        let p = period(with_period);
        let scan = || {
            let lf = dars::tables::scan(&folder).unwrap();
            match &p {
                Some(p) => lf.filter(
                    col("admission_date").cast(DataType::Date).gt_eq(lit(p.from))
                        .and(col("admission_date").cast(DataType::Date).lt_eq(lit(p.to))),
                ),
                None => lf,
            }
        };

        // A records output.
        let spec = records_spec(p.clone());
        let by_polars = dars::minimise::records(&spec, &released, scan(), "person_id", &key).unwrap();
        let mut stream = spark
            .records(&spec, spec.field_specs(), &released, &source, p.as_ref(), &key)
            .unwrap();
        let schema = stream.schema().unwrap();
        let mut by_spark = DataFrame::empty_with_schema(&schema);
        stream.run(&mut |b| by_spark.vstack_mut(b).map(|_| ())).unwrap();
        // Beside polars, an outside count: every row whose key is one of
        // the cohort's persons, twice for the person under two study IDs.
        if !with_period && !recruited {
            let expected: usize = data
                .iter()
                .map(|r| match r.key {
                    Some(3) => 2,
                    Some(k) if k < 20 => 1,
                    _ => 0,
                })
                .sum();
            prop_assert_eq!(by_spark.height(), expected);
        }
        prop_assert_eq!(by_polars.schema(), by_spark.schema());
        prop_assert!(by_polars.equals_missing(&by_spark), "polars:\n{}\nspark:\n{}", by_polars, by_spark);

        // Count tables: persons and records, with and without margins.
        for (group_by, count, totals) in [
            (&["admission_date:year", "postcode:district"][..], CountKind::Persons, true),
            (&["region", "age:band10"][..], CountKind::Records, true),
            (&["postcode:sector"][..], CountKind::Persons, false),
        ] {
            let a = aggregate_spec(group_by, count, totals, p.clone());
            let fields = a.field_specs();
            let t_polars = count_fields(&a, &fields, &released, scan(), "person_id", &key).unwrap();
            let t_spark = spark.counts(&a, &fields, &released, &source, p.as_ref(), &key).unwrap();
            prop_assert_eq!(t_polars, t_spark);
        }
    }
}
