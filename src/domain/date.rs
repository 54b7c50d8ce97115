//! Dates as applicants write them: `YYYY-MM-DD`, `DD/MM/YYYY` or `YYYYMMDD`.
//! A well-formed but impossible date (31/02/1980) is an error, never a
//! silently shifted day.

use chrono::NaiveDate;

/// Why a date could not be read. Carries no part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("is not a date in YYYY-MM-DD, DD/MM/YYYY or YYYYMMDD")]
    Format,
    #[error("is not a day of the calendar")]
    Impossible,
}

pub fn parse_date(raw: &str) -> Result<NaiveDate, DateError> {
    let s = raw.trim();
    let num = |t: &str| -> Result<u32, DateError> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DateError::Format);
        }
        t.parse().map_err(|_| DateError::Format)
    };
    let (y, m, d) = if s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' {
        (num(&s[0..4])?, num(&s[5..7])?, num(&s[8..10])?)
    } else if s.len() == 10 && s.as_bytes()[2] == b'/' && s.as_bytes()[5] == b'/' {
        (num(&s[6..10])?, num(&s[3..5])?, num(&s[0..2])?)
    } else if s.len() == 8 && s.is_ascii() {
        (num(&s[0..4])?, num(&s[4..6])?, num(&s[6..8])?)
    } else {
        return Err(DateError::Format);
    };
    NaiveDate::from_ymd_opt(y as i32, m, d).ok_or(DateError::Impossible)
}

/// Days since 1970-01-01, the physical value of a polars/Arrow `Date`.
pub fn to_epoch_days(d: NaiveDate) -> i32 {
    // 719_163 is the day number of 1970-01-01 counted from 0001-01-01 (CE).
    chrono::Datelike::num_days_from_ce(&d) - 719_163
}

pub fn from_epoch_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days + 719_163)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_formats_one_day() {
        let want = NaiveDate::from_ymd_opt(1980, 2, 29).unwrap();
        for raw in ["1980-02-29", "29/02/1980", "19800229", " 1980-02-29 "] {
            assert_eq!(parse_date(raw), Ok(want), "{raw}");
        }
    }

    #[test]
    fn impossible_and_garbled() {
        assert_eq!(parse_date("31/02/1980"), Err(DateError::Impossible));
        assert_eq!(parse_date("1981-02-29"), Err(DateError::Impossible));
        assert_eq!(parse_date("1980/02/01"), Err(DateError::Format));
        assert_eq!(parse_date("yesterday"), Err(DateError::Format));
        assert_eq!(parse_date(""), Err(DateError::Format));
    }

    #[test]
    fn epoch_days_round_trip() {
        let d = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert_eq!(to_epoch_days(d), 0);
        let d = NaiveDate::from_ymd_opt(2000, 3, 1).unwrap();
        assert_eq!(from_epoch_days(to_epoch_days(d)), Some(d));
    }
}
