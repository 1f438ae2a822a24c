//! Which repo paths the target filesystem can store, checked at planning,
//! before any byte moves: a repo made on Linux may hold names Windows
//! refuses (`a:b`, `CON.txt`, `x.`). Refusing the run up front (naming the
//! path, so the user can `--exclude` it) beats a half-written tree, and
//! beats a silent renaming that huggingface_hub would not recognise.
//! (Paths that differ only in case or Unicode normalization are refused on
//! every platform by `hfd_hub`'s listing, `find_path_collision`.)
//!
//! The rules are a value ([`NameRules`]), so Windows' rules are tested on
//! every platform; [`NameRules::host`] is the one place that asks which
//! platform this build is for.

use std::fmt;

/// Characters Windows refuses in a file name (besides `/`, `\` and the
/// control characters, which `hfd_hub`'s path check already refuses).
const WINDOWS_FORBIDDEN: &[char] = &[':', '*', '?', '"', '<', '>', '|'];

/// Device names Windows reserves in every folder, with any extension.
const WINDOWS_RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4",
    "COM5", "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2", "LPT3",
    "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// NTFS's limit on one name, in UTF-16 units.
const WINDOWS_NAME_MAX: usize = 255;

/// Which file names the target filesystem can store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRules {
    /// Linux and macOS: any name the hub's path check accepts.
    Any,
    /// Windows: no `: * ? " < > |`, no trailing dot or space, no reserved
    /// device name, at most 255 UTF-16 units per name.
    Windows,
}

impl NameRules {
    /// The rules of the platform this build runs on.
    pub const fn host() -> Self {
        if cfg!(windows) {
            Self::Windows
        } else {
            Self::Any
        }
    }

    /// The first repo path (`/`-separated) of `paths` that cannot be
    /// stored under these rules, with why.
    pub fn check<'a>(self, paths: impl IntoIterator<Item = &'a str>) -> Result<(), NameProblem> {
        if self == Self::Any {
            return Ok(());
        }
        for path in paths {
            for name in path.split('/') {
                if let Some(reason) = windows_refuses(name) {
                    return Err(NameProblem {
                        path: path.to_owned(),
                        name: name.to_owned(),
                        reason,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Why Windows cannot store the single name `name`, if it cannot.
fn windows_refuses(name: &str) -> Option<WindowsRule> {
    if let Some(c) = name.chars().find(|c| WINDOWS_FORBIDDEN.contains(c)) {
        return Some(WindowsRule::ForbiddenChar(c));
    }
    if name.ends_with(['.', ' ']) {
        return Some(WindowsRule::TrailingDotOrSpace);
    }
    // `nul.tar.gz` and `CON .txt` are the devices too: Windows compares the
    // part before the first dot, trailing spaces ignored, in any case.
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    if let Some(device) = WINDOWS_RESERVED
        .iter()
        .find(|r| r.to_uppercase() == stem.to_uppercase())
    {
        return Some(WindowsRule::Reserved(device));
    }
    if name.encode_utf16().count() > WINDOWS_NAME_MAX {
        return Some(WindowsRule::TooLong);
    }
    None
}

/// A Windows file-name rule a name breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowsRule {
    /// One of `: * ? " < > |`.
    ForbiddenChar(char),
    /// Windows drops a trailing `.` or space, so the file would get
    /// another name.
    TrailingDotOrSpace,
    /// A device name (`CON`, `NUL`, `COM1` …), with or without extension.
    Reserved(&'static str),
    /// Longer than 255 UTF-16 units.
    TooLong,
}

impl fmt::Display for WindowsRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ForbiddenChar(c) => write!(f, "Windows does not allow {c:?} in file names"),
            Self::TrailingDotOrSpace => {
                f.write_str("Windows does not allow a file name ending in a dot or a space")
            }
            Self::Reserved(device) => write!(f, "{device} is a reserved device name on Windows"),
            Self::TooLong => f.write_str("Windows allows at most 255 characters per name"),
        }
    }
}

/// A repo path the target filesystem cannot store.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot store {path:?} here: {reason} (name {name:?}); skip it with --exclude")]
pub struct NameProblem {
    /// The repo path.
    pub path: String,
    /// The offending name (one component of `path`).
    pub name: String,
    /// The rule it breaks.
    pub reason: WindowsRule,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(path: &str) -> Option<WindowsRule> {
        NameRules::Windows.check([path]).err().map(|p| p.reason)
    }

    #[test]
    fn windows_refuses_what_it_cannot_store() {
        for (path, rule) in [
            ("a:b.bin", WindowsRule::ForbiddenChar(':')),
            ("dir/what?.txt", WindowsRule::ForbiddenChar('?')),
            ("x*", WindowsRule::ForbiddenChar('*')),
            ("\"q\"", WindowsRule::ForbiddenChar('"')),
            ("<a>", WindowsRule::ForbiddenChar('<')),
            ("a|b", WindowsRule::ForbiddenChar('|')),
            ("trailing.", WindowsRule::TrailingDotOrSpace),
            ("dir./x", WindowsRule::TrailingDotOrSpace),
            ("space ", WindowsRule::TrailingDotOrSpace),
            ("CON", WindowsRule::Reserved("CON")),
            ("con.txt", WindowsRule::Reserved("CON")),
            ("data/nul.tar.gz", WindowsRule::Reserved("NUL")),
            ("Com1 .json", WindowsRule::Reserved("COM1")),
            ("lpt9/x", WindowsRule::Reserved("LPT9")),
            ("COM¹", WindowsRule::Reserved("COM¹")),
            ("conout$", WindowsRule::Reserved("CONOUT$")),
        ] {
            assert_eq!(windows(path), Some(rule), "{path}");
        }
        let long = "é".repeat(256);
        assert_eq!(windows(&long), Some(WindowsRule::TooLong));
        // Each is a fine name: a device name only as the whole stem.
        for path in [
            "console.txt",
            "CONFIG.json",
            "com10",
            "nul_x",
            "a.b.c",
            ".gitattributes",
            "dir/.hidden",
            "ünïcødé/名前.bin",
            &"é".repeat(255),
        ] {
            assert_eq!(windows(path), None, "{path}");
        }
    }

    #[test]
    fn other_platforms_store_windows_names() {
        assert_eq!(NameRules::Any.check(["a:b", "CON", "x.", "what?"]), Ok(()));
    }

    #[test]
    fn the_error_names_the_path_and_the_rule() {
        let err = NameRules::Windows
            .check(["ok.txt", "data/aux.json"])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot store \"data/aux.json\" here: AUX is a reserved device name on Windows \
             (name \"aux.json\"); skip it with --exclude"
        );
    }

    #[test]
    fn host_rules_match_the_build() {
        assert_eq!(NameRules::host() == NameRules::Windows, cfg!(windows));
    }
}
