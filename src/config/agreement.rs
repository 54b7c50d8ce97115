//! An agreement file (`config/agreements/*.toml`): what one signed Data
//! Sharing Agreement allows. The sections are owned by the stages that use
//! them; this file assembles them, resolves paths and checks the whole.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer};

use crate::aggregate::AggregateOutput;
use crate::config_file::{
    read_toml, resolve, section, tagged, toml_date, ConfigError, Problem, Severity,
};
use crate::ingest::CohortField;
use crate::link::CohortSection;
use crate::minimise::RecordsOutput;
use crate::objections::{ObjectionType, ObjectionsSection};
use crate::push::ReleaseConfig;
use crate::site::Site;
use crate::suppress::ProfileSpec;

/// A DARS agreement reference, `DARS-NIC-xxxxxx-xxxxx-xx`: six digits, five
/// letters or digits, two digits. Invalid references cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgreementRef(String);

impl AgreementRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('-').collect();
        let ok = parts.len() == 5
            && parts[0] == "DARS"
            && parts[1] == "NIC"
            && parts[2].len() == 6
            && parts[2].bytes().all(|b| b.is_ascii_digit())
            && parts[3].len() == 5
            && parts[3]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && parts[4].len() == 2
            && parts[4].bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not an agreement reference like DARS-NIC-000001-DEMO1-01"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgreementRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AgreementRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LegalBasis {
    Consent,
    #[serde(rename = "section-251")]
    Section251,
    Statutory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    #[default]
    Once,
    Daily,
    Weekly,
    Monthly,
}

/// `[agreement]`.
#[derive(Debug, Clone, Deserialize)]
pub struct AgreementMeta {
    pub reference: AgreementRef,
    pub organisation: String,
    #[serde(deserialize_with = "toml_date")]
    pub start: NaiveDate,
    #[serde(deserialize_with = "toml_date")]
    pub end: NaiveDate,
    pub legal_basis: LegalBasis,
    #[serde(default)]
    pub schedule: Schedule,
    #[serde(default)]
    pub identifiable: bool,
}

/// One `[[outputs]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OutputSpec {
    Records(RecordsOutput),
    Aggregate(AggregateOutput),
}

impl OutputSpec {
    pub fn name(&self) -> &str {
        match self {
            Self::Records(r) => &r.name,
            Self::Aggregate(a) => &a.name,
        }
    }
    pub fn dataset(&self) -> &str {
        match self {
            Self::Records(r) => &r.dataset,
            Self::Aggregate(a) => &a.dataset,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Records(_) => "records",
            Self::Aggregate(_) => "aggregate",
        }
    }
    /// Whether the output says `incremental = true`.
    pub fn incremental(&self) -> bool {
        match self {
            Self::Records(r) => r.incremental,
            Self::Aggregate(a) => a.incremental,
        }
    }
    /// The output's `period`, if it has one.
    pub fn period(&self) -> Option<&crate::period::Period> {
        match self {
            Self::Records(r) => r.period.as_ref(),
            Self::Aggregate(a) => a.period.as_ref(),
        }
    }
    /// The format its file is written in.
    pub fn format(&self) -> crate::tables::FileFormat {
        match self {
            Self::Records(r) => r.format,
            Self::Aggregate(a) => a.format,
        }
    }
}

/// One `[[outputs]]` table, read as the struct its `kind` names (see
/// [`tagged`]); a missing or unknown `kind` is serde's error for the enum.
fn output(
    file: &Path,
    key: &str,
    value: toml::Value,
    problems: &mut Vec<Problem>,
) -> Option<OutputSpec> {
    match value.get("kind").and_then(|k| k.as_str()) {
        Some("records") => tagged::<_, RecordsOutput>(file, key, "kind", value, problems),
        Some("aggregate") => tagged::<_, AggregateOutput>(file, key, "kind", value, problems),
        _ => section(file, key, value, problems),
    }
}

/// A loaded, checked agreement with every path resolved.
#[derive(Debug, Clone)]
pub struct Agreement {
    pub file: PathBuf,
    pub meta: AgreementMeta,
    pub cohort: CohortSection,
    pub objections: ObjectionsSection,
    pub outputs: Vec<OutputSpec>,
    pub release: ReleaseConfig,
    pub suppression: BTreeMap<String, ProfileSpec>,
}

const SECTIONS: [&str; 6] = [
    "agreement",
    "cohort",
    "objections",
    "outputs",
    "release",
    "suppression",
];
const VALIDATION_FIELDS: [CohortField; 4] = [
    CohortField::NhsNumber,
    CohortField::DateOfBirth,
    CohortField::Gender,
    CohortField::Postcode,
];

impl Agreement {
    /// Loads and checks; every problem at once on failure. Warnings are
    /// returned beside the agreement for the caller to log.
    pub fn load(
        path: &Path,
        site: Option<&Site>,
    ) -> Result<(Agreement, Vec<Problem>), ConfigError> {
        let (agreement, problems) = Self::check(path, site);
        match agreement {
            Some(a) if !problems.iter().any(|p| p.severity == Severity::Error) => Ok((a, problems)),
            _ => Err(ConfigError { problems }),
        }
    }

    /// Every problem in the file (with the site, the datasets it names are
    /// checked too). Reads no data.
    pub fn check(path: &Path, site: Option<&Site>) -> (Option<Agreement>, Vec<Problem>) {
        let mut problems = Vec::new();
        let table = match read_toml(path) {
            Ok(t) => t,
            Err(p) => return (None, vec![p]),
        };
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                problems.push(Problem::error(
                    path,
                    key.clone(),
                    "unknown section",
                    format!(
                        "remove it; an agreement has only [{}]",
                        SECTIONS.join("], [")
                    ),
                ));
            }
        }
        let required = |name: &str, problems: &mut Vec<Problem>| -> Option<toml::Value> {
            let v = table.get(name).cloned();
            if v.is_none() {
                problems.push(Problem::error(
                    path,
                    name,
                    "missing section",
                    format!("add a [{name}] table (see config/agreements/ in the repository)"),
                ));
            }
            v
        };
        let meta: Option<AgreementMeta> = required("agreement", &mut problems)
            .and_then(|v| section(path, "agreement", v, &mut problems));
        let cohort: Option<CohortSection> = required("cohort", &mut problems)
            .and_then(|v| section(path, "cohort", v, &mut problems));
        let objections: Option<ObjectionsSection> = match table.get("objections") {
            Some(v) => section(path, "objections", v.clone(), &mut problems),
            None => Some(ObjectionsSection::default()),
        };
        let release: Option<ReleaseConfig> = required("release", &mut problems)
            .and_then(|v| section(path, "release", v, &mut problems));
        let mut suppression = BTreeMap::new();
        match table.get("suppression") {
            None => {}
            Some(toml::Value::Table(t)) => {
                for (name, v) in t {
                    let key = format!("suppression.{name}");
                    if let Some(p) = section::<ProfileSpec>(path, &key, v.clone(), &mut problems) {
                        problems.extend(p.problems(path, &key));
                        suppression.insert(name.clone(), p);
                    }
                }
            }
            Some(_) => problems.push(Problem::error(
                path,
                "suppression",
                "must be tables [suppression.NAME]",
                "write each custom profile as a [suppression.NAME] table",
            )),
        }
        let mut outputs = Vec::new();
        match table.get("outputs") {
            Some(toml::Value::Array(items)) if !items.is_empty() => {
                for (i, v) in items.iter().enumerate() {
                    if let Some(o) =
                        output(path, &format!("outputs[{i}]"), v.clone(), &mut problems)
                    {
                        outputs.push((i, o));
                    }
                }
            }
            _ => problems.push(Problem::error(
                path,
                "outputs",
                "no outputs",
                "add at least one [[outputs]] table with kind = \"records\" or \"aggregate\"",
            )),
        }

        if let Some(m) = &meta {
            if m.start > m.end {
                problems.push(Problem::error(
                    path,
                    "agreement.end",
                    format!("ends ({}) before it starts ({})", m.end, m.start),
                    "set end on or after start",
                ));
            }
            if m.organisation.trim().is_empty() {
                problems.push(Problem::error(
                    path,
                    "agreement.organisation",
                    "is empty",
                    "name the data recipient",
                ));
            }
        }
        if let Some(c) = cohort.as_ref().filter(|c| c.reuse.is_some()) {
            problems.extend(reuse_problems(c, meta.as_ref(), path));
        }
        if let Some(c) = cohort.as_ref().filter(|c| c.reuse.is_none()) {
            match &c.path {
                None => problems.push(Problem::error(
                    path,
                    "cohort.path",
                    "is missing",
                    "name the applicant's cohort CSV (relative to this file), or set reuse = \"DARS-NIC-…\" to take another agreement's released linkage of the same cohort",
                )),
                Some(p) => {
                    let cohort_path = resolve(&base, p);
                    if !cohort_path.is_file() {
                        problems.push(Problem::error(
                            path,
                            "cohort.path",
                            format!("no cohort file at {}", cohort_path.display()),
                            "point it at the applicant's cohort CSV (relative to this file)",
                        ));
                    }
                }
            }
            if let Some(d) = &c.review_decisions {
                let p = resolve(&base, d);
                if !p.is_file() {
                    problems.push(Problem::error(
                        path,
                        "cohort.review_decisions",
                        format!("no decisions file at {}", p.display()),
                        "point it at the reviewed queue CSV, or remove the key",
                    ));
                }
            }
            let mut seen = BTreeSet::new();
            for (i, f) in c.validation_fields.iter().enumerate() {
                match CohortField::from_header(f) {
                    Some(field) if VALIDATION_FIELDS.contains(&field) => {
                        if !seen.insert(field) {
                            problems.push(Problem::error(
                                path,
                                format!("cohort.validation_fields[{i}]"),
                                format!("`{f}` is listed twice"),
                                "list each field once",
                            ));
                        }
                    }
                    _ => problems.push(Problem::error(
                        path,
                        format!("cohort.validation_fields[{i}]"),
                        format!("`{f}` is not a validation field"),
                        "use nhs_number, date_of_birth, gender or postcode",
                    )),
                }
            }
            if !seen.contains(&CohortField::NhsNumber) {
                problems.push(Problem::error(
                    path,
                    "cohort.validation_fields",
                    "does not include nhs_number",
                    "add \"nhs_number\": automatic validation cross-checks a valid NHS number against the index",
                ));
            }
        }
        if let Some(o) = &objections {
            problems.extend(
                o.problems(
                    path,
                    meta.as_ref()
                        .is_some_and(|m| m.legal_basis == LegalBasis::Consent),
                    table.contains_key("objections"),
                ),
            );
        }
        if let (Some(m), Some(o)) = (&meta, &objections) {
            if m.legal_basis == LegalBasis::Consent && o.apply.contains(&ObjectionType::Ndoo) {
                problems.push(Problem::warning(
                    path,
                    "objections.apply",
                    "lists \"ndoo\" but the legal basis is consent: the national data opt-out does not apply to consented data",
                    "remove \"ndoo\" unless the DSA asks for it",
                ));
            }
        }
        let identifiable = meta.as_ref().is_some_and(|m| m.identifiable);
        let mut names = BTreeSet::new();
        for (i, o) in &outputs {
            let key = format!("outputs[{i}]");
            let name = o.name();
            let safe = !name.is_empty()
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !safe {
                problems.push(Problem::error(
                    path,
                    format!("{key}.name"),
                    format!("`{name}` is not a safe file name"),
                    "use lower-case letters, digits, `_` and `-`",
                ));
            } else if !names.insert(name.to_string()) {
                problems.push(Problem::error(
                    path,
                    format!("{key}.name"),
                    format!("`{name}` is used by two outputs"),
                    "give every output its own name",
                ));
            }
            if let Some(site) = site {
                match site.datasets.get(o.dataset()) {
                    None => problems.push(Problem::error(
                        path,
                        format!("{key}.dataset"),
                        format!("`{}` is not a dataset of the site", o.dataset()),
                        format!(
                            "use one of: {}",
                            site.datasets.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    )),
                    Some(dataset) => {
                        problems.extend(key_type_problems(path, &key, o.dataset(), dataset))
                    }
                }
            }
            if o.incremental() && o.period().is_none() {
                problems.push(Problem::error(
                    path,
                    format!("{key}.incremental"),
                    "has no period column to tell which rows are new since the last release",
                    "give the output a period, e.g. period = { column = \"admission_date\", from = 2019-04-01, to = 2022-03-31 }, or remove `incremental`",
                ));
            }
            if o.incremental()
                && meta
                    .as_ref()
                    .is_some_and(|m| m.schedule != Schedule::Monthly)
            {
                problems.push(Problem::error(
                    path,
                    format!("{key}.incremental"),
                    "is set, but the agreement's schedule is not monthly: windows are whole months",
                    "set `agreement.schedule = \"monthly\"`, or remove `incremental`",
                ));
            }
            let no_backdate = cohort.as_ref().is_some_and(|c| !c.backdate);
            if no_backdate && o.period().is_none() {
                problems.push(Problem::error(
                    path,
                    format!("{key}.period"),
                    "is missing, and `cohort.backdate = false` compares each person's recruited_on with the output's period column",
                    "give the output a period, e.g. period = { column = \"admission_date\", from = 2019-04-01, to = 2022-03-31 }",
                ));
            }
            if let Some(period) = o.period() {
                problems.extend(period.problems(path, &key));
                problems.extend(period_column_problems(
                    period,
                    path,
                    &key,
                    site.and_then(|s| s.datasets.get(o.dataset())),
                ));
            }
            match o {
                OutputSpec::Records(r) => {
                    problems.extend(r.problems(path, &key, identifiable, site))
                }
                OutputSpec::Aggregate(a) => {
                    problems.extend(a.problems(path, &key, &suppression));
                    problems.extend(crate::minimise::declared_dimension_problems(
                        path,
                        &key,
                        &a.group_by,
                        &a.dataset,
                        site,
                    ));
                }
            }
        }
        if let Some(r) = &release {
            problems.extend(r.problems(path, &base));
        }

        let agreement = match (meta, cohort, objections, release) {
            (Some(meta), Some(mut cohort), Some(objections), Some(mut release)) => {
                cohort.path = cohort.path.map(|p| resolve(&base, &p));
                cohort.review_decisions = cohort.review_decisions.map(|d| resolve(&base, &d));
                release.resolve_paths(&base);
                Some(Agreement {
                    file: path.to_path_buf(),
                    meta,
                    cohort,
                    objections,
                    outputs: outputs
                        .into_iter()
                        .map(|(_, mut o)| {
                            // The run checks the values too, and needs to
                            // know what the agreement and the site allow.
                            if let OutputSpec::Records(r) = &mut o {
                                r.bind(identifiable, site);
                            }
                            o
                        })
                        .collect(),
                    release,
                    suppression,
                })
            }
            _ => None,
        };
        (agreement, problems)
    }

    /// Where the agreement stands on `today`.
    pub fn status(&self, today: NaiveDate) -> AgreementStatus {
        AgreementStatus::on(self.meta.start, self.meta.end, today)
    }

    /// Refuses a release outside start..=end.
    pub fn ensure_active(&self, today: NaiveDate) -> Result<(), ConfigError> {
        let (key, message, fix) = match self.status(today) {
            AgreementStatus::NotStarted => (
                "agreement.start",
                format!(
                    "the agreement starts on {}; today is {today}: nothing may be released before",
                    self.meta.start
                ),
                "wait for the start date, or correct it if the DSA says otherwise",
            ),
            AgreementStatus::Expired => (
                "agreement.end",
                format!(
                    "the agreement ended on {}; today is {today}: nothing may be released after",
                    self.meta.end
                ),
                "ask for the DSA to be renewed and update `end`",
            ),
            _ => return Ok(()),
        };
        Err(ConfigError {
            problems: vec![Problem::error(&self.file, key, message, fix)],
        })
    }
}

/// Lifecycle of an agreement on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgreementStatus {
    NotStarted,
    Active,
    /// Active, with 30 days or fewer left.
    Expiring {
        days_left: i64,
    },
    Expired,
}

impl AgreementStatus {
    pub fn on(start: NaiveDate, end: NaiveDate, today: NaiveDate) -> Self {
        if today < start {
            Self::NotStarted
        } else if today > end {
            Self::Expired
        } else {
            let days_left = (end - today).num_days();
            if days_left <= 30 {
                Self::Expiring { days_left }
            } else {
                Self::Active
            }
        }
    }
}

/// What is wrong with a `[cohort]` that says `reuse`, as written (whether
/// the agreement it names was released, and by whom, is the ledger's: see
/// `pipeline::reuse`). A reused linkage is not linked again, so the keys
/// that say how to link are refused beside it.
fn reuse_problems(c: &CohortSection, meta: Option<&AgreementMeta>, file: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(reuse) = c.reuse.as_deref() else {
        return problems;
    };
    match AgreementRef::parse(reuse) {
        Err(e) => problems.push(Problem::error(
            file,
            "cohort.reuse",
            e,
            "name the agreement whose released linkage to reuse, e.g. reuse = \"DARS-NIC-000001-DEMO1-01\"",
        )),
        Ok(r) if meta.is_some_and(|m| m.reference == r) => problems.push(Problem::error(
            file,
            "cohort.reuse",
            format!("names this agreement itself (`{reuse}`)"),
            "name the other agreement whose released linkage of the same cohort to reuse, or remove `reuse` and give the cohort's `path`",
        )),
        Ok(_) => {}
    }
    let linking = [
        ("path", c.path.is_some()),
        ("validation_fields", !c.validation_fields.is_empty()),
        ("manual_validation", c.manual_validation),
        ("review_decisions", c.review_decisions.is_some()),
    ];
    for (key, given) in linking {
        if given {
            problems.push(Problem::error(
                file,
                format!("cohort.{key}"),
                format!("is given with `cohort.reuse = \"{reuse}\"`, which takes that agreement's linkage instead of linking this cohort"),
                format!("remove `{key}`, or remove `reuse` to link this cohort"),
            ));
        }
    }
    problems
}

/// The dataset's key column type, from its Parquet footers (never a CSV
/// file: its types would be inferred from every row, and a first line that
/// is data is identifiable). A key that is not integers would join no one,
/// or the wrong people, so the run refuses it too. Nothing is said when the
/// footer cannot be read or the key is missing: the run reports that.
fn key_type_problems(
    file: &Path,
    key: &str,
    name: &str,
    dataset: &crate::site::DatasetSource,
) -> Vec<Problem> {
    let is_csv = dataset
        .path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        return Vec::new();
    }
    let Ok(schema) = crate::tables::scan(&dataset.path).and_then(|mut lf| lf.collect_schema())
    else {
        return Vec::new();
    };
    let Some(found) = schema
        .get(&dataset.key)
        .and_then(crate::tables::key_type_problem)
    else {
        return Vec::new();
    };
    vec![Problem::error(
        file,
        format!("{key}.dataset"),
        format!(
            "dataset `{name}`: its key column `{}` holds {found}, not integers",
            dataset.key
        ),
        format!(
            "write `{}` as integers (the index's person_id, Int64), or name the dataset's integer key column in `datasets.{name}.key` in the site config",
            dataset.key
        ),
    )]
}

/// With the site, the period column's presence and type in the dataset's
/// schema (a Parquet footer; a CSV file's header and inferred types).
/// Nothing is said when the dataset cannot be opened: the run reports that.
fn period_column_problems(
    period: &crate::period::Period,
    file: &Path,
    key: &str,
    dataset: Option<&crate::site::DatasetSource>,
) -> Vec<Problem> {
    let Some(dataset) = dataset else {
        return Vec::new();
    };
    let schema = crate::tables::scan_pruned(&dataset.path, &|k, v| period.keeps_partition(k, v))
        .and_then(|mut lf| lf.collect_schema());
    match schema {
        Ok(schema) => crate::period::schema_problem(period, file, key, &schema)
            .into_iter()
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert!(AgreementRef::parse("DARS-NIC-000001-DEMO1-01").is_ok());
        for bad in [
            "DARS-NIC-1-DEMO1-01",
            "DARS-NIC-000001-demo1-01",
            "NIC-000001-DEMO1-01",
            "",
        ] {
            assert!(AgreementRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lifecycle() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let (s, e) = (d("2026-01-01"), d("2026-12-31"));
        assert_eq!(
            AgreementStatus::on(s, e, d("2025-12-31")),
            AgreementStatus::NotStarted
        );
        assert_eq!(
            AgreementStatus::on(s, e, d("2026-06-01")),
            AgreementStatus::Active
        );
        assert_eq!(
            AgreementStatus::on(s, e, d("2026-12-31")),
            AgreementStatus::Expiring { days_left: 0 }
        );
        assert_eq!(
            AgreementStatus::on(s, e, d("2027-01-01")),
            AgreementStatus::Expired
        );
    }
}
