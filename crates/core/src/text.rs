//! Untrusted text on its way to storage, logs and terminals, handled in one place.
//!
//! - [`clip`]: text kept (run errors, warnings, Lua error messages) is at most [`MAX_TEXT`]
//!   bytes, cut on a character boundary with a note of how much was cut, so no script or
//!   request can make the history, the logs or every API answer carry megabytes.
//! - [`escape_controls`]: control characters (newlines, ESC, …) in a name or message that a
//!   script or a request chose are shown as escapes (`\n`, `\u{1b}`), so such text cannot
//!   forge a log line or drive a terminal (`model::escape_controls` is this one).

use std::borrow::Cow;

/// The most bytes of one stored or returned message.
pub const MAX_TEXT: usize = 8 * 1024;

/// `text` cut to at most [`MAX_TEXT`] bytes (plus the note that says how much was cut).
pub fn clip(text: &str) -> Cow<'_, str> {
    clip_to(text, MAX_TEXT)
}

/// `text` cut to at most `max` bytes on a character boundary, plus a note of what was cut.
pub fn clip_to(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!(
        "{} … ({} more bytes cut)",
        &text[..end],
        text.len() - end
    ))
}

/// `text` with every control character written as an escape: `\n`, `\r`, `\t`, `\u{1b}`, …
/// Text without any comes back borrowed.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Control characters that move the cursor, end a line or start a terminal sequence
/// (C0, DEL, C1, and the Unicode line and paragraph separators).
fn is_unsafe(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let s = "é".repeat(10_000);
        let c = clip(&s);
        assert!(c.len() < MAX_TEXT + 40);
        assert!(c.ends_with("more bytes cut)"));
        assert_eq!(clip("short"), "short");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape_controls("US.X\n2026-01-01 INFO dms::daemon: forged\u{1b}[2J"),
            "US.X\\n2026-01-01 INFO dms::daemon: forged\\u{1b}[2J"
        );
        assert_eq!(escape_controls("a\tb\u{2028}"), "a\\tb\\u{2028}");
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
    }
}
