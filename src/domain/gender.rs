//! Gender codes: 1 male, 2 female; 9 (indeterminate), 0 and X (not known)
//! and anything blank mean "not known", which neither agrees nor disagrees
//! when two records are compared.

/// A person's recorded gender as the NHS codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    Male,
    Female,
    NotKnown,
}

/// How two recorded genders compare for linkage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenderAgreement {
    Agree,
    NotKnown,
    Disagree,
}

impl Gender {
    /// Parses a code or a word. `Some(NotKnown)` for the codes that mean not
    /// known (and for a blank); `None` for a value nobody uses.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_uppercase().as_str() {
            "1" | "M" | "MALE" | "MAN" => Some(Self::Male),
            "2" | "F" | "FEMALE" | "WOMAN" => Some(Self::Female),
            "" | "0" | "9" | "X" | "U" | "UNKNOWN" | "NOT KNOWN" | "NOT STATED"
            | "INDETERMINATE" => Some(Self::NotKnown),
            _ => None,
        }
    }

    /// The DESIGN code: "1", "2" or "9".
    pub fn code(self) -> &'static str {
        match self {
            Self::Male => "1",
            Self::Female => "2",
            Self::NotKnown => "9",
        }
    }

    pub fn compare(self, other: Self) -> GenderAgreement {
        match (self, other) {
            (Self::NotKnown, _) | (_, Self::NotKnown) => GenderAgreement::NotKnown,
            (a, b) if a == b => GenderAgreement::Agree,
            _ => GenderAgreement::Disagree,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_words() {
        assert_eq!(Gender::parse("1"), Some(Gender::Male));
        assert_eq!(Gender::parse(" female "), Some(Gender::Female));
        assert_eq!(Gender::parse("x"), Some(Gender::NotKnown));
        assert_eq!(Gender::parse("9"), Some(Gender::NotKnown));
        assert!(Gender::parse("7").is_none());
    }

    #[test]
    fn not_known_is_neutral() {
        assert_eq!(
            Gender::Male.compare(Gender::NotKnown),
            GenderAgreement::NotKnown
        );
        assert_eq!(
            Gender::Male.compare(Gender::Female),
            GenderAgreement::Disagree
        );
        assert_eq!(
            Gender::Female.compare(Gender::Female),
            GenderAgreement::Agree
        );
    }
}
