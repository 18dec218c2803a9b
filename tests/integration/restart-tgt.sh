#!/bin/bash
# restart-tgt.sh: tgtd killed with SIGKILL while 8 writers have writes in
# flight, and started again 3 s later on the same portal with the same
# target, LUN (same backing file) and ACL.  With the default replacement
# timeout (120 s) the outage is only slower I/O: every writer finishes
# with success, no write or read fails; the LUN file and the backing file
# equal what was written, byte for byte; every writer had a write
# outstanding through the outage; all 4 sessions log in again (tgtd sees
# 4); fio --verify=crc32c is clean afterwards; the unmount exits 0.
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
    tgt_wait_sessions 1 4 30
    note "tgtd sees all 4 sessions again"
}

tgt_start
make_file "$backing" 64M random
configure
mount_iscsifs_fg "$TGT_URL/$iqn" "$mnt" -o sessions=4
tgt_wait_sessions 1 4
restart_check "$mnt" "$mnt/lun1" "$backing" tgt_kill restart all_sessions_back
unmount_iscsifs "$mnt"
note "ok: reconnect latency $RECONNECT_LATENCY s"
