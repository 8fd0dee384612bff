//! The upstream ISP: dnsmasq as DHCP and DNS server, and an HTTP server
//! standing in for the internet. Everything it reads and writes lives in the
//! lab's directory; it binds only to its own interface in its own namespace.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::plan::{
    DNS_NAME, HTTP_PORT, ISP_ADDR, ISP_IF, WAN_POOL_END, WAN_POOL_START, WAN_PREFIX,
};

/// Text every lab's upstream page contains; the page also names its lab.
pub const PAGE_MARKER: &str = "oxwrt-lab upstream OK";

/// Where the ISP's files live inside a lab directory.
#[derive(Debug, Clone)]
pub struct IspFiles {
    /// The directory the HTTP server serves.
    pub www: PathBuf,
    /// dnsmasq's pid file.
    pub dnsmasq_pid: PathBuf,
    /// dnsmasq's lease database.
    pub dnsmasq_leases: PathBuf,
    /// dnsmasq's log.
    pub dnsmasq_log: PathBuf,
}

impl IspFiles {
    /// The ISP's files under `dir`.
    pub fn under(dir: &Path) -> IspFiles {
        IspFiles {
            www: dir.join("www"),
            dnsmasq_pid: dir.join("dnsmasq.pid"),
            dnsmasq_leases: dir.join("dnsmasq.leases"),
            dnsmasq_log: dir.join("dnsmasq.log"),
        }
    }
}

/// The upstream page of lab `lab`.
pub fn page(lab: &str) -> String {
    format!("<!doctype html>\n<title>oxwrt lab upstream</title>\n<p>{PAGE_MARKER}: lab {lab}</p>\n")
}

/// The URL of the upstream page.
pub fn page_url() -> String {
    format!("http://{ISP_ADDR}:{HTTP_PORT}/")
}

/// The dnsmasq command line: no host configuration read (`/etc/dnsmasq.conf`,
/// `/etc/hosts`, `/etc/resolv.conf`), every file in the lab directory,
/// bound to the ISP interface only, kept in the foreground so its pid is the
/// one the lab tracks.
pub fn dnsmasq_argv(dnsmasq: &Path, files: &IspFiles) -> Vec<OsString> {
    let mask = prefix_mask(WAN_PREFIX);
    let mut argv: Vec<OsString> = vec![dnsmasq.into()];
    argv.extend(
        [
            "--keep-in-foreground".to_owned(),
            "--conf-file=/dev/null".to_owned(),
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            // Stay root: the lab directory is not readable by "nobody", and
            // this dnsmasq lives in a throw-away namespace anyway.
            "--user=root".to_owned(),
            "--group=root".to_owned(),
            format!("--interface={ISP_IF}"),
            "--bind-interfaces".to_owned(),
            format!("--pid-file={}", files.dnsmasq_pid.display()),
            format!("--dhcp-leasefile={}", files.dnsmasq_leases.display()),
            format!("--log-facility={}", files.dnsmasq_log.display()),
            "--log-dhcp".to_owned(),
            "--log-queries".to_owned(),
            format!("--dhcp-range={WAN_POOL_START},{WAN_POOL_END},{mask},1h"),
            format!("--dhcp-option=option:router,{ISP_ADDR}"),
            format!("--dhcp-option=option:dns-server,{ISP_ADDR}"),
            "--dhcp-authoritative".to_owned(),
            // One client on a fresh segment: skip the ICMP probe (about 3 s)
            // dnsmasq sends before offering an address.
            "--no-ping".to_owned(),
            format!("--address=/{DNS_NAME}/{ISP_ADDR}"),
            // Its own answers with a TTL (0 by default), so that they can
            // be cached downstream.
            "--local-ttl=300".to_owned(),
            // An answer larger than 512 bytes, for truncation over UDP.
            format!("--txt-record={BIG_TXT_NAME},{}", big_txt()),
        ]
        .map(OsString::from),
    );
    argv
}

/// A name under the ISP's domain whose TXT answer is larger than 512
/// bytes.
pub const BIG_TXT_NAME: &str = "big.example.test";

/// Four 200-character strings.
fn big_txt() -> String {
    let parts: Vec<String> = (b'a'..=b'd')
        .map(|c| format!("\"{}\"", char::from(c).to_string().repeat(200)))
        .collect();
    parts.join(",")
}

/// The HTTP server command line: python3's http.server if there is a
/// system python3, else busybox httpd. Both stay in the foreground.
pub fn http_argv(python3: Option<&Path>, busybox: &Path, www: &Path) -> Vec<OsString> {
    let bind = ISP_ADDR.to_string();
    let port = HTTP_PORT.to_string();
    match python3 {
        Some(python3) => vec![
            python3.into(),
            "-u".into(),
            "-m".into(),
            "http.server".into(),
            "--bind".into(),
            bind.into(),
            "--directory".into(),
            www.into(),
            port.into(),
        ],
        None => vec![
            busybox.into(),
            "httpd".into(),
            "-f".into(),
            "-v".into(),
            "-p".into(),
            format!("{bind}:{port}").into(),
            "-h".into(),
            www.into(),
        ],
    }
}

/// The netmask of a prefix length.
fn prefix_mask(prefix: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv_strings(argv: &[OsString]) -> Vec<String> {
        argv.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn dnsmasq_reads_nothing_from_the_host() {
        let files = IspFiles::under(Path::new("/tmp/oxwrt-lab/t1/isp"));
        let argv = argv_strings(&dnsmasq_argv(Path::new("/usr/sbin/dnsmasq"), &files));
        for needed in [
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--keep-in-foreground",
            "--bind-interfaces",
            "--interface=eth0",
            "--pid-file=/tmp/oxwrt-lab/t1/isp/dnsmasq.pid",
            "--dhcp-leasefile=/tmp/oxwrt-lab/t1/isp/dnsmasq.leases",
            "--dhcp-range=100.64.0.100,100.64.0.200,255.255.255.0,1h",
            "--address=/example.test/100.64.0.1",
        ] {
            assert!(
                argv.iter().any(|a| a == needed),
                "missing {needed}: {argv:?}"
            );
        }
    }

    #[test]
    fn http_server_falls_back_to_busybox() {
        let www = Path::new("/w");
        let py = argv_strings(&http_argv(
            Some(Path::new("/usr/bin/python3")),
            Path::new("/bin/busybox"),
            www,
        ));
        assert_eq!(py[0], "/usr/bin/python3");
        assert!(py.contains(&"100.64.0.1".to_owned()));
        let bb = argv_strings(&http_argv(None, Path::new("/bin/busybox"), www));
        assert_eq!(bb[..2], ["/bin/busybox", "httpd"]);
        assert!(bb.contains(&"100.64.0.1:80".to_owned()));
    }

    #[test]
    fn masks() {
        assert_eq!(prefix_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_mask(0), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(prefix_mask(32), Ipv4Addr::new(255, 255, 255, 255));
    }

    #[test]
    fn page_names_its_lab() {
        assert!(page("t1").contains(PAGE_MARKER));
        assert!(page("t1").contains("lab t1"));
    }
}
