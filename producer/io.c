/* io.c: the producer's I/O thread: connects, drains the spool, publishes with confirms, spools what the broker won't take. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "producer_private.h"

/* Published but unconfirmed records at most: confirms stream back while the
 * next ones go out, never one round trip per message. */
#define DS_CONFIRM_WINDOW 1024
/* A nacked change is published again this many times, then spooled. */
#define DS_MAX_NACKS 3
/* After that, the connection is opened again, at most this often: on
 * RabbitMQ 3.10 a channel that published to a quorum queue while the
 * queue's leader was on a member just killed goes on nacking every publish
 * to it even once a new leader runs (seen for minutes), while a new channel
 * is accepted as soon as the leader is elected (a few seconds). */
#define DS_REOPEN_GAP_MS 1000
/* How often a connected producer looks for records other processes (or its
 * own full queue) left in a shared spool. */
#define DS_DRAIN_CHECK_MS 5000
/* The longest the thread sleeps in poll, so heartbeats keep flowing. */
#define DS_POLL_MAX_MS 200
/* The archive stream not running for this long after the broker answers:
 * no longer a start (a big stream recovers in seconds), said as a warning. */
#define DS_ARCHIVE_WAIT_WARN_MS 30000

void ds__io_wake(ds_producer *p)
{
    pthread_cond_signal(&p->work);
    if (p->io_polling && p->wake_fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(p->wake_fd, &one, sizeof one);
        (void)n; /* a full counter already wakes the thread */
    }
}

void ds__io_watchdog(ds_producer *p, uint64_t now_ms)
{
    if (p->io_busy_since == 0 || p->sock_fd < 0 ||
        p->io_busy_since + (uint64_t)p->cfg.producer_confirm_timeout_ms >
            now_ms)
        return;
    /* rabbitmq-c 0.11 waits forever for a socket that takes no bytes (a
     * black-holed broker): shutting it down makes that write fail. */
    DS_PLOG(p, DS_LOG_WARN,
            "broker %s took no data for %d ms: dropping the connection",
            p->amqp.host, p->cfg.producer_confirm_timeout_ms);
    shutdown(p->sock_fd, SHUT_RDWR);
    p->io_busy_since = 0;
}

int ds__spool_records(ds_producer *p, ds_record **recs, size_t n, char *err,
                      size_t errlen)
{
    const char *stack_bodies[64];
    size_t stack_lens[64];
    const char **bodies = stack_bodies;
    size_t *lens = stack_lens;
    int rc;

    if (n == 0)
        return 0;
    if (n > 64) {
        bodies = malloc(n * sizeof *bodies);
        lens = malloc(n * sizeof *lens);
        if (!bodies || !lens) {
            rc = ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        bodies[i] = recs[i]->body;
        lens[i] = recs[i]->len;
    }
    rc = ds__spool_append(p->spool, bodies, lens, n, err, errlen);
    pthread_mutex_lock(&p->lock);
    if (rc == 0)
        p->stats.spooled += n;
    else
        DS_PLOG(p, DS_LOG_ERROR, "%s", err);
    ds__producer_unlock(p);
out:
    if (bodies != stack_bodies)
        free(bodies);
    if (lens != stack_lens)
        free(lens);
    return rc;
}

/* Whether the clock file is still missing and due for another look. */
static bool clock_due(const ds_producer *p, uint64_t now)
{
    return p->cfg.node_clock_file[0] &&
           !__atomic_load_n(&p->clock, __ATOMIC_ACQUIRE) &&
           now >= p->next_clock_try_ms;
}

/* The host's callback reached through the queue, for code that logs with
 * the lock released (the clock file, the connection's set-up): straight
 * calls could overlap with another thread's hand-over of the queue, and the
 * host is promised one message at a time, in order. */
static void log_via_queue(void *userdata, ds_log_level level, const char *msg)
{
    ds_producer *p = userdata;

    pthread_mutex_lock(&p->lock);
    DS_LOGQ(&p->logq, &p->log, level, "%s", msg);
    ds__producer_unlock(p);
}

/* Lock held. The logger for such code: off while the host has none, so a
 * message counts as told only once someone can hear it. */
static const ds_logger *unlocked_logger(ds_producer *p)
{
    p->io_log.level = p->log.level;
    p->io_log.fn = p->log.fn ? log_via_queue : NULL;
    p->io_log.userdata = p;
    return &p->io_log;
}

void ds__io_find_clock(ds_producer *p)
{
    ds_clockfile *cf;
    const ds_logger *lg;
    uint64_t now = ds__mono_ms();

    if (!clock_due(p, now))
        return;
    p->next_clock_try_ms = now + 5000;
    pthread_mutex_lock(&p->lock);
    lg = unlocked_logger(p);
    ds__producer_unlock(p);
    /* Missing until this server's consumer first runs: not an error; no
     * permission is logged once. */
    cf = ds__clockfile_try_reader(p->cfg.node_clock_file, lg,
                                  &p->clock_reported);
    if (cf)
        __atomic_store_n(&p->clock, cf, __ATOMIC_RELEASE);
}

/* Lock held. Marks r DONE with result: wakes its waiter, or frees it when
 * nobody waits for it. */
static void finish_record(ds_producer *p, ds_record *r, int result)
{
    r->state = DS_REC_DONE;
    r->result = result;
    if (!r->from_spool)
        p->outstanding--;
    if (result == DS_ESPOOL)
        p->stats.lost++;
    /* A sync caller is told by ds_emit; the others by ds_flush. */
    if (result == DS_EUNROUTABLE && !r->waited)
        p->unroutable_since_flush++;
    if (result == DS_ESPOOL && !r->waited)
        p->lost_since_flush++;
    if (!r->waited)
        ds__rec_free(r);
    pthread_cond_broadcast(&p->changed);
}

/* Lock held. Moves the records to the spool and finishes them: unlocks
 * around the disk write. */
static void spool_and_finish(ds_producer *p, ds_record **recs, size_t n)
{
    char err[DS_ERRMSG_SIZE];
    int rc;

    if (n == 0)
        return;
    ds__producer_unlock(p);
    rc = ds__spool_records(p, recs, n, err, sizeof err);
    pthread_mutex_lock(&p->lock);
    if (rc < 0) /* for the sync callers these records fail */
        memcpy(p->spool_err, err, sizeof p->spool_err);
    for (size_t i = 0; i < n; i++)
        finish_record(p, recs[i], rc < 0 ? DS_ESPOOL : 0);
}

/* Lock held. Spools pending records queued before cutoff_ms (all of them
 * when cutoff is UINT64_MAX): used while the broker cannot take them. */
static void spool_pending_before(ds_producer *p, uint64_t cutoff_ms)
{
    ds_record *batch[256];
    size_t n;

    do {
        n = 0;
        while (n < 256 && p->pending.head &&
               p->pending.head->queued_ms < cutoff_ms)
            batch[n++] = ds__rec_pop(&p->pending);
        spool_and_finish(p, batch, n);
    } while (n == 256);
}

/* Lock held. An unanswered record of the host's goes back to the queue (ctx:
 * the list of them, in publish order); one drained from the spool stays
 * there and unfinished, for drain_spool to see. */
static void requeue_lost(void *ctx, ds_confirm *e)
{
    ds_record *r = e->ptr;

    if (r->from_spool)
        return;
    r->state = DS_REC_PENDING;
    ds__rec_push(ctx, r);
}

/* Lock held. The channel is gone: every unconfirmed record goes back to the
 * head of the queue, ahead of the never-published ones, so the queue keeps
 * emit order. */
static void requeue_unconfirmed(ds_producer *p)
{
    ds_rec_list lost = {0};

    ds__confirms_fail(&p->inflight, requeue_lost, &lost);
    ds__rec_push_list_front(&p->pending, &lost);
}

/* Lock held. Everything unconfirmed goes to the spool, unconfirmed first and
 * then never-published, so the spool keeps emit order. */
static void spool_unconfirmed(ds_producer *p)
{
    requeue_unconfirmed(p);
    spool_pending_before(p, UINT64_MAX);
}

static void free_lost(void *ctx, ds_confirm *e)
{
    (void)ctx;
    ds__rec_free(e->ptr);
}

void ds__io_free_inflight(ds_producer *p)
{
    ds__confirms_fail(&p->inflight, free_lost, NULL);
    ds__confirms_free(&p->inflight);
}

/* Lock held. Spools the pending records that have waited half the confirm
 * timeout: the broker is busy (draining) or refuses publishes (blocked),
 * and their callers were promised an answer within the timeout. */
static void spool_stale_pending(ds_producer *p)
{
    uint64_t now = ds__mono_ms(),
             half = (uint64_t)p->cfg.producer_confirm_timeout_ms / 2;

    spool_pending_before(p, now > half ? now - half : 0);
}

/* Lock held. The connection is gone: spool, and retry after a backoff. */
static void fail_connection(ds_producer *p, const char *why)
{
    if (p->amqp.conn)
        DS_PLOG(p, DS_LOG_WARN, "broker %s: %s; spooling %zu changes",
                p->amqp.host, why, p->inflight.unsettled + p->pending.count);
    p->broker_down = true;
    p->blocked = false;
    p->sock_fd = -1;
    p->io_busy_since = 0;
    ds__amqp_drop(&p->amqp);
    spool_unconfirmed(p);
    p->next_connect_ms = ds__mono_ms() + ds__backoff_next(&p->backoff);
}

static int publish_one(ds_producer *p, ds_record *r)
{
    amqp_basic_properties_t props;
    amqp_table_entry_t header;
    amqp_bytes_t body = {r->len, r->body};

    ds__amqp_event_props(&props, &header, r->id, r->origin);
    return amqp_basic_publish(
        p->amqp.conn, DS_AMQP_CHANNEL, ds__amqp_str(p->cfg.amqp_exchange),
        ds__amqp_str(p->cfg.amqp_routing_key), 1 /* mandatory */,
        0 /* immediate */, &props, body);
}

/* Lock held. Publishes the records in order, as inflight; unlocks around
 * the socket writes. Returns 0 or the first rabbitmq-c error. */
static int publish_records(ds_producer *p, ds_record **recs, size_t n)
{
    int status = AMQP_STATUS_OK;

    for (size_t i = 0; i < n; i++) {
        if (ds__confirms_add(&p->inflight, recs[i]->id, recs[i], 0) == 0) {
            /* Out of memory: nothing is published and the caller drops the
             * connection, which requeues the records taken so far; the
             * others go back ahead of them (drained ones stay spooled). */
            ds_rec_list rest = {0};
            for (size_t j = i; j < n; j++)
                if (!recs[j]->from_spool)
                    ds__rec_push(&rest, recs[j]);
            ds__rec_push_list_front(&p->pending, &rest);
            return AMQP_STATUS_NO_MEMORY;
        }
        recs[i]->state = DS_REC_INFLIGHT;
        recs[i]->sent_ms = ds__mono_ms();
    }
    p->io_busy_since = ds__mono_ms();
    /* No log hand-over here: a slow callback would look like a stuck
     * socket to the watchdog. The next unlock hands the messages over. */
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < n && status == AMQP_STATUS_OK; i++)
        status = publish_one(p, recs[i]);
    pthread_mutex_lock(&p->lock);
    p->io_busy_since = 0;
    return status;
}

/* Lock held. Publishes pending records while the window has room. */
static int publish_pending(ds_producer *p)
{
    ds_record *batch[128];
    size_t n = 0;

    while (n < 128 && !p->blocked && p->pending.head &&
           p->inflight.unsettled + n < DS_CONFIRM_WINDOW)
        batch[n++] = ds__rec_pop(&p->pending);
    return publish_records(p, batch, n);
}

/* What one basic.ack or basic.nack settles: the producer, and the refused
 * changes to publish again. */
typedef struct confirm_ctx {
    ds_producer *p;
    ds_rec_list retry;
} confirm_ctx;

/* Lock held. One record's verdict (ds_confirm_fn): a host's change is
 * finished, published again after a nack, or spooled after DS_MAX_NACKS; a
 * drained one gets its verdict for drain_spool to read. */
static void on_settled(void *arg, ds_confirm *e)
{
    confirm_ctx *cx = arg;
    ds_producer *p = cx->p;
    ds_record *r = e->ptr;
    bool ack = e->state != DS_CONFIRM_NACKED;
    bool returned = e->state == DS_CONFIRM_UNROUTABLE;

    if (!ack)
        p->stats.nacked++;
    if (r->from_spool) {
        /* drain_spool owns it and reads the verdict. */
        p->drain_unconfirmed--;
        r->state = DS_REC_DONE;
        r->result = ds__confirm_result(e, 0);
        if (ack && returned) {
            p->stats.unroutable++;
            p->unroutable_since_flush++; /* ds_flush reports it */
        } else if (ack)
            p->stats.confirmed++;
    } else if (ack) {
        if (returned)
            p->stats.unroutable++;
        else
            p->stats.confirmed++;
        finish_record(p, r, returned ? DS_EUNROUTABLE : 0);
    } else if (++r->nacks < DS_MAX_NACKS) {
        ds__rec_push(&cx->retry, r);
    } else {
        DS_PLOG(p, DS_LOG_WARN, "change %s nacked %d times: spooling it", r->id,
                r->nacks);
        spool_and_finish(p, &r, 1);
        p->reopen = true;
    }
}

/* Lock held. One confirm (ack or nack) for the delivery tag, or for every
 * tag up to it when multiple. */
static void on_confirm(ds_producer *p, uint64_t tag, bool multiple, bool ack)
{
    confirm_ctx cx = {p, {0}};

    ds__confirms_answer(&p->inflight, tag, multiple, ack, on_settled, &cx);
    /* Refused changes go out again first, in their original order. */
    for (ds_record *r = cx.retry.head; r; r = r->next)
        r->state = DS_REC_PENDING;
    ds__rec_push_list_front(&p->pending, &cx.retry);
}

/* Lock held. A basic.return: the change reached no queue. Its ack follows;
 * mark the record so the ack reports it unroutable. */
static int on_return(ds_producer *p)
{
    char id[37], err[DS_ERRMSG_SIZE];
    int rc;

    ds__producer_unlock(p);
    rc = ds__amqp_read_return(p->amqp.conn, DS_AMQP_CHANNEL, id, sizeof id, err,
                              sizeof err);
    pthread_mutex_lock(&p->lock);
    if (rc < 0)
        return -1;
    if (id[0]) /* every change has one: an empty id matches none */
        ds__confirms_returned(&p->inflight, id);
    DS_PLOG(p, DS_LOG_ERROR,
            "change %s returned unroutable: no queue is bound to exchange %s "
            "with routing key %s",
            id, p->cfg.amqp_exchange, p->cfg.amqp_routing_key);
    return 0;
}

/* Lock held. Returns 0, or -1 when the connection must be dropped. */
static int on_frame(ds_producer *p, const amqp_frame_t *f, const char **why)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        on_confirm(p, a->delivery_tag, a->multiple, true);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *n = f->payload.method.decoded;
        on_confirm(p, n->delivery_tag, n->multiple, false);
        return 0;
    }
    case AMQP_BASIC_RETURN_METHOD:
        if (on_return(p) < 0) {
            *why = "cannot read a returned message";
            return -1;
        }
        return 0;
    case AMQP_CONNECTION_BLOCKED_METHOD:
        p->blocked = true;
        DS_PLOG(p, DS_LOG_WARN, "broker %s blocked publishing (resource alarm)",
                p->amqp.host);
        return 0;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        p->blocked = false;
        DS_PLOG(p, DS_LOG_INFO, "broker %s unblocked publishing", p->amqp.host);
        return 0;
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *c = f->payload.method.decoded;
        DS_PLOG(p, DS_LOG_ERROR, "broker closed the channel: %u %.*s",
                c->reply_code, (int)c->reply_text.len,
                (const char *)c->reply_text.bytes);
        *why = "channel closed by the broker";
        return -1;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *c = f->payload.method.decoded;
        DS_PLOG(p, DS_LOG_ERROR, "broker closed the connection: %u %.*s",
                c->reply_code, (int)c->reply_text.len,
                (const char *)c->reply_text.bytes);
        *why = "connection closed by the broker";
        return -1;
    }
    }
    return 0;
}

/* Lock held. Waits up to wait_ms for the socket (or a wake-up from
 * ds_emit), then handles every frame that has arrived. Returns 0 or -1
 * when the connection failed (why says how). */
static int read_frames(ds_producer *p, int wait_ms, const char **why)
{
    amqp_connection_state_t conn = p->amqp.conn;
    struct timeval zero = {0, 0};
    amqp_frame_t frame;
    int status;

    if (wait_ms > 0 && !amqp_frames_enqueued(conn) &&
        !amqp_data_in_buffer(conn)) {
        struct pollfd fds[2] = {{amqp_get_sockfd(conn), POLLIN, 0},
                                {p->wake_fd, POLLIN, 0}};
        uint64_t drained;
        p->io_polling = true;
        ds__producer_unlock(p);
        poll(fds, 2, wait_ms);
        if (read(p->wake_fd, &drained, sizeof drained) < 0)
            drained = 0; /* nothing was signalled */
        pthread_mutex_lock(&p->lock);
        p->io_polling = false;
    }
    for (int frames = 0; frames < 4 * DS_CONFIRM_WINDOW; frames++) {
        ds__producer_unlock(p);
        /* Called even when nothing arrived: it is where rabbitmq-c sends our
         * heartbeats and notices missing ones from the broker. */
        status = amqp_simple_wait_frame_noblock(conn, &frame, &zero);
        pthread_mutex_lock(&p->lock);
        if (status == AMQP_STATUS_TIMEOUT)
            return 0;
        if (status != AMQP_STATUS_OK) {
            *why = amqp_error_string2(status);
            return -1;
        }
        if (on_frame(p, &frame, why) < 0)
            return -1;
        /* rabbitmq-c decodes every frame into its channel's pool and frees
         * nothing until asked: without this, each confirm (one per change
         * in sync mode) kept about 40 bytes for the connection's life.
         * on_frame keeps no pointer into the frame. */
        amqp_maybe_release_buffers(conn);
        if (!amqp_frames_enqueued(conn) && !amqp_data_in_buffer(conn))
            return 0;
    }
    return 0;
}

/* Lock held. Turns drained spool payloads into records for publishing. */
static size_t read_spool_chunk(ds_producer *p, ds_record **recs, size_t max)
{
    char err[DS_ERRMSG_SIZE];
    size_t n = 0;

    ds__producer_unlock(p);
    while (n < max) {
        ds_event ev;
        char *payload;
        size_t len;
        int skipped = 0;

        if (ds__spool_read(p->spool, &payload, &len, &skipped, err,
                           sizeof err) < 0) {
            pthread_mutex_lock(&p->lock);
            DS_PLOG(p, DS_LOG_ERROR, "%s", err);
            ds__producer_unlock(p);
            break;
        }
        if (!payload)
            break;
        if (skipped) {
            pthread_mutex_lock(&p->lock);
            DS_PLOG(p, DS_LOG_ERROR, "spool: skipped %d corrupt records",
                    skipped);
            ds__producer_unlock(p);
        }
        if (ds__event_parse(&ev, payload, len, err, sizeof err) < 0) {
            pthread_mutex_lock(&p->lock);
            DS_PLOG(p, DS_LOG_ERROR, "spool: dropping an invalid record: %s",
                    err);
            ds__producer_unlock(p);
            free(payload);
            continue;
        }
        recs[n] = calloc(1, sizeof *recs[n]);
        if (!recs[n]) {
            ds__event_clear(&ev);
            free(payload);
            break;
        }
        memcpy(recs[n]->id, ev.id, sizeof ev.id);
        memcpy(recs[n]->origin, ev.origin, sizeof ev.origin);
        ds__event_clear(&ev);
        recs[n]->body = payload;
        recs[n]->len = len;
        recs[n]->from_spool = true;
        recs[n]->spool_end = ds__spool_cursor(p->spool);
        n++;
    }
    pthread_mutex_lock(&p->lock);
    return n;
}

/* Lock held. Settles the chunk and frees its records. Returns the spool
 * offset up to which every record was confirmed, or 0 when the first one
 * was not. */
static uint64_t settle_chunk(ds_producer *p, ds_record **chunk, size_t n)
{
    uint64_t confirmed_to = 0;
    bool prefix = true;

    /* Some are unanswered only when the connection failed: the host's
     * unconfirmed records go back to the queue for fail_connection to spool,
     * and the chunk's stay unfinished, in the spool. */
    if (p->drain_unconfirmed > 0)
        requeue_unconfirmed(p);
    p->drain_unconfirmed = 0;
    for (size_t i = 0; i < n; i++) {
        prefix = prefix && chunk[i]->state == DS_REC_DONE &&
                 chunk[i]->result != DS_ENACK;
        if (prefix)
            confirmed_to = chunk[i]->spool_end;
        ds__rec_free(chunk[i]);
    }
    return confirmed_to;
}

/* Lock held, released around the disk: the spool's file locks may wait for
 * another process's fdatasync, and the host's threads need p->lock to emit.
 * Moves the spool's head to offset. */
static int commit_spool(ds_producer *p, uint64_t offset, char *err,
                        size_t errlen)
{
    int rc;

    ds__producer_unlock(p);
    rc = ds__spool_commit(p->spool, offset, err, errlen);
    pthread_mutex_lock(&p->lock);
    return rc;
}

/* Lock held, released around the disk. Whether the spool holds changes
 * and this producer got to drain them (*backlog: bytes). */
static bool begin_drain(ds_producer *p, uint64_t *backlog)
{
    char err[DS_ERRMSG_SIZE];
    bool got = false;

    ds__producer_unlock(p);
    ds__spool_backlog(p->spool, backlog);
    if (*backlog > 0 &&
        ds__spool_drain_begin(p->spool, &got, err, sizeof err) < 0)
        got = false;
    pthread_mutex_lock(&p->lock);
    return got;
}

/* Lock held. Publishes the spool's records in order, a chunk at a time, and
 * moves its head past the longest confirmed prefix of each chunk. Returns
 * 0, or -1 when the connection failed. */
static int drain_spool(ds_producer *p, const char **why)
{
    char err[DS_ERRMSG_SIZE];
    ds_record *chunk[256];
    uint64_t backlog = 0, drained = 0;
    int rc = 0;

    p->next_drain_check_ms = ds__mono_ms() + DS_DRAIN_CHECK_MS;
    if (!begin_drain(p, &backlog))
        return 0;
    DS_PLOG(p, DS_LOG_INFO, "draining %llu bytes of spooled changes",
            (unsigned long long)backlog);
    for (;;) {
        size_t n = read_spool_chunk(p, chunk, 256);
        uint64_t deadline, confirmed_to, chunk_end;

        if (n == 0) {
            /* Only corrupt records (already logged) may lie past the last
             * confirmed one: move the head over them too. */
            if (commit_spool(p, ds__spool_cursor(p->spool), err, sizeof err) <
                0)
                DS_PLOG(p, DS_LOG_ERROR, "%s", err);
            break;
        }
        chunk_end = chunk[n - 1]->spool_end;
        p->drain_unconfirmed = n;
        if (publish_records(p, chunk, n) != AMQP_STATUS_OK) {
            *why = "publish failed while draining the spool";
            rc = -1;
        }
        deadline = ds__mono_ms() + (uint64_t)p->cfg.producer_confirm_timeout_ms;
        while (rc == 0 && p->drain_unconfirmed > 0) {
            if (ds__mono_ms() >= deadline) {
                *why = "no confirm within producer.confirm_timeout_ms";
                rc = -1;
            } else {
                rc = read_frames(p, DS_POLL_MAX_MS, why);
            }
        }
        confirmed_to = settle_chunk(p, chunk, n);
        if (confirmed_to > 0 &&
            commit_spool(p, confirmed_to, err, sizeof err) < 0) {
            DS_PLOG(p, DS_LOG_ERROR, "%s", err);
            break;
        }
        if (rc < 0)
            break;
        if (confirmed_to != chunk_end) {
            DS_PLOG(p, DS_LOG_WARN,
                    "broker refused spooled changes: draining again later");
            p->reopen = true;
            break;
        }
        drained += n;
        /* The rest stays on disk for the next producer: ds_producer_free
         * waits for one chunk, not for a backlog of hours. */
        if (p->stopping)
            break;
        /* New changes wait behind the spool, and join it past half their
         * timeout. */
        spool_stale_pending(p);
    }
    ds__spool_drain_end(p->spool);
    if (drained)
        DS_PLOG(p, DS_LOG_INFO, "drained %llu spooled changes",
                (unsigned long long)drained);
    return rc;
}

/*
 * Unlocked. Whether the archive stream <exchange>.archive can take changes.
 * RabbitMQ (seen on 3.10.8) accepts connections after a restart or a kill
 * before it has started its streams again (0.1-1 s here): meanwhile a
 * change routed to the node queues and the stream goes to the node queues
 * only, and is confirmed, so the archive lacks it for good (3,000 changes
 * drained from the spool at the first connection: 1,028 missing after a
 * restart, 768 after a kill -9). A passive declare tells: the stream runs
 * (0); 404 "no queue '...'", this broker has no archive and nothing is
 * waited for (0); any other 404 ("home node ... of durable queue ... is
 * down or inaccessible" while it starts) sets *starting and is
 * DS_ECONNECT, a passing outage: the changes wait in the spool. Another
 * refusal (a permission) cannot tell and publishes as before (0).
 * Permissions: none (a passive declare).
 */
static int archive_running(ds_producer *p, bool *starting, char *err,
                           size_t errlen)
{
    static const char absent[] = "NOT_FOUND - no queue ";
    amqp_connection_state_t conn = p->amqp.conn;
    amqp_channel_close_ok_t close_ok = {0};
    char stream[300];

    snprintf(stream, sizeof stream, "%s.archive", p->cfg.amqp_exchange);
    amqp_queue_declare(conn, DS_AMQP_CHANNEL, ds__amqp_str(stream),
                       1 /* passive */, 0, 0, 0, amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
        r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
        return ds__amqp_reply_error(r, "queue.declare (passive) of the archive",
                                    err, errlen);
    /* The refusal read before anything else is sent on the connection. */
    const amqp_channel_close_t *c = r.reply.decoded;
    unsigned code = c->reply_code;
    char text[256];
    ds__amqp_copy_str(c->reply_text, text, sizeof text);
    amqp_send_method(conn, DS_AMQP_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD,
                     &close_ok);
    if (code == 404 && strncmp(text, absent, sizeof absent - 1) != 0) {
        *starting = true;
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "archive stream %s not running yet: %u %s", stream,
                          code, text);
    }
    /* The channel the refusal closed opens again. */
    amqp_channel_open(conn, DS_AMQP_CHANNEL);
    return ds__amqp_reply_error(amqp_get_rpc_reply(conn), "channel.open", err,
                                errlen);
}

/* Lock held; unlocks around the network. */
static void connect_broker(ds_producer *p)
{
    char err[DS_ERRMSG_SIZE];
    const char *why = NULL;
    bool starting = false;
    int rc;

    snprintf(p->client_name, sizeof p->client_name,
             "datasync-producer %s pid %d", p->cfg.node_id, (int)p->pid);
    p->amqp.client_name = p->client_name;
    p->amqp.tls = &p->cfg;
    /* The connection logs (verify_peer = false) only while unlocked. */
    p->amqp.lg = unlocked_logger(p);
    ds__producer_unlock(p);
    rc = ds__amqp_connect(&p->amqp, p->cfg.amqp_url, p->cfg.amqp_heartbeat,
                          p->cfg.producer_confirm_timeout_ms, err, sizeof err);
    if (rc == 0) {
        /* Passive: an application needs write permission on the exchange
         * only (datasync setup declares it), and a missing exchange is
         * told apart from a missing permission. */
        amqp_exchange_declare(p->amqp.conn, DS_AMQP_CHANNEL,
                              ds__amqp_str(p->cfg.amqp_exchange),
                              amqp_cstring_bytes("topic"), 1 /* passive */, 0,
                              0, 0, amqp_empty_table);
        rc =
            ds__amqp_reply_error(amqp_get_rpc_reply(p->amqp.conn),
                                 "exchange.declare (passive)", err, sizeof err);
        if (rc == DS_ENOTFOUND)
            snprintf(err, sizeof err,
                     "exchange %s does not exist: run datasync setup",
                     p->cfg.amqp_exchange);
    }
    if (rc == 0 && p->cfg.archive_enabled)
        rc = archive_running(p, &starting, err, sizeof err);
    if (rc == 0) {
        amqp_confirm_select(p->amqp.conn, DS_AMQP_CHANNEL);
        rc = ds__amqp_reply_error(amqp_get_rpc_reply(p->amqp.conn),
                                  "confirm.select", err, sizeof err);
    }
    /* What datasync status shows beside the spool's depth. */
    ds__spool_set_problem(p->cfg.producer_spool_dir, rc < 0 ? err : NULL);
    pthread_mutex_lock(&p->lock);
    if (rc == DS_EAMQP || rc == DS_ENOTFOUND) {
        /* Not an outage: a wrong password, vhost or permission, or no
         * setup. It does not pass by itself, so it is said loudly. */
        p->stats.refused++;
        DS_PLOG(p, DS_LOG_ERROR,
                "broker refused this producer, changes go to the spool until "
                "it is fixed: %s",
                err);
    } else if (starting && p->archive_wait_since == 0) {
        /* The broker answers but is still starting its streams: the next
         * try comes soon (the shortest backoff), not after the outage's;
         * then the backoff grows as for an outage. */
        p->archive_wait_since = ds__mono_ms();
        DS_PLOG(p, DS_LOG_INFO,
                "broker %s is starting: %s; changes wait in the spool",
                p->amqp.host, err);
        ds__backoff_reset(&p->backoff);
    } else if (starting) {
        /* A stream that does not start is said loudly, once per try (at
         * most every DS_BACKOFF_MAX_MS), after a while. */
        uint64_t waited = ds__mono_ms() - p->archive_wait_since;
        DS_PLOG(p,
                waited >= DS_ARCHIVE_WAIT_WARN_MS ? DS_LOG_WARN : DS_LOG_INFO,
                "broker %s: %s for %llu s; changes wait in the spool",
                p->amqp.host, err, (unsigned long long)(waited / 1000));
    } else if (rc < 0) {
        DS_PLOG(p, p->ever_connected ? DS_LOG_WARN : DS_LOG_INFO,
                "broker unreachable, changes go to the spool: %s", err);
    }
    if (!starting)
        p->archive_wait_since = 0; /* a next wait is a new start */
    if (rc < 0) {
        ds__amqp_drop(&p->amqp);
        fail_connection(p, err);
        return;
    }
    if (p->ever_connected)
        p->stats.reconnects++;
    p->ever_connected = true;
    p->broker_down = false;
    ds__confirms_restart(&p->inflight);
    ds__backoff_reset(&p->backoff);
    p->sock_fd = amqp_get_sockfd(p->amqp.conn);
    DS_PLOG(p, DS_LOG_INFO, "connected to broker %s", p->amqp.host);
    if (drain_spool(p, &why) < 0)
        fail_connection(p, why);
}

/* Lock held. Sleeps until deadline_ms or a wake-up, at most a poll's
 * length so heartbeats and the stop flag are looked at. */
static void sleep_until(ds_producer *p, uint64_t deadline_ms)
{
    ds__cond_wait(&p->work, &p->lock, deadline_ms, DS_POLL_MAX_MS);
}

void *ds__io_main(void *arg)
{
    ds_producer *p = arg;
    const char *why = NULL;
    uint64_t stop_deadline = 0;
    sigset_t all;

    /* Signals are the host's business: let its own threads take them. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    pthread_mutex_lock(&p->lock);
    for (;;) {
        ds_confirm *oldest;
        uint64_t now;

        /* Before any sleep: what the last round logged is told now, and a
         * missing clock file is looked for (it may log too); both only
         * without the lock, which a round without them keeps. */
        now = ds__mono_ms();
        if (p->logq.count > 0 || p->logq.dropped > 0 || clock_due(p, now)) {
            ds__producer_unlock(p);
            ds__io_find_clock(p);
            pthread_mutex_lock(&p->lock);
            now = ds__mono_ms();
        }

        if (p->stopping) {
            if (!stop_deadline)
                stop_deadline =
                    now + (uint64_t)p->cfg.producer_confirm_timeout_ms;
            if (p->pending.count + p->inflight.unsettled == 0 ||
                now >= stop_deadline || !p->amqp.conn)
                break;
        }
        if (!p->amqp.conn) {
            /* Before the first attempt, changes wait for it; after a
             * failed one, they go to the spool at once. */
            if (p->broker_down)
                spool_pending_before(p, UINT64_MAX);
            if (now >= p->next_connect_ms)
                connect_broker(p);
            else
                sleep_until(p, p->next_connect_ms);
            continue;
        }
        if (p->reopen) {
            p->reopen = false;
            if (now >= p->next_reopen_ms) {
                p->next_reopen_ms = now + DS_REOPEN_GAP_MS;
                fail_connection(p, "it keeps refusing changes (nacks): "
                                   "connecting again");
                continue;
            }
        }
        if (publish_pending(p) != AMQP_STATUS_OK) {
            fail_connection(p, "publish failed");
            continue;
        }
        /* Added, not subtracted: the oldest may have been sent after now. */
        oldest = ds__confirms_oldest(&p->inflight);
        if (oldest && ((ds_record *)oldest->ptr)->sent_ms +
                              (uint64_t)p->cfg.producer_confirm_timeout_ms <
                          now) {
            fail_connection(p, "no confirm within producer.confirm_timeout_ms");
            continue;
        }
        if (p->blocked)
            spool_stale_pending(p);
        if (now >= p->next_drain_check_ms && drain_spool(p, &why) < 0) {
            fail_connection(p, why);
            continue;
        }
        if (read_frames(p,
                        p->pending.head && !p->blocked &&
                                p->inflight.unsettled < DS_CONFIRM_WINDOW
                            ? 0
                            : DS_POLL_MAX_MS,
                        &why) < 0)
            fail_connection(p, why);
    }
    /* Whatever the broker has not confirmed by now stays safe on disk. */
    p->broker_down = true;
    p->sock_fd = -1;
    if (p->amqp.conn) {
        ds__producer_unlock(p);
        ds__amqp_close(&p->amqp);
        pthread_mutex_lock(&p->lock);
    }
    spool_unconfirmed(p);
    ds__producer_unlock(p);
    return NULL;
}
