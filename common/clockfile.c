/* clockfile.c: one shared 64-bit value in a mapped file: the consumer raises it and producers read it; the producers of one spool take their versions from another. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clockfile.h"
#include "datasync.h"
#include "error.h"
#include "log.h"

struct ds_clockfile {
    uint64_t *value; /* mapped; 8-byte aligned at offset 0 */
};

static int clock_error(char *err, size_t errlen, const char *what,
                       const char *path)
{
    return ds__seterr(err, errlen, DS_EIO, "clock file %s: %s: %s", path, what,
                      strerror(errno));
}

static int map(ds_clockfile **out, int fd, int prot, const char *path,
               char *err, size_t errlen)
{
    ds_clockfile *cf = calloc(1, sizeof *cf);
    void *m;

    if (!cf)
        return ds__seterr(err, errlen, DS_ENOMEM, "%s: out of memory", path);
    m = mmap(NULL, sizeof(uint64_t), prot, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        free(cf);
        errno = e;
        return clock_error(err, errlen, "cannot map", path);
    }
    cf->value = m;
    *out = cf;
    return 0;
}

/* Maps fd (closed here; < 0: open failed with errno) for reading and
 * writing, first sizing it to one value if it is shorter. Several
 * processes may do this at once: ftruncate to the size a file already has
 * changes nothing, so one that another process sized and wrote keeps its
 * value. */
static int size_and_map(ds_clockfile **out, int fd, const char *path, char *err,
                        size_t errlen)
{
    struct stat st;
    int rc;

    if (fd < 0)
        return clock_error(err, errlen, "cannot open", path);
    if (fstat(fd, &st) < 0 || (st.st_size < (off_t)sizeof(uint64_t) &&
                               ftruncate(fd, sizeof(uint64_t)) < 0)) {
        rc = clock_error(err, errlen, "cannot size", path);
        close(fd);
        return rc;
    }
    rc = map(out, fd, PROT_READ | PROT_WRITE, path, err, errlen);
    close(fd);
    return rc;
}

/* ds__clockfile_open_reader, with the errno of a failure in *cause. */
static int open_reader(ds_clockfile **out, const char *path, char *err,
                       size_t errlen, int *cause)
{
    struct stat st;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *cause = errno;
        rc = clock_error(err, errlen, "cannot open", path);
        return *cause == ENOENT ? DS_ENOTFOUND : rc;
    }
    if (fstat(fd, &st) < 0) {
        *cause = errno;
        rc = clock_error(err, errlen, "cannot stat", path);
        close(fd);
        return rc;
    }
    /* Mapping past the end of a file faults on access: only a file the
     * consumer has sized may be read. */
    if (S_ISREG(st.st_mode) && st.st_size < (off_t)sizeof(uint64_t)) {
        close(fd);
        *cause = errno = EINVAL;
        clock_error(err, errlen, "not written yet", path);
        return DS_ENOTFOUND;
    }
    rc = map(out, fd, PROT_READ, path, err, errlen);
    *cause = rc < 0 ? errno : 0;
    close(fd);
    return rc;
}

int ds__clockfile_open_reader(ds_clockfile **out, const char *path, char *err,
                              size_t errlen)
{
    int cause;

    return open_reader(out, path, err, errlen, &cause);
}

ds_clockfile *ds__clockfile_try_reader(const char *path, const ds_logger *lg,
                                       int *reported)
{
    char err[DS_ERRMSG_SIZE];
    ds_clockfile *cf;
    int rc, cause = 0;

    rc = open_reader(&cf, path, err, sizeof err, &cause);
    if (rc == 0)
        return cf;
    /* A new cause is worth a line; the same one every few seconds is not. */
    if (rc != DS_ENOTFOUND && cause != *reported && lg && lg->fn &&
        DS_LOG_WARN >= lg->level) {
        *reported = cause;
        ds__log(lg, DS_LOG_WARN,
                "%s; changes are stamped without it until it can be read "
                "(the producer's user needs read access: see "
                "node.clock_file in datasync.conf(5))",
                err);
    }
    return NULL;
}

int ds__clockfile_open_writer(ds_clockfile **out, const char *path, char *err,
                              size_t errlen)
{
    char dir[PATH_MAX];
    char *slash;
    int fd, rc;

    *out = NULL;
    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    /* The modes are set explicitly after creation: the umask (0027 in the
     * systemd unit) would otherwise keep producers of other users out. */
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) == 0) {
            if (chmod(dir, 0755) < 0)
                return clock_error(err, errlen,
                                   "cannot set its directory's "
                                   "mode",
                                   path);
        } else if (errno != EEXIST) {
            return clock_error(err, errlen, "cannot create its directory",
                               path);
        }
    }
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (fchmod(fd, 0644) < 0) {
            rc = clock_error(err, errlen, "cannot set its mode", path);
            close(fd);
            return rc;
        }
    } else if (errno == EEXIST) {
        fd = open(path, O_RDWR | O_CLOEXEC);
    }
    return size_and_map(out, fd, path, err, errlen);
}

int ds__clockfile_open_counter(ds_clockfile **out, const char *path, char *err,
                               size_t errlen)
{
    *out = NULL;
    return size_and_map(out, open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640),
                        path, err, errlen);
}

uint64_t ds__clockfile_read(const ds_clockfile *cf)
{
    return cf ? __atomic_load_n(cf->value, __ATOMIC_ACQUIRE) : 0;
}

void ds__clockfile_raise(ds_clockfile *cf, uint64_t hlc)
{
    uint64_t seen;

    if (!cf)
        return;
    seen = __atomic_load_n(cf->value, __ATOMIC_RELAXED);
    while (hlc > seen &&
           !__atomic_compare_exchange_n(cf->value, &seen, hlc, true,
                                        __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
}

uint64_t ds__clockfile_next(ds_clockfile *cf, uint64_t candidate)
{
    uint64_t seen = __atomic_load_n(cf->value, __ATOMIC_RELAXED), next;

    do
        next = candidate > seen ? candidate : seen + 1;
    while (!__atomic_compare_exchange_n(cf->value, &seen, next, true,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    return next;
}

void ds__clockfile_close(ds_clockfile *cf)
{
    if (!cf)
        return;
    munmap(cf->value, sizeof(uint64_t));
    free(cf);
}
