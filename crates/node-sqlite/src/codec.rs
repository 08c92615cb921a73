//! The binary encoding of a stored point's fields, which keeps each field's type: per field a
//! little-endian `u16` key length, the key, a type byte (0 float, 1 integer, 2 string,
//! 3 boolean) and the value (8 bytes; a `u32` length and UTF-8; 1 byte). Also the field-wise
//! merge the node's writes use ([`merge_encoded`]).

use dms_core::model::{FieldValue, Name};
use std::sync::Arc;

/// Why a stored point's fields cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unreadable {
    /// The blob ends inside a field.
    #[error("truncated field data")]
    Truncated,
    /// A field key is not UTF-8.
    #[error("field key: {0}")]
    Key(std::str::Utf8Error),
    /// A string value is not UTF-8.
    #[error("{0}")]
    Text(std::str::Utf8Error),
    /// A type byte this encoding does not know.
    #[error("unknown field type {0}")]
    Type(u8),
}

/// Reuses one `Name` per distinct field key while decoding many points.
#[derive(Default)]
pub(crate) struct KeyInterner {
    keys: Vec<Name>,
}

impl KeyInterner {
    pub(crate) fn get(&mut self, bytes: &[u8]) -> Result<Name, Unreadable> {
        if let Some(k) = self.keys.iter().find(|k| k.as_bytes() == bytes) {
            return Ok(k.clone());
        }
        let s = std::str::from_utf8(bytes).map_err(Unreadable::Key)?;
        let k: Name = Arc::from(s);
        if self.keys.len() < 256 {
            self.keys.push(k.clone());
        }
        Ok(k)
    }
}

const T_FLOAT: u8 = 0;
const T_INT: u8 = 1;
const T_STR: u8 = 2;
const T_BOOL: u8 = 3;

pub(crate) fn encode_fields(fields: &[(Name, FieldValue)], out: &mut Vec<u8>) {
    for (k, v) in fields {
        let kb = k.as_bytes();
        let klen = u16::try_from(kb.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&klen.to_le_bytes());
        out.extend_from_slice(&kb[..usize::from(klen)]);
        match v {
            FieldValue::Float(f) => {
                out.push(T_FLOAT);
                out.extend_from_slice(&f.to_le_bytes());
            }
            FieldValue::Integer(i) => {
                out.push(T_INT);
                out.extend_from_slice(&i.to_le_bytes());
            }
            FieldValue::String(s) => {
                out.push(T_STR);
                let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&s.as_bytes()[..len as usize]);
            }
            FieldValue::Boolean(b) => {
                out.push(T_BOOL);
                out.push(u8::from(*b));
            }
        }
    }
}

pub(crate) fn decode_fields(
    mut b: &[u8],
    keys: &mut KeyInterner,
) -> Result<Vec<(Name, FieldValue)>, Unreadable> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], Unreadable> {
        if b.len() < n {
            return Err(Unreadable::Truncated);
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Ok(head)
    }
    fn arr8(s: &[u8]) -> [u8; 8] {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        a
    }
    let mut out = Vec::with_capacity(6);
    while !b.is_empty() {
        let klen = take(&mut b, 2)?;
        let klen = usize::from(u16::from_le_bytes([klen[0], klen[1]]));
        let key = keys.get(take(&mut b, klen)?)?;
        let t = take(&mut b, 1)?[0];
        let v = match t {
            T_FLOAT => FieldValue::Float(f64::from_le_bytes(arr8(take(&mut b, 8)?))),
            T_INT => FieldValue::Integer(i64::from_le_bytes(arr8(take(&mut b, 8)?))),
            T_STR => {
                let l = take(&mut b, 4)?;
                let len = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
                let s = std::str::from_utf8(take(&mut b, len)?).map_err(Unreadable::Text)?;
                FieldValue::String(s.to_string())
            }
            T_BOOL => FieldValue::Boolean(take(&mut b, 1)?[0] != 0),
            other => return Err(Unreadable::Type(other)),
        };
        out.push((key, v));
    }
    Ok(out)
}

/// One encoded field: its key and its whole encoding (key included), as slices of the blob.
type RawField<'a> = (&'a [u8], &'a [u8]);

/// The fields of an encoded blob, undecoded.
fn split_fields(mut b: &[u8]) -> Result<Vec<RawField<'_>>, Unreadable> {
    let mut out = Vec::with_capacity(6);
    while !b.is_empty() {
        let start = b;
        let need = |b: &[u8], n: usize| {
            if b.len() < n {
                Err(Unreadable::Truncated)
            } else {
                Ok(())
            }
        };
        need(b, 2)?;
        let klen = usize::from(u16::from_le_bytes([b[0], b[1]]));
        need(b, 2 + klen + 1)?;
        let key = &b[2..2 + klen];
        let t = b[2 + klen];
        let rest = &b[3 + klen..];
        let vlen = match t {
            T_FLOAT | T_INT => 8,
            T_BOOL => 1,
            T_STR => {
                need(rest, 4)?;
                4 + u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize
            }
            other => return Err(Unreadable::Type(other)),
        };
        need(rest, vlen)?;
        let whole = 3 + klen + vlen;
        out.push((key, &start[..whole]));
        b = &start[whole..];
    }
    Ok(out)
}

/// The stored point `old` updated by the written point `new`, field by field: every field of
/// `new`, then the fields of `old` that `new` does not carry (InfluxDB's rule for a point
/// written again at the same series and time).
///
/// # Errors
/// [`Unreadable`] when either blob is not this encoding.
pub(crate) fn merge_encoded(old: &[u8], new: &[u8]) -> Result<Vec<u8>, Unreadable> {
    let new_fields = split_fields(new)?;
    let mut out = Vec::with_capacity(old.len() + new.len());
    out.extend_from_slice(new);
    for (key, whole) in split_fields(old)? {
        if !new_fields.iter().any(|(k, _)| *k == key) {
            out.extend_from_slice(whole);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_encoding_round_trips_every_type() {
        let fields: Vec<(Name, FieldValue)> = vec![
            (Arc::from("f"), FieldValue::Float(1.5)),
            (Arc::from("i"), FieldValue::Integer(-7)),
            (Arc::from("s"), FieldValue::String("a \"q\" ü".into())),
            (Arc::from("b"), FieldValue::Boolean(true)),
        ];
        let mut buf = Vec::new();
        encode_fields(&fields, &mut buf);
        let back = decode_fields(&buf, &mut KeyInterner::default()).unwrap();
        assert_eq!(back, fields);
        assert!(matches!(
            decode_fields(&buf[..buf.len() - 1], &mut KeyInterner::default()),
            Err(Unreadable::Truncated)
        ));
    }

    #[test]
    fn a_merge_keeps_old_fields_the_new_point_lacks_and_takes_the_new_values() {
        let enc = |fields: &[(&str, FieldValue)]| {
            let f: Vec<(Name, FieldValue)> = fields
                .iter()
                .map(|(k, v)| (Arc::from(*k), v.clone()))
                .collect();
            let mut buf = Vec::new();
            encode_fields(&f, &mut buf);
            buf
        };
        let old = enc(&[
            ("close", FieldValue::Float(1.0)),
            ("status", FieldValue::String("halted".into())),
        ]);
        let new = enc(&[
            ("close", FieldValue::Float(2.0)),
            ("volume", FieldValue::Integer(7)),
        ]);
        let merged = merge_encoded(&old, &new).expect("valid blobs");
        let mut back = decode_fields(&merged, &mut KeyInterner::default()).expect("decodes");
        back.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            back,
            vec![
                (Arc::from("close"), FieldValue::Float(2.0)),
                (Arc::from("status"), FieldValue::String("halted".into())),
                (Arc::from("volume"), FieldValue::Integer(7)),
            ]
        );
        assert!(matches!(
            merge_encoded(&old[..old.len() - 1], &new),
            Err(Unreadable::Truncated)
        ));
    }
}
