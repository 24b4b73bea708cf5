//! Searching the record: free text, a regular expression and JSON-pointer
//! conditions (`/px > 100`, `/sym = "HOLD"`), every part given must hold.
//! A search scans newest first in chunks and answers within a time
//! budget: what it found so far and where to go on, so a window never
//! waits on a million rows.

use std::time::{Duration, Instant};

use regex::Regex;
use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::record::RecordedItem;
use crate::{Database, StorageError};

/// Rows fetched from SQLite per step; the budget is checked between steps,
/// so a step must stay well inside a frame. Every filter runs here, not in
/// SQL: a `WHERE` that rejects most rows would make one step scan the
/// whole record before it returned.
const CHUNK: i64 = 512;

/// What the user asked for, as it arrives.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    pub feed: Option<String>,
    /// Case-insensitive (ASCII) substring of the data.
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    /// `POINTER OP VALUE`: OP one of `=`, `!=`, `>`, `>=`, `<`, `<=`, `~`
    /// (a string that contains), VALUE JSON.
    #[serde(default)]
    pub conditions: Vec<String>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SearchError {
    #[error("the regular expression does not parse: {reason}")]
    Regex { reason: String },
    #[error("condition `{condition}`: {reason}")]
    Condition { condition: String, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
}

#[derive(Debug, Clone)]
struct Condition {
    pointer: String,
    op: Op,
    value: Value,
}

impl Condition {
    fn parse(text: &str) -> Result<Condition, SearchError> {
        let refuse = |reason: &str| SearchError::Condition {
            condition: text.to_owned(),
            reason: reason.to_owned(),
        };
        let text = text.trim();
        let (pointer, rest) = text
            .split_once(char::is_whitespace)
            .ok_or_else(|| refuse("write it as POINTER OP VALUE, e.g. /px > 100"))?;
        if !pointer.starts_with('/') {
            return Err(refuse(
                "a JSON pointer starts with '/', e.g. /px or /quote/bid",
            ));
        }
        let rest = rest.trim_start();
        let (op, value) = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("!=", Op::Ne),
            ("=", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("~", Op::Contains),
        ]
        .into_iter()
        .find_map(|(symbol, op)| rest.strip_prefix(symbol).map(|value| (op, value)))
        .ok_or_else(|| refuse("the operator is one of = != > >= < <= ~"))?;
        let value: Value = serde_json::from_str(value.trim()).map_err(|_| {
            refuse("the value is JSON: a number, \"a string\", true, false or null")
        })?;
        if op == Op::Contains && !value.is_string() {
            return Err(refuse("~ looks for a \"string\" inside a string"));
        }
        Ok(Condition {
            pointer: pointer.to_owned(),
            op,
            value,
        })
    }

    fn holds(&self, document: &Value) -> bool {
        let Some(found) = document.pointer(&self.pointer) else {
            return self.op == Op::Ne;
        };
        let order = match (found, &self.value) {
            (Value::Number(a), Value::Number(b)) => a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b)),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            _ => None,
        };
        use std::cmp::Ordering::*;
        match self.op {
            Op::Eq => order.map_or(found == &self.value, |o| o == Equal),
            Op::Ne => order.map_or(found != &self.value, |o| o != Equal),
            Op::Gt => order == Some(Greater),
            Op::Ge => matches!(order, Some(Greater | Equal)),
            Op::Lt => order == Some(Less),
            Op::Le => matches!(order, Some(Less | Equal)),
            Op::Contains => match (found, &self.value) {
                (Value::String(a), Value::String(b)) => a.contains(b.as_str()),
                _ => false,
            },
        }
    }
}

/// A checked query, ready to run.
#[derive(Debug, Clone)]
pub struct Search {
    feed: Option<String>,
    text: Option<String>,
    regex: Option<Regex>,
    conditions: Vec<Condition>,
}

impl Search {
    pub fn parse(query: &SearchQuery) -> Result<Search, SearchError> {
        let regex = query
            .regex
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(Regex::new)
            .transpose()
            .map_err(|e| SearchError::Regex {
                reason: e.to_string(),
            })?;
        let conditions = query
            .conditions
            .iter()
            .filter(|c| !c.trim().is_empty())
            .map(|c| Condition::parse(c))
            .collect::<Result<_, _>>()?;
        Ok(Search {
            feed: query.feed.clone().filter(|f| !f.is_empty()),
            text: query
                .text
                .as_deref()
                .filter(|t| !t.is_empty())
                .map(str::to_ascii_lowercase),
            regex,
            conditions,
        })
    }

    /// Where `data` matches (byte ranges to highlight), or `None`.
    pub fn matches(&self, data: &str) -> Option<Vec<[usize; 2]>> {
        let mut highlights = Vec::new();
        if let Some(text) = &self.text {
            let lower = data.to_ascii_lowercase();
            let found: Vec<_> = lower
                .match_indices(text.as_str())
                .map(|(at, hit)| [at, at + hit.len()])
                .collect();
            if found.is_empty() {
                return None;
            }
            highlights.extend(found);
        }
        if let Some(regex) = &self.regex {
            let found: Vec<_> = regex
                .find_iter(data)
                .map(|m| [m.start(), m.end()])
                .collect();
            if found.is_empty() {
                return None;
            }
            highlights.extend(found);
        }
        if !self.conditions.is_empty() {
            let document: Value = serde_json::from_str(data).ok()?;
            if !self.conditions.iter().all(|c| c.holds(&document)) {
                return None;
            }
        }
        highlights.sort_unstable();
        Some(highlights)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    #[serde(flatten)]
    pub item: RecordedItem,
    /// Byte ranges of `data` that matched the text or the regex.
    pub highlights: Vec<[usize; 2]>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// Where to go on (as `before_id`); `None` once the record is scanned.
    pub next_before_id: Option<i64>,
    pub scanned: u64,
}

impl Database {
    /// Newest first from `before_id`: up to `limit` hits, or what was found
    /// when `budget` ran out. Each row is searched as `read` leaves it (the
    /// app decodes binary payloads there), so what is found and highlighted
    /// is what the user sees.
    pub fn search_record(
        &self,
        server: &str,
        search: &Search,
        before_id: Option<i64>,
        limit: usize,
        budget: Duration,
        read: impl Fn(&mut RecordedItem),
    ) -> Result<SearchPage, StorageError> {
        let started = Instant::now();
        let sql = format!(
            "SELECT {} FROM record WHERE server = ?1 AND (?2 IS NULL OR feed = ?2) AND id < ?3
             ORDER BY id DESC LIMIT ?4",
            RecordedItem::COLUMNS
        );
        let mut hits = Vec::new();
        let mut scanned = 0u64;
        let mut before = before_id.unwrap_or(i64::MAX);
        loop {
            let chunk = {
                let conn = self.conn();
                let mut statement = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
                statement
                    .query_map(
                        params![server, search.feed, before, CHUNK],
                        RecordedItem::from_row,
                    )
                    .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| self.err(e))?
            };
            let exhausted = (chunk.len() as i64) < CHUNK;
            for mut item in chunk {
                scanned += 1;
                before = item.id;
                read(&mut item);
                if let Some(highlights) = search.matches(item.data.get()) {
                    hits.push(SearchHit { item, highlights });
                    if hits.len() >= limit {
                        return Ok(SearchPage {
                            hits,
                            next_before_id: Some(before),
                            scanned,
                        });
                    }
                }
            }
            if exhausted {
                return Ok(SearchPage {
                    hits,
                    next_before_id: None,
                    scanned,
                });
            }
            if started.elapsed() >= budget {
                return Ok(SearchPage {
                    hits,
                    next_before_id: Some(before),
                    scanned,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(text: Option<&str>, regex: Option<&str>, conditions: &[&str]) -> Search {
        Search::parse(&SearchQuery {
            feed: None,
            text: text.map(Into::into),
            regex: regex.map(Into::into),
            conditions: conditions.iter().map(|c| c.to_string()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn text_is_found_whatever_its_case_and_highlighted() {
        let hits = search(Some("hold"), None, &[]).matches(r#"{"sym":"HOLD","n":"hold"}"#);
        assert_eq!(hits, Some(vec![[8, 12], [19, 23]]));
        assert_eq!(search(Some("nope"), None, &[]).matches(r#"{"a":1}"#), None);
    }

    #[test]
    fn a_regex_must_match_and_its_matches_are_highlighted() {
        let s = search(None, Some(r"px.:\d{3}"), &[]);
        assert_eq!(s.matches(r#"{"px":120}"#), Some(vec![[2, 9]]));
        assert_eq!(s.matches(r#"{"px":12}"#), None);
    }

    #[test]
    fn conditions_compare_numbers_numerically_and_strings_exactly() {
        let data = r#"{"px":101.5,"sym":"HOLD","q":{"bid":7},"tags":"fast,cheap"}"#;
        for (condition, holds) in [
            ("/px > 100", true),
            ("/px >= 101.5", true),
            ("/px < 100", false),
            ("/px = 101.5", true),
            ("/q/bid = 7", true),
            ("/q/bid != 7", false),
            ("/sym = \"HOLD\"", true),
            ("/sym = \"hold\"", false),
            ("/sym > \"A\"", true),
            ("/tags ~ \"cheap\"", true),
            ("/missing = 1", false),
            ("/missing != 1", true),
            ("/sym > 3", false),
        ] {
            assert_eq!(
                search(None, None, &[condition]).matches(data).is_some(),
                holds,
                "{condition}"
            );
        }
        // Every part must hold.
        let both = search(Some("hold"), None, &["/px > 200"]);
        assert_eq!(both.matches(data), None);
    }

    #[test]
    fn a_bad_regex_or_condition_is_a_clear_error() {
        let parse = |regex: Option<&str>, condition: &str| {
            Search::parse(&SearchQuery {
                regex: regex.map(Into::into),
                conditions: vec![condition.into()],
                ..SearchQuery::default()
            })
            .unwrap_err()
        };
        assert!(matches!(
            parse(Some("(unclosed"), ""),
            SearchError::Regex { .. }
        ));
        for (condition, says) in [
            ("px > 100", "starts with '/'"),
            ("/px", "POINTER OP VALUE"),
            ("/px >> 1", "JSON"),
            ("/px ? 1", "operator"),
            ("/sym = HOLD", "JSON"),
            ("/tags ~ 3", "string"),
        ] {
            let error = parse(None, condition).to_string();
            assert!(error.contains(says), "{condition}: {error}");
            assert!(error.contains(condition), "{error}");
        }
    }
}
