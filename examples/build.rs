//! Turns every ```` ```rust ```` block of the workspace README into code
//! that `tests/readme.rs` compiles, so that the README's examples cannot
//! drift from the API (issue 13: they were not compiled, and some were
//! wrong).
//!
//! A README block is a fragment: it uses an `engine` or a `reader` that an
//! earlier block made, `.await`s and `?`s. Rustdoc's doctests would need
//! hidden `# ` lines for that, which GitHub shows as they are. Instead an
//! HTML comment just before a block, invisible on GitHub, gives its
//! setup: `<!-- readme-check: let engine = ...; -->` is put before the
//! block's code, inside an `async fn` returning
//! `Result<(), Box<dyn Error>>`, and `<!-- readme-check: items -->` puts
//! a block of items (a type and its `impl`s) at the top level, for other
//! blocks to use. A block with no comment is compiled as it is, in such a
//! function. Every block sees `Engine` and `StateEvent`, which the
//! README's first block imports and the later ones assume.
//!
//! The functions are compiled, not run: several blocks open directories
//! under the current one, as a user's program would.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let readme = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    println!("cargo::rerun-if-changed={}", readme.display());
    let text = std::fs::read_to_string(&readme)
        .unwrap_or_else(|error| panic!("reading {}: {error}", readme.display()));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("readme.rs"), generate(&text))
        .unwrap_or_else(|error| panic!("writing readme.rs in {}: {error}", out.display()));
}

/// The Rust source for every `rust` block of `readme`, and `BLOCKS`, how
/// many there are.
fn generate(readme: &str) -> String {
    let mut out =
        String::from("#[allow(unused_imports)]\nuse solostate::{Engine, StateEvent};\n\n");
    let mut blocks = 0;
    let mut setup: Option<String> = None;
    let mut lines = readme.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let line_no = index + 1;
        if let Some(rest) = line.trim_start().strip_prefix("<!-- readme-check:") {
            let mut comment = String::new();
            let mut rest = rest.to_owned();
            loop {
                if let Some(end) = rest.find("-->") {
                    comment.push_str(&rest[..end]);
                    break;
                }
                comment.push_str(&rest);
                comment.push('\n');
                rest = match lines.next() {
                    Some((_, next)) => next.to_owned(),
                    None => panic!("README line {line_no}: a readme-check comment never ends"),
                };
            }
            setup = Some(comment.trim().to_owned());
            continue;
        }
        if line.trim_start().starts_with("```rust") {
            let mut code = String::new();
            loop {
                match lines.next() {
                    Some((_, end)) if end.trim_start().starts_with("```") => break,
                    Some((_, code_line)) => {
                        code.push_str(code_line);
                        code.push('\n');
                    }
                    None => panic!("README line {line_no}: a rust block never ends"),
                }
            }
            blocks += 1;
            let setup = setup.take().unwrap_or_default();
            let _ = writeln!(out, "/// The README's block at line {line_no}.");
            match setup.as_str() {
                "items" => {
                    let _ = writeln!(out, "{code}");
                }
                _ => {
                    let _ = writeln!(
                        out,
                        "#[allow(unused, unreachable_code, clippy::all)]\n\
                         pub async fn readme_line_{line_no}() -> Result<(), Box<dyn std::error::Error>> {{\n\
                         {setup}\n{code}\nOk(())\n}}\n"
                    );
                }
            }
        } else if setup.is_some() && !line.trim().is_empty() {
            panic!(
                "README line {line_no}: a readme-check comment must come just before a rust block"
            );
        }
    }
    let _ = writeln!(
        out,
        "/// How many rust blocks the README has.\npub const BLOCKS: usize = {blocks};"
    );
    out
}
