#!/bin/bash
# chap-istgt.sh: istgt with `AuthMethod CHAP Mutual` and `UseDigest Header
# Data`: iscsifs with -o header_digest=crc32c,data_digest=crc32c logs in
# with mutual CHAP, negotiates both digests (the -d log says so) and reads
# and writes the right data; a wrong target secret or a wrong target user
# is refused with "target failed mutual authentication", a wrong secret of
# ours with "authentication failed", each in one line with nothing mounted;
# no secret appears in the debug log.
# shellcheck source=tests/lib/targets.sh
. "${top_srcdir:-.}/tests/lib/targets.sh"
# shellcheck source=tests/lib/checks.sh
. "$top_srcdir/tests/lib/checks.sh"
trap cleanup EXIT
require_root
require_fuse
require_python
skip_unless istgt

CHAP_FAIL_MAX_SECS=${CHAP_FAIL_MAX_SECS:-10}

carol_secret=carol-secret-321
target_secret=istgt-target-secret-7

make_file "$TEST_TMPDIR/lun0.img" 16M random
istgt_start auto "$TEST_TMPDIR/istgt" target=mutual "lun0=$TEST_TMPDIR/lun0.img" \
    "chap=carol:$carol_secret" "mutual=istgt-target:$target_secret" \
    "digest=Header Data"
grep -q "AuthMethod CHAP Mutual" "$ISTGT_CONF" || fail "istgt.conf lacks AuthMethod CHAP Mutual"
grep -q "UseDigest Header Data" "$ISTGT_CONF" || fail "istgt.conf lacks UseDigest Header Data"

secrets=$TEST_TMPDIR/secrets
mkdir -p "$secrets"
chmod 700 "$secrets"
make_secret_file "$secrets/carol" "$carol_secret"
make_secret_file "$secrets/carol-wrong" "carol-secret-000"
make_secret_file "$secrets/target" "$target_secret"
make_secret_file "$secrets/target-wrong" "istgt-target-secret-0"

require_iscsifs
mnt=$TEST_TMPDIR/mnt
digests=header_digest=crc32c,data_digest=crc32c
ours="chap_user=carol,chap_secret_file=$secrets/carol"

# expect_refused KEYWORD ARG...: iscsifs ARG... "$mnt" fails quickly with
# one stderr line containing KEYWORD and leaves nothing mounted.
expect_refused() {
    local keyword=$1
    shift
    _register_mount fuse "$mnt"
    mkdir -p "$mnt"
    run_iscsifs "$@" "$mnt"
    note "iscsifs $*: status $ISCSIFS_RC after ${ISCSIFS_SECS}s: $ISCSIFS_ERR"
    ((ISCSIFS_RC != 0 && ISCSIFS_RC != 124)) ||
        fail "iscsifs $* exited with $ISCSIFS_RC, expected a quick failure"
    awk -v s="$ISCSIFS_SECS" -v m="$CHAP_FAIL_MAX_SECS" 'BEGIN { exit !(s <= m) }' ||
        fail "iscsifs $* took ${ISCSIFS_SECS}s to fail (limit ${CHAP_FAIL_MAX_SECS}s)"
    assert_eq 1 "$(grep -c '' <<<"$ISCSIFS_ERR")" "lines of stderr of the failing iscsifs"
    [[ $ISCSIFS_ERR == *"$keyword"* ]] ||
        fail "iscsifs $*: message '$ISCSIFS_ERR' lacks '$keyword'"
    ! mountpoint -q "$mnt" || fail "$mnt is mounted after a failed start"
    [[ -z $(iscsifs_pids "$mnt") ]] || fail "an iscsifs process for $mnt is left"
    _unregister_mount "$mnt"
}

# --- mutual CHAP with both digests ------------------------------------------
mount_iscsifs_fg "$ISTGT_URL/$ISTGT_IQN" "$mnt" -d \
    -o "$digests,$ours,target_user=istgt-target,target_secret_file=$secrets/target,sessions=2"
check_names "$mnt" "lun0"
assert_same_file "$mnt/lun0" "$TEST_TMPDIR/lun0.img" "lun0 read through mutual CHAP"
check_random "$mnt/lun0" "$TEST_TMPDIR/lun0.img" 512 65536
grep -q "target authenticated as istgt-target" "$ISCSIFS_LOG" ||
    fail "the debug log does not say the target was authenticated"
grep -q "digests CRC32C/CRC32C" "$ISCSIFS_LOG" ||
    fail "the debug log does not show both digests negotiated"
# the negotiated session as the LUN file's extended attributes show it
for kv in header_digest=CRC32C data_digest=CRC32C auth_method=CHAP sessions=2; do
    got=$(t getfattr --only-values -n "user.iscsi.${kv%%=*}" "$mnt/lun0") ||
        fail "getfattr user.iscsi.${kv%%=*} failed"
    assert_eq "${kv#*=}" "$got" "user.iscsi.${kv%%=*}"
done
unmount_iscsifs "$mnt"
for s in "$carol_secret" "$target_secret"; do
    ! grep -qF -- "$s" "$ISCSIFS_LOG" || fail "the debug log (-d) shows a secret"
done

# --- refusals --------------------------------------------------------------
expect_refused "target failed mutual authentication" \
    -o "$digests,$ours,target_user=istgt-target,target_secret_file=$secrets/target-wrong" \
    "$ISTGT_URL/$ISTGT_IQN"
expect_refused "target failed mutual authentication" \
    -o "$digests,$ours,target_user=somebody,target_secret_file=$secrets/target" \
    "$ISTGT_URL/$ISTGT_IQN"
expect_refused "authentication failed: target rejected CHAP response for user carol" \
    -o "$digests,chap_user=carol,chap_secret_file=$secrets/carol-wrong,target_user=istgt-target,target_secret_file=$secrets/target" \
    "$ISTGT_URL/$ISTGT_IQN"
# istgt requires mutual CHAP: one-way only is refused by the target.
expect_refused "authentication failed" -o "$digests,$ours" "$ISTGT_URL/$ISTGT_IQN"
note "ok"
