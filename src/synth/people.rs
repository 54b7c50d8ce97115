//! Synthetic people: households, NHS numbers, the demographics (master
//! person index) and objections frames.
//!
//! People are generated in fixed-size chunks, each from its own ChaCha8
//! stream, so the result does not depend on how many threads run them.
//! Within a chunk people come in households of one to four who share a
//! postcode, an LSOA and usually a surname: couples, couples with children,
//! single parents and people living alone. Some children are twins: same
//! date of birth, postcode and surname, a different forename and NHS number.
//!
//! NHS numbers must be unique across chunks without any coordination, so
//! each person owns a *slot* (their position in the file) and a keyed
//! permutation maps slots to distinct eight-digit prefixes in the ranges
//! England issues (4xx and 6xx); the ninth digit is chosen so that the check
//! digit exists. People invented for the cohort who are not in the index
//! use the slots after the last person, so their numbers are valid and
//! never belong to anyone in demographics.

use chrono::Datelike;
use polars::prelude::*;
use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;

use super::names::{Era, NameTables, Surname};
use super::places::{Home, Places};
use super::{chunk_rng, Stream};
use crate::domain::date::{from_epoch_days, to_epoch_days};
use crate::domain::NhsNumber;

/// People per generation chunk (and per Parquet row group).
pub const PEOPLE_CHUNK: usize = 65_536;

/// 1925-01-01, the earliest date of birth, as days since 1970-01-01.
pub const DOB_MIN: i32 = -16_436;
/// 2025-12-31: the "today" of the synthetic world. Nobody is born, dies,
/// objects or is admitted after it (a discharge may run a little past).
pub const WORLD_END: i32 = 20_453;
/// 2005-01-01: the earliest recorded death.
const DEATH_MIN: i32 = 12_784;
/// 2013-04-01: type 1 objections start.
const TYPE1_MIN: i32 = 15_796;
/// 2018-05-25: the national data opt-out starts.
const NDOO_MIN: i32 = 17_676;

/// Gender codes as demographics records them.
pub const GENDER_CODES: [&str; 5] = ["1", "2", "9", "0", "X"];
pub const MALE: u8 = 0;
pub const FEMALE: u8 = 1;

/// NHS ethnic category codes and their rough shares in England.
pub const ETHNICITY_CODES: [&str; 17] = [
    "A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "Z",
];
const ETHNICITY_WEIGHTS: [f64; 17] = [
    73.0, 1.0, 6.5, 0.6, 0.3, 0.9, 1.0, 3.2, 2.7, 1.1, 1.6, 1.1, 2.5, 0.5, 0.8, 1.7, 3.0,
];

/// One synthetic person, compactly: names and postcode are indexes into
/// the tables and rendered only when a file is written.
#[derive(Debug, Clone)]
pub struct Person {
    pub nhs: NhsNumber,
    /// Days since 1970-01-01.
    pub dob: i32,
    pub dod: Option<i32>,
    /// Index into [`GENDER_CODES`].
    pub gender: u8,
    pub forename: Option<u16>,
    pub surname: Option<Surname>,
    pub home: Home,
    /// False where demographics has no postcode for the person.
    pub postcode_recorded: bool,
    /// Index into [`ETHNICITY_CODES`].
    pub ethnicity: u8,
    /// Relative rate of hospital admission; 0 for people never admitted.
    pub activity: f32,
    /// The person before this one in the same chunk is their twin.
    pub twin_of_previous: bool,
}

/// An objection, by the objector's position in its chunk.
#[derive(Debug, Clone, Copy)]
pub struct Objection {
    pub person: u32,
    pub ndoo: bool,
    pub recorded_on: i32,
}

pub struct PeopleChunk {
    /// Global index of the first person (person_id is index + 1).
    pub first: usize,
    pub persons: Vec<Person>,
    pub objections: Vec<Objection>,
}

/// Keyed permutation of NHS number slots to distinct valid numbers.
pub struct NhsAllocator {
    keys: [u64; 4],
}

/// Eight-digit prefixes available: 40 000 000–49 999 999 and
/// 60 000 000–69 999 999.
pub const NHS_SLOTS: u64 = 20_000_000;
const FEISTEL_HALF_BITS: u32 = 13;
const FEISTEL_MASK: u64 = (1 << FEISTEL_HALF_BITS) - 1;

/// SplitMix64 finaliser: a cheap, well-mixed hash of 64 bits.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl NhsAllocator {
    pub fn new(seed: u64) -> Self {
        let k0 = mix(seed ^ 0x6E68_735F_6E75_6D62);
        Self {
            keys: [k0, mix(k0), mix(mix(k0)), mix(mix(mix(k0)))],
        }
    }

    /// A four-round Feistel network over 26 bits: a permutation of
    /// 0..2^26.
    fn feistel(&self, x: u64) -> u64 {
        let mut l = x >> FEISTEL_HALF_BITS;
        let mut r = x & FEISTEL_MASK;
        for k in self.keys {
            let next = l ^ (mix(r ^ k) & FEISTEL_MASK);
            l = r;
            r = next;
        }
        (l << FEISTEL_HALF_BITS) | r
    }

    /// Cycle-walks the Feistel permutation until it lands inside the slot
    /// range, which makes it a permutation of 0..NHS_SLOTS. It terminates
    /// because the cycle through `slot` returns to `slot` itself.
    fn permute(&self, slot: u64) -> u64 {
        let mut y = self.feistel(slot);
        while y >= NHS_SLOTS {
            y = self.feistel(y);
        }
        y
    }

    /// The NHS number of a slot (`slot < NHS_SLOTS`; callers check the
    /// total in `SynthOptions` validation). Distinct slots give distinct
    /// numbers because their eight-digit prefixes differ.
    pub fn number(&self, slot: u64) -> NhsNumber {
        let p = self.permute(slot);
        let prefix = if p < NHS_SLOTS / 2 {
            40_000_000 + p
        } else {
            60_000_000 + p - NHS_SLOTS / 2
        };
        let mut d = [0u8; 10];
        let mut n = prefix;
        for i in (0..8).rev() {
            d[i] = (n % 10) as u8;
            n /= 10;
        }
        let start = mix(p ^ self.keys[0]) % 10;
        for k in 0..10 {
            d[8] = ((start + k) % 10) as u8;
            if let Some(check) = crate::domain::nhs_number::check_digit(&d) {
                d[9] = check;
                if let Ok(number) = NhsNumber::from_digits(d) {
                    return number;
                }
            }
        }
        // Digit 9 has weight 2, so its ten values give ten distinct
        // remainders mod 11: at most one makes the check digit 10, at most
        // one makes ten identical digits, and the first digit (4 or 6) is
        // never in the 999 range. At least eight of the ten values work.
        unreachable!("some ninth digit always gives a valid NHS number")
    }
}

/// Everything the per-chunk generators share (read-only).
pub struct World {
    pub seed: u64,
    pub names: NameTables,
    pub places: Places,
    pub nhs: NhsAllocator,
    ethnicity: WeightedIndex<f64>,
}

impl World {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            names: NameTables::new(),
            places: Places::new(),
            nhs: NhsAllocator::new(seed),
            // A constant list of positive weights.
            ethnicity: WeightedIndex::new(ETHNICITY_WEIGHTS).expect("constant positive weights"),
        }
    }

    pub fn ethnicity<R: Rng>(&self, rng: &mut R) -> u8 {
        self.ethnicity.sample(rng) as u8
    }
}

/// Days since 1970-01-01 of 1 January of `year`.
fn jan1(year: i32) -> i32 {
    chrono::NaiveDate::from_ymd_opt(year, 1, 1).map_or(DOB_MIN, to_epoch_days)
}

pub fn year_of(day: i32) -> i32 {
    from_epoch_days(day).map_or(1970, |d| d.year())
}

/// A random day in `year` (1925–2025).
pub fn birthday_in<R: Rng>(rng: &mut R, year: i32) -> i32 {
    let start = jan1(year);
    let end = jan1(year + 1).min(WORLD_END + 1);
    rng.gen_range(start..end)
}

/// Relative weight of each decade of age (index `age / 10`) for adults
/// living alone or as a couple, tuned so that the whole population (with
/// the families' children) is shaped like England's: about 19% aged 65 and
/// over, about 30% under 25.
const ADULT_DECADE_WEIGHTS: [f64; 11] = [0.0, 0.4, 0.4, 0.5, 0.7, 1.1, 1.5, 1.4, 0.9, 0.3, 0.05];

/// An adult's age on the last day of 2025, between `min` and `max`.
fn adult_age<R: Rng>(rng: &mut R, min: i32, max: i32) -> i32 {
    loop {
        let age = rng.gen_range(min..=max);
        let weight = ADULT_DECADE_WEIGHTS[(age / 10).clamp(0, 10) as usize];
        if rng.gen_bool(weight / 1.5) {
            return age;
        }
    }
}

/// The age of someone met outside any household (a cohort member who is
/// not in the index): a child one time in five, else an adult.
pub fn any_age<R: Rng>(rng: &mut R) -> i32 {
    if rng.gen_bool(0.2) {
        rng.gen_range(0..18)
    } else {
        adult_age(rng, 18, 100)
    }
}

/// A person as the household plan sees them, before identifiers.
struct Member {
    age: i32,
    male: bool,
    /// Share the household surname (else draw their own).
    shares_surname: bool,
    twin_of_previous: bool,
}

/// The members of one household of `size` people.
fn plan_household<R: Rng>(rng: &mut R, size: usize, out: &mut Vec<Member>) {
    out.clear();
    let head_male = rng.gen_bool(0.5);
    let adult = |age, male| Member {
        age,
        male,
        shares_surname: true,
        twin_of_previous: false,
    };
    let partner = |rng: &mut R, head_age: i32| Member {
        age: (head_age + rng.gen_range(-5..=5)).clamp(18, 100),
        male: if rng.gen_bool(0.95) {
            !head_male
        } else {
            head_male
        },
        shares_surname: rng.gen_bool(0.8),
        twin_of_previous: false,
    };
    match size {
        1 => out.push(adult(adult_age(rng, 18, 100), head_male)),
        2 if rng.gen_bool(0.8) => {
            let age = adult_age(rng, 20, 98);
            out.push(adult(age, head_male));
            out.push(partner(rng, age));
        }
        _ => {
            let parent_age = rng.gen_range(24..=55);
            out.push(adult(parent_age, head_male));
            let children = if size >= 3 && rng.gen_bool(0.75) {
                out.push(partner(rng, parent_age));
                size - 2
            } else {
                size - 1
            };
            for c in 0..children {
                let twin = c == 1 && rng.gen_bool(0.06);
                let age = if twin {
                    // The first twin takes the household surname too.
                    let first = out.len() - 1;
                    out[first].shares_surname = true;
                    out[first].age
                } else {
                    // Born when the parent was 18 to 42, and not in the future.
                    parent_age - rng.gen_range(18..=parent_age.min(42))
                };
                out.push(Member {
                    age,
                    male: rng.gen_bool(0.51),
                    shares_surname: twin || rng.gen_bool(0.9),
                    twin_of_previous: twin,
                });
            }
        }
    }
}

fn household_size<R: Rng>(rng: &mut R) -> usize {
    match rng.gen_range(0..100) {
        0..=27 => 1,
        28..=64 => 2,
        65..=81 => 3,
        _ => 4,
    }
}

/// Probability of dying by the end of 2025 (deaths recorded from 2005).
fn death_rate(age: i32) -> f64 {
    match age {
        85.. => 0.30,
        75..=84 => 0.10,
        60..=74 => 0.03,
        _ => 0.004,
    }
}

/// Relative admission rate: many people are never admitted in 2015–2025,
/// a few are admitted very often (heavy tail), older people more.
fn activity<R: Rng>(rng: &mut R, age: i32) -> f32 {
    let (p_any, scale) = match age {
        ..=17 => (0.35, 0.6),
        18..=44 => (0.45, 0.7),
        45..=64 => (0.6, 1.0),
        65..=79 => (0.8, 1.6),
        _ => (0.9, 2.2),
    };
    if !rng.gen_bool(p_any) {
        return 0.0;
    }
    let u: f64 = rng.gen();
    let pareto = (1.0 - u).powf(-1.0 / 1.3).min(200.0);
    (scale * pareto) as f32
}

/// 2015-01-01, the first admission date (episodes are generated from it on).
pub const ADMIT_MIN: i32 = 16_436;

/// The first and last possible admission day of a person (2015–2025 while
/// alive), or `None` if there is none.
pub fn admission_window(p: &Person) -> Option<(i32, i32)> {
    let lo = ADMIT_MIN.max(p.dob);
    let hi = p.dod.unwrap_or(WORLD_END).min(WORLD_END);
    (lo <= hi).then_some((lo, hi))
}

/// Generates people `first .. first + len` (chunk `chunk`).
pub fn people_chunk(world: &World, chunk: usize, total: usize) -> PeopleChunk {
    let first = chunk * PEOPLE_CHUNK;
    let len = PEOPLE_CHUNK.min(total - first);
    let mut rng = chunk_rng(world.seed, Stream::People, chunk as u64);
    let mut persons: Vec<Person> = Vec::with_capacity(len);
    let mut objections = Vec::new();
    let mut plan = Vec::with_capacity(4);
    while persons.len() < len {
        let size = household_size(&mut rng).min(len - persons.len());
        plan_household(&mut rng, size, &mut plan);
        let home = world.places.home(&mut rng);
        let surname = world.names.surname(&mut rng);
        let household_ethnicity = world.ethnicity(&mut rng);
        for (j, m) in plan.iter().enumerate() {
            let index = persons.len();
            let twin = m.twin_of_previous;
            // Both twins keep every field, so that they really do share
            // date of birth, postcode and surname in the index.
            let whole = twin || plan.get(j + 1).is_some_and(|next| next.twin_of_previous);
            let birth_year = (2025 - m.age).max(1925);
            let dob = match (twin, persons.last()) {
                (true, Some(prev)) => prev.dob,
                _ => birthday_in(&mut rng, birth_year),
            };
            let era = Era::of_birth_year(birth_year);
            let mut forename = world.names.forename(&mut rng, m.male, era);
            if let (true, Some(prev)) = (twin, persons.last()) {
                while Some(forename) == prev.forename {
                    forename = world.names.forename(&mut rng, m.male, era);
                }
            }
            let own_surname = if m.shares_surname {
                surname
            } else {
                world.names.surname(&mut rng)
            };
            let mut gender = if m.male { MALE } else { FEMALE };
            if !whole {
                match rng.gen_range(0..1000) {
                    0..=3 => gender = 2,
                    4..=5 => gender = 3,
                    6..=7 => gender = 4,
                    _ => {}
                }
            }
            let dod = if rng.gen_bool(death_rate(m.age)) {
                Some(rng.gen_range(DEATH_MIN.max(dob)..=WORLD_END))
            } else {
                None
            };
            let ethnicity = if rng.gen_bool(0.9) {
                household_ethnicity
            } else {
                world.ethnicity(&mut rng)
            };
            let postcode_recorded = whole || !rng.gen_bool(0.01);
            let forename = (whole || !rng.gen_bool(0.004)).then_some(forename);
            let surname = (whole || !rng.gen_bool(0.002)).then_some(own_surname);
            let mut person = Person {
                nhs: world.nhs.number((first + index) as u64),
                dob,
                dod,
                gender,
                forename,
                surname,
                home,
                postcode_recorded,
                ethnicity,
                activity: activity(&mut rng, m.age),
                twin_of_previous: twin,
            };
            if admission_window(&person).is_none() {
                person.activity = 0.0;
            }
            for (ndoo, share, start) in [(false, 0.015, TYPE1_MIN), (true, 0.03, NDOO_MIN)] {
                if rng.gen_bool(share) {
                    let lo = start.max(person.dob);
                    let hi = person.dod.unwrap_or(WORLD_END);
                    if lo <= hi {
                        objections.push(Objection {
                            person: index as u32,
                            ndoo,
                            recorded_on: rng.gen_range(lo..=hi),
                        });
                    }
                }
            }
            persons.push(person);
        }
    }
    PeopleChunk {
        first,
        persons,
        objections,
    }
}

/// Ten ASCII digits of an NHS number, without allocating.
pub fn nhs_digits(n: &NhsNumber) -> [u8; 10] {
    n.digits().map(|d| b'0' + d)
}

/// `nhs_digits` as a `&str` view of the buffer.
pub fn ascii(buf: &[u8]) -> &str {
    // Every caller passes ASCII digits or letters it has just written.
    std::str::from_utf8(buf).expect("ASCII buffer")
}

/// The demographics columns of one chunk.
pub fn demographics_frame(world: &World, chunk: &PeopleChunk) -> PolarsResult<DataFrame> {
    let n = chunk.persons.len();
    let mut person_id = Vec::with_capacity(n);
    let mut nhs = StringChunkedBuilder::new("nhs_number".into(), n);
    let mut dob = Vec::with_capacity(n);
    let mut gender = StringChunkedBuilder::new("gender".into(), n);
    let mut postcode = StringChunkedBuilder::new("postcode".into(), n);
    let mut forename = StringChunkedBuilder::new("forename".into(), n);
    let mut surname = StringChunkedBuilder::new("surname".into(), n);
    let mut dod = Vec::with_capacity(n);
    let mut buf = String::new();
    for (i, p) in chunk.persons.iter().enumerate() {
        person_id.push((chunk.first + i + 1) as i64);
        nhs.append_value(ascii(&nhs_digits(&p.nhs)));
        dob.push(p.dob);
        gender.append_value(GENDER_CODES[usize::from(p.gender)]);
        if p.postcode_recorded {
            world.places.postcode_into(p.home.postcode, &mut buf);
            postcode.append_value(&buf);
        } else {
            postcode.append_null();
        }
        match p.forename {
            Some(f) => forename.append_value(world.names.forename_str(f)),
            None => forename.append_null(),
        }
        match p.surname {
            Some(s) => {
                world.names.surname_into(s, &mut buf);
                surname.append_value(&buf);
            }
            None => surname.append_null(),
        }
        dod.push(p.dod);
    }
    DataFrame::new(
        n,
        vec![
            Int64Chunked::from_vec("person_id".into(), person_id).into_column(),
            nhs.finish().into_column(),
            Int32Chunked::from_vec("date_of_birth".into(), dob)
                .into_date()
                .into_column(),
            gender.finish().into_column(),
            postcode.finish().into_column(),
            forename.finish().into_column(),
            surname.finish().into_column(),
            Int32Chunked::from_slice_options("date_of_death".into(), &dod)
                .into_date()
                .into_column(),
        ],
    )
}

/// The objections register rows of one chunk.
pub fn objections_frame(chunk: &PeopleChunk) -> PolarsResult<DataFrame> {
    let n = chunk.objections.len();
    let mut nhs = StringChunkedBuilder::new("nhs_number".into(), n);
    let mut kind = StringChunkedBuilder::new("objection_type".into(), n);
    let mut recorded = Vec::with_capacity(n);
    for o in &chunk.objections {
        let p = &chunk.persons[o.person as usize];
        nhs.append_value(ascii(&nhs_digits(&p.nhs)));
        kind.append_value(if o.ndoo { "ndoo" } else { "type1" });
        recorded.push(o.recorded_on);
    }
    DataFrame::new(
        n,
        vec![
            nhs.finish().into_column(),
            kind.finish().into_column(),
            Int32Chunked::from_vec("recorded_on".into(), recorded)
                .into_date()
                .into_column(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use std::collections::HashSet;

    #[test]
    fn date_constants() {
        let d = |y, m, dd| to_epoch_days(NaiveDate::from_ymd_opt(y, m, dd).unwrap());
        assert_eq!(DOB_MIN, d(1925, 1, 1));
        assert_eq!(WORLD_END, d(2025, 12, 31));
        assert_eq!(DEATH_MIN, d(2005, 1, 1));
        assert_eq!(TYPE1_MIN, d(2013, 4, 1));
        assert_eq!(NDOO_MIN, d(2018, 5, 25));
    }

    #[test]
    fn nhs_slots_give_distinct_valid_numbers() {
        let alloc = NhsAllocator::new(7);
        let mut seen = HashSet::new();
        for slot in (0..200_000u64).chain(NHS_SLOTS - 1000..NHS_SLOTS) {
            let n = alloc.number(slot);
            assert!(NhsNumber::from_digits(n.digits()).is_ok());
            assert!(matches!(n.digits()[0], 4 | 6));
            assert!(seen.insert(n), "slot {slot} repeats a number");
        }
    }

    #[test]
    fn feistel_is_a_permutation_of_the_slots_on_a_sample() {
        let alloc = NhsAllocator::new(11);
        let mut seen = HashSet::new();
        for slot in 0..100_000u64 {
            let p = alloc.permute(slot);
            assert!(p < NHS_SLOTS);
            assert!(seen.insert(p));
        }
    }
}
