#!/bin/bash
# sparse.sh: sparse LUN files (issue 14).  tgtd with a thin LUN
# (thin_provisioning=1: LBPME=1, LBPRZ=1, GET LBA STATUS from SEEK_DATA and
# SEEK_HOLE on its backing file) whose backing file holds data at scattered
# offsets (the first and the last block, extents not aligned to 1 MiB), and
# a thick LUN with the same bytes; then istgt.
#   - the SEEK_DATA/SEEK_HOLE walk of the LUN file equals the backing
#     file's own, block by block (tests/lib/seekmap.py walks both);
#   - st_blocks (du) matches the backing file's allocation within one
#     extent once the map is known;
#   - `cp --sparse=always` and a plain `cp` copy every byte and give a
#     sparse file;
#   - `qemu-img map` of the LUN file lists the same data extents;
#   - after a write into a hole and a punched hole, the walk follows;
#   - a write by another initiator (into the backing file) shows after a
#     reconnect, which drops the map;
#   - user.iscsi.provisioning and the stats counters say what happened;
#   - the thick LUN and istgt's LUN are all data, with no error logged; so
#     is the thin LUN with -o cache (written pages may wait in the kernel).
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm qemu-img fallocate getfattr

SEEKMAP="$top_srcdir/tests/lib/seekmap.py"
BS=512
SIZE=$((64 << 20))

# seek_map FILE: FILE's data extents in 512-byte blocks, one "START END"
# line each (seekmap.py).
seek_map() {
    t "$PYTHON" "$SEEKMAP" "$1" $BS || fail "SEEK_DATA/SEEK_HOLE walk of $1 failed"
}

# same_map LUNFILE BACKING WHAT: the two walks are equal.
same_map() {
    local a b
    a=$(seek_map "$1") b=$(seek_map "$2")
    [[ $a == "$b" ]] || fail "$3: the LUN file's map differs from the backing file's:
--- $1
$a
--- $2
$b"
}

# blocks_of FILE: st_blocks (512-byte units).
blocks_of() {
    stat -c %b -- "$1"
}

# write_at FILE OFFSET LEN: LEN random bytes at OFFSET, in place.
write_at() {
    t dd if=/dev/urandom of="$1" bs="$3" count=1 seek="$2" oflag=seek_bytes conv=notrunc \
        status=none || fail "writing $3 bytes at $2 of $1 failed"
}

# stat_value NAME: counter NAME of the first LUN block (lun1) of the stats.
stat_value() {
    awk -v k="$1" '$1 == "lun" { n++ } n == 1 && $1 == k { print $2; exit }' \
        "$mnt/.iscsifs/stats"
}

# no_errors: the iscsifs log holds no warning or error.
no_errors() {
    ! grep -Ei 'error|warn|fail' "$ISCSIFS_LOG" ||
        fail "$1: iscsifs logged a warning or an error"
}

# ---- the backing file: data at scattered offsets ----
thin=$TEST_TMPDIR/thin.img
thick=$TEST_TMPDIR/thick.img
truncate -s $SIZE "$thin"
write_at "$thin" 0 4096                          # the first block
write_at "$thin" $((1 << 20 | 12288)) 20480      # not aligned to 1 MiB
write_at "$thin" $((5 << 20 | 777 * 4096)) 65536
write_at "$thin" $((17 << 20)) $((3 << 20))      # a long one
write_at "$thin" $((40 << 20 | 4096 * 3)) 4096
write_at "$thin" $((SIZE - 512)) 512             # the last block
cp --sparse=always "$thin" "$thick"
[[ $(seek_map "$thin" | wc -l) -ge 6 ]] ||
    skip "the file system of $TEST_TMPDIR does not keep holes"

iqn=$IQN_PREFIX:sparse
tgt_start
tgt_add_target 1 "$iqn"
tgt_add_lun 1 1 "$thin"
tgtadm_ --op update --mode logicalunit --tid 1 --lun 1 --params thin_provisioning=1
tgt_add_lun 1 2 "$thick"
tgt_allow_all 1
mnt=$TEST_TMPDIR/mnt
mount_iscsifs "$TGT_URL/$iqn" "$mnt"
lun=$mnt/lun1

assert_eq "thin lbprz=1" "$(getfattr --only-values -n user.iscsi.provisioning "$lun")" \
    "user.iscsi.provisioning of the thin LUN"
assert_eq "thick" "$(getfattr --only-values -n user.iscsi.provisioning "$mnt/lun2")" \
    "user.iscsi.provisioning of the thick LUN"

# ---- the walk matches the backing file's ----
same_map "$lun" "$thin" "thin LUN"
[[ $(stat_value lba_status_cmds) -ge 1 ]] || fail "no GET LBA STATUS counted in the stats"
[[ $(stat_value extents_known) -ge 11 ]] ||
    fail "the stats know $(stat_value extents_known) extents, 11 expected"
# seeks from inside extents and holes, and past the end
"$PYTHON" - "$lun" "$thin" $SIZE <<'PY' || fail "seeks from inside extents differ"
import errno, os, random, sys
lun, back, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
a, b = os.open(lun, os.O_RDONLY), os.open(back, os.O_RDONLY)
rnd = random.Random(14)
for off in [0, 1, 4095, 4096, size - 513, size - 512, size - 1] + \
           [rnd.randrange(size) // 512 * 512 for _ in range(200)]:
    for whence in (os.SEEK_DATA, os.SEEK_HOLE):
        r = []
        for fd in (a, b):
            try:
                r.append(os.lseek(fd, off, whence))
            except OSError as e:
                r.append(e.errno)
        if r[0] != r[1]:
            sys.exit("lseek(%d, %s): LUN file %s, backing file %s" %
                     (off, "SEEK_DATA" if whence == os.SEEK_DATA else "SEEK_HOLE", r[0], r[1]))
for fd in (a,):
    for whence in (os.SEEK_DATA, os.SEEK_HOLE):
        try:
            os.lseek(fd, size, whence)
            sys.exit("lseek at the end did not fail")
        except OSError as e:
            if e.errno != errno.ENXIO:
                sys.exit("lseek at the end: %s, ENXIO expected" % e)
PY

# ---- st_blocks: the allocation, once the map is known ----
# (getattr starts a scan and reports the whole size until it ends; the
# kernel keeps attributes 1 s)
backing_blocks=$(blocks_of "$thin")
looks_sparse() { [[ $(blocks_of "$lun") -lt $((SIZE / 512)) ]]; }
wait_true 10 looks_sparse ||
    fail "st_blocks of the thin LUN stays $(blocks_of "$lun"), the whole size"
sleep 1.1
got=$(blocks_of "$lun")
diff=$((got > backing_blocks ? got - backing_blocks : backing_blocks - got))
((diff <= 8)) || fail "st_blocks $got, the backing file has $backing_blocks"
note "du: LUN file $(du -k "$lun" | cut -f1) KiB, backing file $(du -k "$thin" | cut -f1) KiB"
assert_eq $((SIZE / 512)) "$(blocks_of "$mnt/lun2")" "st_blocks of the thick LUN"

# ---- copies ----
t cp --sparse=always "$lun" "$TEST_TMPDIR/copy-always" || fail "cp --sparse=always failed"
t cp "$lun" "$TEST_TMPDIR/copy-auto" || fail "cp failed"
for c in copy-always copy-auto; do
    assert_same_file "$TEST_TMPDIR/$c" "$thin" "$c"
    [[ $(blocks_of "$TEST_TMPDIR/$c") -le $((backing_blocks + 64)) ]] ||
        fail "$c is not sparse: $(blocks_of "$TEST_TMPDIR/$c") blocks, the data has $backing_blocks"
done

# ---- qemu-img map lists the data extents ----
t qemu-img map --output=json -f raw "$lun" >"$TEST_TMPDIR/qmap.json" ||
    fail "qemu-img map of the LUN file failed"
"$PYTHON" - "$TEST_TMPDIR/qmap.json" $BS >"$TEST_TMPDIR/qmap" <<'PY' || fail "bad qemu-img map output"
import json, sys
grain = int(sys.argv[2])
out = []
for e in json.load(open(sys.argv[1])):
    if not e["data"]:
        continue
    s, end = e["start"] // grain, (e["start"] + e["length"] + grain - 1) // grain
    if out and out[-1][1] == s:
        out[-1][1] = end
    else:
        out.append([s, end])
for s, end in out:
    print(s * grain, end * grain)
PY
seek_map "$thin" >"$TEST_TMPDIR/backmap"
cmp -s "$TEST_TMPDIR/qmap" "$TEST_TMPDIR/backmap" ||
    fail "qemu-img map of the LUN file: $(cat "$TEST_TMPDIR/qmap"), the backing file: $(cat "$TEST_TMPDIR/backmap")"

# ---- the map follows a write into a hole and a punched hole ----
write_at "$lun" $((30 << 20 | 8192)) 65536
same_map "$lun" "$thin" "after a write into a hole"
t fallocate -p -o $((17 << 20 | 65536)) -l $((1 << 20)) "$lun" || fail "punching a hole failed"
same_map "$lun" "$thin" "after a punched hole"
assert_same_file "$lun" "$thin" "content after the write and the hole"

# ---- another initiator's write: seen after a reconnect ----
# (written into the backing file behind our back: the map, which holds
# that range as a hole, does not see it until a session reconnects)
write_at "$thin" $((50 << 20 | 4096)) 8192
[[ $(seek_map "$lun") != "$(seek_map "$thin")" ]] ||
    fail "the map saw a write behind its back without a reconnect (the test would prove nothing)"
tgt_drop_connection 1 "$(timeout 20 tgtadm -C "$TGT_CTRL" --lld iscsi --op show \
    --mode target | awk '/^ *I_T nexus: [0-9]/ { print $3; exit }')"
reconnected() {
    (($(awk '$1 == "reconnects" { n += $2 } END { print n + 0 }' "$mnt/.iscsifs/stats") >= 1))
}
wait_true 30 reconnected || fail "no reconnect counted 30 s after the connection was dropped"
same_map "$lun" "$thin" "after a reconnect"

# ---- the thick LUN: all data ----
assert_eq "0 $SIZE" "$(seek_map "$mnt/lun2")" "the thick LUN's map"
# the statistics file (size 0): ENXIO, and LUN files still seek after it
"$PYTHON" - "$mnt/.iscsifs/stats" <<'PY' || fail "SEEK_DATA on the statistics file"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    os.lseek(fd, 0, os.SEEK_DATA)
    sys.exit("SEEK_DATA on the statistics file succeeded")
except OSError as e:
    if e.errno != errno.ENXIO:
        sys.exit("SEEK_DATA on the statistics file: %s, ENXIO expected" % e)
PY
same_map "$lun" "$thin" "after a seek on the statistics file"
no_errors "tgtd"
unmount_iscsifs "$mnt"

# ---- -o cache: all data (the kernel may hold pages not yet written) ----
mount_iscsifs "$TGT_URL/$iqn" "$mnt" -o cache
assert_eq "0 $SIZE" "$(seek_map "$mnt/lun1")" "the thin LUN's map with -o cache"
unmount_iscsifs "$mnt"

# ---- istgt: all data, no errors ----
make_file "$TEST_TMPDIR/istgt.img" 16M zero
istgt_start auto "$TEST_TMPDIR/istgt" target=disk "lun0=$TEST_TMPDIR/istgt.img"
mnt=$TEST_TMPDIR/mnt2
mount_iscsifs "$ISTGT_URL/$ISTGT_IQN" "$mnt"
assert_eq "0 $((16 << 20))" "$(seek_map "$mnt/lun0")" "istgt's LUN map"
assert_eq $((16 << 20 >> 9)) "$(blocks_of "$mnt/lun0")" "st_blocks of istgt's LUN"
no_errors "istgt"
unmount_iscsifs "$mnt"
