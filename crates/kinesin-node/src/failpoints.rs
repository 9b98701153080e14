//! Named failpoints, switched on at start from the `FAILPOINTS` variable. Only a test build (the
//! cargo feature `failpoints`; a release build refuses to compile with it) has the points: in
//! any other build `fail_point!` is compiled out and the binary never reads the variable.
//!
//! The syntax is the `fail` crate's: `name=actions` pairs separated by `;`, for example
//! `FAILPOINTS='storage::wal-fsync=sleep(2000)'`. The points that exist:
//! - `storage::wal-fsync`: `return` acknowledges without fsync (data in the page cache only);
//!   `sleep(MS)` makes each group-commit fsync slow.
//! - `raft::ack-on-append`: `return` makes shard leaders acknowledge a write once their own log
//!   holds it, before a majority does.
//! - `clock::start-at`: `return(MS)` starts the node's wall clock at MS milliseconds since the
//!   epoch (it runs on from there): a test opens data written long ago as if it were fresh.

/// The variable that names the failpoints to switch on.
pub const VARIABLE: &str = "FAILPOINTS";

/// Switches on the failpoints `spec` names; returns them as `(name, actions)`, or the first
/// malformed pair.
pub fn configure(spec: &str) -> Result<Vec<(String, String)>, String> {
    let mut configured = Vec::new();
    for pair in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, actions)) = pair.split_once('=') else {
            return Err(format!("{VARIABLE}: `{pair}` is not name=actions"));
        };
        let (name, actions) = (name.trim(), actions.trim());
        fail::cfg(name, actions).map_err(|e| format!("{VARIABLE}: `{pair}`: {e}"))?;
        configured.push((name.to_string(), actions.to_string()));
    }
    Ok(configured)
}

/// The clock `clock::start-at` asks for, if it is switched on; a value that is not a number of
/// milliseconds is refused.
pub fn clock_start_at() -> Result<Option<crate::clock::ShiftedClock>, String> {
    match fail::eval("clock::start-at", |value| value) {
        Some(Some(value)) => value
            .parse::<u64>()
            .map(|ms| Some(crate::clock::ShiftedClock::starting_at(ms)))
            .map_err(|_| {
                format!("{VARIABLE}: clock::start-at wants return(MILLISECONDS), not `{value}`")
            }),
        Some(None) => Err(format!(
            "{VARIABLE}: clock::start-at wants return(MILLISECONDS)"
        )),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_pair_is_named() {
        let err = configure("storage::wal-fsync").unwrap_err();
        assert!(
            err.contains("`storage::wal-fsync` is not name=actions"),
            "{err}"
        );
        let err = configure("storage::wal-fsync=bogus(1)").unwrap_err();
        assert!(err.contains("storage::wal-fsync=bogus(1)"), "{err}");
    }

    #[test]
    fn configured_points_are_listed() {
        let points = configure(" test::a=return ; test::b=sleep(1) ;").unwrap();
        assert_eq!(
            points,
            vec![
                ("test::a".to_string(), "return".to_string()),
                ("test::b".to_string(), "sleep(1)".to_string())
            ]
        );
        fail::remove("test::a");
        fail::remove("test::b");
    }
}
