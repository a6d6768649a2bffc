#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod body;
pub mod breaker;
pub mod chat;
pub mod config;
pub mod engine;
pub mod error;
pub mod feedback;
pub mod fuzzing;
pub mod log;
pub mod metrics;
pub mod request;
pub mod server;
pub mod sse;
pub mod stub;
pub mod upstream;

pub use config::Config;
pub use error::{ApiError, GatewayError};
pub use server::{serve, start, start_with, Running};
