//! OTLP input: the protobuf wire reader and the OTLP/JSON transcoder.

pub mod json;
pub mod wire;
