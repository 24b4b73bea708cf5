//! What must never reach a log.

/// tungstenite traces the raw upgrade request (`Authorization` header and
/// all) and every frame it sends and receives (a login message's token, on
/// wires that log in with a payload) at TRACE level. Every subscriber a
/// Holdline binary installs drops these records, whatever filter the user
/// asked for.
pub fn carries_secrets(metadata: &tracing::Metadata<'_>) -> bool {
    *metadata.level() == tracing::Level::TRACE && metadata.target().starts_with("tungstenite")
}
