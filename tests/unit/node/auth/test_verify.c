/* Unit tests of the verifier (node/auth/verify.c, cache.c, bcrypt.c):
 * right and wrong passwords, the cache (a hit hashes nothing, a changed
 * account misses), robots and their expiry, accounts found after a read
 * barrier, htpasswd users and their reload, shared jobs, closing. The
 * accounts come from a table standing in for the FSM; bcrypt cost 4. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/auth/internal.h"

/* ---- a table of accounts (the source) ---- */

struct acct {
    const char *name;
    bool robot;
    char hash[NODE_AUTH_HASH_SIZE];
    uint64_t version;
    bool admin;
    uint64_t expires_ms;
    bool hidden; /* appears only after a barrier */
};

struct table {
    struct acct accts[8];
    size_t n;
    unsigned lookups, barriers;
};

static uint64_t now_ms = 1000;
static uint64_t fake_clock(void)
{
    return now_ms;
}

static bool lookup(void *data,
                   bool robot,
                   const char *name,
                   struct node_auth_record *rec)
{
    struct table *t = data;
    t->lookups++;
    for (size_t i = 0; i < t->n; i++) {
        struct acct *a = &t->accts[i];
        if (a->robot == robot && !a->hidden && strcmp(a->name, name) == 0) {
            rec->hash = a->hash;
            rec->version = a->version;
            rec->admin = a->admin;
            rec->expires_ms = a->expires_ms;
            return true;
        }
    }
    return false;
}

/* Answers at once, like a leader's local barrier; hidden accounts become
 * visible (applied meanwhile). */
static int barrier(void *data,
                   void (*cb)(void *cb_data, int status),
                   void *cb_data)
{
    struct table *t = data;
    t->barriers++;
    for (size_t i = 0; i < t->n; i++)
        t->accts[i].hidden = false;
    cb(cb_data, 0);
    return 0;
}

static struct acct *add(struct table *t,
                        const char *name,
                        bool robot,
                        const char *password)
{
    struct acct *a = &t->accts[t->n++];
    memset(a, 0, sizeof(*a));
    a->name = name;
    a->robot = robot;
    a->version = 10 + t->n;
    assert_int_equal(
        node_auth__bcrypt_hash(password, 4, a->hash, sizeof(a->hash)), 0);
    return a;
}

/* ---- a verifier on a loop ---- */

struct fix {
    uv_loop_t loop;
    struct table t;
    struct node_auth *a;
    int status;     /* of the last answer, 1 while none */
    unsigned calls; /* answers received */
    struct node_auth_identity id;
};

static struct fix *fix_new(const char *htpasswd)
{
    struct fix *f = at_calloc(1, sizeof(*f));
    char e[AT_ERRMSG_SIZE] = "";
    struct node_auth_config cfg = { 0 };
    uv_loop_init(&f->loop);
    cfg.bcrypt_cost = 4;
    cfg.cache_ttl_ms = 60000;
    cfg.htpasswd = htpasswd;
    cfg.clock = fake_clock;
    cfg.source.lookup = lookup;
    cfg.source.barrier = barrier;
    cfg.source.data = &f->t;
    int rv = node_auth_new(&f->a, &f->loop, &cfg, e);
    if (rv != 0)
        print_error("node_auth_new: %s\n", e);
    assert_int_equal(rv, 0);
    return f;
}

static void fix_free(struct fix *f)
{
    node_auth_close(f->a);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    at_free(f);
}

static void on_verified(void *data,
                        int status,
                        const struct node_auth_identity *id)
{
    struct fix *f = data;
    f->status = status;
    f->calls++;
    if (status == 0)
        f->id = *id;
}

/* Verify and wait: 0 when verified (from the cache or the pool). */
static int verify(struct fix *f, const char *user, const char *password)
{
    unsigned calls = f->calls;
    f->status = 1;
    int rv = node_auth_verify(f->a, user, password, &f->id, on_verified, f);
    if (rv != NODE_AUTH_PENDING)
        return rv;
    while (f->calls == calls)
        uv_run(&f->loop, UV_RUN_ONCE);
    return f->status;
}

static uint64_t bcrypts(struct fix *f)
{
    struct node_auth_stats st;
    node_auth_stats_get(f->a, &st);
    return st.bcrypts;
}

static void test_users(void **state)
{
    struct fix *f = fix_new(NULL);
    AT_UNUSED(state);
    struct acct *alice = add(&f->t, "alice", false, "right-pass");
    alice->admin = true;

    assert_int_equal(verify(f, "alice", "wrong-pass"), AT_EINVAL);
    assert_int_equal(f->t.barriers, 1); /* a refusal looks once more */
    assert_int_equal(verify(f, "alice", "right-pass"), 0);
    assert_string_equal(f->id.name, "alice");
    assert_int_equal(f->id.kind, NODE_AUTH_USER);
    assert_true(f->id.admin);
    uint64_t n = bcrypts(f);

    /* a hit answers at once and hashes nothing */
    memset(&f->id, 0, sizeof(f->id));
    assert_int_equal(
        node_auth_verify(f->a, "alice", "right-pass", &f->id, on_verified, f),
        0);
    assert_string_equal(f->id.name, "alice");
    assert_int_equal(bcrypts(f), n);
    struct node_auth_stats st;
    node_auth_stats_get(f->a, &st);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cached, 1);
    /* a wrong password is no hit */
    assert_int_equal(verify(f, "alice", "right-pasS"), AT_EINVAL);
    assert_int_equal(bcrypts(f), n + 1);

    /* the account changes (passwd): the old entry no longer matches */
    assert_int_equal(
        node_auth__bcrypt_hash("new-pass", 4, alice->hash, sizeof(alice->hash)),
        0);
    alice->version++;
    assert_int_equal(verify(f, "alice", "right-pass"), AT_EINVAL);
    assert_int_equal(verify(f, "alice", "new-pass"), 0);
    /* removed: refused */
    f->t.n = 0;
    assert_int_equal(verify(f, "alice", "new-pass"), AT_EINVAL);

    /* unknown names cost a bcrypt too, and passwords bcrypt cannot take
     * are refused at once */
    n = bcrypts(f);
    assert_int_equal(verify(f, "nobody", "whatever"), AT_EINVAL);
    assert_int_equal(bcrypts(f), n + 1);
    char longpw[NODE_AUTH_PASSWORD_MAX + 2];
    memset(longpw, 'x', sizeof(longpw) - 1);
    longpw[sizeof(longpw) - 1] = '\0';
    assert_int_equal(verify(f, "alice", longpw), AT_EINVAL);
    assert_int_equal(verify(f, "alice", ""), AT_EINVAL);
    assert_int_equal(bcrypts(f), n + 1);
    fix_free(f);
}

static void test_robots(void **state)
{
    struct fix *f = fix_new(NULL);
    AT_UNUSED(state);
    char secret[NODE_AUTH_SECRET_SIZE];
    node_auth_secret_new(secret);
    struct acct *ci = add(&f->t, "ci", true, secret);
    ci->expires_ms = 5000;
    now_ms = 1000;

    /* a robot logs in as robot$<name>, never as <name> */
    assert_int_equal(verify(f, "ci", secret), AT_EINVAL);
    assert_int_equal(verify(f, "robot$ci", secret), 0);
    assert_int_equal(f->id.kind, NODE_AUTH_ROBOT);
    assert_false(f->id.admin);
    assert_string_equal(f->id.name, "robot$ci");
    /* past its expiry it verifies no more, cached or not */
    now_ms = 5000;
    assert_int_equal(verify(f, "robot$ci", secret), AT_EINVAL);
    ci->expires_ms = 0; /* never */
    assert_int_equal(verify(f, "robot$ci", secret), 0);
    now_ms = 1000;
    fix_free(f);
}

/* An account applied here only after the barrier verifies on the first
 * try; concurrent calls with the same credentials share one bcrypt. */
static void test_barrier_and_sharing(void **state)
{
    struct fix *f = fix_new(NULL);
    AT_UNUSED(state);
    struct acct *bob = add(&f->t, "bob", false, "bob-pass");
    bob->hidden = true;
    assert_int_equal(verify(f, "bob", "bob-pass"), 0);
    assert_int_equal(f->t.barriers, 1);

    struct node_auth_identity ids[3];
    add(&f->t, "carol", false, "carol-pass");
    uint64_t n = bcrypts(f);
    for (int i = 0; i < 3; i++)
        assert_int_equal(node_auth_verify(f->a, "carol", "carol-pass", &ids[i],
                                          on_verified, f),
                         NODE_AUTH_PENDING);
    unsigned calls = f->calls;
    while (f->calls < calls + 3)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->status, 0);
    assert_int_equal(bcrypts(f), n + 1);
    fix_free(f);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_htpasswd(void **state)
{
    char dir[] = "/tmp/atoll-auth-XXXXXX";
    char path[64], hash[NODE_AUTH_HASH_SIZE], text[256];
    char e[AT_ERRMSG_SIZE];
    AT_UNUSED(state);
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/htpasswd", dir);
    assert_int_equal(node_auth__bcrypt_hash("dave-pass", 4, hash, sizeof(hash)),
                     0);
    hash[2] = 'y'; /* as htpasswd -B writes it */
    snprintf(text, sizeof(text), "# users\ndave:%s\n", hash);
    write_file(path, text);
    struct fix *f = fix_new(path);
    assert_int_equal(verify(f, "dave", "dave-pass"), 0);
    assert_int_equal(f->id.kind, NODE_AUTH_HTPASSWD);
    assert_false(f->id.admin);
    /* a replicated user of the same name wins */
    add(&f->t, "dave", false, "other-pass");
    assert_int_equal(verify(f, "dave", "dave-pass"), AT_EINVAL);
    assert_int_equal(verify(f, "dave", "other-pass"), 0);
    assert_int_equal(f->id.kind, NODE_AUTH_USER);
    f->t.n = 0;
    assert_int_equal(verify(f, "dave", "dave-pass"), 0);

    /* a reload that fails keeps the table; one that works drops dave */
    write_file(path, "dave:$apr1$xyz$abcdefghijklmnopqrstuv\n");
    assert_int_equal(node_auth_reload(f->a, e), AT_EINVAL);
    assert_non_null(strstr(e, "line 1"));
    assert_int_equal(verify(f, "dave", "dave-pass"), 0);
    write_file(path, "\n");
    assert_int_equal(node_auth_reload(f->a, e), 0);
    assert_int_equal(verify(f, "dave", "dave-pass"), AT_EINVAL);
    fix_free(f);

    /* a bad file stops the start, naming the line */
    struct node_auth *a;
    struct node_auth_config cfg = { .bcrypt_cost = 4, .htpasswd = path };
    uv_loop_t loop;
    uv_loop_init(&loop);
    write_file(path,
               "ok:"
               "$2b$04$abcdefghijklmnopqrstuuQ2Fv9Yw0gL5pG9hQ3rKcJ1pWb0X5xKa"
               "\nbad line\n");
    assert_int_equal(node_auth_new(&a, &loop, &cfg, e), AT_EINVAL);
    assert_non_null(strstr(e, "line 2"));
    assert_non_null(strstr(e, path));
    cfg.htpasswd = "/nonexistent/htpasswd";
    assert_int_equal(node_auth_new(&a, &loop, &cfg, e), AT_EINVAL);
    cfg.htpasswd = NULL;
    cfg.bcrypt_cost = 3;
    assert_int_equal(node_auth_new(&a, &loop, &cfg, e), AT_EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(path);
    rmdir(dir);
}

static void on_hashed(void *data, int status, const char *hash)
{
    struct fix *f = data;
    f->status = status;
    f->calls++;
    if (status == 0)
        snprintf(f->id.name, sizeof(f->id.name), "%.60s", hash);
}

/* New hashes verify; a closing verifier answers what is in flight with
 * AT_ESHUTDOWN and refuses new calls. */
static void test_hash_and_close(void **state)
{
    struct fix *f = fix_new(NULL);
    AT_UNUSED(state);
    assert_int_equal(node_auth_hash(f->a, "fresh-pass", on_hashed, f), 0);
    while (f->calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->status, 0);
    assert_memory_equal(f->id.name, "$2b$04$", 7);
    assert_true(node_auth__bcrypt_check("fresh-pass", f->id.name));
    assert_false(node_auth__bcrypt_check("fresh-pasS", f->id.name));
    assert_int_equal(node_auth_hash(f->a, "", on_hashed, f), AT_EINVAL);

    add(&f->t, "erin", false, "erin-pass");
    struct node_auth_identity id;
    f->calls = 0;
    assert_int_equal(
        node_auth_verify(f->a, "erin", "erin-pass", &id, on_verified, f),
        NODE_AUTH_PENDING);
    assert_int_equal(node_auth_hash(f->a, "other-pass", on_hashed, f), 0);
    node_auth_close(f->a);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->calls, 2);
    assert_int_equal(f->status, AT_ESHUTDOWN);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    at_free(f);
}

int main(void)
{
    at_log_configure(getenv("AUTH_LOG") ? getenv("AUTH_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_robots),
        cmocka_unit_test(test_barrier_and_sharing),
        cmocka_unit_test(test_htpasswd),
        cmocka_unit_test(test_hash_and_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
