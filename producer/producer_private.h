/* producer_private.h: the producer's state, shared by producer.c (the API side) and io.c (the I/O thread). */
#ifndef DS_PRODUCER_PRIVATE_H
#define DS_PRODUCER_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "amqp_util.h"
#include "backoff.h"
#include "clockfile.h"
#include "config.h"
#include "confirms.h"
#include "datasync.h"
#include "error.h"
#include "ids.h"
#include "log.h"
#include "logq.h"
#include "records.h"
#include "spool.h"

struct ds_options {
    ds_config cfg;
    char errmsg[DS_ERRMSG_SIZE];
};

struct ds_producer {
    ds_config cfg;
    ds_hlc hlc;
    /* The spool directory's version counter, shared by every producer that
     * spools there (other processes, a forked child): hlc takes its values
     * from it, so none of them stamps a version another one did. */
    ds_clockfile *stamps;
    /* The highest version this server's consumer applied: stamps stay above
     * it. NULL until the file exists; the I/O thread keeps looking for it
     * and publishes the pointer atomically. */
    ds_clockfile *clock;
    uint64_t next_clock_try_ms;
    int clock_reported; /* errno of the clock file's failure last logged */
    pid_t pid; /* a forked child must not touch its parent's connection */
    pid_t dropped_in; /* the child that dropped its parent's state */
    uint64_t token;   /* random: keys this producer's per-thread details */

    pthread_mutex_t lock;   /* guards everything below */
    pthread_cond_t changed; /* a record finished, or space freed */
    pthread_cond_t work;    /* for the I/O thread: records or stop */
    ds_rec_list pending;
    /* Published records awaiting their confirm (ptr: the ds_record). Only
     * the I/O thread changes it. */
    ds_confirms inflight;
    size_t outstanding; /* records emitted but not DONE */
    bool stopping;
    bool broker_down; /* the last attempt to reach it failed: spool at once */
    bool blocked;     /* connection.blocked: the broker wants no publishes */
    int wake_fd;      /* eventfd: wakes the I/O thread out of its socket poll */
    bool io_polling;
    uint64_t io_busy_since; /* ms when the I/O thread entered a socket write */
    int sock_fd;            /* the connection's socket, for the watchdog */
    int unroutable_since_flush;
    int lost_since_flush; /* async changes the spool refused */
    ds_producer_stats stats;
    ds_logger log; /* read and set under the lock */
    /* log, through logq, for the I/O thread's code that logs unlocked */
    ds_logger io_log;
    ds_logq logq; /* messages made under the lock, for the host's callback */
    /* The reconnect backoff: the I/O thread's, under the lock so that a
     * forked child can reseed it and tests can read it. */
    ds_backoff backoff;
    /* The I/O thread's last failed spool write: the detail a sync caller
     * whose change it was gets with DS_ESPOOL. */
    char spool_err[DS_ERRMSG_SIZE];

    /* Owned by the I/O thread alone. */
    pthread_t io_thread;
    bool io_started;
    ds_amqp amqp;
    char client_name[96]; /* the connection's name in the broker's tools */
    ds_spool *spool;
    uint64_t next_connect_ms;
    uint64_t next_drain_check_ms;
    size_t drain_unconfirmed; /* spool records published, not yet acked */
    bool ever_connected;
    /* Since when the broker answers but its archive stream is not running
     * (it is starting); 0 when not waiting for it. */
    uint64_t archive_wait_since;
    /* The broker refused a change DS_MAX_NACKS times, or spooled ones: the
     * channel is reopened (at most every DS_REOPEN_GAP_MS). */
    bool reopen;
    uint64_t next_reopen_ms;
};

/* Logs with p->lock held: the message reaches the host's callback only
 * after the lock is released, through ds__producer_unlock (the callback may
 * call back into the producer). */
#define DS_PLOG(p, lvl, ...) DS_LOGQ(&(p)->logq, &(p)->log, (lvl), __VA_ARGS__)

/* Releases p->lock, then hands the messages logged under it to the host's
 * callback. Every unlock goes through it unless a comment says why not. */
static inline void ds__producer_unlock(ds_producer *p)
{
    ds__logq_unlock(&p->logq, &p->log, &p->lock);
}

/* The I/O thread's side, used by the API side (producer.c -> io.c ->
 * records.c: io.c never calls into producer.c). */

/* Spools records durably (lock not held) and returns the result for all of
 * them: 0, or the spool's error with its detail in err. */
int ds__spool_records(ds_producer *p, ds_record **recs, size_t n, char *err,
                      size_t errlen);

/* Looks for the shared clock file again, at most every few seconds, while
 * it is missing (the I/O thread without p->lock, or creation): it may log
 * straight to the host's callback. */
void ds__io_find_clock(ds_producer *p);

/* Frees the records still awaiting a confirm and the bookkeeping itself,
 * leaving it empty (the I/O thread stopped, or a forked child). */
void ds__io_free_inflight(ds_producer *p);

/* The I/O thread's main function. */
void *ds__io_main(void *arg);

/* Wakes the I/O thread if it sleeps in poll (lock held). */
void ds__io_wake(ds_producer *p);

/* Breaks a socket write that has been stuck longer than the confirm timeout
 * (lock held): the I/O thread then sees an error and spools. */
void ds__io_watchdog(ds_producer *p, uint64_t now_ms);

#endif
