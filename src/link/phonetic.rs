//! A phonetic surname code for blocking: American Soundex (the US National
//! Archives' rules, as in Knuth, *The Art of Computer Programming* vol. 3),
//! written here because it is twenty lines and no crate in the tree has it.
//!
//! The first letter is kept; the others map to digits (B F P V → 1,
//! C G J K Q S X Z → 2, D T → 3, L → 4, M N → 5, R → 6); vowels and Y
//! separate two equal digits, H and W do not; the code is the first letter
//! and three digits, padded with zeros. Anything that is not an ASCII
//! letter (spaces, hyphens, apostrophes, accented letters) is skipped, so
//! `O'Neill` and `ONEILL` code alike. Typos that keep the sound (`Smyth`,
//! `Smith`; `Thomson`, `Thompson`) keep the code.
//!
//! The code is returned as a number (`letter × 1000 + digits`), so that the
//! blocking join is on a 32-bit integer rather than a string.

/// The Soundex code of `name` as `letter_index * 1000 + digits` (`S530`
/// is `18 * 1000 + 530`), or `None` when it has no ASCII letter.
pub fn soundex(name: &str) -> Option<i32> {
    let code = |c: u8| -> u8 {
        match c {
            b'B' | b'F' | b'P' | b'V' => 1,
            b'C' | b'G' | b'J' | b'K' | b'Q' | b'S' | b'X' | b'Z' => 2,
            b'D' | b'T' => 3,
            b'L' => 4,
            b'M' | b'N' => 5,
            b'R' => 6,
            // Vowels and Y: separators.
            b'A' | b'E' | b'I' | b'O' | b'U' | b'Y' => 0,
            // H and W: neither a digit nor a separator.
            _ => 7,
        }
    };
    let mut letters = name
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|b| b.to_ascii_uppercase());
    let first = letters.next()?;
    let mut digits = 0i32;
    let mut count = 0;
    let mut last = code(first);
    for c in letters {
        if count == 3 {
            break;
        }
        let d = code(c);
        match d {
            7 => continue,
            0 => last = 0,
            d if d == last => {}
            d => {
                digits = digits * 10 + i32::from(d);
                count += 1;
                last = d;
            }
        }
    }
    while count < 3 {
        digits *= 10;
        count += 1;
    }
    Some(i32::from(first - b'A') * 1000 + digits)
}

#[cfg(test)]
mod tests {
    use super::soundex;

    fn s(name: &str) -> String {
        let c = soundex(name).unwrap();
        format!("{}{:03}", char::from(b'A' + (c / 1000) as u8), c % 1000)
    }

    #[test]
    fn the_standard_examples() {
        // The National Archives' and Knuth's examples.
        assert_eq!(s("Robert"), "R163");
        assert_eq!(s("Rupert"), "R163");
        assert_eq!(s("Rubin"), "R150");
        assert_eq!(s("Ashcraft"), "A261");
        assert_eq!(s("Ashcroft"), "A261");
        assert_eq!(s("Tymczak"), "T522");
        assert_eq!(s("Pfister"), "P236");
        assert_eq!(s("Honeyman"), "H555");
        assert_eq!(s("Euler"), "E460");
        assert_eq!(s("Gauss"), "G200");
        assert_eq!(s("Lloyd"), "L300");
        assert_eq!(s("Lukasiewicz"), "L222");
        assert_eq!(s("Smith"), s("Smyth"));
        assert_eq!(s("O'Neill"), s("ONEILL"));
        assert_eq!(soundex("  -' "), None);
    }
}
