#!/bin/bash
# identity-changes.sh: what changed on the target while it was away, but
# is no replacement, raises no alarm after the reconnect and shows in the
# mount.  tgtd with LUN 1 and LUN 2: LUN 2 is deleted while mounted (its
# file goes); then tgtd is killed, LUN 1's backing file grows by 8 MiB and
# tgtd starts again with LUN 1 only.  Then: no "another LUN" line (neither
# for the grown LUN 1 nor for the LUN 2 that left before the outage), no
# LUN counted replaced; lun1's size is the new capacity, and its new tail
# reads back what the backing file holds and takes a write.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
skip_unless tgtd tgtadm

iqn=$IQN_PREFIX:changes
disk1=$TEST_TMPDIR/lun1.img
disk2=$TEST_TMPDIR/lun2.img
tail_data=$TEST_TMPDIR/tail
data=$TEST_TMPDIR/data
mnt=$TEST_TMPDIR/mnt
MIB=1048576

tgt_start
make_file "$disk1" 16M random
make_file "$disk2" 16M random
make_file "$tail_data" 8M random
make_file "$data" 1M random
tgt_add_target 1 "$iqn"
tgt_add_lun 1 1 "$disk1"
tgt_add_lun 1 2 "$disk2"
tgt_allow_all 1
mount_iscsifs_fg "$TGT_URL/$iqn" "$mnt" -o sessions=2
tgt_wait_sessions 1 2
assert_eq $((16 * MIB)) "$(stat -c %s "$mnt/lun1")" "lun1 size at the mount"

# LUN 2 leaves while mounted: tgtd's Unit Attention (REPORTED LUNS DATA
# HAS CHANGED) comes with the next command, on lun1
tgtadm_ --op delete --mode logicalunit --tid 1 --lun 2
lun2_gone() {
    t dd if="$mnt/lun1" of=/dev/null bs=4k count=1 iflag=direct status=none
    [[ ! -e $mnt/lun2 ]]
}
wait_true 30 lun2_gone || fail "lun2 still listed after tgtd deleted LUN 2: $(ls "$mnt")"
note "lun2 removed: $(grep -F 'lun2: the target no longer reports' "$ISCSIFS_LOG")"

tgt_kill
cat "$tail_data" >>"$disk1"
tgt_restart
tgt_add_target 1 "$iqn"
tgt_add_lun 1 1 "$disk1"
tgt_allow_all 1

# the grown capacity reaches the file once a session is back
lun1_grown() { [[ $(stat -c %s "$mnt/lun1") == $((24 * MIB)) ]]; }
wait_true 60 lun1_grown ||
    fail "lun1 size $(stat -c %s "$mnt/lun1") after the restart, not $((24 * MIB)): $(tail -n 20 "$ISCSIFS_LOG")"
# said once, by the first session to see it, not by each: once both
# sessions have checked the LUNs again
verified() {
    (($(t cat "$mnt/.iscsifs/stats" | awk '$1 == "verifications" { n += $2 } END { print n + 0 }') >= 2))
}
wait_true 30 verified || fail "the sessions did not both check the LUNs again: $(t cat "$mnt/.iscsifs/stats")"
grown=$(grep -cF "lun1: capacity grew from 32768 to 49152 blocks while the session was away" \
    "$ISCSIFS_LOG")
assert_eq 1 "$grown" "lines about the growth (log: $(tail -n 20 "$ISCSIFS_LOG"))"
note "lun1 grew: $(grep -F 'lun1: capacity changed from' "$ISCSIFS_LOG" | tail -n1)"

cmp -n $((8 * MIB)) "$tail_data" "$mnt/lun1" --ignore-initial=0:$((16 * MIB)) ||
    fail "lun1: the new 8 MiB read back differently"
t dd if="$data" of="$mnt/lun1" bs=64k seek=$((20 * 16)) conv=notrunc,fsync status=none
cmp -n "$MIB" "$data" "$disk1" --ignore-initial=0:$((20 * MIB)) ||
    fail "lun1: a write past the old end did not reach the backing file"
note "lun1: the new tail reads and writes"

if grep -F "another LUN after the reconnect" "$ISCSIFS_LOG"; then
    fail "a false alarm after the reconnect"
fi
replaced=$(awk '$1 == "luns_replaced" { n += $2 } END { print n + 0 }' "$mnt/.iscsifs/stats")
assert_eq 0 "$replaced" "luns_replaced in the stats"
unmount_iscsifs "$mnt"
if grep -Eq 'runtime error:|AddressSanitizer|LeakSanitizer' "$ISCSIFS_LOG"; then
    fail "sanitizer report in the iscsifs log"
fi
note "ok"
