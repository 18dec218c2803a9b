#!/bin/bash
# restart-istgt.sh: istgt killed with SIGKILL while 8 writers have writes
# in flight, and started again 3 s later with the same configuration (same
# port, target, LUN and backing file; istgt's InitialR2T=Yes,
# ImmediateData=No configuration of targets.sh, so every write was
# waiting on R2Ts).  With the default replacement timeout (120 s) the
# outage is only slower I/O: every writer finishes with success, no write
# or read fails; the LUN file and the backing file equal what was written,
# byte for byte; every writer had a write outstanding through the outage;
# every session logs in again; fio --verify=crc32c is clean afterwards;
# the unmount exits 0.  Prints the reconnect latency (target back -> first
# I/O completed).
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/faults.sh
. "$top_srcdir/tests/lib/faults.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless istgt fio

backing=$TEST_TMPDIR/lun0.img
mnt=$TEST_TMPDIR/mnt

# all_sessions_back: every session counts a reconnect within 30 s (istgt
# takes about a second per login, one after the other).
all_sessions_back() {
    local per n i ok
    for ((i = 0; i < 300; i++)); do
        per=$(awk '$1 == "reconnects" { printf "%s ", $2 }' "$mnt/.iscsifs/stats")
        ok=1
        for n in $per; do ((n >= 1)) || ok=0; done
        ((ok)) && break
        sleep 0.1
    done
    ((ok)) || fail "not every session reconnected within 30 s (reconnects per session: $per)"
    note "every session reconnected (reconnects per session: $per)"
}

make_file "$backing" 64M random
istgt_start auto "$TEST_TMPDIR/istgt" target=disk "lun0=$backing"
mount_iscsifs_fg "$ISTGT_URL/$ISTGT_IQN" "$mnt" -o sessions=4
restart_check "$mnt" "$mnt/lun0" "$backing" istgt_kill istgt_restart all_sessions_back
unmount_iscsifs "$mnt"
note "ok: reconnect latency $RECONNECT_LATENCY s"
