//! Every type that crosses an oxwrt process boundary, so that a daemon and
//! its clients can never disagree: the config model and its validation
//! (later: bus interfaces and control-plane messages).

pub mod config;
