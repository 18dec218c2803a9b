#!/bin/sh
# run.sh: run every libFuzzer harness of tests/fuzz for a short, fixed
# budget, each on a copy of its seed corpus; one line per harness; exit
# status 1 when any harness crashed (or broke an invariant, leaked or hung),
# 77 when the build has no harnesses, 2 for a usage error.  Builds nothing.
#
#   CC=clang ../configure --enable-fuzzing && make     # in BUILDDIR, first
#   tests/fuzz/run.sh BUILDDIR                         # 20 s per harness
#   FUZZ_SECONDS=60 tests/fuzz/run.sh BUILDDIR session text   # some, longer
#
# Environment:
#   FUZZ_SECONDS    seconds per harness (default 20); 0 only replays the
#                   corpus (the regression seeds) once
#   FUZZ_ARTIFACTS  where crashing inputs and logs are kept
#                   (default BUILDDIR/fuzz-artifacts)
#   FUZZ_JOBS       harnesses run at the same time (default 1)
#
# Running longer: this script throws away what a run learns.  To fuzz one
# harness for hours and keep the new inputs, run it on a working corpus
# directly, with as many workers as there are cores:
#
#   mkdir -p /tmp/work-session && cp tests/fuzz/corpus/session/* /tmp/work-session/
#   BUILDDIR/tests/fuzz/fuzz_session -max_total_time=14400 -jobs=4 -workers=4 \
#       -timeout=20 -max_len=20000 -close_fd_mask=2 /tmp/work-session
#
# then, for a crash-*, fix the bug, add the input to
# tests/fuzz/corpus/<harness>/ as regress-<what> and check it replays:
#   BUILDDIR/tests/fuzz/fuzz_session tests/fuzz/corpus/session/regress-<what>
# (FUZZ_LOG=debug shows the daemon's log for one input).  Keep the committed
# corpus small: merge only inputs that add coverage
#   BUILDDIR/tests/fuzz/fuzz_session -merge=1 tests/fuzz/corpus/session /tmp/work-session

set -u

usage() {
	echo "usage: $0 BUILDDIR [HARNESS...]   (HARNESS: pdu pdu_rx text login sense scsi lbastatus session discovery)" >&2
	exit 2
}

[ $# -ge 1 ] || usage
builddir=$1
shift
[ -d "$builddir" ] || usage
builddir=$(cd "$builddir" && pwd)
srcdir=$(cd "$(dirname "$0")" && pwd)
seconds=${FUZZ_SECONDS:-20}
artifacts=${FUZZ_ARTIFACTS:-$builddir/fuzz-artifacts}
jobs=${FUZZ_JOBS:-1}
case $seconds$jobs in
*[!0-9]*) echo "fuzz: FUZZ_SECONDS and FUZZ_JOBS are whole numbers" >&2; usage ;;
esac
[ "$jobs" -ge 1 ] || jobs=1

all="pdu pdu_rx text login sense scsi lbastatus session discovery"
harnesses=${*:-$all}

if [ ! -x "$builddir/tests/fuzz/fuzz_pdu" ]; then
	echo "fuzz: no harnesses in $builddir (configure with CC=clang --enable-fuzzing, then make)" >&2
	exit 77
fi

mkdir -p "$artifacts" || exit 2
work=$(mktemp -d "${TMPDIR:-/tmp}/iscsifs-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT INT TERM

# Longest input per harness: text and PDU streams need room for 8 KiB
# segments and over-long keys; the SCSI parsers do not.
max_len() {
	case $1 in
	text|login|session|discovery|pdu_rx) echo 20000 ;;
	*) echo 4096 ;;
	esac
}

# Run harness $1; write its one-line result to $work/$1.result.
run_one() {
	name=$1
	bin=$builddir/tests/fuzz/fuzz_$name
	if [ ! -x "$bin" ]; then
		echo "fuzz_$name: FAIL: $bin not built" > "$work/$name.result"
		return
	fi
	mkdir -p "$work/$name"
	if [ -d "$srcdir/corpus/$name" ]; then
		cp "$srcdir/corpus/$name"/* "$work/$name"/ 2>/dev/null
	fi
	log=$artifacts/fuzz_$name.log
	if [ "$seconds" -gt 0 ]; then
		budget="-max_total_time=$seconds"
	else
		budget="-runs=0"
	fi
	"$bin" "$budget" -timeout=20 -rss_limit_mb=4096 \
		-max_len="$(max_len "$name")" -close_fd_mask=2 -print_final_stats=1 \
		-artifact_prefix="$artifacts/fuzz_$name-" "$work/$name" > "$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
	ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | sed 's/ft: //')
	if [ $rc -eq 0 ]; then
		echo "fuzz_$name: ok: ${runs:-?} runs in ${seconds} s, coverage ${cov:-?} edges, ${ft:-?} features" \
			> "$work/$name.result"
	else
		crash=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
		echo "fuzz_$name: FAIL (exit $rc): ${crash:-no artifact}; log $log" > "$work/$name.result"
	fi
}

status=0
running=0
for name in $harnesses; do
	case " $all " in
	*" $name "*) ;;
	*) echo "fuzz: no harness $name" >&2; usage ;;
	esac
	run_one "$name" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait
		running=0
	fi
done
wait

for name in $harnesses; do
	cat "$work/$name.result"
	grep -q ': ok:' "$work/$name.result" || status=1
done
exit $status
