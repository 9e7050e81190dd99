/* spool.c: the append-only, crc-checked journal that holds changes while the broker cannot confirm them. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "datasync.h"
#include "error.h"
#include "spool.h"

#define REC_MAGIC 0x31505344u     /* "DSP1" little-endian */
#define REC_END_MAGIC 0x444e4531u /* "1END" */
#define REC_HEADER 12u
#define REC_TRAILER 8u
#define REC_MAX_PAYLOAD (256u << 20)

struct ds_spool {
    pthread_mutex_t mu; /* flock does not exclude threads sharing one fd */
    int log_fd;
    int head_fd;
    int lock_fd;
    bool draining;
    uint64_t cursor;     /* next record to read while draining */
    uint64_t known_size; /* bytes known to hold only complete records */
    char dir[PATH_MAX];
};

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static int spool_errno(char *err, size_t errlen, const char *what,
                       const char *path)
{
    return ds__seterr(err, errlen, DS_ESPOOL, "spool: %s %s: %s", what, path,
                      strerror(errno));
}

/* Reads len bytes at off: 0, 1 when the file ends first, or -1 with errno
 * on a read error. */
static int read_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n =
            pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 1;
        done += (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, (const char *)buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

static uint64_t file_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Checks the whole record at off (header, payload crc, trailer) within size.
 * Returns its total length, 0 if there is no valid record there, or
 * DS_ENOMEM or DS_EIO (errno set) when it could not be checked: never
 * taken for corruption, which would cut or skip a record that may be
 * whole. When payload is not NULL the payload is returned in a malloc'd
 * buffer. */
static int64_t record_at(int fd, uint64_t off, uint64_t size, char **payload)
{
    unsigned char hdr[REC_HEADER], trl[REC_TRAILER];
    uint32_t len;
    char *buf;
    int r;

    if (off + REC_HEADER + REC_TRAILER > size)
        return 0;
    r = read_full(fd, hdr, sizeof hdr, off);
    if (r != 0)
        return r < 0 ? DS_EIO : 0;
    len = get32(hdr + 4);
    if (get32(hdr) != REC_MAGIC || len > REC_MAX_PAYLOAD ||
        off + REC_HEADER + len + REC_TRAILER > size)
        return 0;
    buf = malloc(len ? len : 1);
    if (!buf) {
        errno = ENOMEM;
        return DS_ENOMEM;
    }
    r = read_full(fd, buf, len, off + REC_HEADER);
    if (r == 0)
        r = read_full(fd, trl, sizeof trl, off + REC_HEADER + len);
    if (r != 0 || get32(trl) != len || get32(trl + 4) != REC_END_MAGIC ||
        (uint32_t)crc32(0L, (const Bytef *)buf, len) != get32(hdr + 8)) {
        free(buf);
        return r < 0 ? DS_EIO : 0;
    }
    if (payload)
        *payload = buf;
    else
        free(buf);
    return (int64_t)(REC_HEADER + len + REC_TRAILER);
}

/* Sets *next to the offset of the next valid record after a corrupt one at
 * off, or to size. Returns 0, or record_at's error. */
static int resync(int fd, uint64_t off, uint64_t size, uint64_t *next)
{
    for (uint64_t at = off + 1; at + REC_HEADER + REC_TRAILER <= size; at++) {
        unsigned char m[4];
        int64_t n;

        if (read_full(fd, m, 4, at) != 0 || get32(m) != REC_MAGIC)
            continue;
        n = record_at(fd, at, size, NULL);
        if (n < 0)
            return (int)n;
        if (n > 0) {
            *next = at;
            return 0;
        }
    }
    *next = size;
    return 0;
}

static uint64_t head_at(int head_fd)
{
    unsigned char b[12];
    uint64_t off;

    if (read_full(head_fd, b, sizeof b, 0) != 0)
        return 0;
    off = (uint64_t)get32(b) | (uint64_t)get32(b + 4) << 32;
    /* A head we cannot trust means replaying from the start: duplicates are
     * harmless to consumers, losing records is not. */
    if ((uint32_t)crc32(0L, b, 8) != get32(b + 8))
        return 0;
    return off;
}

static uint64_t read_head(ds_spool *s)
{
    return head_at(s->head_fd);
}

static int write_head(ds_spool *s, uint64_t off, char *err, size_t errlen)
{
    unsigned char b[12];

    put32(b, (uint32_t)off);
    put32(b + 4, (uint32_t)(off >> 32));
    put32(b + 8, (uint32_t)crc32(0L, b, 8));
    if (pwrite(s->head_fd, b, sizeof b, 0) != (ssize_t)sizeof b ||
        fdatasync(s->head_fd) < 0)
        return spool_errno(err, errlen, "cannot write head in", s->dir);
    return 0;
}

/* True when the file ends with a complete record (or is empty from head). */
static bool tail_is_whole(ds_spool *s, uint64_t head, uint64_t size)
{
    unsigned char trl[REC_TRAILER];
    uint64_t start;

    if (size == head)
        return true;
    if (size < head + REC_HEADER + REC_TRAILER ||
        read_full(s->log_fd, trl, sizeof trl, size - REC_TRAILER) != 0 ||
        get32(trl + 4) != REC_END_MAGIC)
        return false;
    if (get32(trl) > REC_MAX_PAYLOAD ||
        size - head < (uint64_t)get32(trl) + REC_HEADER + REC_TRAILER)
        return false;
    start = size - REC_TRAILER - get32(trl) - REC_HEADER;
    return record_at(s->log_fd, start, size, NULL) == (int64_t)(size - start);
}

/* With the exclusive file lock held: cuts a torn tail left by a writer that
 * died mid-write, keeping every complete record before it. */
static int recover_locked(ds_spool *s, char *err, size_t errlen)
{
    uint64_t size = file_size(s->log_fd), head = read_head(s), off, end;

    if (head > size) {
        head = 0;
        if (write_head(s, 0, err, errlen) < 0)
            return DS_ESPOOL;
    }
    if (tail_is_whole(s, head, size))
        return 0;
    off = end = head;
    while (off < size) {
        int64_t n = record_at(s->log_fd, off, size, NULL);
        if (n > 0) {
            off += (uint64_t)n;
            end = off;
        } else if (n < 0 || (n = resync(s->log_fd, off, size, &off)) < 0) {
            return spool_errno(err, errlen, "cannot read a record in", s->dir);
        }
    }
    if (ftruncate(s->log_fd, (off_t)end) < 0 || fdatasync(s->log_fd) < 0)
        return spool_errno(err, errlen, "cannot truncate torn tail in", s->dir);
    return 0;
}

static int open_in(ds_spool *s, const char *name, int flags, char *err,
                   size_t errlen)
{
    char path[PATH_MAX + 32];
    int fd;

    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    fd = open(path, flags | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return spool_errno(err, errlen, "cannot open", path);
    return fd;
}

static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0750) < 0 && errno != EEXIST)
            return spool_errno(err, errlen, "cannot create directory", path);
        *p = '/';
    }
    if (mkdir(path, 0750) < 0 && errno != EEXIST)
        return spool_errno(err, errlen, "cannot create directory", path);
    return 0;
}

/* Makes the spool's file names durable: a record fdatasync'ed into a file
 * whose directory entry a crash lost would be lost with it. EINVAL: the
 * file system cannot sync a directory (nothing to do). */
static int sync_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

    if (fd < 0 || (fsync(fd) < 0 && errno != EINVAL))
        rc = spool_errno(err, errlen, "cannot sync directory", dir);
    if (fd >= 0)
        close(fd);
    return rc;
}

int ds__spool_open(ds_spool **out, const char *dir, char *err, size_t errlen)
{
    ds_spool *s;
    int rc;

    *out = NULL;
    if (!dir || !*dir || strlen(dir) >= PATH_MAX - 32)
        return ds__seterr(err, errlen, DS_ESPOOL,
                          "spool: producer.spool_dir is empty or too long");
    rc = make_dirs(dir, err, errlen);
    if (rc < 0)
        return rc;
    s = calloc(1, sizeof *s);
    if (!s)
        return ds__seterr(err, errlen, DS_ENOMEM, "spool: out of memory");
    pthread_mutex_init(&s->mu, NULL);
    s->log_fd = s->head_fd = s->lock_fd = -1;
    snprintf(s->dir, sizeof s->dir, "%s", dir);

    rc = s->log_fd = open_in(s, "spool.log", O_RDWR | O_APPEND, err, errlen);
    if (rc < 0)
        goto fail;
    rc = s->head_fd = open_in(s, "spool.head", O_RDWR, err, errlen);
    if (rc < 0)
        goto fail;
    rc = s->lock_fd = open_in(s, "drain.lock", O_RDWR, err, errlen);
    if (rc < 0)
        goto fail;
    rc = sync_dir(s->dir, err, errlen);
    if (rc < 0)
        goto fail;
    if (flock(s->log_fd, LOCK_EX) < 0) {
        rc = spool_errno(err, errlen, "cannot lock", s->dir);
        goto fail;
    }
    rc = recover_locked(s, err, errlen);
    flock(s->log_fd, LOCK_UN);
    if (rc < 0)
        goto fail;
    *out = s;
    return 0;

fail:
    ds__spool_close(s);
    return rc;
}

void ds__spool_close(ds_spool *s)
{
    if (!s)
        return;
    if (s->draining)
        ds__spool_drain_end(s);
    if (s->log_fd >= 0)
        close(s->log_fd);
    if (s->head_fd >= 0)
        close(s->head_fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void ds__spool_forget(ds_spool *s)
{
    if (s)
        s->draining = false;
    ds__spool_close(s);
}

int ds__spool_append(ds_spool *s, const char *const *payloads,
                     const size_t *lens, size_t n, char *err, size_t errlen)
{
    size_t total = 0, at = 0;
    unsigned char *buf;
    uint64_t before;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        if (lens[i] > REC_MAX_PAYLOAD)
            return ds__seterr(err, errlen, DS_ETOOBIG,
                              "spool: record of %zu bytes is too large",
                              lens[i]);
        total += REC_HEADER + lens[i] + REC_TRAILER;
    }
    buf = malloc(total ? total : 1);
    if (!buf)
        return ds__seterr(err, errlen, DS_ENOMEM, "spool: out of memory");
    for (size_t i = 0; i < n; i++) {
        put32(buf + at, REC_MAGIC);
        put32(buf + at + 4, (uint32_t)lens[i]);
        put32(buf + at + 8,
              (uint32_t)crc32(0L, (const Bytef *)payloads[i], (uInt)lens[i]));
        memcpy(buf + at + REC_HEADER, payloads[i], lens[i]);
        at += REC_HEADER + lens[i];
        put32(buf + at, (uint32_t)lens[i]);
        put32(buf + at + 4, REC_END_MAGIC);
        at += REC_TRAILER;
    }

    pthread_mutex_lock(&s->mu);
    if (flock(s->log_fd, LOCK_EX) < 0) {
        rc = spool_errno(err, errlen, "cannot lock", s->dir);
        goto out;
    }
    /* Another process may have died mid-write: never append after a torn
     * record, or it would sit in the middle where it cannot be cut. */
    rc = recover_locked(s, err, errlen);
    if (rc < 0)
        goto unlock;
    before = file_size(s->log_fd);
    if (write_full(s->log_fd, buf, total) < 0 || fdatasync(s->log_fd) < 0) {
        rc = spool_errno(err, errlen, "cannot append to", s->dir);
        /* Leave no partial batch behind: the caller reports failure. */
        if (ftruncate(s->log_fd, (off_t)before) == 0)
            fdatasync(s->log_fd);
    }
unlock:
    flock(s->log_fd, LOCK_UN);
out:
    pthread_mutex_unlock(&s->mu);
    free(buf);
    return rc;
}

int ds__spool_backlog(ds_spool *s, uint64_t *bytes)
{
    uint64_t size, head;

    pthread_mutex_lock(&s->mu);
    flock(s->log_fd, LOCK_SH);
    size = file_size(s->log_fd);
    head = read_head(s);
    flock(s->log_fd, LOCK_UN);
    pthread_mutex_unlock(&s->mu);
    *bytes = size > head ? size - head : 0;
    return 0;
}

int ds__spool_drain_begin(ds_spool *s, bool *got, char *err, size_t errlen)
{
    int rc;

    *got = false;
    if (s->draining) {
        *got = true;
        return 0;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK)
            return 0;
        return spool_errno(err, errlen, "cannot lock drain of", s->dir);
    }
    pthread_mutex_lock(&s->mu);
    flock(s->log_fd, LOCK_EX);
    rc = recover_locked(s, err, errlen);
    s->cursor = read_head(s);
    s->known_size = file_size(s->log_fd);
    flock(s->log_fd, LOCK_UN);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        flock(s->lock_fd, LOCK_UN);
        return rc;
    }
    s->draining = true;
    *got = true;
    return 0;
}

int ds__spool_read(ds_spool *s, char **payload, size_t *len, int *skipped,
                   char *err, size_t errlen)
{
    int64_t n;
    int rc = 0;

    *payload = NULL;
    *len = 0;
    if (s->cursor >= s->known_size) {
        /* Writers hold the lock until their record is complete, but one
         * that died mid-record left a torn tail: cut it first, as the next
         * writer would (it then appends in its place), so that everything
         * below the size seen here is whole and stays. Stepping over the
         * torn bytes instead would pass over that writer's records. */
        pthread_mutex_lock(&s->mu);
        flock(s->log_fd, LOCK_EX);
        rc = recover_locked(s, err, errlen);
        s->known_size = file_size(s->log_fd);
        flock(s->log_fd, LOCK_UN);
        pthread_mutex_unlock(&s->mu);
        if (rc < 0)
            return rc;
    }
    while (s->cursor < s->known_size) {
        n = record_at(s->log_fd, s->cursor, s->known_size, payload);
        if (n > 0) {
            *len = (size_t)n - REC_HEADER - REC_TRAILER;
            s->cursor += (uint64_t)n;
            return 0;
        }
        if (n < 0 ||
            (n = resync(s->log_fd, s->cursor, s->known_size, &s->cursor)) < 0)
            return spool_errno(err, errlen, "cannot read a record in", s->dir);
        ++*skipped;
    }
    return 0;
}

uint64_t ds__spool_cursor(const ds_spool *s)
{
    return s->cursor;
}

int ds__spool_commit(ds_spool *s, uint64_t offset, char *err, size_t errlen)
{
    int rc;

    pthread_mutex_lock(&s->mu);
    flock(s->log_fd, LOCK_EX);
    if (offset >= file_size(s->log_fd)) {
        /* Head first, then truncate: a crash between the two replays old
         * records (harmless) instead of pointing the head into new ones. */
        rc = write_head(s, 0, err, errlen);
        if (rc == 0 &&
            (ftruncate(s->log_fd, 0) < 0 || fdatasync(s->log_fd) < 0))
            rc = spool_errno(err, errlen, "cannot empty", s->dir);
        if (rc == 0)
            s->cursor = s->known_size = 0;
    } else {
        rc = write_head(s, offset, err, errlen);
    }
    flock(s->log_fd, LOCK_UN);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void ds__spool_drain_end(ds_spool *s)
{
    if (!s->draining)
        return;
    s->draining = false;
    flock(s->lock_fd, LOCK_UN);
}

/* The file beside the journal that says why the broker did not take the
 * changes, for datasync status (another process). */
#define PROBLEM_FILE "broker-problem"

void ds__spool_set_problem(const char *dir, const char *problem)
{
    char path[PATH_MAX + 32], tmp[PATH_MAX + 40];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, PROBLEM_FILE);
    if (!problem) {
        unlink(path);
        return;
    }
    /* Written whole and renamed, so a reader never sees half of it; not
     * fsynced: it is a hint, the journal is what must survive. */
    snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
    f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "%s\n", problem);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        unlink(tmp);
}

int ds__spool_peek(const char *dir, uint64_t *bytes, char *problem,
                   size_t problen)
{
    char path[PATH_MAX + 32];
    int log_fd, head_fd;
    FILE *f;

    *bytes = 0;
    if (problen)
        problem[0] = '\0';
    snprintf(path, sizeof path, "%s/spool.log", dir);
    log_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (log_fd < 0)
        return errno == ENOENT ? DS_ENOTFOUND : DS_EIO;
    snprintf(path, sizeof path, "%s/spool.head", dir);
    head_fd = open(path, O_RDONLY | O_CLOEXEC);
    flock(log_fd, LOCK_SH);
    uint64_t size = file_size(log_fd);
    uint64_t head = head_fd < 0 ? 0 : head_at(head_fd);
    flock(log_fd, LOCK_UN);
    close(log_fd);
    if (head_fd >= 0)
        close(head_fd);
    *bytes = size > head ? size - head : 0;
    snprintf(path, sizeof path, "%s/%s", dir, PROBLEM_FILE);
    if (problen && (f = fopen(path, "r")) != NULL) {
        if (fgets(problem, (int)problen, f))
            problem[strcspn(problem, "\n")] = '\0';
        fclose(f);
    }
    return 0;
}
