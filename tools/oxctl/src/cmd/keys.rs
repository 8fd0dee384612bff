//! `oxctl keygen --out PATH` and `oxctl --print-server-key`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use oxwrt_quic::Identity;

/// Writes a new client key to `out` (0600) and its public key in hex to
/// `out.pub`, and prints what to add to the router's config.
pub fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let id = Identity::generate();
    id.write(out)?;
    let public = out.with_extension(match out.extension() {
        Some(e) => format!("{}.pub", e.to_string_lossy()),
        None => "pub".into(),
    });
    std::fs::write(&public, format!("{}\n", id.public_hex()))
        .with_context(|| format!("write {}", public.display()))?;
    println!(
        "wrote {} (private, mode 0600) and {}",
        out.display(),
        public.display()
    );
    println!("fingerprint {}", id.fingerprint());
    println!();
    println!("Authorize it on the router (oxwrt.toml):");
    println!();
    println!("[[control.clients]]");
    println!("name = \"laptop\"");
    println!("key = \"{}\"", id.public_hex());
    println!("role = \"admin\"          # or \"read-only\"");
    Ok(ExitCode::SUCCESS)
}

/// Prints ctld's public key from its key file under `state` (on the
/// router: `/var/lib/oxwrt`).
pub fn print_server_key(state: &Path) -> anyhow::Result<ExitCode> {
    let path = state.join(bus_schema::control::SERVER_KEY_FILE);
    let id = Identity::load(&path).with_context(|| {
        format!(
            "ctld makes its key at first start; is this the router, and has ctld run? ({})",
            path.display()
        )
    })?;
    println!("{}", id.public_hex());
    eprintln!("{}", id.fingerprint());
    Ok(ExitCode::SUCCESS)
}
