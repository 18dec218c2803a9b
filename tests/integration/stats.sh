#!/bin/bash
# stats.sh: the statistics file .iscsifs/stats (hidden from a plain ls
# like every dot file, read-only): its counters move under I/O; O_DSYNC
# writes are sent with FUA and counted as such; plain writes are not;
# every session of the pool appears.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
skip_unless tgtd tgtadm

# stat_value FILE SECTION KEY: the value of KEY in the block that starts
# with the line SECTION (e.g. "lun lun1").
stat_value() {
    awk -v sec="$2" -v key="$3" '
        /^(lun|session) / { cur = ($1 " " $2) }
        cur == sec && $1 == key { print $2; exit }' "$1"
}

iqn=$IQN_PREFIX:stats
tgt_start
tgt_add_target 1 "$iqn"
make_file "$TEST_TMPDIR/lun1.img" 16M zero
tgt_add_lun 1 1 "$TEST_TMPDIR/lun1.img"
tgt_allow_all 1
mnt=$TEST_TMPDIR/mnt
mount_iscsifs "$TGT_URL/$iqn" "$mnt" -o sessions=3
stats=$mnt/.iscsifs/stats

assert_eq "lun1" "$(ls "$mnt")" "plain ls of the mount"
[[ -f $stats ]] || fail "$stats is missing"
assert_eq "444" "$(file_mode "$stats")" "mode of $stats"
echo x 2>/dev/null >"$stats" && fail "writing $stats succeeded"

cp "$stats" "$TEST_TMPDIR/before"
for key in reads writes bytes_written fua_writes errors latency_p50_us; do
    [[ -n $(stat_value "$TEST_TMPDIR/before" "lun lun1" $key) ]] || fail "no $key for lun1"
done
for s in 0 1 2; do
    [[ -n $(stat_value "$TEST_TMPDIR/before" "session $s" commands) ]] ||
        fail "session $s missing from the stats"
done

t dd if=/dev/urandom of="$mnt/lun1" bs=64k count=20 oflag=dsync conv=notrunc status=none ||
    fail "O_DSYNC writes failed"
t dd if=/dev/urandom of="$mnt/lun1" bs=64k count=30 seek=40 conv=notrunc status=none ||
    fail "plain writes failed"
t dd if="$mnt/lun1" of=/dev/null bs=1M count=4 status=none || fail "reads failed"
cp "$stats" "$TEST_TMPDIR/after"
cat "$TEST_TMPDIR/after"

delta() {
    echo $(($(stat_value "$TEST_TMPDIR/after" "$1" "$2") - $(stat_value "$TEST_TMPDIR/before" "$1" "$2")))
}
assert_eq 50 "$(delta "lun lun1" writes)" "write requests counted"
assert_eq 20 "$(delta "lun lun1" fua_writes)" "O_DSYNC writes sent with FUA"
assert_eq $((50 * 65536)) "$(delta "lun lun1" bytes_written)" "bytes written counted"
assert_eq 4 "$(delta "lun lun1" reads)" "read requests counted"
assert_eq 0 "$(delta "lun lun1" errors)" "errors"
(($(stat_value "$TEST_TMPDIR/after" "lun lun1" latency_p50_us) > 0)) || fail "no latency measured"
total=0
for s in 0 1 2; do
    total=$((total + $(delta "session $s" commands)))
done
((total >= 54)) || fail "sessions counted $total commands for 54 requests"
unmount_iscsifs "$mnt"
note "ok"
