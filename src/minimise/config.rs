//! The `[[outputs]]` entry of kind `records`, and field specs.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::config::{Problem, Site};
use crate::tables::FileFormat;

/// A generalising transform applied to one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Year,
    Month,
    District,
    Sector,
    Band5,
    Band10,
    Pseudonym,
}

impl Transform {
    pub const ALL: [Transform; 7] = [
        Self::Year,
        Self::Month,
        Self::District,
        Self::Sector,
        Self::Band5,
        Self::Band10,
        Self::Pseudonym,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Year => "year",
            Self::Month => "month",
            Self::District => "district",
            Self::Sector => "sector",
            Self::Band5 => "band5",
            Self::Band10 => "band10",
            Self::Pseudonym => "pseudonym",
        }
    }
}

/// `column[:transform]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub column: String,
    pub transform: Option<Transform>,
}

/// Columns that identify a person directly, and the transforms that make
/// each safe to release without `identifiable = true`.
const DIRECT_IDENTIFIERS: [(&str, &[Transform]); 8] = [
    ("nhs_number", &[Transform::Pseudonym]),
    ("forename", &[Transform::Pseudonym]),
    ("surname", &[Transform::Pseudonym]),
    ("given_name", &[Transform::Pseudonym]),
    ("family_name", &[Transform::Pseudonym]),
    ("address", &[Transform::Pseudonym]),
    (
        "postcode",
        &[Transform::District, Transform::Sector, Transform::Pseudonym],
    ),
    (
        "date_of_birth",
        &[Transform::Year, Transform::Month, Transform::Pseudonym],
    ),
];

impl FieldSpec {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (column, transform) = match raw.split_once(':') {
            Some((c, t)) => {
                let t = Transform::ALL
                    .into_iter()
                    .find(|x| x.name() == t.trim())
                    .ok_or_else(|| {
                        format!(
                            "`{t}` is not a transform; use one of: {}",
                            Transform::ALL.map(Transform::name).join(", ")
                        )
                    })?;
                (c.trim(), Some(t))
            }
            None => (raw.trim(), None),
        };
        if column.is_empty() {
            return Err("the column name is empty".into());
        }
        Ok(Self {
            column: column.to_string(),
            transform,
        })
    }

    /// The released column's name: `admission_date:month` ->
    /// `admission_date_month`, so a recipient sees what was generalised.
    pub fn output_name(&self) -> String {
        match self.transform {
            Some(t) => format!("{}_{}", self.column, t.name()),
            None => self.column.clone(),
        }
    }

    /// Whether releasing this field identifies a person directly.
    pub fn is_direct_identifier(&self, key_column: Option<&str>) -> bool {
        if self.transform == Some(Transform::Pseudonym) {
            return false;
        }
        if key_column == Some(self.column.as_str()) || self.column == "person_id" {
            return true;
        }
        let col = self.column.to_ascii_lowercase();
        DIRECT_IDENTIFIERS
            .iter()
            .any(|(name, safe)| *name == col && !self.transform.is_some_and(|t| safe.contains(&t)))
    }
}

impl fmt::Display for FieldSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transform {
            Some(t) => write!(f, "{}:{}", self.column, t.name()),
            None => f.write_str(&self.column),
        }
    }
}

/// `[[outputs]] kind = "records"`: minimised record-level rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsOutput {
    pub name: String,
    pub dataset: String,
    pub fields: Vec<String>,
    #[serde(default)]
    pub format: FileFormat,
}

impl RecordsOutput {
    /// The parsed fields (only call after `problems` found none).
    pub fn field_specs(&self) -> Vec<FieldSpec> {
        self.fields
            .iter()
            .filter_map(|f| FieldSpec::parse(f).ok())
            .collect()
    }

    pub fn problems(
        &self,
        file: &Path,
        key: &str,
        identifiable: bool,
        site: Option<&Site>,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.fields.is_empty() {
            problems.push(Problem::error(
                file,
                format!("{key}.fields"),
                "lists no fields",
                "list the fields the DSA allows, e.g. [\"admission_date:month\", \"region\"]",
            ));
        }
        let key_column = site
            .and_then(|s| s.datasets.get(&self.dataset))
            .map(|d| d.key.as_str());
        let mut seen = std::collections::BTreeSet::new();
        for (i, raw) in self.fields.iter().enumerate() {
            let k = format!("{key}.fields[{i}]");
            match FieldSpec::parse(raw) {
                Err(e) => problems.push(Problem::error(
                    file,
                    &k,
                    format!("`{raw}`: {e}"),
                    "write the field as column or column:transform",
                )),
                Ok(f) => {
                    if !seen.insert(f.output_name()) {
                        problems.push(Problem::error(
                            file,
                            &k,
                            format!("`{raw}` is listed twice"),
                            "list each field once",
                        ));
                    }
                    if !identifiable && f.is_direct_identifier(key_column) {
                        problems.push(Problem::error(
                            file,
                            &k,
                            format!("`{raw}` is a direct identifier and the agreement is not identifiable"),
                            "generalise it (postcode:district, date_of_birth:year, or column:pseudonym), or remove it; only a DSA that allows identifiers may set identifiable = true",
                        ));
                    }
                }
            }
        }
        problems
    }
}
