#!/bin/bash
# unmount-dead.sh: an unmount while the targets have stopped answering
# waits for their Logouts once, not once per session and per target.
# tgtd with four targets; a discovery mount with sessions=2 opens each
# (eight sessions; no keepalives, which would find the connections dead
# and end the wait early); tgtd is stopped (SIGSTOP: the connections stay
# up, nothing is answered) and the mount is unmounted at once.  The daemon
# must end within 15 s: each Logout is given 5 s, and one after the other
# they took 8 x 5 s.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
skip_unless tgtd tgtadm

mnt=$TEST_TMPDIR/mnt
tgt_start
for tid in 1 2 3 4; do
    tgt_add_target $tid "$IQN_PREFIX:dead$tid"
    make_file "$TEST_TMPDIR/dead$tid.img" 4M random
    tgt_add_lun $tid 1 "$TEST_TMPDIR/dead$tid.img"
    tgt_allow_all $tid
done
mount_iscsifs_fg "$TGT_URL/" "$mnt" -o sessions=2,noop_interval=0
daemon=$ISCSIFS_FG_PID
for tid in 1 2 3 4; do
    t cmp -n 65536 "$mnt/$IQN_PREFIX:dead$tid/lun1" "$TEST_TMPDIR/dead$tid.img" ||
        fail "dead$tid: lun1 does not read as its backing file"
done
for tid in 1 2 3 4; do
    tgt_wait_sessions $tid 2
done
note "4 targets open, 2 sessions each"

kill -STOP "$TGT_PID"
start=$(date +%s%N)
out=$(timeout 30 fusermount3 -u "$mnt" 2>&1) || fail "fusermount3 -u: ${out:-timed out}"
_unregister_mount "$mnt"
for ((i = 0; i < 600; i++)); do
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
done
ms=$((($(date +%s%N) - start) / 1000000))
kill -CONT "$TGT_PID"
kill -0 "$daemon" 2>/dev/null && fail "iscsifs still running 60 s after the unmount"
wait "$daemon"
rc=$?
((rc == 0)) || fail "iscsifs exited with status $rc after the unmount: $(tail -n 20 "$ISCSIFS_LOG")"
note "the daemon ended $ms ms after the unmount began"
((ms < 15000)) || fail "the unmount took $ms ms with the target stopped (8 Logouts one after the other)"
if grep -Eq 'runtime error:|AddressSanitizer|LeakSanitizer|ThreadSanitizer' "$ISCSIFS_LOG"; then
    fail "sanitizer report in the iscsifs log"
fi
note "ok"
