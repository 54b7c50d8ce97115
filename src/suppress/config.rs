//! Suppression profiles: the presets and custom `[suppression.NAME]` tables.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Action, Protected};
use crate::aggregate::CellLevel;
use crate::config::Problem;

/// A custom `[suppression.NAME]` table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProfileSpec {
    /// Inclusive range of true counts that become `*`, e.g. [1, 7].
    pub mask: [u64; 2],
    /// Rounding base; 1 means no rounding.
    #[serde(default = "one")]
    pub round_to: u64,
    /// Release the national (grand) total as computed.
    #[serde(default = "yes")]
    pub exempt_national: bool,
    /// Decimal places kept in percentages.
    #[serde(default)]
    pub percent_decimals: u32,
    /// Complementary suppression (needed where the rule does not round).
    #[serde(default)]
    pub secondary: bool,
    /// Interval audit of every suppressed cell.
    #[serde(default)]
    pub audit: bool,
}

fn one() -> u64 {
    1
}
fn yes() -> bool {
    true
}

impl ProfileSpec {
    pub fn problems(&self, file: &Path, key: &str) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.mask[0] > self.mask[1] {
            p.push(Problem::error(
                file,
                format!("{key}.mask"),
                "the range is reversed",
                "write it as [low, high], e.g. [1, 7]",
            ));
        }
        if self.round_to == 0 {
            p.push(Problem::error(
                file,
                format!("{key}.round_to"),
                "must be at least 1",
                "use 1 for no rounding, or 5",
            ));
        }
        // Secondary suppression and the audit come with the disclosure-control
        // issue; refusing them is honest, accepting them silently would not be.
        for (on, name) in [(self.secondary, "secondary"), (self.audit, "audit")] {
            if on {
                p.push(Problem::error(
                    file,
                    format!("{key}.{name}"),
                    format!("{name} is not supported by this version of dars"),
                    "remove the key, or use a rounding rule (round_to = 5) which needs no complementary suppression",
                ));
            }
        }
        p
    }
}

/// A resolved rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub mask_low: u64,
    pub mask_high: u64,
    pub round_to: u64,
    pub exempt_national: bool,
}

impl Profile {
    pub fn hes() -> Self {
        Self {
            name: "hes".into(),
            mask_low: 1,
            mask_high: 7,
            round_to: 5,
            exempt_national: true,
        }
    }

    pub fn csds() -> Self {
        Self {
            name: "csds".into(),
            mask_low: 0,
            mask_high: 4,
            round_to: 5,
            exempt_national: true,
        }
    }

    /// A preset by name, else a custom table of the agreement.
    pub fn resolve(name: &str, custom: &BTreeMap<String, ProfileSpec>) -> Option<Self> {
        if let Some(spec) = custom.get(name) {
            return Some(Self {
                name: name.to_string(),
                mask_low: spec.mask[0],
                mask_high: spec.mask[1],
                round_to: spec.round_to.max(1),
                exempt_national: spec.exempt_national,
            });
        }
        match name {
            "hes" => Some(Self::hes()),
            "csds" => Some(Self::csds()),
            _ => None,
        }
    }

    /// The released value of a true count, and what was done.
    pub fn apply(&self, count: u64, level: CellLevel) -> (Protected, Action) {
        if level == CellLevel::GrandTotal && self.exempt_national {
            return (Protected::Count(count), Action::Exempt);
        }
        if (self.mask_low..=self.mask_high).contains(&count) {
            return (Protected::Suppressed, Action::Primary);
        }
        let rounded = round_half_up(count, self.round_to);
        if rounded == count {
            (Protected::Count(count), Action::Kept)
        } else {
            (Protected::Count(rounded), Action::Rounded)
        }
    }

    /// Why a cell got its action, for reports.
    pub fn reason(&self, action: Action) -> String {
        match action {
            Action::Kept => format!("already a multiple of {}", self.round_to),
            Action::Rounded => format!("rounded to the nearest {}", self.round_to),
            Action::Primary => format!("true count in {}–{}", self.mask_low, self.mask_high),
            Action::Exempt => "national total, released as computed".into(),
        }
    }
}

fn round_half_up(n: u64, base: u64) -> u64 {
    (n + base / 2) / base * base
}
