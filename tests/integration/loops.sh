#!/bin/bash
# loops.sh: -o loops=K (issue 13, the event loops over the FUSE device).
# With loops=1 and loops=3 a mount serves concurrent writers and readers
# correctly; at rest only loop 0 watches the FUSE device and no other loop
# was asked to; its statistics file names K loops, each with its counters,
# and the loops together handled at least the requests made; loops=3 runs
# exactly two threads more than loops=1; the statistics count the loops'
# logins and, for the numeric portal, no host name lookup.  On a discovery mount with one
# loop, the first look into a target's directory (which logs in) runs on a
# helper thread (helper_jobs counts it) and answers.  A bad value is
# refused in badinput.sh.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless tgtd tgtadm

# stat_line FILE KEY [SECTION]: the value of the first line KEY (after the
# header line SECTION, e.g. "loop 1", when given).
stat_line() {
    awk -v key="$2" -v sec="${3:-}" '
        /^(lun|session|loop) / { cur = ($1 " " $2) }
        (sec == "" || cur == sec) && $1 == key { print $2; exit }' "$1"
}

# threads_of MNT: the threads of the iscsifs process serving MNT.
threads_of() {
    local pid
    pid=$(iscsifs_pids "$1")
    [[ $pid =~ ^[0-9]+$ ]] || fail "no single iscsifs process for $1: '$pid'"
    ls "/proc/$pid/task" | wc -l
}

iqn=$IQN_PREFIX:loops
tgt_start
tgt_add_target 1 "$iqn"
make_file "$TEST_TMPDIR/lun1.img" 32M random
tgt_add_lun 1 1 "$TEST_TMPDIR/lun1.img"
tgt_allow_all 1
mnt=$TEST_TMPDIR/mnt
declare -A threads

for k in 1 3; do
    mount_iscsifs "$TGT_URL/$iqn" "$mnt" -o "loops=$k,sessions=2"
    # at rest only loop 0 watches the FUSE device (the others join while
    # it is busy: fuse_loop.c, the spill)
    cp "$mnt/.iscsifs/stats" "$TEST_TMPDIR/stats.rest"
    for ((i = 0; i < k; i++)); do
        assert_eq $((i == 0)) "$(stat_line "$TEST_TMPDIR/stats.rest" watching "loop $i")" \
            "loops=$k: loop $i watching the device at rest"
        assert_eq 0 "$(stat_line "$TEST_TMPDIR/stats.rest" spills "loop $i")" \
            "loops=$k: loop $i asked to watch at rest"
    done
    check_concurrent "$mnt/lun1" "$TEST_TMPDIR/lun1.img" 512
    t dd if="$mnt/lun1" of=/dev/null bs=64k count=100 status=none || fail "loops=$k: reads failed"
    # counted once I/O was served: the mount is visible before the daemon
    # has started its loops (slower under ThreadSanitizer)
    threads[$k]=$(threads_of "$mnt")
    note "loops=$k: ${threads[$k]} threads"
    cp "$mnt/.iscsifs/stats" "$TEST_TMPDIR/stats.$k"
    assert_eq "$k" "$(stat_line "$TEST_TMPDIR/stats.$k" loops)" "loops=$k: loops in the stats"
    [[ -n $(stat_line "$TEST_TMPDIR/stats.$k" helper_jobs) ]] || fail "loops=$k: no helper_jobs"
    for key in loop_logins loop_logins_ok; do
        [[ $(stat_line "$TEST_TMPDIR/stats.$k" $key) =~ ^[0-9]+$ ]] || fail "loops=$k: no $key"
    done
    # a numeric portal is never looked up on the resolver thread
    assert_eq 0 "$(stat_line "$TEST_TMPDIR/stats.$k" name_lookups)" "loops=$k: name_lookups"
    total=0
    for ((i = 0; i < k; i++)); do
        r=$(stat_line "$TEST_TMPDIR/stats.$k" requests "loop $i")
        w=$(stat_line "$TEST_TMPDIR/stats.$k" wakeups "loop $i")
        [[ $r =~ ^[0-9]+$ && $w =~ ^[0-9]+$ ]] || fail "loops=$k: loop $i has no counters"
        ((r == 0 || w > 0)) || fail "loops=$k: loop $i handled $r requests in no wake-up"
        total=$((total + r))
    done
    [[ -z $(stat_line "$TEST_TMPDIR/stats.$k" requests "loop $k") ]] ||
        fail "loops=$k: a loop $k in the stats"
    ((total >= 100)) || fail "loops=$k: the loops handled $total requests, fewer than the 100 reads"
    unmount_iscsifs "$mnt"
done
assert_eq 2 $((threads[3] - threads[1])) "threads added by loops=3 over loops=1"

# A discovery mount with one loop: listing the target's directory logs
# in, on a helper.
mount_iscsifs "$TGT_URL/" "$mnt" -o loops=1,sessions=1
got=$(t ls -1 "$mnt/$iqn") || fail "listing $mnt/$iqn failed"
assert_eq "lun1" "$got" "entries of the discovered target"
t cmp -n 1M "$mnt/$iqn/lun1" "$TEST_TMPDIR/lun1.img" || fail "the discovered lun1 differs"
jobs=$(stat_line "$mnt/.iscsifs/stats" helper_jobs)
((jobs >= 1)) || fail "the first look into $iqn ran on no helper (helper_jobs '$jobs')"
unmount_iscsifs "$mnt"
note "ok"
