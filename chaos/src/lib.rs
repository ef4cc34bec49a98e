//! The Counter Service fault suite (issue 9): the origin under database outages, SIGKILL,
//! rolling restarts behind a load balancer, slow and malformed clients, and failures that put
//! secrets close to an error message. Each case starts real processes on loopback, injects its
//! fault, reports figures and fails when a promise of docs/design.md §1–§2 breaks.

/// Named ways to break a case's figures, for the tests that prove a judge notices each:
/// `breaks![Figures; "what breaks" => |f| change, …]` (see `report::assert_each_break_fails`).
#[cfg(test)]
macro_rules! breaks {
    ($figures:ty; $($what:literal => |$f:ident| $change:expr),+ $(,)?) => {
        vec![$((
            $what,
            Box::new(|$f: &mut $figures| {
                $change;
            }) as Box<dyn Fn(&mut $figures)>,
        )),+]
    };
}

pub mod cases;
pub mod database;
pub mod error;
pub mod load;
pub mod report;

pub use error::Error;
