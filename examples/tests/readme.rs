//! The README's code blocks, compiled (see `examples/build.rs`, which
//! turns each into a function here): a README example that no longer
//! matches the API fails this crate's build, and so CI.

#![forbid(unsafe_code)]
#![allow(missing_docs, dead_code, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/readme.rs"));

/// Every block was taken: a fence the generator did not recognise (say
/// `rust,no_run`, or an indented one) would otherwise escape the check.
#[test]
fn every_rust_block_of_the_readme_is_compiled() {
    let readme = include_str!("../../README.md");
    let fences = readme
        .lines()
        .filter(|line| line.trim_start().starts_with("```rust"))
        .count();
    assert!(fences > 0, "the README has rust blocks");
    assert_eq!(BLOCKS, fences, "blocks compiled, against rust fences");
}
