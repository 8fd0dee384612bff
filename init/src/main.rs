mod broker;
mod graph;
mod logs;
mod paths;
mod reaper;
mod spawn;
mod spec;
mod supervisor;
fn main() {}
