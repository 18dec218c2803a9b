#!/bin/bash
# portals.sh: a target with two portals (istgt, one portal group holding
# 127.0.0.1:P1 and 127.0.0.1:P2), mounted through discovery:
#   - --list shows both portals of the target;
#   - the two sessions of the pool spread over them, one connection each;
#   - the target comes back without its first portal while a write waits:
#     the session of P1 fails over to P2, the write lands, both sessions
#     end up on P2, and the LUN holds exactly what was written.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
skip_unless istgt ss

make_file "$TEST_TMPDIR/lun0.img" 32M random
p2=$(pick_port)
[[ -n $p2 ]] || fail "no free port for the second portal"
istgt_start auto "$TEST_TMPDIR/istgt" "portal2=$p2" target=mp "lun0=$TEST_TMPDIR/lun0.img"
p1=$ISTGT_PORT
wait_for_port "$LOOPBACK4" "$p2" 15 "$ISTGT_PID" || fail "istgt does not listen on $p2"

require_iscsifs
out=$(t "$ISCSIFS" --list "$ISTGT_URL/" 2>&1) || fail "--list failed: $out"
for p in "$p1" "$p2"; do
    grep -q "portal $LOOPBACK4:$p," <<<"$out" || fail "--list does not show portal $p: $out"
done

# conns_to PORT: established TCP connections to 127.0.0.1:PORT.
conns_to() {
    ss -Htn state established "( dst $LOOPBACK4 and dport = :$1 )" 2>/dev/null | grep -c ''
}

# wait_conns P1N P2N SECS: wait until there are P1N connections to P1 and
# P2N to P2; fail after SECS seconds.
wait_conns() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        [[ $(conns_to "$p1") == "$1" && $(conns_to "$p2") == "$2" ]] && return 0
        sleep 0.1
    done
    fail "expected $1 connections to port $p1 and $2 to $p2; there are $(conns_to "$p1") and $(conns_to "$p2")"
}

mnt=$TEST_TMPDIR/mnt
mount_iscsifs "$ISTGT_URL/" "$mnt" -o sessions=2,timeout=60
lun=$mnt/$ISTGT_IQN/lun0
assert_same_file "$lun" "$TEST_TMPDIR/lun0.img" "lun0 through discovery"
wait_conns 1 1 10
note "one session on each portal"

# The target goes away and comes back with the second portal only; a
# write waits meanwhile.
head -c $((4 << 20)) /dev/urandom >"$TEST_TMPDIR/pattern"
istgt_kill
sed -i '/Portal DA1 /d' "$ISTGT_CONF"
t dd if="$TEST_TMPDIR/pattern" of="$lun" bs=1M seek=8 conv=notrunc,fsync status=none &
writer=$!
sleep 3
kill -0 "$writer" 2>/dev/null || fail "the write finished while the target was down"
ISTGT_PORT=$p2
istgt_restart
wait "$writer" || fail "the write waiting for the target failed"
wait_conns 0 2 30
note "both sessions on portal $p2"
# (a connection is up a moment before its login completes and counts)
for ((i = 0; i < 100; i++)); do
    stats=$(t cat "$mnt/.iscsifs/stats") || fail "cannot read the statistics"
    back=$(awk '$1 == "reconnects" && $2 >= 1 { n++ } END { print n + 0 }' <<<"$stats")
    ((back == 2)) && break
    sleep 0.1
done
((back == 2)) || fail "$back of the 2 sessions count a reconnect: $stats"
grep -q "DA1" "$ISTGT_CONF" && fail "the first portal is still configured"
cmp -s <(tail -c +$(((8 << 20) + 1)) "$TEST_TMPDIR/lun0.img" | head -c $((4 << 20))) \
    "$TEST_TMPDIR/pattern" || fail "the backing file does not hold the write"
assert_same_file "$lun" "$TEST_TMPDIR/lun0.img" "lun0 after the fail-over"
unmount_iscsifs "$mnt"
note "ok"
