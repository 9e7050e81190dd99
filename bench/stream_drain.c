/* stream_drain.c: the raw no-op baseline of bench/history.sh: consumes N messages of a stream from its first offset with rabbitmq-c alone, acking in steps, and prints the rate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amqp_compat.h"

#define PREFETCH 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "stream_drain: %s\n", what);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: stream_drain HOST PORT STREAM COUNT\n");
        return 2;
    }
    long count = atol(argv[4]), got = 0;
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    amqp_table_entry_t offset;
    amqp_envelope_t env;
    double t0;

    if (!sock || amqp_socket_open(sock, argv[1], atoi(argv[2])) != 0)
        die("cannot connect");
    if (amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest",
                   "guest")
            .reply_type != AMQP_RESPONSE_NORMAL)
        die("login refused");
    amqp_channel_open(conn, 1);
    amqp_basic_qos(conn, 1, 0, PREFETCH, 0);
    offset.key = amqp_cstring_bytes("x-stream-offset");
    offset.value.kind = AMQP_FIELD_KIND_UTF8;
    offset.value.value.bytes = amqp_cstring_bytes("first");
    amqp_basic_consume(conn, 1, amqp_cstring_bytes(argv[3]), amqp_empty_bytes,
                       0, 0, 0, (amqp_table_t){1, &offset});
    if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL)
        die("basic.consume refused");
    t0 = now_s();
    while (got < count) {
        struct timeval tv = {30, 0};
        amqp_maybe_release_buffers(conn);
        if (amqp_consume_message(conn, &env, &tv, 0).reply_type !=
            AMQP_RESPONSE_NORMAL)
            die("delivery failed or nothing for 30 s");
        if (++got % (PREFETCH / 2) == 0 || got == count)
            amqp_basic_ack(conn, 1, env.delivery_tag, 1);
        amqp_destroy_envelope(&env);
    }
    printf("%.0f\n", count / (now_s() - t0));
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return 0;
}
