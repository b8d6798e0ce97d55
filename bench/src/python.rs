//! Runs the Python 3 `multiprocessing` counterpart of a workload, `bench/python/<script>.py`,
//! and reads the one JSON line it prints: `{"value": <float>, "unit": "<unit>"}`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::Deserialize;

/// Where the scripts are, wherever the bench is run from.
const SCRIPT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python");
const INTERPRETER: &str = "python3";

/// The line a script prints.
#[derive(Debug, Deserialize)]
struct Reply {
    value: f64,
    unit: String,
}

/// Why a script gave no value.
#[derive(Debug)]
enum Failure {
    /// `python3` is not on PATH.
    NoInterpreter,
    Script(String),
}

/// The Python runner; once `python3` was found missing it stops trying.
#[derive(Debug, Default)]
pub struct Python {
    missing: bool,
}

impl Python {
    /// The value printed by `python3 bench/python/<script>.py <args>`, which must be in `unit`.
    /// `None` where Python is missing or the script failed; either is said on stderr.
    pub fn run(&mut self, script: &str, args: &[&str], unit: &str) -> Option<f64> {
        if self.missing {
            return None;
        }
        match run_script(script, args, unit) {
            Ok(value) => Some(value),
            Err(Failure::NoInterpreter) => {
                self.missing = true;
                eprintln!("note: `{INTERPRETER}` is not on PATH: the python column is left empty");
                None
            }
            Err(Failure::Script(msg)) => {
                eprintln!(
                    "warning: `{INTERPRETER} {script}.py {}` failed, its python value is left empty: {msg}",
                    args.join(" ")
                );
                None
            }
        }
    }
}

fn script_path(script: &str) -> PathBuf {
    PathBuf::from(SCRIPT_DIR).join(format!("{script}.py"))
}

fn run_script(script: &str, args: &[&str], unit: &str) -> Result<f64, Failure> {
    let output = Command::new(INTERPRETER)
        .arg(script_path(script))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Failure::NoInterpreter,
            _ => Failure::Script(format!("cannot start {INTERPRETER}: {e}")),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Failure::Script(format!(
            "{}: {}",
            output.status,
            tail.join(" / ")
        )));
    }
    parse_reply(&String::from_utf8_lossy(&output.stdout), unit).map_err(Failure::Script)
}

/// The value of the last non-empty line of `stdout`, checked to be in `unit`.
fn parse_reply(stdout: &str, unit: &str) -> Result<f64, String> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or("it printed nothing")?;
    let reply: Reply =
        serde_json::from_str(line).map_err(|e| format!("bad result line {line:?}: {e}"))?;
    if reply.unit != unit {
        return Err(format!("unit {:?}, expected {unit:?}", reply.unit));
    }
    if !(reply.value.is_finite() && reply.value > 0.0) {
        return Err(format!("value {} is not a positive number", reply.value));
    }
    Ok(reply.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_line() {
        let out = "noise\n{\"value\": 12.5, \"unit\": \"us/op\"}\n\n";
        assert_eq!(parse_reply(out, "us/op"), Ok(12.5));
    }

    #[test]
    fn rejects_a_wrong_unit_or_garbage() {
        assert!(parse_reply("{\"value\": 1.0, \"unit\": \"MB/s\"}", "us/op").is_err());
        assert!(parse_reply("not json", "us/op").is_err());
        assert!(parse_reply("", "us/op").is_err());
    }

    #[test]
    fn every_workload_has_its_script() {
        for w in crate::workloads::ALL {
            assert!(
                script_path(w.name).is_file(),
                "missing {:?}",
                script_path(w.name)
            );
        }
    }
}
