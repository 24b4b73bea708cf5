//! Saved messages: named publish templates per server, kept in the
//! settings, sent with one click, exported and imported as a file. A
//! message's data is a profile template (profiles §2) in which `{feed}`
//! and `{id}` (the publish's own id, fresh each send) may stand; nothing
//! else a profile knows (least of all `{token}`) goes into a publish.

use holdline_engine::profile::{Placeholder, Template, Vars};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{AppError, AppResult};

/// Names longer than this are not names.
const MAX_NAME_CHARS: usize = 100;
/// A file of saved messages larger than this is not one.
pub const MAX_FILE_BYTES: u64 = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedMessage {
    pub name: String,
    pub feed: String,
    /// The message as JSON text, as the user wrote it.
    pub data: String,
}

/// What an export holds, so an import can tell it from any JSON.
#[derive(Debug, Serialize, Deserialize)]
struct SavedFile {
    holdline_saved_messages: u32,
    messages: Vec<SavedMessage>,
}

impl SavedMessage {
    /// Trims the name and refuses what could not be sent: an empty or
    /// overlong name, a feed name the protocol refuses, data that is not
    /// JSON, a placeholder other than `{feed}` and `{id}`.
    pub fn checked(mut self) -> AppResult<SavedMessage> {
        self.name = self.name.trim().to_owned();
        if self.name.is_empty() || self.name.chars().count() > MAX_NAME_CHARS {
            return Err(AppError::invalid(format!(
                "a saved message needs a name of 1 to {MAX_NAME_CHARS} characters"
            )));
        }
        holdline_engine::validate_feed_name(&self.feed)
            .map_err(|e| AppError::invalid(format!("{}: {e}", self.name)))?;
        self.template()?;
        Ok(self)
    }

    fn template(&self) -> AppResult<Template> {
        let value: Value = serde_json::from_str(&self.data).map_err(|e| {
            AppError::invalid(format!("{}: the message is not valid JSON: {e}", self.name))
        })?;
        let template = Template::new(value)
            .map_err(|(at, e)| AppError::invalid(format!("{}: {at}: {e}", self.name)))?;
        for refused in [
            Placeholder::Token,
            Placeholder::Since,
            Placeholder::Epoch,
            Placeholder::Data,
        ] {
            if template.uses(&refused) {
                return Err(AppError::invalid(format!(
                    "{}: a saved message may hold {{feed}} and {{id}} only",
                    self.name
                )));
            }
        }
        Ok(template)
    }

    /// The message to publish with id `id`.
    pub fn render(&self, id: &str) -> AppResult<Box<RawValue>> {
        let value = self.template()?.render(&Vars {
            feed: Some(&self.feed),
            id: Some(id),
            ..Vars::default()
        });
        RawValue::from_string(value.to_string())
            .map_err(|e| AppError::invalid(format!("{}: {e}", self.name)))
    }
}

/// `list` with `message` in it: a message of the same name is replaced,
/// a new one goes last.
pub fn with(mut list: Vec<SavedMessage>, message: SavedMessage) -> Vec<SavedMessage> {
    match list.iter_mut().find(|m| m.name == message.name) {
        Some(same) => *same = message,
        None => list.push(message),
    }
    list
}

pub fn to_file(messages: &[SavedMessage]) -> String {
    serde_json::to_string_pretty(&SavedFile {
        holdline_saved_messages: 1,
        messages: messages.to_vec(),
    })
    .unwrap_or_default()
}

/// The messages of an exported file, each checked; the first that fails
/// names itself and nothing is imported.
pub fn from_file(text: &str) -> AppResult<Vec<SavedMessage>> {
    let file: SavedFile = serde_json::from_str(text)
        .map_err(|e| AppError::invalid(format!("not a file of Holdline saved messages: {e}")))?;
    file.messages
        .into_iter()
        .map(SavedMessage::checked)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(name: &str, data: &str) -> SavedMessage {
        SavedMessage {
            name: name.into(),
            feed: "orders".into(),
            data: data.into(),
        }
    }

    #[test]
    fn feed_and_id_are_filled_in_and_nothing_else_is_accepted() {
        let saved = message(
            " buy ",
            r#"{"op":"buy","feed":"{feed}","ref":"{id}","n":1}"#,
        )
        .checked()
        .unwrap();
        assert_eq!(saved.name, "buy");
        assert_eq!(
            saved.render("p-1").unwrap().get(),
            r#"{"feed":"orders","n":1,"op":"buy","ref":"p-1"}"#
        );
        for (data, says) in [
            (r#"{"t":"{token}"}"#, "{feed} and {id} only"),
            (r#"{"t":"{nope}"}"#, "unknown placeholder"),
            ("{not json", "not valid JSON"),
        ] {
            let error = message("m", data).checked().unwrap_err().to_string();
            assert!(error.contains(says), "{data}: {error}");
        }
        assert!(message("", "{}").checked().is_err());
        assert!(
            SavedMessage {
                feed: "bad feed".into(),
                ..message("m", "{}")
            }
            .checked()
            .is_err()
        );
    }

    #[test]
    fn a_file_round_trips_and_a_bad_one_imports_nothing() {
        let list = with(
            with(Vec::new(), message("a", "{}")),
            message("b", r#"{"x":"{id}"}"#),
        );
        let list = with(list, message("a", "[1]"));
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].data, "[1]", "same name replaced in place");
        assert_eq!(from_file(&to_file(&list)).unwrap(), list);
        assert!(
            from_file("[]")
                .unwrap_err()
                .to_string()
                .contains("saved messages")
        );
        let broken = to_file(&[message("ok", "{}"), message("broken", "{")]);
        assert!(
            from_file(&broken)
                .unwrap_err()
                .to_string()
                .contains("broken")
        );
    }
}
