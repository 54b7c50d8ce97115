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

use crate::domain::date::{from_epoch_days, to_epoch_days};
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
    pub nhs_digits: Option<[u8; 10]>,
    pub date_of_birth: Option<NaiveDate>,
    pub gender: Option<Gender>,
    /// Normalised ("AB1 2CD"), as [`Postcode::as_str`] writes it; `None`
    /// when the index's value is not a postcode.
    pub postcode: Option<&'a str>,
    pub forename_key: Option<&'a str>,
    pub surname_key: Option<&'a str>,
}

/// No value: a null in the index (or a value the dictionary lacks).
pub const NONE: u32 = u32::MAX;
/// A null date of birth or year.
pub const NO_DATE: i32 = i32::MIN;
/// An NHS number that is not ten ASCII digits (it can never equal a
/// cohort's valid number, which is written as its ten digits).
pub const NO_NHS: u64 = u64::MAX;

/// What blocking and comparison read of one person, in one record (one
/// cache line holds two people): the dictionary numbers of the values.
#[derive(Debug, Clone, Copy)]
pub struct Person {
    /// The NHS number as a number when it is ten ASCII digits, else
    /// [`NO_NHS`]: the key of tier 1's look-up.
    pub nhs: u64,
    /// Days since 1970-01-01, [`NO_DATE`] when null.
    pub dob: i32,
    /// Year of birth, [`NO_DATE`] when null.
    pub year: i32,
    /// The raw postcode's number in the postcode dictionary, or [`NONE`].
    pub postcode: u32,
    /// The number of the name key (trimmed, upper case) in the name
    /// dictionary, or [`NONE`] when the name is null. Forenames and
    /// surnames share one dictionary, so that a surname can be looked up
    /// among forenames (names given the other way round).
    pub forename: u32,
    pub surname: u32,
    pub gender: Option<Gender>,
}

/// Distinct strings, each numbered in order of first insertion, in one
/// buffer with an open-addressing table of their numbers: no allocation
/// per string, to build or to drop.
#[derive(Default)]
pub struct Strings {
    buf: String,
    /// End of string `i` in `buf` (it starts where `i - 1` ends).
    ends: Vec<u32>,
    hashes: Vec<u64>,
    /// `id + 1` of the string in each slot, 0 for an empty slot.
    slots: Vec<u32>,
}

fn hash_str(s: &str) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let b = s.as_bytes();
    let mut h = (b.len() as u64).wrapping_mul(K);
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let w = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let w = rest
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &x)| w | (u64::from(x) << (8 * i)));
        h = (h.rotate_left(23) ^ w).wrapping_mul(K);
    }
    // The finaliser of MurmurHash3: every input bit reaches the low bits
    // the table indexes by.
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

impl Strings {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn get(&self, id: u32) -> &str {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.buf[start..self.ends[i] as usize]
    }

    fn bytes(&self, id: u32) -> &[u8] {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.buf.as_bytes()[start..self.ends[i] as usize]
    }

    /// Slot of `s` (hash `h`): where it is, or the empty slot it would go.
    fn slot(&self, s: &str, h: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = h as usize & mask;
        loop {
            match self.slots[at] {
                0 => return at,
                id => {
                    let id = id - 1;
                    if self.hashes[id as usize] == h && self.bytes(id) == s.as_bytes() {
                        return at;
                    }
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// The number of `s`, if it is here.
    pub fn find(&self, s: &str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        match self.slots[self.slot(s, hash_str(s))] {
            0 => None,
            id => Some(id - 1),
        }
    }

    /// The number of `s`, inserted if new.
    pub fn insert(&mut self, s: &str) -> u32 {
        if 2 * (self.len() + 1) > self.slots.len() {
            self.grow();
        }
        let h = hash_str(s);
        let at = self.slot(s, h);
        if self.slots[at] != 0 {
            return self.slots[at] - 1;
        }
        let id = self.len() as u32;
        self.buf.push_str(s);
        self.ends.push(self.buf.len() as u32);
        self.hashes.push(h);
        self.slots[at] = id + 1;
        id
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        self.slots = vec![0; size];
        let mask = size - 1;
        for (id, h) in self.hashes.iter().enumerate() {
            let mut at = *h as usize & mask;
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = id as u32 + 1;
        }
    }
}

/// Numbers the distinct values of `values` in order of first appearance:
/// each row's number ([`NONE`] for a null) and the values.
fn dictionary(values: &StringChunked) -> (Vec<u32>, Strings) {
    let mut d = Strings::default();
    let rows = values
        .iter()
        .map(|v| v.map_or(NONE, |v| d.insert(v)))
        .collect();
    (rows, d)
}

/// The NHS number as a number, for a value of exactly ten ASCII digits.
pub fn nhs_code(raw: &str) -> u64 {
    let b = raw.as_bytes();
    if b.len() != 10 || !b.iter().all(u8::is_ascii_digit) {
        return NO_NHS;
    }
    b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
}

/// The digits of a number [`nhs_code`] made.
fn nhs_digits(mut code: u64) -> [u8; 10] {
    let mut d = [0u8; 10];
    for x in d.iter_mut().rev() {
        *x = (code % 10) as u8;
        code /= 10;
    }
    d
}

/// The collected index, held as one [`Person`] record each, with the
/// dictionaries of names and postcodes: each distinct raw name and postcode
/// is normalised (upper-cased, Soundex-coded, parsed) once, not once per
/// person, and blocking joins on the dictionaries' numbers (see `block`)
/// instead of on strings.
pub struct Index {
    pub people: Vec<Person>,
    person_id: Int64Chunked,
    person_ids: Vec<i64>,
    nhs_number: StringChunked,
    /// Raw postcodes as the index writes them.
    postcodes: Strings,
    /// Per raw postcode: its normal form ("" when it is not a postcode)
    /// and its district's number (the raw value without its last four
    /// characters, as polars' `str.head(-4)`).
    normal: Strings,
    normal_of: Vec<u32>,
    district_of: Vec<u32>,
    districts: Strings,
    forename: StringChunked,
    surname: StringChunked,
    /// Name keys, and per key its Soundex code and initial (each [`NONE`]
    /// when it has none) and how many people have it as forename and as
    /// surname.
    names: Strings,
    name_info: Vec<NameInfo>,
}

#[derive(Debug, Clone, Copy)]
struct NameInfo {
    soundex: u32,
    initial: u32,
    forenames: u32,
    surnames: u32,
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
        let int_col = |c: &str| -> Result<Int32Chunked, LinkError> {
            Ok(frame.column(c).map_err(wrap)?.i32().map_err(wrap)?.clone())
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
        let (((fore_rows, fore_raw), (sur_rows, sur_raw)), ((post_rows, postcodes), gender)) =
            rayon::join(
                || rayon::join(|| dictionary(&forename), || dictionary(&surname)),
                || {
                    rayon::join(
                        || dictionary(&postcode_raw),
                        || {
                            let (rows, distinct) = dictionary(&gender_raw);
                            let parsed: Vec<Option<Gender>> = (0..distinct.len() as u32)
                                .map(|g| Gender::parse(distinct.get(g)))
                                .collect();
                            rows.iter()
                                .map(|&g| if g == NONE { None } else { parsed[g as usize] })
                                .collect::<Vec<Option<Gender>>>()
                        },
                    )
                },
            );

        // Name keys: each distinct raw name normalised once.
        let mut keys = Strings::default();
        let mut name_info: Vec<NameInfo> = Vec::new();
        let mut key_of = |raw: &str| -> u32 {
            let key = compare::name_key(raw);
            let id = keys.insert(&key);
            if id as usize == name_info.len() {
                name_info.push(NameInfo {
                    soundex: phonetic::soundex(&key).map_or(NONE, |s| s as u32),
                    initial: key.chars().next().map_or(NONE, u32::from),
                    forenames: 0,
                    surnames: 0,
                });
            }
            id
        };
        let fore_keys: Vec<u32> = (0..fore_raw.len() as u32)
            .map(|r| key_of(fore_raw.get(r)))
            .collect();
        let sur_keys: Vec<u32> = (0..sur_raw.len() as u32)
            .map(|r| key_of(sur_raw.get(r)))
            .collect();
        let key = |raw: u32, keys: &[u32]| {
            if raw == NONE {
                NONE
            } else {
                keys[raw as usize]
            }
        };

        // Postcodes: each distinct raw value parsed once, with its district.
        let mut normal = Strings::default();
        let mut districts = Strings::default();
        let mut normal_of = Vec::with_capacity(postcodes.len());
        let mut district_of = Vec::with_capacity(postcodes.len());
        for id in 0..postcodes.len() as u32 {
            let raw = postcodes.get(id);
            district_of.push(districts.insert(all_but_last(raw, 4)));
            normal_of.push(match normal_form(raw) {
                Normal::Itself => normal.insert(raw),
                Normal::Parsed(Some(p)) => normal.insert(p.as_str()),
                Normal::Parsed(None) => normal.insert(""),
            });
        }

        let mut people: Vec<Person> = Vec::with_capacity(dob.len());
        let nhs = nhs_number.iter().map(|n| n.map_or(NO_NHS, nhs_code));
        let dates = dob.iter().zip(year.iter());
        for (i, ((n, (d, y)), g)) in nhs.zip(dates).zip(gender).enumerate() {
            let (f, s) = (key(fore_rows[i], &fore_keys), key(sur_rows[i], &sur_keys));
            if f != NONE {
                name_info[f as usize].forenames += 1;
            }
            if s != NONE {
                name_info[s as usize].surnames += 1;
            }
            people.push(Person {
                nhs: n,
                dob: d.unwrap_or(NO_DATE),
                year: y.unwrap_or(NO_DATE),
                postcode: post_rows[i],
                forename: f,
                surname: s,
                gender: g,
            });
        }
        Ok(Self {
            people,
            person_ids: person_id.iter().map(Option::unwrap_or_default).collect(),
            person_id,
            nhs_number,
            postcodes,
            normal,
            normal_of,
            district_of,
            districts,
            forename,
            surname,
            names: keys,
            name_info,
        })
    }

    pub fn len(&self) -> usize {
        self.people.len()
    }

    /// Person `idx` (a row of the collected index; always in range for an
    /// `idx` taken from blocking).
    pub fn person(&self, idx: u32) -> IndexPerson<'_> {
        let p = &self.people[idx as usize];
        let key = |k: u32| {
            (k != NONE)
                .then(|| self.names.get(k))
                .filter(|s| !s.is_empty())
        };
        IndexPerson {
            nhs_digits: if p.nhs != NO_NHS {
                Some(nhs_digits(p.nhs))
            } else {
                self.nhs_number.get(idx as usize).and_then(digits_of)
            },
            date_of_birth: (p.dob != NO_DATE).then(|| from_epoch_days(p.dob)).flatten(),
            gender: p.gender,
            postcode: (p.postcode != NONE)
                .then(|| self.normal.get(self.normal_of[p.postcode as usize]))
                .filter(|s| !s.is_empty()),
            forename_key: key(p.forename),
            surname_key: key(p.surname),
        }
    }

    /// Person `idx`'s key in the index.
    pub fn person_id(&self, idx: u32) -> i64 {
        self.person_ids[idx as usize]
    }

    /// Person `idx`'s date of birth in days since 1970-01-01, when it is
    /// a date (`person(idx).date_of_birth` is `Some`).
    pub fn dob_days(&self, idx: u32) -> Option<i32> {
        let (lo, hi) = (to_epoch_days(NaiveDate::MIN), to_epoch_days(NaiveDate::MAX));
        Some(self.people[idx as usize].dob).filter(|d| (lo..=hi).contains(d))
    }

    /// Person `idx`'s NHS number as the index writes it.
    pub fn nhs_number(&self, idx: u32) -> Option<&str> {
        self.nhs_number.get(idx as usize)
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
        self.names.find(key)
    }

    /// The number of a raw postcode as the index writes it.
    pub fn postcode_id(&self, raw: &str) -> Option<u32> {
        self.postcodes.find(raw)
    }

    /// The number of a postcode district.
    pub fn district_id(&self, district: &str) -> Option<u32> {
        self.districts.find(district)
    }

    /// The district number of a postcode number.
    pub fn district_of(&self, postcode: u32) -> u32 {
        self.district_of[postcode as usize]
    }

    /// Soundex and initial of a name number (each [`NONE`] when it has none).
    pub fn soundex_of(&self, name: u32) -> u32 {
        self.name_info[name as usize].soundex
    }
    pub fn initial_of(&self, name: u32) -> u32 {
        self.name_info[name as usize].initial
    }

    /// How often each name key occurs as a forename (`surname` false) or
    /// surname: `(key, count)` for the keys that occur.
    pub fn name_counts(&self, surname: bool) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.name_info
            .iter()
            .enumerate()
            .filter_map(move |(id, e)| {
                let n = if surname { e.surnames } else { e.forenames };
                (n > 0).then(|| (self.names.get(id as u32), n))
            })
    }

    /// The chance that two different people drawn at random share their
    /// date of birth, year of birth, postcode, sector, district and area:
    /// `Σ n_v (n_v − 1) / (N (N − 1))` over the values `v` of each (nulls
    /// never agree). One count of the dates and one of the postcodes (by
    /// their dictionary numbers); the coarser levels (years, sectors,
    /// districts, areas) are summed from those groups, which are few beside
    /// the people. The sums are of whole numbers, kept in integers, so they
    /// are exact whatever the order of summing.
    pub fn coincidences(&self) -> Coincidences {
        let total = self.len().max(2) as f64;
        let pairs = |n: u64| u128::from(n) * u128::from(n.saturating_sub(1));
        let share = |p: u128| p as f64 / (total * (total - 1.0));

        // Dates by day: counted in an array over the dates' span when it
        // is a few thousand years or less, else in a map.
        let (lo, hi) = self
            .people
            .iter()
            .filter(|p| p.dob != NO_DATE)
            .fold((i32::MAX, i32::MIN), |(lo, hi), p| {
                (lo.min(p.dob), hi.max(p.dob))
            });
        let mut by_dob: Vec<(i32, u64)> = Vec::new();
        if lo <= hi && i64::from(hi) - i64::from(lo) < 2_000_000 {
            let mut counts = vec![0u64; (hi - lo) as usize + 1];
            for p in &self.people {
                if p.dob != NO_DATE {
                    counts[(p.dob - lo) as usize] += 1;
                }
            }
            by_dob.extend(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(d, &n)| (lo + d as i32, n)),
            );
        } else {
            let mut map: HashMap<i32, u64> = HashMap::new();
            for p in &self.people {
                if p.dob != NO_DATE {
                    *map.entry(p.dob).or_default() += 1;
                }
            }
            by_dob.extend(map);
        }
        let mut dob = 0u128;
        let mut years: HashMap<i32, u64> = HashMap::new();
        for &(d, n) in &by_dob {
            dob += pairs(n);
            // A date far out of range has no year (and must not overflow).
            let date = d.checked_add(719_163).and_then(|_| from_epoch_days(d));
            if let Some(year) = date.map(|d| d.year()) {
                *years.entry(year).or_default() += n;
            }
        }
        let year = years.values().map(|&n| pairs(n)).sum();

        // Postcodes by raw value; each coarser level is summed from the
        // one below it: the district is the sector without its last two
        // characters as the sector is the postcode without its last two,
        // so only the first step sees every postcode.
        let mut by_postcode = vec![0u64; self.postcodes.len()];
        for p in &self.people {
            if p.postcode != NONE {
                by_postcode[p.postcode as usize] += 1;
            }
        }
        fn coarser<'a>(
            finer: &[u64],
            name: impl Fn(u32) -> &'a str,
            cut: impl Fn(&'a str) -> &'a str,
        ) -> (Strings, Vec<u64>) {
            let mut out = Strings::default();
            let mut counts: Vec<u64> = Vec::new();
            for (id, &n) in finer.iter().enumerate() {
                let c = out.insert(cut(name(id as u32))) as usize;
                if c == counts.len() {
                    counts.push(0);
                }
                counts[c] += n;
            }
            (out, counts)
        }
        let (sector_names, sectors) = coarser(
            &by_postcode,
            |id| self.postcodes.get(id),
            |p| all_but_last(p, 2),
        );
        let (district_names, districts) =
            coarser(&sectors, |id| sector_names.get(id), |s| all_but_last(s, 2));
        let (_, areas) = coarser(&districts, |id| district_names.get(id), area_of);
        let sum = |counts: &[u64]| counts.iter().map(|&n| pairs(n)).sum::<u128>();
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

/// What [`Postcode::parse`] makes of a raw postcode.
enum Normal {
    /// The value is already in normal form: `parse` gives it back.
    Itself,
    Parsed(Option<Postcode>),
}

/// [`Postcode::parse`] of `raw`, without its two allocations when `raw` is
/// already written as `parse` writes a postcode (upper-case letters and
/// digits, one space before the last three characters), which is how an
/// index holds nearly all of them (DESIGN.md): then the layout is checked
/// by the same rules. Anything else is parsed. A test holds the two to
/// the same answer.
fn normal_form(raw: &str) -> Normal {
    let b = raw.as_bytes();
    let n = b.len();
    let canonical = (6..=8).contains(&n)
        && b.iter().enumerate().all(|(i, &c)| {
            if i == n - 4 {
                c == b' '
            } else {
                c.is_ascii_uppercase() || c.is_ascii_digit()
            }
        });
    if !canonical {
        return Normal::Parsed(Postcode::parse(raw));
    }
    if raw == "GIR 0AA" {
        return Normal::Itself;
    }
    let (outward, inward) = (&b[..n - 4], &b[n - 3..]);
    let a = |i: usize| outward.get(i).is_some_and(u8::is_ascii_alphabetic);
    let d = |i: usize| outward.get(i).is_some_and(u8::is_ascii_digit);
    let outward_ok = match outward.len() {
        2 => a(0) && d(1),
        3 => a(0) && ((d(1) && d(2)) || (a(1) && d(2)) || (d(1) && a(2))),
        4 => a(0) && a(1) && d(2) && (d(3) || a(3)),
        _ => false,
    };
    let inward_ok = inward[0].is_ascii_digit()
        && inward[1].is_ascii_alphabetic()
        && inward[2].is_ascii_alphabetic();
    if outward_ok && inward_ok {
        Normal::Itself
    } else {
        Normal::Parsed(None)
    }
}

/// `s` without its last `n` characters (empty when it has no more), as
/// polars' `str.head(-n)`: the sector is the postcode without its last two
/// characters, the district without its last four.
fn all_but_last(s: &str, n: usize) -> &str {
    if s.is_ascii() {
        return &s[..s.len().saturating_sub(n)];
    }
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
    use super::{all_but_last, area_of, normal_form, Normal, Strings};
    use crate::domain::Postcode;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_normal_form_is_what_postcode_parse_gives() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
        let alphabet = b"ABCEGLMNSWZ0123456789 az\t-";
        let mut cases: Vec<String> = [
            "LS1 4AP",
            "GIR 0AA",
            "EC1A 1BB",
            "W1A 0AX",
            "M1 1AE",
            "M11 1AE",
            "LS14 4AP",
            "ls1 4ap",
            "LS14AP",
            "LS1  4AP",
            " LS1 4AP",
            "LS1 4A",
            "1S1 4AP",
            "LS1 AAP",
            "LSS 4AP",
            "AB1C 2DE",
            "AB12C 3DE",
            "LS1 4AÉ",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..200_000 {
            let len = rng.gen_range(5..=9);
            let mut s: String = (0..len)
                .map(|_| char::from(alphabet[rng.gen_range(0..alphabet.len())]))
                .collect();
            if rng.gen_bool(0.7) && s.len() > 4 {
                // Mostly the canonical layout, so the rules get tested.
                let at = s.len() - 4;
                s.replace_range(at..=at, " ");
            }
            cases.push(s);
        }
        // And postcodes of every outward layout, in normal form.
        let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for i in 0..10_000 {
            let l = |rng: &mut rand_chacha::ChaCha8Rng| char::from(letters[rng.gen_range(0..26)]);
            let d = |rng: &mut rand_chacha::ChaCha8Rng| char::from(b'0' + rng.gen_range(0..10u8));
            let outward: String = match i % 6 {
                0 => [l(&mut rng), d(&mut rng)].iter().collect(),
                1 => [l(&mut rng), d(&mut rng), d(&mut rng)].iter().collect(),
                2 => [l(&mut rng), l(&mut rng), d(&mut rng)].iter().collect(),
                3 => [l(&mut rng), l(&mut rng), d(&mut rng), d(&mut rng)]
                    .iter()
                    .collect(),
                4 => [l(&mut rng), d(&mut rng), l(&mut rng)].iter().collect(),
                _ => [l(&mut rng), l(&mut rng), d(&mut rng), l(&mut rng)]
                    .iter()
                    .collect(),
            };
            cases.push(format!(
                "{outward} {}{}{}",
                d(&mut rng),
                l(&mut rng),
                l(&mut rng)
            ));
        }
        let mut itself = 0;
        for raw in &cases {
            let want = Postcode::parse(raw).map(|p| p.as_str().to_string());
            let got = match normal_form(raw) {
                Normal::Itself => {
                    itself += 1;
                    Some(raw.clone())
                }
                Normal::Parsed(p) => p.map(|p| p.as_str().to_string()),
            };
            assert_eq!(got, want, "{raw:?}");
        }
        assert!(itself > 10_000, "the fast path ran {itself} times");
    }

    #[test]
    fn strings_number_each_value_once() {
        let mut s = Strings::default();
        let words: Vec<String> = (0..5_000).map(|i| format!("W{}", i % 1_234)).collect();
        let ids: Vec<u32> = words.iter().map(|w| s.insert(w)).collect();
        assert_eq!(s.len(), 1_234);
        for (w, id) in words.iter().zip(&ids) {
            assert_eq!(s.get(*id), w);
            assert_eq!(s.find(w), Some(*id));
        }
        assert_eq!(s.find("nope"), None);
        assert_eq!(s.insert(""), 1_234);
        assert_eq!(s.get(1_234), "");
    }

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
