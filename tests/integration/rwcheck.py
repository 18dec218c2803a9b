#!/usr/bin/env python3
"""rwcheck.py: data checks on a LUN file of an iscsifs mount.

Used by the integration tests (tests/integration/*.sh).  Each subcommand
exits 0 when the check holds and 1 with a one-line reason on stderr when it
does not; it never waits for anything but the file system.

  random FILE BACKING [--seed S] [--ops N] [--max-len L] [--bs B]
      FILE must read equal to BACKING (the target's backing file) at the
      start.  Then N random writes and reads at unaligned offsets and
      lengths (biased towards block edges, tiny and huge lengths); every
      read must equal the model.  After fsync, FILE and BACKING must both
      equal the model.

  edges FILE [--bs B]
      End-of-file rules: reads at/after the end return 0 bytes, a read
      across the end is short, a write at or across the end fails with
      ENOSPC and writes nothing, truncate/ftruncate to another size fails
      (EPERM or EINVAL) and changes nothing; no file is made, removed or
      renamed in its directory (EPERM).

  readonly FILE BACKING
      FILE has no write permission bits; opening it for writing or
      writing through such a descriptor fails with EROFS; truncate fails;
      nothing changes; reads equal BACKING.

  concurrent FILE BACKING [--writers W] [--readers R] [--ops N] [--bs B]
      W threads write random unaligned ranges inside disjoint byte
      regions whose boundaries are deliberately not block-aligned (so
      neighbours share edge blocks and a torn read-modify-write shows),
      while R threads read and verify a region nobody writes.  At the end
      FILE and BACKING must equal the model.
"""

import argparse
import errno
import os
import random
import stat
import sys
import threading

CHUNK = 4 << 20


def die(msg):
    print("rwcheck: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def read_all(path, size=None):
    """Read a whole file with plain read(2) calls."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if size is None:
            size = os.fstat(fd).st_size
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
    lo, step = 0, 1 << 20
    while lo < n:
        hi = min(n, lo + step)
        if a[lo:hi] != b[lo:hi]:
            for i in range(lo, hi):
                if a[i] != b[i]:
                    return i
        lo = hi
    return n if len(a) != len(b) else -1


def expect_equal(what, got, want):
    if got == want:
        return
    i = first_diff(got, want)
    die("%s differs at byte %d (got %d bytes, expected %d)%s" % (
        what, i, len(got), len(want),
        "" if i >= min(len(got), len(want)) else
        ": got %s expected %s" % (got[i:i + 8].hex(), want[i:i + 8].hex())))


def full_pwrite(fd, data, off):
    done = 0
    while done < len(data):
        n = os.pwrite(fd, data[done:], off + done)
        if n <= 0:
            die("pwrite at %d returned %d" % (off + done, n))
        done += n


def full_pread(fd, length, off):
    out = bytearray()
    while len(out) < length:
        b = os.pread(fd, length - len(out), off + len(out))
        if not b:
            break
        out += b
    return bytes(out)


def pick_range(rng, lo, hi, bs, max_len):
    """A random [off, off+len) inside [lo, hi), biased to awkward cases."""
    span = hi - lo
    kind = rng.randrange(8)
    if kind == 0:            # tiny, anywhere
        length = rng.randint(1, 16)
    elif kind == 1:          # straddles a block edge by a few bytes
        length = rng.randint(2, 2 * bs + 2)
    elif kind == 2:          # large
        length = rng.randint(max_len // 2, max_len)
    elif kind == 3:          # exactly aligned blocks
        length = bs * rng.randint(1, max(1, max_len // bs))
    else:
        length = rng.randint(1, max_len)
    length = max(1, min(length, span))
    if kind == 3:
        off = lo + ((rng.randrange(span - length + 1)) // bs) * bs
        off = max(lo, off)
        if off + length > hi:
            off = hi - length
    elif kind == 1:
        edge = lo + ((rng.randrange(span) // bs) * bs)
        off = edge - rng.randint(1, bs - 1) if bs > 1 else edge
        off = min(max(lo, off), hi - length)
    else:
        off = lo + rng.randrange(span - length + 1)
    return off, length


def cmd_random(a):
    rng = random.Random(a.seed)
    size = os.stat(a.file).st_size
    if size != os.stat(a.backing).st_size:
        die("size of %s is %d, backing file has %d" % (
            a.file, size, os.stat(a.backing).st_size))
    model = bytearray(read_all(a.backing))
    expect_equal("initial content of %s" % a.file, read_all(a.file), bytes(model))
    fd = os.open(a.file, os.O_RDWR)
    writes = reads = 0
    try:
        for _ in range(a.ops):
            off, length = pick_range(rng, 0, size, a.bs, a.max_len)
            if rng.random() < 0.65:
                data = rng.randbytes(length)
                full_pwrite(fd, data, off)
                model[off:off + length] = data
                writes += 1
            else:
                got = full_pread(fd, length, off)
                expect_equal("read of %d bytes at %d" % (length, off),
                             got, bytes(model[off:off + length]))
                reads += 1
        os.fsync(fd)
    finally:
        os.close(fd)
    expect_equal("%s after random I/O" % a.file, read_all(a.file), bytes(model))
    expect_equal("backing file %s after random I/O" % a.backing,
                 read_all(a.backing), bytes(model))
    print("rwcheck random: %d writes, %d reads on %d bytes, seed %d: ok" % (
        writes, reads, size, a.seed))


def expect_errno(what, fn, allowed):
    try:
        r = fn()
    except OSError as e:
        if e.errno in allowed:
            return e.errno
        die("%s failed with %s, expected %s" % (
            what, errno.errorcode.get(e.errno, e.errno),
            "/".join(errno.errorcode[x] for x in allowed)))
    die("%s succeeded (returned %r), expected %s" % (
        what, r, "/".join(errno.errorcode[x] for x in allowed)))


def cmd_edges(a):
    size = os.stat(a.file).st_size
    if size < 2 * a.bs:
        die("%s is too small (%d bytes)" % (a.file, size))
    fd = os.open(a.file, os.O_RDWR)
    try:
        tail = full_pread(fd, a.bs, size - a.bs)
        if len(tail) != a.bs:
            die("read of the last block returned %d bytes" % len(tail))
        for off in (size, size + 1, size + a.bs, size + (1 << 30)):
            b = os.pread(fd, 4096, off)
            if b:
                die("read at %d (size %d) returned %d bytes" % (off, size, len(b)))
        b = os.pread(fd, 100, size - 7)
        if len(b) != 7 or b != tail[-7:]:
            die("read across the end returned %d bytes, expected 7" % len(b))
        expect_errno("write at the end", lambda: os.pwrite(fd, b"x", size),
                     (errno.ENOSPC,))
        expect_errno("write past the end",
                     lambda: os.pwrite(fd, b"x" * 512, size + 4096),
                     (errno.ENOSPC,))
        expect_errno("write across the end",
                     lambda: os.pwrite(fd, b"\xa5" * 64, size - 5),
                     (errno.ENOSPC,))
        expect_errno("ftruncate to a smaller size",
                     lambda: os.ftruncate(fd, size - a.bs),
                     (errno.EPERM, errno.EINVAL))
        expect_errno("ftruncate to a larger size",
                     lambda: os.ftruncate(fd, size + a.bs),
                     (errno.EPERM, errno.EINVAL))
        expect_errno("ftruncate to 0", lambda: os.ftruncate(fd, 0),
                     (errno.EPERM, errno.EINVAL))
        expect_errno("truncate(path) to a smaller size",
                     lambda: os.truncate(a.file, size - 1),
                     (errno.EPERM, errno.EINVAL))
        # the mount's names are the target's: no file is made, removed
        # or renamed (EPERM, not "Function not implemented")
        d = os.path.dirname(os.path.abspath(a.file))
        new = os.path.join(d, "rwcheck-new")
        for what, fn in (
                ("create", lambda: os.open(new, os.O_CREAT | os.O_WRONLY, 0o644)),
                ("mkdir", lambda: os.mkdir(new)),
                ("mknod", lambda: os.mknod(new, 0o644 | stat.S_IFREG)),
                ("symlink", lambda: os.symlink(a.file, new)),
                ("link", lambda: os.link(a.file, new)),
                ("rename", lambda: os.rename(a.file, new)),
                ("unlink", lambda: os.unlink(a.file)),
                ("rmdir", lambda: os.rmdir(os.path.join(d, ".iscsifs")))):
            expect_errno(what, fn, (errno.EPERM,))
        if not os.path.exists(a.file) or os.path.lexists(new):
            die("the directory changed: %s" % sorted(os.listdir(d)))
        if os.stat(a.file).st_size != size:
            die("size changed from %d to %d" % (size, os.stat(a.file).st_size))
        after = full_pread(fd, a.bs, size - a.bs)
        expect_equal("last block after refused writes", after, tail)
        # The last byte is writable and reads back.
        old = tail[-1:]
        full_pwrite(fd, b"\x5a", size - 1)
        if os.pread(fd, 1, size - 1) != b"\x5a":
            die("last byte did not read back")
        full_pwrite(fd, old, size - 1)
        os.fsync(fd)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    print("rwcheck edges: %s (%d bytes): ok" % (a.file, size))


def cmd_readonly(a):
    st = os.stat(a.file)
    if st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        die("%s has mode %o, expected no write bits" % (
            a.file, stat.S_IMODE(st.st_mode)))
    before = read_all(a.backing)
    expect_equal("content of %s" % a.file, read_all(a.file), before)
    for flags, name in ((os.O_RDWR, "O_RDWR"), (os.O_WRONLY, "O_WRONLY")):
        try:
            fd = os.open(a.file, flags)
        except OSError as e:
            if e.errno != errno.EROFS:
                die("open(%s) failed with %s, expected EROFS" % (
                    name, errno.errorcode.get(e.errno, e.errno)))
            continue
        try:
            expect_errno("write through an %s descriptor" % name,
                         lambda: os.pwrite(fd, b"\xee" * 4096, 0),
                         (errno.EROFS,))
            expect_errno("unaligned write through an %s descriptor" % name,
                         lambda: os.pwrite(fd, b"\xee" * 10, 1001),
                         (errno.EROFS,))
        finally:
            os.close(fd)
    expect_errno("truncate of a read-only LUN",
                 lambda: os.truncate(a.file, 0),
                 (errno.EROFS, errno.EPERM, errno.EINVAL, errno.EACCES))
    if os.stat(a.file).st_size != st.st_size:
        die("size changed")
    expect_equal("backing file after refused writes", read_all(a.backing), before)
    expect_equal("%s after refused writes" % a.file, read_all(a.file), before)
    print("rwcheck readonly: %s: ok" % a.file)


def cmd_concurrent(a):
    size = os.stat(a.file).st_size
    model = bytearray(read_all(a.backing))
    expect_equal("initial content of %s" % a.file, read_all(a.file), bytes(model))
    w = a.writers
    # Regions: w writer regions, then one stable region for the readers.
    # Boundaries are offset by an odd number of bytes from block edges.
    region = (size // (w + 1)) // a.bs * a.bs
    bounds = [0] + [i * region + (a.bs // 2 + 3 if a.bs > 8 else 1)
                    for i in range(1, w + 1)]
    stable = (bounds[w], size)
    errors = []
    stop = threading.Event()

    def writer(i):
        rng = random.Random(a.seed * 1000 + i)
        lo, hi = bounds[i], bounds[i + 1]
        fd = os.open(a.file, os.O_RDWR)
        try:
            for n in range(a.ops):
                if errors:
                    return
                if n % 3 == 0:      # touch this region's shared edge blocks
                    length = rng.randint(1, a.bs)
                    off = lo if n % 2 == 0 else hi - length
                else:
                    off, length = pick_range(rng, lo, hi, a.bs, a.max_len)
                data = rng.randbytes(length)
                full_pwrite(fd, data, off)
                model[off:off + length] = data
            os.fdatasync(fd)
        except OSError as e:
            errors.append("writer %d: %s" % (i, e))
        finally:
            os.close(fd)

    expected_stable = bytes(model[stable[0]:stable[1]])

    def reader(i):
        rng = random.Random(a.seed * 1000 + 500 + i)
        fd = os.open(a.file, os.O_RDONLY)
        try:
            while not stop.is_set() and not errors:
                off, length = pick_range(rng, stable[0], stable[1], a.bs, a.max_len)
                got = full_pread(fd, length, off)
                rel = off - stable[0]
                if got != expected_stable[rel:rel + length]:
                    errors.append("reader %d: %d bytes at %d differ from what "
                                  "no one wrote" % (i, length, off))
                    return
                # Also load the written regions (content is in flux).
                off, length = pick_range(rng, 0, stable[0], a.bs, a.max_len)
                if len(full_pread(fd, length, off)) != length:
                    errors.append("reader %d: short read at %d" % (i, off))
                    return
        except OSError as e:
            errors.append("reader %d: %s" % (i, e))
        finally:
            os.close(fd)

    wt = [threading.Thread(target=writer, args=(i,)) for i in range(w)]
    rt = [threading.Thread(target=reader, args=(i,)) for i in range(a.readers)]
    for th in rt + wt:
        th.start()
    for th in wt:
        th.join()
    stop.set()
    for th in rt:
        th.join()
    if errors:
        die("; ".join(errors))
    expect_equal("%s after concurrent writes" % a.file, read_all(a.file), bytes(model))
    expect_equal("backing file %s after concurrent writes" % a.backing,
                 read_all(a.backing), bytes(model))
    print("rwcheck concurrent: %d writers x %d ops, %d readers: ok" % (
        w, a.ops, a.readers))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp, backing=True):
        sp.add_argument("file")
        if backing:
            sp.add_argument("backing")
        sp.add_argument("--bs", type=int, default=512,
                        help="logical block size of the LUN")
        sp.add_argument("--seed", type=int, default=1)
        sp.add_argument("--ops", type=int, default=300)
        sp.add_argument("--max-len", type=int, default=300 * 1024)

    common(sub.add_parser("random"))
    common(sub.add_parser("edges"), backing=False)
    common(sub.add_parser("readonly"))
    sp = sub.add_parser("concurrent")
    common(sp)
    sp.add_argument("--writers", type=int, default=4)
    sp.add_argument("--readers", type=int, default=2)
    a = p.parse_args()
    {"random": cmd_random, "edges": cmd_edges, "readonly": cmd_readonly,
     "concurrent": cmd_concurrent}[a.cmd](a)


if __name__ == "__main__":
    main()
