#!/bin/bash
# listing.sh: a directory listed in parts while its LUN files change.
# tgtd with LUNs 1, 2 and 3: a reader lists the mount with getdents64 and
# a buffer of three entries (".", "..", "lun1"); tgtd then deletes LUN 1,
# and once its file is gone the reader goes on from the offset it had.
# Every file neither added nor removed must come exactly once: lun2 and
# lun3 in the second part (before, offsets were positions among the live
# files, which moved down by one when lun1 went, and lun2 was skipped).
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm

iqn=$IQN_PREFIX:listing
mnt=$TEST_TMPDIR/mnt
tgt_start
tgt_add_target 1 "$iqn"
for n in 1 2 3; do
    make_file "$TEST_TMPDIR/lun$n.img" 4M zero
    tgt_add_lun 1 "$n" "$TEST_TMPDIR/lun$n.img"
done
tgt_allow_all 1
require_iscsifs
mount_iscsifs "$TGT_URL/$iqn" "$mnt" -o sessions=1

fifo=$TEST_TMPDIR/go
mkfifo "$fifo"
out=$TEST_TMPDIR/listing.out
# the reader: part 1, then (a line on the fifo) part 2, each on a line
"$PYTHON" - "$mnt" "$fifo" >"$out" 2>&1 <<'EOF' &
import ctypes, os, struct, sys

libc = ctypes.CDLL(None, use_errno=True)
libc.getdents64.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
libc.getdents64.restype = ctypes.c_ssize_t
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)

def part(size):
    """The names one getdents64 call with a @size-byte buffer returns."""
    buf = ctypes.create_string_buffer(size)
    n = libc.getdents64(fd, buf, size)
    if n < 0:
        sys.exit("getdents64: %s" % os.strerror(ctypes.get_errno()))
    names, off = [], 0
    while off < n:
        reclen = struct.unpack_from("<H", buf.raw, off + 16)[0]
        names.append(buf.raw[off + 19:off + reclen].split(b"\0")[0].decode())
        off += reclen
    return names

print("part1 " + " ".join(part(72)), flush=True)
with open(sys.argv[2]) as go:
    go.readline()
rest = []
while True:
    names = part(4096)
    if not names:
        break
    rest += names
print("part2 " + " ".join(rest), flush=True)
EOF
reader=$!
wait_true 10 grep -q '^part1 ' "$out" || fail "the reader's first part: $(cat "$out")"
assert_eq "part1 . .. lun1" "$(head -n 1 "$out")" "the first part of the listing"

# LUN 1 leaves: tgtd's Unit Attention comes with the next command
tgtadm_ --op delete --mode logicalunit --tid 1 --lun 1
lun1_gone() {
    t dd if="$mnt/lun3" of=/dev/null bs=4k count=1 iflag=direct status=none
    [[ ! -e $mnt/lun1 ]]
}
wait_true 30 lun1_gone || fail "lun1 still listed after tgtd deleted LUN 1: $(ls "$mnt")"
echo go >"$fifo"
wait "$reader" || fail "the reader failed: $(cat "$out")"
assert_eq "part2 lun2 lun3 .iscsifs" "$(tail -n 1 "$out")" "the rest of the listing after lun1 went"
assert_eq "lun2 lun3" "$(ls "$mnt" | tr '\n' ' ' | sed 's/ $//')" "a new listing"
unmount_iscsifs "$mnt"
note "ok"
