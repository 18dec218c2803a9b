#!/bin/bash
# discovery.sh: the portal form and --list.  tgtd with three targets, one
# of them requiring CHAP; istgt with two.  --list prints every target with
# its LUNs (the CHAP target with the reason it cannot be listed); a
# discovery mount shows a directory per target, logs in when a directory
# is first used, serves data, and answers EACCES for the CHAP target.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
skip_unless tgtd tgtadm istgt

# --- tgtd: three targets, the third with CHAP
tgt_start
for tid in 1 2 3; do
    tgt_add_target $tid "$IQN_PREFIX:disc$tid"
    make_file "$TEST_TMPDIR/disc$tid.img" $((tid * 8))M random
    tgt_add_lun $tid 1 "$TEST_TMPDIR/disc$tid.img"
    tgt_allow_all $tid
done
make_file "$TEST_TMPDIR/disc2b.img" 4M random
tgt_add_lun 2 2 "$TEST_TMPDIR/disc2b.img" 4096
tgt_set_chap 3 alice alicesecret123

require_iscsifs
portal=$TGT_URL/
out=$(t "$ISCSIFS" --list "$portal" 2>&1) || fail "iscsifs --list $portal failed: $out"
echo "$out"
for tid in 1 2 3; do
    grep -qx "$IQN_PREFIX:disc$tid" <<<"$out" || fail "--list does not show disc$tid"
done
grep -q "lun1 *disk, 8.0 MiB (8388608 bytes), 512-byte blocks" <<<"$out" ||
    fail "--list does not describe disc1's lun1"
grep -q "lun2 *disk, 4.0 MiB (4194304 bytes), 4096-byte blocks" <<<"$out" ||
    fail "--list does not describe disc2's lun2"
grep -q "lun0 *peripheral device type 0x0c, not a disk" <<<"$out" ||
    fail "--list does not describe tgtd's controller LUN"
grep -A3 "^$IQN_PREFIX:disc3\$" <<<"$out" | grep -qi "cannot list:.*auth" ||
    fail "--list does not say why the CHAP target cannot be listed"

out=$(t "$ISCSIFS" --list "$TGT_URL/$IQN_PREFIX:disc2" 2>&1) || fail "--list of one target failed: $out"
grep -q "lun2 *disk" <<<"$out" || fail "--list of disc2 lacks lun2: $out"
out=$(t "$ISCSIFS" --list "$TGT_URL/$IQN_PREFIX:nosuch" 2>&1) &&
    fail "--list of an unknown target succeeded: $out"
note "--list of an unknown target: $out"

mnt=$TEST_TMPDIR/mnt
mount_iscsifs "$portal" "$mnt" -o sessions=2
assert_eq "$IQN_PREFIX:disc1 $IQN_PREFIX:disc2 $IQN_PREFIX:disc3" \
    "$(ls "$mnt" | tr '\n' ' ' | sed 's/ $//')" "target directories"
assert_eq 0 "$(tgt_session_count 1)" "sessions to disc1 before its directory is used"
check_names "$mnt/$IQN_PREFIX:disc1" "lun1"
tgt_wait_sessions 1 2
check_names "$mnt/$IQN_PREFIX:disc2" "lun1 lun2"
check_size "$mnt/$IQN_PREFIX:disc2/lun2" $((4 << 20))
assert_same_file "$mnt/$IQN_PREFIX:disc1/lun1" "$TEST_TMPDIR/disc1.img" "disc1 lun1 content"
check_dd_roundtrip "$mnt/$IQN_PREFIX:disc2/lun1" "$TEST_TMPDIR/disc2.img" "$TEST_TMPDIR/work"
out=$(ls "$mnt/$IQN_PREFIX:disc3" 2>&1) && fail "listing the CHAP target without credentials worked"
grep -q "Permission denied" <<<"$out" || fail "CHAP target: expected EACCES, got: $out"
unmount_iscsifs "$mnt"

# --- istgt: two targets
make_file "$TEST_TMPDIR/ia.img" 8M random
make_file "$TEST_TMPDIR/ib.img" 8M random
istgt_start auto "$TEST_TMPDIR/istgt" target=ia "lun0=$TEST_TMPDIR/ia.img" \
    target=ib "lun0=$TEST_TMPDIR/ib.img"
mount_iscsifs "$ISTGT_URL/" "$mnt"
assert_eq "$IQN_PREFIX:ia $IQN_PREFIX:ib" "$(ls "$mnt" | tr '\n' ' ' | sed 's/ $//')" \
    "istgt target directories"
assert_same_file "$mnt/$IQN_PREFIX:ib/lun0" "$TEST_TMPDIR/ib.img" "istgt ib lun0 content"
unmount_iscsifs "$mnt"
note "ok"
