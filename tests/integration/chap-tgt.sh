#!/bin/bash
# chap-tgt.sh: CHAP against tgtd.  One target requires one-way CHAP
# (alice), another mutual CHAP (bob, answered by the target as tgtuser).
#   - one-way: the right secret mounts (from a mode-600 file, from
#     ISCSIFS_CHAP_SECRET with the user in the URL, from USER%PASSWORD@ in
#     the URL, which warns and is hidden from the process list); the data
#     read equals the backing file; a dropped connection logs in again
#     with the same credentials; --list and a discovery mount use them too;
#   - a wrong secret fails fast with "authentication failed: target
#     rejected CHAP response for user alice", one line, nothing mounted,
#     no process left; so does a secret file others can read ("chmod 600");
#   - mutual: works; a wrong target secret or target user fails with
#     "target failed mutual authentication"; equal secrets are refused; a
#     target without mutual credentials refuses the login;
#   - no secret appears in a -d debug log.
# tgtd reads CHAP_A=7 as SHA-1 where RFC 7143 means SHA-256, so every
# login here also goes through the retry that offers MD5 only.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
trap cleanup EXIT
require_root
require_fuse
skip_unless tgtd tgtadm iscsi-inq

# Start-up failures must come within this many seconds.
CHAP_FAIL_MAX_SECS=${CHAP_FAIL_MAX_SECS:-10}

one_iqn=$IQN_PREFIX:chap-oneway
mutual_iqn=$IQN_PREFIX:chap-mutual
alice_secret=alice-secret-123
bob_secret=bob-secret-4567
tgtuser_secret=tgtuser-secret-89

tgt_start
make_file "$TEST_TMPDIR/one.img" 16M random
make_file "$TEST_TMPDIR/mutual.img" 8M random
tgt_add_target 1 "$one_iqn"
tgt_add_lun 1 1 "$TEST_TMPDIR/one.img"
tgt_allow_all 1
tgt_set_chap 1 alice "$alice_secret"
tgt_add_target 2 "$mutual_iqn"
tgt_add_lun 2 1 "$TEST_TMPDIR/mutual.img"
tgt_allow_all 2
tgt_set_chap 2 bob "$bob_secret"
tgt_set_chap_mutual 2 tgtuser "$tgtuser_secret"

# The target side is as intended, as libiscsi sees it.
timeout 20 iscsi-inq "$TGT_URL/$one_iqn/1" >/dev/null 2>&1 &&
    fail "the CHAP target admitted libiscsi without CHAP"
timeout 20 iscsi-inq "iscsi://alice%$alice_secret@$LOOPBACK4:$TGT_PORT/$one_iqn/1" \
    >/dev/null 2>&1 || fail "the CHAP target refused libiscsi with the right secret"

secrets=$TEST_TMPDIR/secrets
mkdir -p "$secrets"
chmod 700 "$secrets"
make_secret_file "$secrets/alice" "$alice_secret"
make_secret_file "$secrets/wrong" "not-alice-secret"
make_secret_file "$secrets/bob" "$bob_secret"
make_secret_file "$secrets/tgtuser" "$tgtuser_secret"
make_secret_file "$secrets/tgtuser-wrong" "tgtuser-secret-00"
cp "$secrets/alice" "$secrets/alice-open"
chmod 644 "$secrets/alice-open"

require_iscsifs
mnt=$TEST_TMPDIR/mnt

# assert_no_secret FILE WHAT: none of the secrets appears in FILE.
assert_no_secret() {
    local s
    for s in "$alice_secret" "$bob_secret" "$tgtuser_secret"; do
        ! grep -qF -- "$s" "$1" || fail "$2 shows a secret"
    done
}

# expect_refused KEYWORD ARG...: iscsifs ARG... "$mnt" fails within
# CHAP_FAIL_MAX_SECS with one stderr line containing KEYWORD, and leaves
# nothing mounted and no process behind.
expect_refused() {
    local keyword=$1 lines
    shift
    _register_mount fuse "$mnt"
    mkdir -p "$mnt"
    run_iscsifs "$@" "$mnt"
    note "iscsifs $*: status $ISCSIFS_RC after ${ISCSIFS_SECS}s: $ISCSIFS_ERR"
    ((ISCSIFS_RC != 0 && ISCSIFS_RC != 124)) ||
        fail "iscsifs $* exited with $ISCSIFS_RC, expected a quick failure"
    awk -v s="$ISCSIFS_SECS" -v m="$CHAP_FAIL_MAX_SECS" 'BEGIN { exit !(s <= m) }' ||
        fail "iscsifs $* took ${ISCSIFS_SECS}s to fail (limit ${CHAP_FAIL_MAX_SECS}s)"
    lines=$(grep -c '' <<<"$ISCSIFS_ERR")
    assert_eq 1 "$lines" "lines of stderr of the failing iscsifs"
    [[ $ISCSIFS_ERR == *"$keyword"* ]] ||
        fail "iscsifs $*: message '$ISCSIFS_ERR' lacks '$keyword'"
    for s in "$alice_secret" "$bob_secret" "$tgtuser_secret"; do
        [[ $ISCSIFS_ERR != *"$s"* ]] || fail "the error message shows a secret"
    done
    ! mountpoint -q "$mnt" || fail "$mnt is mounted after a failed start"
    [[ -z $(iscsifs_pids "$mnt") ]] || fail "an iscsifs process for $mnt is left"
    _unregister_mount "$mnt"
}

# --- one-way CHAP, secret from a file -------------------------------------
mount_iscsifs "$TGT_URL/$one_iqn" "$mnt" \
    -o "chap_user=alice,chap_secret_file=$secrets/alice,sessions=2"
assert_same_file "$mnt/lun1" "$TEST_TMPDIR/one.img" "lun1 read through one-way CHAP"
printf 'written through CHAP' | t dd of="$mnt/lun1" bs=512 seek=3 conv=notrunc,fsync \
    status=none || fail "write through one-way CHAP"
assert_same_file "$mnt/lun1" "$TEST_TMPDIR/one.img" "lun1 after a write"

# A dropped connection comes back with the same credentials.
tgt_wait_sessions 1 2
tgt_drop_connection 1 "$(timeout 20 tgtadm -C "$TGT_CTRL" --lld iscsi --op show \
    --mode target | awk '/^ *I_T nexus: [0-9]/ { print $3; exit }')"
assert_same_file "$mnt/lun1" "$TEST_TMPDIR/one.img" "lun1 read after a dropped connection"
for ((i = 0; i < 300; i++)); do
    reconnects=$(awk '$1 == "reconnects" { n += $2 } END { print n + 0 }' "$mnt/.iscsifs/stats")
    ((reconnects >= 1)) && break
    sleep 0.1
done
((reconnects >= 1)) || fail "no reconnect counted 30 s after the connection was dropped"
tgt_wait_sessions 1 2
unmount_iscsifs "$mnt"

# --- the secret from the environment, the user from the URL ---------------
export ISCSIFS_CHAP_SECRET=$alice_secret
mount_iscsifs "iscsi://alice@$LOOPBACK4:$TGT_PORT/$one_iqn" "$mnt"
unset ISCSIFS_CHAP_SECRET
assert_same_file "$mnt/lun1" "$TEST_TMPDIR/one.img" "lun1 with the secret from the environment"
for pid in $(iscsifs_pids "$mnt"); do
    tr '\0' '\n' <"/proc/$pid/environ" >"$TEST_TMPDIR/environ"
    assert_no_secret "$TEST_TMPDIR/environ" "the environment of iscsifs"
done
unmount_iscsifs "$mnt"

# --- the password in the URL: accepted with a warning, hidden ------------
mount_iscsifs "iscsi://alice%$alice_secret@$LOOPBACK4:$TGT_PORT/$one_iqn" "$mnt"
grep -q "process list" "$ISCSIFS_LOG" || fail "no warning about the password in the URL"
pids=$(iscsifs_pids "$mnt")
[[ -n $pids ]] || fail "cannot find the iscsifs process of $mnt"
for pid in $pids; do
    tr '\0' ' ' <"/proc/$pid/cmdline" >"$TEST_TMPDIR/cmdline"
    assert_no_secret "$TEST_TMPDIR/cmdline" "the command line of iscsifs"
done
assert_same_file "$mnt/lun1" "$TEST_TMPDIR/one.img" "lun1 with the secret in the URL"
unmount_iscsifs "$mnt"

# --- --list and a discovery mount log in with the credentials too --------
out=$(t "$ISCSIFS" --list -o "chap_user=alice,chap_secret_file=$secrets/alice" \
    "$TGT_URL/$one_iqn" 2>&1) || fail "--list with CHAP failed: $out"
grep -q "lun1 *disk," <<<"$out" || fail "--list with CHAP does not describe lun1: $out"
mount_iscsifs "$TGT_URL/" "$mnt" -o "chap_user=alice,chap_secret_file=$secrets/alice"
assert_same_file "$mnt/$one_iqn/lun1" "$TEST_TMPDIR/one.img" "lun1 of the discovered CHAP target"
unmount_iscsifs "$mnt"

# --- refusals --------------------------------------------------------------
expect_refused "authentication failed: target rejected CHAP response for user alice" \
    -o "chap_user=alice,chap_secret_file=$secrets/wrong" "$TGT_URL/$one_iqn"
expect_refused "chmod 600" \
    -o "chap_user=alice,chap_secret_file=$secrets/alice-open" "$TGT_URL/$one_iqn"
expect_refused "has no secret" -o chap_user=alice "$TGT_URL/$one_iqn"

# --- mutual CHAP -----------------------------------------------------------
mutual_opts="chap_user=bob,chap_secret_file=$secrets/bob,target_user=tgtuser"
mount_iscsifs_fg "$TGT_URL/$mutual_iqn" "$mnt" -d \
    -o "$mutual_opts,target_secret_file=$secrets/tgtuser"
assert_same_file "$mnt/lun1" "$TEST_TMPDIR/mutual.img" "lun1 read through mutual CHAP"
grep -q "target authenticated as tgtuser" "$ISCSIFS_LOG" ||
    fail "the debug log does not say the target was authenticated"
unmount_iscsifs "$mnt"
assert_no_secret "$ISCSIFS_LOG" "the debug log (-d)"

expect_refused "target failed mutual authentication" \
    -o "$mutual_opts,target_secret_file=$secrets/tgtuser-wrong" "$TGT_URL/$mutual_iqn"
expect_refused "target failed mutual authentication" \
    -o "chap_user=bob,chap_secret_file=$secrets/bob,target_user=someone-else,target_secret_file=$secrets/tgtuser" \
    "$TGT_URL/$mutual_iqn"
expect_refused "two different secrets" \
    -o "$mutual_opts,target_secret_file=$secrets/bob" "$TGT_URL/$mutual_iqn"
# A target with no name of its own to answer our challenge with refuses
# the login (tgtd cannot tell us why: the same status as a wrong secret).
expect_refused "authentication failed" \
    -o "chap_user=alice,chap_secret_file=$secrets/alice,target_user=tgtuser,target_secret_file=$secrets/tgtuser" \
    "$TGT_URL/$one_iqn"
note "ok"
