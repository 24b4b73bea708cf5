//! Reads one JSON object of a profile key by key, so that every refusal
//! names the key (`event.seq`, `close.login[2]`) and an unknown key is
//! refused rather than silently ignored.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::ProfileError;
use super::pointer::{Matcher, Pointer};
use super::template::Template;

pub(super) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
    known: BTreeSet<&'static str>,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn wrong_type(key: String, want: &str, got: &Value) -> ProfileError {
    ProfileError::new(key, format!("must be {want}, not {}", type_name(got)))
}

impl<'a> Obj<'a> {
    pub fn new(value: &'a Value, path: &str) -> Result<Obj<'a>, ProfileError> {
        match value {
            Value::Object(map) => Ok(Obj {
                map,
                path: path.to_owned(),
                known: BTreeSet::new(),
            }),
            other => Err(wrong_type(path.to_owned(), "an object", other)),
        }
    }

    pub fn key(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value at `key`, remembering the key as one this object may have.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.insert(key);
        self.map.get(key)
    }

    pub fn string(&mut self, key: &'static str) -> Result<Option<String>, ProfileError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong_type(self.key(key), "a string", other)),
        }
    }

    pub fn integer(
        &mut self,
        key: &'static str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Option<u64>, ProfileError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => {
                let Some(n) = value.as_u64() else {
                    return Err(wrong_type(self.key(key), "a whole number", value));
                };
                if !range.contains(&n) {
                    return Err(ProfileError::new(
                        self.key(key),
                        format!("{n} is out of range ({}..={})", range.start(), range.end()),
                    ));
                }
                Ok(Some(n))
            }
        }
    }

    pub fn template(&mut self, key: &'static str) -> Result<Option<Template>, ProfileError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => template_at(value.clone(), &self.key(key)).map(Some),
        }
    }

    pub fn templates(&mut self, key: &'static str) -> Result<Vec<Template>, ProfileError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| template_at(v.clone(), &format!("{}[{i}]", self.key(key))))
                .collect(),
            Some(other) => Err(wrong_type(self.key(key), "an array of templates", other)),
        }
    }

    pub fn pointer(&mut self, key: &'static str) -> Result<Option<Pointer>, ProfileError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Pointer::parse(s)
                .map(Some)
                .map_err(|e| ProfileError::new(self.key(key), e.to_string())),
            Some(other) => Err(wrong_type(self.key(key), "a JSON Pointer string", other)),
        }
    }

    pub fn matcher(&mut self, key: &'static str) -> Result<Option<Matcher>, ProfileError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => matcher_at(value, &self.key(key)).map(Some),
        }
    }

    pub fn object(&mut self, key: &'static str) -> Result<Option<Obj<'a>>, ProfileError> {
        let path = self.key(key);
        match self.get(key) {
            None => Ok(None),
            Some(value) => Obj::new(value, &path).map(Some),
        }
    }

    /// Every key of the object, for maps whose keys are names.
    pub fn entries(&self) -> impl Iterator<Item = (&'a String, &'a Value)> {
        self.map.iter()
    }

    /// Refuses the first key that no reader asked for.
    pub fn finish(self) -> Result<(), ProfileError> {
        match self.map.keys().find(|k| !self.known.contains(k.as_str())) {
            None => Ok(()),
            Some(unknown) => {
                let known: Vec<&str> = self.known.iter().copied().collect();
                Err(ProfileError::new(
                    join(&self.path, unknown),
                    format!("unknown key; this object takes {}", known.join(", ")),
                ))
            }
        }
    }
}

pub(super) fn template_at(value: Value, key: &str) -> Result<Template, ProfileError> {
    Template::new(value).map_err(|(at, err)| {
        let key = if at.is_empty() {
            key.to_owned()
        } else {
            format!("{key} (at {at})")
        };
        ProfileError::new(key, err.to_string())
    })
}

pub(super) fn matcher_at(value: &Value, key: &str) -> Result<Matcher, ProfileError> {
    let Value::Object(map) = value else {
        return Err(wrong_type(
            key.to_owned(),
            "an object of pointers to values",
            value,
        ));
    };
    map.iter()
        .map(|(pointer, want)| {
            Pointer::parse(pointer)
                .map(|p| (p, want.clone()))
                .map_err(|e| ProfileError::new(format!("{key}[{pointer:?}]"), e.to_string()))
        })
        .collect::<Result<_, _>>()
        .map(Matcher::new)
}
