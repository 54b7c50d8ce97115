//! Unit tests for the cohort reader: the layouts applicants send, every
//! structural problem with its line (the `fail_*.csv` files beside the good
//! ones in `testdata/cohorts/`), every value problem with its row kept, and
//! the rule that no cell's value ever reaches an error message.
//!
//! All data are synthetic: NHS numbers are built from leading zeros with
//! `NhsNumber::complete`, names and study IDs are made up.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::ingest::{read_cohort_from, MAX_LISTED_PROBLEMS};
use super::*;

const HEADER: &str = "study_id,nhs_number,date_of_birth,gender,postcode,forename,surname\n";
const VALIDATION_FIELDS: &str = "cohort.validation_fields";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/cohorts")
        .join(name)
}

/// The agreement in DESIGN.md: four validation fields.
fn validation_fields() -> Vec<(CohortField, String)> {
    [
        CohortField::NhsNumber,
        CohortField::DateOfBirth,
        CohortField::Gender,
        CohortField::Postcode,
    ]
    .into_iter()
    .map(|f| (f, VALIDATION_FIELDS.to_string()))
    .collect()
}

fn read_fixture(name: &str) -> Result<Cohort, IngestError> {
    read_cohort(&IngestConfig {
        path: fixture(name),
        required: validation_fields(),
    })
}

/// Reads `content` from a real file, as the pipeline does.
fn read_bytes(content: &[u8], required: Vec<(CohortField, String)>) -> Result<Cohort, IngestError> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(content).unwrap();
    file.flush().unwrap();
    read_cohort(&IngestConfig {
        path: file.path().to_path_buf(),
        required,
    })
}

fn read_str(content: &str) -> Cohort {
    read_bytes(content.as_bytes(), Vec::new()).unwrap()
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A valid synthetic NHS number: `seed` as the leading nine digits (leading
/// zeros, so never an issued number), the next seed whose check is not 10.
fn nhs(seed: u32) -> NhsNumber {
    (seed..)
        .find_map(|s| {
            let text = format!("{s:09}");
            let mut first9 = [0u8; 9];
            for (d, b) in first9.iter_mut().zip(text.bytes()) {
                *d = b - b'0';
            }
            NhsNumber::complete(first9)
        })
        .unwrap()
}

/// The structural problems and their total; panics on success.
fn malformed(result: Result<Cohort, IngestError>) -> (Vec<StructuralProblem>, usize) {
    match result {
        Err(IngestError::Malformed {
            problems, total, ..
        }) => (problems, total),
        Err(e) => panic!("expected a malformed file, got {e}"),
        Ok(c) => panic!("expected a malformed file, read {} rows", c.rows.len()),
    }
}

fn problem_lines(problems: &[StructuralProblem]) -> Vec<Option<u64>> {
    problems.iter().map(|p| p.line).collect()
}

fn row<'c>(cohort: &'c Cohort, study_id: &str) -> &'c CohortRow {
    cohort
        .rows
        .iter()
        .find(|r| r.study_id == study_id)
        .unwrap_or_else(|| panic!("no row {study_id}"))
}

fn reasons(row: &CohortRow) -> Vec<String> {
    row.problems.iter().map(ToString::to_string).collect()
}

#[test]
fn every_fixture_fails_exactly_when_its_name_says_so() {
    let mut seen = 0;
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".csv") {
            continue;
        }
        seen += 1;
        let result = read_fixture(&name);
        if name.starts_with("fail_") {
            let (problems, total) = malformed(result);
            assert!(total > 0 && !problems.is_empty(), "{name}");
        } else if let Err(e) = result {
            panic!("{name} should read: {e}");
        }
    }
    assert!(seen >= 15, "only {seen} fixtures found");
}

#[test]
fn plain_file_reads_every_field() {
    let cohort = read_fixture("good_basic.csv").unwrap();
    assert_eq!(cohort.columns, CohortField::ALL[..7].to_vec());
    assert_eq!(cohort.rows.len(), 3);
    let first = &cohort.rows[0];
    assert_eq!((first.line, first.study_id.as_str()), (2, "S0001"));
    assert_eq!(first.nhs_number, Some(nhs(1)));
    assert_eq!(first.date_of_birth, Some(day(1980, 2, 29)));
    assert_eq!(first.gender, Some(Gender::Male));
    assert_eq!(
        first.postcode.as_ref().map(Postcode::as_str),
        Some("LS1 4AP")
    );
    assert_eq!(first.forename.as_deref(), Some("Ada"));
    assert_eq!(first.surname.as_deref(), Some("Testperson"));
    assert!(cohort.rows.iter().all(|r| r.problems.is_empty()));
    assert!(cohort.duplicate_nhs_numbers.is_empty());
    assert_eq!(cohort.rows_with_value_problems(), 0);
}

#[test]
fn spreadsheet_export_with_bom_crlf_quotes_and_an_extra_column() {
    let cohort = read_fixture("good_applicant_export.csv").unwrap();
    // Header names in another spelling and order; `Notes` is ignored.
    assert_eq!(
        cohort.columns,
        vec![
            CohortField::NhsNumber,
            CohortField::StudyId,
            CohortField::DateOfBirth,
            CohortField::Gender,
            CohortField::Postcode,
            CohortField::Forename,
            CohortField::Surname,
        ]
    );
    // The third row's quoted note runs over two lines, so the fourth row
    // starts on line 6; the trailing `,,,,` row and blank line are skipped.
    let lines: Vec<u64> = cohort.rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![2, 3, 4, 6]);
    let ids: Vec<&str> = cohort.rows.iter().map(|r| r.study_id.as_str()).collect();
    assert_eq!(ids, vec!["S0001", "S0002", "S0003", "S0004"]);
    assert!(
        cohort.rows.iter().all(|r| r.problems.is_empty()),
        "{cohort:?}"
    );

    let nhs_numbers: Vec<_> = cohort.rows.iter().map(|r| r.nhs_number).collect();
    assert_eq!(
        nhs_numbers,
        vec![Some(nhs(1)), Some(nhs(2)), Some(nhs(3)), Some(nhs(4))]
    );
    let dates: Vec<_> = cohort.rows.iter().map(|r| r.date_of_birth).collect();
    assert_eq!(
        dates,
        vec![
            Some(day(1980, 2, 29)),
            Some(day(1975, 12, 1)),
            Some(day(2001, 7, 15)),
            Some(day(1990, 1, 1)),
        ]
    );
    let genders: Vec<_> = cohort.rows.iter().map(|r| r.gender).collect();
    assert_eq!(
        genders,
        vec![
            Some(Gender::Male),
            Some(Gender::Female),
            Some(Gender::NotKnown),
            Some(Gender::Female),
        ]
    );
    let postcodes: Vec<_> = cohort
        .rows
        .iter()
        .map(|r| r.postcode.as_ref().map(|p| p.as_str().to_string()))
        .collect();
    assert_eq!(
        postcodes,
        ["LS1 4AP", "M1 1AE", "EC1A 1BB", "W1A 0AX"].map(|p| Some(p.to_string()))
    );
    // A quoted comma stays in the field; cells are trimmed, case is kept.
    assert_eq!(cohort.rows[1].forename.as_deref(), Some("Brin, Jr"));
    assert_eq!(cohort.rows[2].surname.as_deref(), Some("O'Madeup"));
    assert_eq!(cohort.rows[3].forename.as_deref(), Some("Dot"));
}

#[test]
fn every_nhs_number_layout() {
    let layouts = |n: NhsNumber| {
        let s = n.as_string();
        [
            s.clone(),
            format!("{} {} {}", &s[..3], &s[3..6], &s[6..]),
            format!("{}-{}-{}", &s[..3], &s[3..6], &s[6..]),
            format!("\"  {} {} {}  \"", &s[..3], &s[3..6], &s[6..]),
        ]
    };
    let mut csv = String::from("study_id,nhs_number\n");
    let mut want = Vec::new();
    for (i, seed) in (100..).step_by(10).take(4).enumerate() {
        let n = nhs(seed);
        csv.push_str(&format!("S{i},{}\n", layouts(n)[i]));
        want.push(Some(n));
    }
    let cohort = read_str(&csv);
    let got: Vec<_> = cohort.rows.iter().map(|r| r.nhs_number).collect();
    assert_eq!(got, want);
    assert_eq!(cohort.rows_with_value_problems(), 0);
}

#[test]
fn every_date_layout() {
    let cohort = read_str(
        "study_id,date_of_birth\nA,1980-02-29\nB,29/02/1980\nC,19800229\nD,  1980-02-29 \n",
    );
    for r in &cohort.rows {
        assert_eq!(r.date_of_birth, Some(day(1980, 2, 29)), "{}", r.study_id);
        assert!(r.problems.is_empty());
    }
}

#[test]
fn every_gender_spelling() {
    let cases = [
        ("1", Gender::Male),
        ("M", Gender::Male),
        ("male", Gender::Male),
        ("2", Gender::Female),
        ("f", Gender::Female),
        ("Female", Gender::Female),
        ("9", Gender::NotKnown),
        ("0", Gender::NotKnown),
        ("X", Gender::NotKnown),
        ("x", Gender::NotKnown),
        ("Unknown", Gender::NotKnown),
        ("", Gender::NotKnown),
        ("   ", Gender::NotKnown),
    ];
    let mut csv = String::from("study_id,gender\n");
    for (i, (raw, _)) in cases.iter().enumerate() {
        csv.push_str(&format!("S{i},{raw}\n"));
    }
    let cohort = read_str(&csv);
    assert_eq!(cohort.rows.len(), cases.len());
    for (r, (raw, want)) in cohort.rows.iter().zip(cases) {
        assert_eq!(r.gender, Some(want), "{raw:?}");
        assert!(r.problems.is_empty(), "{raw:?}");
    }
}

#[test]
fn postcodes_in_any_case_and_spacing() {
    let cohort =
        read_str("study_id,postcode\nA,ls1 4ap\nB,LS14AP\nC,  Ls1   4aP \nD,\"ls1 4AP\"\n");
    for r in &cohort.rows {
        assert_eq!(r.postcode.as_ref().map(Postcode::as_str), Some("LS1 4AP"));
    }
}

#[test]
fn absent_columns_and_blank_cells_are_missing_without_a_problem() {
    // Only study_id: nothing else is known, not even gender.
    let cohort = read_str("Study ID\nS1\nS2\n");
    assert_eq!(cohort.columns, vec![CohortField::StudyId]);
    for r in &cohort.rows {
        assert!(r.nhs_number.is_none() && r.date_of_birth.is_none() && r.postcode.is_none());
        assert!(r.gender.is_none() && r.forename.is_none() && r.surname.is_none());
        assert!(r.problems.is_empty());
    }
    // Blank cells in present columns: missing, but a blank gender is a
    // recorded "not known".
    let cohort = read_fixture("good_value_problems.csv").unwrap();
    let blank = row(&cohort, "S0010");
    assert!(blank.problems.is_empty());
    assert!(blank.nhs_number.is_none() && blank.nhs_number_typo.is_none());
    assert!(blank.date_of_birth.is_none() && blank.postcode.is_none());
    assert!(blank.forename.is_none() && blank.surname.is_none());
    assert_eq!(blank.gender, Some(Gender::NotKnown));
}

#[test]
fn value_problems_keep_the_row_and_blank_the_value() {
    let cohort = read_fixture("good_value_problems.csv").unwrap();
    assert_eq!(cohort.rows.len(), 10);
    assert_eq!(cohort.rows_with_value_problems(), 9);
    let expect = [
        ("S0001", 2, "nhs_number fails the modulus 11 check digit"),
        (
            "S0002",
            3,
            "nhs_number is not 10 digits after removing spaces and hyphens",
        ),
        (
            "S0003",
            4,
            "nhs_number is in the 999 test range, which is never issued",
        ),
        ("S0004", 5, "nhs_number is ten identical digits"),
        ("S0005", 6, "date_of_birth is not a day of the calendar"),
        (
            "S0006",
            7,
            "date_of_birth is not a date in YYYY-MM-DD, DD/MM/YYYY or YYYYMMDD",
        ),
        ("S0007", 8, "date_of_birth is in the future"),
        ("S0008", 9, "gender is not a known code"),
        ("S0009", 10, "postcode is not a UK postcode"),
    ];
    for (study_id, line, reason) in expect {
        let r = row(&cohort, study_id);
        assert_eq!(r.line, line, "{study_id}");
        let got = reasons(r);
        assert_eq!(got.len(), 1, "{study_id}: {got:?}");
        assert!(got[0].starts_with(reason), "{study_id}: {got:?}");
        // The other values of the row are still read.
        assert!(r.forename.is_some(), "{study_id}");
    }
    // Each wrong value is treated as missing.
    assert!(cohort.rows[..4].iter().all(|r| r.nhs_number.is_none()));
    assert!(cohort.rows[4..7].iter().all(|r| r.date_of_birth.is_none()));
    assert!(row(&cohort, "S0008").gender.is_none());
    assert!(row(&cohort, "S0009").postcode.is_none());
    // Only a failed check digit is a typo signal, and its digits are kept:
    // the original is one substitution away.
    let typo = row(&cohort, "S0001").nhs_number_typo.unwrap();
    assert_eq!(typo, [0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    assert!(NhsNumber::typo_neighbours(typo).contains(&nhs(1)));
    for study_id in ["S0002", "S0003", "S0004"] {
        assert!(
            row(&cohort, study_id).nhs_number_typo.is_none(),
            "{study_id}"
        );
    }
}

#[test]
fn a_date_of_birth_after_today_is_a_value_problem() {
    let csv = "study_id,date_of_birth\nA,2020-01-01\nB,2020-01-02\n";
    let cohort = read_cohort_from(
        Path::new("cohort.csv"),
        csv.as_bytes(),
        &[],
        day(2020, 1, 1),
    )
    .unwrap();
    assert_eq!(cohort.rows[0].date_of_birth, Some(day(2020, 1, 1)));
    assert!(cohort.rows[0].problems.is_empty());
    assert_eq!(cohort.rows[1].date_of_birth, None);
    assert_eq!(
        reasons(&cohort.rows[1]),
        vec!["date_of_birth is in the future"]
    );
}

#[test]
fn the_same_nhs_number_under_two_study_ids_is_reported() {
    let cohort = read_fixture("good_duplicate_nhs_number.csv").unwrap();
    // Both rows stay: the applicant may have two study IDs for one person.
    assert_eq!(cohort.rows.len(), 3);
    assert_eq!(
        cohort.duplicate_nhs_numbers,
        vec![DuplicateNhsNumber {
            first_study_id: "S0001".into(),
            study_id: "S0003".into(),
            line: 4,
        }]
    );
    assert_eq!(row(&cohort, "S0003").nhs_number, Some(nhs(1)));
}

#[test]
fn blank_lines_and_empty_spreadsheet_rows_are_skipped() {
    let csv =
        "\n\nstudy_id,surname\r\nS1,Testperson\r\n\r\n   \r\nS2,Fakename\r\n,\r\n , \r\n\r\n\r\n";
    let cohort = read_str(csv);
    let lines: Vec<(u64, &str)> = cohort
        .rows
        .iter()
        .map(|r| (r.line, r.study_id.as_str()))
        .collect();
    assert_eq!(lines, vec![(4, "S1"), (7, "S2")]);
}

/// A structural problem's line and the start of its message.
type Expected = (Option<u64>, &'static str);

/// Each `fail_*.csv` with the lines and messages it must report, all of
/// them, in file order.
#[test]
fn each_structural_problem_is_reported_with_its_line() {
    let cases: &[(&str, &[Expected])] = &[
        ("fail_empty.csv", &[(None, "the file is empty")]),
        ("fail_no_header.csv", &[(Some(1), "is not a header")]),
        (
            "fail_header_only.csv",
            &[(None, "the file has a header but no rows")],
        ),
        (
            "fail_missing_study_id.csv",
            &[(
                Some(1),
                "missing column `study_id`, which every cohort file needs",
            )],
        ),
        (
            "fail_missing_required.csv",
            &[(
                Some(1),
                "missing column `date_of_birth`, required by `cohort.validation_fields`",
            )],
        ),
        (
            "fail_duplicate_column.csv",
            &[(
                Some(1),
                "column `nhs_number` appears twice in the header (columns 2 and 6)",
            )],
        ),
        (
            "fail_short_row.csv",
            &[
                (Some(4), "has 5 fields, the header has 7"),
                (Some(6), "has 8 fields, the header has 7"),
            ],
        ),
        (
            "fail_not_utf8.csv",
            &[(
                Some(3),
                "column `forename` has bytes that are not UTF-8 text",
            )],
        ),
        ("fail_empty_study_id.csv", &[(Some(3), "study_id is empty")]),
        (
            "fail_duplicate_study_id.csv",
            &[(Some(5), "study_id `S0002` is repeated (first on line 3)")],
        ),
        (
            "fail_unclosed_quote.csv",
            &[(
                Some(3),
                "has 6 fields, the header has 7 (a quoted field runs over several lines",
            )],
        ),
        (
            "fail_many_problems.csv",
            &[
                (
                    Some(1),
                    "missing column `postcode`, required by `cohort.validation_fields`",
                ),
                (Some(3), "has 5 fields, the header has 6"),
                (Some(4), "study_id is empty"),
                (Some(6), "study_id `S0001` is repeated (first on line 2)"),
                (
                    Some(7),
                    "column `surname` has bytes that are not UTF-8 text",
                ),
            ],
        ),
    ];
    for (name, want) in cases {
        let (problems, total) = malformed(read_fixture(name));
        assert_eq!(total, want.len(), "{name}: {problems:?}");
        assert_eq!(problems.len(), want.len(), "{name}: {problems:?}");
        for (got, (line, message)) in problems.iter().zip(want.iter()) {
            assert_eq!(got.line, *line, "{name}: {got}");
            assert!(got.message.starts_with(message), "{name}: {got}");
        }
    }
}

#[test]
fn the_error_reads_as_documented() {
    let text = read_fixture("fail_short_row.csv").unwrap_err().to_string();
    let path = fixture("fail_short_row.csv");
    let want = format!(
        "cohort file {} is malformed (2 problems); nothing was linked:\n  \
         line 4: has 5 fields, the header has 7\n  \
         line 6: has 8 fields, the header has 7\n  \
         fix: correct the file and send it again",
        path.display()
    );
    assert_eq!(text, want);
}

#[test]
fn a_missing_column_names_every_agreement_key_that_requires_it() {
    let required = vec![
        (CohortField::DateOfBirth, VALIDATION_FIELDS.to_string()),
        (
            CohortField::Forename,
            "cohort.manual_validation".to_string(),
        ),
        (CohortField::Surname, "cohort.manual_validation".to_string()),
        (CohortField::Postcode, VALIDATION_FIELDS.to_string()),
        (
            CohortField::Postcode,
            "cohort.manual_validation".to_string(),
        ),
    ];
    let (problems, _) = malformed(read_bytes(
        b"study_id,date_of_birth,surname\nS1,1980-01-01,Testperson\n",
        required,
    ));
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "missing column `forename`, required by `cohort.manual_validation`",
            "missing column `postcode`, required by `cohort.validation_fields` and `cohort.manual_validation`",
        ]
    );
    assert_eq!(problem_lines(&problems), vec![Some(1), Some(1)]);
}

#[test]
fn a_file_of_blank_lines_is_empty() {
    let (problems, _) = malformed(read_bytes(b"\r\n\n  \n,,,\n", Vec::new()));
    assert_eq!(problem_lines(&problems), vec![None]);
    assert!(problems[0].message.starts_with("the file is empty"));
}

#[test]
fn a_garbage_file_lists_fifty_problems_and_counts_them_all() {
    let mut csv = String::from(HEADER);
    for i in 0..120 {
        csv.push_str(&format!("S{i},short\n"));
    }
    let err = read_bytes(csv.as_bytes(), Vec::new()).unwrap_err();
    let text = err.to_string();
    let (problems, total) = malformed(Err(err));
    assert_eq!(total, 120);
    assert_eq!(problems.len(), MAX_LISTED_PROBLEMS);
    assert_eq!(problems[0].line, Some(2));
    assert_eq!(problems[49].line, Some(51));
    assert!(text.contains("is malformed (120 problems)"), "{text}");
    assert!(text.contains("\n  … and 70 more\n  fix:"), "{text}");
}

#[test]
fn a_missing_file_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cohort.csv");
    let err = read_cohort(&IngestConfig {
        path: path.clone(),
        required: Vec::new(),
    })
    .unwrap_err();
    assert!(matches!(err, IngestError::Unreadable { .. }), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

/// The identifiers as they may appear: every NHS number in each layout.
fn spellings(nhs_numbers: &[NhsNumber], others: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = others.iter().map(|s| s.to_string()).collect();
    for n in nhs_numbers {
        let s = n.as_string();
        out.push(s.clone());
        out.push(format!("{} {} {}", &s[..3], &s[3..6], &s[6..]));
        out.push(format!("{}-{}-{}", &s[..3], &s[3..6], &s[6..]));
    }
    out
}

#[test]
fn no_identifier_reaches_an_error_or_a_debug_print() {
    let (a, b, c) = (nhs(4_242_420), nhs(4_343_430), nhs(4_545_450));
    let identifiers = spellings(
        &[a, b, c],
        &[
            "Zebedee",
            "Quillfeather",
            "Marmaduke",
            "Snodgrass",
            "Philippa",
            "Wobblesworth",
            "ZX9 9ZZ",
            "ZX99ZZ",
            "QW1 2ER",
            "1911-11-11",
            "11/11/1911",
            "19111111",
            "1922-02-22",
        ],
    );
    let (a, b, c) = (a.as_string(), b.as_string(), c.as_string());

    // With a header: a missing required column, a short row, a long row, an
    // empty and a repeated study ID, non-UTF-8 bytes and an unclosed quote,
    // every row full of identifiers.
    let mut with_header =
        String::from("study_id,nhs_number,date_of_birth,forename,surname\n").into_bytes();
    with_header.extend_from_slice(
        format!(
            "S1,{a},1911-11-11,Zebedee,Quillfeather\n\
             S2,{b},11/11/1911,Marmaduke\n\
             S3,{c},19111111,Snodgrass,Philippa,ZX9 9ZZ\n\
             ,{a},1922-02-22,Philippa,Wobblesworth\n\
             S1,{b},1911-11-11,Zebedee,Quillfeather\n"
        )
        .as_bytes(),
    );
    with_header.extend_from_slice(b"S6,");
    with_header.extend_from_slice(c.as_bytes());
    with_header.extend_from_slice(b",1911-11-11,Zeb\xe9dee,Quillfeather\n");
    with_header.extend_from_slice(
        format!("S7,{a},\"19111111,Wobblesworth,QW1 2ER\nS8,{b},ZX99ZZ\n").as_bytes(),
    );

    // Without a header: the first line is data and must not be echoed.
    let without_header = format!(
        "S1,{a},1911-11-11,2,ZX9 9ZZ,Zebedee,Quillfeather\n\
         S2,{b},11/11/1911,1,QW1 2ER,Marmaduke\n\
         S3,{c},19111111,1,ZX99ZZ,Snodgrass,Philippa,Wobblesworth\n"
    )
    .into_bytes();

    // A repeated column whose "name" a careless export filled with data.
    let repeated_column =
        format!("study_id,nhs_number,NHS-Number,{a}\nS1,{b},{c},Zebedee\n").into_bytes();

    for (name, content, kinds) in [
        ("with header", with_header, 8),
        ("without header", without_header, 3),
        ("repeated column", repeated_column, 2),
    ] {
        let err = read_bytes(&content, validation_fields()).unwrap_err();
        let (_, total) = malformed(read_bytes(&content, validation_fields()));
        assert!(total >= kinds, "{name}: {err}");
        for text in [err.to_string(), format!("{err:?}")] {
            for id in &identifiers {
                assert!(
                    !text.contains(id.as_str()),
                    "{name}: `{id}` leaked into:\n{text}"
                );
            }
        }
    }

    // A cohort that reads, with value problems: its Debug shows no values.
    // The second row's NHS number fails its check digit, so its digits are
    // kept as a typo signal: they must not show either.
    let b_typo = format!("{}{}", &b[..9], if b.ends_with('0') { '1' } else { '0' });
    let good = format!(
        "study_id,nhs_number,date_of_birth,gender,postcode,forename,surname\n\
         S1,{a},1911-11-11,2,ZX9 9ZZ,Zebedee,Quillfeather\n\
         S2,{b_typo},31/02/1922,7,QW1 2EX1,Marmaduke,Snodgrass\n"
    );
    let cohort = read_bytes(good.as_bytes(), validation_fields()).unwrap();
    assert_eq!(cohort.rows_with_value_problems(), 1);
    let text = format!("{cohort:?}");
    for id in
        identifiers
            .iter()
            .map(String::as_str)
            .chain(["QW1 2EX1", "31/02/1922", &b[..9], &b_typo])
    {
        assert!(!text.contains(id), "`{id}` leaked into:\n{text}");
    }
}

#[test]
fn line_numbers_hold_for_every_line_ending() {
    // Two blank lines, the header on line 3, a quoted field over lines 5-6,
    // a blank line 8, the last row on line 9.
    let lines = [
        "",
        "",
        "study_id,surname",
        "S1,Testperson",
        "S2,\"Fake",
        "name\"",
        "S3,Madeup",
        "",
        "S4,Nobody",
    ];
    for end in ["\n", "\r\n", "\r"] {
        for bom in ["", "\u{feff}"] {
            for final_break in [true, false] {
                let mut csv = format!("{bom}{}", lines.join(end));
                if final_break {
                    csv.push_str(end);
                }
                let cohort = read_str(&csv);
                let got: Vec<(u64, &str)> = cohort
                    .rows
                    .iter()
                    .map(|r| (r.line, r.study_id.as_str()))
                    .collect();
                assert_eq!(
                    got,
                    vec![(4, "S1"), (5, "S2"), (7, "S3"), (9, "S4")],
                    "{end:?} {bom:?} {final_break}"
                );
            }
        }
    }
}

#[test]
fn header_aliases_applicants_use() {
    use crate::ingest::CohortField as F;
    for (raw, want) in [
        ("Study ID", F::StudyId),
        ("NHS No.", F::NhsNumber),
        ("DOB", F::DateOfBirth),
        ("Sex", F::Gender),
        ("Post Code", F::Postcode),
        ("First name", F::Forename),
        ("Last_Name", F::Surname),
        ("\u{feff}study_id", F::StudyId),
    ] {
        assert_eq!(F::from_header(raw), Some(want), "{raw}");
    }
    assert_eq!(F::from_header("Favourite colour"), None);
}

/// Issue #12: a study ID holding a line break or NUL would forge log lines.
#[test]
fn issue_12_a_study_id_with_a_control_character_is_a_structural_problem() {
    for bad in [
        "\"S1\nS2\"",
        "\"S1\rS2\"",
        "S1\u{0}",
        "\"S\u{7}1\"",
        "S\u{1b}[2J",
    ] {
        let csv = format!("study_id,surname\nS0,Testperson\n{bad},Fake\n");
        let (problems, total) = malformed(read_bytes(csv.as_bytes(), Vec::new()));
        assert_eq!(total, 1, "{bad:?}: {problems:?}");
        assert_eq!(problems[0].line, Some(3), "{bad:?}");
        assert!(
            problems[0].message.contains("control character"),
            "{bad:?}: {}",
            problems[0].message
        );
        assert!(!problems[0].message.contains('\n') && !problems[0].message.contains('\u{0}'));
    }
}

/// A reader of `count` copies of `pattern`, made on the fly.
struct Repeat {
    pattern: &'static [u8],
    left: usize,
    at: usize,
}

impl std::io::Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() && self.left > 0 {
            buf[n] = self.pattern[self.at];
            n += 1;
            self.at += 1;
            if self.at == self.pattern.len() {
                self.at = 0;
                self.left -= 1;
            }
        }
        Ok(n)
    }
}

/// Issue #12: 300 MB of blank lines after a cohort cost 16 bytes each
/// (4.8 GiB). The line bookkeeping now holds a few buffers' worth of line
/// runs, however many blank lines there are.
#[test]
fn issue_12_blank_lines_after_a_cohort_cost_bounded_memory() {
    use std::io::Read;
    let (empty, blank_records) = (4_000_000, 400_000);
    let input = std::io::Cursor::new(b"study_id,surname\r\nS1,Testperson\r\n".to_vec())
        .chain(Repeat {
            pattern: b"\n",
            left: empty,
            at: 0,
        })
        .chain(Repeat {
            pattern: b",\r\n",
            left: blank_records,
            at: 0,
        })
        .chain(Repeat {
            pattern: b"\r\n",
            left: empty,
            at: 0,
        })
        .chain(std::io::Cursor::new(b"S2,Fake\n".to_vec()));
    super::ingest::PEAK_PENDING_RUNS.with(|p| p.set(0));
    let cohort = read_cohort_from(Path::new("cohort.csv"), input, &[], day(2026, 1, 1)).unwrap();
    let got: Vec<(u64, &str)> = cohort
        .rows
        .iter()
        .map(|r| (r.line, r.study_id.as_str()))
        .collect();
    let last = 2 + empty as u64 + blank_records as u64 + empty as u64 + 1;
    assert_eq!(got, [(2, "S1"), (last, "S2")]);
    let peak = super::ingest::PEAK_PENDING_RUNS.with(|p| p.get());
    // One run per line that has something on it, within the csv reader's
    // 64 KiB buffer: at most 64 Ki / 3 for `,\r\n` lines.
    assert!(
        peak <= (1 << 16) / 3 + 4,
        "{peak} runs of line breaks held at once for {last} lines"
    );
}
