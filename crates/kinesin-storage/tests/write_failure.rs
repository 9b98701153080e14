//! A write the disk refuses raises the engine's failure flag, which the node turns into a stop
//! (fail-stop). The disk is made to refuse by a file-size limit of 0 (RLIMIT_FSIZE, set with
//! `prlimit`), so no special file system is needed. The limit applies to a whole process, and the
//! test harness may be writing its report to a file, so the limited part runs in a child process
//! (this test binary again) whose output is a pipe.

use std::process::{Command, Stdio};

use kinesin_storage::{Engine, EngineOptions, WriteBatch};
use tokio::signal::unix::{signal, SignalKind};

/// Linux's number for SIGXFSZ ("file size limit exceeded").
const SIGXFSZ: i32 = 25;
const CHILD: &str = "KINESIN_WRITE_FAILURE_CHILD";

#[test]
fn a_refused_write_raises_the_failure_flag() {
    if std::env::var_os(CHILD).is_some() {
        return refused_write_in_this_process();
    }
    let exe = std::env::current_exe().expect("this test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "a_refused_write_raises_the_failure_flag",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "child failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn refused_write_in_this_process() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open(dir.path(), &EngineOptions::default()).expect("open");
        let mut failed = engine.failed();
        let mut batch = WriteBatch::default();
        engine.put_log_entry(&mut batch, 1, 1, b"fits");
        engine.write(batch).expect("a write before the disk fills");
        engine.sync().await.expect("an fsync before the disk fills");
        assert!(failed.borrow().is_none());

        // From here on no file of this process may grow: like a full disk for the WAL's next
        // append. SIGXFSZ would kill the process; with a handler registered the write fails.
        let _file_too_large = signal(SignalKind::from_raw(SIGXFSZ)).expect("handle SIGXFSZ");
        let limited = Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                "--fsize=0:unlimited",
            ])
            .status()
            .expect("run prlimit (util-linux)");
        assert!(limited.success(), "prlimit failed: {limited}");
        let mut batch = WriteBatch::default();
        engine.put_log_entry(&mut batch, 1, 2, &[7u8; 64 * 1024]);
        let refused = engine.write(batch);
        let synced = engine.sync().await;
        assert!(
            refused.is_err() || synced.is_err(),
            "the disk refused nothing (write: {refused:?}, sync: {synced:?})"
        );
        let failure = failed
            .wait_for(Option::is_some)
            .await
            .expect("the engine is still open")
            .clone();
        assert!(failure.is_some_and(|f| !f.what.is_empty() && !f.corruption));
    });
}
