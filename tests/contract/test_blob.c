/* Blob-store contract, run against the filesystem backend (the only built-in one): staging
 * appends and survives reopening, publishing is atomic and deduplicating, nothing staged is
 * readable, and path-like names are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat/errors.h"
#include "chat/sys/blob.h"

#define ID1 "e93156aed53759ed6ce213144ddc92deccc401d8bbc4fe71a3f5f4bc6586d4e5"
#define KEY1 "0123456789abcdef0123456789abcdef"
#define KEY2 "fedcba9876543210fedcba9876543210"

typedef struct fx {
    char dir[64];
    const chat_blob_ops *ops;
    void *st;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/chat-blob-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char root[128];
    snprintf(root, sizeof root, "%s/media", f->dir);
    assert_int_equal(chat_blob_fs_new(&f->st, root), CHAT_OK);
    f->ops = chat_blob_fs_ops();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    f->ops->destroy(f->st);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void stage(fx *f, const char *key, const char *data, int create, uint64_t expect_size)
{
    void *h = NULL;
    uint64_t size = 99;
    assert_int_equal(f->ops->stage_open(f->st, key, create, &size, &h), CHAT_OK);
    assert_true(size == expect_size);
    assert_int_equal(f->ops->stage_write(f->st, h, data, strlen(data)), CHAT_OK);
    f->ops->stage_close(f->st, h);
}

static char *read_all(fx *f, const char *id, uint64_t *size)
{
    void *h = NULL;
    if (f->ops->open(f->st, id, size, &h) != CHAT_OK)
        return NULL;
    char *buf = calloc(1, (size_t)*size + 1);
    uint64_t off = 0;
    while (off < *size) {
        size_t got = 0;
        /* small reads: the engine never asks for a whole object */
        assert_int_equal(f->ops->read(f->st, h, off, buf + off, 3, &got), CHAT_OK);
        assert_true(got > 0);
        off += got;
    }
    size_t got = 1;
    assert_int_equal(f->ops->read(f->st, h, off, buf, 3, &got), CHAT_OK);
    assert_int_equal(got, 0); /* end */
    f->ops->close(f->st, h);
    return buf;
}

static void test_blob_stage_append_and_publish(void **state)
{
    fx *f = *state;
    uint64_t size = 0;
    void *h = NULL;
    assert_int_equal(f->ops->stage_open(f->st, KEY1, 0, &size, &h), CHAT_ENOTFOUND);
    stage(f, KEY1, "hello ", 1, 0);
    stage(f, KEY1, "world", 0, 6); /* reopened: appends where it stopped */
    /* staged bytes are not an object */
    assert_int_equal(f->ops->open(f->st, ID1, &size, &h), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->stage_commit(f->st, KEY1, ID1), CHAT_OK);
    char *data = read_all(f, ID1, &size);
    assert_non_null(data);
    assert_string_equal(data, "hello world");
    assert_true(size == 11);
    free(data);
    /* sharded path, and the staging object is gone */
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/media/objects/e9/31/" ID1, f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(f->ops->stage_open(f->st, KEY1, 0, &size, &h), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->stage_commit(f->st, KEY1, ID1), CHAT_ENOTFOUND);
}

static void test_blob_publish_existing_id_keeps_first_copy(void **state)
{
    fx *f = *state;
    uint64_t size = 0;
    stage(f, KEY1, "same bytes", 1, 0);
    assert_int_equal(f->ops->stage_commit(f->st, KEY1, ID1), CHAT_OK);
    stage(f, KEY2, "SAME BYTES", 1, 0); /* a backend trusts the engine's id */
    assert_int_equal(f->ops->stage_commit(f->st, KEY2, ID1), CHAT_OK);
    char *data = read_all(f, ID1, &size);
    assert_string_equal(data, "same bytes");
    free(data);
    char dir[160];
    snprintf(dir, sizeof dir, "%s/media/staging", f->dir);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    assert_int_equal(n, 0);
}

static void test_blob_stage_remove(void **state)
{
    fx *f = *state;
    uint64_t size = 0;
    void *h = NULL;
    stage(f, KEY1, "abc", 1, 0);
    assert_int_equal(f->ops->stage_remove(f->st, KEY1), CHAT_OK);
    assert_int_equal(f->ops->stage_open(f->st, KEY1, 0, &size, &h), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->stage_remove(f->st, KEY1), CHAT_OK); /* absent is fine */
}

static void test_blob_ctl_clear_staging(void **state)
{
    fx *f = *state;
    uint64_t size = 0;
    void *h = NULL;
    stage(f, KEY1, "one", 1, 0);
    stage(f, KEY2, "two", 1, 0);
    assert_int_equal(f->ops->stage_commit(f->st, KEY2, ID1), CHAT_OK);
    stage(f, KEY2, "again", 1, 0);
    assert_int_equal(f->ops->ctl(f->st, CHAT_BLOB_CTL_CLEAR_STAGING, NULL), CHAT_OK);
    assert_int_equal(f->ops->stage_open(f->st, KEY1, 0, &size, &h), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->stage_open(f->st, KEY2, 0, &size, &h), CHAT_ENOTFOUND);
    char *data = read_all(f, ID1, &size); /* published objects stay */
    assert_string_equal(data, "two");
    free(data);
    assert_int_equal(f->ops->ctl(f->st, 999, NULL), CHAT_ENOTSUP);
}

static void test_blob_refuses_path_like_names(void **state)
{
    fx *f = *state;
    uint64_t size = 0;
    void *h = NULL;
    static const char *const bad[] = {"../../etc/passwd", "..", "abc/def", "ABCDEF01",
                                      "", "a b c d", "abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(f->ops->stage_open(f->st, bad[i], 1, &size, &h), CHAT_EINVAL);
        assert_int_equal(f->ops->open(f->st, bad[i], &size, &h), CHAT_EINVAL);
        assert_int_equal(f->ops->stage_remove(f->st, bad[i]), CHAT_EINVAL);
        assert_int_equal(f->ops->stage_commit(f->st, KEY1, bad[i]), CHAT_EINVAL);
    }
}

static void test_blob_fs_new_rejects_bad_args(void **state)
{
    (void)state;
    void *st = NULL;
    assert_int_equal(chat_blob_fs_new(&st, ""), CHAT_EINVAL);
    assert_int_equal(chat_blob_fs_new(NULL, "/tmp"), CHAT_EINVAL);
    assert_int_equal(chat_blob_fs_new(&st, "/proc/no/such/dir"), CHAT_EIO);
    assert_int_equal(chat_blob_fs_new_shared(&st, "/tmp", NULL), CHAT_EINVAL);
    static const char *const bad[] = {"", "..", "a/b", "a.b", "n 1",
                                      "0123456789012345678901234567890123456789"
                                      "01234567890123456789012345"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(chat_blob_fs_new_shared(&st, "/tmp", bad[i]), CHAT_EINVAL);
}

/* Two servers on one directory: what one publishes the other reads, and each clears only the
 * uploads it staged itself when it starts. */
static void test_blob_shared_dir_keeps_staging_apart(void **state)
{
    fx *a = *state;
    fx b = {.ops = chat_blob_fs_ops()};
    char root[128];
    snprintf(root, sizeof root, "%s/shared", a->dir);
    a->ops->destroy(a->st);
    assert_int_equal(chat_blob_fs_new_shared(&a->st, root, "node-a"), CHAT_OK);
    assert_int_equal(chat_blob_fs_new_shared(&b.st, root, "node_B"), CHAT_OK);
    stage(a, KEY1, "from a", 1, 0);
    stage(&b, KEY1, "b's own upload", 1, 0); /* same key, another server: apart */
    stage(&b, KEY2, "b's second", 1, 0);
    assert_int_equal(a->ops->stage_commit(a->st, KEY1, ID1), CHAT_OK);
    uint64_t size = 0;
    char *data = read_all(&b, ID1, &size);
    assert_non_null(data);
    assert_string_equal(data, "from a");
    free(data);
    /* a restarts: b's uploads in progress stay */
    stage(a, KEY2, "a's unfinished", 1, 0);
    assert_int_equal(a->ops->ctl(a->st, CHAT_BLOB_CTL_CLEAR_STAGING, NULL), CHAT_OK);
    void *h = NULL;
    assert_int_equal(a->ops->stage_open(a->st, KEY2, 0, &size, &h), CHAT_ENOTFOUND);
    assert_int_equal(b.ops->stage_open(b.st, KEY1, 0, &size, &h), CHAT_OK);
    assert_true(size == strlen("b's own upload"));
    b.ops->stage_close(b.st, h);
    assert_int_equal(b.ops->stage_commit(b.st, KEY2, ID1), CHAT_OK); /* dedupe across them */
    data = read_all(a, ID1, &size);
    assert_string_equal(data, "from a");
    free(data);
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/staging/node_B/" KEY1, root);
    assert_int_equal(stat(path, &st), 0);
    b.ops->destroy(b.st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blob_stage_append_and_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_publish_existing_id_keeps_first_copy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_blob_stage_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_ctl_clear_staging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_refuses_path_like_names, setup, teardown),
        cmocka_unit_test(test_blob_fs_new_rejects_bad_args),
        cmocka_unit_test_setup_teardown(test_blob_shared_dir_keeps_staging_apart, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
