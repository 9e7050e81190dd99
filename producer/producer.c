/* producer.c: the API side of libdatasync: builds events, queues them for the I/O thread, waits for their fate. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "detail.h"
#include "event.h"
#include "producer_private.h"

/* Async mode holds at most this many unconfirmed records in memory; past it
 * ds_emit waits for room, then spools. */
#define DS_MAX_QUEUED 16384

/* A sync caller waits this long past the confirm timeout for the I/O thread,
 * which spools on its own at the timeout, before spooling the change itself. */
#define DS_WAIT_GRACE_MS 1000

/* The header promises that DS_ERRBUF_SIZE holds any detail in full. */
_Static_assert(DS_ERRMSG_SIZE <= DS_ERRBUF_SIZE,
               "details outgrow DS_ERRBUF_SIZE");

static uint64_t deadline_after(int ms)
{
    return ds__mono_ms() + (uint64_t)(ms > 0 ? ms : 0);
}

/* Waits on p->changed until deadline_ms (lock held), waking at least every
 * 100 ms so the caller can look at the I/O thread (watchdog). */
static void wait_until(ds_producer *p, uint64_t deadline_ms)
{
    ds__cond_wait(&p->changed, &p->lock, deadline_ms, 100);
}

/* The calling thread's detail buffer for p, claimed: only a failing call
 * claims it, so a success leaves the detail of the last failure in place. */
static char *detail(const ds_producer *p)
{
    return ds__detail_claim(p, p->token);
}

/* The spool directory's version counter, "hlc" beside the spool's files. */
static int open_stamps(ds_producer *p, char *err, size_t errlen)
{
    char path[PATH_MAX];
    int rc;

    if (snprintf(path, sizeof path, "%s/hlc", p->cfg.producer_spool_dir) >=
        (int)sizeof path)
        return ds__seterr(err, errlen, DS_ECONFIG,
                          "producer.spool_dir is too long");
    rc = ds__clockfile_open_counter(&p->stamps, path, err, errlen);
    if (rc < 0)
        return rc;
    ds__hlc_share(&p->hlc, p->stamps);
    return 0;
}

static int start_io(ds_producer *p, char *err, size_t errlen)
{
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->wake_fd < 0)
        return ds__seterr(err, errlen, DS_EIO, "eventfd: %s", strerror(errno));
    if (pthread_create(&p->io_thread, NULL, ds__io_main, p) != 0) {
        close(p->wake_fd);
        p->wake_fd = -1;
        return ds__seterr(err, errlen, DS_ENOMEM,
                          "cannot start the I/O thread");
    }
    p->io_started = true;
    return 0;
}

/* The child of a fork has the parent's memory but not its I/O thread, and
 * shares its socket and spool descriptors: drops all of that without
 * touching the parent's side. Once per process. */
static void drop_parents_state(ds_producer *p)
{
    pthread_mutex_init(&p->lock, NULL);
    ds__cond_init(&p->changed);
    ds__cond_init(&p->work);
    ds__logq_after_fork(&p->logq);
    ds__rec_free_list(&p->pending); /* the parent delivers its own records */
    ds__io_free_inflight(p);
    p->outstanding = 0;
    p->broker_down = p->blocked = p->stopping = p->io_polling = false;
    p->io_busy_since = 0;
    p->io_started = false;
    p->sock_fd = -1;
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    p->wake_fd = -1;
    if (p->amqp.conn) {
        /* Closing our copy of the socket leaves the parent's connection up. */
        close(amqp_get_sockfd(p->amqp.conn));
        p->amqp.conn = NULL; /* its memory is lost: freeing it would try I/O */
    }
    ds__spool_forget(p->spool);
    p->spool = NULL;
    ds__backoff_init(&p->backoff); /* or the child retries in step with us */
    p->dropped_in = getpid();
}

/* Starts the child's own spool and I/O thread. A failure leaves the handle
 * the parent's (p->pid), to be tried again by the next call, not half
 * built. */
static int reinit_after_fork(ds_producer *p, char *err, size_t errlen)
{
    int rc;

    if (p->dropped_in != getpid())
        drop_parents_state(p);
    if (!p->spool) {
        rc = ds__spool_open(&p->spool, p->cfg.producer_spool_dir, err, errlen);
        if (rc < 0)
            return rc;
    }
    /* The child's before its thread starts: that thread's first message
     * may reach a log callback that calls back in (ds_producer_stats_get),
     * which must not take the handle for the parent's and start another
     * thread. Back to the parent's if the thread does not start, so the
     * next call tries again. */
    pid_t parent = p->pid;
    p->pid = getpid();
    rc = start_io(p, err, errlen);
    if (rc < 0) {
        p->pid = parent;
        return rc;
    }
    return 0;
}

static int check_handle(ds_producer *p)
{
    char err[DS_ERRMSG_SIZE] = "";
    int rc;

    if (!p)
        return DS_EINVAL;
    if (p->pid == getpid())
        return 0;
    rc = reinit_after_fork(p, err, sizeof err);
    if (rc < 0)
        ds__seterr(detail(p), DS_ERRMSG_SIZE, rc, "%s", err);
    return rc;
}

int ds_producer_new(ds_producer **out, const ds_options *opts, char *err,
                    size_t errlen)
{
    ds_producer *p;
    int rc;

    if (err && errlen > 0)
        err[0] = '\0';
    if (!out || !opts)
        return ds__seterr(err, errlen, DS_EINVAL, "%s is NULL",
                          out ? "opts" : "out");
    *out = NULL;
    if (!opts->cfg.node_id[0])
        return ds__seterr(err, errlen, DS_ECONFIG,
                          "node.id must be set: it is the origin of every "
                          "change this producer emits");
    p = calloc(1, sizeof *p);
    if (!p)
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    p->cfg = opts->cfg;
    p->log.level = p->cfg.log_level;
    p->pid = getpid();
    p->wake_fd = p->sock_fd = -1;
    /* Tells this producer's thread-local details from those of one freed
     * at the same address. */
    p->token = ds__seed64();
    ds__hlc_init(&p->hlc);
    ds__backoff_init(&p->backoff);
    pthread_mutex_init(&p->lock, NULL);
    ds__cond_init(&p->changed);
    ds__cond_init(&p->work);
    rc = ds__spool_open(&p->spool, p->cfg.producer_spool_dir, err, errlen);
    if (rc < 0)
        goto fail;
    rc = open_stamps(p, err, errlen);
    if (rc < 0)
        goto fail;
    ds__io_find_clock(p);
    rc = start_io(p, err, errlen);
    if (rc < 0)
        goto fail;
    *out = p;
    return 0;

fail:
    ds_producer_free(p);
    return rc;
}

void ds_producer_free(ds_producer *p)
{
    if (!p)
        return;
    if (p->pid != getpid()) {
        /* A child never started this producer's thread: nothing to flush. */
        p->io_started = false;
        ds__spool_forget(p->spool);
        p->spool = NULL;
        p->amqp.conn = NULL;
    }
    if (p->io_started) {
        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        ds__io_wake(p);
        ds__producer_unlock(p);
        pthread_join(p->io_thread, NULL);
        /* The thread hands over what it logged; this takes anything left. */
        pthread_mutex_lock(&p->lock);
        ds__producer_unlock(p);
    }
    ds__amqp_drop(&p->amqp);
    ds__rec_free_list(&p->pending);
    ds__io_free_inflight(p);
    ds__spool_close(p->spool);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    pthread_cond_destroy(&p->changed);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    ds__hlc_destroy(&p->hlc);
    ds__clockfile_close(p->clock);
    ds__clockfile_close(p->stamps);
    free(p);
}

void ds_producer_set_log(ds_producer *p, ds_log_fn fn, void *userdata)
{
    /* In a forked child, the parent's lock may be held by a thread the
     * child does not have: check_handle makes the handle the child's. */
    if (check_handle(p) < 0)
        return;
    pthread_mutex_lock(&p->lock);
    p->log.fn = fn;
    p->log.userdata = userdata;
    ds__producer_unlock(p);
}

/* Spools a change ds_emit holds alone: in no list, so no copy of it can
 * still reach the broker. When the spool refuses it too, the change is
 * lost: counted in stats.lost, as the I/O thread counts its own, and told
 * as DS_ESPOOL whatever the spool's reason (err keeps it). Lock not held. */
static int spool_alone(ds_producer *p, ds_record *r, char *err, size_t errlen)
{
    int rc = ds__spool_records(p, &r, 1, err, errlen);

    if (rc == 0)
        return 0;
    pthread_mutex_lock(&p->lock);
    p->stats.lost++;
    ds__producer_unlock(p);
    return DS_ESPOOL;
}

/* Sync mode: waits for the record's fate. A change the I/O thread has not
 * published by the confirm timeout (it is busy connecting or draining) is
 * taken back and spooled here. One already published is the I/O thread's to
 * settle; only if that thread is stuck past the grace (a socket the watchdog
 * could not break) is a copy spooled here too: it may then reach consumers
 * twice, which versions make harmless. */
static int wait_for_record(ds_producer *p, ds_record *r, char *err,
                           size_t errlen)
{
    uint64_t start = ds__mono_ms();
    uint64_t deadline = start + (uint64_t)p->cfg.producer_confirm_timeout_ms;
    int rc;

    while (r->state != DS_REC_DONE) {
        uint64_t now = ds__mono_ms();
        if (now >= deadline && r->state == DS_REC_PENDING &&
            ds__rec_unlink(&p->pending, r)) {
            p->outstanding--;
            pthread_cond_broadcast(&p->changed);
            ds__producer_unlock(p);
            rc = spool_alone(p, r, err, errlen);
            pthread_mutex_lock(&p->lock);
            ds__rec_free(r);
            return rc;
        }
        if (now >= deadline + DS_WAIT_GRACE_MS)
            break;
        ds__io_watchdog(p, now);
        wait_until(p, deadline + DS_WAIT_GRACE_MS);
    }
    if (r->state == DS_REC_DONE) {
        rc = r->result;
        ds__rec_free(r);
        if (rc == DS_ESPOOL) /* the I/O thread's spool write failed */
            ds__seterr(err, errlen, rc, "%s", p->spool_err);
        return rc;
    }
    ds_record copy = *r, *cp = &copy;
    r->waited = false; /* the I/O thread frees it when it settles */
    copy.body = malloc(r->len);
    if (!copy.body)
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    memcpy(copy.body, r->body, r->len);
    /* Not counted lost if the spool refuses the copy: the I/O thread still
     * settles the original, and counts it if it is lost. */
    ds__producer_unlock(p);
    rc = ds__spool_records(p, &cp, 1, err, errlen);
    pthread_mutex_lock(&p->lock);
    free(copy.body);
    return rc < 0 ? DS_ESPOOL : 0;
}

/* Hands a record to the I/O thread; takes ownership of r. A failure's
 * detail goes to err. */
static int queue_record(ds_producer *p, ds_record *r, char *err, size_t errlen)
{
    int rc = 0;

    r->queued_ms = ds__mono_ms();
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        ds__producer_unlock(p);
        ds__rec_free(r);
        return ds__seterr(err, errlen, DS_ECLOSED, "producer is closing");
    }
    p->stats.emitted++;

    if (p->cfg.producer_mode == DS_MODE_ASYNC) {
        uint64_t deadline = deadline_after(p->cfg.producer_confirm_timeout_ms);
        while (p->outstanding >= DS_MAX_QUEUED && ds__mono_ms() < deadline) {
            ds__io_watchdog(p, ds__mono_ms());
            wait_until(p, deadline);
        }
        if (p->outstanding >= DS_MAX_QUEUED) {
            /* The broker takes less than we emit: keep the change on disk
             * rather than grow without bound. */
            ds__producer_unlock(p);
            rc = spool_alone(p, r, err, errlen);
            ds__rec_free(r);
            return rc;
        }
        p->outstanding++;
        ds__rec_push(&p->pending, r);
        ds__io_wake(p);
        ds__producer_unlock(p);
        return 0;
    }

    if (p->broker_down) {
        /* The broker is known to be unreachable: no use waiting for it. */
        ds__producer_unlock(p);
        rc = spool_alone(p, r, err, errlen);
        ds__rec_free(r);
        return rc;
    }
    r->waited = true;
    p->outstanding++;
    ds__rec_push(&p->pending, r);
    ds__io_wake(p);
    rc = wait_for_record(p, r, err, errlen);
    if (rc == DS_EUNROUTABLE)
        ds__seterr(err, errlen, rc,
                   "no queue is bound to exchange %s with routing key %s: "
                   "run datasync setup",
                   p->cfg.amqp_exchange, p->cfg.amqp_routing_key);
    ds__producer_unlock(p);
    return rc;
}

/* queue_record, with a failure's detail for the calling thread. */
static int submit(ds_producer *p, ds_record *r)
{
    char err[DS_ERRMSG_SIZE] = "";
    int rc = queue_record(p, r, err, sizeof err);

    if (rc < 0)
        ds__seterr(detail(p), DS_ERRMSG_SIZE, rc, "%s", err);
    return rc;
}

static int new_record(ds_producer *p, ds_event *ev, ds_record **out)
{
    ds_record *r = calloc(1, sizeof *r);

    if (!r)
        return ds__seterr(detail(p), DS_ERRMSG_SIZE, DS_ENOMEM,
                          "out of memory");
    r->body = ds__event_encode(ev, &r->len);
    if (!r->body) {
        free(r);
        return ds__seterr(detail(p), DS_ERRMSG_SIZE, DS_ENOMEM,
                          "out of memory");
    }
    if ((long)r->len > p->cfg.apply_max_message_bytes) {
        int rc = ds__seterr(detail(p), DS_ERRMSG_SIZE, DS_ETOOBIG,
                            "event is %zu bytes, more than "
                            "apply.max_message_bytes (%ld)",
                            r->len, p->cfg.apply_max_message_bytes);
        ds__rec_free(r);
        return rc;
    }
    memcpy(r->id, ev->id, sizeof r->id);
    memcpy(r->origin, ev->origin, sizeof r->origin);
    *out = r;
    return 0;
}

int ds_emit(ds_producer *p, ds_op op, const char *table, const char *key_json,
            const char *data_json)
{
    char err[DS_ERRMSG_SIZE];
    ds_event ev;
    ds_record *r = NULL;
    int rc = check_handle(p);

    if (rc < 0)
        return rc;
    rc = ds__event_build(&ev, op, table, key_json, data_json, err, sizeof err);
    if (rc < 0)
        return ds__seterr(detail(p), DS_ERRMSG_SIZE, rc, "%s", err);
    rc = ds__uuid7(ev.id);
    if (rc < 0) {
        ds__seterr(detail(p), DS_ERRMSG_SIZE, rc, "no randomness for an id");
        goto out;
    }
    memcpy(ev.origin, p->cfg.node_id, sizeof ev.origin);
    ev.hlc = ds__hlc_next(&p->hlc, ds__clockfile_read(__atomic_load_n(
                                       &p->clock, __ATOMIC_ACQUIRE)));
    ds__rfc3339_ms(ds__now_ms(), ev.ts);
    rc = new_record(p, &ev, &r);
out:
    ds__event_clear(&ev);
    return rc < 0 ? rc : submit(p, r);
}

int ds_emit_event(ds_producer *p, const char *event_json)
{
    char err[DS_ERRMSG_SIZE];
    ds_event ev;
    ds_record *r = NULL;
    int rc = check_handle(p);

    if (rc < 0)
        return rc;
    if (!event_json)
        return ds__seterr(detail(p), DS_ERRMSG_SIZE, DS_EINVAL,
                          "event_json is NULL");
    rc = ds__event_parse(&ev, event_json, strlen(event_json), err, sizeof err);
    if (rc < 0)
        return ds__seterr(detail(p), DS_ERRMSG_SIZE, rc, "%s", err);
    rc = new_record(p, &ev, &r);
    ds__event_clear(&ev);
    return rc < 0 ? rc : submit(p, r);
}

int ds_flush(ds_producer *p, int timeout_ms)
{
    uint64_t deadline;
    int rc = check_handle(p);

    if (rc < 0)
        return rc;
    deadline = deadline_after(
        timeout_ms < 0 ? p->cfg.producer_confirm_timeout_ms : timeout_ms);
    pthread_mutex_lock(&p->lock);
    while (p->outstanding > 0) {
        uint64_t now = ds__mono_ms();
        if (now >= deadline)
            break;
        ds__io_watchdog(p, now);
        wait_until(p, deadline);
    }
    if (p->outstanding > 0) {
        rc = ds__seterr(detail(p), DS_ERRMSG_SIZE, DS_ETIMEOUT,
                        "%zu changes not yet confirmed or spooled",
                        p->outstanding);
    } else if (p->lost_since_flush > 0) {
        rc = ds__seterr(detail(p), DS_ERRMSG_SIZE, DS_ESPOOL,
                        "%d changes were lost: the broker had not confirmed "
                        "them and the spool refused them: %s",
                        p->lost_since_flush, p->spool_err);
        p->lost_since_flush = 0;
    } else if (p->unroutable_since_flush > 0) {
        rc = ds__seterr(detail(p), DS_ERRMSG_SIZE, DS_EUNROUTABLE,
                        "%d changes were returned unroutable: no queue is "
                        "bound to exchange %s with routing key %s",
                        p->unroutable_since_flush, p->cfg.amqp_exchange,
                        p->cfg.amqp_routing_key);
        p->unroutable_since_flush = 0;
    }
    ds__producer_unlock(p);
    return rc;
}

int ds_producer_stats_get(ds_producer *p, ds_producer_stats *out, size_t size)
{
    ds_producer_stats now;
    int rc;

    if (!p || !out)
        return DS_EINVAL;
    rc = check_handle(p); /* as in ds_producer_set_log */
    if (rc < 0) {
        memset(out, 0, size);
        return rc;
    }
    pthread_mutex_lock(&p->lock);
    now = p->stats;
    ds__producer_unlock(p);
    if (p->spool)
        ds__spool_backlog(p->spool, &now.spool_bytes);
    /* A caller built against an older header has a shorter struct: it gets
     * the fields it knows. One built against a newer header gets zeros in
     * the fields this library does not keep. */
    memcpy(out, &now, size < sizeof now ? size : sizeof now);
    if (size > sizeof now)
        memset((char *)out + sizeof now, 0, size - sizeof now);
    return 0;
}

int ds_spool_inspect(const char *dir, uint64_t *bytes, char *problem,
                     size_t problen)
{
    if (!dir || !bytes || (!problem && problen))
        return DS_EINVAL;
    return ds__spool_peek(dir, bytes, problem, problen);
}

const char *ds_producer_errmsg(const ds_producer *p)
{
    return p ? ds__detail_get(p, p->token) : "";
}
