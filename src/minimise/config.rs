//! The `[[outputs]]` entry of kind `records`, and field specs.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::identifiers::{is_declared, kind_by_name, IdentifierKind, Rule};
use crate::config_file::Problem;
use crate::site::Site;
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

    /// Whether releasing this field identifies a person directly, by name
    /// alone (no site declarations).
    pub fn is_direct_identifier(&self, key_column: Option<&str>) -> bool {
        self.identifier_by_name(key_column, &[]).is_some()
    }

    /// The kind of direct identifier this field would release, and the rule
    /// that says so, judged by the column's name, the dataset's key and the
    /// site's declared `identifiers`: `None` when the name says nothing or
    /// the transform generalises it. Content is judged at run time
    /// ([`super::identifiers::kind_by_content`]).
    pub fn identifier_by_name(
        &self,
        key_column: Option<&str>,
        declared: &[String],
    ) -> Option<(IdentifierKind, Rule)> {
        let safe = |kind: IdentifierKind| {
            self.transform
                .is_some_and(|t| kind.safe_transforms().contains(&t))
        };
        if key_column == Some(self.column.as_str()) || self.column == "person_id" {
            return (!safe(IdentifierKind::PersonKey))
                .then_some((IdentifierKind::PersonKey, Rule::Key));
        }
        let by_name = kind_by_name(&self.column);
        if let Some(kind) = by_name {
            if !safe(kind) {
                return Some((kind, Rule::Name));
            }
        }
        if is_declared(&self.column, declared) {
            let kind = by_name.unwrap_or(IdentifierKind::Declared);
            if !safe(kind) {
                return Some((kind, Rule::Declared));
            }
        }
        None
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
pub struct RecordsOutput {
    pub name: String,
    pub dataset: String,
    pub fields: Vec<String>,
    #[serde(default)]
    pub format: FileFormat,
    /// Only rows whose date column falls inside it are released.
    #[serde(default)]
    pub period: Option<crate::period::Period>,
    /// With `schedule = "monthly"`: each release only the rows of the
    /// period new since the agreement's last release.
    #[serde(default)]
    pub incremental: bool,
    /// What the agreement and the site say about identifiers, set by
    /// [`RecordsOutput::bind`] when the agreement is loaded. The default
    /// (an output that was never bound) allows none.
    #[serde(skip)]
    pub identifiers: IdentifierPolicy,
}

/// Whether an output may release direct identifiers, and which columns of
/// its dataset the site declares as identifiers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentifierPolicy {
    /// The agreement's `identifiable = true`.
    pub identifiable: bool,
    /// The site's `datasets.NAME.identifiers`.
    pub declared: Vec<String>,
}

impl RecordsOutput {
    /// Records what the agreement and the site say about identifiers, for
    /// the checks made at run time on the values.
    pub fn bind(&mut self, identifiable: bool, site: Option<&Site>) {
        self.identifiers = IdentifierPolicy {
            identifiable,
            declared: site
                .and_then(|s| s.datasets.get(&self.dataset))
                .map(|d| d.identifiers.clone())
                .unwrap_or_default(),
        };
    }

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
        let dataset = site.and_then(|s| s.datasets.get(&self.dataset));
        let key_column = dataset.map(|d| d.key.as_str());
        let declared = dataset.map(|d| d.identifiers.as_slice()).unwrap_or(&[]);
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
                    if identifiable {
                        continue;
                    }
                    if let Some((kind, rule)) = f.identifier_by_name(key_column, declared) {
                        problems.push(Problem::error(
                            file,
                            &k,
                            format!(
                                "`{raw}` would release {} ({rule}), and the agreement is not identifiable",
                                kind.describe()
                            ),
                            kind.fix(&f.column),
                        ));
                    }
                }
            }
        }
        problems
    }
}

/// Problems with an aggregate's `group_by` that only the site config can
/// show: a dimension the site declares as a direct identifier, counted
/// without a transform that generalises it. (Names and the dataset key are
/// checked with the rest of the aggregate, whatever the site says.)
pub fn declared_dimension_problems(
    file: &Path,
    key: &str,
    group_by: &[String],
    dataset: &str,
    site: Option<&Site>,
) -> Vec<Problem> {
    let declared = site
        .and_then(|s| s.datasets.get(dataset))
        .map(|d| d.identifiers.as_slice())
        .unwrap_or(&[]);
    let mut problems = Vec::new();
    for (i, raw) in group_by.iter().enumerate() {
        let Ok(f) = FieldSpec::parse(raw) else {
            continue;
        };
        if f.identifier_by_name(None, &[]).is_some() {
            continue;
        }
        if let Some((kind, rule)) = f.identifier_by_name(None, declared) {
            problems.push(Problem::error(
                file,
                format!("{key}.group_by[{i}]"),
                format!("`{raw}` would count people by {} ({rule})", kind.describe()),
                "group by a generalised column (region, admission_date:year, age:band10)",
            ));
        }
    }
    problems
}
