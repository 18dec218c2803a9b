#!/bin/sh
# scripts/version.sh BASE: print the version of this source tree, without
# a newline, for configure.ac's AC_INIT (autoconf runs it from the top of
# the tree when configure is made).
#
#   - a release tarball: the contents of .tarball-version, which
#     `make dist` writes (so a tarball keeps the version it was made
#     with, also when autoreconf runs again in it, as dh_autoreconf does);
#   - a git checkout with a tag vX.Y.Z among HEAD's ancestors: what
#     `git describe` says without the "v": "0.2.0" on the tagged commit,
#     "0.2.0-3-gabc1234" three commits later, "-dirty" added when
#     tracked files were changed;
#   - a git checkout before the first tag: BASE and the commit,
#     "0.1.0-gabc1234" (and "-dirty");
#   - anything else (a `git archive` export, a copy): BASE.
#
# BASE is the version written in configure.ac, the one place to change it
# for a release (then tag the release commit vBASE).  The version is taken
# when configure is made: after new commits, run autoreconf again to see
# them in `iscsifs --version`.

base=${1:?usage: version.sh BASE}
top=$(dirname "$0")/..

if [ -s "$top/.tarball-version" ]; then
    version=$(sed -n '1p' "$top/.tarball-version")
elif [ -e "$top/.git" ] && command -v git >/dev/null 2>&1 &&
    git -C "$top" rev-parse --verify -q HEAD >/dev/null 2>&1; then
    git -C "$top" update-index -q --refresh >/dev/null 2>&1
    if described=$(git -C "$top" describe --tags --match 'v[0-9]*' --abbrev=7 \
        --dirty 2>/dev/null); then
        version=${described#v}
    else
        version=$base-g$(git -C "$top" rev-parse --short=7 HEAD)
        git -C "$top" diff-index --quiet HEAD -- 2>/dev/null || version=$version-dirty
    fi
else
    version=$base
fi
printf '%s' "$version"
