//! Compiles `sandbox/seccomp.toml` into BPF for the target's architecture
//! (with seccompiler) and writes it to `$OUT_DIR/seccomp.rs` as static
//! `sock_filter` tables, so a typo in a policy fails the build, not a
//! router at boot.

use std::{
    collections::{BTreeMap, BTreeSet},
    env,
    fmt::Write as _,
    fs,
    path::Path,
};

use seccompiler::{BpfProgram, TargetArch};
use serde::Deserialize;
use serde_json::{Value, json};

const POLICY: &str = "sandbox/seccomp.toml";
/// Architectures a syscall name must exist on at least one of.
const KNOWN: [TargetArch; 3] = [TargetArch::x86_64, TargetArch::aarch64, TargetArch::riscv64];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Part {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    syscalls: BTreeMap<String, String>,
    #[serde(default)]
    socket: Vec<Socket>,
    #[serde(default)]
    ioctl: BTreeMap<String, String>,
    #[serde(default)]
    prctl: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Socket {
    domain: String,
    protocol: Option<String>,
    #[allow(dead_code)]
    why: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    groups: BTreeMap<String, Part>,
    policies: BTreeMap<String, Part>,
}

/// The kernel's values of the names the policies use. The generic ioctl
/// numbers hold on every architecture seccompiler supports.
fn constant(name: &str) -> u64 {
    match name {
        "AF_UNIX" => 1,
        "AF_INET" => 2,
        "AF_INET6" => 10,
        "AF_NETLINK" => 16,
        "AF_PACKET" => 17,
        "NETLINK_ROUTE" => 0,
        "NETLINK_NETFILTER" => 12,
        "FIONBIO" => 0x5421,
        "FIOCLEX" => 0x5451,
        "SIOCGIFINDEX" => 0x8933,
        "PR_SET_NAME" => 15,
        other => panic!("{POLICY}: unknown constant {other}; add it to build.rs"),
    }
}

fn compile(doc: &Value, arch: TargetArch) -> Result<BTreeMap<String, BpfProgram>, String> {
    let text = doc.to_string();
    let map = seccompiler::compile_from_json(text.as_bytes(), arch).map_err(|e| e.to_string())?;
    Ok(map.into_iter().collect())
}

fn exists(name: &str, arch: TargetArch) -> bool {
    let doc = json!({ "probe": {
        "default_action": "kill_process",
        "filter_action": "allow",
        "filter": [{ "syscall": name }],
    }});
    compile(&doc, arch).is_ok()
}

fn eq(index: u8, value: u64) -> Value {
    json!({ "index": index, "type": "dword", "op": "eq", "val": value })
}

/// The seccompiler rules of one policy, its groups merged in, for `arch`.
fn rules(
    name: &str,
    policy: &Part,
    groups: &BTreeMap<String, Part>,
    available: &BTreeSet<&str>,
) -> Vec<Value> {
    let mut parts = vec![policy];
    for g in &policy.groups {
        parts.push(
            groups
                .get(g)
                .unwrap_or_else(|| panic!("{POLICY}: {name}: no group {g}")),
        );
    }
    let mut plain = BTreeSet::new();
    let mut out = Vec::new();
    for part in &parts {
        assert!(
            part.groups.is_empty() || std::ptr::eq(*part, policy),
            "{POLICY}: groups do not nest"
        );
        for syscall in part.syscalls.keys() {
            assert!(
                !["socket", "socketpair", "ioctl", "prctl"].contains(&syscall.as_str()),
                "{POLICY}: {name}: {syscall} is allowed by argument only"
            );
            if available.contains(syscall.as_str()) {
                plain.insert(syscall.clone());
            }
        }
        for s in &part.socket {
            let mut args = vec![eq(0, constant(&s.domain))];
            if let Some(p) = &s.protocol {
                args.push(eq(2, constant(p)));
            }
            out.push(json!({ "syscall": "socket", "args": args }));
            if s.domain == "AF_UNIX" {
                out.push(json!({ "syscall": "socketpair", "args": [eq(0, constant("AF_UNIX"))] }));
            }
        }
        for request in part.ioctl.keys() {
            out.push(json!({ "syscall": "ioctl", "args": [eq(1, constant(request))] }));
        }
        for option in part.prctl.keys() {
            out.push(json!({ "syscall": "prctl", "args": [eq(0, constant(option))] }));
        }
    }
    out.extend(plain.into_iter().map(|s| json!({ "syscall": s })));
    out
}

fn main() {
    println!("cargo:rerun-if-changed={POLICY}");
    println!("cargo:rerun-if-changed=build.rs");
    let text = fs::read_to_string(POLICY).expect("read the seccomp policy");
    let file: PolicyFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{POLICY}: {e}"));
    let arch_name = env::var("CARGO_CFG_TARGET_ARCH").expect("target arch");
    let syscalls: BTreeSet<&str> = file
        .groups
        .values()
        .chain(file.policies.values())
        .flat_map(|p| p.syscalls.keys().map(String::as_str))
        .collect();
    for syscall in &syscalls {
        assert!(
            KNOWN.iter().any(|&a| exists(syscall, a)),
            "{POLICY}: no architecture has a syscall {syscall}"
        );
    }
    let mut out = format!(
        "/// The policies of seccomp.toml (generated by build.rs).\n\
         pub static NAMES: &[&str] = &{:?};\n\
         /// The compiled seccomp policies by name (generated by build.rs).\n\
         pub static POLICIES: &[(&str, &[seccompiler::sock_filter])] = &[\n",
        file.policies.keys().collect::<Vec<_>>()
    );
    match TargetArch::try_from(arch_name.as_str()) {
        Ok(arch) => {
            let available: BTreeSet<&str> = syscalls
                .iter()
                .copied()
                .filter(|s| exists(s, arch))
                .collect();
            let mut doc = serde_json::Map::new();
            for (name, policy) in &file.policies {
                doc.insert(
                    name.clone(),
                    json!({
                        "default_action": "kill_process",
                        "filter_action": "allow",
                        "filter": rules(name, policy, &file.groups, &available),
                    }),
                );
            }
            let programs =
                compile(&Value::Object(doc), arch).unwrap_or_else(|e| panic!("{POLICY}: {e}"));
            for (name, program) in programs {
                writeln!(out, "    ({name:?}, &[").expect("write");
                for f in program {
                    writeln!(
                        out,
                        "        seccompiler::sock_filter {{ code: {}, jt: {}, jf: {}, k: {} }},",
                        f.code, f.jt, f.jf, f.k
                    )
                    .expect("write");
                }
                out.push_str("    ]),\n");
            }
        }
        Err(_) => println!(
            "cargo:warning=no seccomp filters for {arch_name}: seccompiler compiles for x86_64, aarch64 and riscv64"
        ),
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("seccomp.rs");
    fs::write(dest, out).expect("write seccomp.rs");
}
