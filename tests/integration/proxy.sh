#!/bin/bash
# proxy.sh: network faults between iscsifs and tgtd, made by
# tests/lib/faultproxy.py, while 4 writers (up to 16 KiB, unaligned, own
# regions) and 2 verifying readers run through a mount with two sessions
# and short keepalive and command timeouts.  One after the other:
#   drop 100       each connection is closed 100 bytes into the target's
#                  next bytes (inside a PDU: a Data-In, a response)
#   drop 20 rst    the same, 20 bytes in (inside a header), with a reset
#   drop           every connection closed at once
#   blackhole 5 s  nothing forwarded, nothing closed: the keepalive finds
#                  the connections dead, the new logins wait
#   trickle        64 KiB/s each way for 5 s: slower, but I/O goes on
#   bytewise       one byte per segment for 4 s: I/O goes on
#   reset-login 3  then drop: the next 3 connections are reset during
#                  login; the sessions get in on later tries
#   hold 1.5       one connection gets stuck at the next write command
#                  sent on it; 1.5 s after iscsifs gave up
#                  on it (keepalive), what it had sent on it reaches the
#                  target after all, as TCP retransmits it once a path
#                  is back.  Here the writers keep to 16 KiB each, so they
#                  overwrite their recent writes all the time, and stop
#                  0.5 s after the connection was given up: a write that
#                  was sent again on the other session and then
#                  overwritten must not be undone by its stale first copy.
#                  At least that write is among the late bytes.
# For each: the fault really happened (the proxy's counters; reconnects
# counted by iscsifs where a connection was lost), no read or write
# fails, I/O resumes on every writer within RESUME_MAX_SECS of the fault
# ending, the daemon runs and the mount answers.  At the end the LUN file
# and the backing file equal what was written, byte for byte, and fio
# --verify=crc32c through the proxy is clean.  Last, a blackhole longer
# than -o timeout=10: a read in flight fails with EIO no sooner than the
# timeout and no later than noop_interval + noop_timeout + timeout + 5 s
# after the blackhole began; once it ends, I/O works again without
# remounting; the unmount exits 0.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/faults.sh
. "$top_srcdir/tests/lib/faults.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm fio

NOOP_INTERVAL=1
NOOP_TIMEOUT=2
CMD_TIMEOUT=8
TIMEOUT=10
# From the end of a fault to every writer having done some more I/O: a
# lost connection is noticed within NOOP_INTERVAL + NOOP_TIMEOUT, the
# new login comes after DefaultTime2Wait (2 s) and a few tries of the
# backoff (2.5 s at most each); the rest is margin for a loaded machine.
RESUME_MAX_SECS=${RESUME_MAX_SECS:-20}

iqn=$IQN_PREFIX:proxy
backing=$TEST_TMPDIR/lun1.img
mnt=$TEST_TMPDIR/mnt
file=$mnt/lun1

tgt_start
make_file "$backing" 64M random
tgt_add_target 1 "$iqn"
tgt_add_lun 1 1 "$backing"
tgt_allow_all 1
faultproxy_start "$LOOPBACK4:$TGT_PORT"
mount_iscsifs_fg "$PROXY_URL/$iqn" "$mnt" -o "sessions=2,noop_interval=$NOOP_INTERVAL,noop_timeout=$NOOP_TIMEOUT,cmd_timeout=$CMD_TIMEOUT,timeout=$TIMEOUT"
tgt_wait_sessions 1 2

faultio_start "$file" "$backing" --writers 4 --readers 2 --region $((4 << 20)) \
    --max-len 16384
faultio_wait_ops 200 60 "I/O through the proxy"

# resumed WHAT: every writer does some more I/O within RESUME_MAX_SECS,
# and the mount is alive.
resumed() {
    faultio_wait_each 5 "$RESUME_MAX_SECS" "$1"
    check_mount_alive "$mnt"
    note "$1: every writer resumed; $(faultproxy_ctl status)"
}

# wait_stat KEY N SECS WHAT: the proxy's counter KEY reaches N.
wait_stat() {
    local i v
    for ((i = 0; i < $3 * 10; i++)); do
        v=$(faultproxy_stat "$1")
        ((v >= $2)) && return 0
        sleep 0.1
    done
    fail "$4: the proxy's $1 is $v after $3 s, expected $2"
}

# wait_reconnects N WHAT: iscsifs counts N reconnects in all (30 s).
wait_reconnects() {
    local i n
    for ((i = 0; i < 300; i++)); do
        n=$(session_reconnects "$mnt")
        ((n >= $1)) && return 0
        sleep 0.1
    done
    fail "$2: $n reconnects counted after 30 s, expected $1"
}

# drop_case ARGS...: `drop ARGS`, each open connection must be cut.
drop_case() {
    local what="drop $*" drops open rec
    drops=$(faultproxy_stat drops)
    open=$(faultproxy_stat open)
    rec=$(session_reconnects "$mnt")
    note "$what: $open connections open"
    faultproxy_ctl drop "$@" >/dev/null
    wait_stat drops $((drops + open)) 20 "$what"
    wait_reconnects $((rec + open)) "$what"
    resumed "$what"
}

drop_case 100
drop_case 20 rst
drop_case

note "blackhole for 5 s"
rec=$(session_reconnects "$mnt")
faultproxy_ctl blackhole >/dev/null
sleep 5
faultproxy_ctl pass >/dev/null
wait_reconnects $((rec + 1)) "blackhole"
resumed "blackhole"

for mode in "trickle 65536" "bytewise 20"; do
    secs=5
    [[ $mode == bytewise* ]] && secs=4
    note "$mode for $secs s"
    read -r ops_before _ < <(faultio_counts)
    faultproxy_ctl $mode >/dev/null
    sleep "$secs"
    read -r ops_during _ < <(faultio_counts)
    faultproxy_ctl pass >/dev/null
    ((ops_during > ops_before)) || fail "$mode: no I/O completed in $secs s"
    note "$mode: $((ops_during - ops_before)) operations in $secs s"
    resumed "$mode"
done

note "reset-login 3, then every connection dropped"
resets=$(faultproxy_stat resets)
rec=$(session_reconnects "$mnt")
faultproxy_ctl reset-login 3 >/dev/null
faultproxy_ctl drop >/dev/null
wait_stat resets $((resets + 3)) 30 "reset-login"
wait_reconnects $((rec + 2)) "reset-login"
resumed "reset-login"

faultio_finish 60

note "hold 1.5"
gaveup=$(faultproxy_stat gaveup)
late_writes=$(faultproxy_stat late_writes)
late=$(faultproxy_stat late)
faultio_start "$file" "$backing" --writers 4 --region $((4 << 20)) --max-len 4096 \
    --hot 16384 --settle 4
faultio_wait_ops 200 60 "I/O before the hold"
faultproxy_ctl hold 1.5 >/dev/null
wait_stat gaveup $((gaveup + 1)) "$RESUME_MAX_SECS" "hold"
sleep 0.5
faultio_finish 60
wait_stat late $((late + 1)) 10 "hold"
check_mount_alive "$mnt"
note "hold: $(faultproxy_ctl status)"
(($(faultproxy_stat late_writes) > late_writes)) ||
    fail "hold: no write was among the bytes delivered late"
check_fio_verify "$file"

note "blackhole longer than timeout=$TIMEOUT"
t "$PYTHON" "$FAULTIO_PY" blocked "$file" --op read --offset 40000000 --length 65536 \
    --deadline 60 >"$TEST_TMPDIR/blocked-read" 2>&1 &
rpid=$!
sleep 1
kill -0 "$rpid" || fail "the looping read ended before the blackhole"
started=$(date +%s.%N)
faultproxy_ctl blackhole >/dev/null
limit=$((NOOP_INTERVAL + NOOP_TIMEOUT + TIMEOUT + 5))
for ((i = 0; i < (limit + 5) * 10; i++)); do
    kill -0 "$rpid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$rpid" 2>/dev/null && fail "a read is still blocked $(elapsed "$started") s into the blackhole"
wait "$rpid" || fail "the blocked read: $(cat "$TEST_TMPDIR/blocked-read")"
out=$(cat "$TEST_TMPDIR/blocked-read")
[[ $out == errno=EIO\ * ]] || fail "the blocked read ended with '$out', not EIO"
at=${out#*at=}
at=${at%% *}
secs=$(awk -v s="$started" -v e="$at" 'BEGIN { printf "%.1f", e - s }')
note "the read failed with EIO $secs s into the blackhole"
secs_le "$TIMEOUT" "$secs" || fail "the read failed $secs s into the blackhole, before the timeout"
secs_le "$secs" "$limit" || fail "the read failed $secs s into the blackhole (limit $limit s)"
check_mount_alive "$mnt"
faultproxy_ctl pass >/dev/null
ended=$(date +%s.%N)
out=$(t "$PYTHON" "$FAULTIO_PY" until-ok "$file" --op read --offset 0 --length 65536 \
    --deadline 60 2>&1) || fail "no read succeeded after the blackhole: $out"
note "I/O works again $(elapsed "$ended") s after the blackhole ($out)"
assert_same_file "$file" "$backing" "the LUN after the blackhole"
tgt_wait_sessions 1 2 30
unmount_iscsifs "$mnt"
note "ok"
