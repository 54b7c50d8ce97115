//! UK postcodes: normalised to upper case with one space before the last
//! three characters ("AB1 2CD"), validated against the UK format (and the
//! special `GIR 0AA`), and compared at four levels: full, sector (outward
//! code and first inward digit), district (outward code) and area (the
//! leading letters).

use std::fmt;

/// A valid, normalised UK postcode. `Debug` is redacted; see
/// [`Postcode::as_str`] and the level accessors for the parts.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Postcode(String);

/// How closely two postcodes agree, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PostcodeLevel {
    Full,
    Sector,
    District,
    Area,
    None,
}

impl Postcode {
    /// Normalises and validates; `None` for anything that is not a UK postcode.
    pub fn parse(raw: &str) -> Option<Self> {
        let compact: String = raw
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if compact == "GIR0AA" {
            return Some(Self("GIR 0AA".into()));
        }
        if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
            return None;
        }
        let (outward, inward) = compact.split_at(compact.len() - 3);
        let i = inward.as_bytes();
        if !(i[0].is_ascii_digit() && i[1].is_ascii_alphabetic() && i[2].is_ascii_alphabetic()) {
            return None;
        }
        if !valid_outward(outward) {
            return None;
        }
        Some(Self(format!("{outward} {inward}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The outward code ("AB1").
    pub fn district(&self) -> &str {
        self.0.split(' ').next().unwrap_or(&self.0)
    }

    /// Outward code plus the first inward digit ("AB1 2").
    pub fn sector(&self) -> &str {
        &self.0[..self.district().len() + 2]
    }

    /// The leading letters ("AB").
    pub fn area(&self) -> &str {
        let n = self.0.bytes().take_while(u8::is_ascii_alphabetic).count();
        &self.0[..n]
    }

    pub fn compare(&self, other: &Postcode) -> PostcodeLevel {
        if self == other {
            PostcodeLevel::Full
        } else if self.sector() == other.sector() {
            PostcodeLevel::Sector
        } else if self.district() == other.district() {
            PostcodeLevel::District
        } else if self.area() == other.area() {
            PostcodeLevel::Area
        } else {
            PostcodeLevel::None
        }
    }
}

/// Outward codes: A9, A99, AA9, AA99, A9A, AA9A.
fn valid_outward(o: &str) -> bool {
    let b = o.as_bytes();
    let a = |i: usize| b.get(i).is_some_and(u8::is_ascii_alphabetic);
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    match b.len() {
        2 => a(0) && d(1),
        3 => a(0) && ((d(1) && d(2)) || (a(1) && d(2)) || (d(1) && a(2))),
        4 => a(0) && a(1) && d(2) && (d(3) || a(3)),
        _ => false,
    }
}

impl fmt::Debug for Postcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Postcode(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_every_layout() {
        for raw in ["ls1 4ap", "LS14AP", " LS1  4AP ", "Ls1 4aP"] {
            assert_eq!(Postcode::parse(raw).unwrap().as_str(), "LS1 4AP");
        }
        assert_eq!(Postcode::parse("gir0aa").unwrap().as_str(), "GIR 0AA");
        assert_eq!(Postcode::parse("EC1A1BB").unwrap().as_str(), "EC1A 1BB");
        assert_eq!(Postcode::parse("W1A 0AX").unwrap().as_str(), "W1A 0AX");
        assert_eq!(Postcode::parse("M11AE").unwrap().as_str(), "M1 1AE");
    }

    #[test]
    fn refuses_non_postcodes() {
        for raw in [
            "", "LS1", "LS1 4A1", "12345", "LS1 AAP", "L1S 4AP1", "ÄS1 4AP",
        ] {
            assert!(Postcode::parse(raw).is_none(), "{raw}");
        }
    }

    #[test]
    fn levels() {
        let p = |s| Postcode::parse(s).unwrap();
        assert_eq!(p("LS1 4AP").compare(&p("LS1 4AP")), PostcodeLevel::Full);
        assert_eq!(p("LS1 4AP").compare(&p("LS1 4BQ")), PostcodeLevel::Sector);
        assert_eq!(p("LS1 4AP").compare(&p("LS1 5AP")), PostcodeLevel::District);
        assert_eq!(p("LS1 4AP").compare(&p("LS12 4AP")), PostcodeLevel::Area);
        assert_eq!(p("LS1 4AP").compare(&p("M1 1AE")), PostcodeLevel::None);
        assert_eq!(p("EC1A 1BB").area(), "EC");
        assert_eq!(p("EC1A 1BB").sector(), "EC1A 1");
    }
}
