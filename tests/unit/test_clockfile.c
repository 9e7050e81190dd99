/* test_clockfile.c: the clock file's modes whatever the umask, reading it as another user, a producer's unreadable clock file logged once, and the spool's version counter shared by processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clockfile.h"

/* An unprivileged user for the checks that need one when the tests run as
 * root (root reads any file): nobody. */
#define OTHER_ID 65534

typedef struct scratch {
    char dir[64];   /* a fresh directory, mode 0755 */
    char sub[128];  /* dir/sub: not there until the writer makes it */
    char path[192]; /* dir/sub/clock */
} scratch;

static void scratch_make(scratch *s)
{
    strcpy(s->dir, "/tmp/ds_test_clock_XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    assert_int_equal(chmod(s->dir, 0755), 0);
    snprintf(s->sub, sizeof s->sub, "%s/sub", s->dir);
    snprintf(s->path, sizeof s->path, "%s/clock", s->sub);
}

static void scratch_remove(scratch *s)
{
    unlink(s->path);
    rmdir(s->sub);
    rmdir(s->dir);
}

static mode_t mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

typedef struct captured {
    int n;
    ds_log_level level;
    char last[512];
} captured;

static void capture(void *userdata, ds_log_level level, const char *message)
{
    captured *c = userdata;

    c->n++;
    c->level = level;
    snprintf(c->last, sizeof c->last, "%s", message);
}

/* Runs fn as another user: in a child that drops to OTHER_ID when this is
 * root, else right here (a non-root user is already "another user" for a
 * file it made unreadable). fn returns 0 or prints why and returns 1. */
static void as_other_user(int (*fn)(const scratch *), const scratch *s)
{
    pid_t pid;
    int status;

    if (geteuid() != 0) {
        assert_int_equal(fn(s), 0);
        return;
    }
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setgid(OTHER_ID) < 0 ||
            setuid(OTHER_ID) < 0) {
            perror("test_clockfile: dropping to nobody");
            _exit(2);
        }
        _exit(fn(s));
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ------------------------------------------------------------------------ */

static int read_as_other(const scratch *s)
{
    ds_clockfile *cf;
    char err[512] = "";
    int rc = ds__clockfile_open_reader(&cf, s->path, err, sizeof err);

    if (rc != 0) {
        fprintf(stderr, "test_clockfile: open_reader as uid %d: %d %s\n",
                (int)geteuid(), rc, err);
        return 1;
    }
    if (ds__clockfile_read(cf) != 42) {
        fprintf(stderr, "test_clockfile: read %llu, expected 42\n",
                (unsigned long long)ds__clockfile_read(cf));
        ds__clockfile_close(cf);
        return 1;
    }
    ds__clockfile_close(cf);
    return 0;
}

/* The systemd unit's UMask=0027 must not keep the application (another
 * user) from reading the clock: file 0644, its new directory 0755. */
static void writer_modes_whatever_the_umask(void **state)
{
    (void)state;
    scratch s;
    ds_clockfile *w;
    char err[512] = "";
    mode_t old = umask(0027);

    scratch_make(&s);
    assert_int_equal(ds__clockfile_open_writer(&w, s.path, err, sizeof err), 0);
    umask(old);
    assert_int_equal(mode_of(s.sub), 0755);
    assert_int_equal(mode_of(s.path), 0644);
    ds__clockfile_raise(w, 42);
    as_other_user(read_as_other, &s);
    ds__clockfile_close(w);

    /* An existing file keeps the mode an operator gave it. */
    assert_int_equal(chmod(s.path, 0640), 0);
    umask(0);
    assert_int_equal(ds__clockfile_open_writer(&w, s.path, err, sizeof err), 0);
    umask(old);
    assert_int_equal(mode_of(s.path), 0640);
    assert_int_equal(ds__clockfile_read(w), 42);
    ds__clockfile_close(w);
    scratch_remove(&s);
}

static void reader_not_there_yet(void **state)
{
    (void)state;
    scratch s;
    ds_clockfile *cf = NULL;
    char err[512] = "";
    captured log = {0};
    ds_logger lg = {DS_LOG_DEBUG, capture, &log};
    int reported = 0;
    FILE *f;

    scratch_make(&s);
    assert_int_equal(ds__clockfile_open_reader(&cf, s.path, err, sizeof err),
                     DS_ENOTFOUND);
    assert_null(cf);
    assert_non_null(strstr(err, "No such file or directory"));
    assert_null(ds__clockfile_try_reader(s.path, &lg, &reported));

    /* Made but not sized yet by the consumer: not there either. */
    assert_int_equal(mkdir(s.sub, 0755), 0);
    f = fopen(s.path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(ds__clockfile_open_reader(&cf, s.path, err, sizeof err),
                     DS_ENOTFOUND);
    assert_null(ds__clockfile_try_reader(s.path, &lg, &reported));
    assert_int_equal(log.n, 0); /* normal until the consumer runs: silent */
    scratch_remove(&s);
}

static int unreadable_logged_once(const scratch *s)
{
    ds_clockfile *cf;
    char err[512] = "";
    captured log = {0};
    ds_logger lg = {DS_LOG_INFO, NULL, &log};
    int reported = 0, rc;

    rc = ds__clockfile_open_reader(&cf, s->path, err, sizeof err);
    if (rc != DS_EIO || !strstr(err, "Permission denied")) {
        fprintf(stderr,
                "test_clockfile: open_reader: %d '%s', expected "
                "DS_EIO, Permission denied\n",
                rc, err);
        return 1;
    }
    /* No logger yet (a host sets it after ds_producer_new): not counted as
     * reported, so the first retry with a logger still says it. */
    if (ds__clockfile_try_reader(s->path, &lg, &reported) || reported != 0) {
        fprintf(stderr, "test_clockfile: reported without a logger\n");
        return 1;
    }
    lg.fn = capture;
    for (int i = 0; i < 3; i++) {
        if (ds__clockfile_try_reader(s->path, &lg, &reported)) {
            fprintf(stderr, "test_clockfile: opened an unreadable file\n");
            return 1;
        }
    }
    if (log.n != 1 || log.level != DS_LOG_WARN || !strstr(log.last, s->path) ||
        !strstr(log.last, "Permission denied")) {
        fprintf(stderr,
                "test_clockfile: %d log lines, last (level %d) "
                "'%s'; expected one warning naming the file\n",
                log.n, (int)log.level, log.last);
        return 1;
    }
    return 0;
}

/* Under the old unit a producer saw EACCES and said nothing, forever. */
static void reader_without_permission_logs_once(void **state)
{
    (void)state;
    scratch s;
    ds_clockfile *w;
    char err[512] = "";

    scratch_make(&s);
    assert_int_equal(ds__clockfile_open_writer(&w, s.path, err, sizeof err), 0);
    ds__clockfile_raise(w, 42);
    assert_int_equal(chmod(s.path, 0600), 0);
    as_other_user(unreadable_logged_once, &s);
    ds__clockfile_close(w);
    scratch_remove(&s);
}

enum { TAKES = 20000 };

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Takes TAKES values of the counter at path, all with the same candidate
 * (one millisecond, as a busy server's processes would), into out. */
static void take_all(const char *path, uint64_t *out)
{
    ds_clockfile *cf;
    char err[256];

    assert_int_equal(ds__clockfile_open_counter(&cf, path, err, sizeof err), 0);
    for (int i = 0; i < TAKES; i++)
        out[i] = ds__clockfile_next(cf, (uint64_t)1000 << 16);
    ds__clockfile_close(cf);
}

/* Two processes taking from one counter at once never get the same value,
 * and each gets increasing ones. */
static void counter_is_unique_across_processes(void **state)
{
    (void)state;
    scratch s;
    uint64_t *all = malloc(2 * TAKES * sizeof *all);
    int fds[2], status;
    pid_t child;

    assert_non_null(all);
    scratch_make(&s);
    snprintf(s.path, sizeof s.path, "%s/hlc", s.dir);
    assert_int_equal(pipe(fds), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        take_all(s.path, all);
        ssize_t n = write(fds[1], all, TAKES * sizeof *all);
        _exit(n == (ssize_t)(TAKES * sizeof *all) ? 0 : 1);
    }
    close(fds[1]);
    take_all(s.path, all + TAKES);
    size_t got = 0;
    ssize_t n;
    while (got < TAKES * sizeof *all &&
           (n = read(fds[0], (char *)all + got, TAKES * sizeof *all - got)) > 0)
        got += (size_t)n;
    close(fds[0]);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(got, TAKES * sizeof *all);

    for (int half = 0; half < 2; half++)
        for (int i = 1; i < TAKES; i++)
            assert_true(all[half * TAKES + i] > all[half * TAKES + i - 1]);
    qsort(all, 2 * TAKES, sizeof *all, cmp_u64);
    assert_true(all[0] >= (uint64_t)1000 << 16);
    for (int i = 1; i < 2 * TAKES; i++)
        if (all[i] == all[i - 1])
            fail_msg("value %llu taken twice", (unsigned long long)all[i]);
    unlink(s.path);
    rmdir(s.dir);
    free(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writer_modes_whatever_the_umask),
        cmocka_unit_test(reader_not_there_yet),
        cmocka_unit_test(reader_without_permission_logs_once),
        cmocka_unit_test(counter_is_unique_across_processes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
