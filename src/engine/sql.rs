//! The outputs compiled to Spark SQL: one function per kind of output, from
//! the same description the polars path uses (the parsed [`FieldSpec`]s,
//! the dataset's key, the period, the released persons). The transforms
//! are a closed set with the meaning they have in polars, and a field
//! outside it is refused here, before anything is sent:
//!
//! | field | polars | Spark SQL |
//! |---|---|---|
//! | `column` | the column | the column, of a type both engines read alike (text, whole numbers, floats, booleans, dates) |
//! | `year` | `dt().year()`, Int32 | `year(c)`, INT, of a date |
//! | `month` | `strftime("%Y-%m")` | `date_format(c, 'yyyy-MM')`, of a date |
//! | `band5`, `band10` | `v - v % w` of the age cast to Int64, 0 to 150 or the output fails | the same arithmetic on `TRY_CAST(c AS BIGINT)`, `raise_error` outside 0 to 150 |
//! | `district`, `sector` | [`crate::domain::Postcode`] | the same rules as one regular expression (ASCII letters and digits, spaces of any kind removed) |
//! | `pseudonym` | HMAC-SHA-256 | not sent: the key never leaves this machine, so a records output computes it here on the rows that come back; a count table refuses it on Spark |
//!
//! Every query reads the dataset, keeps the rows whose key (`TRY_CAST(key
//! AS BIGINT)`, as polars' cast) is one of the released persons in the
//! temporary view [`PERSONS_VIEW`] (a semi-join: a NULL key never
//! matches), and the rows of the output's period. A records query returns
//! the rows in the dataset's order — file by file in path order, then row
//! by row — so the file is the one polars writes. A count query returns
//! one aggregate per grouping set, each labelled with the set's number,
//! with exact `COUNT(DISTINCT …)` for persons: never `ROLLUP` or `CUBE`,
//! whose NULLs a real NULL could be taken for.

use polars::prelude::{DataType, Schema};

use crate::minimise::{FieldSpec, Transform};
use crate::period::Period;

/// The temporary view of the released persons: `person_id BIGINT`,
/// unique, and with `recruited_on DATE` when the cohort carries
/// recruitment dates. It holds the custodian's person keys, so it is sent
/// as data, never written into the SQL text (which is logged).
pub const PERSONS_VIEW: &str = "dars_persons";
/// The key column of every query's result: the dataset's key as BIGINT.
pub const KEY: &str = "__dars_key";
/// The grouping set's number in a count query's result.
pub const SET: &str = "__dars_set";
/// The count in a count query's result.
pub const COUNT: &str = "__dars_n";
/// The person of a row in a count query's sample.
pub const PERSON: &str = "__dars_person";

/// A quoted identifier: `` `name` ``, a backtick doubled.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal: single quotes doubled and backslashes escaped.
pub fn string_lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Where the dataset is, as Spark reads it: a Parquet file or a folder of
/// them, Hive partition folders becoming columns, as the polars scan does.
/// CSV is refused: the two engines infer a CSV file's types differently.
pub fn source(path: &str) -> Result<String, String> {
    if path.to_ascii_lowercase().ends_with(".csv") {
        return Err(
            "is a CSV file, and Spark infers a CSV file's types differently from polars (dates, numbers with leading zeros)\n  fix: write the extract as Parquet for the spark engine, or run this dataset on polars".into(),
        );
    }
    Ok(format!("parquet.{} AS d", ident(path)))
}

/// The dataset's own row order: the files in path order (component by
/// component, as a sorted list of paths), then each file's rows.
const ORDER: &str = "split(d._metadata.file_path, '/'), d._metadata.row_index";

/// Where a field is computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Computed {
    /// In the query, returned under the field's output name.
    Engine,
    /// Here, on the rows that come back, from the column returned under its
    /// own name (a pseudonym: the key stays on this machine).
    Here,
}

/// A records output's query.
#[derive(Debug, Clone)]
pub struct RecordsQuery {
    pub sql: String,
    /// Per field (the listed fields less `study_id`), where it is computed.
    pub computed: Vec<Computed>,
}

/// The type of `column` in the dataset's schema, or why the field cannot
/// be computed on Spark.
fn column_type<'s>(schema: &'s Schema, column: &str) -> Result<&'s DataType, String> {
    schema
        .get(column)
        .ok_or_else(|| format!("the dataset has no column `{column}`"))
}

/// The types both engines read and write alike, released as they are.
fn same_in_both(dtype: &DataType) -> bool {
    matches!(
        dtype,
        DataType::String
            | DataType::Boolean
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Date
    )
}

/// The expression of a postcode's district (`outward`) or sector, NULL for
/// a value that is not a postcode, as [`crate::domain::Postcode::parse`]:
/// every kind of space removed, ASCII letters in either case, outward code
/// A9, A99, AA9, AA99, A9A or AA9A, inward code 9AA, or GIR 0AA.
fn postcode(c: &str, sector: bool) -> String {
    let compact = format!("regexp_replace({c}, r'\\p{{IsWhite_Space}}', '')");
    let up = format!("upper({compact})");
    let valid = format!(
        "{compact} RLIKE r'^(?i)(GIR0AA|([A-Z][0-9]|[A-Z][0-9][0-9]|[A-Z][A-Z][0-9]|[A-Z][0-9][A-Z]|[A-Z][A-Z][0-9][0-9]|[A-Z][A-Z][0-9][A-Z])[0-9][A-Z][A-Z])$'"
    );
    let outward = format!("substring({up}, 1, length({up}) - 3)");
    if sector {
        format!("CASE WHEN {valid} THEN concat({outward}, ' ', substring({up}, length({up}) - 2, 1)) END")
    } else {
        format!("CASE WHEN {valid} THEN {outward} END")
    }
}

/// A field as a Spark SQL expression (without its alias), checked against
/// the column's type.
pub fn field_sql(field: &FieldSpec, schema: &Schema) -> Result<String, String> {
    let dtype = column_type(schema, &field.column)?;
    let c = format!("d.{}", ident(&field.column));
    let need = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "field `{field}`: column `{}` is of type {dtype}, and on the spark engine `{}` takes {what}",
                field.column,
                field.transform.map_or("a column released as it is", Transform::name),
            ))
        }
    };
    Ok(match field.transform {
        None => {
            need(
                same_in_both(dtype),
                "text, whole numbers, floats, booleans or dates (write other types as one of those in the extract)",
            )?;
            c
        }
        Some(Transform::Year) => {
            need(dtype == &DataType::Date, "a date")?;
            format!("year({c})")
        }
        Some(Transform::Month) => {
            need(dtype == &DataType::Date, "a date")?;
            format!("date_format({c}, 'yyyy-MM')")
        }
        Some(t @ (Transform::Band5 | Transform::Band10)) => {
            need(
                dtype.is_integer() || dtype.is_float(),
                "a number of years",
            )?;
            let width = if t == Transform::Band5 { 5 } else { 10 };
            let age = format!("TRY_CAST({c} AS BIGINT)");
            let message = format!(
                "{} bands ages in years, and column '{}' holds a value outside 0 to {}: it is not an age",
                t.name(),
                field.column,
                crate::minimise::MAX_AGE
            );
            format!(
                "CASE WHEN {age} IS NULL THEN NULL WHEN {age} BETWEEN 0 AND {max} THEN {age} - {age} % {width} ELSE CAST(raise_error({msg}) AS BIGINT) END",
                max = crate::minimise::MAX_AGE,
                msg = string_lit(&message)
            )
        }
        Some(t @ (Transform::District | Transform::Sector)) => {
            need(dtype == &DataType::String, "text")?;
            postcode(&c, t == Transform::Sector)
        }
        Some(Transform::Pseudonym) => {
            return Err(format!(
                "field `{field}`: a pseudonym is keyed by this machine's pseudonym key, which is never sent to the engine"
            ))
        }
    })
}

/// The rows of the released persons, of the period, with their key.
fn filtered(
    path: &str,
    key: &str,
    schema: &Schema,
    period: Option<&Period>,
    recruited: Option<Option<&str>>,
) -> Result<(String, String), String> {
    let from = source(path)?;
    column_type(schema, key)?;
    let k = format!("TRY_CAST(d.{} AS BIGINT)", ident(key));
    let mut conditions = vec![format!("{k} IS NOT NULL")];
    if let Some(p) = period {
        let t = column_type(schema, &p.column)?;
        if !matches!(t, DataType::Date | DataType::Datetime(..)) {
            return Err(format!(
                "the period column `{}` is of type {t}, not a date",
                p.column
            ));
        }
        conditions.push(format!(
            "CAST(d.{c} AS DATE) BETWEEN DATE'{}' AND DATE'{}'",
            p.from,
            p.to,
            c = ident(&p.column)
        ));
    }
    // Persons by their key: an inner join on a unique key is the semi-join.
    let join = match recruited {
        None => format!("LEFT SEMI JOIN {PERSONS_VIEW} AS p ON {k} = p.person_id"),
        Some(period_column) => {
            conditions.push(match period_column {
                Some(c) => format!("CAST(d.{} AS DATE) >= p.recruited_on", ident(c)),
                // Recruitment dates and no period: no row is after them.
                None => "FALSE".to_string(),
            });
            format!("JOIN {PERSONS_VIEW} AS p ON {k} = p.person_id")
        }
    };
    Ok((
        format!("FROM {from}\n{join}\nWHERE {}", conditions.join("\n  AND ")),
        k,
    ))
}

/// The query of a records output: its key, then each field computed in
/// the query under its output name, or, for one computed here, its column
/// under its own name; `extra` columns are returned as they are (the
/// period column, when the released persons' recruitment dates filter the
/// rows here). `fields` are the listed fields less `study_id`.
pub fn records(
    path: &str,
    key: &str,
    fields: &[FieldSpec],
    schema: &Schema,
    period: Option<&Period>,
    extra: &[&str],
) -> Result<RecordsQuery, String> {
    let (body, k) = filtered(path, key, schema, period, None)?;
    let mut select = vec![format!("{k} AS {}", ident(KEY))];
    let mut names = vec![KEY.to_string()];
    let mut computed = Vec::new();
    let mut push = |select: &mut Vec<String>, expr: String, name: String| {
        if !names.contains(&name) {
            select.push(format!("{expr} AS {}", ident(&name)));
            names.push(name);
        }
    };
    for f in fields {
        if f.transform == Some(Transform::Pseudonym) {
            let dtype = column_type(schema, &f.column)?;
            if !same_in_both(dtype) {
                return Err(format!("field `{f}`: column `{}` is of type {dtype}, and on the spark engine a pseudonym takes text, whole numbers or dates", f.column));
            }
            push(
                &mut select,
                format!("d.{}", ident(&f.column)),
                f.column.clone(),
            );
            computed.push(Computed::Here);
        } else {
            push(&mut select, field_sql(f, schema)?, f.output_name());
            computed.push(Computed::Engine);
        }
    }
    for c in extra {
        column_type(schema, c)?;
        push(&mut select, format!("d.{}", ident(c)), c.to_string());
    }
    Ok(RecordsQuery {
        sql: format!("SELECT {}\n{body}\nORDER BY {ORDER}", select.join(",\n  ")),
        computed,
    })
}

/// Every grouping set of `d` dimensions, as the polars path counts them:
/// every dimension first, then (with totals) every proper subset, finest
/// first, the grand total last.
pub fn grouping_sets(d: usize, totals: bool) -> Vec<Vec<usize>> {
    let mut sets = vec![(0..d).collect::<Vec<usize>>()];
    if totals {
        let mut subsets: Vec<Vec<usize>> = (0..(1usize << d) - 1)
            .map(|mask| (0..d).filter(|i| mask & (1 << i) != 0).collect())
            .collect();
        subsets.sort_by(|a: &Vec<usize>, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        sets.extend(subsets);
    }
    sets
}

/// A count table's queries: `counts` returns, for each grouping set of
/// [`grouping_sets`] by its number ([`SET`]), one row per combination of
/// its dimensions' values (`Total` in the others) with its count
/// ([`COUNT`]); `sample` returns the first rows of the dimensions, in the
/// dataset's order, with each row's person ([`PERSON`]), for the content
/// rules. Dimensions are text, a NULL labelled `Unknown`, as polars casts
/// them.
pub struct CountQueries {
    pub counts: String,
    pub sample: String,
}

/// The queries of a count table (see [`CountQueries`]).
#[allow(clippy::too_many_arguments)]
pub fn counts(
    path: &str,
    key: &str,
    dims: &[FieldSpec],
    schema: &Schema,
    period: Option<&Period>,
    recruited: Option<Option<&str>>,
    persons: bool,
    totals: bool,
    sample_rows: usize,
) -> Result<CountQueries, String> {
    let (body, k) = filtered(path, key, schema, period, recruited)?;
    let mut base = Vec::new();
    for (i, f) in dims.iter().enumerate() {
        let e = field_sql(f, schema)?;
        let t = column_type(schema, &f.column)?;
        // Text as polars casts it: floats are written differently by the
        // two engines (1e-5), so they are not dimensions here.
        if f.transform.is_none() && t.is_float() {
            return Err(format!("group_by `{f}`: column `{}` is of type {t}, and the two engines write floats as text differently\n  fix: band it (band5, band10) or write it as whole numbers in the extract", f.column));
        }
        base.push(format!(
            "coalesce(CAST({e} AS STRING), {}) AS {}",
            string_lit(crate::counts::UNKNOWN),
            ident(&format!("d{i}"))
        ));
    }
    base.push(format!("{k} AS {}", ident(PERSON)));
    let ordered = format!(
        "SELECT {},\n  d._metadata.file_path AS __dars_file, d._metadata.row_index AS __dars_row\n{body}",
        base.join(",\n  ")
    );
    let plain = format!("SELECT {}\n{body}", base.join(",\n  "));
    let measure = if persons {
        format!("COUNT(DISTINCT {})", ident(PERSON))
    } else {
        "COUNT(*)".to_string()
    };
    let mut parts = Vec::new();
    for (n, kept) in grouping_sets(dims.len(), totals).iter().enumerate() {
        let cols: Vec<String> = (0..dims.len())
            .map(|i| {
                let name = ident(&format!("d{i}"));
                if kept.contains(&i) {
                    name
                } else {
                    format!("{} AS {name}", string_lit(crate::counts::TOTAL))
                }
            })
            .collect();
        let by: Vec<String> = kept.iter().map(|i| ident(&format!("d{i}"))).collect();
        let group = if by.is_empty() {
            String::new()
        } else {
            format!(" GROUP BY {}", by.join(", "))
        };
        let lead = if cols.is_empty() {
            String::new()
        } else {
            format!("{}, ", cols.join(", "))
        };
        parts.push(format!(
            "SELECT {n} AS {set}, {lead}{measure} AS {count} FROM base{group}",
            set = ident(SET),
            count = ident(COUNT),
        ));
    }
    let dim_names: Vec<String> = (0..dims.len()).map(|i| ident(&format!("d{i}"))).collect();
    let mut sample_cols = dim_names.clone();
    sample_cols.push(ident(PERSON));
    Ok(CountQueries {
        counts: format!(
            "WITH base AS (\n{plain}\n)\n{}",
            parts.join("\nUNION ALL\n")
        ),
        sample: format!(
            "SELECT {} FROM (\n{ordered}\n)\nORDER BY split(__dars_file, '/'), __dars_row\nLIMIT {sample_rows}",
            sample_cols.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    fn schema() -> Schema {
        Schema::from_iter([
            Field::new("person_id".into(), DataType::Int64),
            Field::new("admission_date".into(), DataType::Date),
            Field::new("age".into(), DataType::Int32),
            Field::new("postcode".into(), DataType::String),
            Field::new(
                "stamp".into(),
                DataType::Datetime(TimeUnit::Microseconds, None),
            ),
            Field::new("cost".into(), DataType::Float64),
        ])
    }

    fn f(s: &str) -> FieldSpec {
        FieldSpec::parse(s).unwrap()
    }

    #[test]
    fn issue_14_each_transform_compiles_to_its_closed_form() {
        let s = schema();
        assert_eq!(
            field_sql(&f("admission_date:year"), &s).unwrap(),
            "year(d.`admission_date`)"
        );
        assert_eq!(
            field_sql(&f("admission_date:month"), &s).unwrap(),
            "date_format(d.`admission_date`, 'yyyy-MM')"
        );
        let band = field_sql(&f("age:band10"), &s).unwrap();
        assert!(band.contains("TRY_CAST(d.`age` AS BIGINT) % 10"), "{band}");
        assert!(band.contains("BETWEEN 0 AND 150"), "{band}");
        assert!(band.contains("raise_error"), "{band}");
        let sector = field_sql(&f("postcode:sector"), &s).unwrap();
        assert!(sector.contains("IsWhite_Space"), "{sector}");
        assert!(sector.contains("concat("), "{sector}");
    }

    #[test]
    fn issue_14_a_field_outside_the_closed_set_is_refused_naming_it() {
        let s = schema();
        for (field, needs) in [
            ("stamp:year", "a date"),
            ("postcode:band5", "a number of years"),
            ("age:district", "text"),
            ("stamp", "text, whole numbers"),
        ] {
            let e = field_sql(&f(field), &s).unwrap_err();
            assert!(
                e.contains(&format!("field `{field}`")) && e.contains(needs),
                "{e}"
            );
        }
        let e = field_sql(&f("postcode:pseudonym"), &s).unwrap_err();
        assert!(e.contains("never sent"), "{e}");
        assert!(field_sql(&f("nope"), &s)
            .unwrap_err()
            .contains("no column `nope`"));
    }

    #[test]
    fn issue_14_records_semi_join_drops_null_keys_and_keeps_the_dataset_order() {
        let q = records(
            "/data/hes",
            "person_id",
            &[
                f("admission_date:year"),
                f("postcode:pseudonym"),
                f("postcode"),
            ],
            &schema(),
            Some(&Period {
                column: "admission_date".into(),
                from: chrono::NaiveDate::from_ymd_opt(2019, 4, 1).unwrap(),
                to: chrono::NaiveDate::from_ymd_opt(2022, 3, 31).unwrap(),
            }),
            &[],
        )
        .unwrap();
        assert_eq!(
            q.computed,
            vec![Computed::Engine, Computed::Here, Computed::Engine]
        );
        // The pseudonym's column and the plain column are one column.
        assert_eq!(q.sql.matches("AS `postcode`").count(), 1, "{}", q.sql);
        assert!(q.sql.contains("IS NOT NULL"), "{}", q.sql);
        assert!(q.sql.contains("LEFT SEMI JOIN dars_persons"), "{}", q.sql);
        assert!(
            q.sql
                .contains("BETWEEN DATE'2019-04-01' AND DATE'2022-03-31'"),
            "{}",
            q.sql
        );
        assert!(
            q.sql
                .ends_with("ORDER BY split(d._metadata.file_path, '/'), d._metadata.row_index"),
            "{}",
            q.sql
        );
        assert!(q.sql.contains("parquet.`/data/hes`"), "{}", q.sql);
    }

    #[test]
    fn issue_14_margins_are_one_labelled_aggregate_per_grouping_set() {
        let q = counts(
            "/data/hes",
            "person_id",
            &[f("admission_date:year"), f("postcode:district")],
            &schema(),
            None,
            None,
            true,
            true,
            100,
        )
        .unwrap();
        assert!(
            !q.counts.to_uppercase().contains("ROLLUP")
                && !q.counts.to_uppercase().contains("CUBE")
        );
        assert_eq!(
            q.counts.matches("COUNT(DISTINCT `__dars_person`)").count(),
            4,
            "{}",
            q.counts
        );
        for n in 0..4 {
            assert!(
                q.counts.contains(&format!("SELECT {n} AS `__dars_set`")),
                "{}",
                q.counts
            );
        }
        assert!(q.counts.contains("'Total' AS `d1`"), "{}", q.counts);
        assert!(!q.counts.contains("approx"), "{}", q.counts);
        assert_eq!(
            grouping_sets(2, true),
            vec![vec![0, 1], vec![0], vec![1], vec![]]
        );
        assert_eq!(grouping_sets(2, false), vec![vec![0, 1]]);
        let e = counts(
            "/d",
            "person_id",
            &[f("cost")],
            &schema(),
            None,
            None,
            false,
            false,
            1,
        )
        .err()
        .unwrap();
        assert!(e.contains("floats"), "{e}");
    }

    #[test]
    fn issue_14_quoting_cannot_break_out_of_a_name_or_a_literal() {
        assert_eq!(ident("a`b"), "`a``b`");
        assert_eq!(string_lit("it's \\"), "'it\\'s \\\\'");
        assert!(source("/x/cohort.CSV").unwrap_err().contains("CSV"));
    }
}
