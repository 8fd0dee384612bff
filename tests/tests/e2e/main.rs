//! The end-to-end tests, one binary: the lab harness itself, and the
//! spine (oxinit, the broker, configd and test daemons) in a lab.

mod lab;
mod spine;
