//! What a list command prints: an aligned table with a header for people, or with the
//! global `--json` the records themselves (a JSON array, one object per row, the admin
//! API's fields where the data comes from it) for scripts.

use std::io::{self, Write};

/// A list command's result.
#[derive(Debug, Default)]
pub struct Listing {
    /// Column titles.
    pub headers: Vec<&'static str>,
    /// One row per record, one cell per column.
    pub rows: Vec<Vec<String>>,
    /// The records for `--json`.
    pub json: Vec<serde_json::Value>,
}

impl Listing {
    /// A listing with these columns and nothing in it yet.
    pub fn new(headers: &[&'static str]) -> Listing {
        Listing {
            headers: headers.to_vec(),
            ..Listing::default()
        }
    }

    /// Adds a record: its cells and its JSON form.
    pub fn push(&mut self, cells: Vec<String>, json: serde_json::Value) {
        self.rows.push(cells);
        self.json.push(json);
    }

    /// Writes the table (columns padded to their widest cell, two spaces apart, the last
    /// one unpadded), or the JSON array. An empty table is just its header.
    pub fn write(&self, out: &mut dyn Write, json: bool) -> io::Result<()> {
        if json {
            serde_json::to_writer_pretty(&mut *out, &self.json).map_err(io::Error::other)?;
            return writeln!(out);
        }
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| {
            let cells: Vec<&str> = cells.collect();
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count();
                    text.push_str(cell);
                    text.extend(std::iter::repeat_n(' ', pad + 2));
                }
            }
            writeln!(out, "{}", text.trim_end())
        };
        line(out, &mut self.headers.iter().copied())?;
        for row in &self.rows {
            line(out, &mut row.iter().map(String::as_str))?;
        }
        Ok(())
    }

    /// Prints to stdout; a closed pipe (`| head`) is not an error worth reporting.
    pub fn print(&self, json: bool) {
        let _ = self.write(&mut io::stdout().lock(), json);
    }
}

/// What a command prints: lines of text, or a list command's table.
#[derive(Debug)]
pub enum Printed {
    /// Lines, as they are (a token, a confirmation).
    Lines(Vec<String>),
    /// A list command's records ([`Listing`]; `--json` applies).
    Table(Listing),
}

impl From<Vec<String>> for Printed {
    fn from(lines: Vec<String>) -> Self {
        Printed::Lines(lines)
    }
}

impl From<Listing> for Printed {
    fn from(listing: Listing) -> Self {
        Printed::Table(listing)
    }
}

/// A cell for an optional value: the value, or `-`.
pub fn cell(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).unwrap_or("-").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_json_is_the_records() {
        let mut l = Listing::new(&["JID", "NODE", "TYPE"]);
        l.push(
            vec!["alice@localhost/phone".into(), "n1".into(), "c2s".into()],
            serde_json::json!({"jid": "alice@localhost/phone"}),
        );
        l.push(
            vec!["b@x/y".into(), "node-two".into(), "c2s".into()],
            serde_json::json!({"jid": "b@x/y"}),
        );
        let mut out = Vec::new();
        l.write(&mut out, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "JID                    NODE      TYPE\n\
             alice@localhost/phone  n1        c2s\n\
             b@x/y                  node-two  c2s\n"
        );
        let mut out = Vec::new();
        l.write(&mut out, true).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[1]["jid"], "b@x/y");
        let mut out = Vec::new();
        Listing::new(&["A"]).write(&mut out, true).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().trim(), "[]");
    }
}
