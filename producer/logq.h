/* logq.h: log messages made while the producer's lock is held wait here, and reach the host's callback only once the lock is released. */
#ifndef DS_PRODUCER_LOGQ_H
#define DS_PRODUCER_LOGQ_H

#include <pthread.h>
#include <stdbool.h>

#include "log.h"

/* Messages waiting at most; past that they are counted, and the count is
 * logged when there is room again. */
#define DS_LOGQ_MAX 32
#define DS_LOGQ_MSG 1024

typedef struct ds_logq {
    struct {
        ds_log_level level;
        char text[DS_LOGQ_MSG];
    } msgs[DS_LOGQ_MAX];
    unsigned head, count;
    unsigned dropped;
    bool delivering; /* one thread hands them over at a time, in order */
} ds_logq;

/* Formats one message into q if lg lets its level through (lock held). Call
 * through DS_LOGQ so the arguments of a dropped level are not evaluated. */
void ds__logq_add(ds_logq *q, const ds_logger *lg, ds_log_level level,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define DS_LOGQ(q, lg, lvl, ...)                                               \
    do {                                                                       \
        if ((lg)->fn && (lvl) >= (lg)->level)                                  \
            ds__logq_add((q), (lg), (lvl), __VA_ARGS__);                       \
    } while (0)

/* Releases lock (held on entry), then hands the waiting messages to lg's
 * callback one at a time, re-taking lock only between them to take the next:
 * the callback never runs with lock held, so it may call back into the
 * library. When another thread is handing them over already, it takes these
 * too. Cheap when nothing waits. */
void ds__logq_unlock(ds_logq *q, const ds_logger *lg, pthread_mutex_t *lock);

/* In a forked child: drops the waiting messages (the parent hands them
 * over) and a hand-over a thread that did not survive the fork was doing. */
void ds__logq_after_fork(ds_logq *q);

#endif
