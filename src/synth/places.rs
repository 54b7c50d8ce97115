//! Where synthetic people live: UK postcodes, the nine English regions,
//! LSOA codes and the hospital providers that admit them.
//!
//! A home is a postcode (an outward code from a real postcode area, a
//! sector digit and two unit letters from the set Royal Mail uses), the
//! region of that postcode area and an LSOA in that region, so that a
//! person's `region` and `lsoa` in `hes_apc` agree with their postcode in
//! demographics. Every rendered postcode passes [`Postcode::parse`].

use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;

#[cfg(test)]
use crate::domain::Postcode;

/// The nine English regions, as HES names them.
pub const REGIONS: [&str; 9] = [
    "North East",
    "North West",
    "Yorkshire and The Humber",
    "East Midlands",
    "West Midlands",
    "East of England",
    "London",
    "South East",
    "South West",
];

const NORTH_EAST: u8 = 0;
const NORTH_WEST: u8 = 1;
const YORKSHIRE: u8 = 2;
const EAST_MIDLANDS: u8 = 3;
const WEST_MIDLANDS: u8 = 4;
const EAST: u8 = 5;
const LONDON: u8 = 6;
const SOUTH_EAST: u8 = 7;
const SOUTH_WEST: u8 = 8;

/// Postcode areas: letters, highest district number, region.
const AREAS: &[(&str, u8, u8)] = &[
    ("DH", 9, NORTH_EAST),
    ("DL", 17, NORTH_EAST),
    ("NE", 71, NORTH_EAST),
    ("SR", 9, NORTH_EAST),
    ("TS", 29, NORTH_EAST),
    ("BB", 18, NORTH_WEST),
    ("BL", 9, NORTH_WEST),
    ("CA", 28, NORTH_WEST),
    ("CH", 66, NORTH_WEST),
    ("CW", 12, NORTH_WEST),
    ("FY", 8, NORTH_WEST),
    ("L", 75, NORTH_WEST),
    ("LA", 23, NORTH_WEST),
    ("M", 90, NORTH_WEST),
    ("OL", 16, NORTH_WEST),
    ("PR", 26, NORTH_WEST),
    ("SK", 23, NORTH_WEST),
    ("WA", 16, NORTH_WEST),
    ("WN", 8, NORTH_WEST),
    ("BD", 24, YORKSHIRE),
    ("DN", 41, YORKSHIRE),
    ("HD", 9, YORKSHIRE),
    ("HG", 5, YORKSHIRE),
    ("HU", 20, YORKSHIRE),
    ("HX", 7, YORKSHIRE),
    ("LS", 29, YORKSHIRE),
    ("S", 75, YORKSHIRE),
    ("WF", 17, YORKSHIRE),
    ("YO", 62, YORKSHIRE),
    ("DE", 75, EAST_MIDLANDS),
    ("LE", 67, EAST_MIDLANDS),
    ("LN", 13, EAST_MIDLANDS),
    ("NG", 34, EAST_MIDLANDS),
    ("NN", 29, EAST_MIDLANDS),
    ("B", 98, WEST_MIDLANDS),
    ("CV", 47, WEST_MIDLANDS),
    ("DY", 14, WEST_MIDLANDS),
    ("HR", 9, WEST_MIDLANDS),
    ("ST", 21, WEST_MIDLANDS),
    ("TF", 13, WEST_MIDLANDS),
    ("WR", 15, WEST_MIDLANDS),
    ("WS", 15, WEST_MIDLANDS),
    ("WV", 16, WEST_MIDLANDS),
    ("AL", 10, EAST),
    ("CB", 11, EAST),
    ("CM", 24, EAST),
    ("CO", 16, EAST),
    ("IP", 33, EAST),
    ("LU", 7, EAST),
    ("NR", 35, EAST),
    ("PE", 38, EAST),
    ("SG", 19, EAST),
    ("SS", 17, EAST),
    ("WD", 25, EAST),
    ("E", 20, LONDON),
    ("N", 22, LONDON),
    ("NW", 11, LONDON),
    ("SE", 28, LONDON),
    ("SW", 20, LONDON),
    ("W", 14, LONDON),
    ("BR", 8, LONDON),
    ("CR", 8, LONDON),
    ("EN", 11, LONDON),
    ("HA", 9, LONDON),
    ("IG", 11, LONDON),
    ("RM", 20, LONDON),
    ("TW", 20, LONDON),
    ("UB", 11, LONDON),
    ("BN", 45, SOUTH_EAST),
    ("CT", 21, SOUTH_EAST),
    ("GU", 52, SOUTH_EAST),
    ("HP", 23, SOUTH_EAST),
    ("ME", 20, SOUTH_EAST),
    ("MK", 46, SOUTH_EAST),
    ("OX", 49, SOUTH_EAST),
    ("PO", 41, SOUTH_EAST),
    ("RG", 45, SOUTH_EAST),
    ("RH", 20, SOUTH_EAST),
    ("SL", 9, SOUTH_EAST),
    ("SO", 53, SOUTH_EAST),
    ("TN", 40, SOUTH_EAST),
    ("BA", 16, SOUTH_WEST),
    ("BH", 31, SOUTH_WEST),
    ("BS", 41, SOUTH_WEST),
    ("DT", 11, SOUTH_WEST),
    ("EX", 39, SOUTH_WEST),
    ("GL", 56, SOUTH_WEST),
    ("PL", 35, SOUTH_WEST),
    ("SN", 26, SOUTH_WEST),
    ("SP", 11, SOUTH_WEST),
    ("TA", 24, SOUTH_WEST),
    ("TQ", 14, SOUTH_WEST),
    ("TR", 27, SOUTH_WEST),
];

/// Central London outward codes with a letter after the district digit.
const SPECIAL_OUTWARDS: &[&str] = &[
    "EC1A", "EC1M", "EC2A", "EC4M", "WC1A", "WC1E", "WC2H", "SW1A", "SW1P", "W1A", "W1D", "W1T",
    "E1W", "N1C",
];

/// Letters Royal Mail uses in the unit part of a postcode.
const UNIT_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";

/// LSOA counts per region (roughly the 2021 census), in [`REGIONS`] order;
/// codes are numbered in blocks, London first as in the real list.
const LSOAS_PER_REGION: [u32; 9] = [
    1_650, 4_460, 3_300, 2_850, 3_500, 3_600, 4_990, 5_400, 3_400,
];
const LSOA_BLOCK_ORDER: [u8; 9] = [
    LONDON,
    NORTH_EAST,
    NORTH_WEST,
    YORKSHIRE,
    EAST_MIDLANDS,
    WEST_MIDLANDS,
    EAST,
    SOUTH_EAST,
    SOUTH_WEST,
];

/// Acute trusts per region (real ODS codes).
const PROVIDERS: [[&str; 5]; 9] = [
    ["RTD", "RTR", "R0B", "RXP", "RLN"],
    ["R0A", "REM", "RXN", "RBT", "RRF"],
    ["RR8", "RHQ", "RWA", "RCB", "RAE"],
    ["RWE", "RX1", "RTG", "RWD", "RNQ"],
    ["RRK", "RKB", "RL4", "RJE", "RWP"],
    ["RGT", "RM1", "RWH", "RDE", "RAJ"],
    ["RRV", "RJ1", "R1H", "RYJ", "RAL"],
    ["RTH", "RHM", "RYR", "RN5", "RVV"],
    ["RA7", "RH8", "RK9", "REF", "RTE"],
];

/// A postcode as parts: an outward code (index into [`Places::outward`]),
/// the sector digit and two unit letters (indexes into the unit letters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostcodeParts {
    pub outward: u16,
    pub sector: u8,
    pub unit: [u8; 2],
}

/// Where a household lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Home {
    pub postcode: PostcodeParts,
    pub region: u8,
    /// LSOA number, rendered `E01` and six digits.
    pub lsoa: u32,
}

/// Postcode geography and the regional lookups.
pub struct Places {
    outward: Vec<String>,
    outward_area: Vec<u8>,
    outward_region: Vec<u8>,
    /// Outward indexes of each area, for local moves.
    area_outwards: Vec<Vec<u16>>,
    choose_outward: WeightedIndex<f64>,
    lsoa_first: [u32; 9],
}

impl Places {
    pub fn new() -> Self {
        let mut outward = Vec::new();
        let mut outward_area = Vec::new();
        let mut outward_region = Vec::new();
        let mut weights = Vec::new();
        let mut area_outwards = vec![Vec::new(); AREAS.len() + 1];
        for (a, &(letters, districts, region)) in AREAS.iter().enumerate() {
            for d in 1..=districts {
                area_outwards[a].push(outward.len() as u16);
                outward.push(format!("{letters}{d}"));
                outward_area.push(a as u8);
                outward_region.push(region);
                weights.push(1.0);
            }
        }
        let central = AREAS.len();
        for code in SPECIAL_OUTWARDS {
            area_outwards[central].push(outward.len() as u16);
            outward.push((*code).to_string());
            outward_area.push(central as u8);
            outward_region.push(LONDON);
            weights.push(0.2);
        }
        let mut lsoa_first = [0u32; 9];
        let mut next = 1;
        for region in LSOA_BLOCK_ORDER {
            lsoa_first[usize::from(region)] = next;
            next += LSOAS_PER_REGION[usize::from(region)];
        }
        Self {
            outward,
            outward_area,
            outward_region,
            area_outwards,
            // About 2 500 outward codes, all with positive weight.
            choose_outward: WeightedIndex::new(weights).expect("non-empty positive weights"),
            lsoa_first,
        }
    }

    fn unit<R: Rng>(rng: &mut R, outward: u16) -> PostcodeParts {
        PostcodeParts {
            outward,
            sector: rng.gen_range(0..10),
            unit: [
                rng.gen_range(0..UNIT_LETTERS.len()) as u8,
                rng.gen_range(0..UNIT_LETTERS.len()) as u8,
            ],
        }
    }

    /// A new home anywhere in England.
    pub fn home<R: Rng>(&self, rng: &mut R) -> Home {
        let outward = self.choose_outward.sample(rng) as u16;
        let region = self.outward_region[usize::from(outward)];
        let r = usize::from(region);
        Home {
            postcode: Self::unit(rng, outward),
            region,
            lsoa: self.lsoa_first[r] + rng.gen_range(0..LSOAS_PER_REGION[r]),
        }
    }

    /// A different postcode for someone who moved: usually nearby (same
    /// district or area), sometimes anywhere.
    pub fn moved<R: Rng>(&self, rng: &mut R, from: PostcodeParts) -> PostcodeParts {
        loop {
            let roll: f64 = rng.gen();
            let outward = if roll < 0.4 {
                from.outward
            } else if roll < 0.7 {
                let area = usize::from(self.outward_area[usize::from(from.outward)]);
                let list = &self.area_outwards[area];
                list[rng.gen_range(0..list.len())]
            } else {
                self.choose_outward.sample(rng) as u16
            };
            let to = Self::unit(rng, outward);
            if to != from {
                return to;
            }
        }
    }

    /// Writes the normalised postcode ("LS1 4AP") into `out` (cleared first).
    pub fn postcode_into(&self, p: PostcodeParts, out: &mut String) {
        out.clear();
        out.push_str(&self.outward[usize::from(p.outward)]);
        out.push(' ');
        out.push(char::from(b'0' + p.sector));
        out.push(char::from(UNIT_LETTERS[usize::from(p.unit[0])]));
        out.push(char::from(UNIT_LETTERS[usize::from(p.unit[1])]));
    }

    pub fn postcode_string(&self, p: PostcodeParts) -> String {
        let mut s = String::with_capacity(8);
        self.postcode_into(p, &mut s);
        s
    }

    pub fn region_name(region: u8) -> &'static str {
        REGIONS[usize::from(region)]
    }

    pub fn provider<R: Rng>(rng: &mut R, region: u8) -> &'static str {
        // Most admissions are at one of the two big trusts of the region.
        let list = &PROVIDERS[usize::from(region)];
        let i = match rng.gen_range(0..10) {
            0..=3 => 0,
            4..=6 => 1,
            7 => 2,
            8 => 3,
            _ => 4,
        };
        list[i]
    }

    /// Every outward code, for tests.
    #[cfg(test)]
    pub fn outward_codes(&self) -> &[String] {
        &self.outward
    }
}

/// Writes `E01` and six digits into a fixed buffer: the hot path renders
/// one per episode, so it avoids a heap allocation.
pub fn lsoa_code(lsoa: u32) -> [u8; 9] {
    let mut out = *b"E01000000";
    let mut n = lsoa;
    for slot in out[3..].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out
}

/// Checks a rendered postcode with the domain parser (tests only).
#[cfg(test)]
pub fn is_valid_normalised(s: &str) -> bool {
    Postcode::parse(s).is_some_and(|p| p.as_str() == s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn every_outward_code_makes_valid_postcodes() {
        let places = Places::new();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for o in 0..places.outward_codes().len() {
            let p = Places::unit(&mut rng, o as u16);
            let s = places.postcode_string(p);
            assert!(is_valid_normalised(&s), "{o}");
        }
    }

    #[test]
    fn moves_change_the_postcode() {
        let places = Places::new();
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..1000 {
            let h = places.home(&mut rng);
            let m = places.moved(&mut rng, h.postcode);
            assert_ne!(
                places.postcode_string(h.postcode),
                places.postcode_string(m)
            );
            assert!(is_valid_normalised(&places.postcode_string(m)));
        }
    }

    #[test]
    fn lsoa_codes() {
        assert_eq!(&lsoa_code(1), b"E01000001");
        assert_eq!(&lsoa_code(33_123), b"E01033123");
        let places = Places::new();
        assert_eq!(places.lsoa_first[usize::from(LONDON)], 1);
    }
}
