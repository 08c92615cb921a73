//! Line protocol: the text `/write` takes. One line per point:
//! `measurement,tag=value field=1.5,volume=10i,name="x" 1700000000000000000`.
//!
//! Escaping (InfluxDB 1.x rules, also those of 2.x and 3.x): commas and spaces in measurement
//! names; commas, `=` and spaces in tag keys, tag values and field keys; `"` and `\` inside
//! string field values. Backslashes are otherwise literal, so a name cannot carry a backslash
//! right before a character that needs escaping, or at its end: such names, empty tag values,
//! empty field keys, newlines in names and non-finite floats are refused before any request.
//! Integers carry an `i` suffix; a float is printed in the shortest form that reads back as
//! the same `f64` (`ryu`: `100.0`, `0.1`, `1e300`); timestamps are nanoseconds.

use dms_core::model::{FieldValue, Name, Point};

/// Why a point cannot be written as line protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Appends the line protocol of `points` to `out`, one line each.
///
/// Consecutive points of one series share their escaped `measurement,tags` prefix, and each
/// field key is checked and escaped once per call, so a batch costs little more than its
/// numbers.
///
/// # Errors
/// [`Invalid`] naming the first point that cannot be written; `out` then holds a partial body.
pub fn encode(points: &[Point], out: &mut Vec<u8>) -> Result<(), Invalid> {
    let mut prefix: Vec<u8> = Vec::with_capacity(64);
    let mut prefix_of: Option<&Point> = None;
    let mut keys = FieldKeys::default();
    let mut ints = itoa::Buffer::new();
    let mut floats = ryu::Buffer::new();
    for p in points {
        let at = |why: &dyn std::fmt::Display| {
            Invalid(format!("point at {} in {:?}: {why}", p.time, p.measurement))
        };
        // `Arc<str>` equality looks at the pointer first, so shared names compare at once.
        let same = prefix_of.is_some_and(|q| q.measurement == p.measurement && q.tags == p.tags);
        if !same {
            prefix.clear();
            series_prefix(p, &mut prefix).map_err(|e| at(&e))?;
            prefix_of = Some(p);
        }
        if p.fields.is_empty() {
            return Err(at(&"the point has no field"));
        }
        out.extend_from_slice(&prefix);
        let mut sep = b' ';
        for (k, v) in &p.fields {
            out.push(sep);
            sep = b',';
            out.extend_from_slice(keys.escaped(k).map_err(|e| at(&e))?);
            out.push(b'=');
            match v {
                FieldValue::Float(f) => {
                    if !f.is_finite() {
                        return Err(at(&format_args!(
                            "field {k:?} is {f}, which InfluxDB cannot store"
                        )));
                    }
                    // Shortest text that reads back as the same f64; `1.0`, `1e300`, never `1i`.
                    out.extend_from_slice(floats.format_finite(*f).as_bytes());
                }
                FieldValue::Integer(i) => {
                    out.extend_from_slice(ints.format(*i).as_bytes());
                    out.push(b'i');
                }
                FieldValue::Boolean(b) => {
                    out.extend_from_slice(if *b { b"true" } else { b"false" })
                }
                FieldValue::String(s) => {
                    out.push(b'"');
                    let bytes = s.as_bytes();
                    if bytes.iter().any(|&c| c == b'"' || c == b'\\') {
                        for &c in bytes {
                            if c == b'"' || c == b'\\' {
                                out.push(b'\\');
                            }
                            out.push(c);
                        }
                    } else {
                        out.extend_from_slice(bytes);
                    }
                    out.push(b'"');
                }
            }
        }
        out.push(b' ');
        out.extend_from_slice(ints.format(p.time).as_bytes());
        out.push(b'\n');
    }
    Ok(())
}

/// `measurement,tag=value,…` of a point, checked and escaped. An error says what is wrong
/// without naming the point; [`encode`] adds that.
fn series_prefix(p: &Point, out: &mut Vec<u8>) -> Result<(), Invalid> {
    if p.measurement.is_empty() {
        return Err(Invalid("the measurement name is empty".into()));
    }
    if p.measurement.starts_with('#') {
        return Err(Invalid(
            "a measurement name cannot start with '#' (a comment)".into(),
        ));
    }
    check_name(&p.measurement).map_err(|e| Invalid(format!("measurement name {e}")))?;
    escape(&p.measurement, b", ", out);
    for (k, v) in p.tags.iter() {
        if k.is_empty() {
            return Err(Invalid("a tag key is empty".into()));
        }
        if v.is_empty() {
            return Err(Invalid(format!("tag {k:?} has an empty value")));
        }
        check_name(k).map_err(|e| Invalid(format!("tag key {k:?} {e}")))?;
        check_name(v).map_err(|e| Invalid(format!("tag {k:?}: value {v:?} {e}")))?;
        out.push(b',');
        escape(k, b", =", out);
        out.push(b'=');
        escape(v, b", =", out);
    }
    Ok(())
}

/// Field keys already checked and escaped in this batch.
#[derive(Default)]
struct FieldKeys {
    keys: Vec<(Name, Vec<u8>)>,
    scratch: Vec<u8>,
}

/// Distinct field keys remembered per batch; more are escaped each time.
const MAX_KEYS: usize = 64;

impl FieldKeys {
    /// The escaped key; an error says what is wrong with it.
    fn escaped(&mut self, k: &Name) -> Result<&[u8], Invalid> {
        if let Some(i) = self.keys.iter().position(|(known, _)| known == k) {
            return Ok(&self.keys[i].1);
        }
        if k.is_empty() {
            return Err(Invalid("a field key is empty".into()));
        }
        check_name(k).map_err(|e| Invalid(format!("field key {k:?} {e}")))?;
        let mut e = Vec::with_capacity(k.len());
        escape(k, b", =", &mut e);
        if self.keys.len() < MAX_KEYS {
            self.keys.push((k.clone(), e));
            return Ok(&self.keys[self.keys.len() - 1].1);
        }
        self.scratch = e;
        Ok(&self.scratch)
    }
}

/// Checks what escaping cannot express: newlines, and a backslash before a special character
/// or at the end (line protocol would read it as an escape).
fn check_name(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    if b.iter().any(|&c| c == b'\n' || c == b'\r') {
        return Err("contains a line break");
    }
    for (i, &c) in b.iter().enumerate() {
        if c == b'\\' && matches!(b.get(i + 1), None | Some(b',' | b'=' | b' ' | b'"')) {
            return Err(
                "has a backslash at its end or before ',', '=', ' ' or '\"', which line protocol cannot carry",
            );
        }
    }
    Ok(())
}

/// Appends `s`, with a backslash before each byte in `special`.
fn escape(s: &str, special: &[u8], out: &mut Vec<u8>) {
    let b = s.as_bytes();
    if !b.iter().any(|c| special.contains(c)) {
        out.extend_from_slice(b);
        return;
    }
    for &c in b {
        if special.contains(&c) {
            out.push(b'\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn point(m: &str, tags: &[(&str, &str)], fields: Vec<(&str, FieldValue)>, time: i64) -> Point {
        Point {
            measurement: Arc::from(m),
            tags: tags
                .iter()
                .map(|(k, v)| (Name::from(*k), Name::from(*v)))
                .collect(),
            fields: fields
                .into_iter()
                .map(|(k, v)| (Name::from(k), v))
                .collect(),
            time,
        }
    }

    fn line(p: &Point) -> Result<String, Invalid> {
        let mut out = Vec::new();
        encode(std::slice::from_ref(p), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn writes_every_field_type() {
        let p = point(
            "kline",
            &[("interval", "1m"), ("symbol", "US.AAPL")],
            vec![
                ("close", FieldValue::Float(100.0)),
                ("open", FieldValue::Float(0.1)),
                ("volume", FieldValue::Integer(-42)),
                ("halted", FieldValue::Boolean(false)),
                ("note", FieldValue::String(r#"say "hi" \ bye"#.into())),
            ],
            1_700_000_000_000_000_001,
        );
        assert_eq!(
            line(&p).unwrap(),
            "kline,interval=1m,symbol=US.AAPL close=100.0,open=0.1,volume=-42i,halted=false,note=\"say \\\"hi\\\" \\\\ bye\" 1700000000000000001\n"
        );
    }

    #[test]
    fn escapes_names_and_keeps_unicode() {
        let p = point(
            "k line,x",
            &[("sym bol", "a,b=c d"), ("市场", "东京")],
            vec![("f=1, 2", FieldValue::Integer(1))],
            0,
        );
        assert_eq!(
            line(&p).unwrap(),
            "k\\ line\\,x,sym\\ bol=a\\,b\\=c\\ d,市场=东京 f\\=1\\,\\ 2=1i 0\n"
        );
        // `=` needs no escape in a measurement; a lone backslash is literal.
        let p = point(
            "a=b",
            &[("s", r"x\y")],
            vec![("v", FieldValue::Boolean(true))],
            -5,
        );
        assert_eq!(line(&p).unwrap(), "a=b,s=x\\y v=true -5\n");
    }

    #[test]
    fn floats_round_trip_exactly() {
        for f in [
            0.1,
            1.0 / 3.0,
            971.9863718547629,
            1e300,
            -2.5e-300,
            5e-324,
            f64::MAX,
            9_007_199_254_740_993.0,
            123456789012345680.0,
            -0.0,
            1e-5,
            9_999_999_999_999_998.0,
        ] {
            let p = point("m", &[], vec![("v", FieldValue::Float(f))], 0);
            let l = line(&p).unwrap();
            let s = l
                .strip_prefix("m v=")
                .unwrap()
                .strip_suffix(" 0\n")
                .unwrap();
            let back: f64 = s.parse().unwrap();
            assert_eq!(back.to_bits(), f.to_bits(), "{f} printed as {s}");
            assert!(!s.ends_with('i') && s.len() < 30, "{s}");
        }
    }

    #[test]
    fn batches_of_several_series_and_many_fields() {
        let a = point("m", &[("s", "A")], vec![("v", FieldValue::Integer(1))], 1);
        let b = point("m", &[("s", "B b")], vec![("v", FieldValue::Integer(2))], 1);
        let mut out = Vec::new();
        encode(&[a.clone(), a.clone(), b, a], &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "m,s=A v=1i 1\nm,s=A v=1i 1\nm,s=B\\ b v=2i 1\nm,s=A v=1i 1\n"
        );
        // More distinct keys than are remembered still come out right.
        let fields: Vec<(String, FieldValue)> = (0..100)
            .map(|i| (format!("f {i}"), FieldValue::Integer(i)))
            .collect();
        let p = Point {
            measurement: Arc::from("m"),
            tags: Vec::new().into(),
            fields: fields
                .iter()
                .map(|(k, v)| (Name::from(k.as_str()), v.clone()))
                .collect(),
            time: 0,
        };
        let l = line(&p).unwrap();
        assert!(
            l.contains(",f\\ 99=99i 0\n") && l.starts_with("m f\\ 0=0i,"),
            "{l}"
        );
    }

    #[test]
    fn refuses_what_line_protocol_cannot_carry() {
        let ok_field = || vec![("v", FieldValue::Float(1.0))];
        let bad = [
            point("m", &[("s", "")], ok_field(), 0),
            point("m", &[("", "x")], ok_field(), 0),
            point("m", &[("s", "a\nb")], ok_field(), 0),
            point("m", &[("s", r"ends\")], ok_field(), 0),
            point("m", &[("s", r"a\,b")], ok_field(), 0),
            point("", &[], ok_field(), 0),
            point("#m", &[], ok_field(), 0),
            point("m", &[], vec![], 0),
            point("m", &[], vec![("", FieldValue::Float(1.0))], 0),
            point("m", &[], vec![("v", FieldValue::Float(f64::NAN))], 0),
            point("m", &[], vec![("v", FieldValue::Float(f64::INFINITY))], 0),
        ];
        for p in &bad {
            assert!(line(p).is_err(), "accepted {p:?}");
        }
        let err = line(&bad[0]).unwrap_err();
        assert!(err.0.contains("empty value"), "{}", err.0);
    }
}
