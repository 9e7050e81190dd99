/* records.h: the producer's record queue (changes on their way to the broker or the spool) and the monotonic-clock waits around it. */
#ifndef DS_PRODUCER_RECORDS_H
#define DS_PRODUCER_RECORDS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a record is on its way from ds_emit to the broker or the spool. */
typedef enum {
    DS_REC_PENDING,  /* queued, not yet published */
    DS_REC_INFLIGHT, /* published, waiting for its confirm */
    DS_REC_DONE      /* confirmed, spooled, or failed: see result */
} ds_rec_state;

typedef struct ds_record {
    struct ds_record *next;
    char id[37];
    char origin[65];
    char *body; /* the event's JSON, owned */
    size_t len;
    uint64_t queued_ms; /* when ds_emit queued it */
    uint64_t sent_ms;   /* when it was published */
    uint64_t spool_end; /* drained from the spool: its end offset there */
    int nacks;          /* times the broker refused it */
    bool from_spool;    /* a spool record being drained, no caller waits */
    bool waited; /* a sync caller waits and frees it; else the I/O thread */
    ds_rec_state state;
    int result; /* when DONE: 0, DS_EUNROUTABLE, DS_ESPOOL */
} ds_record;

/* A FIFO of records. The lists hold no lock: their owner's lock guards
 * them. */
typedef struct ds_rec_list {
    ds_record *head, *tail;
    size_t count;
} ds_rec_list;

/* Appends r at the tail of l. */
void ds__rec_push(ds_rec_list *l, ds_record *r);

/* Takes the head of l; NULL when l is empty. */
ds_record *ds__rec_pop(ds_rec_list *l);

/* Moves every record of front ahead of l's, in their order, and empties
 * front: refused or unanswered records go out again first. */
void ds__rec_push_list_front(ds_rec_list *l, ds_rec_list *front);

/* Removes r from l; false when r is not in it. */
bool ds__rec_unlink(ds_rec_list *l, ds_record *r);

/* Frees r and its body; NULL is a no-op. */
void ds__rec_free(ds_record *r);

/* Frees every record of l and leaves it empty. */
void ds__rec_free_list(ds_rec_list *l);

/* A condition variable whose waits run on the monotonic clock. */
void ds__cond_init(pthread_cond_t *cond);

/* Waits on cond (lock held) until deadline_ms (ds__mono_ms) or a signal,
 * at most max_ms. */
void ds__cond_wait(pthread_cond_t *cond, pthread_mutex_t *lock,
                   uint64_t deadline_ms, uint64_t max_ms);

#endif
