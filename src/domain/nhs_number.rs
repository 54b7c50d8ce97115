//! NHS numbers: ten digits with a modulus-11 check digit.
//!
//! The rule (DESIGN.md, "NHS number"): weight digits 1–9 by 10, 9, …, 2, sum,
//! take the remainder mod 11; check = 11 − remainder, where 11 means 0 and 10
//! means the number is invalid. Ten identical digits are invalid, and numbers
//! starting 999 are test numbers that are never issued.
//!
//! Modulus 11 catches every single-digit error and every transposition of
//! two adjacent digits, so a number that fails the check is a typo signal:
//! [`NhsNumber::typo_neighbours`] lists the valid numbers one edit or one
//! transposition away, which the linkage stage uses for blocking.
//!
//! We keep our own implementation rather than the `nhs-number` crate: the
//! check is ten lines that DESIGN fixes exactly, we need rules the crate does
//! not have (identical digits, the 999 range, typo neighbours), and it would
//! bring a second `rand` into the tree.

use std::fmt;

/// A valid, issuable NHS number. `Debug` is redacted so that a stray
/// `{:?}` never prints a patient's identifier; use [`NhsNumber::as_str`]
/// where the digits are genuinely needed (joins, encrypted outputs).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber([u8; 10]);

/// Why a string is not a valid NHS number. Carries no digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    #[error("is not 10 digits after removing spaces and hyphens")]
    NotTenDigits,
    #[error("fails the modulus 11 check digit")]
    CheckDigit,
    #[error("is ten identical digits")]
    IdenticalDigits,
    #[error("is in the 999 test range, which is never issued")]
    TestRange,
}

impl NhsNumber {
    /// Parses `943 476 5919`, `943-476-5919` or `9434765919`.
    pub fn parse(raw: &str) -> Result<Self, NhsNumberError> {
        let digits = digits_of(raw).ok_or(NhsNumberError::NotTenDigits)?;
        Self::from_digits(digits)
    }

    /// Validates ten digits (each 0–9).
    pub fn from_digits(d: [u8; 10]) -> Result<Self, NhsNumberError> {
        if d.iter().all(|&x| x == d[0]) {
            return Err(NhsNumberError::IdenticalDigits);
        }
        if check_digit(&d) != Some(d[9]) {
            return Err(NhsNumberError::CheckDigit);
        }
        if d[0] == 9 && d[1] == 9 && d[2] == 9 {
            return Err(NhsNumberError::TestRange);
        }
        Ok(Self(d))
    }

    /// Builds a valid number from nine leading digits by computing the check
    /// digit; `None` where the check would be 10 or the result is not issuable.
    pub fn complete(first9: [u8; 9]) -> Option<Self> {
        let mut d = [0u8; 10];
        d[..9].copy_from_slice(&first9);
        d[9] = check_digit(&d)?;
        Self::from_digits(d).ok()
    }

    pub fn digits(&self) -> [u8; 10] {
        self.0
    }

    /// The ten digits as a string: for joins and encrypted outputs only.
    pub fn as_string(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    /// Every valid number one substituted digit or one adjacent
    /// transposition away from `digits` (which itself may be invalid).
    pub fn typo_neighbours(digits: [u8; 10]) -> Vec<NhsNumber> {
        let mut out = Vec::new();
        for i in 0..10 {
            for v in 0..10u8 {
                if v == digits[i] {
                    continue;
                }
                let mut d = digits;
                d[i] = v;
                if let Ok(n) = Self::from_digits(d) {
                    out.push(n);
                }
            }
        }
        for i in 0..9 {
            if digits[i] == digits[i + 1] {
                continue;
            }
            let mut d = digits;
            d.swap(i, i + 1);
            if let Ok(n) = Self::from_digits(d) {
                out.push(n);
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Ten digits after removing spaces and hyphens, or `None`.
pub fn digits_of(raw: &str) -> Option<[u8; 10]> {
    let mut d = [0u8; 10];
    let mut n = 0;
    for c in raw.trim().chars() {
        match c {
            ' ' | '-' => continue,
            '0'..='9' => {
                if n == 10 {
                    return None;
                }
                d[n] = c as u8 - b'0';
                n += 1;
            }
            _ => return None,
        }
    }
    (n == 10).then_some(d)
}

/// The modulus-11 check digit of the first nine digits, or `None` when the
/// computation gives 10 (no valid number has those nine digits).
pub fn check_digit(d: &[u8; 10]) -> Option<u8> {
    let sum: u32 = d[..9]
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&x, w)| u32::from(x) * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c as u8),
    }
}

impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NhsNumber(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_documented_example_in_every_layout() {
        for raw in [
            "9434765919",
            "943 476 5919",
            "943-476-5919",
            " 943 476 5919 ",
        ] {
            assert_eq!(NhsNumber::parse(raw).unwrap().as_string(), "9434765919");
        }
    }

    #[test]
    fn refuses_bad_numbers_with_the_right_reason() {
        assert_eq!(
            NhsNumber::parse("9434765918"),
            Err(NhsNumberError::CheckDigit)
        );
        assert_eq!(
            NhsNumber::parse("943476591"),
            Err(NhsNumberError::NotTenDigits)
        );
        assert_eq!(
            NhsNumber::parse("94347659190"),
            Err(NhsNumberError::NotTenDigits)
        );
        assert_eq!(
            NhsNumber::parse("94347A5919"),
            Err(NhsNumberError::NotTenDigits)
        );
        assert_eq!(
            NhsNumber::parse("0000000000"),
            Err(NhsNumberError::IdenticalDigits)
        );
        // 999 000 0018 has a valid check digit but is a test number.
        let mut d = [9, 9, 9, 0, 0, 0, 0, 0, 1, 0];
        d[9] = check_digit(&d).unwrap();
        assert_eq!(NhsNumber::from_digits(d), Err(NhsNumberError::TestRange));
    }

    #[test]
    fn debug_never_shows_digits() {
        let n = NhsNumber::parse("9434765919").unwrap();
        assert!(!format!("{n:?}").contains("943"));
    }

    #[test]
    fn typo_neighbours_of_a_transposition_include_the_original() {
        let original = NhsNumber::parse("9434765919").unwrap();
        let mut typo = original.digits();
        typo.swap(3, 4);
        assert!(NhsNumber::from_digits(typo).is_err());
        assert!(NhsNumber::typo_neighbours(typo).contains(&original));
    }

    proptest! {
        /// Modulus 11 catches every single-digit substitution.
        #[test]
        fn every_single_digit_error_is_caught(first9 in proptest::array::uniform9(0u8..10), pos in 0usize..10, delta in 1u8..10) {
            if let Some(n) = NhsNumber::complete(first9) {
                let mut d = n.digits();
                d[pos] = (d[pos] + delta) % 10;
                prop_assert!(NhsNumber::from_digits(d).is_err());
            }
        }

        /// ... and every transposition of two different weighted digits
        /// (the weights differ by 1–8, never a multiple of 11).
        #[test]
        fn every_transposition_is_caught(first9 in proptest::array::uniform9(0u8..10), i in 0usize..9, j in 0usize..9) {
            if let Some(n) = NhsNumber::complete(first9) {
                let mut d = n.digits();
                prop_assume!(d[i] != d[j]);
                d.swap(i, j);
                prop_assert!(NhsNumber::from_digits(d).is_err());
            }
        }
    }
}
