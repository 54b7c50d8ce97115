//! Issue #10: linkage on data this project's generator never made.
//!
//! A small generator written here, independent of `dars synth` and of the
//! linker: households (a surname and a postcode shared, parents and
//! children, a few twins), names drawn from skewed lists, valid NHS numbers
//! by their own modulus 11. The cohort draws people from the index and
//! gives each row one kind of error, plus people absent from the index: an
//! unregistered member of a household, namesakes of people in it, and
//! people sharing a surname and a date of birth with someone in it. The linker runs through its library entry
//! point on a cohort CSV read by the real ingest.
//!
//! Asserted: no wrong automatic validation; at least 99.9% of clean rows
//! validated; the true person ranked first for at least 97% of rows with
//! errors (the estimated model reaches 99.5% here; the code before issue
//! #10 reached 81%, with 47 twins validated to the wrong twin); at most
//! 10% of absent people queued; a relative's NHS number never ranked above
//! the true person; a twin's never validated, the true twin queued; the
//! married who moved (new surname and postcode, no NHS
//! number) found and ranked first. Counts are printed per kind; no value.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{Datelike, Duration, NaiveDate};
use polars::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use dars::ingest::{read_cohort, IngestConfig};
use dars::link::{self, LinkConfig, Linkage, Outcome};

const FEMALE: [&str; 40] = [
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Isabella",
    "Rosie",
    "Sophia",
    "Grace",
    "Willow",
    "Freya",
    "Florence",
    "Emily",
    "Ella",
    "Poppy",
    "Evie",
    "Elsie",
    "Charlotte",
    "Margaret",
    "Susan",
    "Patricia",
    "Linda",
    "Barbara",
    "Elizabeth",
    "Jennifer",
    "Maria",
    "Sarah",
    "Karen",
    "Nancy",
    "Helen",
    "Sandra",
    "Donna",
    "Carol",
    "Ruth",
    "Sharon",
    "Michelle",
    "Laura",
    "Kimberly",
];
const MALE: [&str; 40] = [
    "Noah",
    "Oliver",
    "George",
    "Arthur",
    "Muhammad",
    "Leo",
    "Harry",
    "Oscar",
    "Archie",
    "Henry",
    "Theodore",
    "Freddie",
    "Jack",
    "Charlie",
    "Theo",
    "Alfie",
    "Jacob",
    "Thomas",
    "Finley",
    "Arlo",
    "James",
    "John",
    "Robert",
    "Michael",
    "William",
    "David",
    "Richard",
    "Joseph",
    "Charles",
    "Christopher",
    "Daniel",
    "Matthew",
    "Anthony",
    "Mark",
    "Donald",
    "Steven",
    "Paul",
    "Andrew",
    "Joshua",
    "Kenneth",
];
const SURNAMES: [&str; 100] = [
    "Smith",
    "Jones",
    "Williams",
    "Taylor",
    "Brown",
    "Davies",
    "Evans",
    "Wilson",
    "Thomas",
    "Johnson",
    "Roberts",
    "Robinson",
    "Thompson",
    "Wright",
    "Walker",
    "White",
    "Edwards",
    "Hughes",
    "Green",
    "Hall",
    "Lewis",
    "Harris",
    "Clarke",
    "Patel",
    "Jackson",
    "Wood",
    "Turner",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Morris",
    "Moore",
    "Clark",
    "Lee",
    "King",
    "Baker",
    "Harrison",
    "Morgan",
    "Allen",
    "James",
    "Scott",
    "Phillips",
    "Watson",
    "Davis",
    "Parker",
    "Price",
    "Bennett",
    "Young",
    "Griffiths",
    "Mitchell",
    "Kelly",
    "Cook",
    "Carter",
    "Richardson",
    "Bailey",
    "Collins",
    "Bell",
    "Shaw",
    "Murphy",
    "Miller",
    "Cox",
    "Richards",
    "Khan",
    "Marshall",
    "Anderson",
    "Simpson",
    "Ellis",
    "Adams",
    "Singh",
    "Begum",
    "Wilkinson",
    "Foster",
    "Chapman",
    "Powell",
    "Webb",
    "Rogers",
    "Gray",
    "Mason",
    "Ali",
    "Hunt",
    "Hussain",
    "Campbell",
    "Matthews",
    "Owen",
    "Palmer",
    "Holmes",
    "Mills",
    "Barnes",
    "Knight",
    "Lloyd",
    "Butler",
    "Russell",
    "Barker",
    "Fisher",
    "Stevens",
    "Jenkins",
    "Murray",
    "Dixon",
    "Harvey",
];
const AREAS: [&str; 12] = [
    "LS", "M", "B", "EC", "SW", "NE", "CF", "G", "EH", "BS", "L", "S",
];
const UNIT: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

/// A name drawn with weight 1/(rank + 1): a few common, many rare.
fn zipf<'a>(rng: &mut ChaCha8Rng, names: &[&'a str]) -> &'a str {
    let total: f64 = (0..names.len()).map(|r| 1.0 / (r as f64 + 1.0)).sum();
    let mut x = rng.gen::<f64>() * total;
    for (r, n) in names.iter().enumerate() {
        x -= 1.0 / (r as f64 + 1.0);
        if x <= 0.0 {
            return n;
        }
    }
    names[names.len() - 1]
}

fn postcode(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}{} {}{}{}",
        AREAS[rng.gen_range(0..AREAS.len())],
        rng.gen_range(1..30),
        rng.gen_range(0..10),
        char::from(UNIT[rng.gen_range(0..UNIT.len())]),
        char::from(UNIT[rng.gen_range(0..UNIT.len())])
    )
}

/// Modulus 11 check digit of nine digits (None when it would be 10).
fn check_digit(d: &[u8]) -> Option<u8> {
    let sum: u32 = d
        .iter()
        .enumerate()
        .map(|(i, &x)| u32::from(x) * (10 - i as u32))
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

/// NHS numbers: valid, distinct, in the 6xx range.
struct NhsNumbers(u64);

impl NhsNumbers {
    fn next(&mut self) -> String {
        loop {
            self.0 += 1;
            let s = format!("6{:08}", self.0 * 37 % 100_000_000);
            let d: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
            if let Some(c) = check_digit(&d) {
                return format!("{s}{c}");
            }
        }
    }
}

#[derive(Clone)]
struct Person {
    id: i64,
    nhs: String,
    dob: NaiveDate,
    gender: u8,
    postcode: String,
    forename: String,
    surname: String,
    household: usize,
    twin_of: Option<usize>,
}

fn date_between(rng: &mut ChaCha8Rng, from: i32, to: i32) -> NaiveDate {
    let start = NaiveDate::from_ymd_opt(from, 1, 1).unwrap();
    let days = (NaiveDate::from_ymd_opt(to, 12, 31).unwrap() - start).num_days();
    start + Duration::days(rng.gen_range(0..=days))
}

fn forename(rng: &mut ChaCha8Rng, gender: u8, not: &[&str]) -> String {
    loop {
        let n = if gender == 2 {
            zipf(rng, &FEMALE)
        } else {
            zipf(rng, &MALE)
        };
        if !not.contains(&n) {
            return n.to_string();
        }
    }
}

/// Households until `n` people: two adults (or one), up to three children,
/// now and then twins. Also returns, per household, one extra member who
/// is not in the index (for the absent rows).
fn population(rng: &mut ChaCha8Rng, n: usize) -> (Vec<Person>, Vec<Person>) {
    let mut nhs = NhsNumbers(rng.gen_range(0..1_000_000));
    let mut people: Vec<Person> = Vec::new();
    let mut absent = Vec::new();
    let mut household = 0;
    while people.len() < n {
        let surname = zipf(rng, &SURNAMES).to_string();
        let pc = postcode(rng);
        let mut members: Vec<Person> = Vec::new();
        let adults = if rng.gen_bool(0.7) { 2 } else { 1 };
        let first_gender = rng.gen_range(1..=2u8);
        for a in 0..adults {
            let gender = if a == 0 {
                first_gender
            } else {
                3 - first_gender
            };
            let taken: Vec<&str> = members.iter().map(|m| m.forename.as_str()).collect();
            members.push(Person {
                id: 0,
                nhs: nhs.next(),
                dob: date_between(rng, 1935, 1980),
                gender,
                postcode: pc.clone(),
                forename: forename(rng, gender, &taken),
                surname: surname.clone(),
                household,
                twin_of: None,
            });
        }
        let children = rng.gen_range(0..=3);
        let eldest = members.iter().map(|m| m.dob).max().unwrap();
        for c in 0..children + 1 {
            let gender = rng.gen_range(1..=2u8);
            let taken: Vec<&str> = members.iter().map(|m| m.forename.as_str()).collect();
            let dob = eldest + Duration::days(rng.gen_range(6500..13000));
            let child = Person {
                id: 0,
                nhs: nhs.next(),
                dob,
                gender,
                postcode: pc.clone(),
                forename: forename(rng, gender, &taken),
                surname: surname.clone(),
                household,
                twin_of: None,
            };
            if c == children {
                // The one the index never recorded.
                absent.push(child);
                continue;
            }
            members.push(child.clone());
            if rng.gen_bool(0.04) {
                // A twin: same date of birth, postcode and surname.
                let gender = rng.gen_range(1..=2u8);
                let taken: Vec<&str> = members.iter().map(|m| m.forename.as_str()).collect();
                let twin = Person {
                    nhs: nhs.next(),
                    gender,
                    forename: forename(rng, gender, &taken),
                    ..child
                };
                members.push(twin);
            }
        }
        for m in members {
            people.push(m);
        }
        household += 1;
    }
    for (i, p) in people.iter_mut().enumerate() {
        p.id = 1_000 + i as i64 * 3;
    }
    // Twins know each other.
    let mut by_key: HashMap<(usize, NaiveDate), Vec<usize>> = HashMap::new();
    for (i, p) in people.iter().enumerate() {
        by_key.entry((p.household, p.dob)).or_default().push(i);
    }
    for group in by_key.values().filter(|g| g.len() == 2) {
        people[group[0]].twin_of = Some(group[1]);
        people[group[1]].twin_of = Some(group[0]);
    }
    (people, absent)
}

fn demographics(people: &[Person]) -> LazyFrame {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    DataFrame::new_infer_height(vec![
        Column::new(
            "person_id".into(),
            people.iter().map(|p| p.id).collect::<Vec<_>>(),
        ),
        Column::new(
            "nhs_number".into(),
            people.iter().map(|p| p.nhs.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "date_of_birth".into(),
            people
                .iter()
                .map(|p| (p.dob - epoch).num_days() as i32)
                .collect::<Vec<_>>(),
        )
        .cast(&DataType::Date)
        .unwrap(),
        Column::new(
            "gender".into(),
            people
                .iter()
                .map(|p| p.gender.to_string())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "postcode".into(),
            people
                .iter()
                .map(|p| p.postcode.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "forename".into(),
            people
                .iter()
                .map(|p| p.forename.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "surname".into(),
            people.iter().map(|p| p.surname.clone()).collect::<Vec<_>>(),
        ),
    ])
    .unwrap()
    .lazy()
}

/// One letter of `s` (not the first) replaced by another.
fn typo(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    let i = rng.gen_range(1..c.len());
    let old = c[i].to_ascii_lowercase();
    loop {
        let n = char::from(b'a' + rng.gen_range(0..26u8));
        if n != old {
            c[i] = n;
            return c.into_iter().collect();
        }
    }
}

/// One digit of an NHS number changed: it then fails modulus 11.
fn nhs_typo(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut d: Vec<u8> = s.bytes().collect();
    let i = rng.gen_range(0..9);
    d[i] = b'0' + (d[i] - b'0' + rng.gen_range(1..10)) % 10;
    String::from_utf8(d).unwrap()
}

/// A cohort row: the values sent and, for the tally, its kind, the true
/// person (None when absent) and the holder of a borrowed NHS number.
struct Row {
    kind: &'static str,
    truth: Option<i64>,
    holder: Option<i64>,
    nhs: String,
    dob: NaiveDate,
    gender: u8,
    postcode: String,
    forename: String,
    surname: String,
}

impl Row {
    fn of(kind: &'static str, p: &Person) -> Self {
        Self {
            kind,
            truth: Some(p.id),
            holder: None,
            nhs: p.nhs.clone(),
            dob: p.dob,
            gender: p.gender,
            postcode: p.postcode.clone(),
            forename: p.forename.clone(),
            surname: p.surname.clone(),
        }
    }
}

const ERROR_KINDS: [&str; 11] = [
    "surname_typo",
    "forename_typo",
    "moved",
    "nhs_missing",
    "nhs_typo",
    "dob_swapped",
    "relative_nhs",
    "twin_nhs",
    "married_moved",
    "several",
    "hyphenated",
];

fn cohort(rng: &mut ChaCha8Rng, people: &[Person], absent: &[Person], n: usize) -> Vec<Row> {
    let mut by_household: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, p) in people.iter().enumerate() {
        by_household.entry(p.household).or_default().push(i);
    }
    let twins: Vec<usize> = (0..people.len())
        .filter(|&i| people[i].twin_of.is_some())
        .collect();
    let wives: Vec<usize> = (0..people.len())
        .filter(|&i| people[i].gender == 2 && people[i].dob.year() < 1990)
        .collect();
    let mut order: Vec<usize> = (0..people.len()).collect();
    order.shuffle(rng);
    let mut used = std::collections::HashSet::new();
    let mut take = |rng: &mut ChaCha8Rng, pool: &[usize]| -> usize {
        loop {
            let i = pool[rng.gen_range(0..pool.len())];
            if used.insert(i) {
                return i;
            }
        }
    };
    let mut rows = Vec::new();
    let everyone: Vec<usize> = order.clone();
    for k in 0..n {
        // 60% clean, 5% absent, the rest spread over the error kinds.
        let roll = k % 100;
        let row = if roll < 60 {
            Row::of("clean", &people[take(rng, &everyone)])
        } else if roll < 65 {
            // Absent people: an unregistered child of a household, a
            // namesake of someone in the index (another date of birth),
            // or someone sharing a surname and a date of birth with
            // someone in the index (another forename); the look-alikes
            // live in the same postcode district or anywhere, and half
            // carry a valid number nobody in the index holds.
            let a = &absent[k % absent.len()];
            let mut r = Row {
                truth: None,
                ..Row::of("absent", a)
            };
            let base = &people[rng.gen_range(0..people.len())];
            let nearby = |rng: &mut ChaCha8Rng, pc: &str| {
                let district = pc.split(' ').next().unwrap_or_default();
                let unit = postcode(rng);
                format!("{district} {}", unit.split(' ').nth(1).unwrap_or_default())
            };
            match (k / 100) % 3 {
                0 => {}
                look_alike => {
                    r.kind = if look_alike == 1 {
                        "absent_namesake"
                    } else {
                        "absent_surname_dob"
                    };
                    r.surname = base.surname.clone();
                    if look_alike == 1 {
                        r.forename = base.forename.clone();
                        r.gender = base.gender;
                        r.dob = date_between(rng, 1935, 2010);
                    } else {
                        r.gender = rng.gen_range(1..=2u8);
                        r.forename = forename(rng, r.gender, &[base.forename.as_str()]);
                        r.dob = base.dob;
                    }
                    r.postcode = if rng.gen_bool(0.5) {
                        nearby(rng, &base.postcode)
                    } else {
                        postcode(rng)
                    };
                    if rng.gen_bool(0.5) {
                        r.nhs.clear();
                    }
                }
            }
            r
        } else {
            let kind = ERROR_KINDS[(k / 100 + roll) % ERROR_KINDS.len()];
            let i = match kind {
                "twin_nhs" => take(rng, &twins),
                "married_moved" => take(rng, &wives),
                _ => take(rng, &everyone),
            };
            let p = &people[i];
            let mut r = Row::of(kind, p);
            match kind {
                "surname_typo" => r.surname = typo(rng, &p.surname),
                "forename_typo" => r.forename = typo(rng, &p.forename),
                "moved" => r.postcode = postcode(rng),
                "nhs_missing" => r.nhs.clear(),
                "nhs_typo" => r.nhs = nhs_typo(rng, &p.nhs),
                "dob_swapped" => {
                    let swapped = NaiveDate::from_ymd_opt(p.dob.year(), p.dob.day(), p.dob.month());
                    r.dob = match swapped {
                        Some(s) if s != p.dob => s,
                        // Not swappable: a day out instead.
                        _ => p.dob + Duration::days(1),
                    };
                }
                "relative_nhs" => {
                    let others: Vec<usize> = by_household[&p.household]
                        .iter()
                        .copied()
                        .filter(|&j| j != i)
                        .collect();
                    match others.first() {
                        Some(&j) => {
                            r.nhs = people[j].nhs.clone();
                            r.holder = Some(people[j].id);
                        }
                        None => r.nhs.clear(),
                    }
                }
                "twin_nhs" => {
                    let t = &people[p.twin_of.unwrap()];
                    r.nhs = t.nhs.clone();
                    r.holder = Some(t.id);
                }
                "married_moved" => {
                    r.nhs.clear();
                    r.postcode = postcode(rng);
                    loop {
                        let s = zipf(rng, &SURNAMES);
                        if s != p.surname {
                            r.surname = s.to_string();
                            break;
                        }
                    }
                }
                "several" => {
                    r.nhs = nhs_typo(rng, &p.nhs);
                    r.surname = typo(rng, &p.surname);
                    r.postcode = postcode(rng);
                }
                "hyphenated" => {
                    r.surname = format!("{}-{}", p.surname, zipf(rng, &SURNAMES));
                }
                _ => unreachable!(),
            }
            r
        };
        rows.push(row);
    }
    rows
}

fn cohort_csv(rows: &[Row]) -> String {
    let mut s =
        String::from("Study ID,NHS Number,Date of Birth,Gender,Postcode,Forename,Surname\r\n");
    for (i, r) in rows.iter().enumerate() {
        // Dates and NHS numbers written the ways applicants write them.
        let dob = if i % 3 == 0 {
            r.dob.format("%d/%m/%Y").to_string()
        } else {
            r.dob.format("%Y-%m-%d").to_string()
        };
        let nhs = if i % 4 == 0 && r.nhs.len() == 10 {
            format!("{} {} {}", &r.nhs[..3], &r.nhs[3..6], &r.nhs[6..])
        } else {
            r.nhs.clone()
        };
        let postcode = if i % 5 == 0 {
            r.postcode.replace(' ', "").to_lowercase()
        } else {
            r.postcode.clone()
        };
        let gender = if r.gender == 1 { "M" } else { "F" };
        writeln!(
            s,
            "S{i:06},{nhs},{dob},{gender},{postcode},{},{}\r",
            r.forename, r.surname
        )
        .unwrap();
    }
    s
}

/// Per kind: rows, validated right, validated wrong, true person first in
/// the queue, lower, not queued; holders ranked above the true person;
/// absent rows queued.
#[derive(Default, Debug)]
struct Tally {
    rows: usize,
    validated: usize,
    wrong: usize,
    first: usize,
    lower: usize,
    missed: usize,
    holder_above: usize,
    queued: usize,
}

fn tally(rows: &[Row], linkage: &Linkage) -> Vec<(&'static str, Tally)> {
    let queue: HashMap<&str, Vec<i64>> = linkage
        .queue
        .iter()
        .map(|e| {
            (
                e.study_id.as_str(),
                e.candidates.iter().map(|c| c.person_id).collect(),
            )
        })
        .collect();
    let mut by_kind: HashMap<&'static str, Tally> = HashMap::new();
    for (r, out) in rows.iter().zip(&linkage.rows) {
        let t = by_kind.entry(r.kind).or_default();
        t.rows += 1;
        let ranks = queue.get(out.study_id.as_str());
        if ranks.is_some() {
            t.queued += 1;
        }
        match out.outcome {
            Outcome::Validated | Outcome::Reviewed => {
                if out.person_id == r.truth && r.truth.is_some() {
                    t.validated += 1;
                } else {
                    t.wrong += 1;
                }
            }
            _ => {
                let rank = |id: Option<i64>| {
                    id.and_then(|id| ranks.and_then(|v| v.iter().position(|p| *p == id)))
                };
                match rank(r.truth) {
                    Some(0) => t.first += 1,
                    Some(_) => t.lower += 1,
                    None => t.missed += 1,
                }
                if let Some(h) = rank(r.holder) {
                    if rank(r.truth).is_none_or(|t| h < t) {
                        t.holder_above += 1;
                    }
                }
            }
        }
    }
    let mut v: Vec<_> = by_kind.into_iter().collect();
    v.sort_by_key(|(k, _)| *k);
    v
}

fn run(seed: u64, people: usize, rows: usize) -> (Vec<(&'static str, Tally)>, Linkage) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (index, absent) = population(&mut rng, people);
    let rows = cohort(&mut rng, &index, &absent, rows);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cohort.csv");
    std::fs::write(&path, cohort_csv(&rows)).unwrap();
    let config = LinkConfig {
        manual_validation: true,
        ..LinkConfig::default()
    };
    let cohort = read_cohort(&IngestConfig {
        path,
        required: config.required_columns(),
    })
    .unwrap();
    assert_eq!(cohort.rows.len(), rows.len());
    let linkage = link::link(&cohort, demographics(&index), &config).unwrap();
    let t = tally(&rows, &linkage);
    eprintln!(
        "issue 10 linkage, {people} people, {} cohort rows, seed {seed}:",
        rows.len()
    );
    eprintln!(
        "  {:<14} {:>5} {:>9} {:>5} {:>5} {:>5} {:>6} {:>12} {:>6}",
        "kind", "rows", "validated", "wrong", "first", "lower", "missed", "holder_above", "queued"
    );
    for (k, x) in &t {
        eprintln!(
            "  {:<14} {:>5} {:>9} {:>5} {:>5} {:>5} {:>6} {:>12} {:>6}",
            k, x.rows, x.validated, x.wrong, x.first, x.lower, x.missed, x.holder_above, x.queued
        );
    }
    (t, linkage)
}

fn get<'a>(t: &'a [(&'static str, Tally)], kind: &str) -> &'a Tally {
    &t.iter().find(|(k, _)| *k == kind).unwrap().1
}

/// Right first: validated to the true person, or queued with it first.
fn share_first(t: &Tally) -> f64 {
    (t.validated + t.first) as f64 / t.rows.max(1) as f64
}

#[test]
fn issue_10_linkage_holds_on_data_from_another_generator() {
    let (t, _) = run(10, 20_000, 3_000);

    for (kind, x) in &t {
        assert_eq!(
            x.wrong, 0,
            "{kind}: a row was validated to the wrong person"
        );
    }
    let clean = get(&t, "clean");
    assert!(
        clean.validated as f64 >= 0.999 * clean.rows as f64,
        "only {}/{} clean rows validated",
        clean.validated,
        clean.rows
    );

    // Twins carrying each other's NHS number are left out of the floor:
    // the number and the forename point different ways, and the test
    // below asks only that both twins are queued.
    let errors: Vec<&Tally> = ERROR_KINDS
        .iter()
        .filter(|k| **k != "twin_nhs")
        .map(|k| get(&t, k))
        .collect();
    let (right, total) = errors
        .iter()
        .fold((0, 0), |(r, n), x| (r + x.validated + x.first, n + x.rows));
    let share = right as f64 / total as f64;
    eprintln!(
        "  true person first for rows with errors: {right}/{total} = {:.2}%",
        100.0 * share
    );
    // The estimated model reaches 99.5% here (seeds 10-12); the floor
    // leaves room for other seeds.
    assert!(
        share >= 0.97,
        "true person first for {:.2}% of rows with errors",
        100.0 * share
    );
    // Absent people (an unregistered child of a household, namesakes,
    // people sharing a surname and a date of birth with someone in the
    // index): the issue's bound. The model before surname and postcode were
    // estimated jointly (and the share in the index by NHS-number group)
    // queued 12-15% of them here (22, 18 and 20 of 150 over seeds 10-12), and
    // this assertion failed; now 8-9 of 150.
    let (queued, absent) = ["absent", "absent_namesake", "absent_surname_dob"]
        .iter()
        .map(|k| get(&t, k))
        .fold((0, 0), |(q, n), x| (q + x.queued, n + x.rows));
    eprintln!("  absent people queued: {queued}/{absent}");
    assert!(absent >= 100, "only {absent} absent rows");
    assert!(
        queued * 10 <= absent,
        "{queued}/{absent} absent people queued"
    );
}

/// Issue #10: a valid NHS number that belongs to a relative is evidence,
/// not a verdict: the true person, agreeing on everything else, is ranked
/// above the holder. A twin's number is never validated (the forename
/// disagrees), and the true twin is queued beside the holder: there the
/// number and the forename point different ways, which is a reviewer's
/// call.
#[test]
fn issue_10_a_relatives_nhs_number_does_not_beat_the_true_person() {
    let (t, _) = run(11, 20_000, 3_000);
    let x = get(&t, "relative_nhs");
    assert!(x.rows >= 20, "only {} rows", x.rows);
    assert_eq!(x.wrong, 0, "validated to the holder");
    assert_eq!(
        x.holder_above, 0,
        "the holder of the number ranked above the true person in {} rows",
        x.holder_above
    );
    assert!(
        share_first(x) >= 0.95,
        "true person first for {}/{}",
        x.validated + x.first,
        x.rows
    );
    let x = get(&t, "twin_nhs");
    assert!(x.rows >= 20, "only {} twin rows", x.rows);
    assert_eq!(x.wrong, 0, "a twin's number validated");
    assert_eq!(x.first + x.lower, x.rows, "the true twin not queued");
}

/// Issue #10: married and moved, no NHS number (new surname and postcode;
/// date of birth, forename and gender right): found, and ranked first.
#[test]
fn issue_10_the_married_who_moved_are_found() {
    let (t, _) = run(12, 20_000, 3_000);
    let x = get(&t, "married_moved");
    assert!(x.rows >= 20, "only {} rows", x.rows);
    // Measured 94-99% queued and 91-99% first over seeds 10-12 since a
    // candidate is queued on its probability only when it is at least as
    // likely as not (before: 100% queued, 93-100% first, while 12-15% of
    // absent people were queued): the two trade against each other.
    assert!(
        x.first + x.lower >= x.rows * 90 / 100,
        "true person queued for {}/{}",
        x.first + x.lower,
        x.rows
    );
    assert!(
        share_first(x) >= 0.90,
        "true person first for {}/{}",
        x.first,
        x.rows
    );
}
