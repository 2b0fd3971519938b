/* Blob store: open/close, layout, free-space guard and complete-blob access. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "storage/internal.h"

#define RM_MAX_DEPTH 16

/* see internal.h */
int storage__io_err(int err)
{
    return (err == ENOSPC || err == EDQUOT) ? AT_ENOSPC : AT_EIO;
}

static int rm_contents_fd(int dfd, int depth);

/* Remove name inside dfd, recursing into directories. 0 or -errno. */
static int rm_entry(int dfd, const char *name, int depth)
{
    int fd;
    int rv;

    if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -errno;
    if (depth >= RM_MAX_DEPTH)
        return -ELOOP;
    fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    rv = rm_contents_fd(fd, depth + 1); /* closes fd */
    if (rv != 0)
        return rv;
    if (unlinkat(dfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* Remove everything inside the directory dfd; takes ownership of dfd. */
static int rm_contents_fd(int dfd, int depth)
{
    DIR *d = fdopendir(dfd);
    struct dirent *e;
    int rv = 0;

    if (d == NULL) {
        rv = -errno;
        close(dfd);
        return rv;
    }
    while ((e = readdir(d)) != NULL) {
        int r;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        r = rm_entry(dirfd(d), e->d_name, depth);
        if (r != 0 && rv == 0)
            rv = r;
    }
    closedir(d);
    return rv;
}

/* Remove the contents of the directory at path (the directory stays). */
static int rm_contents(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    return rm_contents_fd(fd, 0);
}

/* see internal.h */
int storage__rm_tree(const char *path)
{
    int rv = rm_contents(path);
    if (rv == -ENOENT)
        return 0;
    if (rv != 0)
        return rv;
    if (rmdir(path) != 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* see internal.h */
int storage__fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rv = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) != 0)
        rv = -errno;
    close(fd);
    return rv;
}

/* mkdir that accepts an existing directory. */
static int mkdir_one(struct storage *s, const char *path)
{
    struct stat st;

    if (mkdir(path, 0755) == 0)
        return 0;
    if (errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (errno == EEXIST)
        errno = ENOTDIR;
    at_errmsg_printf(s->errmsg, "mkdir '%s': %s", path, strerror(errno));
    return storage__io_err(errno);
}

/* mkdir -p for the store root. */
static int mkdir_parents(struct storage *s, const char *dir)
{
    char *p = at_strdup(dir);
    int rv = 0;

    for (char *c = p + 1; *c != '\0'; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        rv = mkdir_one(s, p);
        *c = '/';
        if (rv != 0)
            goto out;
    }
    rv = mkdir_one(s, p);
out:
    free(p);
    return rv;
}

static bool tag_valid(const char *tag)
{
    size_t n = strnlen(tag, 17);

    if (n < 1 || n > 16)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = tag[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

static void core_maybe_free(struct storage__core *c)
{
    if (c->closing && c->sessions == 0 && c->handles_open == 0) {
        storage__chunk_cache_drop(c);
        free(c);
    }
}

static void on_handle_close(uv_handle_t *h)
{
    struct storage__core *c = h->data;

    AT_ASSERT(c->handles_open > 0);
    c->handles_open--;
    core_maybe_free(c);
}

static void close_defer_timer(struct storage__core *c)
{
    if (c->defer_closing || c->handles_open == 0)
        return;
    c->defer_closing = true;
    uv_close((uv_handle_t *)&c->defer_timer, on_handle_close);
}

/* see internal.h */
void storage__session_new(struct storage__core *c)
{
    PRE(!c->closing);
    c->sessions++;
}

/* see internal.h */
void storage__session_freed(struct storage__core *c)
{
    AT_ASSERT(c->sessions > 0);
    c->sessions--;
    if (c->closing && c->sessions == 0)
        close_defer_timer(c);
    core_maybe_free(c);
}

/* see storage.h */
int storage_open(struct storage *s,
                 uv_loop_t *loop,
                 const struct storage_config *cfg)
{
    static const char *const subdirs[] = { "blobs", "blobs/sha256", "uploads",
                                           "tmp" };
    uint64_t interval;
    int rv;

    PRE(cfg != NULL && cfg->dir != NULL);
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->core = at_calloc(1, sizeof(*s->core));
    s->core->s = s;
    s->core->loop = loop;
    at_list_init(&s->core->defer);
    at_list_init(&s->core->chunk_cache);
    at_map_init(&s->uploads);
    s->free_bytes = UINT64_MAX;
    if (cfg->dir[0] == '\0') {
        at_errmsg_printf(s->errmsg, "store dir is empty");
        free(s->core);
        s->core = NULL;
        return AT_EINVAL;
    }
    if (cfg->node_tag != NULL && cfg->node_tag[0] != '\0') {
        if (!tag_valid(cfg->node_tag)) {
            at_errmsg_printf(s->errmsg, "node tag '%.32s': want [a-z0-9]{1,16}",
                             cfg->node_tag);
            free(s->core);
            s->core = NULL;
            return AT_EINVAL;
        }
        s->node_tag = at_strdup(cfg->node_tag);
    }
    s->dir = at_strdup(cfg->dir);
    s->reserve_bytes = cfg->reserve_bytes;
    s->upload_ttl_ms = cfg->upload_ttl_ms;
    s->write_high_water = cfg->write_high_water != 0
                              ? cfg->write_high_water
                              : STORAGE__HIGH_WATER_DEFAULT;
    s->core->write_high_water = s->write_high_water;

    rv = mkdir_parents(s, s->dir);
    if (rv != 0)
        goto err;
    for (size_t i = 0; i < AT_ARRAY_SIZE(subdirs); i++) {
        char *p = at_asprintf("%s/%s", s->dir, subdirs[i]);
        rv = mkdir_one(s, p);
        free(p);
        if (rv != 0)
            goto err;
    }
    {
        char *tmp = at_asprintf("%s/tmp", s->dir);
        int r = rm_contents(tmp);
        if (r != 0)
            LOG_WARN("empty '%s': %s", tmp, strerror(-r));
        free(tmp);
    }
    rv = storage__uploads_load(s);
    if (rv != 0)
        goto err_after_load;

    uv_timer_init(loop, &s->core->purge_timer);
    uv_timer_init(loop, &s->core->defer_timer);
    s->core->purge_timer.data = s->core;
    s->core->defer_timer.data = s->core;
    s->core->handles_open = 2;
    if (s->upload_ttl_ms > 0) {
        interval = AT_MAX(s->upload_ttl_ms / 2, 10);
        interval = AT_MIN(interval, STORAGE__PURGE_MAX_MS);
        uv_timer_start(&s->core->purge_timer, storage__purge_timer_cb, interval,
                       interval);
        uv_unref((uv_handle_t *)&s->core->purge_timer);
        storage_upload_purge(s);
    }
    return 0;

err_after_load:
    storage__uploads_drop(s);
err:
    at_map_release(&s->uploads);
    free(s->dir);
    free(s->node_tag);
    s->dir = NULL;
    s->node_tag = NULL;
    AT_ASSERT(s->core->sessions == 0);
    free(s->core);
    s->core = NULL;
    return rv;
}

/* see storage.h */
void storage_close(struct storage *s)
{
    struct storage__core *c = s->core;
    struct storage_upload *u;
    void *v;

    if (s->closing)
        return;
    s->closing = true;
    if (c == NULL)
        return; /* storage_open() failed: nothing to close */
    s->core = NULL;
    c->closing = true;
    c->s = NULL;
    uv_close((uv_handle_t *)&c->purge_timer, on_handle_close);
    for (size_t i = 0; at_map_next(&s->uploads, &i, NULL, &v);) {
        u = v;
        u->in_table = false;
        storage_upload_unref(u);
    }
    at_map_release(&s->uploads);
    free(s->dir);
    free(s->node_tag);
    s->dir = NULL;
    s->node_tag = NULL;
    if (c->sessions == 0)
        close_defer_timer(c);
}

/* see storage.h */
bool storage_closed(const struct storage *s)
{
    return s->closing;
}

/* see storage.h */
const char *storage_errmsg(const struct storage *s)
{
    return s->errmsg;
}

/* see storage.h */
bool storage_space_ok(struct storage *s)
{
    uint64_t now = at_now_ms();
    struct statvfs st;

    if (s->closing)
        return false;
    if (s->free_checked_ms == 0 || now - s->free_checked_ms >= 1000) {
        if (statvfs(s->dir, &st) == 0) {
            s->free_bytes = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
        } else {
            LOG_WARN("statvfs '%s': %s", s->dir, strerror(errno));
        }
        s->free_checked_ms = now != 0 ? now : 1;
    }
    return s->free_bytes >= s->reserve_bytes;
}

/* Path of a blob; caller frees. */
static char *blob_path(const struct storage *s, const struct at_digest *d)
{
    char hex[AT_DIGEST_HEX_LEN + 1];

    at_digest_hex(d, hex);
    return at_asprintf("%s/blobs/sha256/%.2s/%s", s->dir, hex, hex);
}

/* see storage.h */
int storage_blob_stat(struct storage *s,
                      const struct at_digest *d,
                      uint64_t *size)
{
    struct stat st;
    char *path;
    int rv = 0;

    if (s->closing)
        return AT_ESHUTDOWN;
    path = blob_path(s, d);
    if (stat(path, &st) != 0) {
        rv = errno == ENOENT ? AT_ENOTFOUND : AT_EIO;
        if (rv == AT_EIO)
            at_errmsg_printf(s->errmsg, "stat '%s': %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rv = AT_ENOTFOUND;
    } else {
        *size = (uint64_t)st.st_size;
    }
    free(path);
    return rv;
}

/* see storage.h */
int storage_blob_open(struct storage *s,
                      const struct at_digest *d,
                      int *fd,
                      uint64_t *size)
{
    struct stat st;
    char *path;
    int rv = 0;
    int f;

    if (s->closing)
        return AT_ESHUTDOWN;
    path = blob_path(s, d);
    f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f < 0) {
        rv = errno == ENOENT ? AT_ENOTFOUND : AT_EIO;
        if (rv == AT_EIO)
            at_errmsg_printf(s->errmsg, "open '%s': %s", path, strerror(errno));
        goto out;
    }
    if (fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {
        at_errmsg_printf(s->errmsg, "fstat '%s': not a regular file", path);
        close(f);
        rv = AT_EIO;
        goto out;
    }
    *fd = f;
    *size = (uint64_t)st.st_size;
out:
    free(path);
    return rv;
}

/* see storage.h */
char *storage_blob_path(const struct storage *s, const struct at_digest *d)
{
    return blob_path(s, d);
}

/* see storage.h */
int storage_blob_remove(struct storage *s, const struct at_digest *d)
{
    char *path;
    int rv = 0;

    if (s->closing)
        return AT_ESHUTDOWN;
    path = blob_path(s, d);
    if (unlink(path) != 0) {
        rv = errno == ENOENT ? AT_ENOTFOUND : AT_EIO;
        if (rv == AT_EIO)
            at_errmsg_printf(s->errmsg, "unlink '%s': %s", path,
                             strerror(errno));
    }
    free(path);
    return rv;
}
