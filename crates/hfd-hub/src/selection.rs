//! Choosing files: explicit paths and `--include`/`--exclude` globs with the
//! semantics of huggingface_hub's `filter_repo_objects` (docs/hub-protocol.md §3).

use std::fmt;

use crate::error::{Error, Result};
use crate::file::RemoteFile;

/// A glob in Python `fnmatch.fnmatchcase` syntax, matched against the whole
/// `/`-separated repo path.
///
/// `*` matches any run of characters including `/`, `?` one character,
/// `[seq]`/`[!seq]` a character class with `a-z` ranges; there is no escape
/// character and no `{a,b}` or `**` magic. Before compiling, `\` becomes `/`
/// and a pattern ending in `/` gets `*` appended. Matching is anchored and
/// case-sensitive, unlike hfd.sh's substring regexes.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyChar,
    Star,
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

impl Glob {
    /// Compiles `pattern`. Every string is a valid pattern.
    pub fn new(pattern: &str) -> Self {
        let mut normalized = pattern.replace('\\', "/");
        if normalized.ends_with('/') {
            normalized.push('*');
        }
        let tokens = compile(&normalized.chars().collect::<Vec<_>>());
        Self {
            source: normalized,
            tokens,
        }
    }

    /// The pattern after normalisation.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let text: Vec<char> = path.chars().collect();
        let tokens = &self.tokens;
        let (mut t, mut p) = (0usize, 0usize);
        // Position after the last `*` and the text index it was tried at.
        let mut backtrack: Option<(usize, usize)> = None;
        while t < text.len() {
            match tokens.get(p) {
                Some(Token::Star) => {
                    backtrack = Some((p + 1, t));
                    p += 1;
                    continue;
                }
                Some(token) if token.matches_one(text[t]) => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((after_star, tried)) => {
                    p = after_star;
                    t = tried + 1;
                    backtrack = Some((after_star, tried + 1));
                }
                None => return false,
            }
        }
        tokens[p..].iter().all(|token| *token == Token::Star)
    }
}

impl Token {
    fn matches_one(&self, c: char) -> bool {
        match self {
            Self::Literal(l) => *l == c,
            Self::AnyChar => true,
            Self::Star => false,
            Self::Class { negated, items } => {
                items.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
            }
        }
    }
}

/// Python's `fnmatch.translate`, producing tokens instead of a regex.
fn compile(pattern: &[char]) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        let c = pattern[i];
        i += 1;
        match c {
            '*' => {
                if tokens.last() != Some(&Token::Star) {
                    tokens.push(Token::Star);
                }
            }
            '?' => tokens.push(Token::AnyChar),
            '[' => {
                // Find the closing `]`; a `]` right after `[` or `[!` is literal.
                let mut j = i;
                if j < pattern.len() && pattern[j] == '!' {
                    j += 1;
                }
                if j < pattern.len() && pattern[j] == ']' {
                    j += 1;
                }
                while j < pattern.len() && pattern[j] != ']' {
                    j += 1;
                }
                if j >= pattern.len() {
                    tokens.push(Token::Literal('['));
                    continue;
                }
                let mut body = &pattern[i..j];
                i = j + 1;
                let negated = body.first() == Some(&'!');
                if negated {
                    body = &body[1..];
                }
                let mut items = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    if k + 2 < body.len() && body[k + 1] == '-' {
                        // Reversed ranges match nothing, as in Python.
                        if body[k] <= body[k + 2] {
                            items.push((body[k], body[k + 2]));
                        }
                        k += 3;
                    } else {
                        items.push((body[k], body[k]));
                        k += 1;
                    }
                }
                tokens.push(Token::Class { negated, items });
            }
            other => tokens.push(Token::Literal(other)),
        }
    }
    tokens
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Which files of a listing to fetch.
///
/// A file is kept when it is named by an explicit path (exactly, or as a
/// directory prefix) or matches an include glob — or when neither paths nor
/// includes were given — and it matches no exclude glob. Each flag may carry
/// several values and may be repeated; all values are simply collected.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    paths: Vec<String>,
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

impl Selection {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Adds include globs.
    #[must_use]
    pub fn include<S: AsRef<str>>(mut self, patterns: impl IntoIterator<Item = S>) -> Self {
        self.include
            .extend(patterns.into_iter().map(|p| Glob::new(p.as_ref())));
        self
    }

    /// Adds exclude globs.
    #[must_use]
    pub fn exclude<S: AsRef<str>>(mut self, patterns: impl IntoIterator<Item = S>) -> Self {
        self.exclude
            .extend(patterns.into_iter().map(|p| Glob::new(p.as_ref())));
        self
    }

    /// Adds explicit paths (files, or directories meaning every file below).
    /// A trailing `/` and a leading `./` are ignored.
    #[must_use]
    pub fn paths<S: AsRef<str>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.paths.extend(paths.into_iter().map(|p| {
            let p = p.as_ref().replace('\\', "/");
            let p = p.strip_prefix("./").unwrap_or(&p);
            p.trim_end_matches('/').to_owned()
        }));
        self
    }

    /// The explicit paths (files or folders), normalised.
    pub(crate) fn explicit_paths(&self) -> &[String] {
        &self.paths
    }

    /// Whether every file is selected.
    pub fn is_all(&self) -> bool {
        self.paths.is_empty() && self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether `path` is selected.
    pub fn matches(&self, path: &str) -> bool {
        let wanted = (self.paths.is_empty() && self.include.is_empty())
            || self.paths.iter().any(|p| names(p, path))
            || self.include.iter().any(|g| g.matches(path));
        wanted && !self.exclude.iter().any(|g| g.matches(path))
    }

    /// The selected files, in listing order. Fails with
    /// [`Error::PathNotInListing`] when an explicit path names no file of the
    /// listing.
    pub fn filter(&self, files: &[RemoteFile]) -> Result<Vec<RemoteFile>> {
        for wanted in &self.paths {
            if !files.iter().any(|f| names(wanted, &f.path)) {
                return Err(Error::PathNotInListing {
                    path: wanted.clone(),
                });
            }
        }
        Ok(files
            .iter()
            .filter(|f| self.matches(&f.path))
            .cloned()
            .collect())
    }
}

/// Whether the explicit path `wanted` names `path`: equal, or a directory
/// containing it.
pub(crate) fn names(wanted: &str, path: &str) -> bool {
    path == wanted
        || (!wanted.is_empty()
            && path.len() > wanted.len()
            && path.starts_with(wanted)
            && path.as_bytes()[wanted.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Glob::new(pattern).matches(path)
    }

    #[test]
    fn star_matches_across_slashes_and_is_anchored() {
        assert!(m("*.json", "config.json"));
        assert!(m("*.json", "sub/dir/config.json"));
        assert!(!m("*.json", "config.json.bak"));
        assert!(m("*", "a/b/c"));
        assert!(m("*", ""));
        // Anchored: hfd.sh's substring match would accept these.
        assert!(!m("model", "model.safetensors"));
        assert!(!m("json", "config.json"));
        assert!(m("model*", "model-00001-of-00002.safetensors"));
        assert!(m("sample/10BT/*", "sample/10BT/000_00000.parquet"));
        assert!(m("sample/10BT/*", "sample/10BT/deeper/x.parquet"));
        assert!(!m("sample/10BT/*", "sample/100BT/x.parquet"));
        assert!(m("*/*.bin", "a/b.bin"));
        assert!(!m("*/*.bin", "b.bin"));
        assert!(m("a*b*c", "a/x/b/y/c"));
        assert!(!m("a*b*c", "a/x/b/y/cd"));
    }

    #[test]
    fn question_mark_and_classes() {
        assert!(m("model-0000?.bin", "model-00001.bin"));
        assert!(!m("model-0000?.bin", "model-000012.bin"));
        assert!(m("?", "/"));
        assert!(m("[abc].txt", "b.txt"));
        assert!(!m("[abc].txt", "d.txt"));
        assert!(m("[!abc].txt", "d.txt"));
        assert!(!m("[!abc].txt", "a.txt"));
        assert!(m("shard-[0-9][0-9].bin", "shard-07.bin"));
        assert!(!m("shard-[0-9][0-9].bin", "shard-7a.bin"));
        assert!(m("[]]", "]"));
        assert!(m("[!]]", "x"));
        assert!(!m("[!]]", "]"));
        // Unclosed `[` is a literal.
        assert!(m("a[b", "a[b"));
        assert!(!m("a[b", "ab"));
        // Reversed range matches nothing.
        assert!(!m("[z-a]", "m"));
        assert!(m("[a-]", "-"));
        // Regex metacharacters are literal.
        assert!(m("a+b(1).txt", "a+b(1).txt"));
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(m("{a,b}", "{a,b}"));
    }

    #[test]
    fn case_sensitive_like_fnmatchcase() {
        assert!(!m("*.JSON", "config.json"));
        assert!(m("README*", "README.md"));
        assert!(!m("readme*", "README.md"));
    }

    #[test]
    fn trailing_slash_and_backslash_normalisation() {
        assert!(m("onnx/", "onnx/model.onnx"));
        assert!(m("onnx/", "onnx/sub/model.onnx"));
        assert!(!m("onnx/", "onnx"));
        assert_eq!(Glob::new("onnx/").as_str(), "onnx/*");
        assert!(m("sub\\*.bin", "sub/a.bin"));
        assert!(m("sub\\", "sub/a.bin"));
        assert!(m("données/*", "données/ü.txt"));
    }

    #[test]
    fn star_backtracking_is_bounded_and_correct() {
        let path = "a".repeat(200);
        assert!(!m(&format!("{}b", "*a".repeat(20)), &path));
        assert!(m(&format!("{}a", "*a".repeat(20)), &path));
    }

    fn file(path: &str) -> RemoteFile {
        RemoteFile {
            path: path.to_owned(),
            size: 1,
            oid: hfd_types::ContentDigest::GitSha1([0; 20]),
            lfs_sha256: None,
            xet_hash: None,
        }
    }

    fn kept(sel: &Selection, paths: &[&str]) -> Vec<String> {
        let files: Vec<RemoteFile> = paths.iter().map(|p| file(p)).collect();
        sel.filter(&files)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect()
    }

    #[test]
    fn include_and_exclude_combine_like_filter_repo_objects() {
        let repo = [
            "config.json",
            "model.safetensors",
            "onnx/model.onnx",
            "onnx/config.json",
            "pytorch_model.bin",
            "README.md",
        ];
        assert_eq!(kept(&Selection::all(), &repo).len(), 6);
        let sel = Selection::all().include(["*.json", "*.md"]);
        assert_eq!(
            kept(&sel, &repo),
            ["config.json", "onnx/config.json", "README.md"]
        );
        // Repeated flags accumulate.
        let sel = Selection::all().include(["*.json"]).include(["*.md"]);
        assert_eq!(kept(&sel, &repo).len(), 3);
        let sel = Selection::all().exclude(["*.bin", "onnx/"]);
        assert_eq!(
            kept(&sel, &repo),
            ["config.json", "model.safetensors", "README.md"]
        );
        let sel = Selection::all().include(["*.json"]).exclude(["onnx/*"]);
        assert_eq!(kept(&sel, &repo), ["config.json"]);
        // Exclude wins over include.
        let sel = Selection::all().include(["*.json"]).exclude(["*"]);
        assert!(kept(&sel, &repo).is_empty());
    }

    #[test]
    fn explicit_paths_name_files_or_directories() {
        let repo = [
            "config.json",
            "onnx/model.onnx",
            "onnx/sub/x",
            "onnxruntime/y",
        ];
        let sel = Selection::all().paths(["config.json", "onnx/"]);
        assert_eq!(
            kept(&sel, &repo),
            ["config.json", "onnx/model.onnx", "onnx/sub/x"]
        );
        let sel = Selection::all().paths(["./onnx"]).exclude(["*/sub/*"]);
        assert_eq!(kept(&sel, &repo), ["onnx/model.onnx"]);
        // Paths and includes add up.
        let sel = Selection::all()
            .paths(["config.json"])
            .include(["onnxruntime/*"]);
        assert_eq!(kept(&sel, &repo), ["config.json", "onnxruntime/y"]);
        let files: Vec<RemoteFile> = repo.iter().map(|p| file(p)).collect();
        let err = Selection::all()
            .paths(["missing.bin"])
            .filter(&files)
            .unwrap_err();
        assert!(err.to_string().contains("missing.bin"), "{err}");
        assert!(matches!(err.kind(), crate::HubErrorKind::EntryNotFound));
    }
}
