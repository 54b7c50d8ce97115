//! Recognising direct identifiers whatever a column is called (issue #12).
//!
//! Three rules, any one of which is enough:
//! - **by name**: the names the cohort reader knows (`nhs_no`, `dob`,
//!   `first_name`, …), the names real extracts use (HES's `NEWNHSNO`,
//!   `DOB` and `HOMEADD`), and the same with a prefix saying whose it is
//!   (`patient_postcode`, `mother_nhs_number`);
//! - **by declaration**: the site config's `identifiers` list for the
//!   dataset;
//! - **by content**, on the values that would leave: half or more of a
//!   sample being valid NHS numbers (modulus 11) or full UK postcodes, or
//!   being the person's own date of birth in the master person index.
//!
//! Why the index for dates of birth: every date column parses as a date,
//! and a date's range says little (an admission date from 1990 and a date
//! of birth from 1990 look alike). What makes a column a date of birth is
//! that, person by person, it *is* their date of birth. An event date equals
//! the person's date of birth by chance about once in 30 000 rows, so a
//! column where half the rows do is a date of birth (or, like a baby's
//! admission at birth, tells it). The test compares each row with the
//! index's date of birth for the same person, which the link stage hands
//! over with the linked cohort.

use polars::prelude::*;

use super::Transform;
use crate::domain::{parse_date, NhsNumber, Postcode};
use crate::ingest::{normalise_header, CohortField};

/// What kind of direct identifier a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierKind {
    NhsNumber,
    /// Another national number for a person (CHI, H&C, National Insurance).
    NationalNumber,
    DateOfBirth,
    Postcode,
    Name,
    Address,
    /// Telephone number or e-mail address.
    Contact,
    /// The custodian's own key for the person (`person_id`, the dataset key).
    PersonKey,
    /// Declared by the site config, of no kind dars recognises by name.
    Declared,
}

impl IdentifierKind {
    /// "an NHS number", for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::NhsNumber => "an NHS number",
            Self::NationalNumber => "a national identity number",
            Self::DateOfBirth => "a date of birth",
            Self::Postcode => "a full postcode",
            Self::Name => "a name",
            Self::Address => "an address",
            Self::Contact => "a telephone number or e-mail address",
            Self::PersonKey => "the custodian's person key",
            Self::Declared => "a direct identifier",
        }
    }

    /// The transforms that make this kind safe to release without
    /// `identifiable = true`.
    pub fn safe_transforms(self) -> &'static [Transform] {
        match self {
            Self::DateOfBirth => &[Transform::Year, Transform::Month, Transform::Pseudonym],
            Self::Postcode => &[Transform::District, Transform::Sector, Transform::Pseudonym],
            // Declared identifiers of no known kind: any generalising
            // transform is the site's call.
            Self::Declared => &Transform::ALL,
            _ => &[Transform::Pseudonym],
        }
    }

    /// The fix to suggest for a field of this kind.
    pub fn fix(self, column: &str) -> String {
        let safe: Vec<String> = self
            .safe_transforms()
            .iter()
            .map(|t| format!("{column}:{}", t.name()))
            .collect();
        format!(
            "release it as {} or remove it; only a DSA that allows direct identifiers may set identifiable = true",
            safe.join(" or ")
        )
    }
}

/// Which rule recognised an identifier.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The column's name is one identifiers go by.
    Name,
    /// The column is the dataset's key or `person_id`.
    Key,
    /// The site config lists it in `datasets.NAME.identifiers`.
    Declared,
    /// The values: `share` percent of `sampled` non-empty values matched.
    Content {
        share: u32,
        sampled: usize,
        test: &'static str,
    },
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name => f.write_str("rule: name (a name direct identifiers go by)"),
            Self::Key => f.write_str("rule: key (the dataset's person key)"),
            Self::Declared => {
                f.write_str("rule: declared (the site config lists it under `identifiers`)")
            }
            Self::Content {
                share,
                sampled,
                test,
            } => write!(
                f,
                "rule: content ({share}% of {sampled} sampled values {test})"
            ),
        }
    }
}

/// Leading words that say whose identifier it is (`patient_postcode`).
const OWNERS: [&str; 16] = [
    "patient",
    "pt",
    "person",
    "persons",
    "client",
    "subject",
    "participant",
    "mother",
    "mothers",
    "baby",
    "babys",
    "child",
    "new",
    "current",
    "usual",
    "registered",
];

/// Names, without separators, of each kind beyond the cohort's aliases.
const NAMES: [(&str, IdentifierKind); 44] = [
    ("nhsnumber", IdentifierKind::NhsNumber),
    ("nhsno", IdentifierKind::NhsNumber),
    ("nhsnum", IdentifierKind::NhsNumber),
    ("nhs", IdentifierKind::NhsNumber),
    ("newnhsno", IdentifierKind::NhsNumber),
    ("nhsid", IdentifierKind::NhsNumber),
    ("chi", IdentifierKind::NationalNumber),
    ("chinumber", IdentifierKind::NationalNumber),
    ("chino", IdentifierKind::NationalNumber),
    ("hcn", IdentifierKind::NationalNumber),
    ("hcnumber", IdentifierKind::NationalNumber),
    ("nino", IdentifierKind::NationalNumber),
    ("nationalinsurancenumber", IdentifierKind::NationalNumber),
    ("dateofbirth", IdentifierKind::DateOfBirth),
    ("dob", IdentifierKind::DateOfBirth),
    ("birthdate", IdentifierKind::DateOfBirth),
    ("birthdt", IdentifierKind::DateOfBirth),
    ("dobfull", IdentifierKind::DateOfBirth),
    ("postcode", IdentifierKind::Postcode),
    ("postalcode", IdentifierKind::Postcode),
    ("pcode", IdentifierKind::Postcode),
    ("homeadd", IdentifierKind::Postcode),
    ("postcodefull", IdentifierKind::Postcode),
    ("forename", IdentifierKind::Name),
    ("forenames", IdentifierKind::Name),
    ("firstname", IdentifierKind::Name),
    ("givenname", IdentifierKind::Name),
    ("middlename", IdentifierKind::Name),
    ("surname", IdentifierKind::Name),
    ("lastname", IdentifierKind::Name),
    ("familyname", IdentifierKind::Name),
    ("maidenname", IdentifierKind::Name),
    ("fullname", IdentifierKind::Name),
    ("name", IdentifierKind::Name),
    ("address", IdentifierKind::Address),
    ("homeaddress", IdentifierKind::Address),
    ("streetaddress", IdentifierKind::Address),
    ("addr", IdentifierKind::Address),
    ("email", IdentifierKind::Contact),
    ("emailaddress", IdentifierKind::Contact),
    ("phone", IdentifierKind::Contact),
    ("telephone", IdentifierKind::Contact),
    ("mobile", IdentifierKind::Contact),
    ("telno", IdentifierKind::Contact),
];

/// The kind of identifier a column's name says it holds, if any.
pub fn kind_by_name(column: &str) -> Option<IdentifierKind> {
    let norm = normalise_header(column).replace('.', "");
    let words: Vec<&str> = norm.split('_').filter(|w| !w.is_empty()).collect();
    // Skip owner words one at a time: `patient_postcode`, `mother_nhs_no`.
    for start in 0..words.len() {
        if start > 0 && !OWNERS.contains(&words[start - 1]) {
            break;
        }
        let rest = &words[start..];
        if let Some(kind) = kind_of_words(rest) {
            return Some(kind);
        }
    }
    None
}

fn kind_of_words(words: &[&str]) -> Option<IdentifierKind> {
    let joined = words.join("_");
    let compact = words.concat();
    match CohortField::from_header(&joined) {
        Some(CohortField::NhsNumber) => return Some(IdentifierKind::NhsNumber),
        Some(CohortField::DateOfBirth) => return Some(IdentifierKind::DateOfBirth),
        Some(CohortField::Postcode) => return Some(IdentifierKind::Postcode),
        Some(CohortField::Forename | CohortField::Surname) => return Some(IdentifierKind::Name),
        _ => {}
    }
    if let Some((_, kind)) = NAMES.iter().find(|(n, _)| *n == compact) {
        return Some(*kind);
    }
    // Numbered address and telephone lines: `address_line_1`, `addr2`,
    // `phone_number`, `telephone_no`, `mobile_number`.
    let stem = compact.trim_end_matches(|c: char| c.is_ascii_digit());
    for (prefix, kind) in [
        ("addressline", IdentifierKind::Address),
        ("address", IdentifierKind::Address),
        ("addr", IdentifierKind::Address),
        ("phonenumber", IdentifierKind::Contact),
        ("phoneno", IdentifierKind::Contact),
        ("telephonenumber", IdentifierKind::Contact),
        ("telephoneno", IdentifierKind::Contact),
        ("mobilenumber", IdentifierKind::Contact),
        ("mobileno", IdentifierKind::Contact),
    ] {
        if stem == prefix {
            return Some(kind);
        }
    }
    None
}

/// Whether `column` is in a site's `identifiers` list (names compared as
/// the cohort's are: case, spaces, hyphens and underscores alike).
pub fn is_declared(column: &str, declared: &[String]) -> bool {
    let n = normalise_header(column);
    declared.iter().any(|d| normalise_header(d) == n)
}

/// Values sampled from a column for the content rules.
pub const SAMPLE: usize = 10_000;

/// The share, in percent, at or above which the content rules call a
/// column an identifier.
pub const CONTENT_SHARE: u32 = 50;

/// The content rule that `values` (a column about to be released) meets,
/// if any. `dob` is the index's date of birth of each row's person, aligned
/// with `values`, when known.
pub fn kind_by_content(
    values: &Column,
    dob: Option<&Column>,
) -> PolarsResult<Option<(IdentifierKind, Rule)>> {
    let n = values.len();
    if n == 0 {
        return Ok(None);
    }
    // Evenly spaced rows, so a sorted output is sampled across its range.
    let rows: Vec<usize> = if n <= SAMPLE {
        (0..n).collect()
    } else {
        (0..SAMPLE).map(|i| i * n / SAMPLE).collect()
    };
    let idx = IdxCa::from_vec("idx".into(), rows.iter().map(|&r| r as IdxSize).collect());
    let sample = values.take(&idx)?;
    let dob_sample = match dob {
        Some(d) => Some(d.take(&idx)?.cast(&DataType::Date)?),
        None => None,
    };
    let dtype = sample.dtype().clone();
    let text = if dtype.is_string() || dtype.is_integer() {
        Some(sample.cast(&DataType::String)?)
    } else {
        None
    };
    let dates = if dtype.is_temporal() {
        Some(sample.cast(&DataType::Date)?)
    } else {
        None
    };

    let mut sampled = 0usize;
    let (mut nhs, mut postcode, mut birth) = (0usize, 0usize, 0usize);
    let dob_days = dob_sample
        .as_ref()
        .map(|d| d.date().map(|c| c.physical().clone()))
        .transpose()?;
    let date_days = dates
        .as_ref()
        .map(|d| d.date().map(|c| c.physical().clone()))
        .transpose()?;
    let text = text.as_ref().map(|t| t.str().cloned()).transpose()?;
    for i in 0..sample.len() {
        let person_dob = dob_days.as_ref().and_then(|d| d.get(i));
        if let Some(t) = text.as_ref() {
            let Some(v) = t.get(i).map(str::trim).filter(|v| !v.is_empty()) else {
                continue;
            };
            sampled += 1;
            if NhsNumber::parse(v).is_ok() {
                nhs += 1;
            }
            if Postcode::parse(v).is_some() && v.chars().any(|c| c.is_ascii_alphabetic()) {
                postcode += 1;
            }
            if let (Some(d), Ok(parsed)) = (person_dob, parse_date(v)) {
                if crate::domain::date::to_epoch_days(parsed) == d {
                    birth += 1;
                }
            }
        } else if let Some(days) = date_days.as_ref() {
            let Some(v) = days.get(i) else { continue };
            sampled += 1;
            if person_dob == Some(v) {
                birth += 1;
            }
        }
    }
    if sampled == 0 {
        return Ok(None);
    }
    let share = |hits: usize| ((hits * 100) / sampled) as u32;
    for (hits, kind, test) in [
        (
            nhs,
            IdentifierKind::NhsNumber,
            "are valid NHS numbers (modulus 11)",
        ),
        (postcode, IdentifierKind::Postcode, "are full UK postcodes"),
        (
            birth,
            IdentifierKind::DateOfBirth,
            "are the person's date of birth in the master person index",
        ),
    ] {
        if hits > 0 && share(hits) >= CONTENT_SHARE {
            return Ok(Some((
                kind,
                Rule::Content {
                    share: share(hits),
                    sampled,
                    test,
                },
            )));
        }
    }
    Ok(None)
}
