# shellcheck shell=bash disable=SC2034,SC2120  # (globals are used by the tests; tgt_start takes optional args)
# tests/lib/targets.sh: the integration tests' library.
#
# What it owns: real iSCSI targets started for one test on 127.0.0.1 (tgtd
# from package tgt, istgt), the iscsifs mounts of that test, its temporary
# directory, and the cleanup of all of them.
#
# How a test uses it:
#
#     #!/bin/bash
#     . "${top_srcdir:-.}/tests/lib/targets.sh"
#     trap cleanup EXIT
#     require_root
#     skip_unless tgtd tgtadm
#     tgt_start                           # sets TGT_PORT, TGT_URL, ...
#     tgt_add_target 1 "$IQN_PREFIX:disk"
#     make_file "$TEST_TMPDIR/lun1.img" 64M random
#     tgt_add_lun 1 1 "$TEST_TMPDIR/lun1.img"
#     tgt_allow_all 1
#     mount_iscsifs "$TGT_URL/$IQN_PREFIX:disk" "$TEST_TMPDIR/mnt"
#     ...
#
# Conventions:
# - Every process this library starts (targets, foreground iscsifs, the
#   watchdog) and every mount it makes is recorded in files under
#   $TEST_TMPDIR, so helpers also work when called from a subshell, and
#   cleanup() undoes exactly those and nothing else: it never kills a
#   process by name.
# - Every external command that could block (target control, iscsifs, I/O
#   on a mount) runs under timeout(1); a watchdog ends the whole test after
#   $ISCSIFS_TEST_TIMEOUT seconds.  No test can hang.
# - Exit codes follow automake: 0 pass, 1 fail, 77 skip.
# - Environment a user may set:
#     ISCSIFS              the daemon (default $top_builddir/src/iscsifs)
#     ISCSIFS_WRAPPER      a prefix such as "valgrind --error-exitcode=99"
#     ISCSIFS_TEST_TIMEOUT whole-test watchdog, seconds (default 600)
#     ISCSIFS_START_TIMEOUT  seconds iscsifs may take to mount (default 60)
#     ISCSIFS_IO_TIMEOUT   seconds one I/O command may take (default 300)
#     KEEP_TEST_TMPDIR=1   keep the temporary directory for inspection
#     TMPDIR               where the temporary directory is made (/tmp)

# ---------------------------------------------------------------------------
# Globals

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir/build}"
export top_srcdir top_builddir

ISCSIFS=${ISCSIFS:-$top_builddir/src/iscsifs}
ISCSIFS_WRAPPER=${ISCSIFS_WRAPPER:-}
ISCSIFS_TEST_TIMEOUT=${ISCSIFS_TEST_TIMEOUT:-600}
ISCSIFS_START_TIMEOUT=${ISCSIFS_START_TIMEOUT:-60}
ISCSIFS_IO_TIMEOUT=${ISCSIFS_IO_TIMEOUT:-300}

# Target names every test uses: "$IQN_PREFIX:something".
IQN_PREFIX=iqn.2026-11.org.iscsifs.test

# The only addresses a test may use.
LOOPBACK4=127.0.0.1
LOOPBACK6=::1

TEST_NAME=$(basename "$0" .sh)
TEST_MAINPID=$$

# Where tgtd keeps its control sockets (socket.<control port>).
TGT_IPC_DIR=/var/run/tgtd

# Port reservations shared by all tests running at the same time
# (make -j check): a directory per port holding its owner's pid.
PORT_LOCK_DIR=${TMPDIR:-/tmp}/iscsifs-test-ports

# Prefer the distribution's python3 (pyenv shims and the like may lack
# nothing we need, but the system one is what a fresh machine has).
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3
    else PYTHON=python3
    fi
fi
RWCHECK="$top_srcdir/tests/integration/rwcheck.py"

TEST_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/iscsifs-$TEST_NAME.XXXXXX") || {
    echo "$TEST_NAME: cannot create a temporary directory" >&2
    exit 99
}
export TEST_TMPDIR
# Sanitizer builds: reports go to files here, not to stderr, which a
# daemonized iscsifs no longer has; cleanup() fails the test on any.
export ASAN_OPTIONS="log_path=$TEST_TMPDIR/sanitizer${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="log_path=$TEST_TMPDIR/sanitizer:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export TSAN_OPTIONS="log_path=$TEST_TMPDIR/sanitizer:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
: >"$TEST_TMPDIR/.pids"      # lines: KIND PID [ARG]   (kinds: target, fg, watchdog)
: >"$TEST_TMPDIR/.mounts"    # lines: KIND PATH        (kinds: fuse, loop, other)
: >"$TEST_TMPDIR/.ports"     # lines: PORT
: >"$TEST_TMPDIR/.ctrl"      # lines: tgtd control port

# Signals end the test through the EXIT trap (cleanup).
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---------------------------------------------------------------------------
# Messages and verdicts

# note MSG...: a progress line on stdout (lands in the test's .log).
note() {
    printf '[%s %s] %s\n' "$TEST_NAME" "$(date +%T)" "$*"
}

# fail MSG...: print "FAIL: MSG" on stderr and end the test with status 1.
fail() {
    printf '%s: FAIL: %s\n' "$TEST_NAME" "$*" >&2
    exit 1
}

# skip MSG...: end the test as skipped (77), saying why.  Under
# ISCSIFS_TEST_STRICT=1 (.ci/run sets it: there every tool is installed)
# a skip is a failure, so a missing package can never pass as "done".
skip() {
    if [[ ${ISCSIFS_TEST_STRICT:-0} == 1 ]]; then
        printf '%s: FAIL: would skip: %s\n' "$TEST_NAME" "$*" >&2
        exit 1
    fi
    printf '%s: SKIP: %s\n' "$TEST_NAME" "$*" >&2
    exit 77
}

# skip_unless CMD...: skip the test (77) unless every CMD is on PATH.
skip_unless() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "'$c' is not installed"
    done
}

# require_root: skip unless running as root (targets, loop mounts need it).
require_root() {
    [[ $(id -u) -eq 0 ]] || skip "must run as root"
}

# require_fuse: skip unless FUSE mounts are possible here.
require_fuse() {
    [[ -c /dev/fuse ]] || skip "/dev/fuse is missing"
    skip_unless fusermount3 mountpoint
}

# require_iscsifs: fail (not skip: a missing daemon is a broken build)
# unless the iscsifs binary exists and is executable.
require_iscsifs() {
    [[ -x "$ISCSIFS" ]] ||
        fail "iscsifs binary '$ISCSIFS' is missing: build it first (make -C build)"
}

# require_python: skip unless python3 (for rwcheck.py) is available.
require_python() {
    "$PYTHON" -c 'import os, sys' 2>/dev/null || skip "python3 is not installed"
}

# t CMD...: run CMD under timeout(1) ($ISCSIFS_IO_TIMEOUT seconds, then
# SIGKILL 5 s later).  Use it for every command that touches a mount.
t() {
    timeout -k 5 "$ISCSIFS_IO_TIMEOUT" "$@"
}

# assert_eq EXPECTED ACTUAL WHAT: fail unless the two strings are equal.
assert_eq() {
    [[ "$1" == "$2" ]] || fail "$3: expected '$1', got '$2'"
}

# assert_same_file A B WHAT: fail unless files A and B have equal bytes.
assert_same_file() {
    local out
    out=$(t cmp -- "$1" "$2" 2>&1) || fail "$3: $1 and $2 differ: $out"
}

# file_size FILE: print FILE's st_size.
file_size() {
    stat -L -c %s -- "$1"
}

# file_mode FILE: print FILE's permission bits in octal (e.g. 644).
file_mode() {
    stat -L -c %a -- "$1"
}

# to_bytes SIZE: print SIZE (a number with an optional K/M/G suffix,
# binary units) in bytes.
to_bytes() {
    local s=$1 n mul=1
    case $s in
        *[kK]) n=${s%?}; mul=1024 ;;
        *[mM]) n=${s%?}; mul=$((1024 * 1024)) ;;
        *[gG]) n=${s%?}; mul=$((1024 * 1024 * 1024)) ;;
        *) n=$s ;;
    esac
    [[ $n =~ ^[0-9]+$ ]] || fail "to_bytes: bad size '$s'"
    echo $((n * mul))
}

# make_file FILE SIZE [random|zero]: create a backing file of SIZE bytes
# (suffixes K/M/G); "zero" (default) makes it sparse, "random" fills it
# from /dev/urandom.
make_file() {
    local file=$1 size fill=${3:-zero}
    size=$(to_bytes "$2")
    rm -f -- "$file"
    case $fill in
        zero) truncate -s "$size" -- "$file" || fail "cannot create $file" ;;
        random)
            head -c "$size" /dev/urandom >"$file" || fail "cannot create $file"
            ;;
        *) fail "make_file: unknown fill '$fill'" ;;
    esac
}

# ---------------------------------------------------------------------------
# Watchdog: the whole test ends after $ISCSIFS_TEST_TIMEOUT seconds.

_watchdog_start() {
    local secs=$1 main=$$
    (
        trap 'kill "$sp" 2>/dev/null; exit 0' TERM
        sleep "$secs" &
        sp=$!
        wait "$sp"
        echo "$TEST_NAME: FAIL: watchdog: test still running after ${secs}s" >&2
        kill -TERM "$main" 2>/dev/null
    ) &
    echo "watchdog $!" >>"$TEST_TMPDIR/.pids"
}
_watchdog_start "$ISCSIFS_TEST_TIMEOUT"

# ---------------------------------------------------------------------------
# Ports

# _port_in_use PORT: true if something listens on TCP PORT (any address)
# or a tgtd uses PORT as its control port.
_port_in_use() {
    local p=$1
    [[ -n $(ss -Htln "sport = :$p" 2>/dev/null) ]] && return 0
    [[ -e "$TGT_IPC_DIR/socket.$p" ]] && return 0
    return 1
}

# _port_reserve PORT: take the cross-test reservation of PORT; false if
# another live test holds it.
_port_reserve() {
    local p=$1 d="$PORT_LOCK_DIR/$1" owner
    mkdir -p "$PORT_LOCK_DIR" 2>/dev/null
    if ! mkdir "$d" 2>/dev/null; then
        owner=$(cat "$d/owner" 2>/dev/null)
        if [[ -n $owner ]] && kill -0 "$owner" 2>/dev/null; then
            return 1
        fi
        # Stale reservation of a test that died: take it over.
        rm -rf "$d"
        mkdir "$d" 2>/dev/null || return 1
    fi
    echo "$TEST_MAINPID" >"$d/owner"
    echo "$p" >>"$TEST_TMPDIR/.ports"
    return 0
}

# pick_port: print a free TCP port (20000-31999, below the ephemeral
# range), reserved for this test until cleanup.  The start point depends
# on the test's pid so parallel tests rarely collide; collisions are
# resolved by the reservation directory and by checking `ss -ltn`.
pick_port() {
    local i p base=$((20000 + (TEST_MAINPID * 131 + RANDOM) % 12000))
    for ((i = 0; i < 12000; i++)); do
        p=$((20000 + (base - 20000 + i * 7) % 12000))
        _port_in_use "$p" && continue
        _port_reserve "$p" || continue
        if _port_in_use "$p"; then continue; fi
        echo "$p"
        return 0
    done
    fail "pick_port: no free port found"
}

# wait_true SECS CMD...: run CMD every 0.2 s until it succeeds; false
# when SECS seconds passed first.
wait_true() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 5; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

# wait_for_port HOST PORT SECS [PID]: wait until something listens on
# HOST:PORT; fail after SECS seconds or as soon as PID (if given) died.
wait_for_port() {
    local host=$1 port=$2 secs=$3 pid=${4:-} i
    local addr=$host
    [[ $host == *:* ]] && addr="[$host]"
    for ((i = 0; i < secs * 10; i++)); do
        if [[ -n $(ss -Htln "src $addr and sport = :$port" 2>/dev/null) ]]; then
            return 0
        fi
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# _record_pid KIND PID [ARG]: remember a process for cleanup.
_record_pid() {
    echo "$*" >>"$TEST_TMPDIR/.pids"
}

# _forget_pid PID: take PID out of .pids once it has been waited for, so
# that cleanup never signals a reused pid.
_forget_pid() {
    local f="$TEST_TMPDIR/.pids"
    awk -v p="$1" '$2 != p' "$f" >"$f.new" && mv "$f.new" "$f"
}

# ---------------------------------------------------------------------------
# tgtd (package tgt)
#
# Each tgt_start makes a private tgtd: its iSCSI portal is HOST:PORT and its
# management socket is $TGT_IPC_DIR/socket.CTRL, selected by
# `tgtd -C CTRL` / `tgtadm -C CTRL`.  The tgt_* helpers below talk to the
# most recently started tgtd (TGT_CTRL); set TGT_CTRL yourself to address
# another one.  tgtd ignores SIGTERM while it has targets, so cleanup uses
# SIGKILL.

# tgt_start [PORT] [HOST]: start a private tgtd listening on HOST:PORT
# (defaults: a picked port, 127.0.0.1; HOST may be ::1) in the foreground,
# in the background of this shell, and wait until it is ready.  Sets
# TGT_PORT, TGT_HOST, TGT_CTRL (its control port), TGT_PID, TGT_LOG and
# TGT_URL (iscsi://HOST:PORT, no trailing slash).
tgt_start() {
    local port=${1:-} host=${2:-$LOOPBACK4} ctrl pid try log portal
    skip_unless tgtd tgtadm
    for try in 1 2 3; do
        [[ -n $port ]] || port=$(pick_port)
        ctrl=$(pick_port)
        [[ -n $port && -n $ctrl ]] || fail "tgt_start: no free port"
        log="$TEST_TMPDIR/tgtd.$port.log"
        if [[ $host == *:* ]]; then portal="[$host]:$port"; else portal="$host:$port"; fi
        tgtd -f -C "$ctrl" --iscsi "portal=$portal" >"$log" 2>&1 </dev/null &
        pid=$!
        _record_pid target "$pid" tgtd
        echo "$ctrl" >>"$TEST_TMPDIR/.ctrl"
        if wait_for_port "$host" "$port" 10 "$pid" &&
            timeout 10 tgtadm -C "$ctrl" --op show --mode sys >/dev/null 2>&1; then
            TGT_PORT=$port TGT_HOST=$host TGT_CTRL=$ctrl TGT_PID=$pid TGT_LOG=$log
            if [[ $host == *:* ]]; then TGT_URL="iscsi://[$host]:$port"
            else TGT_URL="iscsi://$host:$port"
            fi
            note "tgtd pid $pid on $portal (control port $ctrl)"
            return 0
        fi
        note "tgtd on $portal did not start (try $try):"
        cat "$log" >&2
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        port=""
    done
    fail "tgt_start: tgtd would not start"
}

# tgtadm_ ARGS...: tgtadm for the current tgtd (--lld iscsi, control port
# TGT_CTRL, 20 s timeout); fails the test if tgtadm fails.
tgtadm_() {
    local out
    out=$(timeout 20 tgtadm -C "$TGT_CTRL" --lld iscsi "$@" 2>&1) ||
        fail "tgtadm $*: ${out:-failed}"
    [[ -z $out ]] || printf '%s\n' "$out"
}

# tgt_add_target TID IQN: create target number TID (>= 1) named IQN.
# tgtd gives every target a LUN 0 of type controller; iscsifs skips it.
tgt_add_target() {
    tgtadm_ --op new --mode target --tid "$1" --targetname "$2"
}

# tgt_add_lun TID LUN FILE [BLOCKSIZE] [readonly]: add LUN (>= 1) backed
# by regular file FILE (bstype rdwr) to target TID, with a logical block
# size of BLOCKSIZE bytes (512 when empty or "-"); "readonly" makes the
# LUN write-protected (tgtd then sets the WP bit in MODE SENSE and
# refuses writes with DATA PROTECT).
tgt_add_lun() {
    local tid=$1 lun=$2 file=$3 bs=${4:-} ro=${5:-}
    if [[ $bs == readonly ]]; then ro=readonly bs=""; fi
    [[ -f $file ]] || fail "tgt_add_lun: backing file $file does not exist"
    local args=(--op new --mode logicalunit --tid "$tid" --lun "$lun"
        --backing-store "$file" --bstype rdwr)
    [[ -n $bs && $bs != - ]] && args+=(--blocksize "$bs")
    tgtadm_ "${args[@]}"
    if [[ $ro == readonly ]]; then
        tgtadm_ --op update --mode logicalunit --tid "$tid" --lun "$lun" \
            --params readonly=1
    fi
}

# tgt_allow_all TID: accept every initiator on target TID (ACL "ALL").
tgt_allow_all() {
    tgtadm_ --op bind --mode target --tid "$1" --initiator-address ALL
}

# tgt_allow_initiator TID IQN: accept only initiators named IQN (tgtd
# answers any other with login status "target not found").
tgt_allow_initiator() {
    tgtadm_ --op bind --mode target --tid "$1" --initiator-name "$2"
}

# tgt_allow_address TID ADDR: accept only initiators connecting from ADDR.
tgt_allow_address() {
    tgtadm_ --op bind --mode target --tid "$1" --initiator-address "$2"
}

# tgt_set_param TID KEY VALUE: set an iSCSI session parameter that tgtd
# offers on target TID (MaxRecvDataSegmentLength, MaxXmitDataSegmentLength,
# MaxBurstLength, FirstBurstLength, InitialR2T, ImmediateData,
# MaxOutstandingR2T, HeaderDigest, DataDigest, ...).
tgt_set_param() {
    tgtadm_ --op update --mode target --tid "$1" --name "$2" --value "$3"
}

# tgt_set_chap TID USER SECRET: require one-way CHAP on target TID: the
# initiator must authenticate as USER with SECRET (tgtd's IncomingUser).
tgt_set_chap() {
    tgtadm_ --op new --mode account --user "$2" --password "$3"
    tgtadm_ --op bind --mode account --tid "$1" --user "$2"
}

# tgt_set_chap_mutual TID USER SECRET: make target TID authenticate itself
# to the initiator as USER with SECRET (mutual CHAP; tgtd's OutgoingUser).
tgt_set_chap_mutual() {
    tgtadm_ --op new --mode account --user "$2" --password "$3"
    tgtadm_ --op bind --mode account --tid "$1" --user "$2" --outgoing
}

# tgt_drop_connection TID SID: close connection 0 of session (I_T nexus)
# SID of target TID, as a network failure would; the initiator must log in
# again.
tgt_drop_connection() {
    tgtadm_ --op delete --mode conn --tid "$1" --sid "$2" --cid 0
}

# tgt_show [TID]: print tgtadm's description of one or all targets.
tgt_show() {
    if [[ -n ${1:-} ]]; then
        tgtadm_ --op show --mode target --tid "$1"
    else
        tgtadm_ --op show --mode target
    fi
}

# tgt_session_count TID: print how many I_T nexuses (sessions) target TID
# has now (from the "Target TID:" block of `tgtadm --op show --mode target`;
# showing one --tid prints its parameters, not its sessions).
tgt_session_count() {
    timeout 20 tgtadm -C "$TGT_CTRL" --lld iscsi --op show --mode target 2>/dev/null |
        awk -v tid="$1" '
            /^Target [0-9]+:/ { cur = $2; sub(/:$/, "", cur) }
            cur == tid && /^ *I_T nexus: [0-9]/ { n++ }
            END { print n + 0 }'
}

# tgt_wait_sessions TID N [SECS]: wait (default 10 s) until target TID has
# exactly N sessions; fail otherwise.
tgt_wait_sessions() {
    local tid=$1 want=$2 secs=${3:-10} i n
    for ((i = 0; i < secs * 10; i++)); do
        n=$(tgt_session_count "$tid")
        [[ $n == "$want" ]] && return 0
        sleep 0.1
    done
    fail "target $tid has $n sessions, expected $want"
}

# tgt_kill: kill the current tgtd (TGT_PID) with SIGKILL, as a crash
# would, and wait for it.  Its portal, control port and backing files stay
# as they are, for tgt_restart.
tgt_kill() {
    kill -KILL "$TGT_PID" 2>/dev/null || fail "tgt_kill: tgtd (pid $TGT_PID) is not running"
    wait "$TGT_PID" 2>/dev/null
    _forget_pid "$TGT_PID"
    note "tgtd pid $TGT_PID killed (SIGKILL)"
}

# tgt_restart: start a new tgtd on the portal and control port of the one
# tgt_kill killed (TGT_HOST:TGT_PORT, TGT_CTRL) and wait until it is ready;
# it has no targets: the caller makes them again (tgt_add_target, ...).
# Sets TGT_PID; the log goes on in TGT_LOG.  Fails unless tgtd is ready
# within 10 s (the port may be taken back only once the old connections
# are gone: it is tried again for those 10 s).
tgt_restart() {
    local pid portal i
    if [[ $TGT_HOST == *:* ]]; then portal="[$TGT_HOST]:$TGT_PORT"; else portal="$TGT_HOST:$TGT_PORT"; fi
    for ((i = 0; i < 20; i++)); do
        echo "---- tgt_restart $(date +%T.%N) ----" >>"$TGT_LOG"
        tgtd -f -C "$TGT_CTRL" --iscsi "portal=$portal" >>"$TGT_LOG" 2>&1 </dev/null &
        pid=$!
        _record_pid target "$pid" tgtd
        if wait_for_port "$TGT_HOST" "$TGT_PORT" 10 "$pid" &&
            timeout 10 tgtadm -C "$TGT_CTRL" --op show --mode sys >/dev/null 2>&1; then
            TGT_PID=$pid
            note "tgtd restarted: pid $pid on $portal (control port $TGT_CTRL)"
            return 0
        fi
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        _forget_pid "$pid"
        sleep 0.5
    done
    tail -n 20 "$TGT_LOG" >&2
    fail "tgt_restart: tgtd would not start again on $portal"
}

# ---------------------------------------------------------------------------
# istgt
#
# istgt_start [PORT] DIR [SPEC...]: write DIR/istgt.conf and DIR/auth.conf
# and start `istgt -D -c DIR/istgt.conf` (-D: stay in the foreground) on
# 127.0.0.1:PORT (PORT empty or "auto": pick one), then wait until it
# listens.  SPEC words, in order:
#   Key=Value        before any target=: a [Global] parameter; after a
#                    target=: that target's LogicalUnit override.  Defaults
#                    (the issue's small-burst R2T configuration):
#                    InitialR2T=Yes ImmediateData=No MaxOutstandingR2T=4
#                    FirstBurstLength=8192 MaxBurstLength=16384
#                    MaxRecvDataSegmentLength=4096 (istgt 0.4 still
#                    declares 8192 for itself; see the README of tests).
#   target=NAME      start a target; its IQN is $IQN_PREFIX:NAME
#   lunN=FILE        LUN N (0, 1, ...) of the current target, backed by FILE
#                    (size taken from the file)
#   blocklength=N    logical block size of the current target's LUNs
#   readonly=yes     the current target is read-only
#   chap=USER:SECRET the current target requires CHAP as USER/SECRET
#   mutual=USER:SECRET  (after chap=) mutual CHAP: the target answers
#                    the initiator's challenge as USER with SECRET
#   digest=WORDS     the current target's UseDigest ("Header Data": both
#                    digests required; default Auto)
#   queuedepth=N     the current target's QueueDepth
#   portal2=PORT     (anywhere) a second portal, 127.0.0.1:PORT, in the
#                    portal group of every target
# Sets ISTGT_PORT, ISTGT_PID, ISTGT_CONF, ISTGT_LOG, ISTGT_URL and
# ISTGT_IQN (the first target's IQN).  Unlike tgtd, istgt has no LUN 0
# controller: its LUN 0 is a disk.  istgt's listen backlog is 2.
istgt_start() {
    local port=${1:-} dir=$2
    shift 2
    skip_unless istgt
    [[ -z $port || $port == auto ]] && port=$(pick_port)
    [[ -n $port ]] || fail "istgt_start: no free port"
    mkdir -p "$dir" || fail "istgt_start: cannot create $dir"
    local conf="$dir/istgt.conf" auth="$dir/auth.conf"
    declare -A global=(
        [InitialR2T]=Yes [ImmediateData]=No [MaxOutstandingR2T]=4
        [FirstBurstLength]=8192 [MaxBurstLength]=16384
        [MaxRecvDataSegmentLength]=4096
        [DefaultTime2Wait]=2 [DefaultTime2Retain]=20
        [DataPDUInOrder]=Yes [DataSequenceInOrder]=Yes
        [ErrorRecoveryLevel]=0 [MaxSessions]=32 [MaxConnections]=8
        [MaxR2T]=32 [Timeout]=30 [NopInInterval]=20
    )
    local units="" unit="" ntarget=0 nauth=0 first_iqn="" w key val
    local haslun=0 hasauth=0 authconf="" portal2=""
    # _istgt_end_unit: close the current [LogicalUnit] section.
    _istgt_end_unit() {
        [[ -z $unit ]] && return 0
        ((haslun)) || fail "istgt_start: a target has no lunN=: $unit"
        # Targets without chap= admit any initiator without authentication.
        ((hasauth)) || unit+="  AuthMethod None"$'\n'
        units+="$unit"$'\n'
        unit=""
    }
    for w in "$@"; do
        [[ $w == *=* ]] || fail "istgt_start: bad spec '$w'"
        key=${w%%=*} val=${w#*=}
        case $key in
            target)
                _istgt_end_unit
                ntarget=$((ntarget + 1)) haslun=0 hasauth=0
                [[ -n $first_iqn ]] || first_iqn="$IQN_PREFIX:$val"
                unit="[LogicalUnit$ntarget]
  TargetName \"$IQN_PREFIX:$val\"
  TargetAlias \"$val\"
  Mapping PortalGroup1 InitiatorGroup1
  UseDigest Auto
  UnitType Disk
  UnitInquiry \"ISCSIFS\" \"istgt test disk\" \"0001\" \"IT$ntarget-$TEST_MAINPID\"
"
                ;;
            lun[0-9]*)
                [[ -n $unit ]] || fail "istgt_start: $w before target="
                [[ -f $val ]] || fail "istgt_start: backing file $val does not exist"
                unit+="  LUN${key#lun} Storage \"$val\" Auto"$'\n'
                haslun=1
                ;;
            portal2) portal2=$val ;;
            blocklength|readonly|queuedepth|chap|mutual|digest)
                [[ -n $unit ]] || fail "istgt_start: $w before target="
                case $key in
                    blocklength) unit+="  BlockLength $val"$'\n' ;;
                    readonly) [[ $val == yes ]] && unit+="  ReadOnly Yes"$'\n' ;;
                    queuedepth) unit+="  QueueDepth $val"$'\n' ;;
                    chap)
                        nauth=$((nauth + 1)) hasauth=1
                        authconf+="[AuthGroup$nauth]
  Auth \"${val%%:*}\" \"${val#*:}\"
"
                        unit+="  AuthMethod CHAP"$'\n'"  AuthGroup AuthGroup$nauth"$'\n'
                        ;;
                    mutual)
                        ((hasauth)) || fail "istgt_start: mutual= needs chap= before it"
                        # the group's Auth line gains the target's name and secret
                        authconf="${authconf%$'\n'} \"${val%%:*}\" \"${val#*:}\""$'\n'
                        unit=${unit/"AuthMethod CHAP"$'\n'/"AuthMethod CHAP Mutual"$'\n'}
                        ;;
                    digest) unit=${unit/"UseDigest Auto"/"UseDigest $val"} ;;
                esac
                ;;
            [A-Z]*)
                if [[ -n $unit ]]; then unit+="  $key $val"$'\n'
                else global[$key]=$val
                fi
                ;;
            *) fail "istgt_start: unknown spec '$w'" ;;
        esac
    done
    _istgt_end_unit
    ((ntarget > 0)) || fail "istgt_start: no target= given"
    {
        echo "# written by tests/lib/targets.sh for $TEST_NAME"
        echo "[Global]"
        echo "  NodeBase \"$IQN_PREFIX\""
        echo "  PidFile \"$dir/istgt.pid\""
        echo "  AuthFile \"$auth\""
        echo "  MediaDirectory \"$dir\""
        echo "  LogFacility \"local7\""
        echo "  DiscoveryAuthMethod None"
        for key in "${!global[@]}"; do
            echo "  $key ${global[$key]}"
        done
        echo
        echo "[UnitControl]"
        echo "  AuthMethod None"
        echo "  Netmask 127.0.0.1"
        echo
        echo "[PortalGroup1]"
        echo "  Portal DA1 $LOOPBACK4:$port"
        [[ -z $portal2 ]] || echo "  Portal DA2 $LOOPBACK4:$portal2"
        echo
        echo "[InitiatorGroup1]"
        echo "  InitiatorName \"ALL\""
        echo "  Netmask 127.0.0.1/32"
        echo
        printf '%s\n' "$units"
    } >"$conf"
    # istgt insists on an AuthFile with at least one group.
    [[ -n $authconf ]] || authconf='[AuthGroup1]
  Auth "unused-user" "unused-secret-1"
'
    printf '%s' "$authconf" >"$auth"
    chmod 600 "$auth"

    ISTGT_LOG="$dir/istgt.log"
    istgt -D -c "$conf" >"$ISTGT_LOG" 2>&1 </dev/null &
    ISTGT_PID=$!
    _record_pid target "$ISTGT_PID" istgt
    if ! wait_for_port "$LOOPBACK4" "$port" 15 "$ISTGT_PID"; then
        cat "$ISTGT_LOG" >&2
        fail "istgt_start: istgt did not start on port $port (config $conf)"
    fi
    ISTGT_PORT=$port ISTGT_CONF=$conf ISTGT_IQN=$first_iqn
    ISTGT_URL="iscsi://$LOOPBACK4:$port"
    note "istgt pid $ISTGT_PID on $LOOPBACK4:$port ($ntarget targets)"
}

# istgt_kill: kill the current istgt (ISTGT_PID) with SIGKILL, as a crash
# would, and wait for it.  Its configuration stays, for istgt_restart.
istgt_kill() {
    kill -KILL "$ISTGT_PID" 2>/dev/null || fail "istgt_kill: istgt (pid $ISTGT_PID) is not running"
    wait "$ISTGT_PID" 2>/dev/null
    _forget_pid "$ISTGT_PID"
    note "istgt pid $ISTGT_PID killed (SIGKILL)"
}

# istgt_restart: start istgt again with the configuration of the one
# istgt_kill killed (ISTGT_CONF: same port, targets, LUNs and backing
# files) and wait (15 s) until it listens.  Sets ISTGT_PID; the log goes
# on in ISTGT_LOG.
istgt_restart() {
    local i
    for ((i = 0; i < 10; i++)); do
        echo "---- istgt_restart $(date +%T.%N) ----" >>"$ISTGT_LOG"
        istgt -D -c "$ISTGT_CONF" >>"$ISTGT_LOG" 2>&1 </dev/null &
        ISTGT_PID=$!
        _record_pid target "$ISTGT_PID" istgt
        if wait_for_port "$LOOPBACK4" "$ISTGT_PORT" 15 "$ISTGT_PID"; then
            note "istgt restarted: pid $ISTGT_PID on $LOOPBACK4:$ISTGT_PORT"
            return 0
        fi
        kill -KILL "$ISTGT_PID" 2>/dev/null
        wait "$ISTGT_PID" 2>/dev/null
        _forget_pid "$ISTGT_PID"
        sleep 0.5
    done
    tail -n 20 "$ISTGT_LOG" >&2
    fail "istgt_restart: istgt would not start again on port $ISTGT_PORT"
}

# ---------------------------------------------------------------------------
# The fault-injecting proxy (tests/lib/faultproxy.py; its header says what
# each mode does).

FAULTPROXY="$top_srcdir/tests/lib/faultproxy.py"

# faultproxy_start HOST:PORT: start faultproxy.py on a picked port of
# 127.0.0.1, forwarding to HOST:PORT (a real target), in pass mode, and
# wait until it listens.  Sets PROXY_PORT, PROXY_PID, PROXY_CTL (its
# control socket), PROXY_LOG and PROXY_URL (iscsi://127.0.0.1:PROXY_PORT).
faultproxy_start() {
    local target=$1
    require_python
    PROXY_PORT=$(pick_port)
    PROXY_CTL="$TEST_TMPDIR/faultproxy.$PROXY_PORT.sock"
    PROXY_LOG="$TEST_TMPDIR/faultproxy.$PROXY_PORT.log"
    "$PYTHON" "$FAULTPROXY" serve --listen "$PROXY_PORT" --target "$target" \
        --control "$PROXY_CTL" >"$PROXY_LOG" 2>&1 </dev/null &
    PROXY_PID=$!
    _record_pid target "$PROXY_PID" faultproxy
    wait_for_port "$LOOPBACK4" "$PROXY_PORT" 10 "$PROXY_PID" && [[ -S $PROXY_CTL ]] ||
        { cat "$PROXY_LOG" >&2; fail "faultproxy_start: the proxy did not start"; }
    PROXY_URL="iscsi://$LOOPBACK4:$PROXY_PORT"
    note "faultproxy pid $PROXY_PID on $LOOPBACK4:$PROXY_PORT -> $target"
}

# faultproxy_ctl COMMAND [ARG...]: send a command to the proxy (see
# faultproxy.py: pass, drop [N] [rst], blackhole, trickle BPS, bytewise
# [US], reset-login K, status); prints its answer, fails the test unless
# it starts with "ok".
faultproxy_ctl() {
    local out
    out=$(timeout 15 "$PYTHON" "$FAULTPROXY" ctl "$PROXY_CTL" "$@" 2>&1) ||
        fail "faultproxy_ctl $*: ${out:-no answer}"
    printf '%s\n' "$out"
}

# faultproxy_stat KEY: one number of the proxy's status (accepted, drops,
# resets, open, t2i, i2t).
faultproxy_stat() {
    faultproxy_ctl status | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# ---------------------------------------------------------------------------
# Independent initiators (libiscsi tools, qemu): check what a target offers.

# lun_capacity URL: print "BYTES BLOCKSIZE" of the LUN at URL
# (iscsi://host:port/iqn/lun) as iscsi-readcapacity16 sees it.
lun_capacity() {
    local out
    out=$(timeout 30 iscsi-readcapacity16 "$1" 2>&1) ||
        fail "iscsi-readcapacity16 $1: $out"
    local bytes bs
    bytes=$(sed -n 's/^Total size:\([0-9]*\).*/\1/p' <<<"$out")
    bs=$(sed -n 's/^LOGICAL BLOCK LENGTH IN BYTES:\([0-9]*\).*/\1/p' <<<"$out")
    echo "$bytes $bs"
}

# assert_lun URL BYTES BLOCKSIZE: fail unless the LUN at URL, read by
# libiscsi, has that capacity and logical block size.
assert_lun() {
    local got
    got=$(lun_capacity "$1")
    assert_eq "$2 $3" "$got" "capacity and block size of $1 (iscsi-readcapacity16)"
}

# lun_write_protected URL: true if qemu (libiscsi, MODE SENSE WP bit)
# refuses to open the LUN at URL read-write.
lun_write_protected() {
    local out
    out=$(timeout 30 qemu-io -f raw -c 'read 0 512' "$1" 2>&1)
    [[ $out == *"write protected"* ]]
}

# negotiated_params URL: print the parameters the target answered to
# libiscsi's login (LIBISCSI_DEBUG=6 iscsi-inq), one KEY=VALUE a line.
negotiated_params() {
    LIBISCSI_DEBUG=6 timeout 30 iscsi-inq "$1" 2>&1 >/dev/null |
        sed -n 's/^libiscsi:[0-9]* TargetLoginReply: \([A-Za-z0-9]*=[^ ]*\).*/\1/p'
}

# assert_negotiated URL KEY=VALUE...: fail unless the target answered each
# KEY with VALUE when libiscsi logged in to URL.
assert_negotiated() {
    local url=$1 kv params
    shift
    params=$(negotiated_params "$url")
    for kv in "$@"; do
        grep -qxF "$kv" <<<"$params" ||
            fail "target at $url did not negotiate $kv; it answered: $(tr '\n' ' ' <<<"$params")"
    done
}

# ---------------------------------------------------------------------------
# iscsifs mounts

# make_secret_file FILE SECRET: write SECRET and a newline to FILE, mode
# 600 from its creation on (iscsifs refuses a secret file others can read).
make_secret_file() {
    (umask 077 && printf '%s\n' "$2" >"$1") || fail "cannot write secret file $1"
    chmod 600 "$1"
}

# _register_mount KIND PATH: remember a mount for cleanup (fuse|loop|other).
_register_mount() {
    echo "$1 $2" >>"$TEST_TMPDIR/.mounts"
}

# _unregister_mount PATH
_unregister_mount() {
    local f="$TEST_TMPDIR/.mounts"
    awk -v p="$1" '{ k = $1; $1 = ""; sub(/^ /, ""); if ($0 != p) print k " " $0 }' \
        "$f" >"$f.new" && mv "$f.new" "$f"
}

# iscsifs_pids MNT: print the pids of iscsifs processes whose command line
# has MNT as an argument (the daemon forks, so its pid is found this way).
iscsifs_pids() {
    local mnt=$1 p a base hit
    local -a args
    base=$(basename "$ISCSIFS")
    for p in /proc/[0-9]*; do
        mapfile -d '' args 2>/dev/null <"$p/cmdline" || continue
        hit=0
        for a in "${args[@]}"; do
            [[ $a == "$mnt" ]] && hit=$((hit | 1))
            [[ ${a##*/} == "$base" ]] && hit=$((hit | 2))
        done
        ((hit == 3)) && echo "${p#/proc/}"
    done
}

# _new_log: create and print the path of a new, numbered log file.  The
# number comes from the files present, not a shell variable: callers use
# $(_new_log), a subshell, where a counter would never advance.
_new_log() {
    local n=1
    while [[ -e $TEST_TMPDIR/iscsifs.$n.log ]]; do n=$((n + 1)); done
    : >"$TEST_TMPDIR/iscsifs.$n.log"
    echo "$TEST_TMPDIR/iscsifs.$n.log"
}

# _wrapper_array: split ISCSIFS_WRAPPER into the array WRAP.
_wrapper_array() {
    WRAP=()
    [[ -n $ISCSIFS_WRAPPER ]] && read -r -a WRAP <<<"$ISCSIFS_WRAPPER"
    return 0
}

# mount_iscsifs URL MNT [OPTION...]: mount URL on MNT (created if missing)
# the way a user does: `iscsifs [OPTION...] URL MNT`, which daemonizes after
# mounting.  Fails the test unless iscsifs exits 0 within
# $ISCSIFS_START_TIMEOUT seconds and MNT is then a mountpoint.  stderr
# goes to a log file (never a pipe: the daemon may keep it open) and is
# shown on failure; its path is left in ISCSIFS_LOG.
mount_iscsifs() {
    local url=$1 mnt=$2 rc
    shift 2
    require_iscsifs
    mkdir -p "$mnt"
    _register_mount fuse "$mnt"
    ISCSIFS_LOG=$(_new_log)
    _wrapper_array
    note "mount: iscsifs${*:+ $*} $url $mnt"
    timeout -k 5 "$ISCSIFS_START_TIMEOUT" "${WRAP[@]}" "$ISCSIFS" "$@" "$url" "$mnt" \
        >"$ISCSIFS_LOG" 2>&1 </dev/null
    rc=$?
    if ((rc != 0)); then
        cat "$ISCSIFS_LOG" >&2
        ((rc == 124)) && fail "iscsifs did not finish mounting $url within ${ISCSIFS_START_TIMEOUT}s"
        fail "iscsifs $* $url $mnt exited with status $rc"
    fi
    mountpoint -q "$mnt" || fail "iscsifs exited 0 but $mnt is not a mountpoint"
}

# mount_iscsifs_fg URL MNT [OPTION...]: like mount_iscsifs but runs
# `iscsifs -f` in the background of this shell (pid in ISCSIFS_FG_PID),
# waiting until MNT is a mountpoint; unmount_iscsifs then also checks that
# this process exits with status 0.
mount_iscsifs_fg() {
    local url=$1 mnt=$2 i
    shift 2
    require_iscsifs
    mkdir -p "$mnt"
    _register_mount fuse "$mnt"
    ISCSIFS_LOG=$(_new_log)
    _wrapper_array
    note "mount (foreground): iscsifs -f${*:+ $*} $url $mnt"
    "${WRAP[@]}" "$ISCSIFS" -f "$@" "$url" "$mnt" >"$ISCSIFS_LOG" 2>&1 </dev/null &
    ISCSIFS_FG_PID=$!
    _record_pid fg "$ISCSIFS_FG_PID" "$mnt"
    for ((i = 0; i < ISCSIFS_START_TIMEOUT * 10; i++)); do
        mountpoint -q "$mnt" && return 0
        if ! kill -0 "$ISCSIFS_FG_PID" 2>/dev/null; then
            wait "$ISCSIFS_FG_PID"
            rc=$?
            cat "$ISCSIFS_LOG" >&2
            fail "iscsifs -f $* $url $mnt exited with status $rc before mounting"
        fi
        sleep 0.1
    done
    cat "$ISCSIFS_LOG" >&2
    fail "iscsifs -f did not mount $mnt within ${ISCSIFS_START_TIMEOUT}s"
}

# _fg_pid_of MNT: the pid of a foreground iscsifs started for MNT, if any.
_fg_pid_of() {
    awk -v m="$1" '$1 == "fg" { p = $2; $1 = ""; $2 = ""; sub(/^  /, ""); if ($0 == m) last = p }
        END { if (last) print last }' "$TEST_TMPDIR/.pids"
}

# unmount_iscsifs MNT: `fusermount3 -u MNT`, then wait (30 s) for the
# iscsifs process of MNT to exit; for a mount_iscsifs_fg mount also check
# its exit status is 0.  Fails the test on any of these.
unmount_iscsifs() {
    local mnt=$1 pids fg i out rc
    pids=$(iscsifs_pids "$mnt")
    fg=$(_fg_pid_of "$mnt")
    out=$(timeout 30 fusermount3 -u "$mnt" 2>&1) ||
        fail "fusermount3 -u $mnt: ${out:-timed out}"
    _unregister_mount "$mnt"
    for ((i = 0; i < 300; i++)); do
        local alive=""
        for p in $pids $fg; do
            kill -0 "$p" 2>/dev/null && alive+=" $p"
        done
        [[ -z $alive ]] && break
        sleep 0.1
    done
    [[ -z $alive ]] || fail "iscsifs (pid$alive) still running 30 s after unmounting $mnt"
    if [[ -n $fg ]]; then
        wait "$fg"
        rc=$?
        ((rc == 0)) || { cat "$ISCSIFS_LOG" >&2; fail "iscsifs -f for $mnt exited with status $rc after unmount"; }
    fi
    ! mountpoint -q "$mnt" || fail "$mnt is still mounted after fusermount3 -u"
}

# run_iscsifs [ARG...]: run iscsifs with exactly these arguments, expecting
# it may fail: sets ISCSIFS_RC (124 = timed out), ISCSIFS_ERR (its stderr and
# stdout text) and ISCSIFS_SECS (wall time).  Never fails the test itself.
# Any mountpoint among the arguments should be _register_mount'ed by the
# caller so that an unexpected success is cleaned up.
run_iscsifs() {
    local log start
    log=$(_new_log)
    _wrapper_array
    start=$(date +%s.%N)
    timeout -k 5 "$ISCSIFS_START_TIMEOUT" "${WRAP[@]}" "$ISCSIFS" "$@" >"$log" 2>&1 </dev/null
    ISCSIFS_RC=$?
    ISCSIFS_SECS=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    ISCSIFS_ERR=$(cat "$log")
}

# mount_loop IMAGE DIR [OPTION...]: `mount -o loop IMAGE DIR` (DIR created),
# remembered for cleanup.
mount_loop() {
    local img=$1 dir=$2 out
    shift 2
    mkdir -p "$dir"
    _register_mount loop "$dir"
    out=$(t mount -o loop "$@" "$img" "$dir" 2>&1) || fail "mount -o loop $img $dir: $out"
}

# umount_loop DIR: unmount what mount_loop mounted.
umount_loop() {
    local out
    out=$(t umount "$1" 2>&1) || fail "umount $1: $out"
    _unregister_mount "$1"
}

# ---------------------------------------------------------------------------
# Cleanup

# cleanup: the EXIT trap of every test (`trap cleanup EXIT`).  Unmounts
# what the test mounted (newest first; lazily if busy), stops any iscsifs
# of those mounts, kills the targets with SIGKILL, removes tgtd control
# sockets, frees port reservations, shows the logs when the test failed, and
# removes the temporary directory.  Keeps the test's exit status.
cleanup() {
    local rc=$? kind path pid rest
    set +e
    trap - INT TERM HUP
    # Stop the watchdog first so it cannot fire during cleanup.
    while read -r kind pid rest; do
        [[ $kind == watchdog ]] && kill -TERM "$pid" 2>/dev/null
    done <"$TEST_TMPDIR/.pids"

    # Mounts, newest first.
    while read -r kind path; do
        [[ -n $path ]] || continue
        local pids=""
        [[ $kind == fuse ]] && pids=$(iscsifs_pids "$path")
        if mountpoint -q "$path" 2>/dev/null; then
            case $kind in
                fuse)
                    timeout 20 fusermount3 -u "$path" 2>/dev/null ||
                        timeout 20 fusermount3 -uz "$path" 2>/dev/null ||
                        timeout 20 umount -l "$path" 2>/dev/null
                    ;;
                *)
                    timeout 20 umount "$path" 2>/dev/null ||
                        timeout 20 umount -l "$path" 2>/dev/null
                    ;;
            esac
        fi
        # Give iscsifs 10 s to log out and exit, then kill it.
        local i
        for ((i = 0; i < 100; i++)); do
            local alive=""
            for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
            [[ -z $alive ]] && break
            sleep 0.1
        done
        for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
    done < <(tac "$TEST_TMPDIR/.mounts")

    # Processes we started: foreground iscsifs, then targets.
    while read -r kind pid rest; do
        case $kind in
            fg)
                kill -TERM "$pid" 2>/dev/null && sleep 0.5
                kill -KILL "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
                ;;
        esac
    done <"$TEST_TMPDIR/.pids"
    while read -r kind pid rest; do
        if [[ $kind == target ]]; then
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
    done <"$TEST_TMPDIR/.pids"
    while read -r pid; do
        [[ -n $pid ]] && rm -f "$TGT_IPC_DIR/socket.$pid" "$TGT_IPC_DIR/socket.$pid.lock"
    done <"$TEST_TMPDIR/.ctrl"
    while read -r pid; do
        [[ -n $pid ]] && rm -rf "${PORT_LOCK_DIR:?}/$pid"
    done <"$TEST_TMPDIR/.ports"

    # A sanitizer report from any process of the test fails it.
    local report
    for report in "$TEST_TMPDIR"/sanitizer.*; do
        [[ -e $report ]] || continue
        echo "---- sanitizer report $report ----" >&2
        cat "$report" >&2
        ((rc == 0 || rc == 77)) && rc=1
    done

    if ((rc != 0 && rc != 77)); then
        local f
        for f in "$TEST_TMPDIR"/*.log "$TEST_TMPDIR"/*/*.log; do
            [[ -s $f ]] || continue
            echo "---- $f (last 40 lines) ----" >&2
            tail -n 40 "$f" >&2
        done
    fi

    if grep -qF " $TEST_TMPDIR" /proc/mounts; then
        echo "$TEST_NAME: warning: mounts remain under $TEST_TMPDIR; not removing it" >&2
    elif [[ ${KEEP_TEST_TMPDIR:-0} == 1 ]]; then
        echo "$TEST_NAME: keeping $TEST_TMPDIR" >&2
    else
        rm -rf --one-file-system "$TEST_TMPDIR"
    fi
    exit "$rc"
}
