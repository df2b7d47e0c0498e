//! Scenario files: model, loading with located errors, validation and the load plan.

pub mod advice;
pub mod cluster;
pub mod distributed;
pub mod fault;
mod load;
pub mod local_target;
mod model;
pub mod plan;
mod problem;
pub mod protocol;
pub mod quantity;
pub mod select;
pub mod shard;
pub mod template;
pub mod threshold;
mod validate;
pub mod worker_pods;

pub use load::{LoadError, Located, line_col, load, parse};
pub use model::*;
pub use problem::Problem;
pub use validate::max_slots;
