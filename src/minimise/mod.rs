//! Stage 4, minimisation: nothing leaves but the fields an output lists.
//!
//! A field is `column[:transform]`. The transforms generalise: `year` and
//! `month` (YYYY-MM) for dates, `district` and `sector` for postcodes,
//! `band5` and `band10` for ages (the lower bound of the band), and
//! `pseudonym`, a keyed HMAC-SHA-256 with one key per agreement, for
//! identifiers. Direct identifiers (NHS number, names, full postcode, full
//! date of birth) and the custodian's own person key are refused unless the
//! agreement says `identifiable = true`. Every record output carries
//! `study_id` as its key: the applicant's own identifier for the person.
//!
//! Identifiers are recognised whatever a column is called ([`identifiers`]):
//! by name and by the site's declarations when the agreement is checked,
//! and again here, on the values about to leave, by content.

mod config;
pub mod identifiers;
#[cfg(test)]
mod tests;
mod transform;

pub use config::{
    declared_dimension_problems, FieldSpec, IdentifierPolicy, RecordsOutput, Transform,
};
pub use identifiers::{IdentifierKind, Rule};
pub use transform::{field_expr, PseudonymKey, MAX_AGE};

use polars::prelude::*;

use crate::objections::Released;

#[derive(Debug, thiserror::Error)]
pub enum MinimiseError {
    #[error("output `{output}`: dataset `{dataset}` has no column `{column}` (field `{field}`)\n  fix: use one of: {available}")]
    UnknownField {
        output: String,
        dataset: String,
        field: String,
        column: String,
        available: String,
    },
    #[error("output `{output}`: dataset `{dataset}` has no key column `{key}`\n  fix: correct `datasets.{dataset}.key` in the site config; if the dataset is a CSV file, check its first line names the columns")]
    MissingKey {
        output: String,
        dataset: String,
        key: String,
    },
    #[error("output `{output}`: the key column `{key}` of dataset `{dataset}` holds {found}, not integers\n  fix: write `{key}` as integers (the index's person_id, Int64), or name the dataset's integer key column in `datasets.{dataset}.key` in the site config")]
    KeyType {
        output: String,
        dataset: String,
        key: String,
        found: String,
    },
    #[error("output `{output}`: field `{field}` of dataset `{dataset}` holds {what} ({rule}), and the agreement is not identifiable: nothing was released\n  fix: {fix}")]
    DirectIdentifier {
        output: String,
        dataset: String,
        field: String,
        what: &'static str,
        rule: Rule,
        fix: String,
    },
    #[error("output `{output}`: the cohort's study IDs are NHS numbers ({rule}), every record output carries study_id, and the agreement is not identifiable: nothing was released\n  fix: ask the applicant for a cohort keyed by study IDs that are not NHS numbers")]
    StudyIdIsIdentifier { output: String, rule: Rule },
    #[error("output `{output}` (dataset `{dataset}`): {source}\n  fix: {}", polars_fix(.source))]
    Polars {
        output: String,
        dataset: String,
        #[source]
        source: PolarsError,
    },
}

/// The fix for a polars error while an output is built: a transform that
/// does not suit its column's type is the usual cause of an invalid
/// operation; anything else (an I/O or decoding error) is the data's.
pub fn polars_fix(e: &PolarsError) -> &'static str {
    match e {
        PolarsError::InvalidOperation(_)
        | PolarsError::SchemaMismatch(_)
        | PolarsError::ColumnNotFound(_) => {
            "check that each transform suits its column's type (dates: year, month; postcodes: district, sector; ages: band5, band10)"
        }
        PolarsError::Context { error, .. } | PolarsError::ExprContext { error, .. } => {
            polars_fix(error)
        }
        _ => {
            "check that the dataset's files are whole and readable, then run again (the run resumes)"
        }
    }
}

/// The index's date of birth of each row's person, beside the output's
/// columns while they are checked.
pub const DOB: &str = "__dars_dob";

/// A records output's rows made elsewhere (issue #14: the rows Spark
/// returned, joined to the persons here), [`BATCH_ROWS`] a batch.
pub type Batches<'s> = Box<dyn Iterator<Item = PolarsResult<DataFrame>> + Send + 's>;

/// Rows per batch when a records output is streamed: the batch size fixes
/// the Parquet row groups, so it is part of what makes the file the same
/// bytes on every run.
pub const BATCH_ROWS: usize = 1 << 17;

/// A records output checked against its dataset's columns, ready to
/// stream: `study_id` first, then one column per listed field, for the
/// linked, non-objecting cohort only, in the dataset's own row order.
pub struct RecordsStream<'s> {
    spec: &'s RecordsOutput,
    fields: Vec<FieldSpec>,
    lf: LazyFrame,
    /// Whether each row carries its person's date of birth (in [`DOB`])
    /// for the content rules; it never leaves.
    with_dob: bool,
    /// Rows made elsewhere, streamed instead of `lf` (see [`Self::with_batches`]).
    batches: Option<Batches<'s>>,
}

/// The plan of one records output (see [`RecordsStream`]).
///
/// Unless the agreement is identifiable, refuses a field that would release
/// a direct identifier: by name and by the site's declaration here, and by
/// content as the rows stream ([`RecordsStream::run`], see [`identifiers`]).
pub fn plan_records<'s>(
    spec: &'s RecordsOutput,
    fields: Vec<FieldSpec>,
    released: &Released,
    mut dataset: LazyFrame,
    key: &str,
    pseudonym: &PseudonymKey,
) -> Result<RecordsStream<'s>, MinimiseError> {
    let wrap = |source| MinimiseError::Polars {
        output: spec.name.clone(),
        dataset: spec.dataset.clone(),
        source: crate::tables::redact(source),
    };
    let schema = dataset.collect_schema().map_err(&wrap)?;
    let available: Vec<String> = schema.iter_names().map(|n| n.to_string()).collect();
    // The key first: a CSV file without a header has no key column, and its
    // "column names" are values that must not be listed.
    let Some(key_type) = schema.get(key) else {
        return Err(MinimiseError::MissingKey {
            output: spec.name.clone(),
            dataset: spec.dataset.clone(),
            key: key.to_string(),
        });
    };
    if let Some(found) = crate::tables::key_type_problem(key_type) {
        return Err(MinimiseError::KeyType {
            output: spec.name.clone(),
            dataset: spec.dataset.clone(),
            key: key.to_string(),
            found,
        });
    }
    let policy = &spec.identifiers;
    let mut exprs = vec![col("study_id")];
    for (raw, field) in spec.fields.iter().zip(&fields) {
        if field.column == "study_id" {
            continue;
        }
        if !available.contains(&field.column) {
            return Err(MinimiseError::UnknownField {
                output: spec.name.clone(),
                dataset: spec.dataset.clone(),
                field: raw.clone(),
                column: field.column.clone(),
                available: listable(&available),
            });
        }
        // Checked with the agreement already; again here in case the
        // output was built some other way.
        if !policy.identifiable {
            if let Some((kind, rule)) = field.identifier_by_name(Some(key), &policy.declared) {
                return Err(direct_identifier(spec, raw, &field.column, kind, rule));
            }
        }
        exprs.push(field_expr(field, pseudonym));
    }
    let with_dob = !policy.identifiable
        && released
            .persons
            .get_column_names()
            .iter()
            .any(|c| c.as_str() == "date_of_birth");
    let mut person_columns = vec![col("study_id"), col("person_id")];
    if with_dob {
        person_columns.push(col("date_of_birth").alias(DOB));
        exprs.push(col(DOB));
    }
    let recruited = recruitment_filter(released, spec.period.as_ref());
    if recruited.is_some() {
        person_columns.push(col(crate::objections::RECRUITED_ON));
    }
    let persons = released.persons.clone().lazy().select(person_columns);
    let key_alias = "__dars_key";
    // The dataset streams through; the released persons (the cohort, far
    // smaller) are the hash table. Rows keep the dataset's order, so the
    // same inputs give the same file without a sort.
    let mut args = JoinArgs::new(JoinType::Inner);
    args.maintain_order = MaintainOrderJoin::Left;
    args.build_side = Some(JoinBuildSide::ForceRight);
    let dataset = crate::tables::keep_persons(
        dataset,
        col(key).strict_cast(DataType::Int64),
        &released.persons,
    )
    .map_err(&wrap)?;
    let mut lf = dataset
        .with_column(col(key).strict_cast(DataType::Int64).alias(key_alias))
        .join(persons, [col(key_alias)], [col("person_id")], args);
    if let Some(recruited) = recruited {
        lf = lf.filter(recruited);
    }
    let lf = lf.select(exprs);
    Ok(RecordsStream {
        spec,
        fields,
        lf,
        with_dob,
        batches: None,
    })
}

impl<'s> RecordsStream<'s> {
    /// The same output with its rows taken from `batches` instead of its
    /// own plan (the plan, on a frame of the dataset's schema, has checked
    /// the fields and gives the schema): each batch holds the columns of
    /// [`Self::schema`] in order, then [`DOB`] when [`Self::carries_dob`],
    /// and every batch but the last [`BATCH_ROWS`] rows. The content rules
    /// and the writes are those of a polars run.
    pub fn with_batches(mut self, batches: Batches<'s>) -> Self {
        self.batches = Some(batches);
        self
    }

    /// Whether the rows carry the persons' dates of birth in [`DOB`].
    pub fn carries_dob(&self) -> bool {
        self.with_dob
    }
}

impl RecordsStream<'_> {
    fn wrap(&self) -> impl Fn(PolarsError) -> MinimiseError + '_ {
        |source| MinimiseError::Polars {
            output: self.spec.name.clone(),
            dataset: self.spec.dataset.clone(),
            source: crate::tables::redact(source),
        }
    }

    /// The columns of what leaves, in order.
    pub fn schema(&mut self) -> Result<Schema, MinimiseError> {
        let mut schema = (*self.lf.collect_schema().map_err(self.wrap())?).clone();
        if self.with_dob {
            schema.shift_remove(DOB);
        }
        Ok(schema)
    }

    /// Streams the output on polars' streaming engine, [`BATCH_ROWS`] rows
    /// per call of `write` (the last call fewer; none for an empty output),
    /// in the dataset's order, and returns the number of rows. Memory is
    /// bounded by the batch and the cohort, not by the dataset.
    ///
    /// The content rules then run on an evenly spaced sample of the whole
    /// output, as they would on the output held in memory; an identifier
    /// found there is an error after `write` has seen every batch, so the
    /// caller must treat what it wrote as void unless this returns `Ok`
    /// (the sealed file is then never committed).
    pub fn run(
        mut self,
        write: &mut dyn FnMut(&DataFrame) -> PolarsResult<()>,
    ) -> Result<u64, MinimiseError> {
        let batches = self.batches.take();
        let wrap = self.wrap();
        let mut sample = Sample::default();
        let mut rows = 0u64;
        let mut failed = None;
        let with_dob = self.with_dob;
        let mut step = |mut df: DataFrame| -> PolarsResult<()> {
            df.rechunk_mut();
            sample.add(&df, rows)?;
            rows += df.height() as u64;
            if with_dob {
                df = df.drop(DOB)?;
            }
            write(&df)
        };
        if let Some(batches) = batches {
            for df in batches {
                if let Err(e) = df.and_then(&mut step) {
                    failed = Some(e);
                    break;
                }
            }
            if let Some(e) = failed {
                return Err(wrap(e));
            }
            return self.finish(sample, rows);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<DataFrame>(2);
        // true stops the query: the receiving side has gone.
        let callback = PlanCallback::new(move |df: DataFrame| Ok(tx.send(df).is_err()));
        let lf = self
            .lf
            .clone()
            .sink_batches(callback, true, std::num::NonZeroUsize::new(BATCH_ROWS))
            .map_err(&wrap)?;
        std::thread::scope(|scope| {
            let query = scope.spawn(move || lf.collect_with_engine(Engine::Streaming).map(|_| ()));
            for df in rx.iter() {
                if let Err(e) = step(df) {
                    failed = Some(e);
                    break;
                }
            }
            // Dropping the receiver stops a query still sending.
            drop(rx);
            let ran = query.join().unwrap_or_else(|_| {
                Err(PolarsError::ComputeError(
                    "the streaming query panicked".into(),
                ))
            });
            if failed.is_none() {
                failed = ran.err();
            }
        });
        if let Some(e) = failed {
            return Err(wrap(e));
        }
        self.finish(sample, rows)
    }

    /// The content rules on the sample of a stream that ran to its end.
    fn finish(&self, sample: Sample, rows: u64) -> Result<u64, MinimiseError> {
        let wrap = self.wrap();
        if let (false, Some(sampled)) = (self.spec.identifiers.identifiable, &sample.frame) {
            check_content(self.spec, &self.fields, sampled).map_err(|e| match e {
                Checked::Found(e) => e,
                Checked::Polars(p) => wrap(p),
            })?;
        }
        Ok(rows)
    }
}

/// Rows of a stream kept for the content rules: those whose position is a
/// multiple of `stride`, between [`identifiers::SAMPLE`] and twice that
/// many once the stream is long enough; when full, every other row is
/// dropped and the stride doubled, so the sample stays evenly spaced over
/// the whole output without knowing its length in advance.
struct Sample {
    frame: Option<DataFrame>,
    stride: u64,
}

impl Default for Sample {
    fn default() -> Self {
        Self {
            frame: None,
            stride: 1,
        }
    }
}

impl Sample {
    fn add(&mut self, batch: &DataFrame, offset: u64) -> PolarsResult<()> {
        let n = batch.height() as u64;
        let first = offset.div_ceil(self.stride) * self.stride;
        let idx: Vec<IdxSize> = (first..offset + n)
            .step_by(self.stride as usize)
            .map(|g| (g - offset) as IdxSize)
            .collect();
        if idx.is_empty() {
            return Ok(());
        }
        // Copied out of the batch's buffers, which would otherwise stay
        // alive as long as the sample (see `tables::owned_strings`).
        let taken = crate::tables::owned_strings(batch.take(&IdxCa::from_vec("idx".into(), idx))?)?;
        self.frame = Some(match self.frame.take() {
            Some(mut f) => {
                f.vstack_mut_owned(taken)?;
                f
            }
            None => taken,
        });
        let f = self.frame.as_mut().expect("just set");
        if f.height() >= 2 * identifiers::SAMPLE {
            let even: Vec<IdxSize> = (0..f.height() as IdxSize).step_by(2).collect();
            *f = f.take(&IdxCa::from_vec("idx".into(), even))?;
            f.rechunk_mut();
            *f = crate::tables::owned_strings(std::mem::take(f))?;
            self.stride *= 2;
        }
        Ok(())
    }
}

/// The minimised record-level frame of one output, held in memory (for
/// tests and small outputs; `dars run` streams with [`plan_records`]).
pub fn records(
    spec: &RecordsOutput,
    released: &Released,
    dataset: LazyFrame,
    key: &str,
    pseudonym: &PseudonymKey,
) -> Result<DataFrame, MinimiseError> {
    let mut stream = plan_records(spec, spec.field_specs(), released, dataset, key, pseudonym)?;
    let schema = stream.schema()?;
    let mut out = DataFrame::empty_with_schema(&schema);
    stream.run(&mut |df| out.vstack_mut(df).map(|_| ()))?;
    out.rechunk_mut();
    Ok(out)
}

/// With `cohort.backdate = false` (the released persons carry
/// `recruited_on`): only rows whose period column is on or after the
/// person's date. A person without a date gets no row; so does an output
/// without a period (which `dars check` refuses).
pub fn recruitment_filter(
    released: &Released,
    period: Option<&crate::period::Period>,
) -> Option<Expr> {
    let carried = released
        .persons
        .get_column_names()
        .iter()
        .any(|c| c.as_str() == crate::objections::RECRUITED_ON);
    if !carried {
        return None;
    }
    Some(match period {
        Some(p) => col(p.column.as_str())
            .cast(DataType::Date)
            .gt_eq(col(crate::objections::RECRUITED_ON)),
        None => lit(false),
    })
}

enum Checked {
    Found(MinimiseError),
    Polars(PolarsError),
}

impl From<PolarsError> for Checked {
    fn from(e: PolarsError) -> Self {
        Self::Polars(e)
    }
}

/// The content rules on every column about to leave but pseudonyms, and on
/// `study_id`.
fn check_content(
    spec: &RecordsOutput,
    fields: &[FieldSpec],
    out: &DataFrame,
) -> Result<(), Checked> {
    let dob = out.column(DOB).ok();
    if let Some((IdentifierKind::NhsNumber, rule)) =
        identifiers::kind_by_content(out.column("study_id")?, None)?
    {
        return Err(Checked::Found(MinimiseError::StudyIdIsIdentifier {
            output: spec.name.clone(),
            rule,
        }));
    }
    for (raw, field) in spec.fields.iter().zip(fields) {
        if field.column == "study_id" || field.transform == Some(Transform::Pseudonym) {
            continue;
        }
        let values = out.column(&field.output_name())?;
        if let Some((kind, rule)) = identifiers::kind_by_content(values, dob)? {
            return Err(Checked::Found(direct_identifier(
                spec,
                raw,
                &field.column,
                kind,
                rule,
            )));
        }
    }
    Ok(())
}

fn direct_identifier(
    spec: &RecordsOutput,
    raw: &str,
    column: &str,
    kind: IdentifierKind,
    rule: Rule,
) -> MinimiseError {
    MinimiseError::DirectIdentifier {
        output: spec.name.clone(),
        dataset: spec.dataset.clone(),
        field: raw.to_string(),
        what: kind.describe(),
        rule,
        fix: kind.fix(column),
    }
}

/// Column names for a "use one of" list: names that look like values (a
/// number, a date, a postcode) are left out, since a file whose first line
/// is data would otherwise have its values listed.
pub fn listable(names: &[String]) -> String {
    let shown: Vec<&str> = names
        .iter()
        .filter(|n| !crate::tables::looks_like_value(n))
        .map(String::as_str)
        .collect();
    let hidden = names.len() - shown.len();
    let mut list = shown.join(", ");
    if hidden > 0 {
        list.push_str(&format!(
            "{}({hidden} column name{} that look like values not shown)",
            if shown.is_empty() { "" } else { " " },
            if hidden == 1 { "" } else { "s" }
        ));
    }
    list
}
