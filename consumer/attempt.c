/* attempt.c: one batch attempt on a thread of its own (the apply half of the consumer's pipeline of two). */
#include <errno.h>
#include <time.h>

#include <mysql.h>

#include "attempt.h"

static void *attempt_main(void *arg)
{
    dsc_attempt *a = arg;

    /* The client library's per-thread state, for this thread's calls. */
    mysql_thread_init();
    a->rc = dsc_applier_batch(a->ap, a->changes, a->n, &a->retry, a->err,
                              sizeof a->err);
    mysql_thread_end();
    pthread_mutex_lock(&a->lock);
    a->done = true;
    pthread_cond_signal(&a->ended);
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

int dsc_attempt_start(dsc_attempt *a, dsc_applier *ap, dsc_change *changes,
                      size_t n)
{
    if (!a->sync_ok) {
        pthread_condattr_t ca;
        if (pthread_condattr_init(&ca) != 0)
            return -1;
        /* Timed waits on the monotonic clock: a clock step changes none. */
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        int rc = pthread_cond_init(&a->ended, &ca);
        pthread_condattr_destroy(&ca);
        if (rc != 0)
            return -1;
        if (pthread_mutex_init(&a->lock, NULL) != 0) {
            pthread_cond_destroy(&a->ended);
            return -1;
        }
        a->sync_ok = true;
    }
    a->ap = ap;
    a->changes = changes;
    a->n = n;
    a->rc = 0;
    a->err[0] = '\0';
    a->done = false;
    if (pthread_create(&a->thread, NULL, attempt_main, a) != 0)
        return -1;
    a->running = true;
    return 0;
}

bool dsc_attempt_wait(dsc_attempt *a, int ms)
{
    struct timespec until;
    bool done;

    if (!a->running)
        return true;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&a->lock);
    while (!a->done &&
           pthread_cond_timedwait(&a->ended, &a->lock, &until) != ETIMEDOUT)
        ;
    done = a->done;
    pthread_mutex_unlock(&a->lock);
    return done;
}

void dsc_attempt_join(dsc_attempt *a)
{
    if (!a->running)
        return;
    pthread_join(a->thread, NULL);
    a->running = false;
}

void dsc_attempt_free(dsc_attempt *a)
{
    dsc_attempt_join(a);
    if (a->sync_ok) {
        pthread_cond_destroy(&a->ended);
        pthread_mutex_destroy(&a->lock);
        a->sync_ok = false;
    }
}
