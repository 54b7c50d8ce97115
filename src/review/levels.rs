//! What the page shows for an agreement level: a category (which sets the
//! colour and the symbol) and words, so that no level is told by colour
//! alone. Level codes are those of `review_queue.csv`; a code this table
//! does not know is shown as written, in the neutral `other` category, so
//! the linkage stage can add levels without the page hiding them.

use serde::Serialize;

/// How a level bears on the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The values are the same.
    Agree,
    /// Close but not the same: a typo, a swap, a shared district.
    Partial,
    /// The values differ.
    Disagree,
    /// Nothing to compare: blank on one side, not known, not used.
    Missing,
    /// A level this page does not know.
    Other,
}

/// A level as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub code: String,
    pub category: Category,
    pub label: String,
}

pub fn show(code: &str) -> Shown {
    use Category as C;
    let (category, label): (Category, &str) = match code {
        "exact" => (C::Agree, "exact"),
        "agree" => (C::Agree, "agrees"),
        "full" => (C::Agree, "full postcode"),
        "one_edit" => (C::Partial, "typo: one digit differs"),
        "transposition" => (C::Partial, "typo: two digits swapped"),
        "day_month_swapped" => (C::Partial, "day and month swapped"),
        "one_component" => (C::Partial, "one part differs"),
        "year_only" => (C::Partial, "same year only"),
        "sector" => (C::Partial, "same sector"),
        "district" => (C::Partial, "same district"),
        "area" => (C::Partial, "same area"),
        "swapped" => (C::Partial, "forename and surname swapped"),
        "token_overlap" => (C::Partial, "shares a part of the name"),
        "disagree" => (C::Disagree, "disagrees"),
        "missing" | "" => (C::Missing, "missing"),
        "not_known" => (C::Missing, "not known"),
        "not_used" => (C::Missing, "not used"),
        other => {
            if let Some(t) = other.strip_prefix("jaro_winkler_") {
                return Shown {
                    code: code.to_string(),
                    category: C::Partial,
                    label: format!("similar (Jaro-Winkler ≥ {t})"),
                };
            }
            if other.contains("typo") || other.contains("swap") {
                (C::Partial, other)
            } else {
                (C::Other, other)
            }
        }
    };
    Shown {
        code: code.to_string(),
        category,
        label: label.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_has_words_and_a_category() {
        for (code, cat) in [
            ("exact", Category::Agree),
            ("one_edit", Category::Partial),
            ("day_month_swapped", Category::Partial),
            ("district", Category::Partial),
            ("jaro_winkler_0.92", Category::Partial),
            ("disagree", Category::Disagree),
            ("missing", Category::Missing),
            ("not_used", Category::Missing),
        ] {
            let s = show(code);
            assert_eq!(s.category, cat, "{code}");
            assert!(!s.label.is_empty());
        }
        assert!(show("jaro_winkler_0.88").label.contains("0.88"));
    }

    #[test]
    fn an_unknown_level_is_shown_as_written() {
        let s = show("soundex_match");
        assert_eq!(s.category, Category::Other);
        assert_eq!(s.label, "soundex match");
        assert_eq!(s.code, "soundex_match");
    }
}
