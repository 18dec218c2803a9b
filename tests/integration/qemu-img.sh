#!/bin/bash
# qemu-img.sh: for each target configuration, qemu-img convert of the LUN
# (libiscsi, an independent initiator) equals what the mount reads and the
# backing file, after writes through the mount; qemu-io's writes are seen by
# the mount; qemu-img compare agrees.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
skip_unless qemu-img qemu-io

for cfg in ${CONFIGS:-$ALL_CONFIGS}; do
    setup_config "$cfg" "$TEST_TMPDIR/$cfg"
    require_iscsifs
    mount_iscsifs "$CFG_URL" "$TEST_TMPDIR/$cfg/mnt"
    check_qemu_img "$TEST_TMPDIR/$cfg/mnt/$CFG_FILE" "$CFG_LUN_URL" \
        "$CFG_BACKING" "$TEST_TMPDIR/$cfg/work"
    unmount_iscsifs "$TEST_TMPDIR/$cfg/mnt"
done
note "ok"
