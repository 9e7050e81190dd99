# cluster.sh: the chaos run's cluster mode (run.sh --cluster): a 3-node RabbitMQ cluster with quorum queues and its faults; sourced by run.sh, which owns the state and the helpers used here (fault, note, nap, rnd, kill_producer_meanwhile, outage).
# shellcheck shell=bash disable=SC2154,SC2034 # state and helpers are run.sh's
#
# The cluster is tests/lib/services.sh's (`services.sh cluster`), under the
# run's service folder. Every client lists the three members in amqp.url;
# the queues are quorum queues with three replicas (datasync setup with
# queue_type = quorum). One member fault at a time, each over before the
# next begins, so two members always form a majority after it:
#   node_kill_connected  kill -9 of the member most datasync connections
#                        are on (rabbitmqctl list_connections), started
#                        again 1-4 s later; half the time a producer is
#                        also killed -9 meanwhile
#   node_kill_leader     kill -9 of the member leading a node queue chosen
#                        by the seed (rabbitmqctl list_queues leader), the
#                        same way
#   node_restart         a graceful restart of a member the seed chooses
#   partition            a member cut off from the other two for 5-15 s
#                        (services.sh cluster partition: a wrong Erlang
#                        cookie per peer, no firewall); with
#                        cluster_partition_handling = pause_minority it
#                        pauses and drops its clients, then heals and
#                        resumes. Only the links between the members are
#                        cut: clients still reach it (and are refused
#                        while it is paused).

cluster_started=0
declare -a member_port=() member_node=()

# Starts the cluster (idempotent) and reads its members' ports and names.
cluster_up() {
    if ! timeout 300 "$services" cluster start; then
        echo "chaos: the RabbitMQ cluster did not start (logs under $DS_TEST_RUNDIR/cluster)" >&2
        return 1
    fi
    cluster_started=1
    eval "$("$services" cluster env)"
    read -r -a member_port <<<"$DS_TEST_CLUSTER_PORTS"
    read -r -a member_node <<<"$DS_TEST_CLUSTER_NODES"
    ((${#member_port[@]} == 3)) || { echo "chaos: cluster env: ports '$DS_TEST_CLUSTER_PORTS'" >&2; return 1; }
}

# rctl ARGS...: rabbitmqctl on the first member that answers.
rctl() {
    local m
    for m in 1 2 3; do
        timeout 60 "$services" cluster ctl "$m" "$@" 2>/dev/null && return 0
    done
    return 1
}

# broker_ctl ARGS...: rabbitmqctl on the broker (a cluster's first member
# that answers).
broker_ctl() {
    if ((cluster)); then
        rctl "$@"
    else
        "$services" rabbit ctl "$@" 2>/dev/null
    fi
}

# svc_do TARGET ACTION: services.sh's ACTION on rabbit, maria, or member:N
# of the cluster.
svc_do() {
    case $1 in
    member:*) timeout 240 "$services" cluster "$2" "${1#member:}" ;;
    *) "$services" "$1" "$2" ;;
    esac
}

# The member (1..3) listening on AMQP port $1, or nothing.
member_of_port() {
    local i
    for i in 0 1 2; do
        [[ "${member_port[i]}" == "$1" ]] && echo $((i + 1)) && return 0
    done
}

# The member (1..3) of Erlang node $1, or nothing.
member_of_node() {
    local i
    for i in 0 1 2; do
        [[ "${member_node[i]}" == "$1" ]] && echo $((i + 1)) && return 0
    done
}

# The member most of this run's producers and consumers are connected to
# (their connection_name says datasync-...), into M; member 1 when none is.
connected_member() {
    local port
    port=$(rctl list_connections -q --no-table-headers port client_properties |
        awk -F'\t' '/datasync-(producer|consumer)/ { n[$1]++ }
            END { for (p in n) if (n[p] > best) { best = n[p]; bp = p }; print bp }')
    M=$(member_of_port "$port")
    M=${M:-1}
}

# The member leading quorum queue $1, into M; empty when unknown.
leader_member() {
    local node
    node=$(rctl list_queues -q --no-table-headers name leader | awk -F'\t' -v q="$1" '$1 == q { print $2 }')
    M=$(member_of_node "$node")
}

# Waits up to $2 s until member $1 runs and answers on its AMQP port.
member_wait() {
    local k st
    for ((k = 0; k < $2 * 2; k++)); do
        # Read whole: grep -q stopping early would fail the pipe (pipefail).
        st=$(timeout 30 "$services" cluster status 2>/dev/null)
        grep -q "^member $1: rabbit: running" <<<"$st" && return 0
        sleep 0.5
    done
    return 1
}

fault_node_kill_connected() {
    local m
    rnd 30; local down=$((R + 10))
    connected_member; m=$M
    fault "node_kill_connected member $m (${member_node[m - 1]}, port ${member_port[m - 1]}: the clients' node) (kill -9), down $((down / 10)).$((down % 10)) s before start"
    outage "member:$m" kill "$down" "member $m" kill_producer_meanwhile
}

fault_node_kill_leader() {
    local m q
    rnd 30; local down=$((R + 10))
    rnd 3; q=datasync.${nodes[R]}
    leader_member "$q"; m=$M
    if [[ -z "$m" ]]; then
        note "node_kill_leader: no leader of $q known (rabbitmqctl list_queues): skipped"
        return 0
    fi
    fault "node_kill_leader member $m (${member_node[m - 1]}: leader of $q) (kill -9), down $((down / 10)).$((down % 10)) s before start"
    outage "member:$m" kill "$down" "member $m" kill_producer_meanwhile
}

fault_node_restart() {
    local m
    rnd 3; m=$((R + 1))
    fault "node_restart member $m (${member_node[m - 1]}) (services.sh cluster restart $m)"
    timeout 240 "$services" cluster restart "$m" >>"$cdir/services.log" 2>&1 ||
        note "member $m restart failed (see $cdir/services.log)"
    note "member $m back"
}

fault_partition() {
    local m
    rnd 3; m=$((R + 1))
    rnd 100; local hold=$((R + 50))
    fault "partition member $m (${member_node[m - 1]}) from the other two for $((hold / 10)).$((hold % 10)) s (pause_minority pauses it)"
    timeout 60 "$services" cluster partition "$m" >>"$cdir/services.log" 2>&1 ||
        note "partition of member $m failed (see $cdir/services.log)"
    nap "$hold"
    timeout 60 "$services" cluster heal "$m" >>"$cdir/services.log" 2>&1 ||
        note "heal of member $m failed (see $cdir/services.log)"
    if member_wait "$m" 90; then
        note "member $m resumed after the partition"
    else
        note "member $m not running 90 s after the heal (see $cdir/services.log)"
    fi
}

# Every member running and connected: the end of the faults.
cluster_all_up() {
    local m
    for m in 1 2 3; do
        member_wait "$m" 1 && continue
        # Paused by a partition that did not heal (a failed heal is noted),
        # or down: healed, it resumes by itself; else it is started.
        timeout 60 "$services" cluster heal "$m" >>"$cdir/services.log" 2>&1
        member_wait "$m" 30 && continue
        timeout 240 "$services" cluster start "$m" >>"$cdir/services.log" 2>&1 ||
            note "member $m did not start (see $cdir/services.log)"
    done
}
