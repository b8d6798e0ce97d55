//! `multiproc-bench`: measures multiproc against Python 3's `multiprocessing` and against the raw
//! OS bound of the same work, all in one run, and prints the ratios as a table or as JSON lines.
//!
//! ```text
//! cargo run --release -p multiproc-bench -- [--json] [--quick] [WORKLOAD...]
//! ```

mod output;
mod python;
mod raw;
mod raw_ipc;
mod raw_lock;
mod workloads;

use std::process::ExitCode;

use workloads::{Ctx, Workload};

const USAGE: &str = "\
usage: multiproc-bench [--json] [--quick] [--list] [WORKLOAD...]

  --json    one JSON object per line instead of a table
  --quick   fewer iterations (a smoke run; its numbers are noisier)
  --list    list the workloads and exit
  WORKLOAD  run only these (default: all)";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Options {
    json: bool,
    quick: bool,
    list: bool,
    help: bool,
    workloads: Vec<&'static Workload>,
}

impl Options {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut opts = Options::default();
        for arg in args {
            match arg.as_str() {
                "--json" => opts.json = true,
                "--quick" => opts.quick = true,
                "--list" => opts.list = true,
                "-h" | "--help" => opts.help = true,
                flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
                name => {
                    let workload = workloads::find(name).ok_or_else(|| {
                        format!("unknown workload `{name}` (known: {})", workloads::names())
                    })?;
                    if !opts.workloads.iter().any(|w| w.name == workload.name) {
                        opts.workloads.push(workload);
                    }
                }
            }
        }
        if opts.workloads.is_empty() {
            opts.workloads = workloads::ALL.iter().collect();
        }
        Ok(opts)
    }
}

fn main() -> ExitCode {
    // First thing, before the runtime of multiproc starts: the raw fork+exec bound re-executes
    // this binary with this argument, and must measure nothing but process creation.
    if raw::is_exec_child() {
        std::process::exit(0);
    }
    multiproc::init();

    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("multiproc-bench: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if opts.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if opts.list {
        for w in workloads::ALL {
            println!("{:<20} {}", w.name, w.about);
        }
        return ExitCode::SUCCESS;
    }

    let mut ctx = Ctx::new(opts.quick);
    let mut rows = Vec::new();
    for workload in &opts.workloads {
        let measured = (workload.run)(&mut ctx);
        if opts.json {
            // Stream: a long run shows its rows as they come.
            for row in &measured {
                println!("{}", output::json_line(row));
            }
        }
        rows.extend(measured);
    }
    if !opts.json {
        print!("{}", output::table(&rows));
    }

    if ctx.errors() > 0 {
        eprintln!(
            "multiproc-bench: {} measurement(s) failed, see above",
            ctx.errors()
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
