#!/bin/bash
# version.sh: scripts/version.sh gives the version configure.ac's AC_INIT
# takes, in every kind of tree: a copy without git (the base version), a
# tarball (its .tarball-version, also inside a git checkout), git before
# the first tag (base and commit), after a tag (git describe without the
# "v"), with uncommitted changes ("-dirty"); never a trailing newline.
# Each case runs on a tree of its own in a temporary directory.
script=${top_srcdir:-.}/scripts/version.sh
[[ -x $script ]] || { echo "version.sh: no $script" >&2; exit 99; }
command -v git >/dev/null || { echo "version.sh: SKIP: git is not installed" >&2; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/iscsifs-version.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
export GIT_AUTHOR_NAME=test GIT_AUTHOR_EMAIL=test@example.invalid
export GIT_COMMITTER_NAME=test GIT_COMMITTER_EMAIL=test@example.invalid
export GIT_CONFIG_NOSYSTEM=1 HOME=$tmp

failures=0
# expect WHAT PATTERN TREE: the script of TREE must print a string
# matching the extended regex PATTERN, whole.
expect() {
    local what=$1 pattern=$2 tree=$3 got
    got=$("$tree/scripts/version.sh" 0.1.0; echo x)
    got=${got%x}
    if [[ $got =~ ^$pattern$ ]]; then
        echo "ok: $what: '$got'"
    else
        echo "FAIL: $what: expected /$pattern/, got '$got'" >&2
        failures=$((failures + 1))
    fi
}
# new_tree NAME: a tree with the script and one file, printed.
new_tree() {
    mkdir -p "$tmp/$1/scripts"
    cp "$script" "$tmp/$1/scripts/version.sh"
    echo one >"$tmp/$1/file"
    echo "$tmp/$1"
}
g() { git -C "$tree" "$@" >/dev/null 2>&1 || { echo "version.sh: git $* failed" >&2; exit 99; }; }

tree=$(new_tree copy)
expect "a copy without git" '0\.1\.0' "$tree"
printf '0.3.1\n' >"$tree/.tarball-version"
expect "a tarball" '0\.3\.1' "$tree"

tree=$(new_tree repo)
g init -q
g add -A
g commit -q -m one
expect "git before the first tag" '0\.1\.0-g[0-9a-f]{7}' "$tree"
echo two >"$tree/file"
expect "git with a change" '0\.1\.0-g[0-9a-f]{7}-dirty' "$tree"
g commit -q -a -m two
g tag -a v0.2.0 -m 0.2.0
expect "git on a tag" '0\.2\.0' "$tree"
echo three >"$tree/file"
g commit -q -a -m three
expect "git a commit after a tag" '0\.2\.0-1-g[0-9a-f]{7}' "$tree"
g tag other-tag
expect "a tag not named vX.Y.Z is not a version" '0\.2\.0-1-g[0-9a-f]{7}' "$tree"
printf '0.2.0-1-gabcdef0\n' >"$tree/.tarball-version"
expect ".tarball-version wins over git" '0\.2\.0-1-gabcdef0' "$tree"

((failures == 0)) || exit 1
echo "version.sh: every kind of tree gives its version"
