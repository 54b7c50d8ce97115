//! Suppression profiles: the presets, custom `[suppression.NAME]` tables of
//! an agreement, and profile files for `dars suppress --profile FILE`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{Action, Protected};
use crate::config_file::{ConfigError, Problem};
use crate::counts::CellLevel;

/// How a true zero is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Zeros {
    /// A true zero is released as 0, even when the mask range starts at 0.
    Show,
    /// A true zero becomes `*`, even when the mask range starts above 0.
    Suppress,
}

/// A custom `[suppression.NAME]` table, or the whole of a profile file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ProfileSpec {
    /// Inclusive range of true counts that become `*`, e.g. [1, 7].
    pub mask: [u64; 2],
    /// Rounding base; 1 means no rounding.
    #[serde(default = "one")]
    pub round_to: u64,
    /// Release the national (grand) total as computed.
    #[serde(default = "yes")]
    pub exempt_national: bool,
    /// `show` or `suppress`; by default zeros follow the mask range
    /// (suppressed when it starts at 0).
    #[serde(default)]
    pub zeros: Option<Zeros>,
    /// Decimal places kept in percentages.
    #[serde(default = "one_decimal")]
    pub percent_decimals: u32,
    /// Complementary suppression; by default on when the rule does not
    /// round (`round_to = 1`), because then the margins give cells away.
    #[serde(default)]
    pub secondary: Option<bool>,
    /// The interval audit of every suppressed cell (on by default).
    #[serde(default)]
    pub audit: Option<bool>,
    /// How wide (largest minus smallest value) the interval a reader can
    /// deduce for a suppressed cell must stay; 1 by default: never exact.
    #[serde(default)]
    pub protection: Option<u64>,
}

fn one() -> u64 {
    1
}
fn one_decimal() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Percentages are rounded in integers; more places would overflow.
pub const MAX_PERCENT_DECIMALS: u32 = 6;

impl ProfileSpec {
    pub fn problems(&self, file: &Path, key: &str) -> Vec<Problem> {
        let mut p = Vec::new();
        let at = |k: &str| {
            if key.is_empty() {
                k.to_string()
            } else {
                format!("{key}.{k}")
            }
        };
        if self.mask[0] > self.mask[1] {
            p.push(Problem::error(
                file,
                at("mask"),
                "the range is reversed",
                "write it as [low, high], e.g. [1, 7]",
            ));
        }
        if self.round_to == 0 {
            p.push(Problem::error(
                file,
                at("round_to"),
                "must be at least 1",
                "use 1 for no rounding, or 5",
            ));
        }
        if self.percent_decimals > MAX_PERCENT_DECIMALS {
            p.push(Problem::error(
                file,
                at("percent_decimals"),
                format!("{} decimal places", self.percent_decimals),
                format!("use 0 to {MAX_PERCENT_DECIMALS}"),
            ));
        }
        if self.protection == Some(0) {
            p.push(Problem::error(
                file,
                at("protection"),
                "0 would let a reader compute a suppressed cell exactly",
                "use 1 (never exact) or more",
            ));
        }
        if self.mask[0] > 1 && self.mask[0] <= self.mask[1] {
            // With mask = [2, 7] and round_to = 5 a true 1 is published
            // as 10: released, and set apart from every masked count.
            let shown = Profile::from_spec("check", self).round(1);
            p.push(Problem::warning(
                file,
                at("mask"),
                if self.mask[0] == 2 {
                    format!(
                        "starts at 2, so a true count of 1, the smallest of all, is not masked but published (as {shown})"
                    )
                } else {
                    format!(
                        "starts at {}, so true counts of 1 to {}, the smallest of all, are not masked but published (a true 1 as {shown})",
                        self.mask[0],
                        self.mask[0] - 1
                    )
                },
                "start the mask at 1 (or at 0 to hide zeros too), e.g. [1, 7]",
            ));
        }
        {
            let protection = self.protection.unwrap_or(1);
            let rule = Profile::from_spec("check", self);
            let (low, high) = rule.masked_hull();
            let key = if self.protection.is_some() {
                "protection"
            } else {
                "mask"
            };
            if protection > high.saturating_sub(low)
                && !rule.secondary
                && self.mask[0] <= self.mask[1]
            {
                p.push(Problem::warning(
                    file,
                    at(key),
                    format!(
                        "protection {protection} is wider than the mask ({low}–{high} leaves a reader at most {} values apart), so every `*` fails the audit",
                        high.saturating_sub(low)
                    ),
                    "set secondary = true, widen the mask, or lower protection",
                ));
            }
        }
        if self.audit == Some(false) && self.round_to == 1 && self.secondary != Some(true) {
            p.push(Problem::warning(
                file,
                at("audit"),
                "neither rounding, secondary suppression nor the audit protects suppressed cells from the margins",
                "set secondary = true, or leave the audit on",
            ));
        }
        p
    }

    /// Reads a profile file: the keys of a `[suppression.NAME]` table at
    /// the top level. The profile is named after the file.
    pub fn load(path: &Path) -> Result<Profile, ConfigError> {
        let err = |key: &str, message: String, fix: &str| ConfigError {
            problems: vec![Problem::error(path, key, message, fix)],
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            err(
                "-",
                format!("cannot read the profile: {e}"),
                "pass hes, csds or the path of a profile TOML file",
            )
        })?;
        // The first unknown key, or else the first error: the keys are read
        // in order, so whichever comes first in the file.
        let mut unknown = None;
        let parsed: Result<ProfileSpec, toml::de::Error> =
            serde_ignored::deserialize(toml::Deserializer::new(&text), |p| {
                unknown.get_or_insert_with(|| p.to_string());
            });
        let parsed = match unknown {
            Some(key) => Err(<toml::de::Error as serde::de::Error>::unknown_field(
                &key,
                crate::config_file::fields_of::<ProfileSpec>(),
            )),
            None => parsed,
        };
        let spec = parsed.map_err(|e| {
            err(
                "-",
                e.message().to_string(),
                "a profile file holds: mask, round_to, exempt_national, zeros, percent_decimals, secondary, audit, protection",
            )
        })?;
        let problems = spec.problems(path, "");
        if problems
            .iter()
            .any(|p| p.severity == crate::config_file::Severity::Error)
        {
            return Err(ConfigError { problems });
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "custom".into());
        Ok(Profile::from_spec(&name, &spec))
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
    /// Whether a true zero becomes `*`.
    pub suppress_zeros: bool,
    pub percent_decimals: u32,
    /// Complementary suppression.
    pub secondary: bool,
    /// The interval audit.
    pub audit: bool,
    /// The least width of a suppressed cell's audit interval.
    pub protection: u64,
}

impl Profile {
    /// HES, ECDS, SHMI and DARS tabulations: 1–7 → `*`, the rest rounded to
    /// 5, the national total as computed.
    pub fn hes() -> Self {
        Self {
            name: "hes".into(),
            mask_low: 1,
            mask_high: 7,
            round_to: 5,
            exempt_national: true,
            suppress_zeros: false,
            percent_decimals: 1,
            secondary: false,
            audit: true,
            protection: 1,
        }
    }

    /// CSDS: 0–4 → `*`, every count rounded to 5, whole percentages.
    pub fn csds() -> Self {
        Self {
            name: "csds".into(),
            mask_low: 0,
            mask_high: 4,
            round_to: 5,
            exempt_national: true,
            suppress_zeros: true,
            percent_decimals: 0,
            secondary: false,
            audit: true,
            protection: 1,
        }
    }

    pub fn from_spec(name: &str, spec: &ProfileSpec) -> Self {
        let round_to = spec.round_to.max(1);
        Self {
            name: name.to_string(),
            mask_low: spec.mask[0],
            mask_high: spec.mask[1].max(spec.mask[0]),
            round_to,
            exempt_national: spec.exempt_national,
            suppress_zeros: match spec.zeros {
                Some(Zeros::Show) => false,
                Some(Zeros::Suppress) => true,
                None => spec.mask[0] == 0,
            },
            percent_decimals: spec.percent_decimals.min(MAX_PERCENT_DECIMALS),
            secondary: spec.secondary.unwrap_or(round_to == 1),
            audit: spec.audit.unwrap_or(true),
            protection: spec.protection.unwrap_or(1).max(1),
        }
    }

    /// A preset by name, else a custom table of the agreement.
    pub fn resolve(name: &str, custom: &BTreeMap<String, ProfileSpec>) -> Option<Self> {
        if let Some(spec) = custom.get(name) {
            return Some(Self::from_spec(name, spec));
        }
        match name {
            "hes" => Some(Self::hes()),
            "csds" => Some(Self::csds()),
            _ => None,
        }
    }

    /// Whether the rule masks a true count (primary suppression).
    pub fn masks(&self, count: u64) -> bool {
        if count == 0 {
            self.suppress_zeros
        } else {
            (self.mask_low..=self.mask_high).contains(&count)
        }
    }

    /// Whether the rule releases this cell as computed.
    pub fn exempts(&self, level: CellLevel) -> bool {
        level == CellLevel::GrandTotal && self.exempt_national
    }

    /// The released value of a true count, and what was done, before any
    /// secondary suppression.
    pub fn apply(&self, count: u64, level: CellLevel) -> (Protected, Action) {
        if self.exempts(level) {
            return (Protected::Count(count), Action::Exempt);
        }
        if self.masks(count) {
            return (Protected::Suppressed, Action::Primary);
        }
        let rounded = self.round(count);
        if rounded == count {
            (Protected::Count(count), Action::Kept)
        } else {
            (Protected::Count(rounded), Action::Rounded)
        }
    }

    /// The released value of a published (not masked, not exempt) count:
    /// rounded half up to the base, but never onto 0 (a released 0 is a
    /// true zero) and never into the mask range (a released number is
    /// never one the rule hides): such values go to the next multiple out.
    pub fn round(&self, count: u64) -> u64 {
        let b = self.round_to;
        if count == 0 || b == 1 {
            return count;
        }
        let mut r = round_half_up(count, b);
        let above = (self.mask_high / b + 1) * b;
        if r == 0 {
            r = b;
        }
        if self.masks(r) {
            r = above;
        }
        r
    }

    /// Every true count a reader knowing this rule could see published as
    /// `released` (not exempt), as a hull `(low, high)`. `None` if no count
    /// could be published so.
    pub fn published_range(&self, released: u64) -> Option<(u64, u64)> {
        let b = self.round_to;
        let from = if released <= self.mask_high.saturating_add(2 * b) {
            0
        } else {
            released - b
        };
        let mut range: Option<(u64, u64)> = None;
        for v in from..=released.saturating_add(b) {
            if !self.masks(v) && self.round(v) == released {
                range = Some(range.map_or((v, v), |(l, _)| (l, v)));
            }
        }
        range
    }

    /// The smallest and largest true count the rule masks (the hull: with
    /// `zeros = "suppress"` and a mask above 1 it includes the gap).
    pub fn masked_hull(&self) -> (u64, u64) {
        let low = if self.suppress_zeros {
            0
        } else {
            self.mask_low.max(1)
        };
        let high = if self.mask_high == 0 && !self.suppress_zeros {
            0
        } else {
            self.mask_high
        };
        (low.min(high), high)
    }

    /// Why a cell got its action, for reports.
    pub fn reason(&self, action: Action) -> String {
        match action {
            Action::Kept if self.round_to == 1 => "released as computed".into(),
            Action::Kept => format!("already a multiple of {}", self.round_to),
            Action::Rounded => format!("rounded to the nearest {}", self.round_to),
            Action::Primary => {
                let range = format!("{}–{}", self.mask_low, self.mask_high);
                match (self.suppress_zeros, self.mask_low) {
                    (true, 0) => format!("true count in {range}"),
                    (true, _) => format!("true count 0 or in {range}"),
                    (false, 0) => format!("true count in 1–{}", self.mask_high),
                    (false, _) => format!("true count in {range}"),
                }
            }
            Action::Secondary => {
                "complementary: hides a suppressed cell from the margins at the least cost".into()
            }
            Action::Exempt => "national total, released as computed".into(),
        }
    }

    /// One line describing the rule, for reports.
    pub fn describe(&self) -> String {
        let (low, high) = self.masked_hull();
        let mut s = format!("`{}`: {low}–{high} → *", self.name);
        if !self.suppress_zeros && low <= 1 {
            s.push_str(" (zeros shown)");
        }
        if self.round_to > 1 {
            s.push_str(&format!(", rounded to {}", self.round_to));
        }
        if self.exempt_national {
            s.push_str(", national total as computed");
        }
        s.push_str(&format!(
            ", percentages to {} decimals, secondary {}, audit {} (protection {})",
            self.percent_decimals,
            if self.secondary { "on" } else { "off" },
            if self.audit { "on" } else { "off" },
            self.protection
        ));
        s
    }
}

pub(crate) fn round_half_up(n: u64, base: u64) -> u64 {
    (n + base / 2) / base * base
}
