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
    /// A hospital or other local patient number (`hospital_number`, `mrn`,
    /// `local_patient_id`): one look-up away from the person.
    LocalNumber,
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
            Self::LocalNumber => "a hospital or local patient number",
            Self::Declared => "a direct identifier",
        }
    }

    /// The transforms that make this kind safe to release without
    /// `identifiable = true`.
    pub fn safe_transforms(self) -> &'static [Transform] {
        match self {
            Self::DateOfBirth => &[Transform::Year, Transform::Month, Transform::Pseudonym],
            Self::Postcode => &[Transform::District, Transform::Sector, Transform::Pseudonym],
            // Declared identifiers of no known kind: the transforms that
            // generalise dates and postcodes, whichever it holds. Bands are
            // for ages: the band of a number is still the number's
            // neighbourhood (issue #12).
            Self::Declared => &[
                Transform::Year,
                Transform::Month,
                Transform::District,
                Transform::Sector,
                Transform::Pseudonym,
            ],
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
    /// The values: `hits` of `sampled` non-empty values matched.
    Content {
        hits: usize,
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
                hits,
                sampled,
                test,
            } => write!(
                f,
                "rule: content ({hits} of {sampled} sampled values {test})"
            ),
        }
    }
}

/// Words that say whose identifier it is, before or after it
/// (`patient_postcode`, `dob_baby`).
const OWNERS: [&str; 20] = [
    "patient",
    "patients",
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
    "childs",
    "infant",
    "new",
    "current",
    "usual",
    "registered",
    "previous",
];

/// Names, without separators, of each kind beyond the cohort's aliases.
const NAMES: [(&str, IdentifierKind); 99] = [
    ("nhsnumber", IdentifierKind::NhsNumber),
    ("nhsno", IdentifierKind::NhsNumber),
    ("nhsnum", IdentifierKind::NhsNumber),
    ("nhs", IdentifierKind::NhsNumber),
    ("newnhsno", IdentifierKind::NhsNumber),
    ("nhsid", IdentifierKind::NhsNumber),
    ("nnn", IdentifierKind::NhsNumber),
    ("nhsnumberbaby", IdentifierKind::NhsNumber),
    ("nhsnomother", IdentifierKind::NhsNumber),
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
    ("dobbaby", IdentifierKind::DateOfBirth),
    ("dobmother", IdentifierKind::DateOfBirth),
    ("mydob", IdentifierKind::DateOfBirth),
    ("birthday", IdentifierKind::DateOfBirth),
    ("dateborn", IdentifierKind::DateOfBirth),
    ("born", IdentifierKind::DateOfBirth),
    ("bornon", IdentifierKind::DateOfBirth),
    ("postcode", IdentifierKind::Postcode),
    ("postalcode", IdentifierKind::Postcode),
    ("pcode", IdentifierKind::Postcode),
    ("homeadd", IdentifierKind::Postcode),
    ("postcodefull", IdentifierKind::Postcode),
    ("fullpostcode", IdentifierKind::Postcode),
    ("zipcode", IdentifierKind::Postcode),
    ("zip", IdentifierKind::Postcode),
    ("forename", IdentifierKind::Name),
    ("forenames", IdentifierKind::Name),
    ("firstname", IdentifierKind::Name),
    ("firstnames", IdentifierKind::Name),
    ("givenname", IdentifierKind::Name),
    ("givennames", IdentifierKind::Name),
    ("middlename", IdentifierKind::Name),
    ("middlenames", IdentifierKind::Name),
    ("othernames", IdentifierKind::Name),
    ("christianname", IdentifierKind::Name),
    ("fname", IdentifierKind::Name),
    ("lname", IdentifierKind::Name),
    ("sname", IdentifierKind::Name),
    ("mname", IdentifierKind::Name),
    ("surname", IdentifierKind::Name),
    ("lastname", IdentifierKind::Name),
    ("familyname", IdentifierKind::Name),
    ("maidenname", IdentifierKind::Name),
    ("birthname", IdentifierKind::Name),
    ("previoussurname", IdentifierKind::Name),
    ("fullname", IdentifierKind::Name),
    ("preferredname", IdentifierKind::Name),
    ("knownas", IdentifierKind::Name),
    ("nickname", IdentifierKind::Name),
    ("alias", IdentifierKind::Name),
    ("initials", IdentifierKind::Name),
    ("name", IdentifierKind::Name),
    ("names", IdentifierKind::Name),
    ("address", IdentifierKind::Address),
    ("homeaddress", IdentifierKind::Address),
    ("streetaddress", IdentifierKind::Address),
    ("addr", IdentifierKind::Address),
    ("street", IdentifierKind::Address),
    ("email", IdentifierKind::Contact),
    ("emailaddress", IdentifierKind::Contact),
    ("phone", IdentifierKind::Contact),
    ("telephone", IdentifierKind::Contact),
    ("mobile", IdentifierKind::Contact),
    ("telno", IdentifierKind::Contact),
    ("hospitalnumber", IdentifierKind::LocalNumber),
    ("hospitalno", IdentifierKind::LocalNumber),
    ("hospitalnum", IdentifierKind::LocalNumber),
    ("hospitalid", IdentifierKind::LocalNumber),
    ("hospno", IdentifierKind::LocalNumber),
    ("hospnum", IdentifierKind::LocalNumber),
    ("hospid", IdentifierKind::LocalNumber),
    ("mrn", IdentifierKind::LocalNumber),
    ("mrno", IdentifierKind::LocalNumber),
    ("medicalrecordnumber", IdentifierKind::LocalNumber),
    ("medicalrecordno", IdentifierKind::LocalNumber),
    ("localpatientid", IdentifierKind::LocalNumber),
    ("localpatientidentifier", IdentifierKind::LocalNumber),
    ("localpatientnumber", IdentifierKind::LocalNumber),
    ("localid", IdentifierKind::LocalNumber),
    ("lpi", IdentifierKind::LocalNumber),
    ("pasnumber", IdentifierKind::LocalNumber),
    ("pasno", IdentifierKind::LocalNumber),
    ("pasid", IdentifierKind::LocalNumber),
    ("casenotenumber", IdentifierKind::LocalNumber),
    ("casenoteno", IdentifierKind::LocalNumber),
    ("casenote", IdentifierKind::LocalNumber),
    ("unitnumber", IdentifierKind::LocalNumber),
    ("crn", IdentifierKind::LocalNumber),
];

/// Words that, after an owner word, make a person's own number
/// (`patient_id`, `client_number`, `subject_no`).
const NUMBER_WORDS: [&str; 6] = ["id", "identifier", "number", "no", "num", "ref"];

/// The kind of identifier a column's name says it holds, if any.
pub fn kind_by_name(column: &str) -> Option<IdentifierKind> {
    let norm = normalise_header(column).replace('.', "");
    // `dob_baby_1`, `forename2`: numbered copies are the same field.
    let words: Vec<&str> = norm
        .split(|c: char| c == '_' || !c.is_alphanumeric())
        .map(|w| w.trim_end_matches(|c: char| c.is_ascii_digit()))
        .filter(|w| !w.is_empty())
        .collect();
    // Skip owner words one at a time, at either end: `patient_postcode`,
    // `mother_nhs_no`, `dob_baby`.
    for start in 0..words.len() {
        if start > 0 && !OWNERS.contains(&words[start - 1]) {
            break;
        }
        for end in (start + 1..=words.len()).rev() {
            if end < words.len() && !OWNERS.contains(&words[end]) {
                break;
            }
            let rest = &words[start..end];
            if let Some(kind) = kind_of_words(rest) {
                return Some(kind);
            }
            // An owner's own number: `patient_id`, `client_no`.
            if start > 0 && rest.len() == 1 && NUMBER_WORDS.contains(&rest[0]) {
                let owner = words[start - 1];
                if !matches!(
                    owner,
                    "new" | "current" | "usual" | "registered" | "previous"
                ) {
                    return Some(IdentifierKind::LocalNumber);
                }
            }
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

/// The share, in percent of the sampled non-empty values, at or above which
/// the postcode and date-of-birth rules call a column an identifier. Low on
/// purpose (issue #12): a column where one value in ten is a postcode or
/// the person's date of birth discloses them, whatever the rest holds.
pub const CONTENT_SHARE: usize = 10;

/// Full postcodes that call a column an identifier whatever their share:
/// a few of them (in free-text notes, say) are already a disclosure.
pub const CONTENT_HITS: usize = 3;

/// What the content rules counted in a sample.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    /// Non-empty values looked at.
    sampled: usize,
    /// Values holding ten digits where an NHS number could be (`4711779965`,
    /// `471 177 9965`, or ten digits inside a note), and of those the ones
    /// passing modulus 11.
    nhs_shaped: usize,
    nhs: usize,
    postcode: usize,
    birth: usize,
}

/// One sampled value in the form the rules read it.
enum Value<'a> {
    Text(&'a str),
    /// Days since 1970-01-01.
    Day(i32),
    /// Milliseconds since 1970-01-01T00:00Z.
    Instant(i64),
}

/// The content rule that `values` (a column about to be released, or the
/// column a transform is applied to) meets, if any. `dob` is the index's
/// date of birth of each row's person, aligned with `values`, when known.
///
/// Read whatever the column's type: text, whole numbers, floats holding
/// whole numbers (`4711779965.0`), categoricals, binary, dates and
/// timestamps (with or without a time zone); numbers inside free text too.
///
/// - NHS numbers: half or more of the values holding ten digits pass
///   modulus 11 (about one in eleven random ten-digit numbers does), at
///   whatever share of the column.
/// - Full postcodes: [`CONTENT_HITS`] values, or [`CONTENT_SHARE`] percent.
/// - Dates of birth: [`CONTENT_SHARE`] percent are the person's own date of
///   birth in the index, as a date, a timestamp or text in any of the
///   cohort's formats with or without a time.
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
    let dob_days = match dob {
        Some(d) => Some(
            d.take(&idx)?
                .cast(&DataType::Date)?
                .date()?
                .physical()
                .clone(),
        ),
        None => None,
    };
    let person_dob = |i: usize| dob_days.as_ref().and_then(|d| d.get(i));
    let mut tally = Tally::default();
    let dtype = sample.dtype().clone();
    match &dtype {
        DataType::Date => {
            let days = sample.date()?.physical().clone();
            for (i, v) in days.iter().enumerate() {
                if let Some(v) = v {
                    tally.add(Value::Day(v), person_dob(i));
                }
            }
        }
        DataType::Datetime(unit, _) => {
            // The instant, in UTC: a date of birth at local midnight in
            // any time zone is within a day of the date itself.
            let per_ms = match unit {
                TimeUnit::Nanoseconds => 1_000_000,
                TimeUnit::Microseconds => 1_000,
                TimeUnit::Milliseconds => 1,
            };
            let t = sample.datetime()?.physical().clone();
            for (i, v) in t.iter().enumerate() {
                if let Some(v) = v {
                    tally.add(Value::Instant(v.div_euclid(per_ms)), person_dob(i));
                }
            }
        }
        d if d.is_float() || d.is_decimal() => {
            // Whole numbers written as floats (`4711779965.0`, a DOB as
            // `19610312.0`) are read as their digits.
            let f = sample.cast(&DataType::Float64)?;
            for (i, v) in f.f64()?.iter().enumerate() {
                let Some(v) = v.filter(|v| v.is_finite()) else {
                    continue;
                };
                let text = if v.fract() == 0.0 && v.abs() < 1e15 {
                    format!("{v:.0}")
                } else {
                    v.to_string()
                };
                tally.add(Value::Text(&text), person_dob(i));
            }
        }
        DataType::Boolean
        | DataType::Time
        | DataType::Duration(_)
        | DataType::List(_)
        | DataType::Null => {}
        _ => {
            // Text, whole numbers, categoricals, binary: as text. A value
            // that is not UTF-8 is not looked at.
            let text = sample.cast(&DataType::String)?;
            for (i, v) in text.str()?.iter().enumerate() {
                if let Some(v) = v {
                    tally.add(Value::Text(v), person_dob(i));
                }
            }
        }
    }
    Ok(tally.verdict())
}

impl Tally {
    fn add(&mut self, value: Value<'_>, person_dob: Option<i32>) {
        match value {
            Value::Text(raw) => {
                let v = raw.trim();
                if v.is_empty() {
                    return;
                }
                self.sampled += 1;
                let (shaped, valid) = nhs_in_text(v);
                self.nhs_shaped += usize::from(shaped);
                self.nhs += usize::from(valid);
                if postcode_in_text(v) {
                    self.postcode += 1;
                }
                if let (Some(d), Some(parsed)) = (person_dob, date_in_text(v)) {
                    if crate::domain::date::to_epoch_days(parsed) == d {
                        self.birth += 1;
                    }
                }
            }
            Value::Day(v) => {
                self.sampled += 1;
                if person_dob == Some(v) {
                    self.birth += 1;
                }
            }
            Value::Instant(ms) => {
                self.sampled += 1;
                const HOUR: i64 = 3_600_000;
                if let Some(d) = person_dob {
                    let midnight = i64::from(d) * 24 * HOUR;
                    // UTC offsets run from -12 to +14 hours.
                    if (midnight - 14 * HOUR..midnight + 36 * HOUR).contains(&ms) {
                        self.birth += 1;
                    }
                }
            }
        }
    }

    fn verdict(&self) -> Option<(IdentifierKind, Rule)> {
        if self.sampled == 0 {
            return None;
        }
        let share = |hits: usize| hits > 0 && hits * 100 >= CONTENT_SHARE * self.sampled;
        let rule = |hits: usize, test: &'static str| Rule::Content {
            hits,
            sampled: self.sampled,
            test,
        };
        if self.nhs > 0 && self.nhs * 2 >= self.nhs_shaped {
            return Some((
                IdentifierKind::NhsNumber,
                rule(self.nhs, "hold a valid NHS number (modulus 11)"),
            ));
        }
        if self.postcode >= CONTENT_HITS || share(self.postcode) {
            return Some((
                IdentifierKind::Postcode,
                rule(self.postcode, "hold a full UK postcode"),
            ));
        }
        if share(self.birth) {
            return Some((
                IdentifierKind::DateOfBirth,
                rule(
                    self.birth,
                    "are the person's date of birth in the master person index",
                ),
            ));
        }
        None
    }
}

/// Whether text holds ten digits where an NHS number could be (the whole
/// value, written with spaces or hyphens or not, or a run of digit groups
/// inside a note), and whether any such ten digits pass modulus 11.
fn nhs_in_text(v: &str) -> (bool, bool) {
    if let Some(d) = crate::domain::nhs_number::digits_of(v) {
        return (true, NhsNumber::from_digits(d).is_ok());
    }
    // Runs of digit groups joined by one space or hyphen: `471 177 9965`,
    // `4711779965`, inside `seen 4/3, NHS no 471-177-9965.`.
    let mut chains: Vec<Vec<Vec<u8>>> = vec![Vec::new()];
    let mut group: Vec<u8> = Vec::new();
    let mut last_sep = false;
    for c in v.chars() {
        if let Some(d) = c.to_digit(10).filter(|_| c.is_ascii_digit()) {
            group.push(d as u8);
            last_sep = false;
            continue;
        }
        let chain = chains.last_mut().expect("chains is never empty");
        if !group.is_empty() {
            chain.push(std::mem::take(&mut group));
        }
        if (c == ' ' || c == '-') && !last_sep && !chain.is_empty() {
            last_sep = true;
        } else if !chain.is_empty() {
            chains.push(Vec::new());
            last_sep = false;
        }
    }
    if !group.is_empty() {
        chains
            .last_mut()
            .expect("chains is never empty")
            .push(group);
    }
    let (mut shaped, mut valid) = (false, false);
    for chain in &chains {
        for start in 0..chain.len() {
            let mut digits: Vec<u8> = Vec::new();
            for g in &chain[start..] {
                digits.extend(g);
                if digits.len() >= 10 {
                    break;
                }
            }
            if digits.len() == 10 {
                shaped = true;
                let mut d = [0u8; 10];
                d.copy_from_slice(&digits);
                valid |= NhsNumber::from_digits(d).is_ok();
            }
        }
    }
    (shaped, valid)
}

/// Whether text is a full postcode, or holds one between other words.
fn postcode_in_text(v: &str) -> bool {
    let full = |p: &str| Postcode::parse(p).is_some() && p.chars().any(|c| c.is_ascii_alphabetic());
    if full(v) {
        return true;
    }
    let words: Vec<&str> = v
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(2).any(|w| {
        w[1].len() == 3
            && w[0].chars().any(|c| c.is_ascii_alphabetic())
            && full(&format!("{} {}", w[0], w[1]))
    }) || words.iter().any(|w| {
        w.len() >= 5
            && w.chars().any(|c| c.is_ascii_digit())
            && w.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && full(w)
    })
}

/// A date written in one of the cohort's formats, alone or followed by a
/// time (`1961-03-12T00:00:00`, `12/03/1961 00:00`, `1961-03-12 00:00:00+00`).
fn date_in_text(v: &str) -> Option<chrono::NaiveDate> {
    if let Ok(d) = parse_date(v) {
        return Some(d);
    }
    let (day, time) = v.split_once(['T', ' '])?;
    let is_time = time.chars().next().is_some_and(|c| c.is_ascii_digit())
        && time
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ':' | '.' | '+' | '-' | 'Z' | ' '));
    if is_time {
        parse_date(day).ok()
    } else {
        None
    }
}
