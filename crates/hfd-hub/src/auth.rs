//! Access tokens: the secret-safe [`Token`] and the token lookup of
//! docs/hub-protocol.md §6.1.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use http::HeaderValue;

use crate::error::{Error, Result};

/// A Hub access token. `Debug` and `Display` print `hf_***`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Cleans `raw` as the reference client does (removes `\r` and `\n`,
    /// trims spaces) and checks that it can be sent in a header (visible
    /// ASCII only). Fails when the result is empty or unusable; the error
    /// never contains the value.
    pub fn new(raw: &str) -> Result<Self> {
        let cleaned: String = raw.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        let cleaned = cleaned.trim();
        if cleaned.is_empty() {
            return Err(Error::InvalidTokenValue {
                reason: "it is empty",
            });
        }
        if !cleaned.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidTokenValue {
                reason: "it contains spaces, control or non-ASCII characters",
            });
        }
        Ok(Self(cleaned.to_owned()))
    }

    /// The secret value. Only for building the `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `Bearer <token>`, marked sensitive so `http`'s `Debug` hides it.
    pub fn header_value(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0))
            .expect("Token::new admits only visible ASCII");
        value.set_sensitive(true);
        value
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("hf_***")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("hf_***")
    }
}

/// Where a token came from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenSource {
    /// Given explicitly (`--token` / `--hf_token`).
    Explicit,
    /// From the named environment variable (`HF_TOKEN` or the deprecated
    /// `HUGGING_FACE_HUB_TOKEN`).
    Env(&'static str),
    /// Read from this token file (`HF_TOKEN_PATH` or `$HF_HOME/token`).
    File(PathBuf),
}

impl TokenSource {
    /// Whether the user gave the token explicitly for this run. The CLI may
    /// send only explicit tokens to a non-official endpoint (docs/hub-protocol.md §6.2).
    pub fn is_explicit(&self) -> bool {
        matches!(self, Self::Explicit)
    }
}

/// A token and where it was found.
#[derive(Clone, Debug)]
pub struct FoundToken {
    /// The token.
    pub token: Token,
    /// Where it came from.
    pub source: TokenSource,
}

/// Finds the token by the precedence of docs/hub-protocol.md §6.1: `explicit` (the CLI
/// flag), then `HF_TOKEN`, then `HUGGING_FACE_HUB_TOKEN`, then the file at
/// [`token_file_path`]. Empty values count as absent; a missing token file
/// is not an error, an unreadable one is. `HF_OIDC_RESOURCE` and Colab
/// secrets are not supported.
///
/// `env` looks up an environment variable; `home` is the user's home
/// directory (for `~` and the default `HF_HOME`). This function reads the
/// token file but no environment itself.
pub fn find_token(
    explicit: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Option<FoundToken>> {
    let usable = |raw: &str| !raw.trim().trim_matches(['\r', '\n']).trim().is_empty();
    if let Some(raw) = explicit.filter(|raw| usable(raw)) {
        return Ok(Some(FoundToken {
            token: Token::new(raw)?,
            source: TokenSource::Explicit,
        }));
    }
    for var in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"] {
        if let Some(raw) = env(var).filter(|raw| usable(raw)) {
            return Ok(Some(FoundToken {
                token: Token::new(&raw)?,
                source: TokenSource::Env(var),
            }));
        }
    }
    let Some(path) = token_file_path(&env, home) else {
        return Ok(None);
    };
    let raw = match std::fs::read_to_string(&path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::TokenFile { path, source }),
    };
    if !usable(&raw) {
        return Ok(None);
    }
    Ok(Some(FoundToken {
        token: Token::new(&raw)?,
        source: TokenSource::File(path),
    }))
}

/// The token file: `HF_TOKEN_PATH`, else `$HF_HOME/token`, where `HF_HOME`
/// defaults to `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
/// `~` and `$VAR`/`${VAR}` are expanded in `HF_TOKEN_PATH` and `HF_HOME`.
/// `None` when no home directory is known and nothing else applies.
pub fn token_file_path(
    env: impl Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Option<PathBuf> {
    let non_empty = |var: &str| env(var).filter(|v| !v.is_empty());
    if let Some(path) = non_empty("HF_TOKEN_PATH") {
        return expand(&path, &env, home);
    }
    let hf_home = match non_empty("HF_HOME") {
        Some(value) => expand(&value, &env, home)?,
        None => match non_empty("XDG_CACHE_HOME") {
            Some(xdg) => PathBuf::from(xdg).join("huggingface"),
            None => home?.join(".cache").join("huggingface"),
        },
    };
    Some(hf_home.join("token"))
}

/// `os.path.expanduser(os.path.expandvars(value))`: unknown variables are
/// left as written; a leading `~` needs a home directory.
fn expand(
    value: &str,
    env: &impl Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Option<PathBuf> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (name.is_empty(), env(name)) {
            (false, Some(v)) => out.push_str(&v),
            _ => out.push_str(&rest[pos..=pos + consumed]),
        }
        rest = &rest[pos + 1 + consumed..];
    }
    out.push_str(rest);
    if out == "~" {
        return home.map(Path::to_path_buf);
    }
    if let Some(tail) = out.strip_prefix("~/") {
        return home.map(|h| h.join(tail));
    }
    Some(PathBuf::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn token_never_prints_its_value() {
        let t = Token::new(" hf_secret123\r\n").unwrap();
        assert_eq!(t.expose(), "hf_secret123");
        assert_eq!(format!("{t}"), "hf_***");
        assert_eq!(format!("{t:?}"), "hf_***");
        let h = t.header_value();
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("secret"));
        assert_eq!(h.to_str().unwrap(), "Bearer hf_secret123");
        assert!(Token::new(" \n").is_err());
        let err = Token::new("hf_a b").unwrap_err();
        assert!(!err.to_string().contains("hf_a"));
        assert!(Token::new("hf_é").is_err());
    }

    #[test]
    fn precedence_explicit_then_env_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let hf_home = dir.path().join("hfhome");
        std::fs::create_dir_all(&hf_home).unwrap();
        std::fs::write(hf_home.join("token"), "hf_file\n").unwrap();
        let home_str = hf_home.to_str().unwrap();

        let env = env_of(&[
            ("HF_TOKEN", "hf_env"),
            ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
            ("HF_HOME", home_str),
        ]);
        let found = find_token(Some("hf_flag"), &env, None).unwrap().unwrap();
        assert_eq!(found.token.expose(), "hf_flag");
        assert!(found.source.is_explicit());
        let found = find_token(None, &env, None).unwrap().unwrap();
        assert_eq!(
            (found.token.expose(), found.source),
            ("hf_env", TokenSource::Env("HF_TOKEN"))
        );
        let env = env_of(&[
            ("HF_TOKEN", ""),
            ("HUGGING_FACE_HUB_TOKEN", "hf_legacy"),
            ("HF_HOME", home_str),
        ]);
        let found = find_token(Some("  "), &env, None).unwrap().unwrap();
        assert_eq!(found.token.expose(), "hf_legacy");
        let env = env_of(&[("HF_HOME", home_str)]);
        let found = find_token(None, &env, None).unwrap().unwrap();
        assert_eq!(found.token.expose(), "hf_file");
        assert_eq!(found.source, TokenSource::File(hf_home.join("token")));
    }

    #[test]
    fn token_file_locations() {
        let home = Path::new("/home/u");
        let path = |pairs: &[(&str, &str)]| token_file_path(env_of(pairs), Some(home));
        assert_eq!(
            path(&[]),
            Some(PathBuf::from("/home/u/.cache/huggingface/token"))
        );
        assert_eq!(
            path(&[("XDG_CACHE_HOME", "/xdg")]),
            Some(PathBuf::from("/xdg/huggingface/token"))
        );
        assert_eq!(
            path(&[("HF_HOME", "~/hf"), ("XDG_CACHE_HOME", "/xdg")]),
            Some(PathBuf::from("/home/u/hf/token"))
        );
        assert_eq!(
            path(&[
                ("HF_TOKEN_PATH", "$BASE/${SUB}/tok"),
                ("BASE", "/b"),
                ("SUB", "s")
            ]),
            Some(PathBuf::from("/b/s/tok"))
        );
        assert_eq!(
            path(&[("HF_TOKEN_PATH", "/x/$UNSET/t")]),
            Some(PathBuf::from("/x/$UNSET/t"))
        );
        assert_eq!(token_file_path(env_of(&[]), None), None);
    }

    #[test]
    fn missing_or_empty_token_file_is_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        let env = env_of(&[("HF_TOKEN_PATH", p.to_str().unwrap())]);
        assert!(find_token(None, &env, None).unwrap().is_none());
        std::fs::write(&p, "\n").unwrap();
        assert!(find_token(None, &env, None).unwrap().is_none());
        // A directory where the file should be is an error naming the path.
        let env = env_of(&[("HF_TOKEN_PATH", dir.path().to_str().unwrap())]);
        let err = find_token(None, &env, None).unwrap_err();
        assert!(
            err.to_string().contains(dir.path().to_str().unwrap()),
            "{err}"
        );
    }
}
