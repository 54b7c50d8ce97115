//! Field-by-field comparison of a cohort row with a person of the index,
//! and the Fellegi–Sunter weights that turn the comparisons into a score.
//!
//! Each field is compared at a level of agreement (see [`Level`]); each
//! level carries a weight `log2(m / u)`, where `m` is the probability of
//! that level when the pair is the same person and `u` when it is not (see
//! the module documentation of `link` for where each comes from). A
//! missing value on either side, gender not known and names not in use
//! weigh 0: they neither help nor hurt.

use chrono::{Datelike, NaiveDate};

use crate::domain::gender::GenderAgreement;
use crate::domain::{Gender, Postcode};

/// The fields compared, in the order of the review queue's columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    NhsNumber,
    DateOfBirth,
    Gender,
    Postcode,
    Forename,
    Surname,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Self::NhsNumber,
        Self::DateOfBirth,
        Self::Gender,
        Self::Postcode,
        Self::Forename,
        Self::Surname,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::NhsNumber => "nhs_number",
            Self::DateOfBirth => "date_of_birth",
            Self::Gender => "gender",
            Self::Postcode => "postcode",
            Self::Forename => "forename",
            Self::Surname => "surname",
        }
    }
}

/// How closely one field of a candidate pair agrees, best first per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Same value (NHS number, date of birth, name).
    Exact,
    /// NHS number: the cohort's number fails modulus 11 and one digit
    /// changed gives the index's.
    OneEdit,
    /// NHS number: two adjacent digits swapped.
    Transposition,
    /// Date of birth with day and month swapped.
    DayMonthSwapped,
    /// Date of birth one component (day, month or year) out, or one day.
    OneComponent,
    /// Date of birth: only the year agrees.
    YearOnly,
    /// Gender agrees.
    Agree,
    /// Gender not known on either side (neutral).
    NotKnown,
    /// Postcode levels.
    Full,
    Sector,
    District,
    Area,
    /// Names: Jaro-Winkler similarity at or above 0.92, 0.88, 0.70.
    Similar92,
    Similar88,
    Similar70,
    /// Forename and surname given the other way round.
    Swapped,
    /// Multi-part or hyphenated names sharing a part (`Smith-Jones`, `Jones`).
    TokenOverlap,
    Disagree,
    /// Blank on either side.
    Missing,
    /// Names when the agreement does not allow manual validation.
    NotUsed,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::OneEdit => "one_edit",
            Self::Transposition => "transposition",
            Self::DayMonthSwapped => "day_month_swapped",
            Self::OneComponent => "one_component",
            Self::YearOnly => "year_only",
            Self::Agree => "agree",
            Self::NotKnown => "not_known",
            Self::Full => "full",
            Self::Sector => "sector",
            Self::District => "district",
            Self::Area => "area",
            Self::Similar92 => "jaro_winkler_0.92",
            Self::Similar88 => "jaro_winkler_0.88",
            Self::Similar70 => "jaro_winkler_0.70",
            Self::Swapped => "swapped",
            Self::TokenOverlap => "token_overlap",
            Self::Disagree => "disagree",
            Self::Missing => "missing",
            Self::NotUsed => "not_used",
        }
    }

    /// Whether the level counts against the pair (shown to the reviewer as
    /// the disagreeing field of a partial match).
    pub fn disagrees(self) -> bool {
        !matches!(
            self,
            Self::Exact | Self::Agree | Self::NotKnown | Self::Full | Self::Missing | Self::NotUsed
        )
    }
}

/// NHS number digits as the cohort gave them: a valid number, or ten
/// digits that fail the check (a typo signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CohortNhs {
    Valid([u8; 10]),
    Typo([u8; 10]),
}

pub fn compare_nhs(cohort: Option<CohortNhs>, index: Option<[u8; 10]>) -> Level {
    let (Some(cohort), Some(index)) = (cohort, index) else {
        return Level::Missing;
    };
    match cohort {
        CohortNhs::Valid(d) if d == index => Level::Exact,
        // Two valid numbers are never one edit apart (modulus 11).
        CohortNhs::Valid(_) => Level::Disagree,
        CohortNhs::Typo(d) => {
            let differ: Vec<usize> = (0..10).filter(|&i| d[i] != index[i]).collect();
            match differ.as_slice() {
                [_] => Level::OneEdit,
                [i, j] if *j == i + 1 && d[*i] == index[*j] && d[*j] == index[*i] => {
                    Level::Transposition
                }
                _ => Level::Disagree,
            }
        }
    }
}

pub fn compare_dob(cohort: Option<NaiveDate>, index: Option<NaiveDate>) -> Level {
    let (Some(c), Some(i)) = (cohort, index) else {
        return Level::Missing;
    };
    if c == i {
        return Level::Exact;
    }
    if c.year() == i.year() && c.day() == i.month() && c.month() == i.day() {
        return Level::DayMonthSwapped;
    }
    let differing = usize::from(c.year() != i.year())
        + usize::from(c.month() != i.month())
        + usize::from(c.day() != i.day());
    if differing == 1 || (c - i).num_days().abs() == 1 {
        return Level::OneComponent;
    }
    if c.year() == i.year() {
        return Level::YearOnly;
    }
    Level::Disagree
}

pub fn compare_gender(cohort: Option<Gender>, index: Option<Gender>) -> Level {
    let (Some(c), Some(i)) = (cohort, index) else {
        return Level::Missing;
    };
    match c.compare(i) {
        GenderAgreement::Agree => Level::Agree,
        GenderAgreement::NotKnown => Level::NotKnown,
        GenderAgreement::Disagree => Level::Disagree,
    }
}

/// The cohort's postcode against the index's, given in its normal form
/// ([`Postcode::as_str`], which the index holds once per distinct value):
/// the levels of [`Postcode::compare`], on the strings.
pub fn compare_postcode(cohort: Option<&Postcode>, index: Option<&str>) -> Level {
    let (Some(c), Some(i)) = (cohort, index) else {
        return Level::Missing;
    };
    let c = c.as_str();
    // As `Postcode::district`, `sector` and `area`.
    let district = |s: &str| s.split(' ').next().unwrap_or(s).len();
    let area = |s: &str| s.bytes().take_while(u8::is_ascii_alphabetic).count();
    if c == i {
        Level::Full
    } else if c.get(..district(c) + 2) == i.get(..district(i) + 2) {
        Level::Sector
    } else if c[..district(c)] == i[..district(i)] {
        Level::District
    } else if c[..area(c)] == i[..area(i)] {
        Level::Area
    } else {
        Level::Disagree
    }
}

/// A name as compared: upper case, trimmed (the blocking key) and its parts
/// split on spaces, hyphens and apostrophes.
pub fn name_key(raw: &str) -> String {
    raw.trim().to_uppercase()
}

fn name_parts(key: &str) -> impl Iterator<Item = &str> {
    key.split([' ', '-', '\''])
        .filter(|p| p.chars().count() >= 2)
}

/// Jaro-Winkler similarity, exactly as `strsim::jaro_winkler` computes it.
/// Names are nearly always ASCII, where characters are bytes: that case
/// runs on the bytes with the match flags on the stack (strsim decodes the
/// characters again for every position and allocates the flags), and
/// gives the same counts and so the same value to the last bit. Anything
/// else goes to strsim.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    const MAX: usize = 64;
    if !(a.is_ascii() && b.is_ascii()) || a.len() > MAX || b.len() > MAX {
        return strsim::jaro_winkler(a, b);
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let sim = jaro_ascii::<MAX>(a, b);
    if sim > 0.7 {
        let prefix = a.iter().take(4).zip(b).take_while(|(x, y)| x == y).count();
        sim + 0.1 * prefix as f64 * (1.0 - sim)
    } else {
        sim
    }
}

/// `strsim::generic_jaro` on bytes, for `a` and `b` of at most `MAX` bytes.
fn jaro_ascii<const MAX: usize>(a: &[u8], b: &[u8]) -> f64 {
    let (a_len, b_len) = (a.len(), b.len());
    if a_len == 0 && b_len == 0 {
        return 1.0;
    } else if a_len == 0 || b_len == 0 {
        return 0.0;
    }
    let search_range = (a_len.max(b_len) / 2).saturating_sub(1);
    let mut a_flags = [false; MAX];
    let mut b_flags = [false; MAX];
    let mut matches = 0usize;
    for (i, &x) in a.iter().enumerate() {
        let min_bound = i.saturating_sub(search_range);
        let max_bound = b_len.min(i + search_range + 1);
        for j in min_bound..max_bound {
            if x == b[j] && !b_flags[j] {
                a_flags[i] = true;
                b_flags[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut j = 0;
    for (i, &x) in a.iter().enumerate() {
        if a_flags[i] {
            // As many `b` as `a` are flagged, so `j` stays in range.
            while !b_flags[j] {
                j += 1;
            }
            if x != b[j] {
                transpositions += 1;
            }
            j += 1;
        }
    }
    transpositions /= 2;
    ((matches as f64 / a_len as f64)
        + (matches as f64 / b_len as f64)
        + ((matches - transpositions) as f64 / matches as f64))
        / 3.0
}

/// Compares one name (both already keyed with [`name_key`]).
pub fn compare_name(cohort: Option<&str>, index: Option<&str>) -> Level {
    let (Some(c), Some(i)) = (cohort, index) else {
        return Level::Missing;
    };
    if c.is_empty() || i.is_empty() {
        return Level::Missing;
    }
    if c == i {
        return Level::Exact;
    }
    let jw = jaro_winkler(c, i);
    if jw >= 0.92 {
        return Level::Similar92;
    }
    // A name without a separator is one part.
    let separated = |s: &str| s.contains([' ', '-', '\'']);
    let multi_part = (separated(c) || separated(i))
        && (name_parts(c).nth(1).is_some() || name_parts(i).nth(1).is_some());
    if multi_part && name_parts(c).any(|p| name_parts(i).any(|q| p == q)) {
        return Level::TokenOverlap;
    }
    if jw >= 0.88 {
        Level::Similar88
    } else if jw >= 0.70 {
        Level::Similar70
    } else {
        Level::Disagree
    }
}

/// Both names, with the forename/surname swap checked first: a swap is
/// only a swap when both names cross-match exactly.
pub fn compare_names(
    cohort: (Option<&str>, Option<&str>),
    index: (Option<&str>, Option<&str>),
) -> (Level, Level) {
    let forename = compare_name(cohort.0, index.0);
    let surname = compare_name(cohort.1, index.1);
    if forename == Level::Exact || surname == Level::Exact {
        return (forename, surname);
    }
    let present = |s: Option<&str>| s.is_some_and(|s| !s.is_empty());
    let crossed =
        present(cohort.0) && present(cohort.1) && cohort.0 == index.1 && cohort.1 == index.0;
    if crossed {
        return (Level::Swapped, Level::Swapped);
    }
    (forename, surname)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PostcodeLevel;

    fn d(s: &str) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
    }

    #[test]
    fn nhs_levels() {
        let valid = [9, 4, 3, 4, 7, 6, 5, 9, 1, 9];
        let mut typo = valid;
        typo[2] = 8;
        let mut swap = valid;
        swap.swap(3, 4);
        assert_eq!(
            compare_nhs(Some(CohortNhs::Valid(valid)), Some(valid)),
            Level::Exact
        );
        assert_eq!(
            compare_nhs(Some(CohortNhs::Typo(typo)), Some(valid)),
            Level::OneEdit
        );
        assert_eq!(
            compare_nhs(Some(CohortNhs::Typo(swap)), Some(valid)),
            Level::Transposition
        );
        assert_eq!(compare_nhs(None, Some(valid)), Level::Missing);
    }

    #[test]
    fn postcode_levels_are_postcode_compare() {
        let all = [
            "LS1 4AP", "LS1 4AQ", "LS1 5AP", "LS2 4AP", "LS14 4AP", "L1 4AP", "M1 1AE", "M11 1AE",
            "EC1A 1BB", "EC1A 1BC", "EC1B 1BB", "E1 6AN", "GIR 0AA", "W1A 0AX",
        ];
        for a in all {
            for b in all {
                let (pa, pb) = (Postcode::parse(a).unwrap(), Postcode::parse(b).unwrap());
                let want = match pa.compare(&pb) {
                    PostcodeLevel::Full => Level::Full,
                    PostcodeLevel::Sector => Level::Sector,
                    PostcodeLevel::District => Level::District,
                    PostcodeLevel::Area => Level::Area,
                    PostcodeLevel::None => Level::Disagree,
                };
                assert_eq!(
                    compare_postcode(Some(&pa), Some(pb.as_str())),
                    want,
                    "{a} / {b}"
                );
            }
        }
        assert_eq!(compare_postcode(None, Some("LS1 4AP")), Level::Missing);
    }

    #[test]
    fn dob_levels() {
        let i = d("1980-03-07");
        assert_eq!(compare_dob(d("1980-03-07"), i), Level::Exact);
        assert_eq!(compare_dob(d("1980-07-03"), i), Level::DayMonthSwapped);
        assert_eq!(compare_dob(d("1981-03-07"), i), Level::OneComponent);
        assert_eq!(compare_dob(d("1980-03-06"), i), Level::OneComponent);
        // One day across a month end changes two components: still one day.
        assert_eq!(
            compare_dob(d("1990-02-01"), d("1990-01-31")),
            Level::OneComponent
        );
        assert_eq!(compare_dob(d("1980-11-20"), i), Level::YearOnly);
        assert_eq!(compare_dob(d("1975-11-20"), i), Level::Disagree);
    }

    #[test]
    fn jaro_winkler_is_strsim_to_the_bit() {
        let names = [
            "",
            "A",
            "AB",
            "BA",
            "SMITH",
            "SMYTH",
            "SMTH",
            "SMOTH",
            "SMITHE",
            "JONES",
            "JOHNSON",
            "JOHNSTON",
            "MARTHA",
            "MARHTA",
            "DWAYNE",
            "DUANE",
            "DIXON",
            "DICKSONX",
            "SMITH-JONES",
            "VAN DER BERG",
            "O'NEILL",
            "ONEILL",
            "ABCDEFGHIJ",
            "JIHGFEDCBA",
            "AAAAAB",
            "BAAAAA",
            "MÜLLER",
            "MULLER",
            "ZOË",
            "ZOE",
        ];
        for a in names {
            for b in names {
                assert_eq!(
                    jaro_winkler(a, b).to_bits(),
                    strsim::jaro_winkler(a, b).to_bits(),
                    "{a} / {b}"
                );
            }
        }
    }

    #[test]
    fn name_levels() {
        let k = |s: &str| name_key(s);
        let c = |a: &str, b: &str| compare_name(Some(&k(a)), Some(&k(b)));
        assert_eq!(c("Smith", "SMITH"), Level::Exact);
        assert_eq!(c("Smth", "Smith"), Level::Similar92);
        assert_eq!(c("Smoth", "Smith"), Level::Similar88);
        assert_eq!(c("Smith-Jones", "Jones"), Level::TokenOverlap);
        assert_eq!(c("Van der Berg", "Berg"), Level::TokenOverlap);
        assert_eq!(c("Smith", "Patel"), Level::Disagree);
        assert_eq!(
            compare_names(
                (Some(&k("Jones")), Some(&k("Emma"))),
                (Some(&k("Emma")), Some(&k("Jones")))
            ),
            (Level::Swapped, Level::Swapped)
        );
    }
}
