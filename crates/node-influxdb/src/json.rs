//! A small JSON pull lexer over a response body: no tree, strings borrowed when they hold no
//! escape, numbers handed over as their text (so the caller parses them exactly). It knows
//! JSON, nothing of InfluxDB; [`crate::parse`] reads InfluxDB's replies with it.

use std::borrow::Cow;

/// The body is not valid JSON where the reader expected a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Malformed(pub(crate) String);

/// Nesting deeper than this is not an InfluxDB response.
const MAX_DEPTH: usize = 64;

/// A cursor over the JSON text.
pub(crate) struct Lexer<'a> {
    b: &'a [u8],
    /// The read position, in bytes.
    pub(crate) i: usize,
}

impl<'a> Lexer<'a> {
    /// A cursor at the start of `b`.
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Lexer { b, i: 0 }
    }

    pub(crate) fn err(&self, what: &str) -> Malformed {
        Malformed(format!("{what} at byte {}", self.i))
    }

    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    pub(crate) fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    pub(crate) fn eat(&mut self, c: u8) -> Result<(), Malformed> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }

    pub(crate) fn end(&mut self) -> Result<(), Malformed> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.err("trailing data")),
        }
    }

    /// After `[`/`{` or an element: true when another element follows, false at `close`.
    pub(crate) fn more(&mut self, close: u8, first: &mut bool) -> Result<bool, Malformed> {
        match self.peek() {
            Some(c) if c == close => {
                self.i += 1;
                Ok(false)
            }
            Some(b',') if !*first => {
                self.i += 1;
                Ok(true)
            }
            Some(_) if *first => {
                *first = false;
                Ok(true)
            }
            _ => Err(self.err(&format!("expected ',' or '{}'", close as char))),
        }
    }

    pub(crate) fn key(&mut self) -> Result<Cow<'a, str>, Malformed> {
        let k = self.string()?;
        self.eat(b':')?;
        Ok(k)
    }

    pub(crate) fn literal(&mut self, word: &str) -> Result<(), Malformed> {
        self.ws();
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.err(&format!("expected {word}")))
        }
    }

    /// A `true`, `false` or `null` (false).
    pub(crate) fn boolean(&mut self) -> Result<bool, Malformed> {
        match self.peek() {
            Some(b't') => self.literal("true").map(|()| true),
            Some(b'f') => self.literal("false").map(|()| false),
            _ => self.literal("null").map(|()| false),
        }
    }

    /// Consumes a `null` if one comes next.
    pub(crate) fn null(&mut self) -> Result<bool, Malformed> {
        if self.peek() == Some(b'n') {
            self.literal("null")?;
            return Ok(true);
        }
        Ok(false)
    }

    pub(crate) fn opt_string(&mut self) -> Result<Option<Cow<'a, str>>, Malformed> {
        if self.null()? {
            return Ok(None);
        }
        self.string().map(Some)
    }

    pub(crate) fn string(&mut self) -> Result<Cow<'a, str>, Malformed> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.b.get(self.i) {
                Some(b'"') => {
                    let s = &self.b[start..self.i];
                    self.i += 1;
                    return std::str::from_utf8(s)
                        .map(Cow::Borrowed)
                        .map_err(|_| self.err("invalid UTF-8 in a string"));
                }
                Some(b'\\') => break,
                Some(c) if *c < 0x20 => return Err(self.err("a control character in a string")),
                Some(_) => self.i += 1,
                None => return Err(self.err("an unterminated string")),
            }
        }
        let mut out = self.b[start..self.i].to_vec();
        loop {
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    let Some(&c) = self.b.get(self.i + 1) else {
                        return Err(self.err("an unterminated string"));
                    };
                    self.i += 2;
                    let ch = match c {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.err("a bad escape in a string")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                Some(c) if *c < 0x20 => return Err(self.err("a control character in a string")),
                Some(&c) => {
                    out.push(c);
                    self.i += 1;
                }
                None => return Err(self.err("an unterminated string")),
            }
        }
        String::from_utf8(out)
            .map(Cow::Owned)
            .map_err(|_| self.err("invalid UTF-8 in a string"))
    }

    /// After `\u`: four hex digits, and a second `\uXXXX` when they are a high surrogate.
    pub(crate) fn unicode_escape(&mut self) -> Result<char, Malformed> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.b[self.i..].starts_with(b"\\u") {
                return Err(self.err("a lone surrogate in a string"));
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err("a bad surrogate pair in a string"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err("a bad \\u escape in a string"))
    }

    pub(crate) fn hex4(&mut self) -> Result<u32, Malformed> {
        let digits = self
            .b
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.err("a bad \\u escape in a string"))?;
        self.i += 4;
        Ok(digits)
    }

    /// The text of a number (validated by whoever parses it).
    pub(crate) fn number(&mut self) -> Result<&'a [u8], Malformed> {
        self.ws();
        let rest = &self.b[self.i..];
        let n = rest
            .iter()
            .position(|c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(self.err("expected a value"));
        }
        self.i += n;
        Ok(&rest[..n])
    }

    pub(crate) fn skip_value(&mut self, depth: usize) -> Result<(), Malformed> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{') => {
                self.i += 1;
                let mut first = true;
                while self.more(b'}', &mut first)? {
                    self.key()?;
                    self.skip_value(depth + 1)?;
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut first = true;
                while self.more(b']', &mut first)? {
                    self.skip_value(depth + 1)?;
                }
            }
            Some(b't') => self.literal("true")?,
            Some(b'f') => self.literal("false")?,
            Some(b'n') => self.literal("null")?,
            _ => {
                self.number()?;
            }
        }
        Ok(())
    }
}
