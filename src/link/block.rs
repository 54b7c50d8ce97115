//! Candidate generation: blocking on a union of keys.
//!
//! Each [`Key`] is a set of columns; a cohort row and a person of the index
//! are compared when they share the values of every column of at least one
//! key. Key values are numbers (see [`code`]), so blocking hashes and
//! compares integers, never strings. Before any pair is made, the people of
//! every wanted block (those sharing a value some cohort row looks up) are
//! found in one parallel pass over the index per set of key columns and
//! grouped by value, so that the comparisons are known up front. A block
//! larger than `max_block` (a default date of birth such as 1900-01-01, a
//! common forename on it) is first narrowed to the people who could still
//! be the row's person on the fields the key does not use: the row's
//! gender (people whose gender is not known stay), then, if that is not
//! enough, its postcode area (people without a postcode stay). A block
//! still too big is dropped. If the total still exceeds `max_comparisons`
//! the largest remaining blocks are dropped until it fits. Memory is
//! therefore bounded by `max_comparisons` (and the index), whatever the
//! data, and the report says, per key, what narrowing and the caps left
//! out.

use polars::prelude::{PlHashMap, PlHashSet};
use rayon::prelude::*;

use super::index::{self, column, Index};
use super::LinkError;
use crate::domain::Gender;

/// A blocking key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// The cohort's valid NHS number.
    NhsNumber,
    /// The valid numbers one edit or one transposition away from a number
    /// that fails modulus 11.
    NhsNumberNeighbour,
    DobDistrict,
    SwappedDobDistrict,
    DobSurnameInitial,
    SwappedDobSurnameInitial,
    /// Forename, the Soundex code of the surname and year of birth: the
    /// exact names and year, and a surname typo that keeps its sound.
    NamesYear,
    /// Date of birth and forename: finds the married who moved (new
    /// surname, new postcode) when the NHS number is missing.
    DobForename,
    /// Postcode in full and year of birth: a day or month typo at home.
    PostcodeYear,
    /// Forename, surname and postcode district: a row without a usable
    /// date of birth.
    NamesDistrict,
    /// Date of birth with the cohort's surname looked up as a forename:
    /// names given the other way round.
    SwappedNamesDob,
    /// Postcode in full and forename: a wrong date of birth and a new
    /// surname at the same address.
    PostcodeForename,
}

impl Key {
    pub const ALL: [Key; 12] = [
        Self::NhsNumber,
        Self::NhsNumberNeighbour,
        Self::DobDistrict,
        Self::SwappedDobDistrict,
        Self::DobSurnameInitial,
        Self::SwappedDobSurnameInitial,
        Self::NamesYear,
        Self::DobForename,
        Self::PostcodeYear,
        Self::NamesDistrict,
        Self::SwappedNamesDob,
        Self::PostcodeForename,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::NhsNumber => "nhs_number",
            Self::NhsNumberNeighbour => "nhs_number_one_edit",
            Self::DobDistrict => "dob+district",
            Self::SwappedDobDistrict => "swapped_dob+district",
            Self::DobSurnameInitial => "dob+surname_initial",
            Self::SwappedDobSurnameInitial => "swapped_dob+surname_initial",
            Self::NamesYear => "forename+surname_soundex+year",
            Self::DobForename => "dob+forename",
            Self::PostcodeYear => "postcode+year",
            Self::NamesDistrict => "forename+surname+district",
            Self::SwappedNamesDob => "dob+swapped_names",
            Self::PostcodeForename => "postcode+forename",
        }
    }

    /// The columns joined on (the cohort's key frame names them the same).
    pub fn columns(self) -> &'static [&'static str] {
        use column::*;
        match self {
            Self::NhsNumber | Self::NhsNumberNeighbour => &[NHS_NUMBER],
            Self::DobDistrict | Self::SwappedDobDistrict => &[DOB, DISTRICT],
            Self::DobSurnameInitial | Self::SwappedDobSurnameInitial => &[DOB, SURNAME_INITIAL],
            Self::NamesYear => &[FORENAME_KEY, SURNAME_SOUNDEX, YEAR],
            Self::DobForename => &[DOB, FORENAME_KEY],
            Self::PostcodeYear => &[POSTCODE, YEAR],
            Self::NamesDistrict => &[FORENAME_KEY, SURNAME_KEY, DISTRICT],
            Self::SwappedNamesDob => &[DOB, FORENAME_KEY],
            Self::PostcodeForename => &[POSTCODE, FORENAME_KEY],
        }
    }

    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The names of the keys in a mask, joined with `;`.
    pub fn names_of(mask: u16) -> String {
        Self::ALL
            .iter()
            .filter(|k| mask & k.bit() != 0)
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// What one key did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyReport {
    pub key: &'static str,
    /// Cohort key values looked up (a row may have several, for example
    /// the neighbours of a failed NHS number).
    pub lookups: usize,
    /// Comparisons the key asked for (cohort lookups times block sizes).
    pub comparisons: u64,
    /// Lookups left out because their block was too big even narrowed,
    /// or for the comparison budget, and the comparisons they would have
    /// cost.
    pub capped_lookups: usize,
    pub capped_comparisons: u64,
    /// Lookups whose block was too big and was narrowed to the row's
    /// gender or postcode area (see the module doc), and the comparisons
    /// the narrowing left out: a true person who changed gender code or
    /// moved to another area is among these.
    pub narrowed_lookups: usize,
    pub narrowed_comparisons: u64,
}

/// What blocking did, per key, for the run summary and the bench.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlockingReport {
    pub keys: Vec<KeyReport>,
    pub max_block: usize,
    pub max_comparisons: u64,
}

impl BlockingReport {
    pub fn comparisons(&self) -> u64 {
        self.keys.iter().map(|k| k.comparisons).sum()
    }
    pub fn capped_comparisons(&self) -> u64 {
        self.keys.iter().map(|k| k.capped_comparisons).sum()
    }

    fn merge(&mut self, other: BlockingReport) {
        for k in other.keys {
            match self.keys.iter_mut().find(|r| r.key == k.key) {
                Some(r) => {
                    r.lookups += k.lookups;
                    r.comparisons += k.comparisons;
                    r.capped_lookups += k.capped_lookups;
                    r.capped_comparisons += k.capped_comparisons;
                    r.narrowed_lookups += k.narrowed_lookups;
                    r.narrowed_comparisons += k.narrowed_comparisons;
                }
                None => self.keys.push(k),
            }
        }
        self.max_block = other.max_block;
        self.max_comparisons = other.max_comparisons;
    }
}

/// A candidate pair: cohort row, index row, and the keys that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pair {
    pub row: u32,
    pub idx: u32,
    pub keys: u16,
}

/// What a cohort row offers to narrow a block too big to compare whole:
/// its gender (male or female) and its postcode area. The default narrows
/// nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Narrowing {
    pub gender: Option<Gender>,
    /// The leading letters of the postcode ("LS"), ASCII, at most two.
    pub area: Option<[u8; 2]>,
}

impl Narrowing {
    /// A row's narrowing: its gender when known, its postcode's area.
    pub fn of(gender: Option<Gender>, postcode: Option<&str>) -> Self {
        Self {
            gender: gender.filter(|g| *g != Gender::NotKnown),
            area: postcode.and_then(area_code),
        }
    }
}

/// A person's gender and postcode area as far as narrowing reads them
/// (`None`: not known, no postcode).
type Part = (Option<Gender>, Option<[u8; 2]>);

/// The people of one block too big, grouped by gender and postcode area,
/// so that each narrowing of it is a union of a few groups, found without
/// going through the block again: a default date looked up by thousands
/// of rows costs one pass over its people, however the rows narrow.
struct Parts(Vec<(Part, Vec<u32>)>);

impl Parts {
    fn of(index: &Index, block: &[u32]) -> Self {
        let mut groups: PlHashMap<Part, Vec<u32>> = PlHashMap::default();
        for &i in block {
            let gender = index.people[i as usize]
                .gender
                .filter(|g| *g != Gender::NotKnown);
            let area = index.person(i).postcode.and_then(area_code);
            groups.entry((gender, area)).or_default().push(i);
        }
        Self(groups.into_iter().collect())
    }

    /// The people who could still be the row's person: of its gender
    /// (or not known), then, if still more than `max`, of its area (or
    /// without a postcode), in index order. `None` when even that leaves
    /// more than `max`.
    fn narrow(&self, n: Narrowing, max: usize) -> Option<Vec<u32>> {
        let gender = |p: &Part| n.gender.is_none() || p.0.is_none() || p.0 == n.gender;
        let both = |p: &Part| gender(p) && (p.1.is_none() || p.1 == n.area);
        let size = |keep: &dyn Fn(&Part) -> bool| -> usize {
            self.0
                .iter()
                .filter(|(p, _)| keep(p))
                .map(|(_, v)| v.len())
                .sum()
        };
        let keep: &dyn Fn(&Part) -> bool = if n.gender.is_some() && size(&gender) <= max {
            &gender
        } else if n.area.is_some() && size(&both) <= max {
            &both
        } else {
            return None;
        };
        let mut kept: Vec<u32> = self
            .0
            .iter()
            .filter(|(p, _)| keep(p))
            .flat_map(|(_, v)| v.iter().copied())
            .collect();
        kept.sort_unstable();
        Some(kept)
    }
}

/// A postcode's area as a fixed-size code: its leading letters ("LS",
/// "M"), `None` when it has none or more than two.
fn area_code(postcode: &str) -> Option<[u8; 2]> {
    let letters = postcode
        .trim_start()
        .bytes()
        .take_while(u8::is_ascii_alphabetic)
        .count();
    match postcode.trim_start().as_bytes()[..letters] {
        [a] => Some([a.to_ascii_uppercase(), 0]),
        [a, b] => Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()]),
        _ => None,
    }
}

/// Blocking limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_block: usize,
    pub max_comparisons: u64,
}

/// Key values as numbers: each column of a key is a number (a date in
/// days, a year, a Soundex code, a character, or the number of a name,
/// postcode or district in the index's dictionaries, see `index`), and a
/// key's value is its columns packed side by side, so two values are equal
/// exactly when every column is. Values are compared only within one key's
/// columns.
pub mod code {
    /// A cohort value that nobody in the index has (a name or postcode the
    /// dictionaries lack): a look-up with an empty block. No packing gives
    /// it, since no column is `u32::MAX` in the top word.
    pub const ABSENT: u128 = u128::MAX;

    pub fn one(a: u64) -> u128 {
        u128::from(a)
    }
    pub fn two(a: u32, b: u32) -> u128 {
        (u128::from(a) << 32) | u128::from(b)
    }
    pub fn three(a: u32, b: u32, c: u32) -> u128 {
        (u128::from(a) << 64) | (u128::from(b) << 32) | u128::from(c)
    }
    /// A date (days) or year as a column.
    pub fn int(v: i32) -> u32 {
        v as u32
    }
}

/// One key's look-ups: the cohort position of each and its value (see
/// [`code`]). A row may have several (the neighbours of a failed NHS
/// number).
pub struct Lookups {
    pub key: Key,
    pub rows: Vec<u32>,
    pub codes: Vec<u128>,
}

impl Lookups {
    pub fn new(key: Key) -> Self {
        Self {
            key,
            rows: Vec::new(),
            codes: Vec::new(),
        }
    }

    pub fn push(&mut self, row: u32, code: u128) {
        self.rows.push(row);
        self.codes.push(code);
    }
}

/// Person `i`'s value of `key`'s columns, `None` when a column is null.
fn person_code(index: &Index, key: Key, i: usize) -> Option<u128> {
    use index::{NONE, NO_DATE, NO_NHS};
    let p = &index.people[i];
    let dob = || Some(p.dob).filter(|&d| d != NO_DATE).map(code::int);
    let year = || Some(p.year).filter(|&y| y != NO_DATE).map(code::int);
    let some = |v: u32| Some(v).filter(|&v| v != NONE);
    let postcode = || some(p.postcode);
    let district = || postcode().map(|p| index.district_of(p));
    let forename = || some(p.forename);
    let surname = || some(p.surname);
    match key {
        Key::NhsNumber | Key::NhsNumberNeighbour => {
            Some(p.nhs).filter(|&n| n != NO_NHS).map(code::one)
        }
        Key::DobDistrict | Key::SwappedDobDistrict => Some(code::two(dob()?, district()?)),
        Key::DobSurnameInitial | Key::SwappedDobSurnameInitial => {
            Some(code::two(dob()?, some(index.initial_of(surname()?))?))
        }
        Key::NamesYear => Some(code::three(
            forename()?,
            some(index.soundex_of(surname()?))?,
            year()?,
        )),
        Key::DobForename | Key::SwappedNamesDob => Some(code::two(dob()?, forename()?)),
        Key::PostcodeYear => Some(code::two(postcode()?, year()?)),
        Key::NamesDistrict => Some(code::three(forename()?, surname()?, district()?)),
        Key::PostcodeForename => Some(code::two(postcode()?, forename()?)),
    }
}

/// The people of the index whose value of `key`'s columns is in `wanted`,
/// as (value, person) sorted, and where each value's block starts and ends.
fn members(index: &Index, key: Key, wanted: &PlHashSet<u128>) -> Blocks {
    // A bit per hashed value, set for the wanted ones: most people are in
    // no wanted block, and one bit tells most of them so.
    let bits = (wanted.len() * 16)
        .next_power_of_two()
        .clamp(1 << 12, 1 << 28);
    let slot = |c: u128| {
        let h =
            ((c as u64) ^ ((c >> 64) as u64).rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> (64 - bits.trailing_zeros())) as usize
    };
    let mut filter = vec![0u64; bits / 64];
    for &c in wanted {
        let at = slot(c);
        filter[at / 64] |= 1 << (at % 64);
    }
    let mut people: Vec<(u128, u32)> = (0..index.len())
        .into_par_iter()
        .with_min_len(1 << 16)
        .filter_map(|i| {
            person_code(index, key, i)
                .filter(|&c| {
                    let at = slot(c);
                    filter[at / 64] & (1 << (at % 64)) != 0 && wanted.contains(&c)
                })
                .map(|c| (c, i as u32))
        })
        .collect();
    people.par_sort_unstable();
    let mut ranges: PlHashMap<u128, (u32, u32)> = PlHashMap::default();
    let mut start = 0usize;
    while start < people.len() {
        let c = people[start].0;
        let mut end = start + 1;
        while end < people.len() && people[end].0 == c {
            end += 1;
        }
        ranges.insert(c, (start as u32, end as u32));
        start = end;
    }
    Blocks {
        people: people.into_iter().map(|(_, i)| i).collect(),
        ranges,
    }
}

/// The people of the wanted blocks of one set of key columns.
struct Blocks {
    people: Vec<u32>,
    ranges: PlHashMap<u128, (u32, u32)>,
}

impl Blocks {
    fn block(&self, code: u128) -> &[u32] {
        match self.ranges.get(&code) {
            Some(&(a, b)) => &self.people[a as usize..b as usize],
            None => &[],
        }
    }
}

/// The candidate pairs of the cohort look-ups `lookups`, deduplicated,
/// sorted by row then index row, and what each key cost. `report`
/// accumulates across calls. A block too big is dropped whole (see
/// [`candidates_narrowed`] to narrow it first).
pub fn candidates(
    index: &Index,
    lookups: Vec<Lookups>,
    limits: Limits,
    report: &mut BlockingReport,
) -> Result<Vec<Pair>, LinkError> {
    candidates_narrowed(index, lookups, &|_| Narrowing::default(), limits, report)
}

/// As [`candidates`], narrowing a block too big to the people who could
/// still be row `r`'s person by `narrowing(r)` (see the module doc).
pub fn candidates_narrowed(
    index: &Index,
    lookups: Vec<Lookups>,
    narrowing: &(dyn Fn(u32) -> Narrowing + Sync),
    limits: Limits,
    report: &mut BlockingReport,
) -> Result<Vec<Pair>, LinkError> {
    // 1. Block sizes, before any pair is made: the people of the index in
    // a wanted block, grouped by value. Keys on the same columns (a date of
    // birth and the same date swapped) share one pass over the index, on
    // the union of their wanted values.
    let lookups: Vec<Lookups> = lookups.into_iter().filter(|l| !l.rows.is_empty()).collect();
    let mut passes: Vec<(&'static [&'static str], Blocks)> = Vec::new();
    for l in &lookups {
        let columns = l.key.columns();
        if passes.iter().any(|(c, _)| *c == columns) {
            continue;
        }
        let wanted: PlHashSet<u128> = lookups
            .iter()
            .filter(|k| k.key.columns() == columns)
            .flat_map(|k| k.codes.iter().copied())
            .filter(|&c| c != code::ABSENT)
            .collect();
        passes.push((columns, members(index, l.key, &wanted)));
    }
    let block_of = |key: Key| -> &Blocks {
        // Every key with a look-up had its pass above.
        &passes
            .iter()
            .find(|(c, _)| *c == key.columns())
            .expect("a pass for every key")
            .1
    };
    let whole: Vec<(Lookups, Vec<u64>)> = lookups
        .into_iter()
        .map(|l| {
            let blocks = block_of(l.key);
            let sizes = l
                .codes
                .iter()
                .map(|&c| blocks.block(c).len() as u64)
                .collect();
            (l, sizes)
        })
        .collect();

    // 2. Narrowing: each block above `max_block` that a row with a
    // gender or a postcode looks up is grouped once (see `Parts`), in
    // parallel, then narrowed once per distinct narrowing of those rows;
    // the lookup then takes the narrowed block's size.
    let mut wanted: Vec<(usize, u128, Narrowing)> = whole
        .iter()
        .enumerate()
        .flat_map(|(s, (l, b))| {
            b.iter()
                .zip(l.rows.iter().zip(&l.codes))
                .filter(|(&n, _)| n as usize > limits.max_block)
                .map(move |(_, (&row, &c))| (s, c, narrowing(row)))
        })
        .filter(|(_, _, n)| *n != Narrowing::default())
        .collect();
    wanted.sort_unstable_by_key(|&(s, c, n)| (s, c, n.gender.map(|g| g as u8), n.area));
    wanted.dedup();
    let mut big: Vec<(usize, u128)> = wanted.iter().map(|&(s, c, _)| (s, c)).collect();
    big.dedup();
    let parts: PlHashMap<(usize, u128), Parts> = big
        .into_par_iter()
        .map(|(s, c)| ((s, c), Parts::of(index, block_of(whole[s].0.key).block(c))))
        .collect();
    let narrowed: PlHashMap<(usize, u128, Narrowing), Vec<u32>> = wanted
        .into_par_iter()
        .filter_map(|(s, c, n)| {
            parts[&(s, c)]
                .narrow(n, limits.max_block)
                .map(|kept| ((s, c, n), kept))
        })
        .collect();
    let narrowed_block = |s: usize, i: usize| -> Option<&Vec<u32>> {
        let l = &whole[s].0;
        if whole[s].1[i] as usize <= limits.max_block {
            return None;
        }
        narrowed.get(&(s, l.codes[i], narrowing(l.rows[i])))
    };
    let sized: Vec<(&Lookups, Vec<u64>)> = whole
        .iter()
        .enumerate()
        .map(|(s, (l, b))| {
            let sizes = (0..b.len())
                .map(|i| narrowed_block(s, i).map_or(b[i], |k| k.len() as u64))
                .collect();
            (l, sizes)
        })
        .collect();

    // 3. Caps: every block still above `max_block`, then the largest
    // blocks until the total fits `max_comparisons`.
    let mut keep: Vec<Vec<bool>> = sized
        .iter()
        .map(|(_, b)| b.iter().map(|&n| n as usize <= limits.max_block).collect())
        .collect();
    let mut total: u64 = sized
        .iter()
        .zip(&keep)
        .flat_map(|((_, b), k)| b.iter().zip(k).filter(|(_, &k)| k).map(|(n, _)| *n))
        .sum();
    if total > limits.max_comparisons {
        let mut order: Vec<(u64, usize, usize)> = sized
            .iter()
            .enumerate()
            .flat_map(|(s, (_, b))| b.iter().enumerate().map(move |(i, &n)| (n, s, i)))
            .filter(|&(_, s, i)| keep[s][i])
            .collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        for (n, s, i) in order {
            if total <= limits.max_comparisons {
                break;
            }
            keep[s][i] = false;
            total -= n;
        }
    }

    // 4. Pairs: every kept look-up with every person of its block, or of
    // its narrowed block.
    let mut pairs = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    let mut this = BlockingReport {
        keys: Vec::new(),
        max_block: limits.max_block,
        max_comparisons: limits.max_comparisons,
    };
    for (s, ((l, sizes), kept)) in sized.iter().zip(keep).enumerate() {
        let key = l.key;
        let mut r = KeyReport {
            key: key.name(),
            lookups: sizes.len(),
            ..Default::default()
        };
        for ((n, asked), k) in sizes.iter().zip(&whole[s].1).zip(&kept) {
            r.comparisons += asked;
            if n != asked {
                r.narrowed_lookups += 1;
                r.narrowed_comparisons += asked - n;
            }
            if !k {
                r.capped_lookups += 1;
                r.capped_comparisons += n;
            }
        }
        if r.narrowed_lookups > 0 {
            tracing::info!(
                key = key.name(),
                narrowed_lookups = r.narrowed_lookups,
                narrowed_comparisons = r.narrowed_comparisons,
                max_block = limits.max_block,
                "blocking key narrowed: blocks too big were narrowed to the row's gender or postcode area"
            );
        }
        if r.capped_lookups > 0 {
            tracing::warn!(
                key = key.name(),
                capped_lookups = r.capped_lookups,
                capped_comparisons = r.capped_comparisons,
                max_block = limits.max_block,
                "blocking key capped: blocks too big were left out"
            );
        }
        this.keys.push(r);
        let blocks = block_of(key);
        for (i, ((&row, &c), k)) in l.rows.iter().zip(&l.codes).zip(&kept).enumerate() {
            if *k {
                let block = match narrowed_block(s, i) {
                    Some(kept) => kept.as_slice(),
                    None => blocks.block(c),
                };
                pairs.extend(block.iter().map(|&idx| Pair {
                    row,
                    idx,
                    keys: key.bit(),
                }));
            }
        }
    }
    report.merge(this);
    Ok(merge_pairs(pairs))
}

/// Sorts pairs by row and index row and merges the keys of duplicates.
pub fn merge_pairs(mut pairs: Vec<Pair>) -> Vec<Pair> {
    pairs.sort_unstable();
    let mut out: Vec<Pair> = Vec::with_capacity(pairs.len());
    for p in pairs {
        match out.last_mut() {
            Some(last) if last.row == p.row && last.idx == p.idx => last.keys |= p.keys,
            _ => out.push(p),
        }
    }
    out
}
