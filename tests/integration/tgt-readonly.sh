#!/bin/bash
# tgt-readonly.sh: a write-protected tgtd LUN (readonly=1: WP bit, DATA
# PROTECT) is mode 0444 and refuses writes with EROFS while its writable
# neighbour works; with -o ro every LUN is 0444 and refuses writes; nothing
# changes on the target.  Also istgt's ReadOnly target when istgt exists.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm iscsi-readcapacity16 qemu-io

iqn=$IQN_PREFIX:ro
tgt_start
tgt_add_target 1 "$iqn"
make_file "$TEST_TMPDIR/lun1.img" 16M random
make_file "$TEST_TMPDIR/lun2.img" 16M random
tgt_add_lun 1 1 "$TEST_TMPDIR/lun1.img"
tgt_add_lun 1 2 "$TEST_TMPDIR/lun2.img" 512 readonly
tgt_allow_all 1
assert_lun "$TGT_URL/$iqn/2" $((16 << 20)) 512
lun_write_protected "$TGT_URL/$iqn/2" || fail "tgtd LUN 2 is not write-protected for qemu"
lun_write_protected "$TGT_URL/$iqn/1" && fail "tgtd LUN 1 is write-protected for qemu"
sum1=$(md5sum <"$TEST_TMPDIR/lun1.img")
sum2=$(md5sum <"$TEST_TMPDIR/lun2.img")

istgt_ok=""
if command -v istgt >/dev/null; then
    make_file "$TEST_TMPDIR/istgt-ro.img" 8M random
    istgt_start auto "$TEST_TMPDIR/istgt" target=rodisk readonly=yes \
        "lun0=$TEST_TMPDIR/istgt-ro.img"
    lun_write_protected "$ISTGT_URL/$ISTGT_IQN/0" ||
        fail "istgt ReadOnly target is not write-protected for qemu"
    istgt_ok=1
fi

require_iscsifs
mnt=$TEST_TMPDIR/mnt

# Write-protected LUN next to a writable one.
mount_iscsifs "$TGT_URL/$iqn" "$mnt"
check_names "$mnt" "lun1 lun2"
mode=$(file_mode "$mnt/lun2")
assert_eq 444 "$mode" "mode of the write-protected lun2"
mode=$(file_mode "$mnt/lun1")
(( (8#$mode & 8#200) != 0 )) || fail "writable lun1 has mode $mode"
check_readonly "$mnt/lun2" "$TEST_TMPDIR/lun2.img"
t dd if=/dev/zero of="$mnt/lun2" bs=4096 count=1 conv=notrunc 2>/dev/null &&
    fail "dd to the write-protected lun2 succeeded"
check_random "$mnt/lun1" "$TEST_TMPDIR/lun1.img" 512 65536
unmount_iscsifs "$mnt"
assert_eq "$sum2" "$(md5sum <"$TEST_TMPDIR/lun2.img")" "write-protected backing file"
sum1=$(md5sum <"$TEST_TMPDIR/lun1.img")

# -o ro: everything read-only.
mount_iscsifs "$TGT_URL/$iqn" "$mnt" -o ro
check_names "$mnt" "lun1 lun2"
for n in 1 2; do
    assert_eq 444 "$(file_mode "$mnt/lun$n")" "mode of lun$n with -o ro"
    check_readonly "$mnt/lun$n" "$TEST_TMPDIR/lun$n.img"
done
t dd if=/dev/zero of="$mnt/lun1" bs=512 count=1 conv=notrunc 2>/dev/null &&
    fail "dd to lun1 under -o ro succeeded"
t dd if="$mnt/lun1" of="$TEST_TMPDIR/readback" bs=1M status=none || fail "read under -o ro failed"
assert_same_file "$TEST_TMPDIR/readback" "$TEST_TMPDIR/lun1.img" "read of lun1 under -o ro"
unmount_iscsifs "$mnt"
assert_eq "$sum1" "$(md5sum <"$TEST_TMPDIR/lun1.img")" "lun1 backing file after -o ro"
assert_eq "$sum2" "$(md5sum <"$TEST_TMPDIR/lun2.img")" "lun2 backing file after -o ro"

if [[ -n $istgt_ok ]]; then
    mount_iscsifs "$ISTGT_URL/$ISTGT_IQN" "$mnt"
    check_names "$mnt" "lun0"
    assert_eq 444 "$(file_mode "$mnt/lun0")" "mode of istgt's read-only lun0"
    check_readonly "$mnt/lun0" "$TEST_TMPDIR/istgt-ro.img"
    unmount_iscsifs "$mnt"
fi
note "ok"
