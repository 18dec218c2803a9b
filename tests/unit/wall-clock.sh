#!/bin/bash
# wall-clock.sh: no deadline of the daemon is taken from the wall clock.
# A guard beside test_clock_step (which shows the waits themselves are
# immune to a step of the wall clock): every timed wait in src/ goes
# through include/deadline.h, which waits on CLOCK_MONOTONIC.  Forbidden
# in src/: pthread_cond_timedwait() and sem_timedwait() (they compare
# with CLOCK_REALTIME unless told otherwise), and CLOCK_REALTIME itself
# except where a wall-clock time is what is wanted (the mount time that
# stat(2) shows, main.c).
src=${top_srcdir:-.}/src
[[ -d $src ]] || { echo "wall-clock.sh: no $src" >&2; exit 99; }
bad=$(grep -n -E 'pthread_cond_timedwait|sem_timedwait|CLOCK_REALTIME|gettimeofday' "$src"/*.c |
    grep -v -E '^[^:]*/main\.c:[0-9]+:.*clock_gettime\(CLOCK_REALTIME, &fs->mount_time\)')
if [[ -n $bad ]]; then
    echo "wall-clock.sh: a deadline or wait on the wall clock (use deadline.h):" >&2
    echo "$bad" >&2
    exit 1
fi
echo "wall-clock.sh: every timed wait in src/ is on CLOCK_MONOTONIC"
