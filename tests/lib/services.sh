#!/usr/bin/env bash
# services.sh: private RabbitMQ and MariaDB instances for the integration tests, as a command and as a bash library.
#
# Command:
#   services.sh {rabbit|maria} {start|stop|kill|restart|status}
#   services.sh up | down | status | env
#   services.sh rabbit ctl ARGS...     rabbitmqctl against the private node
#   services.sh maria sql ARGS...      the mariadb client on the private socket
#   services.sh watch PID              detached watchdog: "down" once PID is gone
#   services.sh cluster start|down|status|env       a 3-node RabbitMQ cluster
#   services.sh cluster start|stop|kill|restart N   one member (1..3)
#   services.sh cluster ctl N ARGS...  rabbitmqctl against member N
#   services.sh cluster partition|heal N   cut member N off the others / reconnect
# Library: `source services.sh`, then ds_svc_init and ds_svc <service> <action>
# (or ds_svc_<action> <service>), ds_svc_up, ds_svc_down; ds_svc_alive and
# ds_svc_pids_with_env serve other scripts too. Sourcing changes no shell option.
#
# Everything lives under $DS_TEST_RUNDIR (required): data, logs, pid files,
# sockets, the Erlang cookie, ports.env. Everything listens on 127.0.0.1 only
# and nothing touches the system's services, their config or a system epmd.
#
#   start    starts it (a no-op when it already runs), waits until it answers;
#            gives up after $DS_TEST_START_TIMEOUT s (60), printing the log tail
#   stop     graceful: rabbitmqctl stop / mariadb-admin shutdown
#   kill     kill -9 of the server, its process group and helpers (epmd stays)
#   restart  stop (or kill if it hangs), then start on the same data: durable
#            queues, persistent messages and committed rows survive
#   status   exit 0 running, 1 process alive but not answering, 3 stopped
#   up/down  start both in parallel / stop both, epmd too, and remove the data
#            (logs stay for the runner to keep or delete)
#
# MariaDB's buffer pool and redo log are small for fast tests: 64M and 16M,
# or $DS_SVC_MARIA_POOL and $DS_SVC_MARIA_LOG (bench/run.sh sizes them up).
# With $DS_SVC_MARIA_BINLOG set, it writes a binlog as datasync-capture
# needs (ROW, FULL images and metadata; make demo CAPTURE=1).
# $DS_SVC_MARIA_EXTRA adds server options (words split on spaces).
#
# Cluster: member N is a node of its own under $DS_TEST_RUNDIR/cluster/nN
# (its own block of ports, node name, data and logs, started and killed by
# the same code as the single node) sharing member 1's epmd and one Erlang
# cookie; members 2.. join member 1 (stop_app, join_cluster, start_app) at
# the first start. A member killed and started again rejoins by itself.
# Members run with cluster_partition_handling = pause_minority. `cluster
# partition N` cuts member N's links to the others with no firewall (a
# wrong Erlang cookie per peer, see ds_svc__cluster_split): it pauses, its
# clients are disconnected; `cluster heal N` undoes it and it resumes.
# $DS_SVC_CLUSTER_SIZE members (3). `cluster env` exports
# DS_TEST_CLUSTER_URLS (one amqp:// URL per member, in order),
# DS_TEST_CLUSTER_PORTS and DS_TEST_CLUSTER_NODES (the Erlang node names).
#
# Ports: one block of ten free loopback ports is picked at first use and
# saved in ports.env, so concurrent runs (CI, a developer) do not clash:
#   base+0 AMQP   base+1 epmd   base+2 Erlang distribution
#   base+3..6 rabbitmqctl's distribution   base+7 AMQP over TLS   base+8 MariaDB
#
# TLS: with $DS_SVC_RABBIT_TLS_DIR set (when the node's config is first
# written) the node also listens for amqps:// on base+7, with the PEM files
# ca.pem, server.pem and server.key of that directory, not asking clients
# for a certificate; `env` then exports DS_TEST_AMQPS_PORT.
# $DS_TEST_AMQP_PORT / $DS_TEST_MYSQL_PORT, when set, override (the Erlang
# ports then follow the AMQP port).

DS_SVC_SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
DS_SVC_RABBIT_BIN=${DS_SVC_RABBIT_BIN:-/usr/lib/rabbitmq/bin}

ds_svc__log() {
    printf 'services: %s\n' "$*" >&2
}

ds_svc__err() {
    printf 'services: error: %s\n' "$*" >&2
    return 1
}

# Microseconds since the epoch (bash 5's EPOCHREALTIME, no fork).
ds_svc__now_us() {
    local t=${EPOCHREALTIME/[.,]/}
    printf '%s' "$((10#$t))"
}

# "1.23 s" since $1 (microseconds).
ds_svc__since() {
    local us=$(($(ds_svc__now_us) - $1))
    printf '%d.%02d s' $((us / 1000000)) $((us / 10000 % 100))
}

# True when something accepts TCP connections on 127.0.0.1:$1. Bounded:
# a loopback connect answers at once unless a firewall drops it.
ds_svc__port_open() {
    # shellcheck disable=SC2016 # $1 is the inner shell's argument
    timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# True when process $1 exists and is not a zombie (kill -0 succeeds on
# zombies, which an exited server not yet reaped would be).
ds_svc_alive() {
    local line state
    [[ "${1:-}" =~ ^[0-9]+$ ]] || return 1
    read -r line 2>/dev/null </proc/"$1"/stat || return 1
    state=${line##*) }
    [[ "${state%% *}" != Z ]]
}

# True when process group $1 has a live member.
ds_svc__group_alive() {
    local p
    [[ "${1:-}" =~ ^[0-9]+$ ]] || return 1
    # The leader itself first: just after the spawn it may not yet have
    # called setsid(), and then no group $1 exists although it runs.
    ds_svc_alive "$1" && return 0
    for p in $(pgrep -g "$1" 2>/dev/null); do
        ds_svc_alive "$p" && return 0
    done
    return 1
}

# Process group $1 and every descendant of its members: beam puts its helpers
# (erl_child_setup, inet_gethost) in sessions of their own, out of the group.
ds_svc__tree() {
    local p queue more
    [[ "${1:-}" =~ ^[0-9]+$ ]] || return 0
    read -r -a queue <<<"$(pgrep -g "$1" 2>/dev/null | tr '\n' ' ')"
    while ((${#queue[@]})); do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        echo "$p"
        read -r -a more <<<"$(pgrep -P "$p" 2>/dev/null | tr '\n' ' ')"
        queue+=("${more[@]}")
    done
}

ds_svc__any_alive() {
    local p
    for p in "$@"; do
        ds_svc_alive "$p" && return 0
    done
    return 1
}

# Waits up to $1 seconds until none of the pids "${@:2}" is alive.
ds_svc__wait_gone() {
    local deadline=$(($(ds_svc__now_us) + $1 * 1000000))
    shift
    while ds_svc__any_alive "$@"; do
        (($(ds_svc__now_us) < deadline)) || return 1
        sleep 0.1
    done
}

# Sends signal $1 to process group $2, a group this harness made with setsid
# (never our own group, never init's).
ds_svc__signal_group() {
    local sig=$1 pgid=${2:-} own
    [[ "$pgid" =~ ^[0-9]+$ ]] && ((pgid > 1)) || return 0
    own=$(ps -o pgid= -p $$ | tr -d ' ')
    [[ "$pgid" != "$own" ]] || return 0
    kill -s "$sig" -- "-$pgid" 2>/dev/null || true
}

# kill -9 of process group $1 and all its descendants; waits until they are gone.
ds_svc__kill_group() {
    local pids
    read -r -a pids <<<"$(ds_svc__tree "$1" | tr '\n' ' ')"
    ds_svc__signal_group KILL "$1"
    ((${#pids[@]})) || return 0
    kill -s KILL "${pids[@]}" 2>/dev/null || true
    ds_svc__wait_gone 10 "${pids[@]}"
}

# SIGTERM to process group $1 (a graceful stop for beam, mariadbd and epmd),
# up to $2 s of grace, then SIGKILL; helpers outside the group that outlive
# their parent by 5 s are killed too.
ds_svc__end_group() {
    local pgid=$1 grace=$2 pids
    ds_svc__group_alive "$pgid" || return 0
    read -r -a pids <<<"$(ds_svc__tree "$pgid" | tr '\n' ' ')"
    ds_svc__signal_group TERM "$pgid"
    if ! ds_svc__wait_gone "$grace" "${pids[@]}"; then
        ds_svc__log "process group $pgid still there ${grace} s after SIGTERM: SIGKILL"
        ds_svc__kill_group "$pgid"
        kill -s KILL "${pids[@]}" 2>/dev/null || true
        ds_svc__wait_gone 5 "${pids[@]}"
    fi
}

# Every process started by this harness for this run dir carries
# DS_SVC_OWNER=<run dir>:<rabbit|maria|epmd> in its environment, children
# (erl_child_setup, inet_gethost, rabbitmqctl) included. The sweep finds them
# by it, so nothing escapes even when a pid file was never written (a start
# interrupted by Ctrl-C) or a helper left its process group.
ds_svc_pids_with_env() {
    local d pid e want entries
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [[ "$pid" != "$$" && "$pid" != "${BASHPID:-}" ]] || continue
        mapfile -d '' -t entries 2>/dev/null <"$d/environ" || continue
        for e in "${entries[@]}"; do
            for want in "$@"; do
                if [[ "$e" == "$want" ]]; then
                    echo "$pid"
                    continue 3
                fi
            done
        done
    done
}

ds_svc__owned_pids() {
    local tag marks=()
    for tag in "$@"; do
        marks+=("DS_SVC_OWNER=$DS_SVC_DIR:$tag")
    done
    ds_svc_pids_with_env "${marks[@]}"
}

# kill -9 of every process owned by the given parts (rabbit maria epmd).
ds_svc__sweep() {
    local pids
    read -r -a pids <<<"$(ds_svc__owned_pids "$@" | tr '\n' ' ')"
    ((${#pids[@]})) || return 0
    ds_svc__log "killing leftover processes of $*: ${pids[*]}"
    kill -s KILL "${pids[@]}" 2>/dev/null || true
    ds_svc__wait_gone 10 "${pids[@]}"
}

ds_svc__read() {
    local v=""
    [[ -r "$1" ]] && read -r v <"$1"
    printf '%s' "$v"
}

# Starts "$@" detached in its own session (so Ctrl-C in the terminal does not
# reach it and its whole group can be killed), stdio on log file $1; prints
# the pid, which is also the process group id. The command substitution's
# subshell has no job control, so setsid(1) does not need to fork and $! is
# the session leader even when the caller is an interactive shell.
ds_svc__spawn() {
    local log=$1
    shift
    (
        set +m
        setsid "$@" </dev/null >>"$log" 2>&1 &
        echo $!
    )
}

ds_svc__tail() {
    local f
    for f in "$@"; do
        [[ -s "$f" ]] || continue
        printf -- '---- last lines of %s ----\n' "$f" >&2
        tail -n 25 "$f" >&2
    done
}

# A free block of ten consecutive loopback ports, below Linux's ephemeral range.
ds_svc__pick_block() {
    local tries base i busy
    for ((tries = 0; tries < 40; tries++)); do
        base=$((20000 + 10 * ((RANDOM * 32768 + RANDOM + $$) % 1200)))
        busy=0
        for ((i = 0; i < 10; i++)); do
            if ds_svc__port_open $((base + i)); then
                busy=1
                break
            fi
        done
        if ((!busy)); then
            printf '%s' "$base"
            return 0
        fi
    done
    ds_svc__err "no free block of 10 loopback ports found in 20000-31999"
}

# Sets up the state directory and the globals every function uses; the ports
# come from ports.env when an earlier call picked them.
ds_svc_init() {
    local amqp mysql base
    [[ -n "${DS_TEST_RUNDIR:-}" ]] ||
        ds_svc__err "DS_TEST_RUNDIR is not set (the runner makes it: mktemp -d)" || return 1
    mkdir -p "$DS_TEST_RUNDIR" || return 1
    DS_SVC_DIR=$(cd "$DS_TEST_RUNDIR" && pwd) || return 1
    DS_TEST_RUNDIR=$DS_SVC_DIR

    if [[ -r "$DS_SVC_DIR/ports.env" ]]; then
        amqp=$(sed -n 's/^amqp=//p' "$DS_SVC_DIR/ports.env")
        mysql=$(sed -n 's/^mysql=//p' "$DS_SVC_DIR/ports.env")
    else
        amqp=${DS_TEST_AMQP_PORT:-}
        mysql=${DS_TEST_MYSQL_PORT:-}
        if [[ -z "$amqp" || -z "$mysql" ]]; then
            base=$(ds_svc__pick_block) || return 1
            amqp=${amqp:-$base}
            mysql=${mysql:-$((base + 8))}
        fi
        printf 'amqp=%s\nmysql=%s\n' "$amqp" "$mysql" >"$DS_SVC_DIR/ports.env.tmp" &&
            mv -f "$DS_SVC_DIR/ports.env.tmp" "$DS_SVC_DIR/ports.env" || return 1
    fi
    [[ "$amqp" =~ ^[0-9]+$ && "$mysql" =~ ^[0-9]+$ ]] ||
        ds_svc__err "bad ports in $DS_SVC_DIR/ports.env: amqp=$amqp mysql=$mysql" || return 1

    DS_SVC_AMQP_PORT=$amqp
    DS_SVC_EPMD_PORT=${DS_SVC_SHARED_EPMD_PORT:-$((amqp + 1))}
    DS_SVC_DIST_PORT=$((amqp + 2))
    DS_SVC_CTL_PORT_MIN=$((amqp + 3))
    DS_SVC_CTL_PORT_MAX=$((amqp + 6))
    DS_SVC_AMQPS_PORT=$((amqp + 7))
    DS_SVC_MYSQL_PORT=$mysql
    DS_SVC_NODE=ds$amqp@localhost
    DS_SVC_START_TIMEOUT=${DS_TEST_START_TIMEOUT:-60}

    DS_SVC_R=$DS_SVC_DIR/rabbit
    DS_SVC_M=$DS_SVC_DIR/maria
    DS_SVC_SOCK=$DS_SVC_M/mariadbd.sock
    # sun_path holds 108 bytes.
    ((${#DS_SVC_SOCK} < 100)) ||
        ds_svc__err "DS_TEST_RUNDIR is too long for a unix socket path: $DS_SVC_SOCK" || return 1
    mkdir -p "$DS_SVC_R/home" "$DS_SVC_R/mnesia" "$DS_SVC_R/log" "$DS_SVC_M/tmp" || return 1

    # The whole environment of the private node and its CLI: nothing is read
    # from /etc/rabbitmq, the cookie lives in a private HOME, epmd is private.
    DS_SVC_RABBIT_ENV=(
        "DS_SVC_OWNER=$DS_SVC_DIR:rabbit"
        "HOME=$DS_SVC_R/home"
        "LANG=C.UTF-8" "LC_ALL=C.UTF-8"
        "RABBITMQ_NODENAME=$DS_SVC_NODE"
        "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1"
        "RABBITMQ_NODE_PORT=$DS_SVC_AMQP_PORT"
        "RABBITMQ_DIST_PORT=$DS_SVC_DIST_PORT"
        "RABBITMQ_CTL_DIST_PORT_MIN=$DS_SVC_CTL_PORT_MIN"
        "RABBITMQ_CTL_DIST_PORT_MAX=$DS_SVC_CTL_PORT_MAX"
        "ERL_EPMD_ADDRESS=127.0.0.1"
        "ERL_EPMD_PORT=$DS_SVC_EPMD_PORT"
        "ERL_CRASH_DUMP=$DS_SVC_R/log/erl_crash.dump"
        "RABBITMQ_MNESIA_BASE=$DS_SVC_R/mnesia"
        "RABBITMQ_LOG_BASE=$DS_SVC_R/log"
        "RABBITMQ_PID_FILE=$DS_SVC_R/rabbit.pid"
        "RABBITMQ_ENABLED_PLUGINS_FILE=$DS_SVC_R/enabled_plugins"
        "RABBITMQ_CONFIG_FILE=$DS_SVC_R/rabbitmq.conf"
        "RABBITMQ_ADVANCED_CONFIG_FILE=$DS_SVC_R/advanced.config"
        "RABBITMQ_CONF_ENV_FILE=$DS_SVC_R/rabbitmq-env.conf"
        "RABBITMQ_SCHEDULER_BUSY_WAIT_THRESHOLD=none"
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
    )
    # Durability stays at its defaults (innodb_flush_log_at_trx_commit=1,
    # doublewrite): tests depend on a commit being real. Only sizes shrink.
    DS_SVC_MARIA_OPTS=(
        --no-defaults
        "--datadir=$DS_SVC_M/data"
        "--tmpdir=$DS_SVC_M/tmp"
        --user=root
        "--innodb-buffer-pool-size=${DS_SVC_MARIA_POOL:-64M}"
        "--innodb-log-file-size=${DS_SVC_MARIA_LOG:-16M}"
        --character-set-server=utf8mb4
        --collation-server=utf8mb4_general_ci
    )
    # What datasync-capture needs (datasync-capture(8)).
    if [[ -n "${DS_SVC_MARIA_BINLOG:-}" ]]; then
        DS_SVC_MARIA_OPTS+=(
            "--log-bin=$DS_SVC_M/data/binlog" --binlog-format=ROW
            --binlog-row-image=FULL --binlog-row-metadata=FULL --server-id=1
        )
    fi
    # More server options, as a benchmark's configuration (bench/run.sh).
    if [[ -n "${DS_SVC_MARIA_EXTRA:-}" ]]; then
        local -a extra
        read -r -a extra <<<"$DS_SVC_MARIA_EXTRA"
        DS_SVC_MARIA_OPTS+=("${extra[@]}")
    fi
}

# ---------------------------------------------------------------- RabbitMQ

ds_svc__rabbitmqctl() {
    (cd "$DS_SVC_R" && env "${DS_SVC_RABBIT_ENV[@]}" \
        "$DS_SVC_RABBIT_BIN/rabbitmqctl" -n "$DS_SVC_NODE" "$@")
}

ds_svc__rabbit_files() {
    ds_svc__rabbit_base_files || return 1
    # A cluster member pauses while it sees only a minority of the cluster
    # (a partition): its clients are disconnected and go to the majority,
    # and it rejoins by itself when the partition heals. The default,
    # "ignore", keeps both sides running and the cluster split after the
    # heal until a member is restarted by hand.
    if [[ -n "${DS_SVC_RABBIT_COOKIE:-}" ]] &&
        ! grep -q '^cluster_partition_handling' "$DS_SVC_R/rabbitmq.conf"; then
        printf '%s\n' '# Cluster member (services.sh cluster).' \
            'cluster_partition_handling = pause_minority' >>"$DS_SVC_R/rabbitmq.conf"
    fi
}

ds_svc__rabbit_base_files() {
    [[ -e "$DS_SVC_R/rabbitmq.conf" ]] && return 0
    echo '[].' >"$DS_SVC_R/enabled_plugins"
    : >"$DS_SVC_R/rabbitmq-env.conf"
    cat >"$DS_SVC_R/rabbitmq.conf" <<'EOF'
# Private test node of datasync's harness (tests/lib/services.sh).
# guest may log in over 127.0.0.1; the node listens on loopback only anyway.
loopback_users = none
# Small CI disks must not block publishers.
disk_free_limit.absolute = 10MB
log.console = false
log.file.level = info
EOF
    [[ -n "${DS_SVC_RABBIT_TLS_DIR:-}" ]] || return 0
    cat >>"$DS_SVC_R/rabbitmq.conf" <<EOF
# TLS listener (DS_SVC_RABBIT_TLS_DIR).
listeners.ssl.default = 127.0.0.1:$DS_SVC_AMQPS_PORT
ssl_options.cacertfile = $DS_SVC_RABBIT_TLS_DIR/ca.pem
ssl_options.certfile = $DS_SVC_RABBIT_TLS_DIR/server.pem
ssl_options.keyfile = $DS_SVC_RABBIT_TLS_DIR/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
}

# True when the node's config has the TLS listener.
ds_svc__rabbit_tls() {
    grep -q '^listeners.ssl.default' "$DS_SVC_R/rabbitmq.conf" 2>/dev/null
}

# Private epmd, started once and kept across rabbit kill/restart.
ds_svc__epmd_start() {
    local pid i
    # A cluster member other than the first uses the first one's epmd.
    if [[ -n "${DS_SVC_SHARED_EPMD_PORT:-}" ]]; then
        ds_svc__port_open "$DS_SVC_EPMD_PORT" && return 0
        ds_svc__err "the cluster's epmd (127.0.0.1:$DS_SVC_EPMD_PORT, member 1's) is not running"
        return 1
    fi
    pid=$(ds_svc__read "$DS_SVC_R/epmd.pgid")
    if ds_svc_alive "$pid" && ds_svc__port_open "$DS_SVC_EPMD_PORT"; then
        return 0
    fi
    if ds_svc__port_open "$DS_SVC_EPMD_PORT"; then
        ds_svc__err "epmd port 127.0.0.1:$DS_SVC_EPMD_PORT is taken by another process"
        return 1
    fi
    pid=$(ds_svc__spawn "$DS_SVC_R/log/epmd.log" env "DS_SVC_OWNER=$DS_SVC_DIR:epmd" \
        ERL_EPMD_ADDRESS=127.0.0.1 epmd -port "$DS_SVC_EPMD_PORT" -address 127.0.0.1) || return 1
    echo "$pid" >"$DS_SVC_R/epmd.pgid"
    for ((i = 0; i < 50; i++)); do
        ds_svc__port_open "$DS_SVC_EPMD_PORT" && return 0
        ds_svc_alive "$pid" || break
        sleep 0.1
    done
    ds_svc__tail "$DS_SVC_R/log/epmd.log"
    ds_svc__err "epmd did not start on 127.0.0.1:$DS_SVC_EPMD_PORT"
}

ds_svc__epmd_stop() {
    ds_svc__end_group "$(ds_svc__read "$DS_SVC_R/epmd.pgid")" 2
    rm -f "$DS_SVC_R/epmd.pgid"
}

# Starts the node (the ports are free) and waits until it answers.
ds_svc__rabbit_boot() {
    local t0=$1 pgid wpid="" wrc="" deadline ready=0 why=""
    ds_svc__epmd_start || return 1
    ds_svc__rabbit_files || return 1
    # A cluster's members must share the cookie (the CLI reads it too).
    if [[ -n "${DS_SVC_RABBIT_COOKIE:-}" ]]; then
        rm -f "$DS_SVC_R/home/.erlang.cookie"
        (umask 077 && printf '%s' "$DS_SVC_RABBIT_COOKIE" >"$DS_SVC_R/home/.erlang.cookie") || return 1
        chmod 400 "$DS_SVC_R/home/.erlang.cookie"
    fi
    rm -f "$DS_SVC_R/rabbit.pid"
    printf '\n==== start %s\n' "$(date '+%F %T')" >>"$DS_SVC_R/log/startup.log"
    pgid=$(cd "$DS_SVC_R" && ds_svc__spawn "$DS_SVC_R/log/startup.log" \
        env "${DS_SVC_RABBIT_ENV[@]}" "$DS_SVC_RABBIT_BIN/rabbitmq-server") || return 1
    echo "$pgid" >"$DS_SVC_R/pgid"

    # `rabbitmqctl wait` is the authoritative readiness check; it runs
    # alongside a poll that notices a boot that crashed, instead of waiting
    # out the timeout, and the AMQP port must answer too.
    (cd "$DS_SVC_R" && exec timeout $((DS_SVC_START_TIMEOUT + 5)) env "${DS_SVC_RABBIT_ENV[@]}" \
        "$DS_SVC_RABBIT_BIN/rabbitmqctl" -n "$DS_SVC_NODE" wait --timeout "$DS_SVC_START_TIMEOUT" \
        "$DS_SVC_R/rabbit.pid" >>"$DS_SVC_R/log/ctl.log" 2>&1) &
    wpid=$!
    deadline=$((t0 + DS_SVC_START_TIMEOUT * 1000000))
    while :; do
        if [[ -z "$wrc" ]] && ! kill -0 "$wpid" 2>/dev/null; then
            wrc=0
            wait "$wpid" || wrc=$?
            if ((wrc != 0)); then
                why="rabbitmqctl wait failed (exit $wrc, see $DS_SVC_R/log/ctl.log)"
                break
            fi
        fi
        if [[ "$wrc" == 0 ]] && ds_svc__port_open "$DS_SVC_AMQP_PORT"; then
            ready=1
            break
        fi
        if ! ds_svc__group_alive "$pgid"; then
            why="the node exited during start"
            break
        fi
        if (($(ds_svc__now_us) > deadline)); then
            why="not ready after ${DS_SVC_START_TIMEOUT} s"
            break
        fi
        sleep 0.1
    done
    if ((ready)); then
        ds_svc__log "rabbit: started in $(ds_svc__since "$t0") (node $DS_SVC_NODE, amqp 127.0.0.1:$DS_SVC_AMQP_PORT, logs $DS_SVC_R/log)"
        return 0
    fi
    if [[ -z "$wrc" ]]; then
        kill "$wpid" 2>/dev/null || true
        wait "$wpid" 2>/dev/null || true
    fi
    ds_svc__tail "$DS_SVC_R/log/startup.log" "$DS_SVC_R/log/$DS_SVC_NODE.log" "$DS_SVC_R/log/ctl.log"
    ds_svc__kill_group "$pgid" || true
    ds_svc__err "rabbit: $why"
}

# The graceful part of a stop; the caller ends the process group after it.
ds_svc__rabbit_shutdown() {
    # With the pid file, `stop` returns once the OS process has exited.
    if ! ds_svc__rabbitmqctl stop "$DS_SVC_R/rabbit.pid" >>"$DS_SVC_R/log/ctl.log" 2>&1 </dev/null; then
        ds_svc__log "rabbit: rabbitmqctl stop failed (see $DS_SVC_R/log/ctl.log); terminating it"
    fi
}

# ----------------------------------------------------------------- MariaDB

ds_svc__maria_admin() {
    timeout 30 mariadb-admin --no-defaults --protocol=socket --socket="$DS_SVC_SOCK" \
        --user=root --connect-timeout=5 "$@"
}

# Starts mariadbd (the port is free), creating the data directory on the
# first start, and waits until it answers.
ds_svc__maria_boot() {
    local t0=$1 pgid deadline why=""
    if [[ ! -d "$DS_SVC_M/data/mysql" ]]; then
        rm -rf "$DS_SVC_M/data"
        # root@localhost, @127.0.0.1 and @::1 with an empty password.
        if ! timeout 120 env "DS_SVC_OWNER=$DS_SVC_DIR:maria" mariadb-install-db "${DS_SVC_MARIA_OPTS[@]}" \
            --auth-root-authentication-method=normal --skip-test-db \
            >"$DS_SVC_M/install.log" 2>&1 </dev/null; then
            ds_svc__tail "$DS_SVC_M/install.log"
            ds_svc__err "maria: mariadb-install-db failed"
            return 1
        fi
    fi
    rm -f "$DS_SVC_SOCK"
    printf '\n==== start %s\n' "$(date '+%F %T')" >>"$DS_SVC_M/startup.log"
    pgid=$(ds_svc__spawn "$DS_SVC_M/startup.log" env "DS_SVC_OWNER=$DS_SVC_DIR:maria" \
        mariadbd "${DS_SVC_MARIA_OPTS[@]}" \
        --bind-address=127.0.0.1 --port="$DS_SVC_MYSQL_PORT" --socket="$DS_SVC_SOCK" \
        --pid-file="$DS_SVC_M/mariadbd.pid" --log-error="$DS_SVC_M/error.log") || return 1
    echo "$pgid" >"$DS_SVC_M/pgid"

    deadline=$((t0 + DS_SVC_START_TIMEOUT * 1000000))
    while :; do
        if [[ -S "$DS_SVC_SOCK" ]] && ds_svc__maria_admin ping >/dev/null 2>&1 &&
            ds_svc__port_open "$DS_SVC_MYSQL_PORT"; then
            ds_svc__log "maria: started in $(ds_svc__since "$t0") (127.0.0.1:$DS_SVC_MYSQL_PORT, socket $DS_SVC_SOCK, log $DS_SVC_M/error.log)"
            return 0
        fi
        if ! ds_svc__group_alive "$pgid"; then
            why="mariadbd exited during start"
            break
        fi
        if (($(ds_svc__now_us) > deadline)); then
            why="not ready after ${DS_SVC_START_TIMEOUT} s"
            break
        fi
        sleep 0.05
    done
    ds_svc__tail "$DS_SVC_M/startup.log" "$DS_SVC_M/error.log"
    ds_svc__kill_group "$pgid" || true
    ds_svc__err "maria: $why"
}

# The graceful part of a stop; the caller ends the process group after it.
ds_svc__maria_shutdown() {
    if ! ds_svc__maria_admin shutdown >>"$DS_SVC_M/startup.log" 2>&1 </dev/null; then
        ds_svc__log "maria: mariadb-admin shutdown failed; terminating it"
    fi
}

# ------------------------------------------------------------ either one
# One function per action, taking the service (rabbit or maria); what
# differs between the two is in the ds_svc__<service>_* functions above.

# The state directory of service $1, which holds its pgid file.
ds_svc__home() {
    case $1 in
    rabbit) printf '%s' "$DS_SVC_R" ;;
    maria) printf '%s' "$DS_SVC_M" ;;
    esac
}

# The ports service $1 listens on; the first answers when it is up.
ds_svc__ports() {
    case $1 in
    rabbit)
        printf '%s %s' "$DS_SVC_AMQP_PORT" "$DS_SVC_DIST_PORT"
        if [[ -n "${DS_SVC_RABBIT_TLS_DIR:-}" ]] || ds_svc__rabbit_tls; then
            printf ' %s' "$DS_SVC_AMQPS_PORT"
        fi
        ;;
    maria) printf '%s' "$DS_SVC_MYSQL_PORT" ;;
    esac
}

# ds_svc_status [SERVICE]: exit 0 running, 1 process alive but not
# answering, 3 stopped; without a service, both (the worse status).
ds_svc_status() {
    local svc=${1:-} pgid port rc=0
    if [[ -z "$svc" ]]; then
        ds_svc_status rabbit || rc=$?
        ds_svc_status maria || rc=$((rc ? rc : $?))
        return $rc
    fi
    pgid=$(ds_svc__read "$(ds_svc__home "$svc")/pgid")
    read -r port _ <<<"$(ds_svc__ports "$svc")"
    if ! ds_svc__group_alive "$pgid"; then
        echo "$svc: stopped"
        return 3
    fi
    if ! ds_svc__port_open "$port"; then
        echo "$svc: process group $pgid alive but 127.0.0.1:$port does not answer"
        return 1
    fi
    case $svc in
    rabbit) echo "rabbit: running (node $DS_SVC_NODE, pid $(ds_svc__read "$DS_SVC_R/rabbit.pid"), amqp 127.0.0.1:$port)" ;;
    maria) echo "maria: running (pid $pgid, 127.0.0.1:$port, socket $DS_SVC_SOCK)" ;;
    esac
}

# ds_svc_start SERVICE
ds_svc_start() {
    local svc=$1 t0 port
    t0=$(ds_svc__now_us)
    if ds_svc_status "$svc" >/dev/null; then
        ds_svc__log "$svc: already running"
        return 0
    fi
    # Leftovers of a half-dead server would hold the ports or the data's lock.
    ds_svc__end_group "$(ds_svc__read "$(ds_svc__home "$svc")/pgid")" 5 || true
    ds_svc__sweep "$svc" || true
    for port in $(ds_svc__ports "$svc"); do
        if ds_svc__port_open "$port"; then
            ds_svc__err "$svc: port 127.0.0.1:$port is taken by another process"
            return 1
        fi
    done
    "ds_svc__${svc}_boot" "$t0"
}

# ds_svc_stop SERVICE
ds_svc_stop() {
    local svc=$1 pgid t0
    t0=$(ds_svc__now_us)
    pgid=$(ds_svc__read "$(ds_svc__home "$svc")/pgid")
    if ! ds_svc__group_alive "$pgid"; then
        ds_svc__log "$svc: not running"
        return 0
    fi
    "ds_svc__${svc}_shutdown"
    ds_svc__end_group "$pgid" 30 || ds_svc__err "$svc: process group $pgid survived SIGKILL" || return 1
    ds_svc__log "$svc: stopped in $(ds_svc__since "$t0")"
}

# ds_svc_kill SERVICE
ds_svc_kill() {
    local svc=$1 pgid
    pgid=$(ds_svc__read "$(ds_svc__home "$svc")/pgid")
    if ! ds_svc__group_alive "$pgid"; then
        ds_svc__log "$svc: not running"
        ds_svc__sweep "$svc"
        return 0
    fi
    ds_svc__kill_group "$pgid" || ds_svc__err "$svc: process group $pgid survived SIGKILL" || return 1
    ds_svc__sweep "$svc" || return 1
    ds_svc__log "$svc: killed (SIGKILL)"
}

# ds_svc_restart SERVICE
ds_svc_restart() {
    local svc=$1 rc=0
    ds_svc_status "$svc" >/dev/null || rc=$?
    case $rc in
    0) ds_svc_stop "$svc" || return 1 ;;
    1) ds_svc_kill "$svc" || return 1 ;;
    esac
    ds_svc_start "$svc"
}

# ------------------------------------------------------------------- both

# ds_svc rabbit|maria start|stop|kill|restart|status
ds_svc() {
    case "${1:-}:${2:-}" in
    rabbit:start | rabbit:stop | rabbit:kill | rabbit:restart | rabbit:status | \
        maria:start | maria:stop | maria:kill | maria:restart | maria:status)
        "ds_svc_$2" "$1"
        ;;
    *)
        ds_svc__err "unknown service or action: ${1:-} ${2:-}"
        ;;
    esac
}

ds_svc_up() {
    local t0 r m rc=0
    t0=$(ds_svc__now_us)
    ds_svc_start rabbit &
    r=$!
    ds_svc_start maria &
    m=$!
    wait "$r" || rc=1
    wait "$m" || rc=1
    ((rc == 0)) && ds_svc__log "up in $(ds_svc__since "$t0") (run dir $DS_SVC_DIR)"
    return $rc
}

# Both servers get SIGTERM (a graceful stop for each) at once, then SIGKILL
# after a grace period; then epmd and the watchdog go and the data is removed.
ds_svc_down() {
    local t0 wd
    t0=$(ds_svc__now_us)
    if [[ -d "$DS_SVC_DIR/cluster" ]]; then
        DS_SVC_CLUSTER_SIZE=${DS_SVC_CLUSTER_SIZE:-3} ds_svc_cluster_down || true
    fi
    ds_svc__end_group "$(ds_svc__read "$DS_SVC_R/pgid")" 20 &
    ds_svc__end_group "$(ds_svc__read "$DS_SVC_M/pgid")" 20 &
    wait
    ds_svc__epmd_stop
    ds_svc__sweep rabbit maria epmd || true
    wd=$(ds_svc__read "$DS_SVC_DIR/watchdog.pid")
    if [[ -n "$wd" && "$wd" != "$$" ]]; then
        ds_svc__signal_group KILL "$wd"
    fi
    rm -f "$DS_SVC_DIR/watchdog.pid" "$DS_SVC_R/pgid" "$DS_SVC_M/pgid" "$DS_SVC_R/rabbit.pid" "$DS_SVC_SOCK"
    rm -rf "${DS_SVC_R:?}/mnesia" "${DS_SVC_R:?}/home" "${DS_SVC_M:?}/data" "${DS_SVC_M:?}/tmp"
    ds_svc__log "down in $(ds_svc__since "$t0")"
}

# Exports for the tests (tests/lib/itest.c reads them).
ds_svc_env() {
    printf 'export DS_TEST_RUNDIR=%q\n' "$DS_SVC_DIR"
    printf 'export DS_TEST_SERVICES=%q\n' "$DS_SVC_SELF"
    printf 'export DS_TEST_AMQP_PORT=%q\n' "$DS_SVC_AMQP_PORT"
    printf 'export DS_TEST_AMQP_URL=%q\n' "amqp://guest:guest@127.0.0.1:$DS_SVC_AMQP_PORT/%2f"
    printf 'export DS_TEST_RABBIT_NODE=%q\n' "$DS_SVC_NODE"
    if ds_svc__rabbit_tls; then
        printf 'export DS_TEST_AMQPS_PORT=%q\n' "$DS_SVC_AMQPS_PORT"
    fi
    printf 'export DS_TEST_MYSQL_HOST=127.0.0.1\n'
    printf 'export DS_TEST_MYSQL_PORT=%q\n' "$DS_SVC_MYSQL_PORT"
    printf 'export DS_TEST_MYSQL_SOCKET=%q\n' "$DS_SVC_SOCK"
    printf 'export DS_TEST_MYSQL_USER=root\n'
}

# ----------------------------------------------------------------- cluster

# services.sh ARGS... run for cluster member $1, in its own run dir.
ds_svc__member() {
    local n=$1 cdir=$DS_SVC_DIR/cluster epmd="" amqp
    shift
    if ((n > 1)); then
        amqp=$(sed -n 's/^amqp=//p' "$cdir/n1/ports.env" 2>/dev/null)
        [[ -n "$amqp" ]] || ds_svc__err "cluster: member 1 was never started" || return 1
        epmd=$((amqp + 1))
    fi
    env -u DS_TEST_AMQP_PORT -u DS_TEST_MYSQL_PORT -u DS_SVC_RABBIT_TLS_DIR \
        DS_TEST_RUNDIR="$cdir/n$n" DS_SVC_SHARED_EPMD_PORT="$epmd" \
        DS_SVC_RABBIT_COOKIE="$(cat "$cdir/cookie")" bash "$DS_SVC_SELF" "$@"
}

# Variable $2 of member $1's `env`.
ds_svc__member_var() {
    ds_svc__member "$1" env | sed -n "s/^export $2=//p"
}

ds_svc__cluster_check() {
    [[ "${1:-}" =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= DS_SVC_CLUSTER_SIZE)) ||
        ds_svc__err "cluster: no member '${1:-}' (1..$DS_SVC_CLUSTER_SIZE)"
}

ds_svc_cluster_start() {
    local cdir=$DS_SVC_DIR/cluster t0 i first pids=() rc=0
    t0=$(ds_svc__now_us)
    mkdir -p "$cdir" || return 1
    if [[ ! -s "$cdir/cookie" ]]; then
        # Not from /dev/urandom through tr | head: under pipefail, tr's
        # SIGPIPE would fail the start now and then.
        (umask 077 && printf 'DSCLUSTER%s%s%s%s' $RANDOM $RANDOM $RANDOM $RANDOM >"$cdir/cookie") || return 1
    fi
    ds_svc__member 1 rabbit start || return 1
    for ((i = 2; i <= DS_SVC_CLUSTER_SIZE; i++)); do
        ds_svc__member "$i" rabbit start &
        pids+=($!)
    done
    for i in "${pids[@]}"; do
        wait "$i" || rc=1
    done
    ((rc == 0)) || return 1
    first=$(ds_svc__member_var 1 DS_TEST_RABBIT_NODE)
    for ((i = 2; i <= DS_SVC_CLUSTER_SIZE; i++)); do
        [[ -e "$cdir/n$i/joined" ]] && continue
        { ds_svc__member "$i" rabbit ctl stop_app &&
            ds_svc__member "$i" rabbit ctl join_cluster "$first" &&
            ds_svc__member "$i" rabbit ctl start_app; } >>"$cdir/join.log" 2>&1 </dev/null ||
            ds_svc__err "cluster: member $i could not join $first (see $cdir/join.log)" || return 1
        : >"$cdir/n$i/joined"
    done
    ds_svc__log "cluster: $DS_SVC_CLUSTER_SIZE nodes up in $(ds_svc__since "$t0")"
}

ds_svc_cluster_down() {
    local i
    [[ -s "$DS_SVC_DIR/cluster/cookie" ]] || return 0
    # Member 1 last: the others use its epmd.
    for ((i = DS_SVC_CLUSTER_SIZE; i >= 1; i--)); do
        [[ -d "$DS_SVC_DIR/cluster/n$i" ]] && ds_svc__member "$i" down
    done
    # The logs stay, like the single node's; a later start makes a new
    # cluster.
    rm -rf "${DS_SVC_DIR:?}/cluster/cookie" "$DS_SVC_DIR"/cluster/n*/joined "$DS_SVC_DIR"/cluster/n*/ports.env
}

ds_svc_cluster_env() {
    local i urls="" ports="" nodes="" port
    for ((i = 1; i <= DS_SVC_CLUSTER_SIZE; i++)); do
        port=$(ds_svc__member_var "$i" DS_TEST_AMQP_PORT)
        urls+="${urls:+ }amqp://guest:guest@127.0.0.1:$port/%2f"
        ports+="${ports:+ }$port"
        nodes+="${nodes:+ }$(ds_svc__member_var "$i" DS_TEST_RABBIT_NODE)"
    done
    printf 'export DS_TEST_CLUSTER_URLS=%q\n' "$urls"
    printf 'export DS_TEST_CLUSTER_PORTS=%q\n' "$ports"
    printf 'export DS_TEST_CLUSTER_NODES=%q\n' "$nodes"
}

# Partitions member $1 from the others, or heals that ($2: partition|heal),
# with no firewall: member $1 is given a wrong cookie for each other member
# and drops its links to them, so every handshake between them fails both
# ways (Erlang checks the cookie it holds for the peer) while the CLI, which
# uses the right cookie, still reaches every member. Healing gives the
# right cookie back; the next ping reconnects them.
ds_svc__cluster_split() {
    local m=$1 how=$2 i peers="" expr
    for ((i = 1; i <= DS_SVC_CLUSTER_SIZE; i++)); do
        ((i == m)) && continue
        peers+="${peers:+,}'$(ds_svc__member_var "$i" DS_TEST_RABBIT_NODE)'"
    done
    if [[ $how == partition ]]; then
        expr="[begin erlang:set_cookie(N, ds_partitioned), erlang:disconnect_node(N) end || N <- [$peers]]."
    else
        expr="[erlang:set_cookie(N, erlang:get_cookie()) || N <- [$peers]]."
    fi
    ds_svc__member "$m" rabbit ctl eval "$expr" >/dev/null ||
        ds_svc__err "cluster: $how of member $m failed" || return 1
    ds_svc__log "cluster: member $m $([[ $how == partition ]] && echo "partitioned from the others" || echo "partition healed")"
}

# services.sh cluster ...
ds_svc_cluster() {
    local i rc=0
    DS_SVC_CLUSTER_SIZE=${DS_SVC_CLUSTER_SIZE:-3}
    case "${1:-}:${2:-}" in
    start:) ds_svc_cluster_start ;;
    down:) ds_svc_cluster_down ;;
    env:) ds_svc_cluster_env ;;
    status:)
        for ((i = 1; i <= DS_SVC_CLUSTER_SIZE; i++)); do
            printf 'member %d: ' "$i"
            ds_svc__member "$i" rabbit status || rc=$?
        done
        return $rc
        ;;
    start:* | stop:* | kill:* | restart:*)
        ds_svc__cluster_check "$2" || return 1
        ds_svc__member "$2" rabbit "$1"
        ;;
    partition:* | heal:*)
        ds_svc__cluster_check "$2" || return 1
        ds_svc__cluster_split "$2" "$1"
        ;;
    ctl:*)
        ds_svc__cluster_check "$2" || return 1
        i=$2
        shift 2
        ds_svc__member "$i" rabbit ctl "$@"
        ;;
    *)
        ds_svc__err "cluster: unknown action: $*"
        ;;
    esac
}

# A detached watchdog: brings everything down once process $1 (the runner)
# is gone, even if it was SIGKILLed and could not run its trap.
ds_svc_watch() {
    local pid=$1 wd
    [[ "$pid" =~ ^[0-9]+$ ]] || ds_svc__err "watch: not a pid: $pid" || return 1
    wd=$(ds_svc__spawn "$DS_SVC_DIR/watchdog.log" \
        env DS_TEST_RUNDIR="$DS_SVC_DIR" bash "$DS_SVC_SELF" __watchdog "$pid") || return 1
    echo "$wd" >"$DS_SVC_DIR/watchdog.pid"
}

ds_svc__watchdog() {
    local pids
    while ds_svc_alive "$1"; do
        sleep 1
    done
    ds_svc__log "watchdog: process $1 is gone, taking the services down"
    rm -f "$DS_SVC_DIR/watchdog.pid"
    # Test programs of the dead runner would otherwise run on (they carry
    # DS_TEST_RUNDIR; this watchdog does too, and skips itself).
    read -r -a pids <<<"$(ds_svc_pids_with_env "DS_TEST_RUNDIR=$DS_SVC_DIR" | tr '\n' ' ')"
    if ((${#pids[@]})); then
        ds_svc__log "watchdog: killing the runner's leftover processes ${pids[*]}"
        kill -s KILL "${pids[@]}" 2>/dev/null || true
    fi
    ds_svc_down
}

ds_svc__usage() {
    cat <<'EOF'
usage: services.sh {rabbit|maria} {start|stop|kill|restart|status}
       services.sh {up|down|status|env}
       services.sh rabbit ctl ARGS...     (rabbitmqctl on the private node)
       services.sh maria sql ARGS...      (mariadb client on the private socket)
       services.sh watch PID
       services.sh cluster {start|down|status|env}
       services.sh cluster {start|stop|kill|restart} N
       services.sh cluster ctl N ARGS...
       services.sh cluster {partition|heal} N
State lives under $DS_TEST_RUNDIR (required).
EOF
}

ds_svc_main() {
    case "${1:-}" in
    -h | --help | help)
        ds_svc__usage
        return 0
        ;;
    "")
        ds_svc__usage >&2
        return 2
        ;;
    esac
    ds_svc_init || return 1
    case "${1:-}:${2:-}" in
    up:) ds_svc_up ;;
    down:) ds_svc_down ;;
    status:) ds_svc_status ;;
    env:) ds_svc_env ;;
    watch:*) ds_svc_watch "$2" ;;
    cluster:*)
        shift
        ds_svc_cluster "$@"
        ;;
    __watchdog:*) ds_svc__watchdog "$2" ;;
    rabbit:ctl)
        shift 2
        ds_svc__rabbitmqctl "$@"
        ;;
    maria:sql)
        shift 2
        mariadb --no-defaults --protocol=socket --socket="$DS_SVC_SOCK" --user=root "$@"
        ;;
    rabbit:* | maria:*) ds_svc "$1" "${2:-}" ;;
    *)
        ds_svc__usage >&2
        return 2
        ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    ds_svc_main "$@"
fi
