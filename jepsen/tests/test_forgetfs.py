"""forgetfs, mounted for real: what was fsynced survives a power loss, what was not is lost (the
last write of each file torn), reads see pending data, the disk can fill up and fsyncs can be slow
without stalling other files, and real fsync users (O_DIRECT writers, SQLite) work on it."""

import errno
import mmap
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kinesin_jepsen.forgetfs import ForgetFs, mounted  # noqa: E402


def _unavailable():
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse: the kernel's FUSE device is missing"
    if os.geteuid() != 0:
        return "mounting forgetfs needs root"
    if not shutil.which("fusermount3"):
        return "fusermount3 missing (Debian package fuse3; scripts/setup.sh installs it)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError, AttributeError) as e:
        return f"mfusepy or libfuse3 unusable: {e}"
    return None


pytestmark = [pytest.mark.skipif(_unavailable() is not None, reason=str(_unavailable())), pytest.mark.timeout(120)]


@pytest.fixture
def make_fs(tmp_path):
    """Starts forgetfs instances under tmp_path; each is stopped and unmounted, pass or fail."""
    started = []

    def make(name="fs", seed=0, tear=True):
        base = tmp_path / name
        fs = ForgetFs(backing=base / "backing", mount=base / "mnt", control=base / "ctl.sock", seed=seed, tear=tear,
                      log=tmp_path / f"{name}.log")
        started.append(fs)
        fs.start()
        return fs

    try:
        yield make
    finally:
        for fs in started:
            fs.stop()
        for fs in started:
            assert not mounted(fs.mount), f"{fs.mount} still mounted"


def paths(fs):
    return fs.mount, fs.backing


def write_file(path, data, sync):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def eventually(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        threading.Event().wait(0.01)  # the poll interval


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_fsynced_data_survives_a_loss_and_unsynced_data_does_not(make_fs):
    fs = make_fs(tear=False)
    m, b = paths(fs)
    write_file(f"{m}/synced", b"A" * 1000, sync=True)
    with open(f"{m}/synced", "ab") as f:  # O_APPEND, closed without fsync
        f.write(b"B" * 500)
    write_file(f"{m}/never-synced", b"C" * 100, sync=False)

    assert read(f"{m}/synced") == b"A" * 1000 + b"B" * 500  # also fills the kernel's page cache
    assert os.path.getsize(f"{b}/synced") == 1000 and os.path.getsize(f"{b}/never-synced") == 0
    assert fs.stats()["pending_bytes"] == 600

    assert fs.lose() == {"lost_bytes": 600, "torn_bytes": 0, "files": 2}
    # Through the mount, with no stale page or attribute left in the kernel:
    assert os.stat(f"{m}/synced").st_size == 1000
    assert read(f"{m}/synced") == b"A" * 1000
    assert sorted(os.listdir(m)) == ["never-synced", "synced"]  # creation is durable, data is not
    assert read(f"{m}/never-synced") == b""
    stats = fs.stats()
    assert stats["pending_bytes"] == 0 and stats["loses"] == 1 and stats["last_lose"]["lost_bytes"] == 600

    # The file system goes on working after a loss.
    write_file(f"{m}/synced", b"D" * 10, sync=True)
    assert read(f"{b}/synced") == b"D" * 10 + b"A" * 990


def test_a_loss_tears_the_last_unsynced_write_of_each_file(make_fs):
    seed = 7
    synced = b"x" * 4096
    last = bytes(range(256)) * 16

    def scenario(fs):
        m, b = paths(fs)
        fd = os.open(f"{m}/log", os.O_RDWR | os.O_CREAT, 0o644)
        os.write(fd, synced)
        os.fsync(fd)
        os.write(fd, b"y" * 50)  # unsynced, not the last write: dropped whole
        # The last unsynced write: torn. Page-aligned, so that the kernel sends it as one FUSE
        # write (it may split one that starts inside a page it has not cached).
        os.pwrite(fd, last, len(synced))
        os.close(fd)
        return fs.lose(), read(f"{b}/log"), read(f"{m}/log")

    lost, backing, seen = scenario(make_fs("tearing", seed=seed))
    torn = lost["torn_bytes"]
    assert 0 < torn < len(last)
    assert torn == random.Random(seed).randrange(len(last))  # seeded: the same cut every run
    assert backing == seen == synced + last[:torn]
    assert lost["files"] == 1 and lost["lost_bytes"] == len(last) - torn

    lost, backing, seen = scenario(make_fs("no-tearing", seed=seed, tear=False))
    assert lost["torn_bytes"] == 0
    assert backing == seen == synced


def test_reads_and_sizes_see_pending_writes_and_truncates(make_fs):
    fs = make_fs(tear=False)
    m, b = paths(fs)
    write_file(f"{m}/f", b"hello world", sync=True)
    fd = os.open(f"{m}/f", os.O_RDWR)
    try:
        os.pwrite(fd, b"HELLO", 0)
        os.pwrite(fd, b"!!!", 11)
        assert os.pread(fd, 100, 0) == b"HELLO world!!!"
        assert os.stat(f"{m}/f").st_size == 14 and os.fstat(fd).st_size == 14
        os.pwrite(fd, b"?", 20)  # past the end: a hole of zeros
        assert read(f"{m}/f") == b"HELLO world!!!" + bytes(6) + b"?"
        os.ftruncate(fd, 5)
        assert read(f"{m}/f") == b"HELLO" and os.stat(f"{m}/f").st_size == 5
        os.truncate(f"{m}/f", 8)  # by path, growing again: zeros, not the old bytes
        assert read(f"{m}/f") == b"HELLO\0\0\0"
    finally:
        os.close(fd)
    assert read(f"{b}/f") == b"hello world"

    with open(f"{m}/f", "wb") as f:  # O_TRUNC is a data operation too
        f.write(b"new")
    assert read(f"{m}/f") == b"new"

    fs.lose()
    assert os.stat(f"{m}/f").st_size == 11
    assert read(f"{m}/f") == b"hello world"


def test_pending_writes_follow_a_rename_and_unlink_drops_them(make_fs):
    fs = make_fs(tear=False)
    m, b = paths(fs)
    write_file(f"{m}/a", b"v1", sync=True)
    write_file(f"{m}/a", b"v2 longer", sync=False)
    os.mkdir(f"{m}/dir")
    os.rename(f"{m}/a", f"{m}/dir/b")
    assert read(f"{m}/dir/b") == b"v2 longer" and read(f"{b}/dir/b") == b"v1"
    fd = os.open(f"{m}/dir/b", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)

    fd = os.open(f"{m}/gone", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"z" * 64)
    assert fs.stats()["pending_files"] == 1
    os.unlink(f"{m}/gone")
    assert os.pread(fd, 100, 0) == b"z" * 64 and os.fstat(fd).st_size == 64  # still open: still there
    os.close(fd)
    # The kernel sends the release after close returns: its pending data goes with it.
    eventually(lambda: fs.stats()["pending_files"] == 0 and fs.stats()["pending_bytes"] == 0)
    eventually(lambda: os.listdir(m) == ["dir"])  # and libfuse's .fuse_hidden name with it

    assert fs.lose()["files"] == 0
    assert not os.path.exists(f"{m}/a")
    assert read(f"{m}/dir/b") == b"v2 longer"


def test_a_full_disk_fails_growing_writes_with_enospc(make_fs):
    fs = make_fs()
    m, _ = paths(fs)
    write_file(f"{m}/existing", b"abc", sync=True)
    pending = os.open(f"{m}/pending", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(pending, b"not yet synced")
    fs.set_full(True)
    try:
        def enospc(call, *args):
            with pytest.raises(OSError) as e:
                call(*args)
            assert e.value.errno == errno.ENOSPC, e.value

        fd = os.open(f"{m}/existing", os.O_WRONLY | os.O_APPEND)
        enospc(os.write, fd, b"more")
        os.close(fd)
        fd = os.open(f"{m}/existing", os.O_WRONLY)
        os.pwrite(fd, b"X", 0)  # overwriting allocated bytes still works
        os.close(fd)
        enospc(os.fsync, pending)
        enospc(os.open, f"{m}/new", os.O_WRONLY | os.O_CREAT, 0o644)
        enospc(os.mkdir, f"{m}/newdir")
        enospc(os.truncate, f"{m}/existing", 100)
        assert os.statvfs(m).f_bavail == 0
    finally:
        fs.set_full(False)
    os.fsync(pending)  # the pending data was kept meanwhile
    os.close(pending)
    write_file(f"{m}/new", b"fits again", sync=True)
    fs.lose()
    assert read(f"{m}/pending") == b"not yet synced" and read(f"{m}/new") == b"fits again"


def test_a_slow_fsync_does_not_block_other_files(make_fs):
    delay = 1.5
    fs = make_fs()
    m, _ = paths(fs)
    write_file(f"{m}/other", b"readable meanwhile", sync=True)
    slow = os.open(f"{m}/slow", os.O_RDWR | os.O_CREAT, 0o644)
    os.write(slow, b"s" * 4096)
    fs.set_fsync_delay(delay)
    fsyncs_before = fs.stats()["fsyncs"]
    done = threading.Event()
    elapsed = []

    def sync():
        start = time.monotonic()
        os.fsync(slow)
        elapsed.append(time.monotonic() - start)
        done.set()

    thread = threading.Thread(target=sync)
    thread.start()
    try:
        while fs.stats()["fsyncs"] == fsyncs_before:  # the fsync has reached the file system
            assert not done.wait(0.01), "the fsync returned before it was counted"
        assert read(f"{m}/other") == b"readable meanwhile"
        assert not done.is_set(), "reading another file waited for the slow fsync"
    finally:
        thread.join()
        os.close(slow)
        fs.set_fsync_delay(0)
    assert elapsed[0] >= delay
    assert fs.lose()["files"] == 0  # the slow fsync did persist


def test_o_direct_writes_and_reads_work(make_fs):
    fs = make_fs(tear=False)
    m, b = paths(fs)
    size = 8192
    out = mmap.mmap(-1, size)  # page-aligned, as O_DIRECT wants
    out.write(b"d" * size)
    fd = os.open(f"{m}/direct.sst", os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    try:
        assert os.write(fd, out) == size
        os.fsync(fd)
        back = mmap.mmap(-1, size)
        assert os.preadv(fd, [back], 0) == size
        assert back[:] == b"d" * size
    finally:
        os.close(fd)
    fs.lose()
    assert read(f"{b}/direct.sst") == b"d" * size


SQLITE_WRITER = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t (batch INTEGER, payload TEXT)")
def commit(batch):
    db.execute("BEGIN")
    db.executemany("INSERT INTO t VALUES (?, ?)", [(batch, "p" * 200)] * 50)
    db.execute("COMMIT")
for batch in range(5):
    commit(batch)
db.execute("PRAGMA synchronous=OFF")  # committed, but never fsynced: a loss takes these
for batch in range(5, 10):
    commit(batch)
print("ready", flush=True)
sys.stdin.read()  # holds the database open until killed
"""


def test_sqlite_keeps_its_committed_transactions_across_a_loss(make_fs):
    fs = make_fs(seed=3)
    m, _ = paths(fs)
    db_path = f"{m}/test.db"
    writer = subprocess.Popen([sys.executable, "-c", SQLITE_WRITER, db_path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
    finally:
        writer.kill()  # a power cut: the process dies first
        writer.wait()
    lost = fs.lose()
    assert lost["lost_bytes"] > 0

    db = sqlite3.connect(db_path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        batches = [row[0] for row in db.execute("SELECT DISTINCT batch FROM t ORDER BY batch")]
        assert batches == [0, 1, 2, 3, 4]  # every fsynced commit, none of the unsynced ones
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 250
        db.execute("INSERT INTO t VALUES (99, 'after')")  # and it goes on working
        db.commit()
    finally:
        db.close()
