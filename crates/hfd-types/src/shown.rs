//! Paths made safe to show on a terminal.
//!
//! A listed path comes from the server. Control characters are refused when
//! the listing is parsed, but bidirectional overrides and other invisible
//! format characters are valid in file names and would let a hostile repo
//! make a name read as another one (`U+202E` turns `evil\u{202e}txt.exe`
//! into what looks like `evilexe.txt`). Where a path is shown to a person
//! (error lines, progress, the dry-run list) these characters are written
//! as `\u{…}` escapes; `--json` keeps the exact string (JSON escaping covers
//! control characters, and a program needs the real name to find the file).

use std::borrow::Cow;

/// Whether `c` is shown as an escape: control characters (C0, DEL, C1),
/// bidirectional marks, embeddings, overrides and isolates, and invisible
/// format characters (zero-width space/joiners, word joiner, BOM).
pub fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `path` with every [deceptive](is_deceptive) character written as
/// `\u{hex}`; borrowed unchanged when there is none.
pub fn shown_path(path: &str) -> Cow<'_, str> {
    if !path.chars().any(is_deceptive) {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 8);
    for c in path.chars() {
        if is_deceptive(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::shown_path;

    #[test]
    fn bidi_and_control_characters_are_escaped() {
        assert_eq!(shown_path("a/b c.bin"), "a/b c.bin");
        assert_eq!(shown_path("café/模型.bin"), "café/模型.bin");
        assert_eq!(shown_path("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(shown_path("a\u{2066}b\u{2069}"), "a\\u{2066}b\\u{2069}");
        assert_eq!(shown_path("x\u{1b}[2J\u{85}"), "x\\u{1b}[2J\\u{85}");
        assert_eq!(shown_path("z\u{200b}w\u{feff}"), "z\\u{200b}w\\u{feff}");
    }
}
