//! The shipped `solostate` binary: the tool for the built-in
//! `StateEvent<K, V>` with a few key and value types, and the examples'
//! `Bank`, chosen with `--types`. See the `solostate_cli` crate docs.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use solostate::StateEvent;
use solostate::persistence::upcast::Upcasters;
use solostate_cli::Cli;
use solostate_examples::{BANK_V1_SCHEMA, BANK_V2_SCHEMA, BankV2};

/// The command line: the library's, plus the choice of event type.
#[derive(Debug, Parser)]
#[command(name = "solostate", version, about)]
struct Bin {
    /// The event type the directory's journal holds, for the commands
    /// that decode events (dump, state, and the replay of verify).
    #[arg(long, global = true, value_enum)]
    types: Option<Types>,
    #[command(flatten)]
    cli: Cli,
}

/// The event types this binary knows.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Types {
    /// `StateEvent<String, u64>`.
    StringU64,
    /// `StateEvent<String, String>`.
    StringString,
    /// `StateEvent<u64, u64>`.
    #[value(name = "u64-u64")]
    U64U64,
    /// `StateEvent<u64, String>`.
    U64String,
    /// The examples' `Bank` (account `u32` to balance `u64`).
    Bank,
    /// The examples' `BankV2` (schema `bank-v2`), reading `bank-v1`
    /// directories through its upcaster.
    BankV2,
}

fn main() -> ExitCode {
    let bin = Bin::parse();
    match bin.types {
        None => solostate_cli::execute_untyped(&bin.cli),
        Some(Types::StringU64) => solostate_cli::execute::<StateEvent<String, u64>>(&bin.cli),
        Some(Types::StringString) => solostate_cli::execute::<StateEvent<String, String>>(&bin.cli),
        Some(Types::U64U64) => solostate_cli::execute::<StateEvent<u64, u64>>(&bin.cli),
        Some(Types::U64String) => solostate_cli::execute::<StateEvent<u64, String>>(&bin.cli),
        Some(Types::Bank) => solostate_cli::execute::<solostate_examples::bank::Bank>(&bin.cli),
        Some(Types::BankV2) => {
            let mut upcasters = Upcasters::new();
            upcasters.add(BANK_V1_SCHEMA, BankV2::from_v1);
            solostate_cli::execute_upcasting(&bin.cli, BANK_V2_SCHEMA, upcasters)
        }
    }
}
