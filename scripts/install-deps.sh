#!/usr/bin/env bash
# install-deps.sh: installs the Debian packages that building and testing datasync need, only those that are missing.
#
#   scripts/install-deps.sh            (make deps; .ci/run)
#   scripts/install-deps.sh --bench    the same, and what only `make bench` needs
#
# Checks every package with dpkg-query first; when something is missing it
# runs `apt-get update` once and installs just that, without recommends. As
# root (CI) directly, otherwise through sudo. The RabbitMQ and MariaDB
# packages bring system services: they are kept from starting during the
# install (policy-rc.d), because the tests run private instances on ports of
# their own (tests/lib/services.sh) and need nothing on 5672/3306/4369.
set -euo pipefail

packages=(
    # build
    build-essential pkg-config
    librabbitmq-dev libjson-c-dev zlib1g-dev
    # MariaDB Connector/C (pkg-config libmariadb): Debian's default client
    # library, named too because Ubuntu's default is MySQL's
    default-libmysqlclient-dev libmariadb-dev
    # datasync-consumer's metrics and health endpoint ([metrics] listen):
    # libmicrohttpd does the HTTP (request parsing, connection limits,
    # timeouts, slow clients) on a thread of its own
    libmicrohttpd-dev
    # sd_notify (Type=notify, the watchdog); optional: without it the
    # Makefile builds a no-op and the consumer runs as before
    libsystemd-dev
    # tests
    libcmocka-dev python3 python3-jsonschema
    # tests/integration/test_metrics.sh parses /metrics with Prometheus's
    # own Python parser
    python3-prometheus-client
    rabbitmq-server mariadb-server mariadb-client
    # the test harness: pgrep/ps (procps), setsid (util-linux), timeout (coreutils)
    procps util-linux coreutils
    # tests/integration/test_tls.sh: certificates made at test time
    # (rabbitmq-server depends on it too; named because the test calls it)
    openssl
    # tests/integration/test_php.sh: PHP with FFI (php8.x-common brings it)
    php-cli
    # tests/integration/test_compose.sh: `docker-compose config` checks
    # compose.yaml without a Docker daemon (docker.io is only recommended,
    # and recommends are not installed); python3-yaml reads its output
    docker-compose python3-yaml
)
# Only `make bench`: bench/seed_consumer.php, the seed's own kind of
# consumer that bench_consumer measures datasync-consumer against, runs on
# php-amqp and mysqli. Not needed to build or test, so CI does not install it.
bench_packages=(php-cli php-amqp php-mysql)
case ${1:-} in
--bench) packages+=("${bench_packages[@]}") ;;
"") ;;
*)
    echo "usage: scripts/install-deps.sh [--bench]" >&2
    exit 2
    ;;
esac

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "install-deps: this script needs Debian or Ubuntu (dpkg, apt-get)." >&2
    echo "install-deps: install by other means: ${packages[*]}" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ "$status" == ii* ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#packages[@]} packages are installed."
    exit 0
fi
echo "install-deps: missing: ${missing[*]}"

sudo=()
if ((EUID != 0)); then
    if ! command -v sudo >/dev/null; then
        echo "install-deps: not root and no sudo: run as root, or install: ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
    echo "install-deps: not root, using sudo"
fi

# Debian's way to keep maintainer scripts from starting services: a
# policy-rc.d that says 101 ("action forbidden"). One that exists already
# (containers often have it) is left alone; ours is removed afterwards.
policy=/usr/sbin/policy-rc.d
own_policy=0
remove_policy() {
    if ((own_policy)); then
        "${sudo[@]}" rm -f "$policy"
        echo "install-deps: removed the temporary $policy"
    fi
}
trap remove_policy EXIT
if [[ ! -e "$policy" ]]; then
    echo "install-deps: writing a temporary $policy so installed services do not start"
    printf '#!/bin/sh\n# datasync scripts/install-deps.sh: no service starts during the install.\nexit 101\n' |
        "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
fi

echo "install-deps: apt-get update"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
echo "install-deps: apt-get install ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"

# Where systemd does not consult policy-rc.d (or a package started its
# service anyway), stop what our install started; a service that ran before
# is not ours to stop.
started=()
[[ " ${missing[*]} " == *" rabbitmq-server "* ]] && started+=(rabbitmq-server)
[[ " ${missing[*]} " == *" mariadb-server "* ]] && started+=(mariadb)
if ((${#started[@]})) && [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    for svc in "${started[@]}"; do
        if systemctl is-active --quiet "$svc" 2>/dev/null; then
            echo "install-deps: stopping the system $svc the install started (tests use private instances)"
            "${sudo[@]}" systemctl stop "$svc" || true
        fi
    done
fi

still=()
for p in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ "$status" == ii* ]] || still+=("$p")
done
if ((${#still[@]})); then
    echo "install-deps: still missing after the install: ${still[*]}" >&2
    exit 1
fi
echo "install-deps: installed ${#missing[@]} packages."
