//! The agreement resolved against the site, once, when a run starts: each
//! output's dataset source, each aggregate's suppression rule and the
//! parsed recipients. `dars check` reports what is wrong with the strings
//! (with the same functions: [`Profile::resolve`], [`Recipients::parse`],
//! the site's dataset names); a run turns them into these typed values
//! before it does any work, and no step after [`Plan::resolve`] looks a
//! name up or parses a key again.

use crate::aggregate::AggregateOutput;
use crate::config::{Agreement, ConfigError, OutputSpec, Problem, Site};
use crate::minimise::{FieldSpec, RecordsOutput};
use crate::package::{PackageError, Recipients};
use crate::site::DatasetSource;
use crate::suppress::Profile;

/// What a run releases, every name resolved.
pub(super) struct Plan<'a> {
    /// The agreement's recipients, parsed (age X25519 and `ssh-ed25519`).
    pub recipients: Recipients,
    /// The outputs, in agreement order.
    pub outputs: Vec<Planned<'a>>,
}

/// One output with its dataset and, for an aggregate, its rule.
pub(super) enum Planned<'a> {
    Records {
        spec: &'a RecordsOutput,
        source: &'a DatasetSource,
        /// `fields`, parsed, in order.
        fields: Vec<FieldSpec>,
    },
    Aggregate {
        spec: &'a AggregateOutput,
        source: &'a DatasetSource,
        profile: Profile,
        /// `group_by`, parsed, in order.
        fields: Vec<FieldSpec>,
    },
}

impl Planned<'_> {
    pub fn name(&self) -> &str {
        match self {
            Self::Records { spec, .. } => &spec.name,
            Self::Aggregate { spec, .. } => &spec.name,
        }
    }

    /// The dataset's name in the site config, and its resolved source.
    pub fn dataset(&self) -> (&str, &DatasetSource) {
        match self {
            Self::Records { spec, source, .. } => (&spec.dataset, source),
            Self::Aggregate { spec, source, .. } => (&spec.dataset, source),
        }
    }
}

/// Why an agreement that loaded could not be resolved.
#[derive(Debug)]
pub(super) enum PlanError {
    Config(ConfigError),
    Recipients(PackageError),
}

impl From<PlanError> for super::PipelineError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Config(e) => e.into(),
            PlanError::Recipients(e) => e.into(),
        }
    }
}

/// Each `column[:transform]`, parsed; `None` (with a problem per bad entry,
/// keyed `KEY[j]`) if any does not parse.
fn parse_fields(
    agreement: &Agreement,
    key: &str,
    raw: &[String],
    problems: &mut Vec<Problem>,
) -> Option<Vec<FieldSpec>> {
    let mut fields = Vec::with_capacity(raw.len());
    let mut ok = true;
    for (j, r) in raw.iter().enumerate() {
        match FieldSpec::parse(r) {
            Ok(f) => fields.push(f),
            Err(message) => {
                ok = false;
                problems.push(Problem::error(
                    &agreement.file,
                    format!("{key}[{j}]"),
                    message,
                    "write it as column[:transform] with a transform dars knows",
                ));
            }
        }
    }
    ok.then_some(fields)
}

impl<'a> Plan<'a> {
    /// Resolves every output and the recipients; all problems at once.
    /// An agreement that `Agreement::load` accepted with this site
    /// resolves; this is where a run finds out if it did not.
    pub fn resolve(site: &'a Site, agreement: &'a Agreement) -> Result<Self, PlanError> {
        let mut problems = Vec::new();
        let mut outputs = Vec::new();
        for (i, spec) in agreement.outputs.iter().enumerate() {
            let Some(source) = site.datasets.get(spec.dataset()) else {
                problems.push(Problem::error(
                    &agreement.file,
                    format!("outputs[{i}].dataset"),
                    format!("`{}` is not a dataset of the site", spec.dataset()),
                    "add it under [datasets] in the site config or correct the name",
                ));
                continue;
            };
            match spec {
                OutputSpec::Records(r) => {
                    let key = format!("outputs[{i}].fields");
                    if let Some(fields) = parse_fields(agreement, &key, &r.fields, &mut problems) {
                        outputs.push(Planned::Records {
                            spec: r,
                            source,
                            fields,
                        });
                    }
                }
                OutputSpec::Aggregate(a) => {
                    let key = format!("outputs[{i}].group_by");
                    let fields = parse_fields(agreement, &key, &a.group_by, &mut problems);
                    match Profile::resolve(&a.suppression, &agreement.suppression) {
                        Some(profile) => {
                            if let Some(fields) = fields {
                                outputs.push(Planned::Aggregate {
                                    spec: a,
                                    source,
                                    profile,
                                    fields,
                                });
                            }
                        }
                        None => problems.push(Problem::error(
                            &agreement.file,
                            format!("outputs[{i}].suppression"),
                            format!("unknown profile `{}`", a.suppression),
                            "use hes, csds or a [suppression.NAME] table",
                        )),
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(PlanError::Config(ConfigError { problems }));
        }
        let recipients =
            Recipients::parse(&agreement.release.recipients).map_err(PlanError::Recipients)?;
        Ok(Self {
            recipients,
            outputs,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn repo(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    fn shipped() -> (Site, Agreement) {
        let site = Site::load(&repo("config/site.toml")).expect("the shipped site loads");
        let (agreement, _) = Agreement::load(&repo("testdata/agreements/ok.toml"), Some(&site))
            .expect("ok.toml loads");
        (site, agreement)
    }

    #[test]
    fn issue_16_a_loaded_agreement_resolves_to_typed_outputs_in_order() {
        let (site, agreement) = shipped();
        let plan = Plan::resolve(&site, &agreement).expect("resolves");
        let names: Vec<&str> = plan.outputs.iter().map(Planned::name).collect();
        let expected: Vec<&str> = agreement.outputs.iter().map(OutputSpec::name).collect();
        assert_eq!(names, expected);
        for (p, spec) in plan.outputs.iter().zip(&agreement.outputs) {
            let (name, source) = p.dataset();
            assert_eq!(name, spec.dataset());
            assert_eq!(source, &site.datasets[spec.dataset()]);
            if let (Planned::Aggregate { profile, .. }, OutputSpec::Aggregate(a)) = (p, spec) {
                assert_eq!(profile.name, a.suppression);
            }
        }
        assert!(
            plan.outputs
                .iter()
                .any(|p| matches!(p, Planned::Aggregate { .. })),
            "ok.toml should have an aggregate for this test to mean something"
        );
    }

    #[test]
    fn issue_16_every_unresolvable_name_is_reported_at_once_with_its_key() {
        let (site, mut agreement) = shipped();
        let mut changed = 0;
        for o in &mut agreement.outputs {
            match o {
                OutputSpec::Records(r) => {
                    r.dataset = "no_such_dataset".into();
                    changed += 1;
                }
                OutputSpec::Aggregate(a) => {
                    a.suppression = "no_such_rule".into();
                    changed += 1;
                }
            }
        }
        let Err(PlanError::Config(e)) = Plan::resolve(&site, &agreement) else {
            panic!("an unknown dataset and rule must not resolve");
        };
        assert_eq!(e.problems.len(), changed);
        let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
        for (i, o) in agreement.outputs.iter().enumerate() {
            let key = match o {
                OutputSpec::Records(_) => format!("outputs[{i}].dataset"),
                OutputSpec::Aggregate(_) => format!("outputs[{i}].suppression"),
            };
            assert!(keys.contains(&key.as_str()), "{key} missing from {keys:?}");
        }
    }

    #[test]
    fn issue_16_recipients_are_parsed_once_into_the_plan() {
        let (site, mut agreement) = shipped();
        agreement.release.recipients = vec!["age1notakey".into()];
        assert!(matches!(
            Plan::resolve(&site, &agreement),
            Err(PlanError::Recipients(_))
        ));
    }

    #[test]
    fn issue_16_fields_are_parsed_once_into_the_plan_and_a_bad_one_is_named() {
        let (site, mut agreement) = shipped();
        let plan = Plan::resolve(&site, &agreement).expect("resolves");
        for (p, spec) in plan.outputs.iter().zip(&agreement.outputs) {
            let (fields, raw) = match (p, spec) {
                (Planned::Records { fields, .. }, OutputSpec::Records(r)) => (fields, &r.fields),
                (Planned::Aggregate { fields, .. }, OutputSpec::Aggregate(a)) => {
                    (fields, &a.group_by)
                }
                _ => panic!("the plan keeps the agreement's order and kinds"),
            };
            let expected: Vec<FieldSpec> =
                raw.iter().map(|r| FieldSpec::parse(r).unwrap()).collect();
            assert_eq!(fields, &expected);
        }
        drop(plan);
        let mut bad = None;
        for (i, o) in agreement.outputs.iter_mut().enumerate() {
            if let OutputSpec::Aggregate(a) = o {
                a.group_by.push("region:band7".into());
                bad = Some(format!("outputs[{i}].group_by[{}]", a.group_by.len() - 1));
            }
        }
        let bad = bad.expect("ok.toml has an aggregate");
        let Err(PlanError::Config(e)) = Plan::resolve(&site, &agreement) else {
            panic!("an unknown transform must not resolve");
        };
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].key, bad);
        assert!(
            e.problems[0].message.contains("band7"),
            "{}",
            e.problems[0].message
        );
    }
}
