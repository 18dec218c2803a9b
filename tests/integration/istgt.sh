#!/bin/bash
# istgt.sh: istgt with InitialR2T Yes, ImmediateData No, MaxOutstandingR2T
# 4, FirstBurstLength 8192, MaxBurstLength 16384, two LUNs (istgt's LUN 0
# is a disk) and a second target with 4096-byte blocks.  Names and sizes,
# dd round trip, random unaligned writes up to 1 MiB, end-of-file rules.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless istgt iscsi-readcapacity16 iscsi-inq

make_file "$TEST_TMPDIR/lun0.img" 64M random
make_file "$TEST_TMPDIR/lun1.img" $((12345 * 512)) random
make_file "$TEST_TMPDIR/fourk.img" 16M random
istgt_start auto "$TEST_TMPDIR/istgt" \
    target=disk "lun0=$TEST_TMPDIR/lun0.img" "lun1=$TEST_TMPDIR/lun1.img" \
    target=fourk blocklength=4096 "lun0=$TEST_TMPDIR/fourk.img"
iqn=$ISTGT_IQN
iqn4k=$IQN_PREFIX:fourk
assert_lun "$ISTGT_URL/$iqn/0" $((64 << 20)) 512
assert_lun "$ISTGT_URL/$iqn/1" $((12345 * 512)) 512
assert_lun "$ISTGT_URL/$iqn4k/0" $((16 << 20)) 4096
assert_negotiated "$ISTGT_URL/$iqn/0" InitialR2T=Yes ImmediateData=No \
    FirstBurstLength=8192 MaxBurstLength=16384

require_iscsifs
mnt=$TEST_TMPDIR/mnt
mount_iscsifs "$ISTGT_URL/$iqn" "$mnt"
check_names "$mnt" "lun0 lun1"
check_size "$mnt/lun0" $((64 << 20))
check_size "$mnt/lun1" $((12345 * 512))
assert_same_file "$mnt/lun1" "$TEST_TMPDIR/lun1.img" "initial content of lun1"
check_dd_roundtrip "$mnt/lun0" "$TEST_TMPDIR/lun0.img" "$TEST_TMPDIR/work"
check_random "$mnt/lun0" "$TEST_TMPDIR/lun0.img" 512 $((1 << 20))
check_random "$mnt/lun1" "$TEST_TMPDIR/lun1.img" 512 65536
check_edges "$mnt/lun1" 512
unmount_iscsifs "$mnt"

mount_iscsifs "$ISTGT_URL/$iqn4k" "$mnt"
check_names "$mnt" "lun0"
check_size "$mnt/lun0" $((16 << 20))
check_blksize "$mnt/lun0" 4096
check_random "$mnt/lun0" "$TEST_TMPDIR/fourk.img" 4096 $((1 << 20))
check_edges "$mnt/lun0" 4096
unmount_iscsifs "$mnt"
note "ok"
