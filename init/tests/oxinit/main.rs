//! oxinit from outside, one binary: supervision against the real broker,
//! and oxinit as PID 1 in fresh namespaces.

mod pid1;
mod supervise;
