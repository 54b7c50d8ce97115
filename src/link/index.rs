//! The master person index as the link stage holds it: one collect of the
//! columns linkage compares, then held column by column with names and
//! postcodes dictionary-encoded (each distinct value normalised, parsed and
//! Soundex-coded once), the numbers blocking joins on, and the value
//! frequencies the scoring model weighs an agreement by.
//!
//! Names are read only when the agreement allows manual validation: an
//! agreement without it never touches them, not even in memory.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;

use crate::domain::date::from_epoch_days;
use crate::domain::nhs_number::digits_of;
use crate::domain::{Gender, Postcode};

use super::{compare, phonetic, LinkError};

/// Column names of the collected index, and the names of the columns a
/// blocking key joins on (see `block::Key::columns`).
pub mod column {
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
    pub postcode: Option<&'a Postcode>,
    pub forename_key: Option<&'a str>,
    pub surname_key: Option<&'a str>,
}

impl IndexPerson<'_> {
    pub fn nhs_digits(&self) -> Option<[u8; 10]> {
        self.nhs_number.and_then(digits_of)
    }
}

/// No value: a null in the index (or a value the dictionary lacks).
pub const NONE: u32 = u32::MAX;
/// A null date of birth or year.
pub const NO_DATE: i32 = i32::MIN;
/// An NHS number that is not ten ASCII digits (it can never equal a
/// cohort's valid number, which is written as its ten digits).
pub const NO_NHS: u64 = u64::MAX;

/// The collected index, held column by column. Strings that blocking and
/// comparison look at are dictionary-encoded: each distinct raw name and
/// postcode is normalised (upper-cased, Soundex-coded, parsed) once, not
/// once per person, and blocking joins on the dictionaries' numbers (see
/// `block`) instead of on strings.
pub struct Index {
    person_id: Int64Chunked,
    nhs_number: StringChunked,
    /// The NHS number as a number when it is ten ASCII digits, else
    /// [`NO_NHS`]: the key of tier 1's look-up.
    pub nhs_code: Vec<u64>,
    /// Days since 1970-01-01, [`NO_DATE`] when null.
    pub dob: Vec<i32>,
    /// Year of birth, [`NO_DATE`] when null.
    pub year: Vec<i32>,
    gender: Vec<Option<Gender>>,
    /// Per person: the raw postcode's number in [`Self::postcodes`], or
    /// [`NONE`].
    pub postcode: Vec<u32>,
    /// Per distinct raw postcode: the value parsed, its district's number
    /// (the raw value without its last four characters, as polars'
    /// `str.head(-4)`), and the raw value itself.
    postcodes: Vec<PostcodeEntry>,
    postcode_ids: PlHashMap<String, u32>,
    district_ids: PlHashMap<String, u32>,
    forename: StringChunked,
    surname: StringChunked,
    /// Per person: the number of the name key (trimmed, upper case) in
    /// [`Self::names`], or [`NONE`] when the name is null. Forenames and
    /// surnames share one dictionary, so that a surname can be looked up
    /// among forenames (names given the other way round).
    pub forename_key: Vec<u32>,
    pub surname_key: Vec<u32>,
    names: Vec<NameEntry>,
    name_ids: PlHashMap<String, u32>,
}

struct PostcodeEntry {
    raw: String,
    parsed: Option<Postcode>,
    district: u32,
}

/// A name key and what blocking and the model need of it.
struct NameEntry {
    key: String,
    /// Soundex of the key (see `phonetic`), or [`NONE`].
    soundex: u32,
    /// The first character as a number, or [`NONE`] for an empty key.
    initial: u32,
    /// People whose forename, and whose surname, has this key.
    forenames: u32,
    surnames: u32,
}

/// Numbers the distinct values of `values` in order of first appearance:
/// each row's number ([`NONE`] for a null) and the values.
fn dictionary(values: &StringChunked) -> (Vec<u32>, Vec<&str>) {
    let mut ids: PlHashMap<&str, u32> = PlHashMap::default();
    let mut distinct = Vec::new();
    let rows = values
        .iter()
        .map(|v| match v {
            Some(v) => *ids.entry(v).or_insert_with(|| {
                distinct.push(v);
                (distinct.len() - 1) as u32
            }),
            None => NONE,
        })
        .collect();
    (rows, distinct)
}

/// The NHS number as a number, for a value of exactly ten ASCII digits.
pub fn nhs_code(raw: &str) -> u64 {
    let b = raw.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
        return NO_NHS;
    }
    b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
}

impl Index {
    /// Collects the index and encodes what blocking joins on.
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
        let mut frame = crate::tables::collect(
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
                .with_column(
                    col(DOB)
                        .cast(DataType::Date)
                        .dt()
                        .year()
                        .cast(DataType::Int32)
                        .alias(YEAR),
                ),
        )
        .map_err(wrap)?;
        // One chunk per column, so that reading person `i` is an offset.
        frame.rechunk_mut_par();
        let str_col = |c: &str| -> Result<StringChunked, LinkError> {
            Ok(frame.column(c).map_err(wrap)?.str().map_err(wrap)?.clone())
        };
        let int_col = |c: &str| -> Result<Vec<i32>, LinkError> {
            Ok(frame
                .column(c)
                .map_err(wrap)?
                .i32()
                .map_err(wrap)?
                .iter()
                .map(|v| v.unwrap_or(NO_DATE))
                .collect())
        };
        let person_id = frame
            .column(PERSON_ID)
            .map_err(wrap)?
            .i64()
            .map_err(wrap)?
            .clone();
        let nhs_number = str_col(NHS_NUMBER)?;
        let gender_raw = str_col(GENDER)?;
        let postcode_raw = str_col(POSTCODE)?;
        let forename = str_col(FORENAME)?;
        let surname = str_col(SURNAME)?;
        let dob = int_col(DOB)?;
        let year = int_col(YEAR)?;
        drop(frame);

        // The dictionaries, three columns at a time.
        let (((fore_rows, fore_raw), (sur_rows, sur_raw)), ((post_rows, post_raw), rest)) =
            rayon::join(
                || rayon::join(|| dictionary(&forename), || dictionary(&surname)),
                || {
                    rayon::join(
                        || dictionary(&postcode_raw),
                        || {
                            let (rows, distinct) = dictionary(&gender_raw);
                            let parsed: Vec<Option<Gender>> =
                                distinct.iter().map(|g| Gender::parse(g)).collect();
                            let gender: Vec<Option<Gender>> = rows
                                .iter()
                                .map(|&g| if g == NONE { None } else { parsed[g as usize] })
                                .collect();
                            let nhs: Vec<u64> = nhs_number
                                .iter()
                                .map(|n| n.map_or(NO_NHS, nhs_code))
                                .collect();
                            (gender, nhs)
                        },
                    )
                },
            );
        let (gender, nhs_code) = rest;

        // Name keys: each distinct raw name normalised once.
        let mut name_ids: PlHashMap<String, u32> = PlHashMap::default();
        let mut entries: Vec<NameEntry> = Vec::new();
        let mut key_of = |raw: &str| -> u32 {
            let key = compare::name_key(raw);
            if let Some(&id) = name_ids.get(&key) {
                return id;
            }
            let id = entries.len() as u32;
            entries.push(NameEntry {
                soundex: phonetic::soundex(&key).map_or(NONE, |s| s as u32),
                initial: key.chars().next().map_or(NONE, u32::from),
                key: key.clone(),
                forenames: 0,
                surnames: 0,
            });
            name_ids.insert(key, id);
            id
        };
        let fore_keys: Vec<u32> = fore_raw.iter().map(|r| key_of(r)).collect();
        let sur_keys: Vec<u32> = sur_raw.iter().map(|r| key_of(r)).collect();
        let to_keys = |rows: &[u32], keys: &[u32]| -> Vec<u32> {
            rows.iter()
                .map(|&r| if r == NONE { NONE } else { keys[r as usize] })
                .collect()
        };
        let forename_key = to_keys(&fore_rows, &fore_keys);
        let surname_key = to_keys(&sur_rows, &sur_keys);
        for &k in &forename_key {
            if k != NONE {
                entries[k as usize].forenames += 1;
            }
        }
        for &k in &surname_key {
            if k != NONE {
                entries[k as usize].surnames += 1;
            }
        }

        // Postcodes: each distinct raw value parsed once, with its district.
        let mut district_ids: PlHashMap<String, u32> = PlHashMap::default();
        let mut postcode_ids: PlHashMap<String, u32> = PlHashMap::default();
        let mut postcodes = Vec::with_capacity(post_raw.len());
        for (i, raw) in post_raw.iter().enumerate() {
            let district = all_but_last(raw, 4);
            let next = district_ids.len() as u32;
            let district = match district_ids.get(district) {
                Some(&d) => d,
                None => {
                    district_ids.insert(district.to_string(), next);
                    next
                }
            };
            postcode_ids.insert((*raw).to_string(), i as u32);
            postcodes.push(PostcodeEntry {
                raw: (*raw).to_string(),
                parsed: Postcode::parse(raw),
                district,
            });
        }
        Ok(Self {
            person_id,
            nhs_number,
            nhs_code,
            dob,
            year,
            gender,
            postcode: post_rows,
            postcodes,
            postcode_ids,
            district_ids,
            forename,
            surname,
            forename_key,
            surname_key,
            names: entries,
            name_ids,
        })
    }

    pub fn len(&self) -> usize {
        self.dob.len()
    }

    /// Person `idx` (a row of the collected index; always in range for an
    /// `idx` taken from blocking).
    pub fn person(&self, idx: u32) -> IndexPerson<'_> {
        let i = idx as usize;
        let key = |k: u32| {
            (k != NONE)
                .then(|| self.names[k as usize].key.as_str())
                .filter(|s| !s.is_empty())
        };
        let dob = self.dob[i];
        let postcode = self.postcode[i];
        IndexPerson {
            person_id: self.person_id.get(i).unwrap_or_default(),
            nhs_number: self.nhs_number.get(i),
            date_of_birth: (dob != NO_DATE).then(|| from_epoch_days(dob)).flatten(),
            gender: self.gender[i],
            postcode: (postcode != NONE)
                .then(|| self.postcodes[postcode as usize].parsed.as_ref())
                .flatten(),
            forename_key: key(self.forename_key[i]),
            surname_key: key(self.surname_key[i]),
        }
    }

    /// Person `idx`'s key in the index.
    pub fn person_id(&self, idx: u32) -> i64 {
        self.person_id.get(idx as usize).unwrap_or_default()
    }

    /// Every person's key (nulls left out).
    pub fn person_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.person_id.iter().flatten()
    }

    /// Person `idx`'s forename and surname as the index holds them, for the
    /// reviewer (comparisons use the keys, in [`Index::person`]).
    pub fn names(&self, idx: u32) -> (Option<&str>, Option<&str>) {
        let i = idx as usize;
        (self.forename.get(i), self.surname.get(i))
    }

    /// The number of a name key (see [`compare::name_key`]), if anyone in
    /// the index has it as forename or surname.
    pub fn name_id(&self, key: &str) -> Option<u32> {
        self.name_ids.get(key).copied()
    }

    /// The number of a raw postcode as the index writes it.
    pub fn postcode_id(&self, raw: &str) -> Option<u32> {
        self.postcode_ids.get(raw).copied()
    }

    /// The number of a postcode district.
    pub fn district_id(&self, district: &str) -> Option<u32> {
        self.district_ids.get(district).copied()
    }

    /// The district number of a postcode number.
    pub fn district_of(&self, postcode: u32) -> u32 {
        self.postcodes[postcode as usize].district
    }

    /// Soundex and initial of a name number (each [`NONE`] when it has none).
    pub fn soundex_of(&self, name: u32) -> u32 {
        self.names[name as usize].soundex
    }
    pub fn initial_of(&self, name: u32) -> u32 {
        self.names[name as usize].initial
    }

    /// How often each name key occurs as a forename (`surname` false) or
    /// surname: `(key, count)` for the keys that occur.
    pub fn name_counts(&self, surname: bool) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.names
            .iter()
            .map(move |e| (e.key.as_str(), if surname { e.surnames } else { e.forenames }))
            .filter(|&(_, n)| n > 0)
    }

    /// The chance that two different people drawn at random share their
    /// date of birth, year of birth, postcode, sector, district and area:
    /// `Σ n_v (n_v − 1) / (N (N − 1))` over the values `v` of each (nulls
    /// never agree). One count of the dates and one of the postcodes (over
    /// their dictionary numbers); the coarser levels (years, sectors,
    /// districts, areas) are summed from those groups, which are few beside
    /// the people. The sums are of whole numbers, kept in integers, so they
    /// are exact whatever the order of summing.
    pub fn coincidences(&self) -> Coincidences {
        let total = self.len().max(2) as f64;
        let pairs = |n: u64| u128::from(n) * u128::from(n.saturating_sub(1));
        let share = |p: u128| p as f64 / (total * (total - 1.0));

        let mut by_dob: PlHashMap<i32, u64> = PlHashMap::default();
        for &d in &self.dob {
            if d != NO_DATE {
                *by_dob.entry(d).or_default() += 1;
            }
        }
        let mut dob = 0u128;
        let mut years: HashMap<i32, u64> = HashMap::new();
        for (&d, &n) in &by_dob {
            dob += pairs(n);
            // A date far out of range has no year (and must not overflow).
            let date = d.checked_add(719_163).and_then(|_| from_epoch_days(d));
            if let Some(year) = date.map(|d| d.year()) {
                *years.entry(year).or_default() += n;
            }
        }
        let year = years.values().map(|&n| pairs(n)).sum();

        let mut counts = vec![0u64; self.postcodes.len()];
        for &p in &self.postcode {
            if p != NONE {
                counts[p as usize] += 1;
            }
        }
        let mut by_postcode: PlHashMap<&str, u64> = PlHashMap::default();
        for (e, n) in self.postcodes.iter().zip(counts) {
            by_postcode.insert(e.raw.as_str(), n);
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
        Coincidences {
            dob: share(dob),
            year: share(year),
            postcode: share(sum(&by_postcode)),
            sector: share(sum(&sectors)),
            district: share(sum(&districts)),
            area: share(sum(&areas)),
        }
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
