#!/bin/bash
# concurrency.sh: for each target configuration, several concurrent
# writers on distinct byte ranges whose edges share blocks (a torn
# read-modify-write would show) and concurrent readers verifying a stable
# range; then the same with one session (-o sessions=1), where everything
# queues on one command window.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
require_python

for cfg in ${CONFIGS:-$ALL_CONFIGS}; do
    setup_config "$cfg" "$TEST_TMPDIR/$cfg"
    require_iscsifs
    mnt=$TEST_TMPDIR/$cfg/mnt
    mount_iscsifs "$CFG_URL" "$mnt"
    check_concurrent "$mnt/$CFG_FILE" "$CFG_BACKING" "$CFG_BS"
    unmount_iscsifs "$mnt"
    if [[ $cfg == tgt512 ]]; then
        mount_iscsifs "$CFG_URL" "$mnt" -o sessions=1
        WRITERS=6 check_concurrent "$mnt/$CFG_FILE" "$CFG_BACKING" "$CFG_BS"
        unmount_iscsifs "$mnt"
    fi
done
note "ok"
