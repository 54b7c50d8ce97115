//! The applicant's cohort file, written the way applicants really send it,
//! and the truth file that says which person each row really is.
//!
//! `cohort.csv` starts with a UTF-8 byte order mark, ends lines with CRLF,
//! quotes fields where CSV needs it (and names with spaces, as many
//! exporters do), and varies layouts from row to row: NHS numbers as
//! `9434765919`, `943 476 5919` or `943-476-5919`; dates as `YYYY-MM-DD`,
//! `DD/MM/YYYY` or `YYYYMMDD`; gender as a code or a word; postcodes
//! normalised, without the space or in lower case; now and then a surname
//! in capitals. Every row is structurally valid (seven fields, a unique
//! study ID): structural errors belong to the tests that need them.
//!
//! Each row is one kind (see the module documentation of `synth` for the
//! list and shares). Kinds are allotted exactly (largest remainder) and
//! shuffled; people are drawn without replacement, so nobody appears twice,
//! and some twin pairs are always included whole.

use std::fmt::Write as _;

use chrono::{Datelike, NaiveDate};
use rand::seq::{index, SliceRandom};
use rand::Rng;

use super::names::{Era, Surname};
use super::people::{
    any_age, ascii, birthday_in, nhs_digits, year_of, PeopleChunk, Person, World, FEMALE,
    GENDER_CODES, MALE, PEOPLE_CHUNK,
};
use super::{chunk_rng, Stream};
use crate::domain::date::{from_epoch_days, to_epoch_days};
use crate::domain::NhsNumber;

/// What was done to a cohort row, as `truth.csv` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Clean,
    Moved,
    NhsTypo,
    NhsTransposition,
    NhsMissing,
    DobSwap,
    DobOffByOne,
    NameTypo,
    GenderUnknown,
    NotInIndex,
    Unreadable,
    NamesSwapped,
    Hyphenated,
    TwinNoNhs,
    NicknameNoNhs,
    MarriedMovedNoNhs,
    OtherPersonsNhs,
    SeveralErrors,
    AbsentLookalike,
}

/// Every kind with its share of the cohort, per thousand rows.
pub const SHARES: [(Kind, u32); 19] = [
    (Kind::Clean, 750),
    (Kind::Moved, 25),
    (Kind::NhsTypo, 25),
    (Kind::NhsTransposition, 15),
    (Kind::NhsMissing, 25),
    (Kind::DobSwap, 20),
    (Kind::DobOffByOne, 15),
    (Kind::NameTypo, 25),
    (Kind::GenderUnknown, 15),
    (Kind::NotInIndex, 30),
    (Kind::Unreadable, 15),
    (Kind::NamesSwapped, 5),
    (Kind::Hyphenated, 5),
    (Kind::TwinNoNhs, 5),
    (Kind::NicknameNoNhs, 5),
    (Kind::MarriedMovedNoNhs, 5),
    (Kind::OtherPersonsNhs, 5),
    (Kind::SeveralErrors, 5),
    (Kind::AbsentLookalike, 5),
];

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::Moved => "moved",
            Self::NhsTypo => "nhs_typo",
            Self::NhsTransposition => "nhs_transposition",
            Self::NhsMissing => "nhs_missing",
            Self::DobSwap => "dob_swap",
            Self::DobOffByOne => "dob_off_by_one",
            Self::NameTypo => "name_typo",
            Self::GenderUnknown => "gender_unknown",
            Self::NotInIndex => "not_in_index",
            Self::Unreadable => "unreadable",
            Self::NamesSwapped => "names_swapped",
            Self::Hyphenated => "hyphenated_surname",
            Self::TwinNoNhs => "twin_no_nhs",
            Self::NicknameNoNhs => "nickname_no_nhs",
            Self::MarriedMovedNoNhs => "married_moved_no_nhs",
            Self::OtherPersonsNhs => "other_persons_nhs",
            Self::SeveralErrors => "several_errors",
            Self::AbsentLookalike => "absent_lookalike",
        }
    }

    /// Rows of this kind are people who are not in demographics.
    pub fn is_absent(self) -> bool {
        matches!(self, Self::NotInIndex | Self::AbsentLookalike)
    }

    /// Whether person `g` can carry this kind of error.
    fn fits(self, world: &World, chunks: &[PeopleChunk], g: usize) -> bool {
        let p = person(chunks, g);
        match self {
            Self::DobSwap => {
                from_epoch_days(p.dob).is_some_and(|d| d.day() <= 12 && d.day() != d.month())
            }
            Self::NameTypo => p.forename.is_some() || p.surname.is_some(),
            Self::NamesSwapped => match (p.forename, p.surname) {
                (Some(f), Some(s)) => !world
                    .names
                    .forename_str(f)
                    .eq_ignore_ascii_case(&world.names.surname_string(s)),
                _ => false,
            },
            Self::Hyphenated => p.surname.is_some_and(|s| s.second.is_none()),
            Self::TwinNoNhs => twin_of(chunks, g).is_some(),
            Self::NicknameNoNhs => p
                .forename
                .is_some_and(|f| !nicknames(world.names.forename_str(f)).is_empty()),
            Self::MarriedMovedNoNhs => p.surname.is_some() && year_of(p.dob) <= 2007,
            Self::SeveralErrors => p.surname.is_some(),
            _ => true,
        }
    }
}

/// Familiar forms of a forename (Bob for Robert), as people give them.
pub fn nicknames(forename: &str) -> &'static [&'static str] {
    match forename {
        "John" => &["Jack", "Johnny"],
        "David" => &["Dave", "Davy"],
        "Michael" => &["Mike", "Mick"],
        "Peter" => &["Pete"],
        "Robert" => &["Bob", "Rob", "Bobby"],
        "Anthony" => &["Tony"],
        "William" => &["Bill", "Will", "Billy"],
        "James" => &["Jim", "Jimmy"],
        "Kenneth" => &["Ken", "Kenny"],
        "Ronald" => &["Ron", "Ronnie"],
        "Raymond" => &["Ray"],
        "Thomas" => &["Tom", "Tommy"],
        "Richard" => &["Dick", "Rich"],
        "Christopher" => &["Chris"],
        "Stephen" | "Steven" => &["Steve"],
        "Terence" => &["Terry"],
        "Leonard" => &["Len"],
        "Gerald" => &["Gerry"],
        "Douglas" => &["Doug"],
        "Patrick" => &["Pat", "Paddy"],
        "Stanley" => &["Stan"],
        "Albert" => &["Bert", "Bertie"],
        "Bernard" => &["Bernie"],
        "Andrew" => &["Andy", "Drew"],
        "Matthew" => &["Matt"],
        "Daniel" => &["Dan", "Danny"],
        "Jonathan" => &["Jon", "Jonny"],
        "Nicholas" => &["Nick", "Nicky"],
        "Philip" => &["Phil"],
        "Samuel" => &["Sam", "Sammy"],
        "Benjamin" => &["Ben", "Benny"],
        "Joshua" => &["Josh"],
        "Frederick" => &["Fred", "Freddie"],
        "Margaret" => &["Maggie", "Peggy", "Meg"],
        "Patricia" => &["Pat", "Trish"],
        "Barbara" => &["Babs"],
        "Dorothy" => &["Dot", "Dolly"],
        "Elizabeth" => &["Liz", "Beth", "Betty"],
        "Susan" => &["Sue", "Susie"],
        "Christine" => &["Chris", "Chrissie"],
        "Valerie" => &["Val"],
        "Jennifer" => &["Jenny", "Jen"],
        "Kathleen" => &["Kath", "Kathy"],
        "Sandra" => &["Sandy"],
        "Gillian" => &["Gill", "Jill"],
        "Winifred" => &["Winnie"],
        "Deborah" => &["Debbie", "Deb"],
        "Rebecca" => &["Becky", "Becca"],
        "Victoria" => &["Vicky", "Tori"],
        "Catherine" => &["Cathy", "Kate"],
        "Samantha" => &["Sam", "Sammy"],
        "Jacqueline" => &["Jackie"],
        "Amanda" => &["Mandy"],
        "Nicola" => &["Nicky", "Nikki"],
        "Joanna" | "Joanne" => &["Jo"],
        "Jessica" => &["Jess"],
        "Isabella" => &["Bella", "Izzy"],
        "Charlotte" => &["Lottie"],
        "Florence" => &["Flo"],
        "Alison" => &["Ali"],
        "Natalie" => &["Nat"],
        _ => &[],
    }
}

/// The other twin of person `g`, if `g` is one of a pair.
fn twin_of(chunks: &[PeopleChunk], g: usize) -> Option<usize> {
    let chunk = &chunks[g / PEOPLE_CHUNK];
    let i = g % PEOPLE_CHUNK;
    if chunk.persons[i].twin_of_previous && i > 0 {
        return Some(g - 1);
    }
    chunk
        .persons
        .get(i + 1)
        .is_some_and(|next| next.twin_of_previous)
        .then_some(g + 1)
}

/// Someone who lives with person `g` (households are written together and
/// share a postcode), never `g`'s twin: with every other field right, a
/// twin's number gives a row identical to the twin's record but for the
/// forename, which belongs to the twin kind, not this one.
fn relative_of(chunks: &[PeopleChunk], g: usize) -> Option<usize> {
    let chunk = &chunks[g / PEOPLE_CHUNK];
    let i = g % PEOPLE_CHUNK;
    let home = chunk.persons[i].home.postcode;
    let twin = twin_of(chunks, g);
    let lo = i.saturating_sub(3);
    let hi = (i + 3).min(chunk.persons.len() - 1);
    (lo..=hi)
        .filter(|&j| j != i && chunk.persons[j].home.postcode == home)
        .map(|j| chunk.first + j)
        .find(|&h| Some(h) != twin)
}

/// The header applicants send (DESIGN matches it case-insensitively).
pub const HEADER: &str = "Study ID,NHS Number,Date of Birth,Gender,Postcode,Forename,Surname";

/// Rows of each kind for a cohort of `n`: the shares, rounded by largest
/// remainder so that the counts add up to `n` exactly.
pub fn kind_counts(n: usize) -> Vec<(Kind, usize)> {
    let mut counts: Vec<(Kind, usize, usize)> = SHARES
        .iter()
        .map(|&(k, per_mille)| {
            let exact = n * per_mille as usize;
            (k, exact / 1000, exact % 1000)
        })
        .collect();
    let allotted: usize = counts.iter().map(|c| c.1).sum();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    // Largest remainder first; ties by list order, so the result is stable.
    order.sort_by_key(|&i| (std::cmp::Reverse(counts[i].2), i));
    for &i in order.iter().take(n - allotted) {
        counts[i].1 += 1;
    }
    counts.into_iter().map(|(k, c, _)| (k, c)).collect()
}

/// One cohort row before it is written.
struct Row {
    kind: Kind,
    /// Global index of the person in demographics (`None`: not in index).
    person: Option<usize>,
}

/// The two files as bytes, and how many rows.
pub struct CohortFiles {
    pub cohort_csv: Vec<u8>,
    pub truth_csv: Vec<u8>,
    pub rows: usize,
}

fn person(chunks: &[PeopleChunk], i: usize) -> &Person {
    &chunks[i / PEOPLE_CHUNK].persons[i % PEOPLE_CHUNK]
}

/// Builds `cohort.csv` and `truth.csv` for a cohort of `n` rows drawn from
/// `people` people (`n <= people`, checked by the caller).
pub fn build(world: &World, chunks: &[PeopleChunk], people: usize, n: usize) -> CohortFiles {
    let mut rng = chunk_rng(world.seed, Stream::Cohort, 0);
    let counts = kind_counts(n);
    let mut kinds: Vec<Kind> = counts
        .iter()
        .flat_map(|&(k, c)| std::iter::repeat_n(k, c))
        .collect();
    kinds.shuffle(&mut rng);
    let outside = kinds.iter().filter(|k| k.is_absent()).count();
    let selected = select_people(&mut rng, chunks, people, n - outside);

    let mut next = selected.into_iter();
    let mut rows: Vec<Row> = kinds
        .into_iter()
        .map(|kind| Row {
            kind,
            person: if kind.is_absent() { None } else { next.next() },
        })
        .collect();
    fit_people_to_kinds(world, chunks, &mut rows);

    let mut cohort = String::with_capacity(n * 64 + 128);
    let mut truth = String::with_capacity(n * 32 + 32);
    cohort.push('\u{FEFF}');
    cohort.push_str(HEADER);
    cohort.push_str("\r\n");
    truth.push_str("study_id,person_id,kind\n");
    let mut outside_slot = people as u64;
    for (i, row) in rows.iter_mut().enumerate() {
        let study_id = format!("S{:07}", i + 1);
        let fields = match row.person {
            Some(g) => {
                let (fields, kind) = render_known(world, &mut rng, chunks, people, g, row.kind);
                row.kind = kind;
                fields
            }
            None if row.kind == Kind::AbsentLookalike && people > 0 => {
                // Someone with names and a recorded postcode to resemble,
                // where a few draws find one.
                let mut like = person(chunks, rng.gen_range(0..people));
                for _ in 0..20 {
                    if like.forename.is_some() && like.surname.is_some() && like.postcode_recorded {
                        break;
                    }
                    like = person(chunks, rng.gen_range(0..people));
                }
                let fields = render_lookalike(world, &mut rng, like, outside_slot);
                outside_slot += 1;
                fields
            }
            None => {
                let fields = render_outsider(world, &mut rng, outside_slot);
                outside_slot += 1;
                fields
            }
        };
        cohort.push_str(&study_id);
        for (f, value) in fields.iter().enumerate() {
            cohort.push(',');
            push_field(&mut cohort, value, f >= 4);
        }
        cohort.push_str("\r\n");
        let person_id = row.person.map(|g| (g + 1).to_string()).unwrap_or_default();
        // Writing to a String cannot fail.
        let _ = writeln!(truth, "{study_id},{person_id},{}", row.kind.as_str());
    }
    CohortFiles {
        cohort_csv: cohort.into_bytes(),
        truth_csv: truth.into_bytes(),
        rows: n,
    }
}

/// `count` distinct people, in random order: some twin pairs whole (about
/// one row in a hundred), the rest drawn uniformly.
fn select_people<R: Rng>(
    rng: &mut R,
    chunks: &[PeopleChunk],
    people: usize,
    count: usize,
) -> Vec<usize> {
    let second_twins: Vec<usize> = chunks
        .iter()
        .flat_map(|c| {
            c.persons
                .iter()
                .enumerate()
                .filter(|(_, p)| p.twin_of_previous)
                .map(move |(i, _)| c.first + i)
        })
        .collect();
    let pairs = second_twins.len().min(count / 100).min(count / 2);
    let mut taken = vec![false; people];
    let mut selected = Vec::with_capacity(count);
    for k in index::sample(rng, second_twins.len(), pairs) {
        let second = second_twins[k];
        for g in [second - 1, second] {
            taken[g] = true;
            selected.push(g);
        }
    }
    // `count` candidates of which at most `selected.len()` are taken, so the
    // loop always fills the cohort.
    for g in index::sample(rng, people, count.min(people)) {
        if selected.len() == count {
            break;
        }
        if !taken[g] {
            taken[g] = true;
            selected.push(g);
        }
    }
    selected.shuffle(rng);
    selected
}

/// Swaps people between rows so that every kind that needs something (a
/// date of birth with a day of 12 or less to swap, a name to misspell) gets
/// a person who has it; where no clean row has one, the row becomes a kind
/// that fits.
fn fit_people_to_kinds(world: &World, chunks: &[PeopleChunk], rows: &mut [Row]) {
    for i in 0..rows.len() {
        let Some(g) = rows[i].person else { continue };
        let kind = rows[i].kind;
        if kind.fits(world, chunks, g) {
            continue;
        }
        let swap_with = (i + 1..rows.len()).chain(0..i).find(|&j| {
            rows[j].kind == Kind::Clean
                && rows[j].person.is_some_and(|h| kind.fits(world, chunks, h))
        });
        match swap_with {
            Some(j) => {
                let (a, b) = (rows[i].person, rows[j].person);
                rows[i].person = b;
                rows[j].person = a;
            }
            None => {
                rows[i].kind = match kind {
                    Kind::DobSwap => Kind::DobOffByOne,
                    _ => Kind::Moved,
                }
            }
        }
    }
}

/// Writes a CSV field, quoting where CSV needs it, and names with spaces.
fn push_field(out: &mut String, value: &str, is_name: bool) {
    let needs = value.contains([',', '"', '\r', '\n']) || (is_name && value.contains(' '));
    if needs {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// NHS number digits in one of the layouts applicants use.
fn nhs_layout<R: Rng>(rng: &mut R, digits: &[u8]) -> String {
    let s = ascii(digits);
    if digits.len() != 10 {
        return s.to_string();
    }
    match rng.gen_range(0..20) {
        0..=11 => s.to_string(),
        12..=16 => format!("{} {} {}", &s[..3], &s[3..6], &s[6..]),
        _ => format!("{}-{}-{}", &s[..3], &s[3..6], &s[6..]),
    }
}

/// A date in one of the three formats applicants use.
fn date_layout<R: Rng>(rng: &mut R, y: i32, m: u32, d: u32) -> String {
    match rng.gen_range(0..20) {
        0..=9 => format!("{d:02}/{m:02}/{y:04}"),
        10..=16 => format!("{y:04}-{m:02}-{d:02}"),
        _ => format!("{y:04}{m:02}{d:02}"),
    }
}

fn day_layout<R: Rng>(rng: &mut R, day: i32) -> String {
    match from_epoch_days(day) {
        Some(d) => date_layout(rng, d.year(), d.month(), d.day()),
        None => String::new(),
    }
}

/// A recorded gender as a code or a word.
fn gender_text<R: Rng>(rng: &mut R, gender: u8) -> String {
    let options: &[&str] = match gender {
        MALE => &["1", "1", "1", "M", "M", "Male", "male", "MALE"],
        FEMALE => &["2", "2", "2", "F", "F", "Female", "female", "FEMALE"],
        _ => &[GENDER_CODES[usize::from(gender)]],
    };
    options[rng.gen_range(0..options.len())].to_string()
}

/// A normalised postcode, sometimes without the space or in lower case.
fn postcode_layout<R: Rng>(rng: &mut R, normalised: String) -> String {
    match rng.gen_range(0..100) {
        0..=84 => normalised,
        85..=92 => normalised.replace(' ', ""),
        _ => normalised.to_ascii_lowercase(),
    }
}

/// The six value fields of a row: NHS number, date of birth, gender,
/// postcode, forename, surname.
type Fields = [String; 6];

/// A clean rendering of a person (layouts vary, values do not).
fn render_clean<R: Rng>(world: &World, rng: &mut R, p: &Person) -> Fields {
    let forename = p
        .forename
        .map(|f| world.names.forename_str(f).to_string())
        .unwrap_or_default();
    let mut surname = p
        .surname
        .map(|s| world.names.surname_string(s))
        .unwrap_or_default();
    if rng.gen_bool(0.05) {
        surname = surname.to_uppercase();
    }
    let postcode = if p.postcode_recorded {
        postcode_layout(rng, world.places.postcode_string(p.home.postcode))
    } else {
        String::new()
    };
    [
        nhs_layout(rng, &nhs_digits(&p.nhs)),
        day_layout(rng, p.dob),
        gender_text(rng, p.gender),
        postcode,
        forename,
        surname,
    ]
}

/// One substituted digit: always fails modulus 11 (every weight is
/// non-zero mod 11), checked anyway.
fn nhs_typo<R: Rng>(rng: &mut R, n: &NhsNumber) -> [u8; 10] {
    loop {
        let mut d = n.digits();
        let i = rng.gen_range(0..10);
        d[i] = (d[i] + rng.gen_range(1..10)) % 10;
        if NhsNumber::from_digits(d).is_err() {
            return d.map(|x| b'0' + x);
        }
    }
}

/// Two adjacent, different digits swapped so that the check fails, or
/// `None` if no such pair exists.
fn nhs_transposition<R: Rng>(rng: &mut R, n: &NhsNumber) -> Option<[u8; 10]> {
    let start = rng.gen_range(0..9);
    (0..9).map(|k| (start + k) % 9).find_map(|i| {
        let mut d = n.digits();
        if d[i] == d[i + 1] {
            return None;
        }
        d.swap(i, i + 1);
        NhsNumber::from_digits(d)
            .is_err()
            .then(|| d.map(|x| b'0' + x))
    })
}

/// A date one day, one month or one year away that is still a real date.
fn off_by_one<R: Rng>(rng: &mut R, dob: i32) -> i32 {
    let step: i32 = if rng.gen_bool(0.5) { 1 } else { -1 };
    let Some(d) = from_epoch_days(dob) else {
        return dob + step;
    };
    let moved = match rng.gen_range(0..3) {
        0 => None,
        1 => {
            let m = d.month() as i32 + step;
            if (1..=12).contains(&m) {
                NaiveDate::from_ymd_opt(d.year(), m as u32, d.day())
            } else {
                None
            }
        }
        _ => NaiveDate::from_ymd_opt(d.year() + step, d.month(), d.day()),
    };
    moved.map_or(dob + step, to_epoch_days)
}

/// One character substituted or dropped in a name.
fn misspell<R: Rng>(rng: &mut R, name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let letters: Vec<usize> = (0..chars.len())
        .filter(|&i| chars[i].is_ascii_alphabetic())
        .collect();
    if letters.is_empty() {
        return format!("{name}e");
    }
    // Typists rarely get the first letter wrong.
    let later: Vec<usize> = letters.iter().copied().filter(|&i| i > 0).collect();
    let pool = if !later.is_empty() && rng.gen_bool(0.85) {
        &later
    } else {
        &letters
    };
    let at = pool[rng.gen_range(0..pool.len())];
    let mut out = chars.clone();
    if chars.len() >= 4 && rng.gen_bool(0.3) {
        out.remove(at);
    } else {
        let old = chars[at].to_ascii_lowercase();
        let mut new = old;
        while new == old {
            new = char::from(b'a' + rng.gen_range(0..26u8));
        }
        out[at] = if chars[at].is_ascii_uppercase() {
            new.to_ascii_uppercase()
        } else {
            new
        };
    }
    out.into_iter().collect()
}

/// A person from demographics, with the row's error applied. Returns the
/// kind actually applied (a transposition that cannot fail the check
/// becomes a typo).
fn render_known<R: Rng>(
    world: &World,
    rng: &mut R,
    chunks: &[PeopleChunk],
    people: usize,
    g: usize,
    kind: Kind,
) -> (Fields, Kind) {
    let p = person(chunks, g);
    let mut f = render_clean(world, rng, p);
    let mut kind = kind;
    match kind {
        Kind::Clean => {}
        Kind::Moved => {
            let to = world.places.moved(rng, p.home.postcode);
            f[3] = postcode_layout(rng, world.places.postcode_string(to));
        }
        Kind::NhsTypo => {
            let typo = nhs_typo(rng, &p.nhs);
            f[0] = nhs_layout(rng, &typo);
        }
        Kind::NhsTransposition => match nhs_transposition(rng, &p.nhs) {
            Some(d) => f[0] = nhs_layout(rng, &d),
            None => {
                kind = Kind::NhsTypo;
                let typo = nhs_typo(rng, &p.nhs);
                f[0] = nhs_layout(rng, &typo);
            }
        },
        Kind::NhsMissing => f[0].clear(),
        Kind::DobSwap => {
            // `Kind::fits` guarantees a day of 12 or less that differs from
            // the month, so the swapped date exists and is different.
            if let Some(d) = from_epoch_days(p.dob) {
                f[1] = date_layout(rng, d.year(), d.day(), d.month());
            }
        }
        Kind::DobOffByOne => {
            let day = off_by_one(rng, p.dob);
            f[1] = day_layout(rng, day);
        }
        Kind::NameTypo => {
            let forename = !f[4].is_empty() && (f[5].is_empty() || rng.gen_bool(0.5));
            let slot = if forename { 4 } else { 5 };
            f[slot] = misspell(rng, &f[slot]);
        }
        Kind::GenderUnknown => {
            f[2] = ["9", "X", ""][rng.gen_range(0..3)].to_string();
        }
        Kind::Unreadable => match rng.gen_range(0..4) {
            0 => {
                let digits = nhs_digits(&p.nhs);
                f[0] = match rng.gen_range(0..3) {
                    0 => "12345".to_string(),
                    1 => ascii(&digits[..9]).to_string(),
                    _ => "N/A".to_string(),
                };
            }
            1 => {
                let y = year_of(p.dob);
                f[1] = match rng.gen_range(0..4) {
                    0 => format!("31/02/{y:04}"),
                    1 => format!("30/02/{y:04}"),
                    2 => format!("31/04/{y:04}"),
                    _ => format!("{y:04}-13-01"),
                };
            }
            2 => f[2] = ["7", "3"][rng.gen_range(0..2)].to_string(),
            _ => f[3] = ["N/A", "NFA", "UNKNOWN"][rng.gen_range(0..3)].to_string(),
        },
        Kind::NamesSwapped => f.swap(4, 5),
        Kind::Hyphenated => {
            if let Some(own) = p.surname {
                let mut other = world.names.surname(rng);
                while other.first == own.first {
                    other = world.names.surname(rng);
                }
                let joined = if rng.gen_bool(0.5) {
                    Surname {
                        first: own.first,
                        second: Some(other.first),
                    }
                } else {
                    Surname {
                        first: other.first,
                        second: Some(own.first),
                    }
                };
                f[5] = world.names.surname_string(joined);
            }
        }
        Kind::TwinNoNhs => f[0].clear(),
        Kind::NicknameNoNhs => {
            let forms = p
                .forename
                .map_or(&[][..], |n| nicknames(world.names.forename_str(n)));
            if !forms.is_empty() {
                f[4] = forms[rng.gen_range(0..forms.len())].to_string();
            }
            f[0].clear();
        }
        Kind::MarriedMovedNoNhs => {
            let mut new = world.names.surname(rng);
            while Some(new) == p.surname {
                new = world.names.surname(rng);
            }
            f[5] = world.names.surname_string(new);
            let to = world.places.moved(rng, p.home.postcode);
            f[3] = postcode_layout(rng, world.places.postcode_string(to));
            f[0].clear();
        }
        Kind::OtherPersonsNhs => {
            // A relative's number where someone lives with them, else one
            // copied from a random record.
            let other = relative_of(chunks, g).or_else(|| {
                (people > 1).then(|| loop {
                    let h = rng.gen_range(0..people);
                    if h != g {
                        break h;
                    }
                })
            });
            match other {
                Some(h) => f[0] = nhs_layout(rng, &nhs_digits(&person(chunks, h).nhs)),
                None => {
                    kind = Kind::NhsMissing;
                    f[0].clear();
                }
            }
        }
        Kind::SeveralErrors => {
            let typo = nhs_typo(rng, &p.nhs);
            f[0] = nhs_layout(rng, &typo);
            f[5] = misspell(rng, &f[5]);
            let to = world.places.moved(rng, p.home.postcode);
            f[3] = postcode_layout(rng, world.places.postcode_string(to));
        }
        Kind::NotInIndex | Kind::AbsentLookalike => {}
    }
    (f, kind)
}

/// Someone not in demographics who resembles `like`, a person who is: an
/// unregistered relative at the same address (same surname, another
/// forename and date of birth), a namesake elsewhere (same forename and
/// surname, another date of birth and postcode), or someone with the same
/// surname and date of birth elsewhere. Half carry a valid NHS number from
/// a slot beyond the last person, half none.
fn render_lookalike<R: Rng>(world: &World, rng: &mut R, like: &Person, slot: u64) -> Fields {
    let male = match like.gender {
        MALE => true,
        FEMALE => false,
        _ => rng.gen_bool(0.5),
    };
    let mut p = Person {
        nhs: world.nhs.number(slot),
        dod: None,
        postcode_recorded: true,
        ethnicity: like.ethnicity,
        activity: 0.0,
        twin_of_previous: false,
        ..like.clone()
    };
    let era = Era::of_birth_year(year_of(like.dob));
    let other_forename = |rng: &mut R| loop {
        let f = world.names.forename(rng, male, era);
        if Some(f) != like.forename {
            break Some(f);
        }
    };
    let other_dob = |rng: &mut R| loop {
        let year = 2025 - any_age(rng);
        let d = birthday_in(rng, year);
        if d != like.dob {
            break d;
        }
    };
    match rng.gen_range(0..10) {
        0..=3 => {
            p.forename = other_forename(rng);
            p.dob = other_dob(rng);
        }
        4..=6 => {
            p.dob = other_dob(rng);
            p.home.postcode = world.places.moved(rng, like.home.postcode);
        }
        _ => {
            p.forename = other_forename(rng);
            p.home.postcode = world.places.moved(rng, like.home.postcode);
        }
    }
    if p.surname.is_none() {
        p.surname = Some(world.names.surname(rng));
    }
    let mut f = render_clean(world, rng, &p);
    if rng.gen_bool(0.5) {
        f[0].clear();
    }
    f
}

/// A person who is not in demographics: invented afresh, with a valid NHS
/// number from a slot beyond the last person.
fn render_outsider<R: Rng>(world: &World, rng: &mut R, slot: u64) -> Fields {
    let male = rng.gen_bool(0.5);
    let year = 2025 - any_age(rng);
    let home = world.places.home(rng);
    let p = Person {
        nhs: world.nhs.number(slot),
        dob: birthday_in(rng, year),
        dod: None,
        gender: if male { MALE } else { FEMALE },
        forename: Some(world.names.forename(rng, male, Era::of_birth_year(year))),
        surname: Some(world.names.surname(rng)),
        home,
        postcode_recorded: true,
        ethnicity: 0,
        activity: 0.0,
        twin_of_previous: false,
    };
    render_clean(world, rng, &p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn counts_add_up_and_follow_the_shares() {
        for n in [0, 1, 7, 99, 2000, 200_001] {
            let counts = kind_counts(n);
            assert_eq!(counts.iter().map(|c| c.1).sum::<usize>(), n);
        }
        let counts = kind_counts(2000);
        assert!(counts.contains(&(Kind::Clean, 1500)));
        assert!(counts.contains(&(Kind::NotInIndex, 60)));
        assert_eq!(SHARES.iter().map(|s| s.1).sum::<u32>(), 1000);
    }

    #[test]
    fn typos_and_transpositions_fail_the_check() {
        let n = NhsNumber::parse("9434765919").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..500 {
            let t = nhs_typo(&mut rng, &n);
            assert!(NhsNumber::parse(ascii(&t)).is_err());
            let d = nhs_transposition(&mut rng, &n).unwrap();
            assert!(NhsNumber::parse(ascii(&d)).is_err());
        }
    }

    #[test]
    fn off_by_one_is_a_different_real_date() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let leap = to_epoch_days(NaiveDate::from_ymd_opt(1980, 2, 29).unwrap());
        let jan31 = to_epoch_days(NaiveDate::from_ymd_opt(1990, 1, 31).unwrap());
        for _ in 0..200 {
            for dob in [leap, jan31] {
                let d = off_by_one(&mut rng, dob);
                assert_ne!(d, dob);
                assert!(from_epoch_days(d).is_some());
            }
        }
    }

    #[test]
    fn misspellings_differ_by_one_character() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for name in ["Smith", "O'Brien", "Van der Berg", "Al", "Smith-Jones"] {
            for _ in 0..100 {
                let m = misspell(&mut rng, name);
                assert_ne!(m, name);
                let (a, b) = (name.chars().count(), m.chars().count());
                assert!(a == b || a == b + 1, "{name} -> {m}");
            }
        }
    }

    #[test]
    fn quoting() {
        let mut s = String::new();
        push_field(&mut s, "Van der Berg", true);
        push_field(&mut s, "LS1 4AP", false);
        push_field(&mut s, "a,\"b\"", false);
        assert_eq!(s, "\"Van der Berg\"LS1 4AP\"a,\"\"b\"\"\"");
    }
}
