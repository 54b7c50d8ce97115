//! The master person index as the link stage holds it: one collect of the
//! columns linkage compares, with every blocking key computed by polars
//! expressions, and the value frequencies the scoring model weighs an
//! agreement by.
//!
//! Names are read only when the agreement allows manual validation: an
//! agreement without it never touches them, not even in memory.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;

use crate::domain::date::from_epoch_days;
use crate::domain::nhs_number::digits_of;
use crate::domain::{Gender, Postcode};

use super::LinkError;

/// Column names of the collected index and of the cohort's blocking-key
/// frames (a key joins on the columns of the same name on both sides).
pub mod column {
    pub const IDX: &str = "idx";
    pub const ROW: &str = "row";
    pub const PERSON_ID: &str = "person_id";
    pub const NHS_NUMBER: &str = "nhs_number";
    pub const DOB: &str = "dob";
    pub const GENDER: &str = "gender";
    pub const POSTCODE: &str = "postcode";
    pub const FORENAME: &str = "forename";
    pub const SURNAME: &str = "surname";
    pub const DISTRICT: &str = "district";
    pub const SURNAME_INITIAL: &str = "surname_initial";
    pub const FORENAME_KEY: &str = "forename_key";
    pub const SURNAME_KEY: &str = "surname_key";
    pub const YEAR: &str = "year";
    /// Soundex of the surname key, as a number (see `phonetic`).
    pub const SURNAME_SOUNDEX: &str = "surname_soundex";
}

/// One person of the index, as far as linkage compares them.
#[derive(Clone)]
pub struct IndexPerson<'a> {
    pub person_id: i64,
    pub nhs_number: Option<&'a str>,
    pub date_of_birth: Option<NaiveDate>,
    pub gender: Option<Gender>,
    pub postcode: Option<Postcode>,
    pub forename_key: Option<&'a str>,
    pub surname_key: Option<&'a str>,
}

impl IndexPerson<'_> {
    pub fn nhs_digits(&self) -> Option<[u8; 10]> {
        self.nhs_number.and_then(digits_of)
    }
}

/// The collected index.
pub struct Index {
    pub frame: DataFrame,
    person_id: Int64Chunked,
    nhs_number: StringChunked,
    dob: Int32Chunked,
    gender: StringChunked,
    postcode: StringChunked,
    forename: StringChunked,
    surname: StringChunked,
    forename_key: StringChunked,
    surname_key: StringChunked,
}

impl Index {
    /// Collects the index with its blocking keys.
    pub fn load(demographics: LazyFrame, names: bool) -> Result<Self, LinkError> {
        use column::*;
        let wrap = |source| LinkError::Demographics { source };
        let name = |c: &str| {
            if names {
                col(c).cast(DataType::String)
            } else {
                lit(NULL).cast(DataType::String).alias(c)
            }
        };
        let normalised = |c: &str| name(c).str().strip_chars(lit(NULL)).str().to_uppercase();
        // Postcodes in the index are normalised "AB1 2CD" (DESIGN.md), so
        // the district is the postcode without " 2CD".
        let district = col(POSTCODE).str().head(lit(-4));
        let frame = crate::tables::collect(
            demographics
                .select([
                    col(PERSON_ID).cast(DataType::Int64),
                    col(NHS_NUMBER).cast(DataType::String),
                    col("date_of_birth")
                        .cast(DataType::Date)
                        .cast(DataType::Int32)
                        .alias(DOB),
                    col(GENDER).cast(DataType::String),
                    col(POSTCODE).cast(DataType::String),
                    name(FORENAME),
                    name(SURNAME),
                ])
                .with_row_index(IDX, None)
                .with_columns([
                    district.alias(DISTRICT),
                    normalised(FORENAME).alias(FORENAME_KEY),
                    normalised(SURNAME).alias(SURNAME_KEY),
                    col(DOB)
                        .cast(DataType::Date)
                        .dt()
                        .year()
                        .cast(DataType::Int32)
                        .alias(YEAR),
                ])
                .with_column(col(SURNAME_KEY).str().head(lit(1)).alias(SURNAME_INITIAL)),
        )
        .map_err(wrap)?;
        // One chunk per column, so that reading person `i` is an offset.
        let mut frame = frame;
        let soundex: Int32Chunked = frame
            .column(SURNAME_KEY)
            .map_err(wrap)?
            .str()
            .map_err(wrap)?
            .iter()
            .map(|s| s.and_then(super::phonetic::soundex))
            .collect();
        frame
            .with_column(soundex.with_name(SURNAME_SOUNDEX.into()).into_column())
            .map_err(wrap)?;
        frame.rechunk_mut_par();
        let str_col = |c: &str| -> Result<StringChunked, LinkError> {
            Ok(frame.column(c).map_err(wrap)?.str().map_err(wrap)?.clone())
        };
        Ok(Self {
            person_id: frame
                .column(PERSON_ID)
                .map_err(wrap)?
                .i64()
                .map_err(wrap)?
                .clone(),
            nhs_number: str_col(NHS_NUMBER)?,
            dob: frame
                .column(DOB)
                .map_err(wrap)?
                .i32()
                .map_err(wrap)?
                .clone(),
            gender: str_col(GENDER)?,
            postcode: str_col(POSTCODE)?,
            forename: str_col(FORENAME)?,
            surname: str_col(SURNAME)?,
            forename_key: str_col(FORENAME_KEY)?,
            surname_key: str_col(SURNAME_KEY)?,
            frame,
        })
    }

    pub fn len(&self) -> usize {
        self.frame.height()
    }

    /// Person `idx` (a row of the collected frame; always in range for an
    /// `idx` taken from a join with this frame).
    pub fn person(&self, idx: u32) -> IndexPerson<'_> {
        let i = idx as usize;
        IndexPerson {
            person_id: self.person_id.get(i).unwrap_or_default(),
            nhs_number: self.nhs_number.get(i),
            date_of_birth: self.dob.get(i).and_then(from_epoch_days),
            gender: self.gender.get(i).and_then(Gender::parse),
            postcode: self.postcode.get(i).and_then(Postcode::parse),
            forename_key: self.forename_key.get(i).filter(|s| !s.is_empty()),
            surname_key: self.surname_key.get(i).filter(|s| !s.is_empty()),
        }
    }

    /// Person `idx`'s key in the index.
    pub fn person_id(&self, idx: u32) -> i64 {
        self.person_id.get(idx as usize).unwrap_or_default()
    }

    /// Person `idx`'s forename and surname as the index holds them, for the
    /// reviewer (comparisons use the keys, in [`Index::person`]).
    pub fn names(&self, idx: u32) -> (Option<&str>, Option<&str>) {
        let i = idx as usize;
        (self.forename.get(i), self.surname.get(i))
    }

    /// How often each value of `key_column` occurs: `(value, count)`.
    pub fn value_counts(&self, key_column: &str) -> Result<Vec<(String, u32)>, LinkError> {
        let wrap = |source| LinkError::Demographics { source };
        let df = self
            .frame
            .clone()
            .lazy()
            .filter(col(key_column).is_not_null())
            .group_by([col(key_column)])
            .agg([len().cast(DataType::UInt32).alias("n")])
            .collect()
            .map_err(wrap)?;
        let keys = df.column(key_column).map_err(wrap)?.str().map_err(wrap)?;
        let counts = df.column("n").map_err(wrap)?.u32().map_err(wrap)?;
        Ok(keys
            .iter()
            .zip(counts.iter())
            .filter_map(|(k, n)| Some((k?.to_string(), n?)))
            .collect())
    }

    /// The chance that two different people drawn at random share their
    /// date of birth, year of birth, postcode, sector, district and area:
    /// `Σ n_v (n_v − 1) / (N (N − 1))` over the values `v` of each (nulls
    /// never agree). One group-by of the dates and one count of the
    /// postcodes over the index; the coarser levels (years, sectors,
    /// districts, areas) are summed from those groups, which are few beside
    /// the people. The sums are of whole numbers, kept in integers, so they
    /// are exact whatever the order of summing.
    pub fn coincidences(&self) -> Result<Coincidences, LinkError> {
        use column::*;
        let wrap = |source| LinkError::Demographics { source };
        let total = self.len().max(2) as f64;
        let pairs = |n: u64| u128::from(n) * u128::from(n.saturating_sub(1));
        let share = |p: u128| p as f64 / (total * (total - 1.0));

        let by_dob = self
            .frame
            .clone()
            .lazy()
            .select([col(DOB)])
            .filter(col(DOB).is_not_null())
            .group_by([col(DOB)])
            .agg([len().cast(DataType::UInt64).alias("n")])
            .collect()
            .map_err(wrap)?;
        let dates = by_dob.column(DOB).map_err(wrap)?.i32().map_err(wrap)?;
        let counts = by_dob.column("n").map_err(wrap)?.u64().map_err(wrap)?;
        let mut dob = 0u128;
        let mut years: HashMap<i32, u64> = HashMap::new();
        for (d, n) in dates.iter().zip(counts.iter()) {
            let (Some(d), Some(n)) = (d, n) else { continue };
            dob += pairs(n);
            // A date far out of range has no year (and must not overflow).
            let date = d.checked_add(719_163).and_then(|_| from_epoch_days(d));
            if let Some(year) = date.map(|d| d.year()) {
                *years.entry(year).or_default() += n;
            }
        }
        let year = years.values().map(|&n| pairs(n)).sum();

        // Counted here over the column's string views rather than by a
        // polars group-by: the groups are only summed (never a frame), and
        // borrowing the views spares materialising 800k group keys.
        let mut by_postcode: PlHashMap<&str, u64> = PlHashMap::default();
        for p in self.postcode.iter().flatten() {
            *by_postcode.entry(p).or_default() += 1;
        }
        // Each level is summed from the one below it: the district is the
        // sector without its last two characters as the sector is the
        // postcode without its last two, so only the first step sees every
        // postcode.
        fn coarser<'s>(
            finer: &PlHashMap<&'s str, u64>,
            key: impl Fn(&'s str) -> &'s str,
        ) -> PlHashMap<&'s str, u64> {
            let mut out: PlHashMap<&str, u64> = PlHashMap::default();
            for (&k, &n) in finer {
                *out.entry(key(k)).or_default() += n;
            }
            out
        }
        let sectors = coarser(&by_postcode, |p| all_but_last(p, 2));
        let districts = coarser(&sectors, |s| all_but_last(s, 2));
        let areas = coarser(&districts, area_of);
        let sum = |m: &PlHashMap<&str, u64>| m.values().map(|&n| pairs(n)).sum::<u128>();
        Ok(Coincidences {
            dob: share(dob),
            year: share(year),
            postcode: share(sum(&by_postcode)),
            sector: share(sum(&sectors)),
            district: share(sum(&districts)),
            area: share(sum(&areas)),
        })
    }
}

/// `s` without its last `n` characters (empty when it has no more), as
/// polars' `str.head(-n)`: the sector is the postcode without its last two
/// characters, the district without its last four.
fn all_but_last(s: &str, n: usize) -> &str {
    let keep = s.chars().count().saturating_sub(n);
    match s.char_indices().nth(keep) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// The area of a district: its first two characters without trailing
/// digits ("LS1" is "LS", "M14" is "M").
fn area_of(district: &str) -> &str {
    let two = match district.char_indices().nth(2) {
        Some((at, _)) => &district[..at],
        None => district,
    };
    two.trim_end_matches(|c: char| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::{all_but_last, area_of};

    #[test]
    fn postcode_levels_cut_as_polars_head_does() {
        assert_eq!(all_but_last("LS1 4AP", 2), "LS1 4");
        assert_eq!(all_but_last("LS1 4AP", 4), "LS1");
        assert_eq!(all_but_last("LS1 4", 2), "LS1");
        assert_eq!(all_but_last("EC1A 1BB", 4), "EC1A");
        assert_eq!(all_but_last("AB", 4), "");
        assert_eq!(all_but_last("", 2), "");
        assert_eq!(area_of("LS1"), "LS");
        assert_eq!(area_of("M14"), "M");
        assert_eq!(area_of("EC1A"), "EC");
        assert_eq!(area_of(""), "");
    }
}

/// See [`Index::coincidences`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coincidences {
    pub dob: f64,
    pub year: f64,
    pub postcode: f64,
    pub sector: f64,
    pub district: f64,
    pub area: f64,
}
