#!/bin/bash
# tgt-basic.sh: tgtd with several 512-byte-block LUNs (LUN numbers with a
# gap, one with an odd size).  Names and sizes in the mount, LUN 0
# (controller) skipped, sequential dd round trip, random unaligned writes
# equal the backing file, end-of-file rules (with -o cache too), the
# target/LUN URL form, and
# a clean logout and exit 0 on fusermount3 -u.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm iscsi-readcapacity16 iscsi-inq

iqn=$IQN_PREFIX:basic
tgt_start
tgt_add_target 1 "$iqn"
make_file "$TEST_TMPDIR/lun1.img" 64M random
make_file "$TEST_TMPDIR/lun2.img" 8M random
make_file "$TEST_TMPDIR/lun5.img" $((20011 * 512)) random   # not a power of two
tgt_add_lun 1 1 "$TEST_TMPDIR/lun1.img"
tgt_add_lun 1 2 "$TEST_TMPDIR/lun2.img"
tgt_add_lun 1 5 "$TEST_TMPDIR/lun5.img"
tgt_allow_all 1
assert_lun "$TGT_URL/$iqn/1" $((64 << 20)) 512
assert_lun "$TGT_URL/$iqn/2" $((8 << 20)) 512
assert_lun "$TGT_URL/$iqn/5" $((20011 * 512)) 512

require_iscsifs
mnt=$TEST_TMPDIR/mnt

# Target form, in the foreground so that the exit status can be checked.
mount_iscsifs_fg "$TGT_URL/$iqn" "$mnt"
check_names "$mnt" "lun1 lun2 lun5"
check_size "$mnt/lun1" $((64 << 20))
check_size "$mnt/lun2" $((8 << 20))
check_size "$mnt/lun5" $((20011 * 512))
check_blksize "$mnt/lun1" 512
for n in 1 2 5; do
    assert_same_file "$mnt/lun$n" "$TEST_TMPDIR/lun$n.img" "initial content of lun$n"
done
check_dd_roundtrip "$mnt/lun1" "$TEST_TMPDIR/lun1.img" "$TEST_TMPDIR/work"
check_random "$mnt/lun1" "$TEST_TMPDIR/lun1.img" 512
check_random "$mnt/lun5" "$TEST_TMPDIR/lun5.img" 512 65536
check_edges "$mnt/lun5" 512
check_edges "$mnt/lun2" 512
(($(tgt_session_count 1) >= 1)) || fail "no session on the target while mounted"
unmount_iscsifs "$mnt"
tgt_wait_sessions 1 0 10
note "unmounted: iscsifs exited 0 and logged out"

# -o cache (the page cache, written through): the same end-of-file rules
# (before, with the kernel's writeback cache, a write past the end
# succeeded, grew the file, and made the fsync of the block before it fail
# with ENOSPC: that block never reached the target), random unaligned
# writes reach the target.
mount_iscsifs "$TGT_URL/$iqn" "$mnt" -o cache
check_edges "$mnt/lun5" 512
check_random "$mnt/lun5" "$TEST_TMPDIR/lun5.img" 512 65536
check_size "$mnt/lun5" $((20011 * 512))
unmount_iscsifs "$mnt"
tgt_wait_sessions 1 0 10

# Target/LUN form, daemonized: only that LUN.
mount_iscsifs "$TGT_URL/$iqn/2" "$mnt"
check_names "$mnt" "lun2"
check_size "$mnt/lun2" $((8 << 20))
assert_same_file "$mnt/lun2" "$TEST_TMPDIR/lun2.img" "content of lun2 (LUN form)"
check_random "$mnt/lun2" "$TEST_TMPDIR/lun2.img" 512 65536
unmount_iscsifs "$mnt"
tgt_wait_sessions 1 0 10
note "ok"
