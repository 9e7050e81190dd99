/* test_spool.c: the producer's spool keeps every complete record through torn writes, kills and several processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasync.h"
#include "spool.h"

static char dir[256];

static int make_dir(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ds-spool-test-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void append_one(ds_spool *s, const char *text)
{
    char err[256] = "";
    const char *bodies[1] = {text};
    size_t lens[1] = {strlen(text)};
    int rc = ds__spool_append(s, bodies, lens, 1, err, sizeof err);
    if (rc != 0)
        fail_msg("append: %d %s", rc, err);
}

/* Reads every record from the head; returns how many, checking each equals
 * "<prefix><i>" in order when prefix is not NULL. */
static int drain_all(ds_spool *s, const char *prefix, int first)
{
    char err[256], want[64];
    bool got;
    int n = 0, skipped = 0;

    assert_int_equal(ds__spool_drain_begin(s, &got, err, sizeof err), 0);
    assert_true(got);
    for (;;) {
        char *payload;
        size_t len;
        assert_int_equal(
            ds__spool_read(s, &payload, &len, &skipped, err, sizeof err), 0);
        if (!payload)
            break;
        if (prefix) {
            snprintf(want, sizeof want, "%s%d", prefix, first + n);
            if (len != strlen(want) || memcmp(payload, want, len) != 0)
                fail_msg("record %d: got \"%.*s\", want \"%s\"", n, (int)len,
                         payload, want);
        }
        free(payload);
        n++;
    }
    assert_int_equal(skipped, 0);
    ds__spool_drain_end(s);
    return n;
}

static off_t log_size(void)
{
    char path[300];
    struct stat st;
    snprintf(path, sizeof path, "%s/spool.log", dir);
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void append_read_commit_in_order(void **state)
{
    (void)state;
    ds_spool *s;
    char err[256], text[32], *payload;
    size_t len;
    int skipped = 0;
    bool got;
    uint64_t backlog;

    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    for (int i = 0; i < 100; i++) {
        snprintf(text, sizeof text, "rec-%d", i);
        append_one(s, text);
    }
    ds__spool_backlog(s, &backlog);
    assert_true(backlog > 0);

    /* Read 40, confirm them: the next drain starts at record 40. */
    assert_int_equal(ds__spool_drain_begin(s, &got, err, sizeof err), 0);
    assert_true(got);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(
            ds__spool_read(s, &payload, &len, &skipped, err, sizeof err), 0);
        snprintf(text, sizeof text, "rec-%d", i);
        assert_memory_equal(payload, text, strlen(text));
        free(payload);
    }
    assert_int_equal(ds__spool_commit(s, ds__spool_cursor(s), err, sizeof err),
                     0);
    ds__spool_drain_end(s);
    ds__spool_close(s);

    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    assert_int_equal(drain_all(s, "rec-", 40), 60);

    /* Confirming everything empties the file. */
    assert_int_equal(ds__spool_drain_begin(s, &got, err, sizeof err), 0);
    do {
        assert_int_equal(
            ds__spool_read(s, &payload, &len, &skipped, err, sizeof err), 0);
        free(payload);
    } while (payload);
    assert_int_equal(ds__spool_commit(s, ds__spool_cursor(s), err, sizeof err),
                     0);
    ds__spool_drain_end(s);
    assert_int_equal(log_size(), 0);
    ds__spool_backlog(s, &backlog);
    assert_int_equal(backlog, 0);
    ds__spool_close(s);
}

static void torn_tail_is_dropped_and_the_rest_kept(void **state)
{
    (void)state;
    ds_spool *s;
    char err[256], path[300], text[32];
    off_t whole;

    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof text, "torn-%d", i);
        append_one(s, text);
    }
    ds__spool_close(s);
    whole = log_size();

    /* A writer that died mid-record: half a record at the end. */
    snprintf(path, sizeof path, "%s/spool.log", dir);
    assert_int_equal(truncate(path, whole - 5), 0);

    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    assert_int_equal(drain_all(s, "torn-", 0), 9);
    /* An append after recovery lands after the last whole record. */
    append_one(s, "torn-9");
    assert_int_equal(drain_all(s, "torn-", 0), 10);
    ds__spool_close(s);
}

/* Appends the first 7 bytes of a record, as a writer that died there. */
static void append_torn_record(void)
{
    char path[300];
    int fd;

    snprintf(path, sizeof path, "%s/spool.log", dir);
    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "DSP1\x05\x00\x00", 7), 7);
    close(fd);
}

/* Reads the drainer's next records up to the end of the file into got;
 * returns how many. */
static int read_to_end(ds_spool *s, char got[][16], int max)
{
    char err[256], *payload;
    size_t len;
    int n = 0, skipped = 0;

    for (;;) {
        assert_int_equal(
            ds__spool_read(s, &payload, &len, &skipped, err, sizeof err), 0);
        if (!payload)
            break;
        assert_true(n < max && len < 16);
        memcpy(got[n], payload, len);
        got[n++][len] = '\0';
        free(payload);
    }
    return n;
}

/* Another process dies mid-record while one drains: the drainer must not
 * step past the torn bytes, or it passes over the record the next writer
 * puts in their place (it cuts them first), and its commit then moves the
 * head into, or past, that record. */
static void drainer_waits_behind_another_writers_torn_tail(void **state)
{
    (void)state;
    ds_spool *writer, *drainer;
    char err[256], got[4][16];
    bool busy;

    assert_int_equal(ds__spool_open(&writer, dir, err, sizeof err), 0);
    assert_int_equal(ds__spool_open(&drainer, dir, err, sizeof err), 0);
    append_one(writer, "first");
    assert_int_equal(ds__spool_drain_begin(drainer, &busy, err, sizeof err), 0);
    assert_true(busy);
    assert_int_equal(read_to_end(drainer, got, 4), 1);
    assert_string_equal(got[0], "first");

    /* A third process dies 7 bytes into its record. */
    append_torn_record();
    assert_int_equal(read_to_end(drainer, got, 4), 0);

    append_one(writer, "second");
    assert_int_equal(read_to_end(drainer, got, 4), 1);
    assert_string_equal(got[0], "second");
    assert_int_equal(
        ds__spool_commit(drainer, ds__spool_cursor(drainer), err, sizeof err),
        0);
    ds__spool_drain_end(drainer);
    assert_int_equal(log_size(), 0);
    ds__spool_close(drainer);
    ds__spool_close(writer);
}

/* Opens the spool with no memory to spare for a 1 MiB record: returns
 * the exit status for the parent (0: refused with DS_ESPOOL). */
static int open_short_of_memory(void)
{
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    struct rlimit lim;
    ds_spool *s;
    char err[256];
    int rc;

    if (!f || fscanf(f, "%ld", &pages) != 1)
        return 10;
    fclose(f);
    getrlimit(RLIMIT_AS, &lim);
    lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (512 << 10);
    if (setrlimit(RLIMIT_AS, &lim) < 0)
        return 11;
    rc = ds__spool_open(&s, dir, err, sizeof err);
    if (rc == 0)
        ds__spool_close(s);
    return rc == DS_ESPOOL && strstr(err, "cannot read a record") ? 0 : 12;
}

/* A record that cannot be read into memory is not corrupt: recovery from a
 * torn tail behind it must fail rather than cut it. */
static void record_short_of_memory_is_kept(void **state)
{
    (void)state;
    enum { BIG = 1 << 20 };
    ds_spool *s;
    char err[256], *big = malloc(BIG + 1);
    const char *bodies[1] = {big};
    size_t lens[1] = {BIG};
    off_t before;
    pid_t child;
    int status;

    assert_non_null(big);
    memset(big, 'b', BIG);
    big[BIG] = '\0';
    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    assert_int_equal(ds__spool_append(s, bodies, lens, 1, err, sizeof err), 0);
    ds__spool_close(s);
    append_torn_record();
    before = log_size();

    child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(open_short_of_memory());
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(log_size(), before);

    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    assert_int_equal(drain_all(s, NULL, 0), 1);
    ds__spool_close(s);
    free(big);
}

static void garbage_tail_is_dropped(void **state)
{
    (void)state;
    ds_spool *s;
    char err[256], path[300];
    int fd;

    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    append_one(s, "keep-0");
    append_one(s, "keep-1");
    ds__spool_close(s);
    snprintf(path, sizeof path, "%s/spool.log", dir);
    fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x44\x53\x50\x31garbage", 11), 11);
    close(fd);

    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    assert_int_equal(drain_all(s, "keep-", 0), 2);
    ds__spool_close(s);
}

static void corrupt_middle_record_is_skipped(void **state)
{
    (void)state;
    ds_spool *s;
    char err[256], path[300], *payload;
    size_t len;
    int skipped = 0, fd, n = 0;
    bool got;

    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    append_one(s, "first");
    append_one(s, "second");
    append_one(s, "third");
    ds__spool_close(s);
    /* Flip a payload byte of the second record (header 12 + "first" 5 +
     * trailer 8 = 25; its payload starts at 25 + 12). */
    snprintf(path, sizeof path, "%s/spool.log", dir);
    fd = open(path, O_WRONLY);
    assert_int_equal(pwrite(fd, "X", 1, 25 + 12 + 2), 1);
    close(fd);

    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    assert_int_equal(ds__spool_drain_begin(s, &got, err, sizeof err), 0);
    const char *want[] = {"first", "third"};
    for (;;) {
        assert_int_equal(
            ds__spool_read(s, &payload, &len, &skipped, err, sizeof err), 0);
        if (!payload)
            break;
        assert_true(n < 2);
        assert_int_equal(len, strlen(want[n]));
        assert_memory_equal(payload, want[n], len);
        free(payload);
        n++;
    }
    assert_int_equal(n, 2);
    assert_int_equal(skipped, 1);
    ds__spool_drain_end(s);
    ds__spool_close(s);
}

/* A child appends numbered records and reports each on a pipe once the
 * append returned; the parent kills it with SIGKILL mid-stream. Every record
 * reported must be in the spool after reopening. */
static void kill9_while_appending_keeps_every_complete_record(void **state)
{
    (void)state;
    int pipefd[2];
    pid_t child;
    char err[256];
    int last_reported = -1, n;

    assert_int_equal(pipe(pipefd), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        ds_spool *s;
        char text[4096];
        close(pipefd[0]);
        if (ds__spool_open(&s, dir, err, sizeof err) != 0)
            _exit(2);
        for (int i = 0;; i++) {
            /* Large records span pages, so a kill can land mid-write. */
            int len = snprintf(text, sizeof text, "big-%d-", i);
            memset(text + len, 'x', sizeof text - (size_t)len - 1);
            text[sizeof text - 1] = '\0';
            append_one(s, text);
            if (write(pipefd[1], &i, sizeof i) != sizeof i)
                _exit(3);
        }
    }
    close(pipefd[1]);
    while (read(pipefd[0], &n, sizeof n) == sizeof n) {
        last_reported = n;
        if (n >= 150) {
            kill(child, SIGKILL);
            break;
        }
    }
    waitpid(child, NULL, 0);
    /* Anything still in the pipe was appended before the kill too. */
    while (read(pipefd[0], &n, sizeof n) == sizeof n)
        last_reported = n;
    close(pipefd[0]);
    assert_true(last_reported >= 150);

    ds_spool *s;
    bool got;
    char *payload;
    size_t len;
    int skipped = 0, count = 0;
    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    assert_int_equal(ds__spool_drain_begin(s, &got, err, sizeof err), 0);
    for (;;) {
        char want[32];
        assert_int_equal(
            ds__spool_read(s, &payload, &len, &skipped, err, sizeof err), 0);
        if (!payload)
            break;
        snprintf(want, sizeof want, "big-%d-", count);
        assert_memory_equal(payload, want, strlen(want));
        free(payload);
        count++;
    }
    ds__spool_drain_end(s);
    ds__spool_close(s);
    assert_int_equal(skipped, 0);
    if (count < last_reported + 1)
        fail_msg("spool has %d records, child reported %d appended", count,
                 last_reported + 1);
}

/* Four processes append to one directory at once: no record is lost or
 * interleaved with another. */
static void processes_share_one_spool(void **state)
{
    (void)state;
    enum { PROCS = 4, EACH = 300 };
    pid_t kids[PROCS];
    char err[256];
    int seen[PROCS][EACH] = {{0}};

    for (int k = 0; k < PROCS; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            ds_spool *s;
            char text[64];
            if (ds__spool_open(&s, dir, err, sizeof err) != 0)
                _exit(2);
            for (int i = 0; i < EACH; i++) {
                snprintf(text, sizeof text, "%d:%d", k, i);
                append_one(s, text);
            }
            ds__spool_close(s);
            _exit(0);
        }
    }
    for (int k = 0; k < PROCS; k++) {
        int status;
        waitpid(kids[k], &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    ds_spool *s;
    bool got;
    char *payload;
    size_t len;
    int skipped = 0, total = 0, k, i;
    assert_int_equal(ds__spool_open(&s, dir, err, sizeof err), 0);
    assert_int_equal(ds__spool_drain_begin(s, &got, err, sizeof err), 0);
    for (;;) {
        char text[64];
        assert_int_equal(
            ds__spool_read(s, &payload, &len, &skipped, err, sizeof err), 0);
        if (!payload)
            break;
        snprintf(text, sizeof text, "%.*s", (int)len, payload);
        assert_int_equal(sscanf(text, "%d:%d", &k, &i), 2);
        assert_in_range(k, 0, PROCS - 1);
        assert_in_range(i, 0, EACH - 1);
        seen[k][i]++;
        free(payload);
        total++;
    }
    ds__spool_drain_end(s);
    ds__spool_close(s);
    assert_int_equal(total, PROCS * EACH);
    for (k = 0; k < PROCS; k++)
        for (i = 0; i < EACH; i++)
            assert_int_equal(seen[k][i], 1);
}

static void one_drainer_at_a_time(void **state)
{
    (void)state;
    ds_spool *a, *b;
    char err[256];
    bool got;

    assert_int_equal(ds__spool_open(&a, dir, err, sizeof err), 0);
    assert_int_equal(ds__spool_open(&b, dir, err, sizeof err), 0);
    append_one(a, "x");
    assert_int_equal(ds__spool_drain_begin(a, &got, err, sizeof err), 0);
    assert_true(got);
    assert_int_equal(ds__spool_drain_begin(b, &got, err, sizeof err), 0);
    assert_false(got);
    ds__spool_drain_end(a);
    assert_int_equal(ds__spool_drain_begin(b, &got, err, sizeof err), 0);
    assert_true(got);
    ds__spool_drain_end(b);
    ds__spool_close(a);
    ds__spool_close(b);
}

static void unwritable_dir_is_a_clear_error(void **state)
{
    (void)state;
    ds_spool *s = NULL;
    char err[256] = "";
    int rc = ds__spool_open(&s, "/proc/no-such/spool", err, sizeof err);
    assert_int_equal(rc, DS_ESPOOL);
    assert_null(s);
    assert_non_null(strstr(err, "/proc/no-such"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(append_read_commit_in_order, make_dir,
                                        remove_dir),
        cmocka_unit_test_setup_teardown(torn_tail_is_dropped_and_the_rest_kept,
                                        make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(garbage_tail_is_dropped, make_dir,
                                        remove_dir),
        cmocka_unit_test_setup_teardown(corrupt_middle_record_is_skipped,
                                        make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(
            kill9_while_appending_keeps_every_complete_record, make_dir,
            remove_dir),
        cmocka_unit_test_setup_teardown(
            drainer_waits_behind_another_writers_torn_tail, make_dir,
            remove_dir),
        cmocka_unit_test_setup_teardown(record_short_of_memory_is_kept,
                                        make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(processes_share_one_spool, make_dir,
                                        remove_dir),
        cmocka_unit_test_setup_teardown(one_drainer_at_a_time, make_dir,
                                        remove_dir),
        cmocka_unit_test(unwritable_dir_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
