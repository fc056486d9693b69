//! Configuration errors, and where they are: a toml deserialization error carries a byte
//! span; this turns it into the dotted key (`c2s.listen[1]`) and the line it is on, so that
//! every message reads "file: key (line N): what is wrong".

use std::ops::Range;
use std::path::PathBuf;

/// A configuration that cannot be used. Each variant names the file (or `embedded default`)
/// and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: TOML syntax error (line {line}): {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// 1-based line of the error.
        line: usize,
        /// The parser's description.
        message: String,
    },
    /// A key that Parley does not know (often a typo).
    #[error("{origin}: unknown key `{key}` (line {line}){hint}")]
    UnknownKey {
        /// The file.
        origin: String,
        /// The dotted key, e.g. `c2s.listn`.
        key: String,
        /// 1-based line of the key.
        line: usize,
        /// `; expected one of ...`, or empty.
        hint: String,
    },
    /// A value of the wrong type or form.
    #[error("{origin}: {key} (line {line}): {message}")]
    BadValue {
        /// The file.
        origin: String,
        /// The dotted key, e.g. `c2s.max_depth` or `c2s.listen[1]`.
        key: String,
        /// 1-based line of the value.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// An environment override (`PARLEY_SECTION__KEY`) that cannot be used.
    #[error("environment variable {var} ({key}): {message}")]
    Env {
        /// The variable.
        var: String,
        /// The dotted key it sets.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A well-formed value that breaks a rule (see `Config::validate`).
    #[error("{origin}: {key} = {value}: {reason}")]
    Invalid {
        /// The file.
        origin: String,
        /// The dotted key.
        key: String,
        /// The offending value, TOML-ish.
        value: String,
        /// The rule it breaks.
        reason: String,
    },
}

/// Turns a toml deserialization error into one that names the key and line.
pub(super) fn de_error(source: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    // Parser messages span several lines ("invalid array\nexpected `]`"); errors are one line.
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let span = e.span().unwrap_or(0..0);
    let line = line_of(source, span.start);
    let Ok(doc) = toml_edit::ImDocument::parse(source) else {
        return ConfigError::Syntax {
            origin: origin.to_owned(),
            line,
            message,
        };
    };
    let mut path = Vec::new();
    let key = if locate_item(doc.as_item(), &span, &mut path) {
        path.concat()
    } else {
        "(document)".to_owned()
    };
    if let Some(rest) = message.strip_prefix("unknown field") {
        let hint = rest
            .split_once(", ")
            .map(|(_, expected)| format!("; {expected}"))
            .unwrap_or_default();
        return ConfigError::UnknownKey {
            origin: origin.to_owned(),
            key,
            line,
            hint,
        };
    }
    ConfigError::BadValue {
        origin: origin.to_owned(),
        key,
        line,
        message,
    }
}

/// 1-based line number of a byte offset.
fn line_of(source: &str, offset: usize) -> usize {
    let offset = offset.min(source.len());
    source.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn span_hits(span: Option<Range<usize>>, target: &Range<usize>) -> bool {
    span.is_some_and(|s| s.start <= target.start && target.start < s.end.max(s.start + 1))
}

/// Finds the key or value whose span holds `target`, appending its dotted path to `path`.
fn locate_item(item: &toml_edit::Item, target: &Range<usize>, path: &mut Vec<String>) -> bool {
    match item {
        toml_edit::Item::None => false,
        toml_edit::Item::Value(value) => locate_value(value, target, path),
        toml_edit::Item::Table(table) => locate_in_table(table, target, path),
        toml_edit::Item::ArrayOfTables(tables) => tables.iter().enumerate().any(|(i, table)| {
            path.push(format!("[{i}]"));
            let found = locate_in_table(table, target, path);
            if !found {
                path.pop();
            }
            found
        }),
    }
}

fn locate_value(value: &toml_edit::Value, target: &Range<usize>, path: &mut Vec<String>) -> bool {
    let in_child = match value {
        toml_edit::Value::InlineTable(table) => locate_in_table(table, target, path),
        toml_edit::Value::Array(array) => array.iter().enumerate().any(|(i, element)| {
            path.push(format!("[{i}]"));
            let found = locate_value(element, target, path);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    };
    in_child || span_hits(value.span(), target)
}

/// Searches every entry: a `[table]` header's span does not cover its body, so the table's
/// own span cannot be used to prune.
fn locate_in_table(
    table: &dyn toml_edit::TableLike,
    target: &Range<usize>,
    path: &mut Vec<String>,
) -> bool {
    for (name, child) in table.iter() {
        path.push(key_segment(name, path.is_empty()));
        let key_span = table.key(name).and_then(|k| k.span());
        if span_hits(key_span, target) || locate_item(child, target, path) {
            return true;
        }
        path.pop();
    }
    false
}

/// A path segment for a key: dotted, and quoted when it is not a bare TOML key.
fn key_segment(name: &str, first: bool) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let name = if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    };
    if first {
        name
    } else {
        format!(".{name}")
    }
}

/// The 1-based line of dotted `key` (`section.key`, `a.b.c`) in `source`, if it is there.
pub(super) fn line_of_key(source: &str, key: &str) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(source).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let segments: Vec<&str> = key.split('.').collect();
    for (i, segment) in segments.iter().enumerate() {
        let name = segment.split('[').next().unwrap_or(segment);
        if i + 1 == segments.len() {
            let span = table.key(name)?.span()?;
            return Some(line_of(source, span.start));
        }
        table = table.get(name)?.as_table_like()?;
    }
    None
}
