//! `oxctl schema [--markdown]`.

use std::process::ExitCode;

use bus_schema::config::{json_schema, reference_markdown};

/// Prints the JSON Schema, or the Markdown reference.
pub fn run(markdown: bool) -> anyhow::Result<ExitCode> {
    if markdown {
        print!("{}", reference_markdown());
    } else {
        println!("{}", serde_json::to_string_pretty(&json_schema())?);
    }
    Ok(ExitCode::SUCCESS)
}
