//! Counter Service origin: a hyper server that batches concurrent increments into single
//! `UPDATE … RETURNING` statements and serves short-lived cached reads.
//!
//! A request reads top to bottom: [`server`] → [`routes`] → [`counter`] → [`store`];
//! [`startup`] wires them into an [`App`] and runs the shutdown sequence.

pub mod app;
pub mod assets;
pub mod clock;
pub mod config;
pub mod counter;
pub mod health;
pub mod routes;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;

pub use app::App;
pub use config::Config;
pub use startup::{start, Running, StartError};
