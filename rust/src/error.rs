//! The one error of the decode path: the request is malformed, oversize or hostile.
//!
//! A `DecodeError` rejects the whole request (HTTP 400 / gRPC InvalidArgument); its text is a short
//! reason a client can act on. Items that are individually invalid (an id of the wrong length) are
//! not errors: they are counted as rejected and the rest of the request is kept.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl DecodeError {
    pub fn new(reason: impl Into<String>) -> Self {
        DecodeError(reason.into())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

pub type Result<T> = std::result::Result<T, DecodeError>;

/// `Err(DecodeError(format!(...)))` in one line.
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::error::DecodeError(format!($($arg)*))) };
}
pub(crate) use bail;
