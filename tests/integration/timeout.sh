#!/bin/bash
# timeout.sh: the replacement timeout, -o timeout=10, against tgtd killed
# with SIGKILL (two sessions).
#   A. Back within the timeout (restarted after 4 s): writers and a
#      verifying reader see slower I/O, no error; the data is verified
#      byte for byte; the reconnect latency (target back -> first I/O
#      completed) is at most RECONNECT_MAX_SECS.
#   B. Gone longer than the timeout: a read and a write that were running
#      when the target died (each in a loop, so one is in flight) fail
#      with EIO no sooner than 10 s and no later than 15 s (timeout + 5 s)
#      after the kill, in the call that was blocked since the kill; new
#      I/O then fails with EIO at once (its first call, within 3 s)
#      instead of waiting; the daemon is still running and the mount
#      still answers.  The target is restarted (same portal, target, LUN,
#      backing file): I/O works again without remounting, within
#      RECONNECT_MAX_SECS of the target being back; what was written
#      before the loss is still there; a write after it lands; the
#      unmount exits 0.
# The latencies are printed.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/faults.sh
. "$top_srcdir/tests/lib/faults.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm

TIMEOUT=10
# Target back -> first I/O completed.  The daemon tries to log in again
# at most every 2.5 s (2 s and jitter), a login takes milliseconds here:
# 6 s leaves room for a loaded machine.
RECONNECT_MAX_SECS=${RECONNECT_MAX_SECS:-6}

iqn=$IQN_PREFIX:timeout
backing=$TEST_TMPDIR/lun1.img
mnt=$TEST_TMPDIR/mnt
file=$mnt/lun1

configure() {
    tgt_add_target 1 "$iqn"
    tgt_add_lun 1 1 "$backing"
    tgt_allow_all 1
}

restart() {
    tgt_restart
    configure
}

tgt_start
make_file "$backing" 32M random
configure
mount_iscsifs_fg "$TGT_URL/$iqn" "$mnt" -o "timeout=$TIMEOUT,sessions=2"
tgt_wait_sessions 1 2

# --- A: back within the timeout --------------------------------------------
note "A: target killed and back after 4 s, within timeout=$TIMEOUT"
faultio_start "$file" "$backing" --writers 4 --readers 1 --region $((4 << 20)) \
    --back "$TEST_TMPDIR/faultio.back"
faultio_wait_ops 200 60 "I/O before the kill"
tgt_kill
sleep 4
restart
faultio_mark_back
faultio_wait_each 10 30 "writers after the restart"
faultio_finish 60
secs_le 3.5 "${FAULTIO[min_writer_max_latency]}" ||
    fail "a writer had no write outstanding during the outage (longest ${FAULTIO[min_writer_max_latency]} s)"
latency_a=${FAULTIO[reconnect_latency]}
note "A: reconnect latency $latency_a s (target back -> first I/O completed)"
secs_le "$latency_a" "$RECONNECT_MAX_SECS" ||
    fail "A: the first I/O completed $latency_a s after the target was back (limit $RECONNECT_MAX_SECS s)"
tgt_wait_sessions 1 2 30
assert_same_file "$file" "$backing" "the LUN after A"

# --- B: gone longer than the timeout ----------------------------------------
note "B: target killed for longer than timeout=$TIMEOUT"
# A write puts back what it read there first: the content stays.
t "$PYTHON" "$FAULTIO_PY" blocked "$file" --op write --offset 1048576 --length 65536 \
    --deadline 60 >"$TEST_TMPDIR/blocked-write" 2>&1 &
wpid=$!
t "$PYTHON" "$FAULTIO_PY" blocked "$file" --op read --offset 9437184 --length 131072 \
    --deadline 60 >"$TEST_TMPDIR/blocked-read" 2>&1 &
rpid=$!
sleep 1
kill -0 "$wpid" && kill -0 "$rpid" || fail "B: the looping read or write ended before the kill"
cp "$backing" "$TEST_TMPDIR/before-loss.img"
lost_at=$(date +%s.%N)
tgt_kill
for what in write read; do
    if [[ $what == write ]]; then pid=$wpid; else pid=$rpid; fi
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null &&
        fail "B: the $what is still blocked $(elapsed "$lost_at") s after the loss"
    wait "$pid" || fail "B: the blocked $what: $(cat "$TEST_TMPDIR/blocked-$what")"
    out=$(cat "$TEST_TMPDIR/blocked-$what")
    [[ $out == errno=EIO\ * ]] || fail "B: the blocked $what ended with '$out', not EIO"
    at=${out#*at=}
    at=${at%% *}
    secs=$(awk -v s="$lost_at" -v e="$at" 'BEGIN { printf "%.1f", e - s }')
    note "B: the blocked $what failed with EIO $secs s after the loss ($out)"
    secs_le "$TIMEOUT" "$secs" ||
        fail "B: the $what failed $secs s after the loss, before the timeout of $TIMEOUT s"
    secs_le "$secs" "$((TIMEOUT + 5))" ||
        fail "B: the $what failed $secs s after the loss, later than timeout + 5 s"
    # The call that failed is the one in flight at the loss.
    took=${out##*took=}
    secs_le "$(awk -v s="$secs" 'BEGIN { print s - 1.5 }')" "$took" ||
        fail "B: the failing $what took only $took s: it was not blocked since the loss"
done
# New I/O does not wait once the timeout has passed.
out=$(t "$PYTHON" "$FAULTIO_PY" blocked "$file" --op read --offset 0 --length 4096 \
    --deadline 10 2>&1) || fail "B: a new read after the timeout: $out"
[[ $out == errno=EIO\ *\ ops=0\ * ]] ||
    fail "B: a new read after the timeout ended with '$out', not EIO at once"
secs=${out##*took=}
secs_le "$secs" 3 || fail "B: a new read after the timeout took $secs s to fail"
note "B: a new read fails with EIO at once ($secs s)"
check_mount_alive "$mnt"
check_names_out=$(t ls "$mnt") || fail "B: ls $mnt failed"
[[ $check_names_out == *lun1* ]] || fail "B: ls $mnt shows '$check_names_out'"
assert_eq "$(to_bytes 32M)" "$(file_size "$file")" "st_size of $file while the target is gone"
note "B: daemon alive, mount answers, 'ls' and 'stat' work"

restart
back_at=$(date +%s.%N)
out=$(t "$PYTHON" "$FAULTIO_PY" until-ok "$file" --op write --offset 2097152 --length 4096 \
    --deadline 60 2>&1) || fail "B: no write succeeded after the target came back: $out"
at=${out#*at=}
at=${at%% *}
latency_b=$(awk -v s="$back_at" -v e="$at" 'BEGIN { printf "%.3f", e - s }')
note "B: reconnect latency $latency_b s (target back -> first I/O completed; $out)"
secs_le "$latency_b" "$RECONNECT_MAX_SECS" ||
    fail "B: the first I/O completed $latency_b s after the target was back (limit $RECONNECT_MAX_SECS s)"
assert_same_file "$file" "$TEST_TMPDIR/before-loss.img" "the LUN after the target came back"
make_file "$TEST_TMPDIR/after.bin" 1M random
t dd if="$TEST_TMPDIR/after.bin" of="$file" bs=64k seek=64 conv=notrunc,fsync status=none ||
    fail "B: a write after the target came back failed"
assert_same_file "$file" "$backing" "the LUN after a write once the target was back"
tgt_wait_sessions 1 2 30
unmount_iscsifs "$mnt"
note "ok: reconnect latency $latency_a s (back within the timeout), $latency_b s (after it)"
