//! Applying, checking and reading back, asserted with `nft`.

use crate::netns::{Netns, require_root};
use crate::{commit, load, render};

const COOKBOOK: &str = include_str!("../../../../config/oxwrt.toml");

#[test]
fn the_cookbook_applies_and_nft_lists_it() {
    require_root!();
    let ns = Netns::new();
    let config = load(COOKBOOK);
    let rendered = render(&config, &[]);
    commit(&ns, &rendered).expect("commit");
    let listed = ns.nft(&["list", "table", "inet", "oxwrt"]);
    println!("{listed}");
}
