//! Where an output's heavy part runs (issue #14): the dataset scan, the
//! semi-join on the released persons, the minimising transforms and the
//! group-by counts with their margins. polars on this machine by default;
//! with `[engine] kind = "spark"` in the site config (and the cargo
//! feature `spark`), Spark through Spark Connect ([`Spark`]).
//!
//! Each output is described once (`pipeline::plan::Planned`: source, key,
//! released persons, fields with their transforms, dimensions, grouping
//! sets, the measure); [`sql`] compiles that description to Spark SQL as
//! `minimise` and `aggregate` compile it to polars plans. The rows Spark
//! returns come back as Arrow, are joined to the persons' study IDs here
//! (the cluster only ever holds the persons' keys, never their study IDs,
//! dates of birth or the pseudonym key), and go through the same content
//! rules, the same writer and the same sealing as a polars run's, batch by
//! batch, so the plaintext is byte for byte the one polars makes.

pub mod sql;

#[cfg(feature = "spark")]
mod spark;

#[cfg(feature = "spark")]
pub use spark::Spark;

/// Without the `spark` feature there is no engine to hold: `Site::load`
/// refuses `kind = "spark"` in such a build.
#[cfg(not(feature = "spark"))]
pub enum Spark {}

#[cfg(not(feature = "spark"))]
impl Spark {
    pub fn for_site(_engine: &crate::site::Engine) -> Result<Option<Spark>, EngineError> {
        Ok(None)
    }

    pub fn records<'s>(
        &self,
        _: &'s crate::minimise::RecordsOutput,
        _: Vec<crate::minimise::FieldSpec>,
        _: &crate::objections::Released,
        _: &crate::site::DatasetSource,
        _: Option<&crate::period::Period>,
        _: &crate::minimise::PseudonymKey,
    ) -> Result<crate::minimise::RecordsStream<'s>, EngineError> {
        match *self {}
    }

    pub fn counts(
        &self,
        _: &crate::aggregate::AggregateOutput,
        _: &[crate::minimise::FieldSpec],
        _: &crate::objections::Released,
        _: &crate::site::DatasetSource,
        _: Option<&crate::period::Period>,
        _: &crate::minimise::PseudonymKey,
    ) -> Result<crate::counts::CountTable, EngineError> {
        match *self {}
    }
}

/// What went wrong on the engine: named by its URL (and the output and
/// dataset), in a sentence, never a stack of gRPC or JVM internals. The
/// stage's own errors (a missing column, a direct identifier) are the
/// stage's, as on polars.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("engine {url}: {what}\n  fix: {fix}")]
    Engine {
        url: String,
        what: String,
        fix: &'static str,
    },
    #[error("output `{output}` (dataset `{dataset}`, engine {url}): {what}\n  fix: {fix}")]
    Output {
        url: String,
        output: String,
        dataset: String,
        what: String,
        fix: String,
    },
    #[error(transparent)]
    Minimise(#[from] crate::minimise::MinimiseError),
    #[error(transparent)]
    Aggregate(#[from] crate::aggregate::AggregateError),
}
