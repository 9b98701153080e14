//! Each run in a process of its own: the test binary started again as `--child SEED`, which
//! runs the seed and prints its outcome on stdout, one fact per line.

use std::process::Command;

use crate::run::{run_here, Outcome, Settings};

const CHILD: &str = "--child";

/// The seed this process was started to run, if it is a child.
pub fn child_seed() -> Option<u64> {
    let mut args = std::env::args().skip_while(|arg| arg != CHILD).skip(1);
    args.next().and_then(|seed| seed.parse().ok())
}

fn one_line(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn restore(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    out
}

/// Runs `seed` in this process and prints what `parse` reads back.
pub fn serve(seed: u64) {
    let outcome = run_here(seed, &Settings::default());
    let mut lines = vec![
        format!("digest {:016x}", outcome.digest),
        format!("events {}", outcome.events),
        format!("acknowledged {}", outcome.acknowledged),
        format!("unknown {}", outcome.unknown),
        format!("refused {}", outcome.refused),
    ];
    lines.extend(
        outcome
            .faults
            .iter()
            .map(|(name, n)| format!("fault {n} {}", one_line(name))),
    );
    lines.extend(
        outcome
            .violations
            .iter()
            .map(|v| format!("violation {}", one_line(v))),
    );
    lines.push(format!("tail {}", one_line(&outcome.tail)));
    println!("{}", lines.join("\n"));
}

fn parse(seed: u64, stdout: &str) -> Outcome {
    let mut outcome = Outcome {
        seed,
        ..Outcome::default()
    };
    for line in stdout.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let number = || value.parse().unwrap_or_default();
        match key {
            "digest" => outcome.digest = u64::from_str_radix(value, 16).unwrap_or_default(),
            "events" => outcome.events = number(),
            "acknowledged" => outcome.acknowledged = number() as usize,
            "unknown" => outcome.unknown = number() as usize,
            "refused" => outcome.refused = number() as usize,
            "fault" => {
                if let Some((count, name)) = value.split_once(' ') {
                    outcome
                        .faults
                        .insert(restore(name), count.parse().unwrap_or_default());
                }
            }
            "violation" => outcome.violations.push(restore(value)),
            "tail" => outcome.tail = restore(value),
            _ => {}
        }
    }
    outcome
}

/// How a child runs its seed, beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct Variant {
    /// Failpoints to switch on there (the `fail` crate's syntax).
    pub failpoints: Option<String>,
}

/// Runs `seed` in a new process of this binary.
pub fn run(seed: u64, variant: &Variant) -> Outcome {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .arg(CHILD)
        .arg(seed.to_string())
        .env_remove("FAILPOINTS");
    if let Some(failpoints) = &variant.failpoints {
        command.env("FAILPOINTS", failpoints);
    }
    let output = command
        .output()
        .expect("the test binary runs again as a child");
    let mut outcome = parse(seed, &String::from_utf8_lossy(&output.stdout));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        outcome.violations.push(format!(
            "the run crashed ({}):\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    outcome
}

/// Part of the `seeds` check: what a child prints is read back unchanged.
pub fn lines_round_trip() -> Result<(), String> {
    let text = "two\nlines with a \\ backslash";
    match restore(&one_line(text)) == text {
        true => Ok(()),
        false => Err(format!("{text:?} does not survive one_line and restore")),
    }
}
