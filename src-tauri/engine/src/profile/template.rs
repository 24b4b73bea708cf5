//! Templates (profiles §2): a JSON value whose strings may hold
//! placeholders. A string that is exactly one placeholder becomes that
//! value with its JSON type; inside a longer string a placeholder becomes
//! its text (`null` as the empty string). `{{` and `}}` are literal braces.

use serde_json::{Map, Value};

use super::pointer::{Pointer, PointerError};

/// The text a sent frame's token is replaced with in the history.
pub const REDACTED: &str = "<redacted>";

/// One placeholder of §2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    Token,
    Feed,
    Since,
    Epoch,
    Id,
    Data,
    /// `{in:/pointer}`: a value of the frame being answered.
    In(Pointer),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(std::borrow::Cow<'a, str>),
    Slot(Placeholder),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unknown placeholder {{{0}}}; known: {{token}}, {{feed}}, {{since}}, {{epoch}}, {{id}}, {{data}}, {{in:/pointer}}"
    )]
    Unknown(String),
    #[error("a '{{' without its '}}' (write {{{{ for a literal brace)")]
    Unclosed,
    #[error("a '}}' without its '{{' (write }}}} for a literal brace)")]
    Unopened,
    #[error("{{in:…}}: {0}")]
    Pointer(PointerError),
}

fn pieces(text: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['{', '}']) {
        literal.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{{") {
            literal.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            literal.push('}');
            rest = after;
        } else if tail.starts_with('}') {
            return Err(TemplateError::Unopened);
        } else {
            let end = tail.find('}').ok_or(TemplateError::Unclosed)?;
            let name = &tail[1..end];
            if !literal.is_empty() {
                out.push(Piece::Text(std::mem::take(&mut literal).into()));
            }
            out.push(Piece::Slot(placeholder(name)?));
            rest = &tail[end + 1..];
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        out.push(Piece::Text(literal.into()));
    }
    Ok(out)
}

fn placeholder(name: &str) -> Result<Placeholder, TemplateError> {
    Ok(match name {
        "token" => Placeholder::Token,
        "feed" => Placeholder::Feed,
        "since" => Placeholder::Since,
        "epoch" => Placeholder::Epoch,
        "id" => Placeholder::Id,
        "data" => Placeholder::Data,
        other => match other.strip_prefix("in:") {
            Some(pointer) => {
                Placeholder::In(Pointer::parse(pointer).map_err(TemplateError::Pointer)?)
            }
            None => return Err(TemplateError::Unknown(other.to_owned())),
        },
    })
}

/// A validated template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template(Value);

/// The values a template is rendered with; absent ones render as `null`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vars<'a> {
    /// The token, or [`REDACTED`] when rendering for the record.
    pub token: Option<&'a str>,
    pub feed: Option<&'a str>,
    pub since: Option<u64>,
    pub epoch: Option<&'a str>,
    pub id: Option<&'a str>,
    pub data: Option<&'a Value>,
    /// The frame being answered, for `{in:/pointer}`.
    pub answering: Option<&'a Value>,
}

impl Template {
    /// Checks every string of `value`; the error says where (a JSON Pointer
    /// into the template) and what is wrong.
    pub fn new(value: Value) -> Result<Template, (String, TemplateError)> {
        fn check(value: &Value, at: &mut String) -> Result<(), (String, TemplateError)> {
            match value {
                Value::String(s) => pieces(s).map(|_| ()).map_err(|e| (at.clone(), e)),
                Value::Array(items) => items.iter().enumerate().try_for_each(|(i, item)| {
                    let len = at.len();
                    at.push_str(&format!("/{i}"));
                    let result = check(item, at);
                    at.truncate(len);
                    result
                }),
                Value::Object(map) => map.iter().try_for_each(|(key, item)| {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    let result = check(item, at);
                    at.truncate(len);
                    result
                }),
                _ => Ok(()),
            }
        }
        check(&value, &mut String::new())?;
        Ok(Template(value))
    }

    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// Whether any string of the template uses `wanted`.
    pub fn uses(&self, wanted: &Placeholder) -> bool {
        fn walk(value: &Value, wanted: &Placeholder) -> bool {
            match value {
                Value::String(s) => pieces(s)
                    .map(|p| p.iter().any(|p| matches!(p, Piece::Slot(s) if s == wanted)))
                    .unwrap_or(false),
                Value::Array(items) => items.iter().any(|v| walk(v, wanted)),
                Value::Object(map) => map.values().any(|v| walk(v, wanted)),
                _ => false,
            }
        }
        walk(&self.0, wanted)
    }

    pub fn render(&self, vars: &Vars<'_>) -> Value {
        render_value(&self.0, vars)
    }

    /// The rendered template as the text of one frame.
    pub fn render_text(&self, vars: &Vars<'_>) -> String {
        match self.render(vars) {
            Value::String(text) => text,
            other => other.to_string(),
        }
    }
}

fn render_value(value: &Value, vars: &Vars<'_>) -> Value {
    match value {
        Value::String(s) => render_string(s, vars),
        Value::Array(items) => Value::Array(items.iter().map(|v| render_value(v, vars)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), render_value(v, vars)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

fn slot_value(slot: &Placeholder, vars: &Vars<'_>) -> Value {
    let text = |s: Option<&str>| s.map_or(Value::Null, |s| Value::String(s.to_owned()));
    match slot {
        Placeholder::Token => text(vars.token),
        Placeholder::Feed => text(vars.feed),
        Placeholder::Since => vars.since.map_or(Value::Null, Value::from),
        Placeholder::Epoch => text(vars.epoch),
        Placeholder::Id => text(vars.id),
        Placeholder::Data => vars.data.cloned().unwrap_or(Value::Null),
        Placeholder::In(pointer) => vars
            .answering
            .and_then(|frame| pointer.resolve(frame))
            .cloned()
            .unwrap_or(Value::Null),
    }
}

fn render_string(s: &str, vars: &Vars<'_>) -> Value {
    // Validated at load; a string that no longer parses is sent as written.
    let Ok(pieces) = pieces(s) else {
        return Value::String(s.to_owned());
    };
    if let [Piece::Slot(slot)] = pieces.as_slice() {
        return slot_value(slot, vars);
    }
    let mut out = String::new();
    for piece in &pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Slot(slot) => match slot_value(slot, vars) {
                Value::Null => {}
                Value::String(text) => out.push_str(&text),
                other => out.push_str(&other.to_string()),
            },
        }
    }
    Value::String(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(value: Value) -> Template {
        Template::new(value).expect("valid template")
    }

    #[test]
    fn a_lone_placeholder_keeps_its_json_type() {
        let t = template(json!({"op": "sub", "ch": "{feed}", "from": "{since}", "d": "{data}"}));
        let data = json!({"px": 1});
        let vars = Vars {
            feed: Some("btc"),
            since: Some(41),
            data: Some(&data),
            ..Vars::default()
        };
        assert_eq!(
            t.render(&vars),
            json!({"op": "sub", "ch": "btc", "from": 41, "d": {"px": 1}})
        );
        assert_eq!(
            t.render(&Vars::default()),
            json!({"op": "sub", "ch": null, "from": null, "d": null})
        );
    }

    #[test]
    fn inside_a_longer_string_placeholders_become_text_and_null_is_empty() {
        let t = template(json!("Bearer {token} since={since}; {{literal}}"));
        let vars = Vars {
            token: Some("abc"),
            ..Vars::default()
        };
        assert_eq!(t.render(&vars), json!("Bearer abc since=; {literal}"));
        let vars = Vars {
            since: Some(7),
            ..Vars::default()
        };
        assert_eq!(t.render(&vars), json!("Bearer  since=7; {literal}"));
    }

    #[test]
    fn answers_copy_fields_of_the_frame_they_answer() {
        let t = template(json!({"type": "pong", "ts": "{in:/ts}", "n": "{in:/a~1b}"}));
        let frame = json!({"type": "ping", "ts": 123, "a/b": "x"});
        let vars = Vars {
            answering: Some(&frame),
            ..Vars::default()
        };
        assert_eq!(
            t.render(&vars),
            json!({"type": "pong", "ts": 123, "n": "x"})
        );
    }

    #[test]
    fn bad_templates_are_refused_with_where_and_why() {
        let (at, err) = Template::new(json!({"a": [1, "{tokn}"]})).unwrap_err();
        assert_eq!(at, "/a/1");
        assert!(err.to_string().contains("{tokn}"), "{err}");
        assert_eq!(
            Template::new(json!("{feed")).unwrap_err().1,
            TemplateError::Unclosed
        );
        assert_eq!(
            Template::new(json!("feed}")).unwrap_err().1,
            TemplateError::Unopened
        );
        assert!(matches!(
            Template::new(json!("{in:ts}")).unwrap_err().1,
            TemplateError::Pointer(_)
        ));
    }

    #[test]
    fn uses_finds_a_placeholder_anywhere() {
        let t = template(json!({"args": [{"from": "{since}"}]}));
        assert!(t.uses(&Placeholder::Since));
        assert!(!t.uses(&Placeholder::Token));
    }
}
