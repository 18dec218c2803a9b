#!/bin/bash
# ext4.sh: for each target configuration (tgtd 512-byte, tgtd 4096-byte,
# tgtd tuned for R2T, istgt): mkfs.ext4 on the LUN file, mount -o loop,
# copy a tree, unmount, e2fsck -fn clean, mount again and compare.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
skip_unless mkfs.ext4 e2fsck losetup

for cfg in ${CONFIGS:-$ALL_CONFIGS}; do
    setup_config "$cfg" "$TEST_TMPDIR/$cfg"
    require_iscsifs
    mount_iscsifs "$CFG_URL" "$TEST_TMPDIR/$cfg/mnt"
    check_ext4 "$TEST_TMPDIR/$cfg/mnt/$CFG_FILE" "$TEST_TMPDIR/$cfg/work"
    unmount_iscsifs "$TEST_TMPDIR/$cfg/mnt"
    # The file system is on the target: check the backing file directly.
    out=$(t e2fsck -fn "$CFG_BACKING" 2>&1) || fail "e2fsck of the backing file: $out"
done
note "ok"
