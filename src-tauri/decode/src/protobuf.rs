//! Protocol Buffers with the user's schema: a `.proto` file (compiled here
//! by `protox`, with its directory as the import path) or a descriptor set
//! (`protoc --descriptor_set_out`), read by `prost-reflect` and written as
//! proto3's JSON mapping.

use std::path::Path;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;

use super::DecodeError;

#[derive(Debug, Clone)]
pub struct ProtobufDecoder {
    message: MessageDescriptor,
}

impl ProtobufDecoder {
    pub fn load(file: &Path, message: &str) -> Result<ProtobufDecoder, String> {
        let shown = file.display();
        let bytes = std::fs::read(file).map_err(|err| format!("cannot read {shown}: {err}"))?;
        let is_proto = file.extension().is_some_and(|ext| ext == "proto");
        let pool = if is_proto {
            let include = file
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = file
                .file_name()
                .ok_or_else(|| format!("{shown} names no file"))?;
            let files = protox::compile([name], [include])
                .map_err(|err| format!("{shown} does not compile: {err}"))?;
            DescriptorPool::from_file_descriptor_set(files)
        } else {
            DescriptorPool::decode(bytes.as_slice())
        }
        .map_err(|err| format!("{shown} is not a usable schema: {err}"))?;
        let message = pool.get_message_by_name(message).ok_or_else(|| {
            let known: Vec<String> = pool
                .all_messages()
                .map(|m| m.full_name().to_owned())
                .take(20)
                .collect();
            format!(
                "{shown} has no message {message:?} (it has: {})",
                known.join(", ")
            )
        })?;
        Ok(ProtobufDecoder { message })
    }

    pub fn message_name(&self) -> &str {
        self.message.full_name()
    }

    pub fn decode(&self, bytes: &[u8]) -> Result<Value, DecodeError> {
        let error = |reason: String| DecodeError {
            format: "Protocol Buffers",
            reason,
        };
        let message = DynamicMessage::decode(self.message.clone(), bytes)
            .map_err(|err| error(format!("{} ({})", err, self.message.full_name())))?;
        let options = SerializeOptions::new().skip_default_fields(false);
        message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|err| error(err.to_string()))
    }
}
