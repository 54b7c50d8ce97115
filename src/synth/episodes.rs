//! Synthetic Hospital Episode Statistics (admitted patient care): the
//! `hes_apc` dataset.
//!
//! Episodes are spread over people by each person's admission rate (see
//! `people::activity`): about half the population is never admitted in
//! 2015–2025 and a few people are admitted many times. Each episode is
//! consistent with its person: the admission falls between 2015 and 2025
//! while they are alive, `age_at_admission` is their age that day, `sex`
//! follows their recorded gender, and `region`, `lsoa` and the provider
//! follow their home. Obstetric diagnoses go only to women of child-bearing
//! age.
//!
//! Episodes are generated in fixed-size chunks, each from its own ChaCha8
//! stream, so the file does not depend on the number of threads.

use chrono::Datelike;
use polars::prelude::*;
use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;

pub use super::people::ADMIT_MIN;
use super::people::{PeopleChunk, Person, FEMALE, MALE, PEOPLE_CHUNK};
use super::places::{lsoa_code, Places};
use super::{chunk_rng, Stream};
use crate::domain::date::from_epoch_days;

/// Episodes per generation chunk (and per Parquet row group).
pub const EPISODE_CHUNK: usize = 262_144;

/// Episode identifiers start here, so that an episode_id can never be
/// mistaken for a person_id in a join.
const EPISODE_ID_BASE: i64 = 1_000_000_000_000;

/// Common primary diagnoses (ICD-10) with rough relative frequencies.
const DIAGNOSES: &[(&str, f64)] = &[
    ("R07.4", 30.0),
    ("R10.4", 25.0),
    ("J18.9", 22.0),
    ("N39.0", 20.0),
    ("Z51.1", 20.0),
    ("J44.1", 12.0),
    ("I48.9", 10.0),
    ("I50.9", 10.0),
    ("I21.9", 9.0),
    ("I63.9", 8.0),
    ("H25.9", 12.0),
    ("K80.2", 9.0),
    ("K35.8", 5.0),
    ("K57.3", 5.0),
    ("K29.7", 5.0),
    ("K92.2", 4.0),
    ("K40.9", 5.0),
    ("K56.6", 3.0),
    ("K52.9", 4.0),
    ("N17.9", 6.0),
    ("N20.0", 4.0),
    ("S72.0", 6.0),
    ("S52.5", 4.0),
    ("S06.0", 4.0),
    ("S82.6", 3.0),
    ("R55.X", 8.0),
    ("R06.0", 5.0),
    ("R50.9", 4.0),
    ("R41.0", 3.0),
    ("C34.9", 4.0),
    ("C50.9", 4.0),
    ("C18.9", 3.0),
    ("D64.9", 4.0),
    ("F10.2", 3.0),
    ("F32.9", 2.0),
    ("F05.9", 2.0),
    ("A41.9", 6.0),
    ("A09.9", 5.0),
    ("L03.1", 4.0),
    ("E11.9", 3.0),
    ("E87.1", 3.0),
    ("M17.1", 6.0),
    ("M16.1", 5.0),
    ("G40.9", 4.0),
    ("J45.9", 4.0),
    ("J06.9", 3.0),
    ("J20.9", 3.0),
    ("I20.9", 4.0),
    ("I25.1", 4.0),
];

/// Obstetric diagnoses (women aged 16–45 only).
const OBSTETRIC: &[(&str, f64)] = &[
    ("O80.0", 30.0),
    ("O70.0", 10.0),
    ("O34.2", 8.0),
    ("O47.9", 8.0),
    ("O20.0", 5.0),
    ("O42.0", 5.0),
];

/// Primary procedures (OPCS-4).
const PROCEDURES: &[(&str, f64)] = &[
    ("X72.1", 15.0),
    ("C71.2", 12.0),
    ("H22.9", 10.0),
    ("G45.1", 10.0),
    ("U05.1", 10.0),
    ("K63.1", 6.0),
    ("K40.1", 2.0),
    ("K75.1", 3.0),
    ("W37.1", 4.0),
    ("W40.1", 4.0),
    ("X40.3", 5.0),
    ("M45.9", 5.0),
    ("R17.2", 4.0),
    ("R18.2", 2.0),
    ("H01.1", 2.0),
    ("J18.3", 3.0),
    ("T20.2", 2.0),
    ("W19.1", 2.0),
    ("E49.1", 3.0),
    ("Y53.4", 3.0),
];

/// Admission methods: 1x elective, 2x emergency, 3x maternity, 8x other.
const ADMISSION_METHODS: &[(&str, f64)] = &[
    ("11", 20.0),
    ("12", 15.0),
    ("13", 5.0),
    ("21", 35.0),
    ("22", 6.0),
    ("23", 1.0),
    ("24", 3.0),
    ("25", 0.5),
    ("2A", 1.0),
    ("2B", 1.5),
    ("2C", 0.5),
    ("2D", 2.0),
    ("28", 2.0),
    ("31", 2.0),
    ("32", 1.0),
    ("81", 0.5),
    ("82", 0.3),
    ("83", 0.2),
];

/// Weighted choices over the code lists above.
pub struct ClinicalCodes {
    diagnoses: WeightedIndex<f64>,
    obstetric: WeightedIndex<f64>,
    procedures: WeightedIndex<f64>,
    methods: WeightedIndex<f64>,
}

fn weights(list: &[(&str, f64)]) -> WeightedIndex<f64> {
    // Constant, non-empty lists of positive weights.
    WeightedIndex::new(list.iter().map(|(_, w)| *w)).expect("constant positive weights")
}

impl ClinicalCodes {
    pub fn new() -> Self {
        Self {
            diagnoses: weights(DIAGNOSES),
            obstetric: weights(OBSTETRIC),
            procedures: weights(PROCEDURES),
            methods: weights(ADMISSION_METHODS),
        }
    }
}

/// Who can be admitted, with what weight: cumulative admission rates over
/// every person in file order, and a guide table (Chen and Asau's cutpoint
/// method) so that sampling costs a couple of memory reads rather than a
/// binary search through millions of cache lines.
pub struct Admissions<'a> {
    chunks: &'a [PeopleChunk],
    cumulative: Vec<f64>,
    /// `guide[k]`: the first person whose interval ends after `k / scale`.
    guide: Vec<u32>,
    scale: f64,
}

impl<'a> Admissions<'a> {
    pub fn new(chunks: &'a [PeopleChunk]) -> Self {
        let mut total = 0.0f64;
        let cumulative: Vec<f64> = chunks
            .iter()
            .flat_map(|c| c.persons.iter())
            .map(|p| {
                total += f64::from(p.activity);
                total
            })
            .collect();
        let buckets = cumulative.len().max(1);
        let scale = if total > 0.0 {
            buckets as f64 / total
        } else {
            0.0
        };
        let mut guide = Vec::with_capacity(buckets);
        let mut i = 0;
        for k in 0..buckets {
            let bound = k as f64 / scale;
            while i + 1 < cumulative.len() && cumulative[i] <= bound {
                i += 1;
            }
            // People fit in u32: NHS_SLOTS (20 million) bounds them.
            guide.push(i as u32);
        }
        Self {
            chunks,
            cumulative,
            guide,
            scale,
        }
    }

    /// True when nobody can be admitted (every admission rate is zero).
    pub fn is_empty(&self) -> bool {
        self.cumulative.last().is_none_or(|&t| t <= 0.0)
    }

    /// A person chosen in proportion to their admission rate, with their
    /// global index: the first person whose interval ends after a uniform
    /// draw, so people with rate zero are never chosen. Only called when
    /// `!is_empty()`.
    fn pick<R: Rng>(&self, rng: &mut R) -> (usize, &'a Person) {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let u = rng.gen::<f64>() * total;
        let bucket = ((u * self.scale) as usize).min(self.guide.len() - 1);
        let last = self.cumulative.len() - 1;
        let mut i = self.guide[bucket] as usize;
        // The guide is a lower bound up to rounding: step back if rounding
        // overshot, then forward to the first interval ending after u.
        while i > 0 && self.cumulative[i - 1] > u {
            i -= 1;
        }
        while i < last && self.cumulative[i] <= u {
            i += 1;
        }
        (i, &self.chunks[i / PEOPLE_CHUNK].persons[i % PEOPLE_CHUNK])
    }
}

/// Whole years from `dob` to `on` (both days since 1970-01-01).
pub fn age_on(dob: i32, on: i32) -> i64 {
    match (from_epoch_days(dob), from_epoch_days(on)) {
        (Some(b), Some(d)) => {
            let mut age = d.year() - b.year();
            if (d.month(), d.day()) < (b.month(), b.day()) {
                age -= 1;
            }
            i64::from(age)
        }
        _ => i64::from((on - dob) / 365),
    }
}

/// A length of stay in days: many elective episodes are day cases,
/// emergencies stay longer, a few stay months.
fn length_of_stay<R: Rng>(rng: &mut R, elective: bool) -> i32 {
    if elective && rng.gen_bool(0.6) {
        return 0;
    }
    let mean = if elective { 2.5 } else { 5.0 };
    let u: f64 = rng.gen();
    ((-(1.0 - u).ln() * mean) as i32).min(365)
}

/// Generates episodes `chunk * EPISODE_CHUNK ..` (at most `total`).
pub fn episodes_frame(
    codes: &ClinicalCodes,
    admissions: &Admissions<'_>,
    seed: u64,
    chunk: usize,
    total: usize,
) -> PolarsResult<DataFrame> {
    let first = chunk * EPISODE_CHUNK;
    let n = EPISODE_CHUNK.min(total.saturating_sub(first));
    let mut rng = chunk_rng(seed, Stream::Episodes, chunk as u64);
    let mut person_id = Vec::with_capacity(n);
    let mut episode_id = Vec::with_capacity(n);
    let mut admission = Vec::with_capacity(n);
    let mut discharge = Vec::with_capacity(n);
    let mut provider = StringChunkedBuilder::new("provider_code".into(), n);
    let mut diagnosis = StringChunkedBuilder::new("diagnosis_primary".into(), n);
    let mut procedure = StringChunkedBuilder::new("procedure_primary".into(), n);
    let mut method = StringChunkedBuilder::new("admission_method".into(), n);
    let mut age = Vec::with_capacity(n);
    let mut sex = StringChunkedBuilder::new("sex".into(), n);
    let mut ethnicity = StringChunkedBuilder::new("ethnicity".into(), n);
    let mut lsoa = StringChunkedBuilder::new("lsoa".into(), n);
    let mut region = StringChunkedBuilder::new("region".into(), n);
    let mut stay = Vec::with_capacity(n);
    for i in 0..n {
        let (index, p) = admissions.pick(&mut rng);
        let (lo, hi) = super::people::admission_window(p).unwrap_or((ADMIT_MIN, ADMIT_MIN));
        let admitted = rng.gen_range(lo..=hi);
        let m = ADMISSION_METHODS[codes.methods.sample(&mut rng)].0;
        let mut discharged = admitted + length_of_stay(&mut rng, m.starts_with('1'));
        if let Some(died) = p.dod {
            discharged = discharged.min(died);
        }
        let years = age_on(p.dob, admitted);
        let code = if p.gender == FEMALE
            && (16..=45).contains(&years)
            && (m.starts_with('3') || rng.gen_bool(0.08))
        {
            OBSTETRIC[codes.obstetric.sample(&mut rng)].0
        } else {
            DIAGNOSES[codes.diagnoses.sample(&mut rng)].0
        };

        person_id.push(index as i64 + 1);
        episode_id.push(EPISODE_ID_BASE + (first + i) as i64 + 1);
        admission.push(admitted);
        discharge.push(discharged);
        provider.append_value(Places::provider(&mut rng, p.home.region));
        diagnosis.append_value(code);
        if rng.gen_bool(0.45) {
            procedure.append_null();
        } else {
            procedure.append_value(PROCEDURES[codes.procedures.sample(&mut rng)].0);
        }
        method.append_value(m);
        age.push(years);
        sex.append_value(match p.gender {
            MALE => "1",
            FEMALE => "2",
            _ => "9",
        });
        ethnicity.append_value(super::people::ETHNICITY_CODES[usize::from(p.ethnicity)]);
        lsoa.append_value(super::people::ascii(&lsoa_code(p.home.lsoa)));
        region.append_value(Places::region_name(p.home.region));
        stay.push(i64::from(discharged - admitted));
    }
    DataFrame::new(
        n,
        vec![
            Int64Chunked::from_vec("person_id".into(), person_id).into_column(),
            Int64Chunked::from_vec("episode_id".into(), episode_id).into_column(),
            Int32Chunked::from_vec("admission_date".into(), admission)
                .into_date()
                .into_column(),
            Int32Chunked::from_vec("discharge_date".into(), discharge)
                .into_date()
                .into_column(),
            provider.finish().into_column(),
            diagnosis.finish().into_column(),
            procedure.finish().into_column(),
            method.finish().into_column(),
            Int64Chunked::from_vec("age_at_admission".into(), age).into_column(),
            sex.finish().into_column(),
            ethnicity.finish().into_column(),
            lsoa.finish().into_column(),
            region.finish().into_column(),
            Int64Chunked::from_vec("length_of_stay".into(), stay).into_column(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::date::to_epoch_days;
    use chrono::NaiveDate;

    fn day(y: i32, m: u32, d: u32) -> i32 {
        to_epoch_days(NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    #[test]
    fn guided_pick_matches_binary_search() {
        use crate::synth::people::{people_chunk, World};
        use rand::SeedableRng;
        let world = World::new(1);
        let chunks = vec![people_chunk(&world, 0, 5_000)];
        let adm = Admissions::new(&chunks);
        let mut a = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut b = a.clone();
        for _ in 0..20_000 {
            let (i, p) = adm.pick(&mut a);
            let total = *adm.cumulative.last().unwrap();
            let u = b.gen::<f64>() * total;
            let j = adm.cumulative.partition_point(|&c| c <= u);
            assert_eq!(i, j);
            assert!(p.activity > 0.0);
        }
    }

    #[test]
    fn admit_min_is_2015() {
        assert_eq!(ADMIT_MIN, day(2015, 1, 1));
    }

    #[test]
    fn ages_turn_on_the_birthday() {
        let dob = day(1980, 2, 29);
        assert_eq!(age_on(dob, day(2020, 2, 28)), 39);
        assert_eq!(age_on(dob, day(2020, 2, 29)), 40);
        assert_eq!(age_on(dob, day(2021, 2, 28)), 40);
        assert_eq!(age_on(dob, day(2021, 3, 1)), 41);
        assert_eq!(age_on(dob, dob), 0);
    }
}
