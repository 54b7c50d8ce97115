//! The `[[outputs]]` entry of kind `aggregate`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config_file::Problem;
use crate::minimise::FieldSpec;
use crate::suppress::{Profile, ProfileSpec};
use crate::tables::FileFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CountKind {
    /// Distinct people (the default: what disclosure rules are written for).
    #[default]
    Persons,
    Records,
}

impl CountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Persons => "persons",
            Self::Records => "records",
        }
    }
}

/// `percent_of = "sex"` or `percent_of = ["region", "sex"]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// `[[outputs]] kind = "aggregate"`.
#[derive(Debug, Clone, Deserialize)]
pub struct AggregateOutput {
    pub name: String,
    pub dataset: String,
    /// Dimensions, each `column[:transform]` like a records field.
    pub group_by: Vec<String>,
    #[serde(default)]
    pub count: CountKind,
    #[serde(default)]
    pub totals: bool,
    /// A preset (`hes`, `csds`) or the NAME of a `[suppression.NAME]` table.
    pub suppression: String,
    #[serde(default = "csv")]
    pub format: FileFormat,
    /// Derived percentages: each cell as a percentage of its total over
    /// these group_by dimensions (which needs `totals = true`).
    #[serde(default)]
    pub percent_of: Option<OneOrMany>,
    /// Only rows whose date column falls inside it are counted.
    #[serde(default)]
    pub period: Option<crate::period::Period>,
    /// With `schedule = "monthly"`: each release counts only the rows of
    /// the period new since the agreement's last release.
    #[serde(default)]
    pub incremental: bool,
}

fn csv() -> FileFormat {
    FileFormat::Csv
}

impl AggregateOutput {
    pub fn field_specs(&self) -> Vec<FieldSpec> {
        self.group_by
            .iter()
            .filter_map(|f| FieldSpec::parse(f).ok())
            .collect()
    }

    /// The dimension names (output names) of `percent_of`, each given as
    /// written in `group_by` or as its output name; the unknown one on error.
    pub fn percent_dims(&self, dims: &[String]) -> Result<Vec<String>, String> {
        let Some(p) = &self.percent_of else {
            return Ok(Vec::new());
        };
        p.names()
            .into_iter()
            .map(|name| {
                self.group_by
                    .iter()
                    .zip(dims)
                    .find(|(raw, out)| **raw == name || **out == name)
                    .map(|(_, out)| out.clone())
                    .ok_or(name)
            })
            .collect()
    }

    pub fn problems(
        &self,
        file: &Path,
        key: &str,
        custom: &BTreeMap<String, ProfileSpec>,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.group_by.is_empty() {
            problems.push(Problem::error(
                file,
                format!("{key}.group_by"),
                "lists no dimensions",
                "list at least one column to count by, e.g. [\"region\"]",
            ));
        }
        for (i, raw) in self.group_by.iter().enumerate() {
            let k = format!("{key}.group_by[{i}]");
            match FieldSpec::parse(raw) {
                Err(e) => problems.push(Problem::error(
                    file,
                    &k,
                    format!("`{raw}`: {e}"),
                    "write it as column or column:transform",
                )),
                Ok(f)
                    if f.is_direct_identifier(None)
                        || f.transform == Some(crate::minimise::Transform::Pseudonym) =>
                {
                    problems.push(Problem::error(
                        file,
                        &k,
                        format!("`{raw}` would count people one by one"),
                        "group by a generalised column (region, admission_date:year, age:band10)",
                    ))
                }
                Ok(_) => {}
            }
        }
        if self.percent_of.is_some() {
            let dims: Vec<String> = self
                .field_specs()
                .iter()
                .map(FieldSpec::output_name)
                .collect();
            if let Err(name) = self.percent_dims(&dims) {
                problems.push(Problem::error(
                    file,
                    format!("{key}.percent_of"),
                    format!("`{name}` is not a group_by dimension, so the denominator is not in the table"),
                    format!("use one of: {}", self.group_by.join(", ")),
                ));
            } else if !self.totals {
                problems.push(Problem::error(
                    file,
                    format!("{key}.percent_of"),
                    "percentages divide by totals, but totals = false",
                    "set totals = true, or remove percent_of",
                ));
            }
        }
        if Profile::resolve(&self.suppression, custom).is_none() {
            problems.push(Problem::error(
                file,
                format!("{key}.suppression"),
                format!(
                    "`{}` is neither a preset nor a [suppression.{}] table",
                    self.suppression, self.suppression
                ),
                format!(
                    "use \"hes\" or \"csds\"{}",
                    if custom.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", or one of: {}",
                            custom.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    }
                ),
            ));
        }
        problems
    }
}
