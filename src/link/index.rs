//! The master person index as the link stage holds it: one collect of the
//! columns linkage compares, with every blocking key computed by polars
//! expressions, and the value frequencies the scoring model weighs an
//! agreement by.
//!
//! Names are read only when the agreement allows manual validation: an
//! agreement without it never touches them, not even in memory.

use chrono::NaiveDate;
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
}

/// One person of the index, as far as linkage compares them.
#[derive(Clone)]
pub struct IndexPerson<'a> {
    pub person_id: i64,
    pub nhs_number: Option<&'a str>,
    pub date_of_birth: Option<NaiveDate>,
    pub gender: Option<Gender>,
    pub postcode: Option<Postcode>,
    pub forename: Option<&'a str>,
    pub surname: Option<&'a str>,
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
            forename: self.forename.get(i),
            surname: self.surname.get(i),
            forename_key: self.forename_key.get(i).filter(|s| !s.is_empty()),
            surname_key: self.surname_key.get(i).filter(|s| !s.is_empty()),
        }
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
    /// never agree). Two group-bys over the index (dates, postcodes); the
    /// coarser levels are summed from those groups.
    pub fn coincidences(&self) -> Result<Coincidences, LinkError> {
        use column::*;
        let wrap = |source| LinkError::Demographics { source };
        let total = self.len().max(2) as f64;
        let pairs = |n: Expr| (n.clone() * (n - lit(1.0))).sum();
        let level = |groups: &LazyFrame, key: Expr| {
            groups
                .clone()
                .group_by([key])
                .agg([col("n").sum().alias("n")])
                .select([pairs(col("n")).alias("pairs")])
        };
        let by_dob = self
            .frame
            .clone()
            .lazy()
            .filter(col(DOB).is_not_null())
            .group_by([col(DOB)])
            .agg([len().cast(DataType::Float64).alias("n")])
            .with_column(
                col(DOB)
                    .cast(DataType::Date)
                    .dt()
                    .year()
                    .cast(DataType::Int32)
                    .alias(YEAR),
            )
            .collect()
            .map_err(wrap)?
            .lazy();
        let by_postcode = self
            .frame
            .clone()
            .lazy()
            .filter(col(POSTCODE).is_not_null())
            .group_by([col(POSTCODE)])
            .agg([len().cast(DataType::Float64).alias("n")])
            .collect()
            .map_err(wrap)?
            .lazy();
        let district = col(POSTCODE).str().head(lit(-4));
        let plans = [
            level(&by_dob, col(DOB)),
            level(&by_dob, col(YEAR)),
            level(&by_postcode, col(POSTCODE)),
            level(&by_postcode, col(POSTCODE).str().head(lit(-2))),
            level(&by_postcode, district.clone()),
            level(
                &by_postcode,
                district
                    .str()
                    .head(lit(2))
                    .str()
                    .strip_chars_end(lit("0123456789")),
            ),
        ];
        let mut p = [0.0; 6];
        for (slot, plan) in p.iter_mut().zip(plans) {
            let df = plan.collect().map_err(wrap)?;
            let n = df
                .column("pairs")
                .map_err(wrap)?
                .f64()
                .map_err(wrap)?
                .get(0)
                .unwrap_or(0.0);
            *slot = n / (total * (total - 1.0));
        }
        Ok(Coincidences {
            dob: p[0],
            year: p[1],
            postcode: p[2],
            sector: p[3],
            district: p[4],
            area: p[5],
        })
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
