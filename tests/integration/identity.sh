#!/bin/bash
# identity.sh: after a reconnect every LUN is checked to be the one probed
# (unit serial, device id, block size, capacity).  tgtd with LUN 1 and
# LUN 2 is killed and started again on the same port with the same target
# name, LUN 2 as before but LUN 1 backed by another file with another
# serial (scsi_sn).  Then: one error line names lun1 and the serial
# change; a write that waited through the outage and a write and a read
# issued afterwards fail with EIO; the new backing file of LUN 1 is
# untouched; lun2 still reads and writes; the stats count the replaced
# LUN and the checks.  (restart-tgt.sh and restart-istgt.sh are the
# control: the same LUN back raises no alarm.)
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
skip_unless tgtd tgtadm

iqn=$IQN_PREFIX:identity
old1=$TEST_TMPDIR/lun1.img
new1=$TEST_TMPDIR/lun1-other.img
disk2=$TEST_TMPDIR/lun2.img
mnt=$TEST_TMPDIR/mnt
data=$TEST_TMPDIR/data

# configure FILE1 [SERIAL1]: the target with LUN 1 on FILE1 (its serial
# SERIAL1, else tgtd's default) and LUN 2; logins are let in last, so no
# session sees the target half configured.
configure() {
    tgt_add_target 1 "$iqn"
    tgt_add_lun 1 1 "$1"
    if [[ -n ${2:-} ]]; then
        tgtadm_ --op update --mode logicalunit --tid 1 --lun 1 --params "scsi_sn=$2"
    fi
    tgt_add_lun 1 2 "$disk2"
    tgt_allow_all 1
}

tgt_start
make_file "$old1" 16M random
make_file "$new1" 16M random
make_file "$disk2" 16M random
make_file "$data" 1M random
new1_sum=$(md5sum <"$new1")
configure "$old1"
mount_iscsifs_fg "$TGT_URL/$iqn" "$mnt" -o sessions=2
tgt_wait_sessions 1 2

t dd if="$data" of="$mnt/lun1" bs=64k conv=notrunc,fsync status=none
t dd if="$data" of="$mnt/lun2" bs=64k seek=1 conv=notrunc,fsync status=none
cmp -n 1048576 "$data" "$old1" || fail "lun1: the backing file differs from what was written"
cmp -n 1048576 "$data" "$mnt/lun2" --ignore-initial=0:65536 ||
    fail "lun2: reads back differently"
old_serial=$(getfattr --only-values -n user.iscsi.serial "$mnt/lun1" 2>/dev/null || echo beaf11)
note "lun1 serial before the restart: $old_serial"

tgt_kill
# a write issued while the target is away waits for a session to be back
dd if="$data" of="$mnt/lun1" bs=64k seek=4 conv=notrunc,fsync status=none \
    2>"$TEST_TMPDIR/waiting.err" &
waiting=$!
sleep 1
tgt_restart
configure "$new1" OTHERDISK77

line='lun1: another LUN after the reconnect: serial "OTHERDISK77", was "'"$old_serial"'"'
wait_true 30 grep -qF -- "$line" "$ISCSIFS_LOG" ||
    fail "no log line naming the serial change: $(cat "$ISCSIFS_LOG")"
note "logged: $(grep -F -- "$line" "$ISCSIFS_LOG")"

if wait "$waiting"; then
    fail "the write that waited through the outage succeeded on another disk"
fi
grep -q "Input/output error" "$TEST_TMPDIR/waiting.err" ||
    fail "the waiting write failed otherwise: $(cat "$TEST_TMPDIR/waiting.err")"
note "the write that waited failed: $(head -n1 "$TEST_TMPDIR/waiting.err")"

if dd if="$data" of="$mnt/lun1" bs=64k conv=notrunc,fsync status=none 2>"$TEST_TMPDIR/w.err"; then
    fail "a write to lun1 after the restart succeeded"
fi
grep -q "Input/output error" "$TEST_TMPDIR/w.err" || fail "lun1 write: $(cat "$TEST_TMPDIR/w.err")"
if dd if="$mnt/lun1" of=/dev/null bs=64k count=4 status=none 2>"$TEST_TMPDIR/r.err"; then
    fail "a read of lun1 after the restart succeeded"
fi
grep -q "Input/output error" "$TEST_TMPDIR/r.err" || fail "lun1 read: $(cat "$TEST_TMPDIR/r.err")"
note "lun1: write and read fail with EIO"
assert_eq "$new1_sum" "$(md5sum <"$new1")" "the new backing file of LUN 1 (untouched)"

# LUN 2 is the same disk: it keeps working
make_file "$data" 1M random
t dd if="$data" of="$mnt/lun2" bs=64k seek=8 conv=notrunc,fsync status=none
cmp -n 1048576 "$data" "$mnt/lun2" --ignore-initial=0:524288 || fail "lun2: reads back differently"
cmp -n 1048576 "$data" "$disk2" --ignore-initial=0:524288 || fail "lun2: backing file differs"
note "lun2 still reads and writes"

assert_eq 1 "$(grep -cF -- "another LUN after the reconnect" "$ISCSIFS_LOG")" "error lines"
grep -q "lun2: another LUN" "$ISCSIFS_LOG" && fail "false alarm about lun2"
stats=$mnt/.iscsifs/stats
replaced=$(awk '$1 == "luns_replaced" { n += $2 } END { print n + 0 }' "$stats")
checks=$(awk '$1 == "verifications" { n += $2 } END { print n + 0 }' "$stats")
assert_eq 1 "$replaced" "luns_replaced in the stats"
((checks >= 1)) || fail "no identity check counted in the stats"
note "stats: $checks identity checks, $replaced LUN replaced"
unmount_iscsifs "$mnt"
if grep -Eq 'runtime error:|AddressSanitizer|LeakSanitizer' "$ISCSIFS_LOG"; then
    fail "sanitizer report in the iscsifs log"
fi
note "ok"
