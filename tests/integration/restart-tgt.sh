#!/bin/bash
# restart-tgt.sh: tgtd killed with SIGKILL while 8 writers have writes in
# flight, and started again 3 s later on the same portal with the same
# target, LUN (same backing file) and ACL.  With the default replacement
# timeout (120 s) the outage is only slower I/O: every writer finishes
# with success, no write or read fails; the LUN file and the backing file
# equal what was written, byte for byte; every writer had a write
# outstanding through the outage; all sessions log in again (tgtd sees
# them all); fio --verify=crc32c is clean afterwards; the unmount exits 0.
# Done with -o sessions=4 and again with sessions=8 (the more sessions,
# the more of them a command can be handed to while, one after the
# other, they notice the target is gone: none of that may cost it a try).
# Prints the reconnect latency (target back -> first I/O completed).
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/faults.sh
. "$top_srcdir/tests/lib/faults.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm fio

iqn=$IQN_PREFIX:restart
backing=$TEST_TMPDIR/lun1.img
mnt=$TEST_TMPDIR/mnt

# configure: the target as at the start, also after the restart.
configure() {
    tgt_add_target 1 "$iqn"
    tgt_add_lun 1 1 "$backing"
    tgt_allow_all 1
}

restart() {
    tgt_restart
    configure
}

all_sessions_back() {
    tgt_wait_sessions 1 "$sessions" 30
    note "tgtd sees all $sessions sessions again"
}

tgt_start
make_file "$backing" 64M random
configure
latencies=""
for sessions in 4 8; do
    mount_iscsifs_fg "$TGT_URL/$iqn" "$mnt" -o "sessions=$sessions"
    tgt_wait_sessions 1 "$sessions"
    restart_check "$mnt" "$mnt/lun1" "$backing" tgt_kill restart all_sessions_back
    unmount_iscsifs "$mnt"
    latencies+=" $RECONNECT_LATENCY s (sessions=$sessions)"
done
note "ok: reconnect latency$latencies"
