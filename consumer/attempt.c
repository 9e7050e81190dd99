/* attempt.c: one batch attempt at a time on the applier's thread (the apply half of the consumer's pipeline of two). */
#include <errno.h>
#include <time.h>

#include <mysql.h>

#include "attempt.h"

/* The applier's thread: runs each batch handed over, until told to quit. */
static void *applier_main(void *arg)
{
    dsc_attempt *a = arg;

    /* The client library's per-thread state, for this thread's calls. */
    mysql_thread_init();
    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (!a->handed && !a->quit)
            pthread_cond_wait(&a->wake, &a->lock);
        if (a->quit)
            break;
        a->handed = false;
        pthread_mutex_unlock(&a->lock);
        /* What start set before handing over is seen: the lock orders it. */
        a->rc = dsc_applier_batch(a->ap, a->changes, a->n, &a->retry, a->err,
                                  sizeof a->err);
        pthread_mutex_lock(&a->lock);
        a->done = true;
        pthread_cond_signal(&a->ended);
    }
    pthread_mutex_unlock(&a->lock);
    mysql_thread_end();
    return NULL;
}

static int init_sync(dsc_attempt *a)
{
    pthread_condattr_t ca;

    if (pthread_condattr_init(&ca) != 0)
        return -1;
    /* Timed waits on the monotonic clock: a clock step changes none. */
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&a->ended, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        return -1;
    if (pthread_cond_init(&a->wake, NULL) != 0) {
        pthread_cond_destroy(&a->ended);
        return -1;
    }
    if (pthread_mutex_init(&a->lock, NULL) != 0) {
        pthread_cond_destroy(&a->wake);
        pthread_cond_destroy(&a->ended);
        return -1;
    }
    a->sync_ok = true;
    return 0;
}

int dsc_attempt_start(dsc_attempt *a, dsc_applier *ap, dsc_change *changes,
                      size_t n)
{
    if (!a->sync_ok && init_sync(a) != 0)
        return -1;
    if (!a->thread_ok) {
        a->quit = false;
        a->handed = false;
        if (pthread_create(&a->thread, NULL, applier_main, a) != 0)
            return -1;
        a->thread_ok = true;
    }
    pthread_mutex_lock(&a->lock);
    a->ap = ap;
    a->changes = changes;
    a->n = n;
    a->rc = 0;
    a->err[0] = '\0';
    a->done = false;
    a->handed = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
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
    pthread_mutex_lock(&a->lock);
    while (!a->done)
        pthread_cond_wait(&a->ended, &a->lock);
    pthread_mutex_unlock(&a->lock);
    a->running = false;
}

void dsc_attempt_free(dsc_attempt *a)
{
    dsc_attempt_join(a);
    if (a->thread_ok) {
        pthread_mutex_lock(&a->lock);
        a->quit = true;
        pthread_cond_signal(&a->wake);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->thread, NULL);
        a->thread_ok = false;
    }
    if (a->sync_ok) {
        pthread_cond_destroy(&a->wake);
        pthread_cond_destroy(&a->ended);
        pthread_mutex_destroy(&a->lock);
        a->sync_ok = false;
    }
}
