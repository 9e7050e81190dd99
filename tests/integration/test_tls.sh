#!/usr/bin/env bash
# test_tls.sh: amqps:// end to end: setup, datasync publish and datasync-consumer over TLS to a private node with certificates made here; a wrong CA refused naming the file; verify_peer = false works with a warning; a broker that wants a client certificate takes amqp.cert_file/key_file and refuses a client without, saying so.
#
# Run by tests/run.sh with the private services up (DS_TEST_* set). The
# runner's RabbitMQ has no TLS listener, so this test starts a node of its
# own (tests/lib/services.sh with DS_SVC_RABBIT_TLS_DIR, its own run dir and
# ports) and uses the runner's MariaDB. Certificates: a CA, a server
# certificate it signs for localhost and 127.0.0.1, and a second CA that
# signed nothing the broker shows.
set -euo pipefail

fail() {
    echo "test_tls: FAIL: $*" >&2
    exit 1
}
say() { echo "test_tls: $*"; }

for v in DS_TEST_RUNDIR DS_TEST_BUILD DS_TEST_ROOT DS_TEST_SERVICES DS_TEST_MYSQL_SOCKET; do
    [[ -n "${!v:-}" ]] || fail "$v is not set: run me through tests/run.sh"
done
command -v openssl >/dev/null || fail "openssl is not installed (scripts/install-deps.sh)"

work=$(mktemp -d "$DS_TEST_RUNDIR/tls.XXXXXX")
pki=$work/pki
ds=$DS_TEST_BUILD/datasync
sql() { timeout 60 "$DS_TEST_SERVICES" maria sql "$@"; }
# The TLS node's own harness: state under $work/rabbit, own ports.
tls_svc() { DS_TEST_RUNDIR=$work/rabbit DS_TEST_AMQP_PORT='' DS_TEST_MYSQL_PORT='' \
    DS_SVC_RABBIT_TLS_DIR=$pki timeout 180 "$DS_TEST_SERVICES" "$@"; }
consumer_pid=""

cleanup() {
    local rc=$?
    trap - EXIT
    if [[ -n "$consumer_pid" ]]; then
        kill -TERM "$consumer_pid" 2>/dev/null || true
        wait "$consumer_pid" 2>/dev/null || true
    fi
    tls_svc down >/dev/null 2>&1 || true
    if ((rc != 0)); then
        for f in "$work"/*.log; do
            [[ -e "$f" ]] || continue
            echo "---- $f ----" >&2
            tail -n 15 "$f" >&2
        done
    fi
    exit "$rc"
}
trap cleanup EXIT

# ------------------------------------------------------------ certificates
mkdir -p "$pki"
(
    cd "$pki"
    days=2
    openssl req -x509 -newkey rsa:2048 -nodes -days $days -subj /CN=datasync-test-ca \
        -keyout ca.key -out ca.pem
    openssl req -x509 -newkey rsa:2048 -nodes -days $days -subj /CN=datasync-wrong-ca \
        -keyout wrong-ca.key -out wrong-ca.pem
    openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr
    # rabbitmq-c 0.11 matches the host against the DNS names of the
    # subjectAltName only, so 127.0.0.1 is there as a DNS name too.
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
        -extfile server.ext -out server.pem
    # A certificate for another host: the name check must refuse it.
    openssl req -newkey rsa:2048 -nodes -subj /CN=elsewhere.test -keyout other.key -out other.csr
    printf 'subjectAltName=DNS:elsewhere.test\n' >other.ext
    openssl x509 -req -in other.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
        -extfile other.ext -out other.pem
    # The client's certificate, for a broker that asks for one.
    openssl req -newkey rsa:2048 -nodes -subj /CN=datasync-client -keyout client.key -out client.csr
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
        -extfile client.ext -out client.pem
    # And one the broker does not trust (signed by the other CA).
    openssl x509 -req -in client.csr -CA wrong-ca.pem -CAkey wrong-ca.key -CAcreateserial \
        -days $days -extfile client.ext -out client-wrong.pem
    chmod 644 ./*.key # the node runs as this user anyway; keep it simple
) >"$work/openssl.log" 2>&1 || fail "openssl: $(tail -n 5 "$work/openssl.log")"

# ------------------------------------------------------------- the broker
tls_svc rabbit start >"$work/rabbit-start.log" 2>&1 || fail "TLS node did not start: $(tail -n 20 "$work/rabbit-start.log")"
# Only the port: the rest of its env would point the test at that run dir.
port=$(tls_svc env | sed -n 's/^export DS_TEST_AMQPS_PORT=//p')
[[ -n "$port" ]] || fail "services.sh env does not export DS_TEST_AMQPS_PORT"
amqps=amqps://guest:guest@127.0.0.1:$port/%2f
say "TLS node up, amqps port $port"

write_conf() { # NAME NODE URL CA [EXTRA]
    cat >"$work/$1.conf" <<EOF
[node]
id = $2
clock_file =
[amqp]
url = $3
exchange = datasync-tls
ca_file = $4
${5:-}
[mysql]
socket = $DS_TEST_MYSQL_SOCKET
user = root
database = tls_$2
[apply]
tables = kv
batch_wait_ms = 5
[producer]
spool_dir = $work/spool-$1
EOF
}

for n in t1 t2; do
    sql -e "DROP DATABASE IF EXISTS tls_$n; CREATE DATABASE tls_$n CHARACTER SET utf8mb4"
    sql "tls_$n" -e "CREATE TABLE kv (id INT NOT NULL PRIMARY KEY, v VARCHAR(64) NOT NULL) ENGINE=InnoDB"
done
write_conf t1 t1 "$amqps" "$pki/ca.pem"
write_conf t2 t2 "$amqps" "$pki/ca.pem"

# ------------------------------------------------- everything over TLS
timeout 60 "$ds" -c "$work/t1.conf" setup --nodes t1,t2 >"$work/setup.log" 2>&1 ||
    fail "setup over TLS: $(cat "$work/setup.log")"
"$DS_TEST_BUILD/datasync-consumer" -c "$work/t2.conf" >>"$work/consumer.log" 2>&1 &
consumer_pid=$!

for i in $(seq 1 50); do
    printf '{"op":"create","table":"kv","key":{"id":%d},"data":{"id":%d,"v":"tls-%d"}}\n' "$i" "$i" "$i"
done >"$work/changes.jsonl"
timeout 60 "$ds" -c "$work/t1.conf" publish "$work/changes.jsonl" >"$work/publish.log" 2>&1 ||
    fail "publish over TLS: $(cat "$work/publish.log")"
grep -q "published 50, spooled 0" "$work/publish.log" ||
    fail "publish over TLS did not confirm all 50: $(cat "$work/publish.log")"
# The connection the broker sees is a TLS one.
timeout 30 env DS_TEST_RUNDIR="$work/rabbit" "$DS_TEST_SERVICES" rabbit ctl list_connections ssl \
    >"$work/connections.log" 2>&1 || true

got=""
for _ in $(seq 1 300); do
    got=$(sql -N tls_t2 -e "SELECT COUNT(*), COALESCE(SUM(id),0) FROM kv WHERE v = CONCAT('tls-', id)")
    [[ "$got" == $'50\t1275' ]] && break
    kill -0 "$consumer_pid" 2>/dev/null || fail "datasync-consumer exited"
    sleep 0.1
done
[[ "$got" == $'50\t1275' ]] || fail "consumer over TLS applied '$got', want 50 rows (sum of ids 1275)"
grep -q true "$work/connections.log" || fail "the broker sees no TLS connection: $(cat "$work/connections.log")"
say "setup, publish (50 changes) and the consumer work over TLS"


# --------------------------------------------------- a wrong CA is refused
write_conf wrong t1 "$amqps" "$pki/wrong-ca.pem"
rc=0
timeout 60 "$ds" -c "$work/wrong.conf" status >"$work/wrong.log" 2>&1 || rc=$?
((rc == 5)) || fail "a wrong CA: exit $rc, want 5 (broker unreachable): $(cat "$work/wrong.log")"
grep -q "not signed by the CA of amqp.ca_file ($pki/wrong-ca.pem)" "$work/wrong.log" ||
    fail "a wrong CA: the error does not name the CA file: $(cat "$work/wrong.log")"
# The producer refuses it too: the change is spooled, not sent in clear or
# to an unverified broker, and the reason names the CA file.
rc=0
timeout 60 "$ds" -c "$work/wrong.conf" publish --op create --table kv --key '{"id":900}' \
    --data '{"id":900,"v":"x"}' >"$work/wrong-publish.log" 2>&1 || rc=$?
((rc == 6)) || fail "publish with a wrong CA: exit $rc, want 6 (spooled): $(cat "$work/wrong-publish.log")"
grep -q "wrong-ca.pem" "$work/wrong-publish.log" ||
    fail "publish with a wrong CA does not name the CA file: $(cat "$work/wrong-publish.log")"
# The consumer does not start applying through it either.
rc=0
timeout 20 "$DS_TEST_BUILD/datasync-consumer" -c "$work/wrong.conf" >"$work/wrong-consumer.log" 2>&1 || rc=$?
grep -q "not signed by the CA of amqp.ca_file ($pki/wrong-ca.pem)" "$work/wrong-consumer.log" ||
    fail "datasync-consumer with a wrong CA (exit $rc) does not say why: $(tail -n 5 "$work/wrong-consumer.log")"
say "a wrong CA is refused by the CLI, the producer and the consumer, naming $pki/wrong-ca.pem"

# A missing CA file, and amqps:// without one.
write_conf noca t1 "$amqps" "$work/no-such-ca.pem"
rc=0
timeout 60 "$ds" -c "$work/noca.conf" status >"$work/noca.log" 2>&1 || rc=$?
((rc != 0)) && grep -q "amqp.ca_file: cannot load '$work/no-such-ca.pem'" "$work/noca.log" ||
    fail "a missing CA file: exit $rc: $(cat "$work/noca.log")"
write_conf emptyca t1 "$amqps" ""
rc=0
timeout 60 "$ds" -c "$work/emptyca.conf" status >"$work/emptyca.log" 2>&1 || rc=$?
((rc != 0)) && grep -q "amqp.ca_file is not set" "$work/emptyca.log" ||
    fail "amqps:// without amqp.ca_file: exit $rc: $(cat "$work/emptyca.log")"

# ------------------------------------------- the host name is checked too
# The node's certificate is replaced by one for another host: the CA is
# right, the name is not. (The node reads its files at each handshake.)
cp "$pki/server.pem" "$pki/server.pem.good"
cp "$pki/server.key" "$pki/server.key.good"
cp "$pki/other.pem" "$pki/server.pem"
cp "$pki/other.key" "$pki/server.key"
timeout 30 env DS_TEST_RUNDIR="$work/rabbit" "$DS_TEST_SERVICES" rabbit ctl eval 'ssl:clear_pem_cache().' \
    >/dev/null 2>&1 || true
rc=0
timeout 60 "$ds" -c "$work/t1.conf" status >"$work/name.log" 2>&1 || rc=$?
mv -f "$pki/server.pem.good" "$pki/server.pem"
mv -f "$pki/server.key.good" "$pki/server.key"
timeout 30 env DS_TEST_RUNDIR="$work/rabbit" "$DS_TEST_SERVICES" rabbit ctl eval 'ssl:clear_pem_cache().' \
    >/dev/null 2>&1 || true
((rc == 5)) && grep -q "does not name host '127.0.0.1'" "$work/name.log" ||
    fail "a certificate for another host: exit $rc: $(cat "$work/name.log")"
say "a certificate for another host is refused"

# ------------------------------------------------ verify_peer = false
write_conf noverify t1 "$amqps" "$pki/wrong-ca.pem" "verify_peer = false"
# status exits 8 when it warns about a node (t1 has no consumer here): what
# counts is that it connected and reported.
rc=0
timeout 60 "$ds" -c "$work/noverify.conf" status >"$work/noverify.log" 2>&1 || rc=$?
((rc == 0 || rc == 8)) && grep -q "^NODE" "$work/noverify.log" ||
    fail "verify_peer = false: status failed (exit $rc): $(cat "$work/noverify.log")"
grep -q "amqp.verify_peer = false: the broker's certificate is not checked" "$work/noverify.log" ||
    fail "verify_peer = false: no warning: $(cat "$work/noverify.log")"
timeout 60 "$ds" -c "$work/noverify.conf" publish --op create --table kv --key '{"id":51}' \
    --data '{"id":51,"v":"tls-51"}' >"$work/noverify-publish.log" 2>&1 ||
    fail "verify_peer = false: publish failed: $(cat "$work/noverify-publish.log")"
grep -q "amqp.verify_peer = false" "$work/noverify-publish.log" ||
    fail "verify_peer = false: publish logged no warning: $(cat "$work/noverify-publish.log")"
for _ in $(seq 1 300); do
    got=$(sql -N tls_t2 -e "SELECT COUNT(*) FROM kv WHERE id = 51")
    [[ "$got" == 1 ]] && break
    sleep 0.1
done
[[ "$got" == 1 ]] || fail "the change published with verify_peer = false was not applied"
# The spooled change of the wrong-CA attempt was never sent.
got=$(sql -N tls_t2 -e "SELECT COUNT(*) FROM kv WHERE id = 900")
[[ "$got" == 0 ]] || fail "a change published with a wrong CA reached the consumer"
say "verify_peer = false connects and warns"

# ------------------------------------------ a broker that wants a client
# certificate: the node restarts with verify_peer and fail_if_no_peer_cert
# (its rabbitmq.conf as services.sh wrote it, two lines changed).
conf=$work/rabbit/rabbit/rabbitmq.conf
grep -q '^ssl_options.fail_if_no_peer_cert = false' "$conf" ||
    fail "services.sh's TLS config changed: no fail_if_no_peer_cert line in $conf"
sed -i -e 's/^ssl_options.verify = verify_none/ssl_options.verify = verify_peer/' \
    -e 's/^ssl_options.fail_if_no_peer_cert = false/ssl_options.fail_if_no_peer_cert = true/' "$conf"
kill -TERM "$consumer_pid" 2>/dev/null || true
wait "$consumer_pid" 2>/dev/null || true
consumer_pid=""
tls_svc rabbit restart >"$work/rabbit-restart.log" 2>&1 ||
    fail "TLS node did not restart: $(tail -n 20 "$work/rabbit-restart.log")"
write_conf cert t1 "$amqps" "$pki/ca.pem" "cert_file = $pki/client.pem
key_file = $pki/client.key"
rc=0
timeout 60 "$ds" -c "$work/cert.conf" publish --op create --table kv --key '{"id":52}' \
    --data '{"id":52,"v":"tls-52"}' >"$work/cert-publish.log" 2>&1 || rc=$?
# Exit 0: confirmed by the broker (6 would be spooled).
((rc == 0)) || fail "with a client certificate: publish exit $rc: $(cat "$work/cert-publish.log")"
rc=0
timeout 60 "$ds" -c "$work/t1.conf" status >"$work/nocert.log" 2>&1 || rc=$?
((rc == 5)) || fail "without a client certificate: status exit $rc, want 5: $(cat "$work/nocert.log")"
grep -q "client certificate (amqp.cert_file)" "$work/nocert.log" ||
    fail "without a client certificate: the error does not say so: $(cat "$work/nocert.log")"
write_conf badcert t1 "$amqps" "$pki/ca.pem" "cert_file = $pki/client-wrong.pem
key_file = $pki/client.key"
rc=0
timeout 60 "$ds" -c "$work/badcert.conf" status >"$work/badcert.log" 2>&1 || rc=$?
((rc == 5)) || fail "an untrusted client certificate: status exit $rc, want 5: $(cat "$work/badcert.log")"
grep -q "trust the CA that signed the client certificate (amqp.cert_file)" "$work/badcert.log" ||
    fail "an untrusted client certificate: the error does not say so: $(cat "$work/badcert.log")"
say "a broker that wants a client certificate: accepted with amqp.cert_file/key_file, refused without or with an untrusted one, saying so"
say "PASS"
