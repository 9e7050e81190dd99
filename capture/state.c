/* state.c: the capture's state file, replaced atomically (temporary file, fsync, rename). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "state.h"

/* The second line: "hlc N". */
#define HLC_LINE "hlc "

/* "hlc N", then only blanks or newlines. 0, or -1. */
static int parse_hlc_line(const char *s, uint64_t *hlc)
{
    size_t k = strlen(HLC_LINE);
    char *end;

    if (strncmp(s, HLC_LINE, k) != 0 || s[k] < '0' || s[k] > '9')
        return -1;
    errno = 0;
    *hlc = strtoull(s + k, &end, 10);
    if (errno)
        return -1;
    end += strspn(end, " \n");
    return *end ? -1 : 0;
}

int cap_state_read(const char *path, char *buf, size_t cap, uint64_t *hlc,
                   char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    size_t n;

    *hlc = 0;
    if (!f) {
        if (errno == ENOENT)
            return DS_ENOTFOUND;
        return ds__seterr(err, errlen, DS_EIO, "%s: %s", path, strerror(errno));
    }
    n = fread(buf, 1, cap - 1, f);
    int bad = ferror(f) || !feof(f);
    fclose(f);
    if (bad)
        return ds__seterr(err, errlen, DS_EIO, "%s: unreadable or too long",
                          path);
    buf[n] = '\0';
    char *clock = strchr(buf, '\n');
    if (clock) {
        *clock++ = '\0';
        n = strlen(buf);
        if (*clock && parse_hlc_line(clock, hlc) != 0)
            return ds__seterr(err, errlen, DS_EINVAL,
                              "%s: the second line is not \"hlc N\": "
                              "'%.100s'",
                              path, clock);
    }
    while (n > 0 && buf[n - 1] == ' ')
        buf[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!((buf[i] >= '0' && buf[i] <= '9') || buf[i] == '-' ||
              buf[i] == ','))
            return ds__seterr(err, errlen, DS_EINVAL,
                              "%s: not a GTID position: '%.100s'", path, buf);
    return 0;
}

int cap_state_write(const char *path, const char *gtid, uint64_t hlc, char *err,
                    size_t errlen)
{
    char tmp[1100], dir[1100], text[1100];
    int fd, rc = 0;
    int len =
        snprintf(text, sizeof text, "%s\n" HLC_LINE "%" PRIu64 "\n", gtid, hlc);

    if (len < 0 || (size_t)len >= sizeof text)
        return ds__seterr(err, errlen, DS_EINVAL, "%s: position too long",
                          path);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return ds__seterr(err, errlen, DS_EIO, "%s: path too long", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ds__seterr(err, errlen, DS_EIO, "%s: %s", tmp, strerror(errno));
    if (write(fd, text, (size_t)len) != (ssize_t)len || fsync(fd) != 0)
        rc = ds__seterr(err, errlen, DS_EIO, "%s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = ds__seterr(err, errlen, DS_EIO, "%s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = ds__seterr(err, errlen, DS_EIO, "%s: %s", path, strerror(errno));
    if (rc) {
        unlink(tmp);
        return rc;
    }
    /* The rename itself must survive a crash too. */
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
