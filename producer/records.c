/* records.c: the producer's record queue and its monotonic-clock waits, used by the API side and the I/O thread alike. */
#include <stdlib.h>
#include <time.h>

#include "ids.h"
#include "records.h"

void ds__rec_push(ds_rec_list *l, ds_record *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->count++;
}

void ds__rec_push_list_front(ds_rec_list *l, ds_rec_list *front)
{
    if (!front->head)
        return;
    front->tail->next = l->head;
    if (!l->tail)
        l->tail = front->tail;
    l->head = front->head;
    l->count += front->count;
    front->head = front->tail = NULL;
    front->count = 0;
}

bool ds__rec_unlink(ds_rec_list *l, ds_record *r)
{
    ds_record *prev = NULL;
    for (ds_record *at = l->head; at; prev = at, at = at->next) {
        if (at != r)
            continue;
        if (prev)
            prev->next = r->next;
        else
            l->head = r->next;
        if (l->tail == r)
            l->tail = prev;
        l->count--;
        r->next = NULL;
        return true;
    }
    return false;
}

ds_record *ds__rec_pop(ds_rec_list *l)
{
    ds_record *r = l->head;
    if (!r)
        return NULL;
    l->head = r->next;
    if (!l->head)
        l->tail = NULL;
    l->count--;
    r->next = NULL;
    return r;
}

void ds__rec_free(ds_record *r)
{
    if (!r)
        return;
    free(r->body);
    free(r);
}

void ds__rec_free_list(ds_rec_list *l)
{
    ds_record *r;
    while ((r = ds__rec_pop(l)))
        ds__rec_free(r);
}

void ds__cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;

    /* Deadlines are on the monotonic clock: a wall-clock step must neither
     * cut a wait short nor stretch it. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

void ds__cond_wait(pthread_cond_t *cond, pthread_mutex_t *lock,
                   uint64_t deadline_ms, uint64_t max_ms)
{
    uint64_t now = ds__mono_ms(), until;
    struct timespec ts;

    until = deadline_ms < now + max_ms ? deadline_ms : now + max_ms;
    ts.tv_sec = (time_t)(until / 1000);
    ts.tv_nsec = (long)(until % 1000) * 1000000L;
    pthread_cond_timedwait(cond, lock, &ts);
}
