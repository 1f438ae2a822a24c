//! Checks on file paths that come from a listing (untrusted input).

use std::fmt;

/// Why a repo file path is refused. A hostile repository can name a file
/// `../../.bashrc`; such paths must never reach the file system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathProblem {
    /// The path is empty.
    Empty,
    /// The path starts with `/`.
    Absolute,
    /// The path starts with a Windows drive letter such as `C:`.
    DriveLetter,
    /// The path contains a `\` (a separator on Windows, UNC prefix).
    Backslash,
    /// The path contains a NUL byte.
    Nul,
    /// A segment is empty (`a//b`, trailing `/`).
    EmptySegment,
    /// A segment is `.`.
    DotSegment,
    /// A segment is `..`.
    ParentSegment,
    /// A segment is longer than [`MAX_SEGMENT_BYTES`] or the path longer
    /// than [`MAX_PATH_BYTES`] (no common file system could hold it).
    TooLong,
    /// The path contains a control character (newline, escape, …) that
    /// could forge log lines or terminal output.
    ControlCharacter,
}

/// Longest path segment accepted, in bytes (`NAME_MAX` of ext4, XFS, APFS).
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Longest repo path accepted, in bytes (`PATH_MAX` minus room for the
/// target folder and the state folder's suffixes).
pub const MAX_PATH_BYTES: usize = 3072;

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "the path is empty",
            Self::Absolute => "the path is absolute",
            Self::DriveLetter => "the path starts with a drive letter",
            Self::Backslash => "the path contains a backslash",
            Self::Nul => "the path contains a NUL byte",
            Self::EmptySegment => "the path has an empty segment",
            Self::DotSegment => "the path has a `.` segment",
            Self::ParentSegment => "the path has a `..` segment",
            Self::TooLong => "the path or one of its segments is too long",
            Self::ControlCharacter => "the path contains a control character",
        })
    }
}

#[cfg_attr(
    not(fuzzing),
    expect(
        unreachable_pub,
        reason = "public for `fuzz_bridge`, built only when fuzzing"
    )
)]
/// Checks that `path` is a safe relative `/`-separated path: not empty, not
/// absolute, no drive letter, no `\`, no NUL or other control character, no
/// empty, `.` or `..` segment, no segment over [`MAX_SEGMENT_BYTES`] and at
/// most [`MAX_PATH_BYTES`] in all. Spaces, `#`, `?`, `+`, `%` and non-ASCII
/// are fine.
pub fn check_repo_path(path: &str) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Empty);
    }
    if path.contains('\0') {
        return Err(PathProblem::Nul);
    }
    if path.contains('\\') {
        return Err(PathProblem::Backslash);
    }
    if path.chars().any(char::is_control) {
        return Err(PathProblem::ControlCharacter);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathProblem::TooLong);
    }
    if path.starts_with('/') {
        return Err(PathProblem::Absolute);
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(PathProblem::DriveLetter);
    }
    for segment in path.split('/') {
        match segment {
            "" => return Err(PathProblem::EmptySegment),
            "." => return Err(PathProblem::DotSegment),
            ".." => return Err(PathProblem::ParentSegment),
            s if s.len() > MAX_SEGMENT_BYTES => return Err(PathProblem::TooLong),
            _ => {}
        }
    }
    Ok(())
}

/// The key under which a case-insensitive, Unicode-normalising file system
/// (APFS, NTFS, SMB shares) stores `path`: NFC, then lower case. An ASCII
/// path (nearly every path of a dataset) is its own NFC form: only its
/// upper-case letters change.
fn fold(path: &str) -> std::borrow::Cow<'_, str> {
    use unicode_normalization::UnicodeNormalization;
    if path.is_ascii() {
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return path.to_ascii_lowercase().into();
        }
        return path.into();
    }
    path.nfc()
        .flat_map(char::to_lowercase)
        .nfc()
        .collect::<String>()
        .into()
}

/// [`find_path_collision`] as an error: [`Error::PathCollision`](crate::Error::PathCollision)
/// naming the first such pair.
pub fn check_path_collisions<'a>(paths: impl IntoIterator<Item = &'a str>) -> crate::Result<()> {
    match find_path_collision(paths) {
        Some((first, second)) => Err(crate::Error::PathCollision {
            first: first.to_owned(),
            second: second.to_owned(),
        }),
        None => Ok(()),
    }
}

/// The first pair of paths that differ but would name the same file on a
/// case-insensitive or Unicode-normalising file system (`README.md` and
/// `readme.md`; `é` precomposed and decomposed), in listing order.
///
/// Holds a hash of each folded path (keyed at random) and the path's
/// reference, not the folded text: 10^5 paths cost about 3 MiB, not 10.
pub fn find_path_collision<'a>(
    paths: impl IntoIterator<Item = &'a str>,
) -> Option<(&'a str, &'a str)> {
    use std::collections::hash_map::Entry;
    use std::hash::BuildHasher;
    let keys = std::collections::hash_map::RandomState::new();
    let mut seen: std::collections::HashMap<u64, &'a str> = std::collections::HashMap::new();
    // Folded paths whose hash a different folded path took first (odds
    // about n²/2⁶⁵): compared by text.
    let mut spilled: std::collections::HashMap<String, &'a str> = std::collections::HashMap::new();
    for path in paths {
        let folded = fold(path);
        let first = match seen.entry(keys.hash_one(&*folded)) {
            Entry::Vacant(slot) => {
                slot.insert(path);
                continue;
            }
            Entry::Occupied(first) => *first.get(),
        };
        if fold(first) == folded {
            if first != path {
                return Some((first, path));
            }
            continue;
        }
        match spilled.entry(folded.into_owned()) {
            Entry::Occupied(first) if *first.get() != path => return Some((first.get(), path)),
            Entry::Occupied(_) => {}
            Entry::Vacant(slot) => {
                slot.insert(path);
            }
        }
    }
    None
}

/// [`find_path_collision`] over a listing that arrives page by page: each
/// path is checked against every path added before it, so a collision is
/// found on the page that brings its second path, before that page's files
/// are used (decision 0065). Holds a hash of each folded path and the
/// path's text (a later page cannot borrow an earlier one's), the texts
/// one after the other in one string: a path and 16 bytes each (a string
/// of its own cost 40 more, 4 MiB over 10^5 files).
#[derive(Debug, Default)]
pub struct PathCollisions {
    keys: std::collections::hash_map::RandomState,
    /// Hash of a folded path -> where its first path is in `texts`.
    seen: std::collections::HashMap<u64, (u32, u32)>,
    texts: String,
    /// Folded paths whose hash a different folded path took first.
    spilled: std::collections::HashMap<String, Box<str>>,
}

impl PathCollisions {
    /// Adds `paths`; [`Error::PathCollision`](crate::Error::PathCollision)
    /// naming the first pair found, the earlier path first.
    pub fn add<'a>(&mut self, paths: impl IntoIterator<Item = &'a str>) -> crate::Result<()> {
        use std::collections::hash_map::Entry;
        use std::hash::BuildHasher;
        let collision = |first: &str, second: &str| crate::Error::PathCollision {
            first: first.to_owned(),
            second: second.to_owned(),
        };
        for path in paths {
            let folded = fold(path);
            let first = match self.seen.entry(self.keys.hash_one(&*folded)) {
                Entry::Vacant(slot) => {
                    let at = |n: usize| u32::try_from(n).expect("a listing's paths fit in 4 GiB");
                    slot.insert((at(self.texts.len()), at(path.len())));
                    self.texts.push_str(path);
                    continue;
                }
                Entry::Occupied(first) => {
                    let (at, len) = *first.get();
                    &self.texts[at as usize..(at + len) as usize]
                }
            };
            if fold(first) == folded {
                if first != path {
                    return Err(collision(first, path));
                }
                continue;
            }
            match self.spilled.entry(folded.into_owned()) {
                Entry::Occupied(first) if &**first.get() != path => {
                    return Err(collision(first.get(), path));
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(slot) => {
                    slot.insert(path.into());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_SEGMENT_BYTES, PathProblem, check_repo_path};

    #[test]
    fn accepts_odd_but_safe_names() {
        for path in [
            "config.json",
            "a/b/c.bin",
            "dir/my file+1#?.bin",
            "données/ü.txt",
            "100%.txt",
            "...",
            "..a/b..",
            ".gitattributes",
            "a/.hidden/x",
            "名前/ファイル.txt",
            "ab:c",
            &"é".repeat(MAX_SEGMENT_BYTES / 2),
        ] {
            assert_eq!(check_repo_path(path), Ok(()), "{path:?}");
        }
    }

    #[test]
    fn rejects_hostile_paths() {
        let cases = [
            ("", PathProblem::Empty),
            ("/etc/passwd", PathProblem::Absolute),
            ("../x", PathProblem::ParentSegment),
            ("a/../../x", PathProblem::ParentSegment),
            ("a/..", PathProblem::ParentSegment),
            ("..", PathProblem::ParentSegment),
            ("./a", PathProblem::DotSegment),
            ("a/./b", PathProblem::DotSegment),
            ("a//b", PathProblem::EmptySegment),
            ("a/", PathProblem::EmptySegment),
            ("a\\..\\b", PathProblem::Backslash),
            ("\\\\server\\share", PathProblem::Backslash),
            ("C:/Windows", PathProblem::DriveLetter),
            ("c:evil", PathProblem::DriveLetter),
            ("a\0b", PathProblem::Nul),
            ("a\nb", PathProblem::ControlCharacter),
            ("a/\u{1b}[31mred", PathProblem::ControlCharacter),
            ("x\u{7f}", PathProblem::ControlCharacter),
        ];
        for (path, want) in cases {
            assert_eq!(check_repo_path(path), Err(want), "{path:?}");
        }
        let long_segment = format!("d/{}", "a".repeat(MAX_SEGMENT_BYTES + 1));
        let long_path = ["abc"; 1000].join("/");
        let cases = [
            (long_segment.as_str(), PathProblem::TooLong),
            (long_path.as_str(), PathProblem::TooLong),
        ];
        for (path, want) in cases {
            assert_eq!(check_repo_path(path), Err(want), "{path:?}");
        }
    }

    #[test]
    fn collisions_by_case_and_normalisation() {
        use super::find_path_collision;
        assert_eq!(find_path_collision(["a.bin", "b.bin", "c/a.bin"]), None);
        let mut pages = super::PathCollisions::default();
        pages.add(["README.md", "x"]).unwrap();
        pages.add(["y"]).unwrap();
        assert!(matches!(
            pages.add(["z", "readme.md"]),
            Err(crate::Error::PathCollision { first, second }) if first == "README.md" && second == "readme.md"
        ));
        assert_eq!(
            find_path_collision(["README.md", "x", "readme.md"]),
            Some(("README.md", "readme.md"))
        );
        // U+00E9 (precomposed) and e + U+0301 (combining acute).
        assert_eq!(
            find_path_collision(["caf\u{e9}.txt", "cafe\u{301}.txt"]),
            Some(("caf\u{e9}.txt", "cafe\u{301}.txt"))
        );
        assert_eq!(
            find_path_collision(["Dir/CAF\u{c9}", "dir/cafe\u{301}"]),
            Some(("Dir/CAF\u{c9}", "dir/cafe\u{301}"))
        );
        // The same path twice is not a collision (duplicates are found elsewhere).
        assert_eq!(find_path_collision(["a", "a"]), None);
        // ASCII paths take the short fold; it agrees with the Unicode one.
        for path in ["README.md", "a/B c#+1.BIN", "x", "100%/Q.json", "ALL_CAPS/"] {
            use unicode_normalization::UnicodeNormalization;
            let slow: String = path.nfc().flat_map(char::to_lowercase).nfc().collect();
            assert_eq!(super::fold(path), slow, "{path:?}");
        }
    }
}
