"""forgetfs: a FUSE file system that forgets what was not fsynced, like Jepsen's lazyfs.

It models one machine's disk with a volatile write cache. The mount point M shows the backing
directory B (a passthrough), but file *data* written through M stays in this process's memory until
the file is fsynced. A "power loss" (`lose`) throws away everything not yet fsynced, so a program
that acknowledged something before fsyncing it can be caught losing it.

The model and its simplifications:

- Metadata is durable at once: mkdir, create, unlink, rename, link, symlink, rmdir, chmod, chown,
  utimens go straight to B, like a journaling file system whose metadata survives a crash. A file
  created and written but never fsynced therefore comes back empty (it exists, with its synced
  size), and a rename is never undone.
- Data is volatile: `write`, `truncate`/`ftruncate` (including open with O_TRUNC) and a size
  extending `fallocate` are kept in memory per backing inode (so renames and hard links need no
  bookkeeping). Reads and getattr overlay them on the backing file, so processes using M see
  ordinary POSIX semantics. Pending data is held as an overlay (sorted, merged extents plus the
  logical size and the lowest size truncated to) rather than a log of operations: applying it at
  fsync gives the same bytes as replaying the operations in order, reads cost O(log n + overlap),
  and appends extend the last extent in place.
- `fsync`/`fdatasync` of a file applies its pending data to the backing file, then fsyncs the
  backing file. `flush`/`release` (close) persist nothing. `fsyncdir` succeeds and does nothing
  (metadata is durable already).
- `lose` (a power cut): every file's pending data is dropped, except that the last pending write
  of each file is torn: a prefix of it, of a length drawn from a seeded random generator
  (`randrange(len)`, so 0 to len-1 bytes, files in inode order) is written to the backing file at
  its offset (past the synced end, zeros then fill the gap, as some file systems show after a
  crash). The writes before it are dropped even though a real disk might have kept some: tearing
  only models a partially persisted last write. Tearing can be turned off (`--no-tear`). A write
  is one FUSE write request: the kernel may send one write(2) as several (at a partly written
  page it has not cached, or past its largest request), so a tear may also fall where it split
  one. The harness kills the process using M before a loss; file handles opened before a loss
  fail writes, truncates and fsyncs with EIO afterwards, so a late request of a dead process
  cannot resurrect data. New opens work as before.
- `fsync-delay`: each fsync sleeps that long before doing anything (a slow disk). The file system
  runs multithreaded and holds no lock while sleeping, so other operations go on meanwhile.
- `full`: while on, writes and truncates that grow a file, creating files, directories, links and
  device nodes, fallocate, and fsync of a file with pending data fail with ENOSPC; statfs reports no
  free blocks. Overwriting existing bytes still works, as on a real file system whose blocks are
  allocated. Turning it off restores normal behaviour (pending data is kept meanwhile).

Kernel caching: the mount uses attr_timeout=0, entry_timeout=0 and negative_timeout=0, and files
are opened without keep_cache, so every stat asks this process and every open drops the kernel's
cached pages of the file; with the process that used M killed, a reader after `lose` sees exactly
the backing contents. Files are not opened with direct_io, so shared mmap (SQLite's WAL index)
works; O_DIRECT opens go through the kernel's FUSE direct I/O path, and O_DIRECT/O_APPEND are
stripped from the backing file descriptor (alignment is not enforced; O_APPEND offsets come from
the kernel, which asks getattr for the size, pending appends included).

Other limits: one machine's view only; files created through M are owned by this process's user
(run everything as root); RENAME_NOREPLACE/EXCHANGE and fallocate modes other than plain
allocation and FALLOC_FL_KEEP_SIZE fail with EINVAL/EOPNOTSUPP; extended attributes are not
supported; POSIX and flock locks are left to the kernel (local to the machine, all that one
machine needs). A file
unlinked while open is renamed to .fuse_hiddenNNN by libfuse until its last close (libfuse's
default, so that fstat on it keeps working); such names show in listings meanwhile.

Run as a process (foreground, until SIGTERM or SIGINT, then it unmounts):

    python -m kinesin_jepsen.forgetfs --backing B --mount M --control SOCKET [--seed N] [--no-tear]

SOCKET is a Unix stream socket taking one request line per connection and answering one JSON line:
`lose`, `fsync-delay SECONDS`, `full on`, `full off`, `stats`. `ForgetFs` below drives it.
"""

import argparse
import bisect
import ctypes
import errno
import itertools
import json
import logging
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

log = logging.getLogger("forgetfs")

FALLOC_FL_KEEP_SIZE = 0x01
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
# What the kernel's open flags may carry that must not reach the backing descriptor: the access
# mode is always O_RDWR (this process applies pending data through it), O_APPEND would make
# pwrite ignore its offset, O_DIRECT would demand aligned buffers, O_TRUNC is a volatile data op.
_STRIPPED_OPEN_FLAGS = os.O_ACCMODE | os.O_APPEND | os.O_DIRECT | os.O_TRUNC | os.O_CREAT | os.O_EXCL | os.O_NOCTTY


def _error(code):
    return OSError(code, os.strerror(code))


def _pwrite_all(fd, data, offset):
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)


def _type_bits(entry):
    """The S_IFMT bits of a directory entry, from its d_type where it has one."""
    if entry.is_symlink():
        return stat.S_IFLNK
    if entry.is_dir(follow_symlinks=False):
        return stat.S_IFDIR
    if entry.is_file(follow_symlinks=False):
        return stat.S_IFREG
    return stat.S_IFMT(entry.stat(follow_symlinks=False).st_mode)


def _fallocate(fd, mode, offset, length):
    if _libc.fallocate(fd, mode, offset, length) != 0:
        raise _error(ctypes.get_errno())


class PendingFile:
    """The unsynced data of one backing inode, as an overlay on the backing file.

    Bytes [0, floor) of the backing file are visible unless an extent covers them; bytes at or
    past floor read as zeros unless an extent covers them (they were truncated away, or are a hole
    past the old end); the file is `size` bytes long. Extents are sorted, non-overlapping and
    non-adjacent (touching ones are merged)."""

    def __init__(self, fd):
        self.fd = fd  # O_RDWR on the backing inode; holding it keeps the inode number from reuse
        self.size = self.floor = os.fstat(fd).st_size
        self.starts = []
        self.datas = []  # bytearray per extent
        self.pending = 0  # bytes held in extents
        self.last_write = None  # (offset, bytes): what a power loss tears
        self.mtime_ns = time.time_ns()

    def write(self, offset, data):
        """Records a write; returns the change in pending bytes."""
        end = offset + len(data)
        starts, datas = self.starts, self.datas
        lo = bisect.bisect_right(starts, offset) - 1
        if lo < 0 or starts[lo] + len(datas[lo]) < offset:
            lo += 1  # the extent before `offset` ends before it: not touched
        hi = bisect.bisect_right(starts, end)  # extents starting at or before `end` touch
        old = sum(len(d) for d in datas[lo:hi])
        if lo == hi:
            starts.insert(lo, offset)
            datas.insert(lo, bytearray(data))
        elif hi - lo == 1 and starts[lo] <= offset:
            # One extent, starting before: overwrite inside it, or cut its tail and append (the
            # common sequential-write case, amortized O(len(data))).
            first, start = datas[lo], starts[lo]
            if end <= start + len(first):
                first[offset - start:end - start] = data
            else:
                del first[offset - start:]
                first += data
        else:
            merged = datas[lo][:max(0, offset - starts[lo])]
            merged += data
            last_start, last = starts[hi - 1], datas[hi - 1]
            if last_start + len(last) > end:
                merged += last[end - last_start:]
            starts[lo:hi] = [min(starts[lo], offset)]
            datas[lo:hi] = [merged]
        self.size = max(self.size, end)
        if data:
            self.last_write = (offset, data)
        self.mtime_ns = time.time_ns()
        delta = sum(len(d) for d in datas[lo:lo + 1]) - old
        self.pending += delta
        return delta

    def truncate(self, size):
        """Records a truncate (shrinking or growing); returns the change in pending bytes."""
        delta = 0
        if size < self.size:
            keep = bisect.bisect_left(self.starts, size)  # extents from `keep` on start at or past it
            delta -= sum(len(d) for d in self.datas[keep:])
            del self.starts[keep:], self.datas[keep:]
            if keep:
                over = self.starts[keep - 1] + len(self.datas[keep - 1]) - size
                if over > 0:
                    del self.datas[keep - 1][-over:]
                    delta -= over
            self.floor = min(self.floor, size)
        self.size = size
        self.mtime_ns = time.time_ns()
        self.pending += delta
        return delta

    def read(self, offset, length):
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        buf = bytearray(end - offset)  # zeros: holes and truncated-away bytes
        if offset < self.floor:
            got = os.pread(self.fd, min(end, self.floor) - offset, offset)
            buf[:len(got)] = got
        i = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        while i < len(self.starts) and self.starts[i] < end:
            start, data = self.starts[i], self.datas[i]
            lo, hi = max(start, offset), min(start + len(data), end)
            if lo < hi:
                buf[lo - offset:hi - offset] = memoryview(data)[lo - start:hi - start]
            i += 1
        return bytes(buf)

    def apply(self):
        """Makes the backing file equal to the overlay (what fsync persists)."""
        if os.fstat(self.fd).st_size > self.floor:
            os.ftruncate(self.fd, self.floor)
        for start, data in zip(self.starts, self.datas):
            _pwrite_all(self.fd, data, start)
        if os.fstat(self.fd).st_size != self.size:
            os.ftruncate(self.fd, self.size)

    def tear(self, rng):
        """Writes a random strict prefix of the last pending write to the backing file (a power
        cut in the middle of it); returns its length."""
        if self.last_write is None:
            return 0
        offset, data = self.last_write
        length = rng.randrange(len(data))
        if length:
            _pwrite_all(self.fd, memoryview(data)[:length], offset)
        return length

    def close(self):
        os.close(self.fd)


class Handle:
    """An open file: a backing descriptor, and the loss epoch it was opened in."""

    def __init__(self, fd, ino, epoch):
        self.fd, self.ino, self.epoch = fd, ino, epoch


class ForgetOps:
    """The file system's operations, called by mfusepy (raw_fi: file handles arrive as the
    fuse_file_info structure, whose `fh` indexes `_handles`).

    One lock guards the pending data, the handles and the counters. Backing-file system calls
    made under it are quick (page cache); fsync's delay and the backing fsync run outside it."""

    use_ns = True  # mfusepy: timestamps in nanoseconds

    def __init__(self, backing, seed=0, tear=True):
        self.root = os.path.realpath(backing)
        self.tear_writes = tear
        self.rng = random.Random(seed)
        self.fsync_delay = 0.0
        self._delay_changed = threading.Condition()  # a waiting fsync ends early when it drops
        self.full = False
        self._lock = threading.Lock()
        self._states = {}  # backing inode -> PendingFile
        self._handles = {}  # fh -> Handle
        self._open = {}  # backing inode -> number of open handles
        self._fh = itertools.count(1)
        self._epoch = 0  # bumped by lose: older handles are of dead processes
        self._counters = {"bytes_written": 0, "pending_bytes": 0, "fsyncs": 0, "loses": 0}
        self._last_lose = {"lost_bytes": 0, "torn_bytes": 0, "files": 0}

    # -- control -------------------------------------------------------------------------------
    def lose(self):
        with self._lock:
            self._epoch += 1
            pending, torn, files = self._counters["pending_bytes"], 0, len(self._states)
            for ino in sorted(self._states):
                state = self._states[ino]
                try:
                    if self.tear_writes:
                        torn += state.tear(self.rng)
                except OSError as e:  # the backing disk itself failing: the loss goes on
                    log.warning("lose: tearing inode %d: %s", ino, e)
                finally:
                    state.close()
            self._states.clear()
            self._counters["pending_bytes"] = 0
            self._counters["loses"] += 1
            self._last_lose = {"lost_bytes": max(0, pending - torn), "torn_bytes": torn, "files": files}
            result = dict(self._last_lose)
        log.info("lose: %(files)d files, %(lost_bytes)d bytes lost, %(torn_bytes)d torn", result)
        return result

    def stats(self):
        with self._lock:
            return {**self._counters, "pending_files": len(self._states), "last_lose": dict(self._last_lose),
                    "full": self.full, "fsync_delay": self.fsync_delay}

    # -- helpers -------------------------------------------------------------------------------
    def _backing(self, path):
        if path is None:  # libfuse lost the node's name: nothing to act on
            raise _error(errno.ENOENT)
        return self.root + path

    def _handle(self, fi):
        return self._handles[fi.fh]

    def _writable_handle(self, fi):
        handle = self._handle(fi)
        if handle.epoch != self._epoch:
            raise _error(errno.EIO)  # opened before a power loss, by a process that died in it
        return handle

    def _check_space(self):
        if self.full:
            raise _error(errno.ENOSPC)

    def _state(self, ino, fd):
        """The pending state of `ino`, created on a dup of `fd` (a descriptor on it) if none."""
        state = self._states.get(ino)
        if state is None:
            state = self._states[ino] = PendingFile(os.dup(fd))
        return state

    def _size(self, ino, fd):
        state = self._states.get(ino)
        return state.size if state else os.fstat(fd).st_size

    def _drop(self, ino):
        state = self._states.pop(ino)
        self._counters["pending_bytes"] -= state.pending
        state.close()

    def _forget_if_gone(self, ino):
        """Drops the pending data of an inode that no name and no open file reaches any more."""
        state = self._states.get(ino)
        if state and not self._open.get(ino) and os.fstat(state.fd).st_nlink == 0:
            self._drop(ino)

    def _truncate(self, ino, fd, length):
        if self.full and length > self._size(ino, fd):
            raise _error(errno.ENOSPC)
        self._counters["pending_bytes"] += self._state(ino, fd).truncate(length)

    # -- files ---------------------------------------------------------------------------------
    def getattr(self, path, fi=None):
        with self._lock:  # with the lookup of pending data: fsync may apply it meanwhile
            handle = self._handles.get(fi.fh) if fi is not None else None
            st = os.fstat(handle.fd) if handle else os.lstat(self._backing(path))
            state = self._states.get(st.st_ino) if stat.S_ISREG(st.st_mode) else None
            attrs = {"st_mode": st.st_mode, "st_ino": st.st_ino, "st_nlink": st.st_nlink, "st_uid": st.st_uid,
                     "st_gid": st.st_gid, "st_rdev": st.st_rdev, "st_size": st.st_size,
                     "st_blksize": st.st_blksize, "st_blocks": st.st_blocks, "st_atime": st.st_atime_ns,
                     "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}
            if state:
                attrs["st_size"] = state.size
                attrs["st_blocks"] = max(st.st_blocks, (state.size + 511) // 512)
                # A changed mtime also makes the kernel drop cached pages (auto_inval_data).
                attrs["st_mtime"] = attrs["st_ctime"] = state.mtime_ns
        return attrs

    def open(self, path, fi):
        self._register(self._open_backing(self._backing(path), fi.flags), fi)
        if fi.flags & os.O_TRUNC and fi.flags & os.O_ACCMODE != os.O_RDONLY:
            with self._lock:
                handle = self._handle(fi)
                self._truncate(handle.ino, handle.fd, 0)
        return 0

    def create(self, path, mode, fi):
        self._check_space()
        flags = os.O_CREAT | os.O_RDWR | os.O_CLOEXEC | (fi.flags & os.O_EXCL)
        self._register(os.open(self._backing(path), flags, mode), fi)
        return 0

    @staticmethod
    def _open_backing(path, flags):
        keep = (flags & ~_STRIPPED_OPEN_FLAGS) | os.O_CLOEXEC
        try:
            return os.open(path, keep | os.O_RDWR)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ETXTBSY):
                raise
            return os.open(path, keep | (flags & os.O_ACCMODE))  # read-only: it writes nothing

    def _register(self, fd, fi):
        ino = os.fstat(fd).st_ino
        with self._lock:
            fh = next(self._fh)
            self._handles[fh] = Handle(fd, ino, self._epoch)
            self._open[ino] = self._open.get(ino, 0) + 1
        fi.fh = fh

    def release(self, path, fi):
        with self._lock:
            handle = self._handles.pop(fi.fh)
            self._open[handle.ino] -= 1
            if not self._open[handle.ino]:
                del self._open[handle.ino]
                self._forget_if_gone(handle.ino)
        os.close(handle.fd)
        return 0

    def read(self, path, size, offset, fi):
        handle = self._handle(fi)
        with self._lock:
            state = self._states.get(handle.ino)
            if state:
                return state.read(offset, size)
        return os.pread(handle.fd, size, offset)

    def write(self, path, data, offset, fi):
        with self._lock:
            handle = self._writable_handle(fi)
            if self.full and offset + len(data) > self._size(handle.ino, handle.fd):
                raise _error(errno.ENOSPC)
            self._counters["pending_bytes"] += self._state(handle.ino, handle.fd).write(offset, data)
            self._counters["bytes_written"] += len(data)
        return len(data)

    def truncate(self, path, length, fi=None):
        with self._lock:
            if fi is not None:
                handle = self._writable_handle(fi)
                self._truncate(handle.ino, handle.fd, length)
                return 0
            fd = os.open(self._backing(path), os.O_RDWR | os.O_CLOEXEC)
            try:
                self._truncate(os.fstat(fd).st_ino, fd, length)
            finally:
                os.close(fd)  # the pending state holds its own dup
        return 0

    def fallocate(self, path, mode, offset, length, fi):
        if mode & ~FALLOC_FL_KEEP_SIZE:
            raise _error(errno.EOPNOTSUPP)  # punching holes etc.: callers fall back
        with self._lock:
            handle = self._writable_handle(fi)
            self._check_space()
            # Reserving blocks changes no content and no size: durable at once, like metadata.
            _fallocate(handle.fd, FALLOC_FL_KEEP_SIZE, offset, length)
            if not mode & FALLOC_FL_KEEP_SIZE and offset + length > self._size(handle.ino, handle.fd):
                self._truncate(handle.ino, handle.fd, offset + length)
        return 0

    def fsync(self, path, datasync, fi):
        with self._lock:
            self._counters["fsyncs"] += 1
            delay = self.fsync_delay
        if delay > 0:
            self._wait_out_delay(delay)  # no lock held: other files' operations go on
        with self._lock:
            handle = self._writable_handle(fi)
            state = self._states.get(handle.ino)
            if state:
                self._check_space()
                state.apply()
                self._drop(handle.ino)
        (os.fdatasync if datasync else os.fsync)(handle.fd)
        return 0

    def _wait_out_delay(self, delay):
        """Sleeps `delay`, or less once the delay is lowered (healing must not wait out an hour)."""
        started = time.monotonic()
        with self._delay_changed:
            while True:
                left = started + min(delay, self.fsync_delay) - time.monotonic()
                if left <= 0:
                    return
                self._delay_changed.wait(left)

    def set_fsync_delay(self, seconds):
        with self._delay_changed:
            self.fsync_delay = seconds
            self._delay_changed.notify_all()

    def fsyncdir(self, path, datasync, fh):
        return 0  # metadata is durable already

    def utimens(self, path, times=None, fi=None):
        handle = self._handles.get(fi.fh) if fi is not None else None  # none for directories
        target = handle.fd if handle else self._backing(path)
        stat_target = os.stat if handle else os.lstat
        with self._lock:
            st = stat_target(target)
            state = self._states.get(st.st_ino) if stat.S_ISREG(st.st_mode) else None
            if times is None:
                ns = (time.time_ns(),) * 2
            else:
                current = (st.st_atime_ns, state.mtime_ns if state else st.st_mtime_ns)
                ns = tuple(time.time_ns() if nsec == UTIME_NOW else old if nsec == UTIME_OMIT else sec * 10**9 + nsec
                           for (sec, nsec), old in zip(times, current))
            if handle:
                os.utime(target, ns=ns)
            else:
                os.utime(target, ns=ns, follow_symlinks=False)
            if state:
                state.mtime_ns = ns[1]  # what getattr shows while data is pending
        return 0

    # -- names: durable at once ------------------------------------------------------------------
    def readdir(self, path, fh):
        # Entries carry their inode number: with use_ino, one of 0 would hide the entry.
        backing = self._backing(path)
        here = os.lstat(backing)
        entries = [(".", {"st_ino": here.st_ino, "st_mode": here.st_mode}, 0),
                   ("..", {"st_ino": here.st_ino, "st_mode": stat.S_IFDIR}, 0)]
        with os.scandir(backing) as it:
            for entry in it:
                entries.append((entry.name, {"st_ino": entry.inode(), "st_mode": _type_bits(entry)}, 0))
        return entries

    def access(self, path, amode):
        if not os.access(self._backing(path), amode):
            raise _error(errno.EACCES)
        return 0

    def readlink(self, path):
        return os.readlink(self._backing(path))

    def mkdir(self, path, mode):
        self._check_space()
        os.mkdir(self._backing(path), mode)
        return 0

    def mknod(self, path, mode, dev):
        self._check_space()
        os.mknod(self._backing(path), mode, dev)
        return 0

    def symlink(self, path, target):
        self._check_space()
        os.symlink(target, self._backing(path))
        return 0

    def link(self, path, target):
        self._check_space()
        os.link(self._backing(target), self._backing(path))
        return 0

    def rmdir(self, path):
        os.rmdir(self._backing(path))
        return 0

    def unlink(self, path):
        backing = self._backing(path)
        with self._lock:
            st = os.lstat(backing)
            os.unlink(backing)
            self._forget_if_gone(st.st_ino)
        return 0

    def rename(self, old, new):
        with self._lock:
            try:
                replaced = os.lstat(self._backing(new)).st_ino
            except FileNotFoundError:
                replaced = None
            os.rename(self._backing(old), self._backing(new))
            if replaced is not None:
                self._forget_if_gone(replaced)
        return 0

    def chmod(self, path, mode):
        os.chmod(self._backing(path), mode)
        return 0

    def chown(self, path, uid, gid):
        os.chown(self._backing(path), uid, gid, follow_symlinks=False)
        return 0

    def statfs(self, path):
        sv = os.statvfs(self.root)
        free = 0 if self.full else sv.f_bfree
        avail = 0 if self.full else sv.f_bavail
        return {"f_bsize": sv.f_bsize, "f_frsize": sv.f_frsize, "f_blocks": sv.f_blocks, "f_bfree": free,
                "f_bavail": avail, "f_files": sv.f_files, "f_ffree": sv.f_ffree, "f_favail": sv.f_favail,
                "f_namemax": sv.f_namemax}


def _fuse_class():
    """mfusepy's FUSE, passing on what its libfuse 3 wrappers drop: rename flags (refused rather
    than ignored), truncate's file handle (ftruncate acts on the open file and its epoch), and
    utimens' raw timespecs (UTIME_NOW / UTIME_OMIT). Imported here: the harness side of this
    module needs neither mfusepy nor libfuse."""
    import mfusepy

    class Fuse(mfusepy.FUSE):
        def _decoded(self, path):
            return None if path is None else path.decode(self.encoding, self.errors)

        def rename_fuse_3(self, old, new, flags):
            if flags:
                return -errno.EINVAL
            return self.operations.rename(self._decoded(old), self._decoded(new))

        def truncate_fuse_3(self, path, length, fip):
            return self.operations.truncate(self._decoded(path), length, fip.contents if fip else None)

        def utimens_fuse_3(self, path, buf, fip):
            times = None
            if buf:
                a, m = buf.contents.actime, buf.contents.modtime
                times = ((a.tv_sec, a.tv_nsec), (m.tv_sec, m.tv_nsec))
            return self.operations.utimens(self._decoded(path), times, fip.contents if fip else None)

    return Fuse


# -- the control socket ------------------------------------------------------------------------
def handle_request(ops, line):
    """One control request line -> the response object."""
    words = line.split()
    try:
        if words == ["lose"]:
            return {"ok": True, **ops.lose()}
        if words == ["stats"]:
            return {"ok": True, **ops.stats()}
        if len(words) == 2 and words[0] == "fsync-delay":
            seconds = float(words[1])
            if not 0 <= seconds < float("inf"):
                raise ValueError(f"fsync delay must be a finite number >= 0, not {words[1]}")
            ops.set_fsync_delay(seconds)
            log.info("fsync delay %ss", seconds)
            return {"ok": True}
        if len(words) == 2 and words[0] == "full" and words[1] in ("on", "off"):
            ops.full = words[1] == "on"
            log.info("full %s", words[1])
            return {"ok": True}
        return {"ok": False, "error": f"unknown request {line.strip()!r}"}
    except Exception as e:  # noqa: BLE001 - reported to the caller
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


class ControlServer:
    def __init__(self, path, ops):
        self.path, self.ops = path, ops
        if os.path.exists(path):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        threading.Thread(target=self._serve, name="forgetfs-control", daemon=True).start()

    def _serve(self):
        # libfuse stops its loop from a signal handler that must run on the main thread (which
        # waits in sem_wait); keep the termination signals off this thread.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            with conn:
                try:
                    line = conn.makefile("r", encoding="utf-8").readline()
                    reply = handle_request(self.ops, line)
                    conn.sendall((json.dumps(reply) + "\n").encode())
                except OSError as e:
                    log.warning("control connection: %s", e)

    def close(self):
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


# -- the process -------------------------------------------------------------------------------
def mounted(path):
    """Whether `path` is a mount point per /proc/self/mountinfo (also when its file system no
    longer answers, where os.path.ismount says False)."""
    target = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                point = line.split()[4]
                # mountinfo escapes space, tab, newline and backslash as octal.
                point = point.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
                if point == target:
                    return True
    except OSError:
        return os.path.ismount(path)
    return False


def serve(backing, mount, control, seed=0, tear=True):
    backing, mount = os.path.realpath(backing), os.path.realpath(mount)
    if mount == backing or mount.startswith(backing + os.sep):
        raise SystemExit("forgetfs: the mount point must not be inside the backing directory")
    os.umask(0)  # the kernel already applied the caller's umask to the modes it sends
    os.makedirs(backing, exist_ok=True)
    if mounted(mount):  # left over from a forgetfs that died
        subprocess.run(["fusermount3", "-u", "-z", mount], check=False)
    os.makedirs(mount, exist_ok=True)
    ops = ForgetOps(backing, seed=seed, tear=tear)
    server = ControlServer(control, ops)
    log.info("mounting %s on %s (seed %d, tear %s)", backing, mount, seed, tear)
    # libfuse 3.14.0 then prints "Ignoring invalid max threads value 4294967295": harmless, its
    # fuse_main ignores the unset value and keeps the default thread limits.
    try:
        _fuse_class()(ops, mount, raw_fi=True, foreground=True, nothreads=False, fsname="forgetfs",
                      attr_timeout=0, entry_timeout=0, negative_timeout=0, use_ino=True)
    except RuntimeError as e:
        if e.args != (8,):  # fuse_main's code for "the loop ended on a signal": our way to stop
            raise
    finally:
        server.close()
    log.info("unmounted %s", mount)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kinesin_jepsen.forgetfs", description=__doc__.split("\n")[0])
    parser.add_argument("--backing", required=True, help="directory holding the durable contents")
    parser.add_argument("--mount", required=True, help="mount point (created if missing)")
    parser.add_argument("--control", required=True, help="path of the control Unix socket")
    parser.add_argument("--seed", type=int, default=0, help="seed of the torn-write lengths")
    parser.add_argument("--no-tear", action="store_true", help="a loss drops the last write whole")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="forgetfs: %(message)s")
    logging.getLogger("fuse").setLevel(logging.WARNING)
    serve(args.backing, args.mount, args.control, seed=args.seed, tear=not args.no_tear)


# -- the harness's handle on one forgetfs process ------------------------------------------------
class ForgetFs:
    def __init__(self, backing, mount, control, seed=0, tear=True, python=sys.executable, log=None):
        self.backing, self.mount, self.control = os.fspath(backing), os.fspath(mount), os.fspath(control)
        self.seed, self.tear, self.python, self.log = seed, tear, python, log
        self.proc = None

    def start(self, timeout=30):
        """Starts the process; returns once the mount point is mounted and the socket answers."""
        os.makedirs(self.backing, exist_ok=True)
        args = [self.python, "-m", "kinesin_jepsen.forgetfs", "--backing", self.backing, "--mount", self.mount,
                "--control", self.control, "--seed", str(self.seed)]
        if not self.tear:
            args.append("--no-tear")
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        pythonpath = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": pythonpath}
        stderr = open(self.log, "ab") if isinstance(self.log, (str, os.PathLike)) else self.log
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        finally:
            if stderr is not self.log:
                stderr.close()
        deadline = time.monotonic() + timeout
        while not (os.path.ismount(self.mount) and self._answers()):
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"forgetfs on {self.mount} not up after {timeout}s")
            try:
                code = self.proc.wait(timeout=0.05)  # the poll interval; returns early if it died
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"forgetfs on {self.mount} exited with {code} (log: {self.log})")

    def _answers(self):
        try:
            return self._request("stats")["ok"]
        except OSError:
            return False

    def _request(self, line):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(120)
            s.connect(self.control)
            s.sendall(line.encode() + b"\n")
            reply = s.makefile("r", encoding="utf-8").readline()
        if not reply:
            raise ConnectionError(f"forgetfs on {self.mount}: no reply to {line!r}")
        return json.loads(reply)

    def _call(self, line):
        reply = self._request(line)
        if not reply.get("ok"):
            raise RuntimeError(f"forgetfs on {self.mount}: {line!r} failed: {reply.get('error')}")
        reply.pop("ok")
        return reply

    def lose(self) -> dict:
        """A power cut: drops what was not fsynced; returns lost_bytes, torn_bytes and files."""
        return self._call("lose")

    def set_fsync_delay(self, seconds: float):
        self._call(f"fsync-delay {float(seconds)}")

    def set_full(self, on: bool):
        self._call(f"full {'on' if on else 'off'}")

    def stats(self) -> dict:
        return self._call("stats")

    def stop(self):
        """Stops the process (SIGTERM, then SIGKILL) and makes sure nothing stays mounted."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if mounted(self.mount):
            subprocess.run(["fusermount3", "-u", "-z", self.mount], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
