#!/usr/bin/python3
"""faultio.py: I/O that runs through a fault, for the fault-injection tests.

Used by tests/integration/restart-*.sh, timeout.sh and proxy.sh.  Every
subcommand exits 0 when its check holds and 1 with a one-line reason on
stderr ("faultio: FAIL: ...") when it does not.

  run FILE BACKING --writers W [--readers R] --region BYTES --stop PATH
      [--status PATH] [--back PATH] [--min-len L] [--max-len L] [--bs B]
      [--seed S] [--hot BYTES] [--settle SECS]
      FILE (a LUN file of a mount) must read equal to BACKING (the
      target's backing file) at the start.  Then W threads each write
      random data at random unaligned offsets and lengths (L bytes to
      --max-len) inside their own REGION-byte region (regions are
      consecutive from offset 0 and their boundaries fall inside blocks,
      so neighbours share edge blocks), one synchronous pwrite after the
      other, and R threads read and verify the part of FILE after the last
      region, which nobody writes, until PATH (--stop) exists.  Then each
      writer fdatasyncs.  Every call must succeed: any error fails the run.
      At the end FILE and BACKING must both equal the model of what was
      written, byte for byte.
      --hot BYTES: each writer keeps to the first BYTES of its region, so
      every write overwrites recent ones (a stale copy of an older write
      that lands late shows).
      --settle SECS: wait that long after the last write before the final
      comparison (for anything late to land).
      --status PATH: rewritten every 0.1 s with one line "OPS W0 W1 ...":
      operations completed in all, then by each writer.
      --back PATH: once the run is over, PATH holds the time (seconds since
      the epoch, float) at which the target came back; the first
      operation that completed after it is reported as reconnect_latency.
      Printed at the end, one "key=value" a line: ops, per-writer and
      per-reader counts, max_latency (the longest single operation, s),
      min_writer_max_latency (the shortest of the writers' longest
      operations: every writer waited at least that long once),
      reconnect_latency (with --back).

  blocked FILE --op read|write --offset O --length L [--deadline S]
      Repeat one read or write of L bytes at O (a write puts back what a
      read there gave, so the content does not change) until it fails or
      S seconds (default 300) pass.  Prints "errno=NAME at=EPOCH ops=N
      took=SECS" (the failure, when, how many succeeded before, how long
      the failing call took) and exits 0, or fails when S passed without
      one.

  until-ok FILE --op read|write --offset O --length L [--deadline S]
      [--interval I]
      Try the operation every I seconds (default 0.1) until one succeeds,
      at most S seconds (default 60).  Prints "ok at=EPOCH tries=N
      took=SECS errors=NAME,..." (when it succeeded, how long that try
      took, the errnos seen before) and exits 0, or fails.
"""

import argparse
import errno
import os
import random
import sys
import threading
import time

CHUNK = 4 << 20


def die(msg):
    print("faultio: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def read_all(path, size):
    fd = os.open(path, os.O_RDONLY)
    try:
        out = bytearray()
        while len(out) < size:
            b = os.pread(fd, min(CHUNK, size - len(out)), len(out))
            if not b:
                break
            out += b
        return bytes(out)
    finally:
        os.close(fd)


def first_diff(a, b):
    n = min(len(a), len(b))
    for lo in range(0, n, 1 << 16):
        hi = min(n, lo + (1 << 16))
        if a[lo:hi] != b[lo:hi]:
            for i in range(lo, hi):
                if a[i] != b[i]:
                    return i
    return n if len(a) != len(b) else -1


def expect_equal(what, got, want):
    i = first_diff(got, want)
    if i >= 0:
        die("%s: first difference at byte %d (of %d)" % (what, i, len(want)))


def full_pwrite(fd, data, off):
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, off)
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[n:]
        off += n


def full_pread(fd, length, off):
    out = bytearray()
    while len(out) < length:
        b = os.pread(fd, length - len(out), off + len(out))
        if not b:
            raise OSError(errno.EIO, "unexpected end of file at %d" % (off + len(out)))
        out += b
    return bytes(out)


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def cmd_run(a):
    size = os.stat(a.file).st_size
    w, r = a.writers, a.readers
    if w < 1 or a.region * w >= size:
        die("%d regions of %d bytes do not fit in %d bytes" % (w, a.region, size))
    model = bytearray(read_all(a.backing, size))
    expect_equal("initial content of %s" % a.file, read_all(a.file, size), bytes(model))
    # Region boundaries an odd number of bytes past a block edge.
    skew = a.bs // 2 + 3 if a.bs > 8 else 1
    bounds = [0] + [i * a.region + skew for i in range(1, w)] + [w * a.region]
    stable = (w * a.region, size)
    expected_stable = bytes(model[stable[0]:stable[1]])
    errors = []
    counts = [0] * (w + r)
    max_lat = [0.0] * (w + r)
    done_at = [[] for _ in range(w + r)]   # completion times (epoch)
    finished = threading.Event()

    def stopped():
        return errors or os.path.exists(a.stop)

    def timed(i, fn):
        t0 = time.monotonic()
        out = fn()
        t1 = time.monotonic()
        max_lat[i] = max(max_lat[i], t1 - t0)
        done_at[i].append(time.time())
        counts[i] += 1
        return out

    def writer(i):
        rng = random.Random(a.seed * 1000 + i)
        lo, hi = bounds[i], bounds[i + 1]
        if a.hot:
            hi = min(hi, lo + a.hot)
        fd = os.open(a.file, os.O_RDWR)
        off = lo
        try:
            while not stopped():
                length = rng.randint(a.min_len, a.max_len)
                if rng.random() < 0.2:        # an edge block shared with a neighbour
                    length = rng.randint(1, a.bs)
                    off = lo if rng.random() < 0.5 else hi - length
                elif off + length > hi:       # a sweep of the region, then again
                    off = lo + rng.randint(0, a.bs)
                length = min(length, hi - off)
                data = rng.randbytes(length)
                at = off
                try:
                    timed(i, lambda: full_pwrite(fd, data, at))
                except OSError as e:
                    errors.append("writer %d: %d bytes at %d: %s (%s) at %s"
                                  % (i, length, at, e.strerror, errname(e),
                                     time.strftime("%H:%M:%S")))
                    return
                model[at:at + length] = data
                off = at + length
            os.fdatasync(fd)
        except OSError as e:
            errors.append("writer %d: %s (%s)" % (i, e.strerror, errname(e)))
        finally:
            os.close(fd)

    def reader(j):
        i = w + j
        rng = random.Random(a.seed * 1000 + 500 + j)
        fd = os.open(a.file, os.O_RDONLY)
        try:
            while not stopped():
                length = rng.randint(a.min_len, a.max_len)
                off = rng.randint(stable[0], stable[1] - length)
                try:
                    got = timed(i, lambda: full_pread(fd, length, off))
                except OSError as e:
                    errors.append("reader %d: %d bytes at %d: %s (%s) at %s"
                                  % (j, length, off, e.strerror, errname(e),
                                     time.strftime("%H:%M:%S")))
                    return
                rel = off - stable[0]
                if got != expected_stable[rel:rel + length]:
                    errors.append("reader %d: %d bytes read at %d differ from what "
                                  "no one wrote" % (j, length, off))
                    return
        finally:
            os.close(fd)

    def status():
        while not finished.wait(0.1):
            tmp = a.status + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d %s\n" % (sum(counts), " ".join(str(c) for c in counts[:w])))
            os.replace(tmp, a.status)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(w)]
    threads += [threading.Thread(target=reader, args=(j,)) for j in range(r)]
    st = threading.Thread(target=status) if a.status else None
    if st:
        st.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    finished.set()
    if st:
        st.join()
    if errors:
        die("; ".join(errors))
    time.sleep(a.settle)
    expect_equal("%s after the run" % a.file, read_all(a.file, size), bytes(model))
    expect_equal("backing file %s after the run" % a.backing,
                 read_all(a.backing, size), bytes(model))
    print("ops=%d" % sum(counts))
    print("writer_ops=%s" % ",".join(str(c) for c in counts[:w]))
    print("reader_ops=%s" % ",".join(str(c) for c in counts[w:]))
    print("max_latency=%.3f" % max(max_lat))
    print("min_writer_max_latency=%.3f" % min(max_lat[:w]))
    if a.back:
        with open(a.back) as f:
            back = float(f.read().strip())
        after = [t for times in done_at for t in times if t >= back]
        if not after:
            die("no operation completed after the target came back")
        print("reconnect_latency=%.3f" % (min(after) - back))


def one_op(fd, op, offset, length, saved):
    if op == "read":
        full_pread(fd, length, offset)
    else:
        full_pwrite(fd, saved, offset)


def open_for(a):
    fd = os.open(a.file, os.O_RDWR if a.op == "write" else os.O_RDONLY)
    saved = None
    if a.op == "write":
        saved = full_pread(fd, a.length, a.offset)
    return fd, saved


def cmd_blocked(a):
    fd, saved = open_for(a)
    end = time.monotonic() + a.deadline
    n = 0
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            one_op(fd, a.op, a.offset, a.length, saved)
            n += 1
        except OSError as e:
            print("errno=%s at=%.3f ops=%d took=%.3f"
                  % (errname(e), time.time(), n, time.monotonic() - t0))
            return
    die("%s of %d bytes at %d kept succeeding for %d s (%d times)"
        % (a.op, a.length, a.offset, a.deadline, n))


def cmd_until_ok(a):
    end = time.monotonic() + a.deadline
    seen = []
    tries = 0
    fd = saved = None
    while time.monotonic() < end:
        tries += 1
        t0 = time.monotonic()
        try:
            if fd is None:
                fd, saved = open_for(a)
            one_op(fd, a.op, a.offset, a.length, saved)
            print("ok at=%.3f tries=%d took=%.3f errors=%s"
                  % (time.time(), tries, time.monotonic() - t0,
                     ",".join(sorted(set(seen))) or "none"))
            return
        except OSError as e:
            seen.append(errname(e))
        time.sleep(a.interval)
    die("%s of %d bytes at %d did not succeed within %d s (errors: %s)"
        % (a.op, a.length, a.offset, a.deadline, ",".join(sorted(set(seen))) or "none"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("run")
    sp.add_argument("file")
    sp.add_argument("backing")
    sp.add_argument("--writers", type=int, required=True)
    sp.add_argument("--readers", type=int, default=0)
    sp.add_argument("--region", type=int, required=True)
    sp.add_argument("--stop", required=True)
    sp.add_argument("--status")
    sp.add_argument("--back")
    sp.add_argument("--min-len", type=int, default=1)
    sp.add_argument("--max-len", type=int, default=256 * 1024)
    sp.add_argument("--bs", type=int, default=512)
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--hot", type=int, default=0)
    sp.add_argument("--settle", type=float, default=0)
    for name in ("blocked", "until-ok"):
        sp = sub.add_parser(name)
        sp.add_argument("file")
        sp.add_argument("--op", choices=("read", "write"), required=True)
        sp.add_argument("--offset", type=int, default=0)
        sp.add_argument("--length", type=int, default=4096)
        sp.add_argument("--deadline", type=float, default=300 if name == "blocked" else 60)
        if name == "until-ok":
            sp.add_argument("--interval", type=float, default=0.1)
    a = p.parse_args()
    {"run": cmd_run, "blocked": cmd_blocked, "until-ok": cmd_until_ok}[a.cmd](a)


if __name__ == "__main__":
    main()
