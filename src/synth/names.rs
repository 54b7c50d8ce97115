//! British names with realistic frequencies, for synthetic people.
//!
//! Surnames come from two sources: a ranked list of common British surnames
//! (including Irish, Scottish, Welsh, South Asian and other surnames common
//! in England, and multi-part ones such as `O'Brien`, `Van der Berg` and
//! `Smith-Jones`) drawn with Zipf-like weights so that Smith is common and
//! Yates is not, and a long tail of English place-name surnames
//! (`Ashworth`, `Thornley`) built from a prefix and a suffix. Real
//! populations have that long tail: without it, surname and date of birth
//! would collide far more often than they do in a real master person index.
//! A small share of households carry a double-barrelled surname built from
//! two surnames.
//!
//! Forenames are drawn per sex and per birth era (before 1960, 1960–1989,
//! 1990 on), because a Margaret born in 2015 is as unlikely as an Isla born
//! in 1935.

use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;

/// Common British surnames, most common first.
const COMMON_SURNAMES: &[&str] = &[
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
    "Graham",
    "Pearson",
    "Ahmed",
    "Fletcher",
    "Walsh",
    "Kaur",
    "Gibson",
    "Howard",
    "Andrews",
    "Stewart",
    "Elliott",
    "Reynolds",
    "Saunders",
    "Payne",
    "Fox",
    "Ford",
    "Pearce",
    "Day",
    "Brooks",
    "West",
    "Lawrence",
    "Cole",
    "Atkinson",
    "Bradley",
    "Spencer",
    "Gill",
    "Dawson",
    "Ball",
    "Burton",
    "O'Brien",
    "Watts",
    "Rose",
    "Booth",
    "Perry",
    "Ryan",
    "Grant",
    "Wells",
    "Armstrong",
    "Francis",
    "Rees",
    "Hayes",
    "Hart",
    "Hudson",
    "Newman",
    "Barrett",
    "Webster",
    "Hunter",
    "Gregory",
    "Carr",
    "Lowe",
    "Page",
    "Marsh",
    "Riley",
    "Dunn",
    "Woods",
    "Parsons",
    "Berry",
    "Stone",
    "Reid",
    "Holland",
    "Hawkins",
    "Harding",
    "Porter",
    "Robertson",
    "Newton",
    "Oliver",
    "Reed",
    "Kennedy",
    "Williamson",
    "Bird",
    "Gardner",
    "Shah",
    "Dean",
    "Lane",
    "Cooke",
    "Bates",
    "Henderson",
    "Parry",
    "Burgess",
    "Bishop",
    "Walton",
    "Burns",
    "Nicholson",
    "Shepherd",
    "Ross",
    "Cross",
    "Long",
    "Freeman",
    "Warren",
    "Nicholls",
    "Hamilton",
    "Byrne",
    "Sutton",
    "McDonald",
    "Yates",
    "Hodgson",
    "Robson",
    "Curtis",
    "Hopkins",
    "O'Connor",
    "Harper",
    "Coleman",
    "Watkins",
    "Moss",
    "McCarthy",
    "Chambers",
    "O'Neill",
    "Griffin",
    "Sharp",
    "Hardy",
    "Wheeler",
    "Potter",
    "Osborne",
    "Johnston",
    "Gordon",
    "Doyle",
    "Wallace",
    "George",
    "Jordan",
    "Hutchinson",
    "Reeves",
    "Miah",
    "Rahman",
    "Islam",
    "Chowdhury",
    "Sharma",
    "Kumar",
    "Mohamed",
    "Ibrahim",
    "Chen",
    "Nguyen",
    "Kowalski",
    "Nowak",
    "Okafor",
    "Adeyemi",
    "Mensah",
    "Santos",
    "Fitzgerald",
    "MacLeod",
    "McKenzie",
    "D'Souza",
    "Da Silva",
    "De Souza",
    "Van der Berg",
    "Le Roux",
    "St John",
    "ap Rhys",
    "Smith-Jones",
    "Taylor-Wood",
    "Hughes-Davies",
    "Wynne-Jones",
    "Lloyd-Evans",
];

/// Prefixes and suffixes of English place-name surnames, for the long tail.
const TAIL_PREFIXES: &[&str] = &[
    "Ash", "Black", "Brad", "Brom", "Chad", "Cran", "Dun", "Elm", "Fair", "Green", "Hal", "Hart",
    "Hey", "Kirk", "Lang", "Mar", "Mid", "Nor", "Old", "Pen", "Ray", "Rother", "Sal", "Shel",
    "Stan", "Thorn", "Wal", "Whit", "Win", "Wood", "Ather", "Brier", "Cald", "Dal", "Ged",
    "Hather", "Lin", "Mor", "Rad", "Stock",
];
const TAIL_SUFFIXES: &[&str] = &[
    "ton", "ley", "ford", "well", "wood", "field", "ham", "by", "worth", "combe", "dale", "hurst",
    "stead", "thorpe", "more", "bury", "den", "cott", "shaw", "wick",
];

const MALE_OLD: &[&str] = &[
    "John",
    "David",
    "Michael",
    "Peter",
    "Robert",
    "Anthony",
    "Brian",
    "Alan",
    "William",
    "James",
    "Kenneth",
    "Geoffrey",
    "Derek",
    "Ronald",
    "Raymond",
    "George",
    "Thomas",
    "Richard",
    "Christopher",
    "Stephen",
    "Keith",
    "Colin",
    "Roy",
    "Dennis",
    "Frank",
    "Arthur",
    "Albert",
    "Harold",
    "Stanley",
    "Leonard",
    "Eric",
    "Norman",
    "Gordon",
    "Terence",
    "Barry",
    "Malcolm",
    "Graham",
    "Trevor",
    "Roger",
    "Ian",
    "Patrick",
    "Bernard",
    "Douglas",
    "Gerald",
    "Walter",
];
const MALE_MID: &[&str] = &[
    "Paul",
    "Mark",
    "Andrew",
    "Stephen",
    "David",
    "Richard",
    "Christopher",
    "Darren",
    "Lee",
    "Craig",
    "Gary",
    "Wayne",
    "Jason",
    "Neil",
    "Simon",
    "Matthew",
    "Daniel",
    "Michael",
    "Robert",
    "Steven",
    "Martin",
    "Kevin",
    "Dean",
    "Carl",
    "Jonathan",
    "Nicholas",
    "Adam",
    "James",
    "Scott",
    "Shaun",
    "Stuart",
    "Ian",
    "Anthony",
    "Philip",
    "Jamie",
    "Ryan",
    "Imran",
    "Mohammed",
    "Sanjay",
    "Rajesh",
    "Jean-Paul",
];
const MALE_YOUNG: &[&str] = &[
    "Oliver", "Jack", "Harry", "George", "Noah", "Charlie", "Jacob", "Alfie", "Freddie", "Oscar",
    "Leo", "Thomas", "William", "James", "Joshua", "Daniel", "Samuel", "Benjamin", "Lewis",
    "Ethan", "Muhammad", "Mohammed", "Logan", "Archie", "Theo", "Arthur", "Henry", "Isaac",
    "Dylan", "Jake", "Luke", "Callum", "Connor", "Kieran", "Liam", "Max", "Finley", "Riley",
    "Tyler", "Aaron", "Jayden", "Reuben", "Louis", "Adam", "Ryan", "Yusuf", "Aarav",
];
const FEMALE_OLD: &[&str] = &[
    "Margaret",
    "Patricia",
    "Mary",
    "Barbara",
    "Joan",
    "Jean",
    "Dorothy",
    "Sheila",
    "Doris",
    "Betty",
    "Joyce",
    "Irene",
    "Eileen",
    "Elizabeth",
    "Susan",
    "Christine",
    "Ann",
    "Valerie",
    "Pauline",
    "Brenda",
    "Maureen",
    "Janet",
    "Sandra",
    "Linda",
    "Carol",
    "Jennifer",
    "Sylvia",
    "Gillian",
    "Kathleen",
    "Hilda",
    "Edna",
    "Marjorie",
    "Audrey",
    "Vera",
    "Elsie",
    "Gladys",
    "June",
    "Rita",
    "Shirley",
    "Wendy",
    "Iris",
    "Beryl",
    "Winifred",
    "Mary-Ann",
];
const FEMALE_MID: &[&str] = &[
    "Sarah",
    "Claire",
    "Emma",
    "Nicola",
    "Julie",
    "Lisa",
    "Karen",
    "Michelle",
    "Joanne",
    "Helen",
    "Rachel",
    "Kelly",
    "Louise",
    "Donna",
    "Tracey",
    "Amanda",
    "Samantha",
    "Deborah",
    "Alison",
    "Catherine",
    "Elizabeth",
    "Victoria",
    "Rebecca",
    "Kerry",
    "Dawn",
    "Jacqueline",
    "Angela",
    "Anne-Marie",
    "Nicole",
    "Zoe",
    "Gemma",
    "Laura",
    "Hayley",
    "Lindsey",
    "Kirsty",
    "Natalie",
    "Joanna",
    "Nasreen",
    "Priya",
    "Shabana",
];
const FEMALE_YOUNG: &[&str] = &[
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Emily",
    "Sophie",
    "Grace",
    "Mia",
    "Poppy",
    "Ella",
    "Lily",
    "Jessica",
    "Chloe",
    "Charlotte",
    "Isabella",
    "Freya",
    "Evie",
    "Sophia",
    "Daisy",
    "Ruby",
    "Florence",
    "Alice",
    "Hannah",
    "Holly",
    "Ellie",
    "Megan",
    "Lucy",
    "Amber",
    "Phoebe",
    "Scarlett",
    "Aisha",
    "Fatima",
    "Zara",
    "Maryam",
    "Layla",
    "Niamh",
    "Erin",
    "Millie",
    "Lily-Mae",
    "Mary-Jane",
    "Amara",
];

/// Share of people whose surname comes from the common list (the rest come
/// from the long tail).
const COMMON_SURNAME_SHARE: f64 = 0.6;

/// A surname: one name or a double-barrelled pair, as indexes into
/// [`NameTables::surname`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Surname {
    pub first: u16,
    pub second: Option<u16>,
}

/// Birth era, for forename fashions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Old,
    Mid,
    Young,
}

impl Era {
    pub fn of_birth_year(year: i32) -> Self {
        if year < 1960 {
            Self::Old
        } else if year < 1990 {
            Self::Mid
        } else {
            Self::Young
        }
    }
}

/// Every name the generator uses, with the weighted choices over them.
pub struct NameTables {
    surnames: Vec<String>,
    common: WeightedIndex<f64>,
    tail: WeightedIndex<f64>,
    forenames: Vec<&'static str>,
    /// Per (male?, era): the global forename indexes and their weights.
    forename_choices: Vec<(Vec<u16>, WeightedIndex<f64>)>,
}

/// Zipf-like weights for a ranked list: rank 0 is the most common.
fn zipf(n: usize, offset: f64, exponent: f64) -> Vec<f64> {
    (0..n)
        .map(|r| 1.0 / (r as f64 + offset).powf(exponent))
        .collect()
}

/// Builds a weighted choice over a non-empty list of positive weights.
fn weighted(weights: Vec<f64>) -> WeightedIndex<f64> {
    // The lists are non-empty constants with positive weights, so this
    // cannot fail.
    WeightedIndex::new(weights).expect("constant, non-empty, positive weights")
}

impl NameTables {
    pub fn new() -> Self {
        let mut surnames: Vec<String> = COMMON_SURNAMES.iter().map(|s| s.to_string()).collect();
        for p in TAIL_PREFIXES {
            for s in TAIL_SUFFIXES {
                surnames.push(format!("{p}{s}"));
            }
        }
        let tail_len = surnames.len() - COMMON_SURNAMES.len();
        let common = weighted(zipf(COMMON_SURNAMES.len(), 8.0, 1.0));
        let tail = weighted(zipf(tail_len, 20.0, 0.7));

        let mut forenames: Vec<&'static str> = Vec::new();
        let mut forename_choices = Vec::new();
        for list in [
            MALE_OLD,
            MALE_MID,
            MALE_YOUNG,
            FEMALE_OLD,
            FEMALE_MID,
            FEMALE_YOUNG,
        ] {
            let ids: Vec<u16> = list
                .iter()
                .map(|name| match forenames.iter().position(|f| f == name) {
                    Some(i) => i as u16,
                    None => {
                        forenames.push(name);
                        (forenames.len() - 1) as u16
                    }
                })
                .collect();
            let w = weighted(zipf(ids.len(), 4.0, 1.0));
            forename_choices.push((ids, w));
        }
        Self {
            surnames,
            common,
            tail,
            forenames,
            forename_choices,
        }
    }

    /// A single surname index, common or from the tail.
    fn one_surname<R: Rng>(&self, rng: &mut R) -> u16 {
        // Fewer than 65 536 surnames (about 1 100), so the casts are exact.
        if rng.gen_bool(COMMON_SURNAME_SHARE) {
            self.common.sample(rng) as u16
        } else {
            (COMMON_SURNAMES.len() + self.tail.sample(rng)) as u16
        }
    }

    /// A household surname; about 1 in 100 is double-barrelled.
    pub fn surname<R: Rng>(&self, rng: &mut R) -> Surname {
        let first = self.one_surname(rng);
        let second = if rng.gen_bool(0.01) {
            let s = self.one_surname(rng);
            (s != first).then_some(s)
        } else {
            None
        };
        Surname { first, second }
    }

    /// A forename for a person of the given sex born in the given era.
    pub fn forename<R: Rng>(&self, rng: &mut R, male: bool, era: Era) -> u16 {
        let slot = match (male, era) {
            (true, Era::Old) => 0,
            (true, Era::Mid) => 1,
            (true, Era::Young) => 2,
            (false, Era::Old) => 3,
            (false, Era::Mid) => 4,
            (false, Era::Young) => 5,
        };
        let (ids, w) = &self.forename_choices[slot];
        ids[w.sample(rng)]
    }

    pub fn forename_str(&self, id: u16) -> &str {
        self.forenames[usize::from(id)]
    }

    /// Writes the surname into `out` (cleared first).
    pub fn surname_into(&self, s: Surname, out: &mut String) {
        out.clear();
        out.push_str(&self.surnames[usize::from(s.first)]);
        if let Some(second) = s.second {
            out.push('-');
            out.push_str(&self.surnames[usize::from(second)]);
        }
    }

    pub fn surname_string(&self, s: Surname) -> String {
        let mut out = String::new();
        self.surname_into(s, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn common_surnames_are_common() {
        let t = NameTables::new();
        assert!(COMMON_SURNAMES.len() >= 200);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut smith = 0;
        let mut yates = 0;
        for _ in 0..50_000 {
            match t.surname_string(t.surname(&mut rng)).as_str() {
                "Smith" => smith += 1,
                "Yates" => yates += 1,
                _ => {}
            }
        }
        assert!(smith > 3 * yates, "Smith {smith}, Yates {yates}");
        assert!(smith < 50_000 / 20, "Smith too common: {smith}");
    }

    #[test]
    fn forenames_follow_sex_and_era() {
        let t = NameTables::new();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..1000 {
            let f = t.forename_str(t.forename(&mut rng, false, Era::Young));
            assert!(FEMALE_YOUNG.contains(&f));
            let m = t.forename_str(t.forename(&mut rng, true, Era::Old));
            assert!(MALE_OLD.contains(&m));
        }
    }
}
