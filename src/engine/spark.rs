//! Spark through Spark Connect: the queries of [`super::sql`] sent with the
//! Apache Spark Connect client (`apache-spark-connect-core` and `-proto`,
//! the transport and protocol layers of `apache-spark-connect`), the
//! results read as Arrow IPC batches as they stream.
//!
//! The high-level crate is not used: its `DataFrame::collect_record_batches`
//! holds the whole result in memory, `to_local_iterator` yields rows
//! without their Arrow types, and its `SparkSession` keeps the client's
//! retry policy (15 retries, backing off to 64 s: an unreachable engine
//! would hang a run for minutes) out of reach.

use std::collections::HashMap;
use std::io::Cursor;

use arrow_array::cast::AsArray;
use arrow_array::types as at;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType as A;
use polars::prelude::*;
use spark_connect_core::client::ReattachableResponseStream;
use spark_connect_core::{block_on, ChannelBuilder, RetryPolicy, SparkConnectClient, SparkError};
use spark_connect_proto as proto;
use tracing::info;

use super::sql::{self, Computed};
use super::EngineError;
use crate::aggregate::{self, AggregateOutput, CountKind};
use crate::counts::CountTable;
use crate::minimise::{self, FieldSpec, PseudonymKey, RecordsOutput, RecordsStream};
use crate::objections::{Released, RECRUITED_ON};
use crate::period::Period;
use crate::site::{DatasetSource, Engine, SparkEngine};

/// A session on the engine.
pub struct Spark {
    client: SparkConnectClient,
    url: String,
    /// Whether the engine has answered once.
    ready: std::cell::Cell<bool>,
}

/// What a Spark error means for the user, in a sentence and a fix.
fn explain(e: &SparkError) -> (String, &'static str) {
    // gRPC codes: 14 unavailable, 16 unauthenticated, 7 permission denied,
    // 4 deadline exceeded.
    let text = e.message();
    match e.grpc_code {
        Some(14) | Some(4) => {
            return (
                "the engine cannot be reached".into(),
                "check engine.url, and that the Spark Connect server is running and reachable from this machine",
            )
        }
        Some(16) | Some(7) => {
            return (
                "the engine refused the token".into(),
                "check the token in engine.token_env or engine.token_file is the one the engine expects",
            )
        }
        _ => {}
    }
    let lower = text.to_ascii_lowercase();
    if lower.contains("unauthenticated") || lower.contains("authentication token") {
        return (
            "the engine refused the token".into(),
            "check the token in engine.token_env or engine.token_file is the one the engine expects",
        );
    }
    if lower.contains("unavailable")
        || lower.contains("connection refused")
        || lower.contains("transport error")
        || lower.contains("tcp connect")
    {
        return (
            "the engine cannot be reached".into(),
            "check engine.url, and that the Spark Connect server is running and reachable from this machine",
        );
    }
    if e.error_class.contains("PATH_NOT_FOUND") || text.contains("PATH_NOT_FOUND") {
        return (
            "the cluster cannot read the dataset's path".into(),
            "check the dataset's path in the site config is a path the cluster reads",
        );
    }
    (
        format!("the query failed: {}", short(&text)),
        "check the dataset's columns and types on the cluster; the query sent is in the run's log",
    )
}

/// The first line of a server message, any value it may quote withheld,
/// without the JVM's stack.
fn short(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let mut s = crate::tables::sanitise(first);
    if s.chars().count() > 300 {
        s = s.chars().take(300).collect::<String>() + "…";
    }
    s
}

/// The subset of Spark's types both engines read alike, as polars types;
/// any other type is named (and refused where an output uses it).
fn polars_type(t: &proto::DataType) -> Result<DataType, &'static str> {
    use proto::data_type::Kind as K;
    Ok(match &t.kind {
        Some(K::String(_)) | Some(K::Char(_)) | Some(K::VarChar(_)) => DataType::String,
        Some(K::Boolean(_)) => DataType::Boolean,
        Some(K::Byte(_)) => DataType::Int8,
        Some(K::Short(_)) => DataType::Int16,
        Some(K::Integer(_)) => DataType::Int32,
        Some(K::Long(_)) => DataType::Int64,
        Some(K::Float(_)) => DataType::Float32,
        Some(K::Double(_)) => DataType::Float64,
        Some(K::Date(_)) => DataType::Date,
        Some(K::Timestamp(_)) => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
        Some(K::TimestampNtz(_)) => DataType::Datetime(TimeUnit::Microseconds, None),
        Some(K::Decimal(_)) => return Err("decimal"),
        Some(K::Binary(_)) => return Err("binary"),
        Some(K::Array(_)) => return Err("array"),
        Some(K::Struct(_)) => return Err("struct"),
        Some(K::Map(_)) => return Err("map"),
        _ => return Err("a type dars does not read"),
    })
}

/// An Arrow batch from the engine as a polars frame: the closed set of
/// types [`polars_type`] admits.
fn to_polars(batch: &RecordBatch) -> PolarsResult<DataFrame> {
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let name = PlSmallStr::from(field.name().as_str());
        let s = match array.data_type() {
            A::Utf8 => Series::new(name, array.as_string::<i32>().iter().collect::<Vec<_>>()),
            A::LargeUtf8 => Series::new(name, array.as_string::<i64>().iter().collect::<Vec<_>>()),
            A::Utf8View => Series::new(name, array.as_string_view().iter().collect::<Vec<_>>()),
            A::Boolean => Series::new(name, array.as_boolean().iter().collect::<Vec<_>>()),
            A::Int8 => Series::new(
                name,
                array
                    .as_primitive::<at::Int8Type>()
                    .iter()
                    .collect::<Vec<_>>(),
            ),
            A::Int16 => Series::new(
                name,
                array
                    .as_primitive::<at::Int16Type>()
                    .iter()
                    .collect::<Vec<_>>(),
            ),
            A::Int32 => Series::new(
                name,
                array
                    .as_primitive::<at::Int32Type>()
                    .iter()
                    .collect::<Vec<_>>(),
            ),
            A::Int64 => Series::new(
                name,
                array
                    .as_primitive::<at::Int64Type>()
                    .iter()
                    .collect::<Vec<_>>(),
            ),
            A::Float32 => Series::new(
                name,
                array
                    .as_primitive::<at::Float32Type>()
                    .iter()
                    .collect::<Vec<_>>(),
            ),
            A::Float64 => Series::new(
                name,
                array
                    .as_primitive::<at::Float64Type>()
                    .iter()
                    .collect::<Vec<_>>(),
            ),
            A::Date32 => Series::new(
                name,
                array
                    .as_primitive::<at::Date32Type>()
                    .iter()
                    .collect::<Vec<_>>(),
            )
            .cast(&DataType::Date)?,
            A::Timestamp(arrow_schema::TimeUnit::Microsecond, tz) => Series::new(
                name,
                array
                    .as_primitive::<at::TimestampMicrosecondType>()
                    .iter()
                    .collect::<Vec<_>>(),
            )
            .cast(&DataType::Datetime(
                TimeUnit::Microseconds,
                tz.as_ref().map(|_| TimeZone::UTC),
            ))?,
            A::Null => Series::full_null(name, array.len(), &DataType::Null),
            other => {
                polars_bail!(ComputeError: "the engine returned column '{}' of type {}, which dars does not read", field.name(), other)
            }
        };
        columns.push(s.into_column());
    }
    DataFrame::new(batch.num_rows(), columns)
}

/// The Arrow batches of one execution, as they stream.
struct ArrowStream {
    stream: ReattachableResponseStream,
    pending: std::collections::VecDeque<RecordBatch>,
    done: bool,
}

impl ArrowStream {
    fn next_batch(&mut self) -> Result<Option<RecordBatch>, SparkError> {
        loop {
            if let Some(b) = self.pending.pop_front() {
                return Ok(Some(b));
            }
            if self.done {
                return Ok(None);
            }
            match block_on(self.stream.message())? {
                None => self.done = true,
                Some(resp) => {
                    if let Some(proto::execute_plan_response::ResponseType::ArrowBatch(batch)) =
                        resp.response_type
                    {
                        if batch.data.is_empty() {
                            continue;
                        }
                        let reader = arrow_ipc::reader::StreamReader::try_new(
                            Cursor::new(&batch.data[..]),
                            None,
                        )
                        .map_err(|e| {
                            SparkError::connect_msg(format!(
                                "an Arrow batch could not be read: {e}"
                            ))
                        })?;
                        for b in reader {
                            let b = b.map_err(|e| {
                                SparkError::connect_msg(format!(
                                    "an Arrow batch could not be read: {e}"
                                ))
                            })?;
                            if b.num_rows() > 0 {
                                self.pending.push_back(b);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Frames of exactly [`minimise::BATCH_ROWS`] rows (the last fewer, none
/// for no rows), as polars' streaming sink gives them: the batch is a
/// Parquet row group, so it is part of the file's bytes.
struct Rebatch<I> {
    inner: I,
    buffer: Option<DataFrame>,
    done: bool,
}

impl<I: Iterator<Item = PolarsResult<DataFrame>>> Iterator for Rebatch<I> {
    type Item = PolarsResult<DataFrame>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(b) = &self.buffer {
                if b.height() >= minimise::BATCH_ROWS || (self.done && b.height() > 0) {
                    let b = self.buffer.take().expect("just seen");
                    let (head, tail) = b.split_at(minimise::BATCH_ROWS.min(b.height()) as i64);
                    if tail.height() > 0 {
                        self.buffer = Some(tail);
                    }
                    return Some(Ok(head));
                }
            }
            if self.done {
                return None;
            }
            match self.inner.next() {
                None => self.done = true,
                Some(Err(e)) => {
                    self.done = true;
                    self.buffer = None;
                    return Some(Err(e));
                }
                Some(Ok(df)) => {
                    self.buffer = Some(match self.buffer.take() {
                        Some(mut b) => {
                            if let Err(e) = b.vstack_mut_owned(df) {
                                self.done = true;
                                return Some(Err(e));
                            }
                            b
                        }
                        None => df,
                    });
                }
            }
        }
    }
}

impl Spark {
    /// A session on the site's engine, `None` for polars. The engine is
    /// reached and the token checked here, before any output is built.
    pub fn for_site(engine: &Engine) -> Result<Option<Spark>, EngineError> {
        match engine {
            Engine::Polars => Ok(None),
            Engine::Spark(e) => Self::connect(e).map(Some),
        }
    }

    fn connect(engine: &SparkEngine) -> Result<Spark, EngineError> {
        let url = engine.url.clone();
        let failed = |what: String, fix: &'static str| EngineError::Engine {
            url: url.clone(),
            what,
            fix,
        };
        let mut builder = ChannelBuilder::parse(&engine.url).map_err(|e| {
            failed(
                format!("is not a Spark Connect URL: {}", short(&e.message())),
                "write engine.url as sc://host:port",
            )
        })?;
        if let Some(source) = &engine.token {
            let token = source
                .read()
                .map_err(|m| failed(m, "give the engine's token as the site config says"))?;
            builder.set(spark_connect_core::channel::PARAM_TOKEN, &token);
        }
        let mut client = block_on(SparkConnectClient::connect(&builder)).map_err(|e| {
            let (what, fix) = explain(&e);
            failed(what, fix)
        })?;
        // A few quick retries for a passing fault, not minutes of them.
        client.set_retry_policy(RetryPolicy {
            max_retries: Some(3),
            initial_backoff_ms: 250,
            max_backoff_ms: Some(2_000),
            max_retry_exception_elapsed_time_ms: Some(15_000),
            ..RetryPolicy::default()
        });
        Ok(Spark {
            client,
            url,
            ready: std::cell::Cell::new(false),
        })
    }

    /// The channel connects lazily: the first call of the run reaches the
    /// engine and shows the token, for the first output (so that an
    /// unreachable engine is named with the output and dataset it was
    /// wanted for). Dates are read in UTC, as polars reads them.
    fn ready(&self, output: &str, dataset: &str) -> Result<(), EngineError> {
        if self.ready.get() {
            return Ok(());
        }
        block_on(self.client.set_config("spark.sql.session.timeZone", "UTC"))
            .map_err(|e| self.output_error(output, dataset, &e))?;
        info!(engine = %self.url, session = self.client.session_id(), "connected to the engine");
        self.ready.set(true);
        Ok(())
    }

    fn output_error(&self, output: &str, dataset: &str, e: &SparkError) -> EngineError {
        let (what, fix) = explain(e);
        EngineError::Output {
            url: self.url.clone(),
            output: output.to_string(),
            dataset: dataset.to_string(),
            what,
            fix: fix.to_string(),
        }
    }

    fn refused(&self, output: &str, dataset: &str, what: String, fix: &str) -> EngineError {
        EngineError::Output {
            url: self.url.clone(),
            output: output.to_string(),
            dataset: dataset.to_string(),
            what,
            fix: fix.to_string(),
        }
    }

    fn request(&self, plan: proto::Plan) -> proto::ExecutePlanRequest {
        proto::ExecutePlanRequest {
            session_id: self.client.session_id().to_string(),
            user_context: Some(proto::UserContext::default()),
            plan: Some(plan),
            ..Default::default()
        }
    }

    fn sql_plan(query: &str) -> proto::Plan {
        proto::Plan {
            op_type: Some(proto::plan::OpType::Root(proto::Relation {
                rel_type: Some(proto::relation::RelType::Sql(proto::Sql {
                    query: query.to_string(),
                    ..Default::default()
                })),
                ..Default::default()
            })),
        }
    }

    /// Sends `query` (logged first, for the audit trail) and returns its
    /// batches as they stream; the first response is read here, so that a
    /// query the engine refuses fails before any row is written.
    fn stream(&self, output: &str, query: &str) -> Result<ArrowStream, SparkError> {
        info!(engine = %self.url, output, sql = %query, "query sent to the engine");
        let stream = block_on(
            self.client
                .execute_plan_reattachable(self.request(Self::sql_plan(query))),
        )?;
        let mut s = ArrowStream {
            stream,
            pending: Default::default(),
            done: false,
        };
        if let Some(first) = s.next_batch()? {
            s.pending.push_front(first);
        }
        Ok(s)
    }

    /// Every batch of `query`, as polars frames (for results the size of
    /// a count table or a sample).
    fn collect(&self, output: &str, query: &str) -> Result<Vec<DataFrame>, SparkError> {
        let mut s = self.stream(output, query)?;
        let mut out = Vec::new();
        while let Some(b) = s.next_batch()? {
            out.push(to_polars(&b).map_err(|e| SparkError::connect_msg(e.to_string()))?);
        }
        Ok(out)
    }

    /// The dataset's columns and their types, as the engine reads them;
    /// a column of a type outside the closed set is listed apart.
    fn dataset_schema(
        &self,
        output: &str,
        dataset: &str,
        path: &str,
    ) -> Result<(Schema, HashMap<String, &'static str>), EngineError> {
        let from = sql::source(path).map_err(|m| {
            self.refused(
                output,
                dataset,
                format!("the dataset {m}"),
                "see the README's Spark section",
            )
        })?;
        let plan = Self::sql_plan(&format!("SELECT * FROM {from}"));
        let request = proto::AnalyzePlanRequest {
            session_id: self.client.session_id().to_string(),
            user_context: Some(proto::UserContext::default()),
            analyze: Some(proto::analyze_plan_request::Analyze::Schema(
                proto::analyze_plan_request::Schema { plan: Some(plan) },
            )),
            ..Default::default()
        };
        let response = block_on(self.client.analyze_plan(request))
            .map_err(|e| self.output_error(output, dataset, &e))?;
        let Some(proto::analyze_plan_response::Result::Schema(s)) = response.result else {
            return Err(self.refused(
                output,
                dataset,
                "the engine returned no schema for the dataset".into(),
                "check the engine is Spark 4.2 or later",
            ));
        };
        let mut schema = Schema::default();
        let mut other = HashMap::new();
        if let Some(proto::DataType {
            kind: Some(proto::data_type::Kind::Struct(st)),
        }) = s.schema
        {
            for f in st.fields {
                match f.data_type.as_ref().map(polars_type) {
                    Some(Ok(t)) => {
                        schema.insert(f.name.into(), t);
                    }
                    Some(Err(name)) => {
                        other.insert(f.name, name);
                    }
                    None => {
                        other.insert(f.name, "a type dars does not read");
                    }
                }
            }
        }
        Ok((schema, other))
    }

    /// Refuses a column the output uses whose type is outside the closed set.
    fn check_types(
        &self,
        output: &str,
        dataset: &str,
        used: &[&str],
        other: &HashMap<String, &'static str>,
    ) -> Result<(), EngineError> {
        for c in used {
            if let Some(t) = other.get(*c) {
                return Err(self.refused(
                    output,
                    dataset,
                    format!("column `{c}` is of type {t} on the cluster, and the spark engine reads text, whole numbers, floats, booleans, dates and timestamps"),
                    "write the column as one of those types in the extract, or run this dataset on polars",
                ));
            }
        }
        Ok(())
    }

    /// Registers the released persons' keys (and their recruitment dates)
    /// as [`sql::PERSONS_VIEW`]: sent as Arrow data, never as SQL text.
    fn register_persons(&self, persons: &DataFrame) -> Result<(), SparkError> {
        use arrow_array::{Date32Array, Int64Array};
        let ids: Int64Array = persons
            .column("person_id")
            .and_then(|c| c.cast(&DataType::Int64))
            .and_then(|c| Ok(c.i64()?.iter().collect::<Int64Array>()))
            .map_err(|e| SparkError::connect_msg(e.to_string()))?;
        let mut fields = vec![arrow_schema::Field::new("person_id", A::Int64, true)];
        let mut arrays: Vec<std::sync::Arc<dyn Array>> = vec![std::sync::Arc::new(ids)];
        if let Ok(r) = persons.column(RECRUITED_ON) {
            let days: Date32Array = r
                .cast(&DataType::Int32)
                .and_then(|c| Ok(c.i32()?.iter().collect::<Date32Array>()))
                .map_err(|e| SparkError::connect_msg(e.to_string()))?;
            fields.push(arrow_schema::Field::new(RECRUITED_ON, A::Date32, true));
            arrays.push(std::sync::Arc::new(days));
        }
        let batch = RecordBatch::try_new(
            std::sync::Arc::new(arrow_schema::Schema::new(fields)),
            arrays,
        )
        .map_err(|e| SparkError::connect_msg(e.to_string()))?;
        let mut data = Vec::new();
        {
            let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut data, &batch.schema())
                .map_err(|e| SparkError::connect_msg(e.to_string()))?;
            w.write(&batch)
                .map_err(|e| SparkError::connect_msg(e.to_string()))?;
            w.finish()
                .map_err(|e| SparkError::connect_msg(e.to_string()))?;
        }
        let view = proto::CreateDataFrameViewCommand {
            input: Some(proto::Relation {
                rel_type: Some(proto::relation::RelType::LocalRelation(
                    proto::LocalRelation {
                        data: Some(data.into()),
                        schema: None,
                    },
                )),
                ..Default::default()
            }),
            name: sql::PERSONS_VIEW.to_string(),
            is_global: false,
            replace: true,
        };
        let plan = proto::Plan {
            op_type: Some(proto::plan::OpType::Command(proto::Command {
                command_type: Some(proto::command::CommandType::CreateDataframeView(view)),
            })),
        };
        info!(engine = %self.url, view = sql::PERSONS_VIEW, persons = persons.height(), "released persons' keys sent to the engine as data");
        let mut stream = block_on(self.client.execute_plan_reattachable(self.request(plan)))?;
        while block_on(stream.message())?.is_some() {}
        Ok(())
    }

    /// A records output: the scan, the semi-join, the period and the
    /// transforms on Spark; the rows stream back in the dataset's order and
    /// are joined to the study IDs here, as [`minimise::plan_records`] joins
    /// them, then checked, written and sealed as a polars run's.
    pub fn records<'s>(
        &self,
        spec: &'s RecordsOutput,
        fields: Vec<FieldSpec>,
        released: &Released,
        source: &DatasetSource,
        period: Option<&Period>,
        pseudonym: &PseudonymKey,
    ) -> Result<RecordsStream<'s>, EngineError> {
        let (output, dataset) = (spec.name.as_str(), spec.dataset.as_str());
        self.ready(output, dataset)?;
        let path = source.path.to_string_lossy();
        let (schema, other) = self.dataset_schema(output, dataset, &path)?;
        let mut used: Vec<&str> = fields.iter().map(|f| f.column.as_str()).collect();
        used.push(&source.key);
        self.check_types(output, dataset, &used, &other)?;
        // The polars plan on a frame of the dataset's schema: the same checks
        // (columns, key, identifiers by name, each transform's type) and the
        // same output schema as a polars run.
        let empty = DataFrame::empty_with_schema(&schema);
        let mut checked = minimise::plan_records(
            spec,
            fields.clone(),
            released,
            empty.lazy(),
            &source.key,
            pseudonym,
        )?;
        let expected = checked.schema()?;
        let with_dob = checked.carries_dob();
        // And run it, so that a transform polars would refuse on this
        // column's type is refused here with polars' own words.
        let probe = minimise::plan_records(
            spec,
            fields.clone(),
            released,
            DataFrame::empty_with_schema(&schema).lazy(),
            &source.key,
            pseudonym,
        )?;
        probe.run(&mut |_| Ok(()))?;

        let recruited = minimise::recruitment_filter(released, spec.period.as_ref());
        let listed: Vec<FieldSpec> = fields
            .iter()
            .filter(|f| f.column != "study_id")
            .cloned()
            .collect();
        let extra: Vec<&str> = match (&recruited, spec.period.as_ref()) {
            (Some(_), Some(p)) => vec![p.column.as_str()],
            _ => vec![],
        };
        let query =
            sql::records(&path, &source.key, &listed, &schema, period, &extra).map_err(|m| {
                self.refused(
                    output,
                    dataset,
                    m,
                    "see the README's Spark section for the fields the spark engine computes",
                )
            })?;

        let persons = released
            .persons
            .clone()
            .lazy()
            .select([col("person_id")])
            .unique_stable(None, UniqueKeepStrategy::First)
            .collect()
            .map_err(|e| minimise::MinimiseError::Polars {
                output: output.into(),
                dataset: dataset.into(),
                source: e,
            })?;
        self.register_persons(&persons)
            .map_err(|e| self.output_error(output, dataset, &e))?;
        let arrow = self
            .stream(output, &query.sql)
            .map_err(|e| self.output_error(output, dataset, &e))?;

        // The join here, as plan_records makes it.
        let mut person_columns = vec![col("study_id"), col("person_id")];
        if with_dob {
            person_columns.push(col("date_of_birth").alias(minimise::DOB));
        }
        if recruited.is_some() {
            person_columns.push(col(RECRUITED_ON));
        }
        let local_persons = released.persons.clone().lazy().select(person_columns);
        let mut exprs = vec![col("study_id")];
        for (f, c) in listed.iter().zip(&query.computed) {
            exprs.push(match c {
                Computed::Engine => col(f.output_name()),
                Computed::Here => minimise::field_expr(f, pseudonym),
            });
        }
        if with_dob {
            exprs.push(col(minimise::DOB));
        }
        let mut target = expected.clone();
        if with_dob {
            target.insert(
                minimise::DOB.into(),
                released
                    .persons
                    .column("date_of_birth")
                    .map(|c| c.dtype().clone())
                    .unwrap_or(DataType::Date),
            );
        }
        let url = self.url.clone();
        let (out_name, ds_name) = (output.to_string(), dataset.to_string());
        let mut arrow = arrow;
        let batches = std::iter::from_fn(move || match arrow.next_batch() {
            Ok(Some(b)) => Some(to_polars(&b)),
            Ok(None) => None,
            Err(e) => {
                let (what, _) = explain(&e);
                Some(Err(PolarsError::ComputeError(
                    format!("engine {url} (output `{out_name}`, dataset `{ds_name}`): {what}")
                        .into(),
                )))
            }
        })
        .map(move |df| -> PolarsResult<DataFrame> {
            let mut args = JoinArgs::new(JoinType::Inner);
            args.maintain_order = MaintainOrderJoin::Left;
            args.build_side = Some(JoinBuildSide::ForceRight);
            let mut lf = df?.lazy().join(
                local_persons.clone(),
                [col(sql::KEY)],
                [col("person_id")],
                args,
            );
            if let Some(r) = recruited.clone() {
                lf = lf.filter(r);
            }
            let out = lf.select(exprs.clone()).collect()?;
            // The types polars gives this output, exactly.
            let cols = out
                .columns()
                .iter()
                .zip(target.iter())
                .map(|(c, (_, t))| c.strict_cast(t))
                .collect::<PolarsResult<Vec<_>>>()?;
            DataFrame::new(out.height(), cols)
        });
        let rebatched = Rebatch {
            inner: batches,
            buffer: None,
            done: false,
        };
        Ok(checked.with_batches(Box::new(rebatched)))
    }

    /// A count table: one aggregate per grouping set on Spark, each with
    /// its set's number, exact distinct counts of persons; the grid,
    /// the margin checks and the content rules here, as polars makes them.
    pub fn counts(
        &self,
        spec: &AggregateOutput,
        fields: &[FieldSpec],
        released: &Released,
        source: &DatasetSource,
        period: Option<&Period>,
        pseudonym: &PseudonymKey,
    ) -> Result<CountTable, EngineError> {
        let (output, dataset) = (spec.name.as_str(), spec.dataset.as_str());
        self.ready(output, dataset)?;
        let path = source.path.to_string_lossy();
        let (schema, other) = self.dataset_schema(output, dataset, &path)?;
        let mut used: Vec<&str> = fields.iter().map(|f| f.column.as_str()).collect();
        used.push(&source.key);
        self.check_types(output, dataset, &used, &other)?;
        // The polars count on a frame of the dataset's schema: the same
        // checks, and the table's universe and percentages.
        let shape = aggregate::count_fields(
            spec,
            fields,
            released,
            DataFrame::empty_with_schema(&schema).lazy(),
            &source.key,
            pseudonym,
        )?;
        let dims: Vec<String> = fields.iter().map(FieldSpec::output_name).collect();
        let recruited = minimise::recruitment_filter(released, spec.period.as_ref()).is_some();
        let wrap = |e: PolarsError| aggregate::AggregateError::Polars {
            output: output.to_string(),
            source: e,
        };
        // One row a person; with recruitment dates, the latest of their
        // study IDs', none if any has none (as the polars count).
        let persons = if recruited {
            released
                .persons
                .clone()
                .lazy()
                .group_by([col("person_id")])
                .agg([when(col(RECRUITED_ON).null_count().gt(lit(0)))
                    .then(lit(NULL).cast(DataType::Date))
                    .otherwise(col(RECRUITED_ON).max())
                    .alias(RECRUITED_ON)])
                .collect()
        } else {
            released
                .persons
                .clone()
                .lazy()
                .select([col("person_id")])
                .unique_stable(None, UniqueKeepStrategy::First)
                .collect()
        }
        .map_err(wrap)?;
        let recruited_column = match (recruited, spec.period.as_ref()) {
            (false, _) => None,
            (true, Some(p)) => Some(Some(p.column.as_str())),
            (true, None) => Some(None),
        };
        let queries = sql::counts(
            &path,
            &source.key,
            fields,
            &schema,
            period,
            recruited_column,
            spec.count == CountKind::Persons,
            spec.totals,
            minimise::identifiers::SAMPLE,
        )
        .map_err(|m| {
            self.refused(
                output,
                dataset,
                m,
                "see the README's Spark section for the dimensions the spark engine counts",
            )
        })?;
        self.register_persons(&persons)
            .map_err(|e| self.output_error(output, dataset, &e))?;

        // The content rules on the first rows, as polars samples them.
        let sample = self
            .collect(output, &queries.sample)
            .map_err(|e| self.output_error(output, dataset, &e))?;
        let mut sample_frame = DataFrame::empty_with_schema(&Schema::from_iter(
            dims.iter()
                .map(|d| Field::new(d.as_str().into(), DataType::String))
                .chain([Field::new("__dars_person".into(), DataType::Int64)]),
        ));
        for mut b in sample {
            let names: Vec<PlSmallStr> = dims
                .iter()
                .map(|d| PlSmallStr::from(d.as_str()))
                .chain([PlSmallStr::from("__dars_person")])
                .collect();
            b.set_column_names(&names).map_err(wrap)?;
            sample_frame.vstack_mut_owned(b).map_err(wrap)?;
        }
        aggregate::check_dimensions(spec, &dims, released, sample_frame.lazy())?;

        let rows = self
            .collect(output, &queries.counts)
            .map_err(|e| self.output_error(output, dataset, &e))?;
        let sets = sql::grouping_sets(dims.len(), spec.totals);
        let mut counted: Vec<aggregate::SubTable> =
            sets.iter().map(|k| (k.clone(), HashMap::new())).collect();
        for b in rows {
            let set = b
                .column(sql::SET)
                .and_then(|c| c.cast(&DataType::Int64))
                .map_err(wrap)?;
            let set = set.i64().map_err(wrap)?;
            let n = b
                .column(sql::COUNT)
                .and_then(|c| c.cast(&DataType::UInt64))
                .map_err(wrap)?;
            let n = n.u64().map_err(wrap)?;
            let values: Vec<StringChunked> = (0..dims.len())
                .map(|i| Ok(b.column(&format!("d{i}"))?.str()?.clone()))
                .collect::<PolarsResult<_>>()
                .map_err(wrap)?;
            for row in 0..b.height() {
                let s = set.get(row).unwrap_or(-1);
                let Some((kept, map)) = usize::try_from(s).ok().and_then(|s| counted.get_mut(s))
                else {
                    return Err(self.refused(
                        output,
                        dataset,
                        format!("the engine returned a grouping set {s} that was not asked for"),
                        "report this: the count query and its result disagree",
                    ));
                };
                let key: Vec<String> = kept
                    .iter()
                    .map(|&i| {
                        values[i]
                            .get(row)
                            .unwrap_or(crate::counts::UNKNOWN)
                            .to_string()
                    })
                    .collect();
                map.insert(key, n.get(row).unwrap_or(0));
            }
        }
        let mut table =
            aggregate::table_from_sets(&dims, counted, spec.count == CountKind::Persons, output)?;
        table.universe = shape.universe.clone();
        aggregate::set_percent_of(&mut table, shape.percent_of.clone(), output)?;
        Ok(table)
    }
}
