#!/usr/bin/env python3
"""seekmap.py: print a file's data extents as its SEEK_DATA/SEEK_HOLE walk
sees them, one "START END" line (bytes, END exclusive) per extent, rounded
out to GRAIN bytes (default 4096) so that two files whose maps differ only
inside a block compare equal.

    seekmap.py FILE [GRAIN]

Exit status 0, or 1 with one line on stderr when a seek fails with anything
but ENXIO past the last data (such as EINVAL, which would mean the file
system does not implement SEEK_DATA at all).
"""
import errno
import os
import sys


def extents(path, grain):
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            if end <= start:
                raise OSError(errno.EIO, "SEEK_HOLE from %d answered %d" % (start, end))
            s = start // grain * grain
            e = min(size, (end + grain - 1) // grain * grain)
            if out and s <= out[-1][1]:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e])
            off = end
    finally:
        os.close(fd)
    return out


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: seekmap.py FILE [GRAIN]", file=sys.stderr)
        return 2
    grain = int(sys.argv[2]) if len(sys.argv) == 3 else 4096
    try:
        ext = extents(sys.argv[1], grain)
    except OSError as e:
        print("seekmap.py: %s: %s" % (sys.argv[1], e), file=sys.stderr)
        return 1
    for s, e in ext:
        print(s, e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
