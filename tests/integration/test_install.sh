#!/usr/bin/env bash
# test_install.sh: make install into a scratch prefix, build a host program with pkg-config against it, check the exports, the systemd files and the layouts of PREFIX=/usr and /usr/local, make uninstall.
#
# Run by tests/run.sh (DS_TEST_BUILD, DS_TEST_ROOT, DS_TEST_RUNDIR set); uses
# the already built tree (make BUILD=$DS_TEST_BUILD). Needs no service.
set -euo pipefail

fail() {
    echo "test_install: FAIL: $*" >&2
    exit 1
}
step() { echo "test_install: $*"; }

for v in DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_ROOT; do
    [[ -n "${!v:-}" ]] || fail "$v is not set: run me through tests/run.sh"
done
root=$DS_TEST_ROOT
build=$DS_TEST_BUILD
work=$(mktemp -d "$DS_TEST_RUNDIR/install.XXXXXX")
prefix=$work/prefix

header_version() {
    sed -n "s/^#define DS_VERSION_$1 \([0-9]*\)$/\1/p" "$2"
}
major=$(header_version MAJOR "$root/include/datasync.h")
version=$major.$(header_version MINOR "$root/include/datasync.h").$(header_version PATCH "$root/include/datasync.h")
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "cannot read DS_VERSION_* from include/datasync.h ($version)"
unit=datasync-consumer@.service
units=("$unit" datasync-capture@.service)

# make TARGET with the test's build dir; output kept, shown on failure.
run_make() {
    local log=$work/make-$1.log
    if ! timeout 300 make -C "$root" --no-print-directory BUILD="$build" "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        fail "make $* failed (log $log)"
    fi
}

# Every file and symlink under $1, relative, sorted.
tree_of() {
    (cd "$1" && find . \( -type f -o -type l \) -printf '%P\n' | LC_ALL=C sort)
}

# What make install must put under a tree, and nothing else: $1 the prefix
# in it ("" or "usr/"...), $2 the library dir, $3 the configuration dir.
expected_files() {
    local p=$1 lib=$2 etc=$3 page
    {
        printf '%s\n' "${p}bin/datasync" "${p}sbin/datasync-consumer" "${p}sbin/datasync-capture" "${p}include/datasync.h" \
            "$lib/libdatasync.a" "$lib/libdatasync.so.$version" "$lib/libdatasync.so.$major" \
            "$lib/libdatasync.so" "$lib/pkgconfig/datasync.pc" "$etc/datasync/datasync.conf.example" \
            "${p}lib/systemd/system/${units[0]}" "${p}lib/systemd/system/${units[1]}" "${p}lib/sysusers.d/datasync.conf" "${p}lib/tmpfiles.d/datasync.conf" \
            "${p}share/datasync/datasync-meta.sql"
        for page in "$root"/docs/*.[1-8]; do
            page=$(basename "$page")
            echo "${p}share/man/man${page##*.}/$page"
        done
    } | LC_ALL=C sort
}

# The man pages as installed for PREFIX $2 and SYSCONFDIR $3 under tree $1:
# the source's default paths (/usr/local/...) replaced by the real ones, and
# nothing else changed.
check_man_pages() {
    local tree=$1 pfx=$2 etc=$3 page name installed
    for page in "$root"/docs/*.[1-8]; do
        name=$(basename "$page")
        installed=$tree$pfx/share/man/man${name##*.}/$name
        sed -e "s|/usr/local/lib/systemd/system|$pfx/lib/systemd/system|g" \
            -e "s|/usr/local/lib/sysusers.d|$pfx/lib/sysusers.d|g" \
            -e "s|/usr/local/lib/tmpfiles.d|$pfx/lib/tmpfiles.d|g" \
            -e "s|/usr/local/etc|$etc|g" -e "s|/usr/local/sbin|$pfx/sbin|g" \
            -e "s|/usr/local/bin|$pfx/bin|g" "$page" >"$work/want-$name"
        diff -u "$work/want-$name" "$installed" >"$work/man.diff" || {
            cat "$work/man.diff" >&2
            fail "man page $name for PREFIX=$pfx does not name the installed paths (- expected, + installed)"
        }
    done
    grep -qF ".I $etc/datasync/datasync.conf.example" "$tree$pfx/share/man/man5/datasync.conf.5" ||
        fail "datasync.conf(5) for PREFIX=$pfx does not name $etc/datasync/datasync.conf.example"
    grep -qF ".I $pfx/sbin/datasync\-consumer" "$tree$pfx/share/man/man8/datasync-consumer.8" ||
        fail "datasync-consumer(8) for PREFIX=$pfx does not name $pfx/sbin/datasync-consumer"
    grep -qF ".I $pfx/lib/tmpfiles.d/datasync.conf" "$tree$pfx/share/man/man8/datasync-consumer.8" ||
        fail "datasync-consumer(8) for PREFIX=$pfx does not name $pfx/lib/tmpfiles.d/datasync.conf"
}

# ------------------------------------------------------------ install
step "make install PREFIX=$prefix"
run_make install PREFIX="$prefix"

diff -u <(expected_files "" lib etc) <(tree_of "$prefix") >"$work/tree.diff" || {
    cat "$work/tree.diff" >&2
    fail "the installed files differ from what make install must install (- expected, + found)"
}

lib=$prefix/lib
[[ -f "$lib/libdatasync.so.$version" && ! -L "$lib/libdatasync.so.$version" ]] ||
    fail "lib/libdatasync.so.$version is not a regular file"
[[ "$(readlink "$lib/libdatasync.so.$major")" == "libdatasync.so.$version" ]] ||
    fail "lib/libdatasync.so.$major -> $(readlink "$lib/libdatasync.so.$major"), expected libdatasync.so.$version"
[[ "$(readlink "$lib/libdatasync.so")" == "libdatasync.so.$major" ]] ||
    fail "lib/libdatasync.so -> $(readlink "$lib/libdatasync.so"), expected libdatasync.so.$major"
soname=$(readelf -d "$lib/libdatasync.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ "$soname" == "libdatasync.so.$major" ]] || fail "soname is '$soname', expected libdatasync.so.$major"
archive_syms=$(nm --defined-only "$lib/libdatasync.a" 2>/dev/null)
grep -q ' T ds_emit$' <<<"$archive_syms" || fail "lib/libdatasync.a does not define ds_emit"
cmp -s "$root/include/datasync.h" "$prefix/include/datasync.h" || fail "installed datasync.h differs from include/datasync.h"
cmp -s "$root/datasync.conf.example" "$prefix/etc/datasync/datasync.conf.example" ||
    fail "etc/datasync/datasync.conf.example differs from datasync.conf.example"
check_man_pages "" "$prefix" "$prefix/etc"
for prog in bin/datasync sbin/datasync-consumer sbin/datasync-capture; do
    [[ -x "$prefix/$prog" ]] || fail "$prog is not executable"
    out=$(timeout 10 "$prefix/$prog" --version 2>&1) || fail "$prog --version failed: $out"
    [[ "$out" == *"$version"* ]] || fail "$prog --version says '$out', not $version"
done
step "installed files, links, soname $soname, programs $version: ok"

# ------------------------------------------------------------ exports
# Only the public ds_* functions, versioned DATASYNC_$major (the version
# script's node shows as an absolute symbol), and exactly those datasync.h
# declares: nothing internal (ds__*), nothing of the dependencies.
nm -D --defined-only "$lib/libdatasync.so.$version" >"$work/exports.txt"
bad=$(awk -v node="DATASYNC_$major" '
    $2 == "A" && $3 == node { next }
    { name = $3; sub(/@.*/, "", name) }
    name !~ /^ds_[a-z][a-z0-9_]*$/ || name ~ /^ds__/ { print }' "$work/exports.txt")
[[ -z "$bad" ]] || fail "libdatasync exports more than the public ds_* API:"$'\n'"$bad"
exported=$(awk '$2 != "A" { name = $3; sub(/@.*/, "", name); print name }' "$work/exports.txt" | LC_ALL=C sort)
declared=$(sed -n 's/^DS_EXPORT[^(]*[ *]\(ds_[a-z0-9_]*\)(.*/\1/p' "$prefix/include/datasync.h" | LC_ALL=C sort)
[[ -n "$declared" ]] || fail "found no DS_EXPORT declarations in datasync.h"
diff -u <(echo "$declared") <(echo "$exported") >"$work/exports.diff" || {
    cat "$work/exports.diff" >&2
    fail "the exports differ from the DS_EXPORT functions of datasync.h (- declared, + exported)"
}
unversioned=$(awk -v node="DATASYNC_$major" '!($2 == "A" && $3 == node) && $3 !~ ("@@" node "$")' "$work/exports.txt")
[[ -z "$unversioned" ]] || fail "exports not versioned DATASYNC_$major:"$'\n'"$unversioned"
step "exports: the $(echo "$exported" | wc -l) ds_* functions of datasync.h, version DATASYNC_$major: ok"

# The library is what a host process loads: the producer talks to RabbitMQ,
# never to MySQL, so the MySQL client must not come with it.
needed=$(readelf -d "$lib/libdatasync.so.$version" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | LC_ALL=C sort | tr '\n' ' ')
[[ -n "$needed" ]] || fail "readelf shows no NEEDED entries for libdatasync"
[[ "$needed" != *mariadb* && "$needed" != *mysql* ]] || fail "libdatasync needs the MySQL client: $needed"
step "libdatasync needs only: $needed"

# ------------------------------------------------- a host program, pkg-config
export PKG_CONFIG_PATH=$lib/pkgconfig
pc_version=$(pkg-config --modversion datasync) || fail "pkg-config does not find datasync in $PKG_CONFIG_PATH"
[[ "$pc_version" == "$version" ]] || fail "pkg-config --modversion datasync: $pc_version, expected $version"
cflags=$(pkg-config --cflags datasync | sed "s/ *$//")
[[ "$cflags" == "-I$prefix/include" ]] ||
    fail "pkg-config --cflags datasync gives '$cflags': datasync.h needs only -I$prefix/include"
flags=$(pkg-config --cflags --libs datasync)
[[ "$flags" == *"-I$prefix/include"* && "$flags" == *"-L$lib"* ]] ||
    fail "pkg-config --cflags --libs datasync gives '$flags': not the prefix $prefix (was the .pc made for another PREFIX?)"

cat >"$work/host.c" <<'EOF'
/* host.c: a host program built only from the installed header and pkg-config's flags. */
#include <datasync.h>
#include <stdio.h>
#include <string.h>

#define STR2(x) #x
#define STR(x) STR2(x)

int main(void)
{
    const char *want = STR(DS_VERSION_MAJOR) "." STR(DS_VERSION_MINOR) "." STR(DS_VERSION_PATCH);
    ds_options *opts = ds_options_new();
    int rc;

    if (!opts) {
        fprintf(stderr, "host: ds_options_new returned NULL\n");
        return 1;
    }
    rc = ds_options_set(opts, "amqp.prefetch", "0");
    if (rc != DS_ECONFIG || strcmp(ds_err_name(rc), "ECONFIG") != 0 ||
        strstr(ds_options_errmsg(opts), "amqp.prefetch") == NULL) {
        fprintf(stderr, "host: ds_options_set(amqp.prefetch, 0): %d %s '%s'\n", rc,
                ds_err_name(rc), ds_options_errmsg(opts));
        ds_options_free(opts);
        return 1;
    }
    if (ds_options_set(opts, "producer.mode", "async") != 0) {
        fprintf(stderr, "host: ds_options_set(producer.mode): %s\n", ds_options_errmsg(opts));
        ds_options_free(opts);
        return 1;
    }
    ds_options_free(opts);
    ds_options_free(NULL);
    ds_producer_free(NULL);
    if (strcmp(ds_version(), want) != 0) {
        fprintf(stderr, "host: ds_version() %s, header %s\n", ds_version(), want);
        return 1;
    }
    printf("host: ok %s\n", ds_version());
    return 0;
}
EOF
step "cc host.c $flags"
# shellcheck disable=SC2086 # pkg-config's flags are words on purpose
cc -std=c11 -Wall -Wextra -pedantic -Werror -o "$work/host" "$work/host.c" $flags ||
    fail "the host program does not build with pkg-config's flags"
out=$(LD_LIBRARY_PATH=$lib timeout 10 "$work/host") || fail "the host program failed: $out"
[[ "$out" == "host: ok $version" ]] || fail "the host program printed '$out'"
resolved=$(LD_LIBRARY_PATH=$lib ldd "$work/host" | awk '$1 == "libdatasync.so.'"$major"'" { print $3 }')
[[ "$resolved" == "$lib/libdatasync.so.$major" ]] ||
    fail "the host program loads libdatasync from '$resolved', not $lib"

# The static archive, with pkg-config --static's flags (-ldatasync as the .a).
static_flags=$(pkg-config --static --cflags --libs datasync)
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror -o "$work/host-static" "$work/host.c" \
    ${static_flags/-ldatasync/-l:libdatasync.a} ||
    fail "the host program does not link libdatasync.a with pkg-config --static's flags ($static_flags)"
[[ "$(readelf -d "$work/host-static")" != *"NEEDED"*"libdatasync"* ]] || fail "host-static still needs libdatasync.so"
out=$(timeout 10 "$work/host-static") || fail "the static host program failed: $out"
if command -v c++ >/dev/null; then
    cp "$work/host.c" "$work/host.cc"
    # shellcheck disable=SC2086
    c++ -Wall -Wextra -Werror -o "$work/host-cxx" "$work/host.cc" $flags ||
        fail "datasync.h does not build in a C++ host"
    LD_LIBRARY_PATH=$lib timeout 10 "$work/host-cxx" >/dev/null || fail "the C++ host program failed"
fi
step "host programs (shared, static$(command -v c++ >/dev/null && echo ", C++")) built with pkg-config and run: ok"

# ------------------------------------------------------- systemd units
for u in "${units[@]}"; do
    installed_unit=$prefix/lib/systemd/system/$u
    want_exec="ExecStart=$prefix/sbin/${u%@.service} -c /etc/datasync/%i.conf"
    grep -qxF "$want_exec" "$installed_unit" || fail "$u: the installed ExecStart is not '$want_exec'"
    diff <(grep -v '^ExecStart=' "$root/packaging/systemd/$u") <(grep -v '^ExecStart=' "$installed_unit") >/dev/null ||
        fail "the installed unit differs from packaging/systemd/$u beyond ExecStart"
    for key in 'User=datasync' 'Restart=on-failure' 'KillSignal=SIGTERM' \
        'NoNewPrivileges=yes' 'ProtectSystem=strict' 'PrivateTmp=yes' 'RestartPreventExitStatus=78'; do
        grep -qxF "$key" "$installed_unit" || fail "$u lacks $key"
    done
    if command -v systemd-analyze >/dev/null; then
        # Documentation= names man pages: checked against the installed ones
        # when man(1) is here.
        man_opt=(--man=no)
        command -v man >/dev/null && man_opt=(--man=yes)
        if ! MANPATH=$prefix/share/man timeout 60 systemd-analyze verify "${man_opt[@]}" "$installed_unit" \
            >"$work/verify.log" 2>&1 || [[ -s "$work/verify.log" ]]; then
            cat "$work/verify.log" >&2
            fail "systemd-analyze verify $u"
        fi
        step "systemd-analyze verify $u (${man_opt[*]}): ok"
    else
        step "SKIP systemd-analyze verify: systemd-analyze is not installed (the other unit checks ran)"
    fi
done

# ------------------------------------------ sysusers.d and tmpfiles.d
# The user and group datasync, /var/lib/datasync 0755 (the clock file's
# directory) and a spool group datasync may write, applied for real with
# systemd's own tools to a scratch root.
for kind in sysusers.d tmpfiles.d; do
    cmp -s "$root/packaging/$kind/datasync.conf" "$prefix/lib/$kind/datasync.conf" ||
        fail "lib/$kind/datasync.conf differs from packaging/$kind/datasync.conf"
done
if command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null; then
    sysroot=$work/sysroot
    mkdir -p "$sysroot/etc" "$sysroot/usr/lib/sysusers.d" "$sysroot/usr/lib/tmpfiles.d"
    cp "$prefix/lib/sysusers.d/datasync.conf" "$sysroot/usr/lib/sysusers.d/"
    cp "$prefix/lib/tmpfiles.d/datasync.conf" "$sysroot/usr/lib/tmpfiles.d/"
    timeout 60 systemd-sysusers --root="$sysroot" >"$work/sysusers.log" 2>&1 ||
        { cat "$work/sysusers.log" >&2; fail "systemd-sysusers rejects sysusers.d/datasync.conf"; }
    uid=$(awk -F: '$1 == "datasync" { print $3 }' "$sysroot/etc/passwd")
    gid=$(awk -F: '$1 == "datasync" { print $3 }' "$sysroot/etc/group")
    [[ -n "$uid" && -n "$gid" ]] || fail "systemd-sysusers made no user and group datasync"
    [[ "$(awk -F: '$1 == "datasync" { print $4 }' "$sysroot/etc/passwd")" == "$gid" ]] ||
        fail "the user datasync's primary group is not datasync"
    timeout 60 systemd-tmpfiles --root="$sysroot" --create >"$work/tmpfiles.log" 2>&1 ||
        { cat "$work/tmpfiles.log" >&2; fail "systemd-tmpfiles --create fails with tmpfiles.d/datasync.conf"; }
    for want in "var/lib/datasync 755 $uid $gid" "var/lib/datasync/spool 2770 $uid $gid"; do
        read -r dir mode owner group <<<"$want"
        got=$(stat -c '%a %u %g' "$sysroot/$dir" 2>/dev/null) || fail "systemd-tmpfiles made no /$dir"
        [[ "$got" == "$mode $owner $group" ]] || fail "/$dir is '$got' (mode uid gid), expected '$mode $owner $group'"
    done
    step "sysusers.d (user and group datasync), tmpfiles.d (/var/lib/datasync 0755, spool 2770 group datasync): ok"
else
    step "SKIP systemd-sysusers/systemd-tmpfiles: not installed (the files were compared)"
fi

# ------------------------------------------------------------ uninstall
step "make uninstall PREFIX=$prefix"
run_make uninstall PREFIX="$prefix"
left=$(tree_of "$prefix")
[[ -z "$left" ]] || fail "make uninstall left files behind:"$'\n'"$left"

# -------------------------------------------- DESTDIR and another PREFIX
# A staged install (packagers): files under DESTDIR, paths inside them
# (.pc, unit) naming PREFIX. Also proves the .pc follows a changed PREFIX.
dest=$work/dest
step "make install DESTDIR=$dest PREFIX=/opt/datasync"
run_make install DESTDIR="$dest" PREFIX=/opt/datasync
diff -u <(expected_files "" lib etc) <(tree_of "$dest/opt/datasync") >"$work/tree-destdir.diff" || {
    cat "$work/tree-destdir.diff" >&2
    fail "DESTDIR install: the files differ (- expected, + found)"
}
[[ "$(PKG_CONFIG_PATH='' PKG_CONFIG_LIBDIR=$dest/opt/datasync/lib/pkgconfig pkg-config --variable=prefix datasync)" == /opt/datasync ]] ||
    fail "DESTDIR install: datasync.pc's prefix is not /opt/datasync"
grep -qxF "ExecStart=/opt/datasync/sbin/datasync-consumer -c /etc/datasync/%i.conf" \
    "$dest/opt/datasync/lib/systemd/system/$unit" || fail "DESTDIR install: the unit's ExecStart does not name /opt/datasync/sbin"
run_make uninstall DESTDIR="$dest" PREFIX=/opt/datasync
left=$(tree_of "$dest")
[[ -z "$left" ]] || fail "make uninstall DESTDIR=... left files behind:"$'\n'"$left"
step "DESTDIR install and uninstall: ok"

# ------------------------------------------- the layouts of /usr, /usr/local
# PREFIX=/usr is a package's layout: configuration in /etc (not /usr/etc),
# the library in the multiarch directory when the compiler names one. The
# default PREFIX=/usr/local keeps everything under it.
triplet=$(${CC:-cc} -print-multiarch 2>/dev/null || true)
usr_lib=usr/lib${triplet:+/$triplet}
for layout in "/usr $usr_lib etc" "/usr/local usr/local/lib usr/local/etc"; do
    read -r pfx lib_rel etc_rel <<<"$layout"
    dest=$work/dest-${pfx//\//_}
    if [[ "$pfx" == /usr/local ]]; then
        step "make install DESTDIR=$dest (the default PREFIX)"
        run_make install DESTDIR="$dest"
    else
        step "make install DESTDIR=$dest PREFIX=$pfx"
        run_make install DESTDIR="$dest" PREFIX="$pfx"
    fi
    diff -u <(expected_files "${pfx#/}/" "$lib_rel" "$etc_rel") <(tree_of "$dest") >"$work/tree-layout.diff" || {
        cat "$work/tree-layout.diff" >&2
        fail "PREFIX=$pfx: the installed files differ (- expected, + found)"
    }
    pc_libdir=$(PKG_CONFIG_PATH='' PKG_CONFIG_LIBDIR=$dest/$lib_rel/pkgconfig pkg-config --variable=libdir datasync)
    [[ "$pc_libdir" == "/$lib_rel" ]] || fail "PREFIX=$pfx: datasync.pc's libdir is $pc_libdir, not /$lib_rel"
    grep -qxF "ExecStart=$pfx/sbin/datasync-consumer -c /etc/datasync/%i.conf" \
        "$dest$pfx/lib/systemd/system/$unit" || fail "PREFIX=$pfx: the unit's ExecStart does not name $pfx/sbin"
    check_man_pages "$dest" "$pfx" "/$etc_rel"
    if [[ "$pfx" == /usr ]]; then
        step "PREFIX=/usr: /etc/datasync, /$lib_rel, man pages naming them: ok"
    else
        step "PREFIX=/usr/local: everything under /usr/local: ok"
    fi
    run_make uninstall DESTDIR="$dest" ${pfx:+PREFIX="$pfx"}
    left=$(tree_of "$dest")
    [[ -z "$left" ]] || fail "make uninstall DESTDIR=$dest PREFIX=$pfx left files behind:"$'\n'"$left"
done
echo "test_install: ok"
