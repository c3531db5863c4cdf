//! The one error type of the portal. Server functions, pages and the JSON API
//! all speak it. Internal failures are logged in full on the server and reach
//! the person only as a reference they can give to whoever reads the log.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", content = "message", rename_all = "snake_case")]
pub enum AppError {
    /// Input that cannot be accepted; the message names the field and why.
    #[error("{0}")]
    Invalid(String),
    #[error("Sign in to continue.")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyAttempts(String),
    #[error("Change your temporary password before doing anything else.")]
    PasswordChangeRequired,
    /// The browser could not talk to the portal at all.
    #[error("The portal could not be reached: {0}")]
    Transport(String),
    #[error(
        "Something went wrong on our side (reference {0}). The details are in the portal's log."
    )]
    Internal(String),
}

impl AppError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// The HTTP status that fits this error, for the JSON API and for
    /// server-function responses.
    pub fn status(&self) -> u16 {
        match self {
            Self::Invalid(_) => 400,
            Self::Unauthenticated => 401,
            Self::Forbidden(_) | Self::PasswordChangeRequired => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::TooManyAttempts(_) => 429,
            Self::Transport(_) => 502,
            Self::Internal(_) => 500,
        }
    }

    /// The stable machine-readable code, as serialized.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::TooManyAttempts(_) => "too_many_attempts",
            Self::PasswordChangeRequired => "password_change_required",
            Self::Transport(_) => "transport",
            Self::Internal(_) => "internal",
        }
    }

    /// Logs an internal failure with a short reference and returns the error
    /// the person sees, which carries only that reference.
    #[cfg(feature = "ssr")]
    pub fn internal(err: impl std::fmt::Display) -> Self {
        use rand::Rng;
        let reference: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(8)
            .map(char::from)
            .collect();
        tracing::error!(reference = %reference, error = %err, "internal error");
        Self::Internal(reference)
    }
}

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(format!("database: {err}"))
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(msg) | ServerFnErrorErr::Deserialization(msg) => {
                Self::Invalid(format!("The request was malformed: {msg}"))
            }
            ServerFnErrorErr::Request(msg) => Self::Transport(msg),
            ServerFnErrorErr::UnsupportedRequestMethod(msg) => Self::Invalid(msg),
            other => Self::Transport(other.to_string()),
        }
    }
}
