/* clockfile.c: one shared 64-bit value in a mapped file: the consumer raises it, producers read it. */
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
        return DS_ENOMEM;
    m = mmap(NULL, sizeof(uint64_t), prot, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        free(cf);
        return clock_error(err, errlen, "cannot map", path);
    }
    cf->value = m;
    *out = cf;
    return 0;
}

int ds__clockfile_open_reader(ds_clockfile **out, const char *path, char *err,
                              size_t errlen)
{
    struct stat st;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return clock_error(err, errlen, "cannot open", path);
    /* Mapping past the end of a file faults on access: only a file the
     * consumer has sized may be read. */
    if (fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(uint64_t)) {
        close(fd);
        errno = EINVAL;
        return clock_error(err, errlen, "not written yet", path);
    }
    rc = map(out, fd, PROT_READ, path, err, errlen);
    close(fd);
    return rc;
}

int ds__clockfile_open_writer(ds_clockfile **out, const char *path, char *err,
                              size_t errlen)
{
    char dir[PATH_MAX];
    struct stat st;
    char *slash;
    int fd, rc;

    *out = NULL;
    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
            return clock_error(err, errlen, "cannot create its directory",
                               path);
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
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

void ds__clockfile_close(ds_clockfile *cf)
{
    if (!cf)
        return;
    munmap(cf->value, sizeof(uint64_t));
    free(cf);
}
