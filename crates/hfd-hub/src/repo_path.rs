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
}

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
        })
    }
}

/// Checks that `path` is a safe relative `/`-separated path: not empty, not
/// absolute, no drive letter, no `\`, no NUL, and no empty, `.` or `..`
/// segment. Spaces, `#`, `?`, `+`, `%` and non-ASCII are fine.
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
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{PathProblem, check_repo_path};

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
        ];
        for (path, want) in cases {
            assert_eq!(check_repo_path(path), Err(want), "{path:?}");
        }
    }
}
