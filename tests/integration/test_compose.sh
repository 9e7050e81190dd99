#!/usr/bin/env bash
# test_compose.sh: checks compose.yaml, the Dockerfile and the configuration they mount, without Docker: docker-compose config, volumes, health checks, the runtime image's files, then against make demo.
#
# Docker cannot run here, so this checks what can be checked without it:
#   1. Debian's docker-compose accepts compose.yaml (`docker-compose config`
#      validates it against the Compose schema, no daemon needed), and the
#      resolved file has the promised shape: the services, health checks,
#      depends_on conditions, the consumers built from the Dockerfile, every
#      published port on 127.0.0.1, every mounted file present; each
#      server's containers share a volume of their own at /var/lib/datasync
#      (spool and clock file); every consumer has a health check.
#   2. The node configurations it mounts (examples/compose/node-*.conf) hold
#      the settings scripts/demo.sh writes for its servers, key for key,
#      apart from how the broker and the database are reached (hosts, ports,
#      socket) and paths; they load with libdatasync's own parser; and their
#      hosts are services of compose.yaml.
#   3. The table it creates (examples/compose/users.sql) is the one demo.sh
#      creates: both run on the private MariaDB and SHOW CREATE TABLE agrees.
#   4. The Dockerfile installs the Debian packages that provide the
#      pkg-config modules the Makefile builds with, and at run time the
#      libraries the built programs need; it runs as a user, not root, with
#      the fixed UID and GID 990; its runtime stage copies only what
#      `make install-runtime` installs (programs, libdatasync.so, the
#      example configuration: no header, static library or man page), and
#      that target is checked for exactly those files.
# Run by tests/run.sh (DS_TEST_* set, services up).
set -euo pipefail

fail() {
    echo "test_compose: FAIL: $*" >&2
    exit 1
}
step() { echo "test_compose: $*"; }

for v in DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_ROOT DS_TEST_SERVICES DS_TEST_AMQP_URL DS_TEST_MYSQL_SOCKET; do
    [[ -n "${!v:-}" ]] || fail "$v is not set: run me through tests/run.sh"
done
root=$DS_TEST_ROOT
build=$DS_TEST_BUILD
work=$(mktemp -d "$DS_TEST_RUNDIR/compose.XXXXXX")
# Debian's python3 with python3-yaml (not a python3 of pyenv or a venv).
py=/usr/bin/python3

command -v docker-compose >/dev/null ||
    fail "docker-compose is not installed: scripts/install-deps.sh installs Debian's docker-compose (make deps)"
"$py" -c 'import yaml' 2>/dev/null || fail "$py cannot import yaml: scripts/install-deps.sh installs python3-yaml"
for f in compose.yaml Dockerfile .dockerignore scripts/demo.sh examples/compose/users.sql; do
    [[ -f "$root/$f" ]] || fail "$f is missing"
done

# ------------------------------------------------ 1. docker-compose config
# No DATASYNC_*_PORT from the caller's environment: the defaults are checked,
# then moved ports once more, which must stay on 127.0.0.1 too.
step "docker-compose config ($(docker-compose version --short 2>/dev/null || echo '?'))"
compose_config() {
    (cd "$root" && env -u DOCKER_HOST -u COMPOSE_FILE -u COMPOSE_PROJECT_NAME \
        -u DATASYNC_AMQP_PORT -u DATASYNC_UI_PORT \
        -u DATASYNC_MYSQL_A_PORT -u DATASYNC_MYSQL_B_PORT -u DATASYNC_MYSQL_C_PORT \
        "$@" timeout 60 docker-compose -f compose.yaml --project-directory . config)
}
compose_config >"$work/config.yaml" 2>"$work/config.err" || {
    cat "$work/config.err" >&2
    fail "docker-compose config rejects compose.yaml"
}
compose_config DATASYNC_AMQP_PORT=25672 DATASYNC_MYSQL_B_PORT=23306 >"$work/config-moved.yaml" 2>"$work/config.err" || {
    cat "$work/config.err" >&2
    fail "docker-compose config rejects compose.yaml with DATASYNC_*_PORT set"
}

# ------------------------------------------- the configuration a host loads
# libdatasync's own parser (the consumer's too) must accept each node file.
cat >"$work/load.c" <<'EOF'
/* load.c: loads each configuration file with ds_options_load, as the consumer does. */
#include <datasync.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        ds_options *opts = ds_options_new();
        if (!opts || ds_options_load(opts, argv[i]) != 0) {
            fprintf(stderr, "%s\n", opts ? ds_options_errmsg(opts) : "out of memory");
            bad = 1;
        }
        ds_options_free(opts);
    }
    return bad;
}
EOF
cc -std=c11 -Wall -Werror -I"$root/include" -o "$work/load" "$work/load.c" -L"$build" -ldatasync \
    -Wl,-rpath,"$build" || fail "cannot build the configuration loader against $build"
shopt -s nullglob
node_confs=("$root"/examples/compose/node-*.conf)
shopt -u nullglob
((${#node_confs[@]})) || fail "no examples/compose/node-*.conf"
"$work/load" "${node_confs[@]}" || fail "libdatasync rejects a configuration in examples/compose/"

# ------------------------------------------ the runtime image's files
# The Dockerfile's runtime stage holds what `make install-runtime` installs;
# here is what that is, for real.
major=$(sed -n 's/^#define DS_VERSION_MAJOR \([0-9]*\)$/\1/p' "$root/include/datasync.h")
version=$major.$(sed -n 's/^#define DS_VERSION_MINOR \([0-9]*\)$/\1/p' "$root/include/datasync.h").$(sed -n 's/^#define DS_VERSION_PATCH \([0-9]*\)$/\1/p' "$root/include/datasync.h")
timeout 300 make -C "$root" --no-print-directory BUILD="$build" PREFIX=/usr/local DESTDIR="$work/runtime" \
    install-runtime >"$work/make-runtime.log" 2>&1 || {
    tail -n 30 "$work/make-runtime.log" >&2
    fail "make install-runtime failed"
}
(cd "$work/runtime" && find . \( -type f -o -type l \) -printf '%P\n' | LC_ALL=C sort) >"$work/runtime.txt"
printf '%s\n' usr/local/bin/datasync usr/local/etc/datasync/datasync.conf.example \
    "usr/local/lib/libdatasync.so.$major" "usr/local/lib/libdatasync.so.$version" \
    usr/local/sbin/datasync-capture usr/local/sbin/datasync-consumer | LC_ALL=C sort >"$work/runtime-want.txt"
diff -u "$work/runtime-want.txt" "$work/runtime.txt" >&2 ||
    fail "make install-runtime installs other files than the programs, the .so and the example configuration (- expected, + found)"

# --------------------------------------------- 2 and 4: the comparisons
cat >"$work/check.py" <<'EOF'
"""check.py: compose.yaml's resolved configuration and its node files against scripts/demo.sh."""
import configparser
import os
import re
import string
import subprocess
import sys
import urllib.parse

import yaml

root, work, amqp_url, socket = sys.argv[1:5]
errors = []


def err(msg):
    errors.append(msg)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# --------------------------------------------------------- compose config
def ports_of(svc):
    """(host_ip, published, target) of every published port, short or long syntax."""
    out = []
    for p in svc.get("ports") or []:
        if isinstance(p, dict):
            out.append((p.get("host_ip"), str(p.get("published")), str(p.get("target"))))
        else:
            parts = str(p).split("/")[0].split(":")
            if len(parts) == 3:
                out.append((parts[0], parts[1], parts[2]))
            else:
                out.append((None, parts[0] if len(parts) == 2 else None, parts[-1]))
    return out


def mounts_of(svc):
    """(source, target, read_only) of every volume, short or long syntax."""
    out = []
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            out.append((v.get("source"), v.get("target"), bool(v.get("read_only"))))
        else:
            parts = str(v).split(":")
            out.append((parts[0], parts[1] if len(parts) > 1 else parts[0],
                        len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def check_compose(path, what):
    cfg = yaml.safe_load(read(path))
    services = cfg.get("services") or {}
    for name, svc in services.items():
        for host_ip, published, target in ports_of(svc):
            if host_ip != "127.0.0.1":
                err(f"{what}: {name} publishes port {target} on {host_ip or 'every address'}, not 127.0.0.1")
        for source, target, _ in mounts_of(svc):
            if source and source.startswith("/") and not os.path.exists(source):
                err(f"{what}: {name} mounts {source}, which does not exist")
    return cfg, services


cfg, services = check_compose(os.path.join(work, "config.yaml"), "compose.yaml")
check_compose(os.path.join(work, "config-moved.yaml"), "compose.yaml with DATASYNC_*_PORT")
moved = yaml.safe_load(read(os.path.join(work, "config-moved.yaml")))["services"]
if ("127.0.0.1", "25672", "5672") not in ports_of(moved.get("rabbitmq", {})):
    err("DATASYNC_AMQP_PORT does not move RabbitMQ's published AMQP port")

demo = read(os.path.join(root, "scripts", "demo.sh"))
m = re.search(r"^nodes=\(([^)]*)\)", demo, re.M)
if not m:
    sys.exit("check.py: scripts/demo.sh no longer has nodes=(...): update test_compose.sh")
nodes = m.group(1).split()
m = re.search(r"datasync\"? -c \S+ setup --nodes (\S+)", demo)
demo_setup_nodes = m.group(1) if m else None

rabbit = services.get("rabbitmq")
if not rabbit:
    err("compose.yaml has no service rabbitmq")
else:
    if not str(rabbit.get("image", "")).startswith("rabbitmq:") or "management" not in str(rabbit.get("image")):
        err(f"rabbitmq's image is {rabbit.get('image')!r}, expected rabbitmq:3-management (management UI)")
    if "healthcheck" not in rabbit:
        err("rabbitmq has no healthcheck")
    targets = {t for _, _, t in ports_of(rabbit)}
    for port in ("5672", "15672"):
        if port not in targets:
            err(f"rabbitmq does not publish port {port}")


def datasync_service(name, svc):
    build = svc.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    if not context or os.path.realpath(context) != os.path.realpath(root):
        err(f"{name} is not built from the repository's Dockerfile (build: {build!r})")
    elif isinstance(build, dict) and build.get("dockerfile", "Dockerfile") != "Dockerfile":
        err(f"{name} is built from {build.get('dockerfile')}, not Dockerfile")
    confs = [s for s, t, _ in mounts_of(svc) if t == "/etc/datasync/datasync.conf"]
    ro = [r for _, t, r in mounts_of(svc) if t == "/etc/datasync/datasync.conf"]
    if len(confs) != 1:
        err(f"{name} does not mount one configuration at /etc/datasync/datasync.conf")
        return None
    if not ro[0]:
        err(f"{name} mounts its configuration writable; mount it :ro")
    return confs[0]


def depends(name, svc, want):
    deps = svc.get("depends_on") or {}
    for dep, cond in want.items():
        got = deps.get(dep, {}).get("condition") if isinstance(deps, dict) else None
        if got != cond:
            err(f"{name} depends on {dep} with condition {got!r}, expected {cond}")


setup = services.get("setup")
if not setup:
    err("compose.yaml has no one-shot service setup")
else:
    datasync_service("setup", setup)
    cmd = setup.get("command") or []
    cmd = cmd.split() if isinstance(cmd, str) else cmd
    want_nodes = ",".join(nodes)
    if "setup" not in cmd or "--nodes" not in cmd or cmd[cmd.index("--nodes") + 1:][:1] != [want_nodes]:
        err(f"setup runs {cmd}, not datasync setup --nodes {want_nodes}")
    if demo_setup_nodes and demo_setup_nodes != want_nodes:
        err(f"demo.sh sets up nodes {demo_setup_nodes}, compose {want_nodes}")
    if str(setup.get("restart", "no")) not in ("no", "False", "false"):
        err(f"setup restarts ({setup.get('restart')}); it is a one-shot job")
    depends("setup", setup, {"rabbitmq": "service_healthy"})


# -------------------------------------------------- configuration files
def load_ini(text, where):
    """section.key -> value, with datasync.conf's comment rules (';'/'#' lines, ' ;' after a value)."""
    p = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",),
                                  comment_prefixes=(";", "#"), delimiters=("=",), strict=True)
    try:
        p.read_string(text, source=where)
    except configparser.Error as e:
        err(f"{where}: {e}")
        return {}
    return {f"{s}.{k}": v for s in p.sections() for k, v in p.items(s)}


# How the broker and database are reached differs by design; spool paths too.
REACH = {"mysql.host", "mysql.port", "mysql.socket", "metrics.listen"}
PATHS = {"producer.spool_dir", "node.clock_file"}


def comparable(conf):
    out = {}
    for key, value in conf.items():
        if key in REACH:
            continue
        if key in PATHS:
            value = "<path>"
        elif key == "amqp.url":
            urls = []
            for u in value.split():
                p = urllib.parse.urlsplit(u)
                urls.append(urllib.parse.urlunsplit(
                    (p.scheme, f"{p.username}:{p.password}@<host>", p.path, p.query, p.fragment)))
            value = " ".join(urls)
        out[key] = value
    return out


m = re.search(r'cat >"\$DS_TEST_RUNDIR/node-\$n\.conf" <<EOF\n(.*?)\nEOF\n', demo, re.S)
if not m:
    sys.exit("check.py: scripts/demo.sh no longer writes node-$n.conf with a heredoc: update test_compose.sh")
demo_conf = string.Template(m.group(1))

STATE_DIR = "/var/lib/datasync"
volumes = cfg.get("volumes") or {}
state_volumes = {}

for n in nodes:
    try:
        demo_text = demo_conf.substitute(n=n, DS_TEST_AMQP_URL=amqp_url, DS_TEST_MYSQL_SOCKET=socket,
                                         DS_TEST_RUNDIR="/run/dir")
    except (KeyError, ValueError) as e:
        sys.exit(f"check.py: demo.sh's configuration uses {e}, unknown to this test: update test_compose.sh")
    compose_path = os.path.join(root, "examples", "compose", f"node-{n}.conf")
    if not os.path.exists(compose_path):
        err(f"examples/compose/node-{n}.conf is missing (demo.sh runs node {n})")
        continue
    d = load_ini(demo_text, f"demo.sh node {n}")
    c = load_ini(read(compose_path), f"examples/compose/node-{n}.conf")
    dc, cc = comparable(d), comparable(c)
    for key in sorted(set(dc) | set(cc)):
        if dc.get(key) != cc.get(key):
            err(f"node {n}: {key} is {cc.get(key)!r} in examples/compose/node-{n}.conf "
                f"but {dc.get(key)!r} in scripts/demo.sh")

    # Compose's own side of what the comparison leaves out.
    consumer, maria = services.get(f"consumer-{n}"), services.get(f"maria-{n}")
    if not consumer:
        err(f"compose.yaml has no service consumer-{n}")
        continue
    if not maria:
        err(f"compose.yaml has no service maria-{n}")
        continue
    mounted = datasync_service(f"consumer-{n}", consumer)
    if mounted and os.path.realpath(mounted) != os.path.realpath(compose_path):
        err(f"consumer-{n} mounts {mounted}, not examples/compose/node-{n}.conf")
    cmd = consumer.get("command") or []
    cmd = cmd.split() if isinstance(cmd, str) else cmd
    if not cmd or cmd[0] != "datasync-consumer":
        err(f"consumer-{n} runs {cmd}, not datasync-consumer")
    depends(f"consumer-{n}", consumer, {"rabbitmq": "service_healthy", f"maria-{n}": "service_healthy",
                                        "setup": "service_completed_successfully"})
    health = consumer.get("healthcheck") or {}
    test = health.get("test") or []
    test = [test] if isinstance(test, str) else test
    if not test or health.get("disable") or test[0] == "NONE":
        err(f"consumer-{n} has no health check")
    elif test[0] not in ("CMD", "CMD-SHELL") or not " ".join(test[1:]).strip():
        err(f"consumer-{n}'s health check {test!r} runs nothing")
    elif "datasync-consum" not in " ".join(test[1:]) and "health" not in " ".join(test[1:]):
        err(f"consumer-{n}'s health check {test!r} looks neither for the consumer's process nor at /health")

    # One volume per server at /var/lib/datasync, holding what the node
    # file puts there: the consumer's clock file, the producers' spool.
    state = [s for s, t, _ in mounts_of(consumer) if t == STATE_DIR]
    if len(state) != 1 or not state[0] or state[0].startswith("/") or state[0] not in volumes:
        err(f"consumer-{n} does not mount a named volume of compose.yaml at {STATE_DIR} (got {state})")
    else:
        if state[0] in state_volumes.values():
            other = [k for k, v in state_volumes.items() if v == state[0]]
            err(f"consumer-{n} shares its volume {state[0]} with consumer-{other[0]}: one per server")
        state_volumes[n] = state[0]
    for key in ("node.clock_file", "producer.spool_dir"):
        if not c.get(key, "").startswith(STATE_DIR + "/"):
            err(f"node-{n}.conf's {key} ({c.get(key)!r}) is not on the volume at {STATE_DIR}")
    if "healthcheck" not in maria:
        err(f"maria-{n} has no healthcheck")
    env = maria.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    if env.get("MARIADB_DATABASE") != c.get("mysql.database"):
        err(f"maria-{n} creates database {env.get('MARIADB_DATABASE')!r}, node-{n}.conf uses {c.get('mysql.database')!r}")
    if not any(t.startswith("/docker-entrypoint-initdb.d/") and os.path.realpath(s or "") ==
               os.path.realpath(os.path.join(root, "examples", "compose", "users.sql"))
               for s, t, _ in mounts_of(maria)):
        err(f"maria-{n} does not mount examples/compose/users.sql in /docker-entrypoint-initdb.d/")
    if c.get("mysql.host") != f"maria-{n}" or c.get("mysql.port", "3306") != "3306" or c.get("mysql.socket"):
        err(f"node-{n}.conf does not reach maria-{n}:3306 over TCP")
    for u in c.get("amqp.url", "").split():
        p = urllib.parse.urlsplit(u)
        if p.hostname not in services or (p.port or 5672) != 5672:
            err(f"node-{n}.conf's amqp.url {u} is not a compose service on 5672")

# The setup job emits (datasync publish) as the server whose file it mounts:
# it shares that server's volume.
if setup:
    conf = next((s for s, t, _ in mounts_of(setup) if t == "/etc/datasync/datasync.conf"), None)
    owner = [n for n in nodes if conf and os.path.realpath(conf) ==
             os.path.realpath(os.path.join(root, "examples", "compose", f"node-{n}.conf"))]
    state = [s for s, t, _ in mounts_of(setup) if t == STATE_DIR]
    if owner and owner[0] in state_volumes and state != [state_volumes[owner[0]]]:
        err(f"setup mounts {state or 'nothing'} at {STATE_DIR}, not server {owner[0]}'s volume "
            f"{state_volumes[owner[0]]}")

# The demo's table, for the database check that follows (run by the shell).
m = re.search(r'sql -e "([^"]*CREATE DATABASE demo_\$n[^"]*)"', demo)
if not m:
    sys.exit("check.py: scripts/demo.sh no longer creates demo_$n with sql -e \"...\": update test_compose.sh")
with open(os.path.join(work, "demo-schema.sql"), "w", encoding="utf-8") as f:
    f.write(string.Template(m.group(1)).substitute(n="composecheck") + "\n")


# ------------------------------------------------------------ Dockerfile
def stages(text):
    text = re.sub(r"\\\n", " ", text)
    out, cur = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split()[0].upper()
        if word == "FROM":
            cur = {"from": line.split()[1], "lines": []}
            out.append(cur)
        elif cur is not None:
            cur["lines"].append(line)
    return out


def apt_packages(stage):
    pkgs = set()
    for line in stage["lines"]:
        for m in re.finditer(r"apt-get install((?:\s+[^&;|]+)+)", line):
            pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
    return pkgs


def package_of(path_glob):
    r = subprocess.run(["dpkg", "-S", path_glob], capture_output=True, text=True)
    return {line.split(":")[0] for line in r.stdout.splitlines()}


st = stages(read(os.path.join(root, "Dockerfile")))
if len(st) < 2:
    err("the Dockerfile is not a build stage and a run stage")
else:
    build_stage, run_stage = st[0], st[-1]
    for s in (build_stage, run_stage):
        if not s["from"].startswith("debian:bookworm"):
            err(f"a Dockerfile stage is FROM {s['from']}, not Debian bookworm")
    if not any(re.match(r"RUN .*\bmake\b", l) for l in build_stage["lines"]):
        err("the Dockerfile's build stage does not build with make")
    users = [l.split()[1] for l in run_stage["lines"] if l.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        err("the Dockerfile's image runs as root (no USER, or USER root)")
    cmd = " ".join(l for l in run_stage["lines"] if l.upper().startswith(("CMD", "ENTRYPOINT")))
    if "datasync-consumer" not in cmd:
        err("the Dockerfile's image does not run datasync-consumer by default")

    # The runtime stage: only what `make install-runtime` puts in a staging
    # directory of the build stage (checked above to be the programs, the
    # .so and the example configuration), nothing else from the build.
    m = None
    for line in build_stage["lines"]:
        m = m or re.search(r"\bmake\b[^&;|]*\bDESTDIR=(\S+)[^&;|]*\binstall-runtime\b", line) \
            or re.search(r"\bmake\b[^&;|]*\binstall-runtime\b[^&;|]*\bDESTDIR=(\S+)", line)
    staged = m.group(1).rstrip("/") if m else None
    if not staged:
        err("the Dockerfile's build stage does not stage its files with make install-runtime DESTDIR=...")
    if any(re.search(r"\bmake\b[^&;|]*\binstall\b(?!-)", l) for l in build_stage["lines"]):
        err("the Dockerfile's build stage runs make install (headers, static library, man pages): "
            "use make install-runtime")
    copies = [l.split() for l in run_stage["lines"] if l.upper().startswith(("COPY", "ADD"))]
    from_build = [c for c in copies if any(w.startswith("--from=") for w in c)]
    if not from_build:
        err("the Dockerfile's runtime stage copies nothing from the build stage")
    for c in from_build:
        srcs = [w for w in c[1:-1] if not w.startswith("--")]
        if staged and [s.rstrip("/") for s in srcs] != [staged]:
            err(f"the Dockerfile's runtime stage copies {' '.join(srcs)} from the build stage, "
                f"not only {staged}/ (what make install-runtime staged)")
    text = " ".join(run_stage["lines"])
    for bad in ("include", "libdatasync.a", "share/man", "pkgconfig", "build-essential", "-dev "):
        if bad in text:
            err(f"the Dockerfile's runtime stage mentions {bad!r}: headers, static library, man pages "
                f"and compilers stay in the build stage")

    # A fixed UID and GID 990 for datasync, ARG defaults resolved.
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", "\n".join(run_stage["lines"]), re.M))

    def resolve(s):
        return re.sub(r'"?\$\{?(\w+)\}?"?', lambda m: args.get(m.group(1), m.group(0)), s)

    for tool, flag in (("useradd", "--uid"), ("groupadd", "--gid")):
        m = re.search(rf"\b{tool}\b[^&;|]*?{flag}[ =](\S+)[^&;|]*\bdatasync\b", resolve(text))
        if not m or m.group(1) != "990":
            err(f"the Dockerfile's {tool} does not give datasync the fixed {flag} 990 "
                f"(found {m.group(1) if m else 'none'})")
    # The state directory as tmpfiles.d lays it out on a server.
    for path, mode in (("/var/lib/datasync", "0755"), ("/var/lib/datasync/spool", "2770")):
        if not re.search(rf"install -d [^&;|]*-m {mode} {re.escape(path)}(\s|$)", text):
            err(f"the Dockerfile's runtime stage does not make {path} mode {mode} "
                f"(packaging/tmpfiles.d/datasync.conf)")

    # Build: the package of every pkg-config module the Makefile uses.
    mk = read(os.path.join(root, "Makefile"))
    modules = []
    for var in ("LIB_PKGS", "SERVER_PKGS", "CONSUMER_PKGS"):
        m = re.search(rf"^{var}\s*:?=\s*(.*)$", mk, re.M)
        if not m:
            sys.exit(f"check.py: the Makefile no longer sets {var}: update test_compose.sh")
        modules += m.group(1).split()
    build_pkgs = apt_packages(build_stage)
    for mod in modules:
        r = subprocess.run(["pkg-config", "--variable=pcfiledir", mod], capture_output=True, text=True)
        owners = package_of(os.path.join(r.stdout.strip(), mod + ".pc")) if r.returncode == 0 else set()
        if not owners:
            err(f"cannot tell which Debian package provides pkg-config module {mod}")
        elif not owners & build_pkgs:
            err(f"the Dockerfile's build stage lacks {' or '.join(sorted(owners))} (pkg-config {mod}, Makefile LIB_PKGS/SERVER_PKGS/CONSUMER_PKGS)")

    # Run: the package of every library the programs and libdatasync need.
    run_pkgs = apt_packages(run_stage)
    triplet = subprocess.run(["cc", "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    for binary in sys.argv[5:]:
        r = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True)
        for soname in re.findall(r"\(NEEDED\).*\[(.*)\]", r.stdout):
            owners = set()
            r2 = subprocess.run(["dpkg", "-S", "*/" + soname], capture_output=True, text=True)
            for line in r2.stdout.splitlines():
                pkg, _, path = line.partition(": ")
                if re.fullmatch(rf"(/usr)?/lib/{re.escape(triplet)}/{re.escape(soname)}", path.strip()):
                    owners.add(pkg.split(":")[0])
            if not owners:
                err(f"cannot tell which Debian package provides {soname} (needed by {os.path.basename(binary)})")
            elif owners & {"libc6"}:
                continue  # in every Debian image
            elif not owners & run_pkgs:
                err(f"the Dockerfile's run stage lacks {' or '.join(sorted(owners))} "
                    f"({soname}, needed by {os.path.basename(binary)})")

ignore = read(os.path.join(root, ".dockerignore")).split()
for pattern in (".git", "build", "build-*"):
    if pattern not in ignore:
        err(f".dockerignore does not exclude {pattern}")

for e in errors:
    print("check.py: " + e, file=sys.stderr)
print(f"check.py: nodes {','.join(nodes)}: {len(errors)} problem(s)")
sys.exit(1 if errors else 0)
EOF
step "compose.yaml's shape, examples/compose/node-*.conf against scripts/demo.sh, Dockerfile packages"
"$py" "$work/check.py" "$root" "$work" "$DS_TEST_AMQP_URL" "$DS_TEST_MYSQL_SOCKET" \
    "$build/datasync-consumer" "$build/datasync" "$build/libdatasync.so.0" ||
    fail "compose.yaml, its configuration or the Dockerfile drifted from make demo (see above)"

# ------------------------------------------------- 3. the table, for real
# demo.sh's own statement on one side; on the other users.sql run as the
# MariaDB image runs it: in the database it made with the server's default
# character set (latin1 in mariadb:10.11), --database selected.
sql() { timeout 30 "$DS_TEST_SERVICES" maria sql "$@"; }
step "examples/compose/users.sql against demo.sh's table, on the private MariaDB"
sql -e "DROP DATABASE IF EXISTS compose_composecheck; CREATE DATABASE compose_composecheck CHARACTER SET latin1" ||
    fail "cannot create a scratch database"
sql --database=compose_composecheck <"$root/examples/compose/users.sql" || fail "examples/compose/users.sql fails"
sql <"$work/demo-schema.sql" || fail "demo.sh's table statement fails ($work/demo-schema.sql)"
describe() {
    local db=$1 t
    sql -N -B -e "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA
        WHERE SCHEMA_NAME = '$db'"
    for t in $(sql -N -B -e "SHOW TABLES FROM $db"); do
        sql -N -B -e "SHOW CREATE TABLE $db.$t"
    done
}
describe demo_composecheck >"$work/demo.schema"
describe compose_composecheck >"$work/compose.schema"
[[ -s "$work/demo.schema" ]] || fail "demo.sh's database came out empty"
diff -u "$work/demo.schema" "$work/compose.schema" >&2 ||
    fail "examples/compose/users.sql makes another database than scripts/demo.sh (- demo, + compose)"
sql -e "DROP DATABASE compose_composecheck; DROP DATABASE demo_composecheck" || true
echo "test_compose: ok"
