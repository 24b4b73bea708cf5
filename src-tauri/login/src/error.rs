use holdline_engine::TokenError;
use oauth2::{ErrorResponse, RequestTokenError};
use thiserror::Error;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LoginError {
    /// The provider said no: a refused grant, a wrong client secret, a
    /// user who denied access, a code that expired.
    #[error("the identity provider refused: {reason}")]
    Refused { reason: String },
    /// The provider could not be asked, or answered something that is not
    /// OAuth.
    #[error("the identity provider could not be reached: {reason}")]
    Unreachable { reason: String },
    /// What the user gave cannot work (an issuer that is not a URL, a
    /// provider without the endpoint the flow needs).
    #[error("{reason}")]
    Invalid { reason: String },
}

impl LoginError {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        LoginError::Invalid {
            reason: reason.into(),
        }
    }

    pub(crate) fn unreachable(reason: impl Into<String>) -> Self {
        LoginError::Unreachable {
            reason: reason.into(),
        }
    }
}

impl From<LoginError> for TokenError {
    fn from(error: LoginError) -> Self {
        match error {
            LoginError::Refused { reason } | LoginError::Invalid { reason } => {
                TokenError::Refused { reason }
            }
            LoginError::Unreachable { reason } => TokenError::Unreachable { reason },
        }
    }
}

/// A token request's failure in our words: the provider's own error code
/// and description when it answered with one.
pub(crate) fn from_token_request<RE, T>(error: RequestTokenError<RE, T>) -> LoginError
where
    RE: std::error::Error + 'static,
    T: ErrorResponse + std::fmt::Display + 'static,
{
    match error {
        RequestTokenError::ServerResponse(response) => LoginError::Refused {
            reason: response.to_string(),
        },
        RequestTokenError::Request(error) => LoginError::unreachable(chain(&error)),
        RequestTokenError::Parse(error, _body) => {
            LoginError::unreachable(format!("the token endpoint answered nonsense: {error}"))
        }
        RequestTokenError::Other(detail) => LoginError::unreachable(detail),
    }
}

/// An error with its sources, so "error sending request" says why.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}
