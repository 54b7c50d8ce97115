//! The agreement's `[objections]` section: which objection types a release
//! applies, and which it is exempt from and on what legal basis.

use std::path::Path;

use serde::Deserialize;

use crate::config_file::Problem;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ObjectionType {
    Type1,
    Ndoo,
}

impl ObjectionType {
    pub fn code(self) -> &'static str {
        match self {
            Self::Type1 => "type1",
            Self::Ndoo => "ndoo",
        }
    }
}

impl ObjectionType {
    pub const ALL: [ObjectionType; 2] = [Self::Type1, Self::Ndoo];

    /// "type 1 objections", for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Type1 => "type 1 objections",
            Self::Ndoo => "the national data opt-out",
        }
    }
}

/// `[objections]`: which objections the release applies. Type 1 objections
/// and the national data opt-out apply to every release (issue #12): a type
/// the agreement does not apply must be listed in `exempt`, with the legal
/// basis of the exemption in `exemption` (section 251 support with its CAG
/// reference, a COPI notice, …), which the manifest and the run summary
/// carry. The national data opt-out does not apply to consented data, so an
/// agreement whose legal basis is consent need not exempt it.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct ObjectionsSection {
    #[serde(default)]
    pub apply: Vec<ObjectionType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempt: Vec<ObjectionType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
}

impl ObjectionsSection {
    /// Every problem with what the section applies and exempts, where
    /// `consent` is whether the agreement's legal basis is consent.
    /// `present` is whether the file has the section at all.
    pub fn problems(&self, file: &Path, consent: bool, present: bool) -> Vec<Problem> {
        let mut problems = Vec::new();
        for t in ObjectionType::ALL {
            let applied = self.apply.contains(&t);
            let exempt = self.exempt.contains(&t);
            if applied && exempt {
                problems.push(Problem::error(
                    file,
                    "objections.exempt",
                    format!("lists \"{}\", which `apply` lists too", t.code()),
                    "list each objection type in `apply` or in `exempt`, not both",
                ));
            }
            if applied || exempt || (t == ObjectionType::Ndoo && consent) {
                continue;
            }
            let (key, what) = if present {
                (
                    "objections.apply",
                    format!(
                        "does not list \"{}\", and `exempt` does not either",
                        t.code()
                    ),
                )
            } else {
                ("objections", "missing section".to_string())
            };
            problems.push(Problem::error(
                file,
                key,
                format!(
                    "{what}: {} apply to every release unless the agreement states an exemption",
                    t.describe()
                ),
                format!(
                    "add \"{}\" to [objections] apply; or, only where the DSA grants an exemption, add it to `exempt` and give its legal basis in `exemption` (e.g. \"section 251 support, CAG reference 21/CAG/0000\")",
                    t.code()
                ),
            ));
        }
        let reason = self.exemption.as_deref().map(str::trim).unwrap_or("");
        if !self.exempt.is_empty() && reason.is_empty() {
            problems.push(Problem::error(
                file,
                "objections.exemption",
                "is missing: `exempt` lists objection types without the legal basis of the exemption",
                "state the legal basis, e.g. exemption = \"section 251 support, CAG reference 21/CAG/0000\"; it goes into the manifest",
            ));
        }
        if self.exempt.is_empty() && !reason.is_empty() {
            problems.push(Problem::error(
                file,
                "objections.exemption",
                "states an exemption, but `exempt` lists no objection type",
                "list the exempted types in `exempt`, or remove `exemption`",
            ));
        }
        problems
    }
}
