//! Every type that crosses an oxwrt process boundary, so that a daemon and
//! its clients can never disagree: the config model and its validation
//! and the bus interfaces (later: control-plane messages).

pub mod bus;
pub mod config;
