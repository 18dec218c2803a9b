#!/bin/bash
# tgt-4k.sh: tgtd LUNs with 4096-byte logical blocks beside a 512-byte
# one.  Sizes, st_blksize, dd round trip (also with reads not aligned to
# 4 KiB), random unaligned writes (read-modify-write of 4 KiB edge blocks)
# equal the backing file, end-of-file rules.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm iscsi-readcapacity16

iqn=$IQN_PREFIX:fourk
tgt_start
tgt_add_target 1 "$iqn"
make_file "$TEST_TMPDIR/lun1.img" 32M random
make_file "$TEST_TMPDIR/lun2.img" $((1001 * 4096)) random
make_file "$TEST_TMPDIR/lun3.img" 4M random
tgt_add_lun 1 1 "$TEST_TMPDIR/lun1.img" 4096
tgt_add_lun 1 2 "$TEST_TMPDIR/lun2.img" 4096
tgt_add_lun 1 3 "$TEST_TMPDIR/lun3.img" 512
tgt_allow_all 1
assert_lun "$TGT_URL/$iqn/1" $((32 << 20)) 4096
assert_lun "$TGT_URL/$iqn/2" $((1001 * 4096)) 4096
assert_lun "$TGT_URL/$iqn/3" $((4 << 20)) 512

require_iscsifs
mnt=$TEST_TMPDIR/mnt
mount_iscsifs "$TGT_URL/$iqn" "$mnt"
check_names "$mnt" "lun1 lun2 lun3"
check_size "$mnt/lun1" $((32 << 20))
check_size "$mnt/lun2" $((1001 * 4096))
check_size "$mnt/lun3" $((4 << 20))
check_blksize "$mnt/lun1" 4096
check_blksize "$mnt/lun2" 4096
assert_same_file "$mnt/lun2" "$TEST_TMPDIR/lun2.img" "initial content of lun2"
check_dd_roundtrip "$mnt/lun1" "$TEST_TMPDIR/lun1.img" "$TEST_TMPDIR/work"
check_random "$mnt/lun1" "$TEST_TMPDIR/lun1.img" 4096
check_random "$mnt/lun2" "$TEST_TMPDIR/lun2.img" 4096 20000
check_edges "$mnt/lun2" 4096
check_random "$mnt/lun3" "$TEST_TMPDIR/lun3.img" 512 20000
unmount_iscsifs "$mnt"
tgt_wait_sessions 1 0 10
note "ok"
