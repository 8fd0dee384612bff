//! One module per verb.

pub mod dump_config;
pub mod schema;
pub mod validate;
pub mod wizard;
