//! Reading `/query` responses: InfluxDB's JSON (`{"results":[{"series":[{"name", "tags",
//! "columns", "values"}]}]}`) straight into [`Point`]s, in one pass, without an intermediate
//! JSON tree.
//!
//! Why a small pull parser of our own rather than serde_json: serde_json's default number
//! parsing is not correctly rounded (about one in ten 17-digit floats comes back one ulp off;
//! its `float_roundtrip` feature fixes that at a cost), and a copy must keep every float
//! bit for bit. Here a number's text goes to Rust's `str::parse`, which is exact. Strings
//! without escapes are borrowed from the body; names that repeat on every point (measurement,
//! tag keys and values, field keys) are interned as shared [`Name`]s, so a point costs one
//! allocation for its fields and none for its names.
//!
//! Types: InfluxDB's JSON prints the float `100.0` as `100`, so a number's type comes from the
//! field's type in `SHOW FIELD KEYS` ([`FieldTypes`]): a float field gives
//! [`FieldValue::Float`] whatever the spelling, an integer field [`FieldValue::Integer`] (or a
//! float if the text has a fraction or exponent: another shard may hold that field as a
//! float); a response to statements on several measurements types each series by its own
//! measurement ([`Rows::PointsOf`]). Strings and booleans speak for themselves. A `null` cell
//! means the point lacks that field; a row with no field left is dropped (it still counts as
//! a returned row).

use crate::json::{Lexer, Malformed};
use dms_core::model::{FieldValue, Name, Nanos, Point};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A field's type as `SHOW FIELD KEYS` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// `float`.
    Float,
    /// `integer`.
    Integer,
    /// `string`.
    String,
    /// `boolean`.
    Boolean,
}

impl FieldType {
    /// Reads InfluxDB's type name; `None` for types dms does not copy (`unsigned`).
    pub fn from_influx(name: &str) -> Option<FieldType> {
        match name {
            "float" => Some(FieldType::Float),
            "integer" => Some(FieldType::Integer),
            "string" => Some(FieldType::String),
            "boolean" => Some(FieldType::Boolean),
            _ => None,
        }
    }
}

/// Field types of one measurement, by field key.
pub type FieldTypes = HashMap<String, FieldType>;

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A column is not in the measurement's [`FieldTypes`]: refresh them and parse again.
    #[error("field {0:?} has no known type")]
    UnknownField(String),
    /// The body is not the JSON InfluxDB sends.
    #[error("malformed query response: {0}")]
    Malformed(String),
}

impl From<Malformed> for ParseError {
    fn from(e: Malformed) -> Self {
        ParseError::Malformed(e.0)
    }
}

/// What to make of each series' `values`.
#[derive(Clone, Copy)]
pub enum Rows<'t> {
    /// Only timestamps (row count and last time); the cells are skipped.
    Times,
    /// Whole points; fields typed by the measurement's field types.
    Points(&'t FieldTypes),
    /// Whole points of several measurements (one request, a statement per measurement),
    /// each series typed by its own measurement's field types.
    PointsOf(&'t HashMap<String, Arc<FieldTypes>>),
    /// A table of strings (`SHOW` statements).
    Table,
    /// Whole points typed by their JSON alone: strings, booleans, and numbers as integers
    /// when written without a fraction or exponent, else floats. For fingerprints, which see
    /// values, not types (an integral float prints as an integer in InfluxDB's JSON).
    Inferred,
}

/// Hands out one shared [`Name`] per distinct string.
#[derive(Default)]
pub struct Interner {
    names: HashSet<Name>,
}

/// Distinct names an [`Interner`] keeps; past it, names are still correct, just not shared.
const INTERN_MAX: usize = 4096;

impl Interner {
    /// The shared name for `s`.
    pub fn name(&mut self, s: &str) -> Name {
        if let Some(n) = self.names.get(s) {
            return n.clone();
        }
        let n: Name = Arc::from(s);
        if self.names.len() < INTERN_MAX {
            self.names.insert(n.clone());
        }
        n
    }
}

/// One InfluxDB series (a tag set) in a statement's result.
#[derive(Debug, Default)]
pub struct SeriesData {
    /// Measurement (or the `SHOW` statement's table name).
    pub measurement: Name,
    /// Tags with a value, sorted by key (InfluxDB reports absent tags as `""`).
    pub tags: dms_core::model::Tags,
    /// Column names.
    pub columns: Vec<String>,
    /// Rows returned, including rows dropped for having no field.
    pub rows: usize,
    /// The server cut the rows short (`"partial": true`, e.g. its `max-row-limit`): more
    /// rows follow the last one.
    pub partial: bool,
    /// Time of the last row, in the order returned.
    pub last_time: Option<Nanos>,
    /// Newest time among the rows.
    pub max_time: Option<Nanos>,
    /// Points ([`Rows::Points`] only).
    pub points: Vec<Point>,
    /// Cells as text ([`Rows::Table`] only); `None` for `null`.
    pub table: Vec<Vec<Option<String>>>,
}

impl SeriesData {
    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }
}

/// One statement's result.
#[derive(Debug, Default)]
pub struct Statement {
    /// Which statement of the query this answers (`statement_id`, from 0): in a chunked
    /// answer, the chunks of one statement follow each other.
    pub id: Option<usize>,
    /// Series returned.
    pub series: Vec<SeriesData>,
    /// The statement's error, if it failed.
    pub error: Option<String>,
    /// The server cut the result short (`"partial": true`).
    pub partial: bool,
}

/// A whole `/query` response.
#[derive(Debug, Default)]
pub struct Response {
    /// One entry per statement, in order.
    pub results: Vec<Statement>,
    /// An error for the whole request.
    pub error: Option<String>,
}

/// Parses a `/query` response body.
///
/// # Errors
/// [`ParseError::UnknownField`] when `rows` is [`Rows::Points`] and a column has no known type;
/// [`ParseError::Malformed`] when the body is not InfluxDB's JSON.
pub fn parse_query(
    body: &[u8],
    rows: Rows<'_>,
    names: &mut Interner,
) -> Result<Response, ParseError> {
    let mut lx = Lexer::new(body);
    let mut resp = Response::default();
    lx.eat(b'{')?;
    let mut first = true;
    while lx.more(b'}', &mut first)? {
        let key = lx.key()?;
        match &*key {
            "results" => {
                if lx.null()? {
                    continue;
                }
                lx.eat(b'[')?;
                let mut first = true;
                while lx.more(b']', &mut first)? {
                    resp.results.push(statement(&mut lx, rows, names)?);
                }
            }
            "error" => resp.error = lx.opt_string()?.map(Cow::into_owned),
            _ => lx.skip_value(0)?,
        }
    }
    lx.end()?;
    Ok(resp)
}

/// The message of an error body, if it has one: `{"error":"..."}` (1.x, 3.x) or
/// `{"code":"...","message":"..."}` (2.x).
pub fn error_message(body: &[u8]) -> Option<String> {
    let mut lx = Lexer::new(body);
    lx.eat(b'{').ok()?;
    let mut first = true;
    let mut message = None;
    while lx.more(b'}', &mut first).ok()? {
        let key = lx.key().ok()?;
        match &*key {
            "error" => return lx.opt_string().ok()?.map(Cow::into_owned),
            "message" => message = lx.opt_string().ok()?.map(Cow::into_owned),
            _ => lx.skip_value(0).ok()?,
        }
    }
    message
}

fn statement(
    lx: &mut Lexer<'_>,
    rows: Rows<'_>,
    names: &mut Interner,
) -> Result<Statement, ParseError> {
    let mut st = Statement::default();
    lx.eat(b'{')?;
    let mut first = true;
    while lx.more(b'}', &mut first)? {
        let key = lx.key()?;
        match &*key {
            "series" => {
                if lx.null()? {
                    continue;
                }
                lx.eat(b'[')?;
                let mut first = true;
                while lx.more(b']', &mut first)? {
                    st.series.push(series(lx, rows, names)?);
                }
            }
            "error" => st.error = lx.opt_string()?.map(Cow::into_owned),
            "partial" => st.partial = lx.boolean()?,
            "statement_id" => {
                let n = lx.number()?;
                st.id = std::str::from_utf8(n).ok().and_then(|n| n.parse().ok());
            }
            _ => lx.skip_value(0)?,
        }
    }
    Ok(st)
}

/// How one column's cells are read.
enum Col {
    Time,
    Field(Name, FieldType),
    Skip,
}

fn series(
    lx: &mut Lexer<'_>,
    rows: Rows<'_>,
    names: &mut Interner,
) -> Result<SeriesData, ParseError> {
    let mut s = SeriesData {
        measurement: names.name(""),
        ..SeriesData::default()
    };
    let mut columns: Option<Vec<String>> = None;
    let mut values_at: Option<usize> = None;
    // Points take the name and tags known when their row is read; InfluxDB sends both before
    // the values, and if a server did not, they are set again at the end.
    let mut values_read = false;
    let mut late_identity = false;
    // Typing by measurement needs the name before the values.
    let mut name_read = !matches!(rows, Rows::PointsOf(_));
    lx.eat(b'{')?;
    let mut first = true;
    while lx.more(b'}', &mut first)? {
        let key = lx.key()?;
        match &*key {
            "name" => {
                s.measurement = names.name(&lx.opt_string()?.unwrap_or_default());
                late_identity |= values_read;
                name_read = true;
            }
            "tags" => {
                s.tags = tags(lx, names)?.into();
                late_identity |= values_read;
            }
            "partial" => s.partial = lx.boolean()?,
            "columns" => {
                let mut cols = Vec::new();
                lx.eat(b'[')?;
                let mut first = true;
                while lx.more(b']', &mut first)? {
                    cols.push(lx.string()?.into_owned());
                }
                columns = Some(cols);
            }
            "values" => match &columns {
                Some(cols) if name_read => {
                    values(lx, cols, rows, names, &mut s)?;
                    values_read = true;
                }
                _ => {
                    // Columns (and the name) come first in every InfluxDB version; if not,
                    // come back later.
                    values_at = Some(lx.i);
                    lx.skip_value(0)?;
                }
            },
            _ => lx.skip_value(0)?,
        }
    }
    if let Some(at) = values_at {
        let cols = columns
            .as_ref()
            .ok_or_else(|| ParseError::Malformed("a series has values but no columns".into()))?;
        let resume = lx.i;
        lx.i = at;
        values(lx, cols, rows, names, &mut s)?;
        lx.i = resume;
    }
    if late_identity {
        for p in &mut s.points {
            p.measurement = s.measurement.clone();
            p.tags = s.tags.clone();
        }
    }
    s.columns = columns.unwrap_or_default();
    Ok(s)
}

fn tags(lx: &mut Lexer<'_>, names: &mut Interner) -> Result<Vec<(Name, Name)>, ParseError> {
    let mut out = Vec::new();
    if lx.null()? {
        return Ok(out);
    }
    lx.eat(b'{')?;
    let mut first = true;
    while lx.more(b'}', &mut first)? {
        let k = lx.key()?;
        let v = lx.opt_string()?;
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push((names.name(&k), names.name(&v)));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn values(
    lx: &mut Lexer<'_>,
    columns: &[String],
    rows: Rows<'_>,
    names: &mut Interner,
    s: &mut SeriesData,
) -> Result<(), ParseError> {
    if lx.null()? {
        return Ok(());
    }
    if let Rows::Table = rows {
        lx.eat(b'[')?;
        let mut first = true;
        while lx.more(b']', &mut first)? {
            s.table.push(table_row(lx)?);
            s.rows += 1;
        }
        return Ok(());
    }
    let cols = column_kinds(columns, rows, &s.measurement, names)?;
    let fields_per_row = cols.len() - 1;
    lx.eat(b'[')?;
    let mut first = true;
    while lx.more(b']', &mut first)? {
        lx.eat(b'[')?;
        let mut time = None;
        let mut fields = Vec::new();
        let mut first_cell = true;
        let mut n = 0;
        while lx.more(b']', &mut first_cell)? {
            match cols.get(n) {
                Some(Col::Time) => time = Some(read_time(lx)?),
                Some(Col::Field(name, ty)) => {
                    if let Some(v) = read_cell(lx, *ty)? {
                        if fields.capacity() == 0 {
                            fields.reserve_exact(fields_per_row);
                        }
                        fields.push((name.clone(), v));
                    }
                }
                Some(Col::Skip) => lx.skip_value(0)?,
                None => return Err(lx.err("a row has more cells than columns").into()),
            }
            n += 1;
        }
        let time = time.ok_or_else(|| lx.err("an empty row"))?;
        s.rows += 1;
        s.last_time = Some(time);
        s.max_time = Some(s.max_time.map_or(time, |m| m.max(time)));
        if !fields.is_empty() {
            s.points.push(Point {
                measurement: s.measurement.clone(),
                tags: s.tags.clone(),
                fields,
                time,
            });
        }
    }
    Ok(())
}

/// How each column of a series of `measurement` is read: time first, then fields typed
/// per `rows` (or skipped).
fn column_kinds(
    columns: &[String],
    rows: Rows<'_>,
    measurement: &str,
    names: &mut Interner,
) -> Result<Vec<Col>, ParseError> {
    if columns.first().map(String::as_str) != Some("time") {
        return Err(ParseError::Malformed("the first column is not time".into()));
    }
    let mut cols = Vec::with_capacity(columns.len());
    cols.push(Col::Time);
    // A measurement PointsOf was not given types for has no known field.
    let no_types = FieldTypes::new();
    let types = match rows {
        Rows::Points(types) => Some(types),
        Rows::PointsOf(by_measurement) => {
            Some(by_measurement.get(measurement).map_or(&no_types, |t| &**t))
        }
        Rows::Inferred => {
            for c in &columns[1..] {
                // `cell` reads a number as an integer when it can, for any non-float type.
                cols.push(Col::Field(names.name(c), FieldType::Integer));
            }
            return Ok(cols);
        }
        Rows::Times | Rows::Table => None,
    };
    for c in &columns[1..] {
        cols.push(match types {
            Some(types) => match types.get(c) {
                Some(ty) => Col::Field(names.name(c), *ty),
                None => return Err(ParseError::UnknownField(c.clone())),
            },
            None => Col::Skip,
        });
    }
    Ok(cols)
}

fn table_row(lx: &mut Lexer<'_>) -> Result<Vec<Option<String>>, ParseError> {
    let mut row = Vec::new();
    lx.eat(b'[')?;
    let mut first = true;
    while lx.more(b']', &mut first)? {
        row.push(match lx.peek() {
            Some(b'"') => Some(lx.string()?.into_owned()),
            Some(b'n') => {
                lx.literal("null")?;
                None
            }
            Some(b't') => {
                lx.literal("true")?;
                Some("true".into())
            }
            Some(b'f') => {
                lx.literal("false")?;
                Some("false".into())
            }
            _ => Some(String::from_utf8_lossy(lx.number()?).into_owned()),
        });
    }
    Ok(row)
}

/// An integer in plain decimal (`-12`), or `None` (a fraction, an exponent, an overflow).
fn parse_i64(t: &[u8]) -> Option<i64> {
    let (negative, digits) = match t.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, t),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        let d = i64::from(c.wrapping_sub(b'0'));
        if !(0..=9).contains(&d) {
            return None;
        }
        // Accumulate negatively so that i64::MIN fits.
        v = v.checked_mul(10)?.checked_sub(d)?;
    }
    if negative { Some(v) } else { v.checked_neg() }
}

/// A point's time: integer nanoseconds (the query asks for `epoch=ns`).
fn read_time(lx: &mut Lexer<'_>) -> Result<Nanos, ParseError> {
    if lx.peek() == Some(b'"') {
        return Err(lx.err("a time as text (the query needs epoch=ns)").into());
    }
    let t = lx.number()?;
    Ok(parse_i64(t).ok_or_else(|| lx.err("a time that is not integer nanoseconds"))?)
}

/// One cell of a field column.
fn read_cell(lx: &mut Lexer<'_>, ty: FieldType) -> Result<Option<FieldValue>, ParseError> {
    Ok(Some(match lx.peek() {
        Some(b'n') => {
            lx.literal("null")?;
            return Ok(None);
        }
        Some(b'"') => FieldValue::String(lx.string()?.into_owned()),
        Some(b't') => {
            lx.literal("true")?;
            FieldValue::Boolean(true)
        }
        Some(b'f') => {
            lx.literal("false")?;
            FieldValue::Boolean(false)
        }
        _ => {
            let t = lx.number()?;
            let integer = match ty {
                FieldType::Float => None,
                _ => parse_i64(t),
            };
            match integer {
                Some(i) => FieldValue::Integer(i),
                // Exact: Rust's float parsing is correctly rounded.
                None => FieldValue::Float(
                    std::str::from_utf8(t)
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .ok_or_else(|| lx.err("a bad number"))?,
                ),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> FieldTypes {
        [
            ("close", FieldType::Float),
            ("volume", FieldType::Integer),
            ("note", FieldType::String),
            ("halted", FieldType::Boolean),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_string(), t))
        .collect()
    }

    const BODY: &str = r#"{"results":[{"statement_id":0,"series":[
        {"name":"kline","tags":{"extra":"","interval":"1m","symbol":"A"},
         "columns":["time","close","halted","note","volume"],
         "values":[[1000,100,true,"x\"y\u00e9\ud83d\ude00",5],[2000,null,null,null,null],
                   [3000,0.30000000000000004,false,null,-9223372036854775808]]},
        {"name":"kline","tags":{"extra":"z","interval":"1m","symbol":"A"},
         "columns":["time","close","halted","note","volume"],
         "values":[[1000,2.5,null,null,7.5]]}]}]}"#;

    #[test]
    fn points_keep_types_tags_and_exact_values() {
        let t = types();
        let mut names = Interner::default();
        let r = parse_query(BODY.as_bytes(), Rows::Points(&t), &mut names).unwrap();
        let s = &r.results[0].series;
        assert_eq!(s.len(), 2);
        let a = &s[0];
        assert_eq!(a.rows, 3);
        assert_eq!(a.last_time, Some(3000));
        // The all-null row is dropped; the empty tag is absent.
        assert_eq!(a.points.len(), 2);
        assert_eq!(a.tag("extra"), None);
        assert_eq!(a.tag("symbol"), Some("A"));
        let p = &a.points[0];
        assert_eq!(p.field("close"), Some(&FieldValue::Float(100.0)));
        assert_eq!(p.field("volume"), Some(&FieldValue::Integer(5)));
        assert_eq!(p.field("halted"), Some(&FieldValue::Boolean(true)));
        assert_eq!(p.field("note"), Some(&FieldValue::String("x\"yé😀".into())));
        let p = &a.points[1];
        assert_eq!(p.field("close"), Some(&FieldValue::Float(0.1 + 0.2)));
        assert_eq!(p.field("volume"), Some(&FieldValue::Integer(i64::MIN)));
        assert_eq!(p.field("note"), None);
        // A fraction in an integer column is a float (another shard's type).
        assert_eq!(
            s[1].points[0].field("volume"),
            Some(&FieldValue::Float(7.5))
        );
        assert_eq!(s[1].tag("extra"), Some("z"));
        // Names are shared.
        assert!(Arc::ptr_eq(
            &a.points[0].measurement,
            &s[1].points[0].measurement
        ));
        assert!(Arc::ptr_eq(
            &a.points[0].fields[0].0,
            &a.points[1].fields[0].0
        ));
    }

    #[test]
    fn floats_are_exact_where_serde_json_rounds() {
        let t = types();
        for f in [
            971.9863718547629_f64,
            124.89148443491327,
            104.16736132693127,
            5e-324,
            1e21,
        ] {
            let body = format!(
                r#"{{"results":[{{"series":[{{"name":"m","columns":["time","close"],"values":[[1,{f:?}]]}}]}}]}}"#
            );
            let r =
                parse_query(body.as_bytes(), Rows::Points(&t), &mut Interner::default()).unwrap();
            let got = r.results[0].series[0].points[0].field("close").cloned();
            assert_eq!(got, Some(FieldValue::Float(f)), "{body}");
        }
    }

    #[test]
    fn unknown_columns_ask_for_fresh_types() {
        let t: FieldTypes = FieldTypes::new();
        let err = parse_query(BODY.as_bytes(), Rows::Points(&t), &mut Interner::default());
        assert_eq!(err.unwrap_err(), ParseError::UnknownField("close".into()));
    }

    #[test]
    fn times_only_skips_cells() {
        let r = parse_query(BODY.as_bytes(), Rows::Times, &mut Interner::default()).unwrap();
        let a = &r.results[0].series[0];
        assert_eq!((a.rows, a.max_time, a.points.len()), (3, Some(3000), 0));
        assert!(!a.partial);
        let cut = r#"{"results":[{"statement_id":0,"series":[{"name":"m","columns":["time","v"],"values":[[1,1]],"partial":true}],"partial":true}]}"#;
        let r = parse_query(cut.as_bytes(), Rows::Times, &mut Interner::default()).unwrap();
        assert!(r.results[0].partial && r.results[0].series[0].partial);
    }

    #[test]
    fn each_measurement_types_its_own_fields() {
        let body = r#"{"results":[
            {"statement_id":0,"series":[{"values":[[5,1]],"name":"a","columns":["time","v"]}]},
            {"statement_id":1,"series":[{"name":"b","columns":["time","v"],"values":[[6,1]]}]}]}"#;
        let by: HashMap<String, Arc<FieldTypes>> =
            [("a", FieldType::Float), ("b", FieldType::Integer)]
                .into_iter()
                .map(|(m, t)| (m.to_string(), Arc::new([("v".to_string(), t)].into())))
                .collect();
        let r = parse_query(
            body.as_bytes(),
            Rows::PointsOf(&by),
            &mut Interner::default(),
        )
        .unwrap();
        let v = |i: usize| r.results[i].series[0].points[0].field("v").cloned();
        assert_eq!(v(0), Some(FieldValue::Float(1.0)), "values before the name");
        assert_eq!(v(1), Some(FieldValue::Integer(1)));
        let only_a: HashMap<String, Arc<FieldTypes>> =
            by.into_iter().filter(|(m, _)| m == "a").collect();
        let err = parse_query(
            body.as_bytes(),
            Rows::PointsOf(&only_a),
            &mut Interner::default(),
        );
        assert_eq!(err.unwrap_err(), ParseError::UnknownField("v".into()));
    }

    #[test]
    fn values_before_columns_still_parse() {
        let body = r#"{"results":[{"series":[{"values":[[5,1]],"name":"m","columns":["time","close"]}]}]}"#;
        let t = types();
        let r = parse_query(body.as_bytes(), Rows::Points(&t), &mut Interner::default()).unwrap();
        let p = &r.results[0].series[0].points[0];
        assert_eq!((&*p.measurement, p.time), ("m", 5));
    }

    #[test]
    fn statement_errors_tables_and_error_bodies() {
        let body = r#"{"results":[{"statement_id":0,"error":"database not found: x"},
            {"statement_id":1,"series":[{"name":"kline","columns":["fieldKey","fieldType"],
             "values":[["close","float"],["volume","integer"]]}]},{"statement_id":2}]}"#;
        let r = parse_query(body.as_bytes(), Rows::Table, &mut Interner::default()).unwrap();
        assert_eq!(r.results.len(), 3);
        assert_eq!(r.results[0].error.as_deref(), Some("database not found: x"));
        assert_eq!(r.results[2].id, Some(2));
        let table = &r.results[1].series[0].table;
        assert_eq!(
            table[1],
            vec![Some("volume".into()), Some("integer".into())]
        );
        assert!(r.results[2].series.is_empty());
        assert_eq!(
            error_message(br#"{"error":"partial write: field type conflict"}"#).as_deref(),
            Some("partial write: field type conflict")
        );
        assert_eq!(
            error_message(br#"{"code":"not found","message":"bucket \"x\" not found"}"#).as_deref(),
            Some("bucket \"x\" not found")
        );
        assert_eq!(error_message(b"<html>"), None);
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let t = types();
        for body in [
            "",
            "{",
            r#"{"results":[{"series":[{"name":"m","columns":["time","close"],"values":[[1,2]"#,
            r#"{"results":[{"series":[{"name":"m","columns":["time","close"],"values":[["2020-01-01T00:00:00Z",2]]}]}]}"#,
            r#"{"results":[{"series":[{"name":"m","columns":["close"],"values":[[2]]}]}]}"#,
            r#"{"results":[{"series":[{"name":"m","columns":["time"],"values":[[1,2]]}]}]}"#,
            r#"{"results":[{"series":[{"name":"\ud800","columns":[],"values":[]}]}]}"#,
            r#"{"results":[]} x"#,
            r#"{"error":"ends in \"#,
        ] {
            let r = parse_query(body.as_bytes(), Rows::Points(&t), &mut Interner::default());
            assert!(matches!(r, Err(ParseError::Malformed(_))), "{body}: {r:?}");
        }
        // Every truncation of a good body is an error, never a panic.
        for end in 0..BODY.len() {
            let _ = parse_query(
                &BODY.as_bytes()[..end],
                Rows::Points(&t),
                &mut Interner::default(),
            );
            let _ = parse_query(
                &BODY.as_bytes()[..end],
                Rows::Table,
                &mut Interner::default(),
            );
            let _ = error_message(&BODY.as_bytes()[..end]);
        }
        let deep = "[".repeat(1000);
        let body = format!(r#"{{"x":{deep}"#);
        assert!(parse_query(body.as_bytes(), Rows::Times, &mut Interner::default()).is_err());
    }
}
