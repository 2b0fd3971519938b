/* The store's table of upload sessions: create and find them, rediscover
 * them at open (uploads/<id>.data and <id>.info after a restart), purge the
 * idle ones. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/internal.h"

/* see storage.h */
int storage_upload_create(struct storage *s,
                          const char *repo,
                          struct storage_upload **out)
{
    struct storage_upload *u;
    uint8_t rnd[16];
    char id[STORAGE_UPLOAD_ID_MAX + 1];
    size_t repo_len;
    size_t off = 0;

    if (s->closing) {
        at_errmsg_printf(s->errmsg, "store is closing");
        return AT_ESHUTDOWN;
    }
    repo_len = strnlen(repo, STORAGE__REPO_MAX + 1);
    if (!storage__repo_valid(repo, repo_len)) {
        at_errmsg_printf(s->errmsg, "upload: invalid repository name");
        return AT_EINVAL;
    }
    if (!storage_space_ok(s)) {
        at_errmsg_printf(
            s->errmsg, "upload: free space %" PRIu64 " below reserve %" PRIu64,
            s->free_bytes, s->reserve_bytes);
        return AT_ENOSPC;
    }
    while (off < sizeof(rnd)) {
        ssize_t k = getrandom(rnd + off, sizeof(rnd) - off, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            at_errmsg_printf(s->errmsg, "getrandom: %s", strerror(errno));
            return AT_EIO;
        }
        off += (size_t)k;
    }
    off = 0;
    if (s->node_tag != NULL)
        off = (size_t)snprintf(id, sizeof(id), "%s-", s->node_tag);
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(id + off + 2 * i, 3, "%02x", rnd[i]);
    AT_ASSERT(storage_upload_id_valid(id, strlen(id)));

    /* No file yet: the first work item creates the data file, the first sync
     * flush the info file. */
    u = storage__upload_new(s, id, repo, repo_len);
    u->refs = 2; /* table + caller */
    u->in_table = true;
    AT_ASSERT(at_map_put(&s->uploads, u->id, strlen(u->id), u) == NULL);
    *out = u;
    return 0;
}

/* see storage.h */
int storage_upload_find(struct storage *s,
                        const char *id,
                        struct storage_upload **out)
{
    size_t len;
    struct storage_upload *u;

    if (s->closing || id == NULL)
        return AT_ENOTFOUND;
    len = strnlen(id, STORAGE_UPLOAD_ID_MAX + 1);
    if (!storage_upload_id_valid(id, len))
        return AT_ENOTFOUND;
    u = at_map_get(&s->uploads, id, len);
    if (u == NULL)
        return AT_ENOTFOUND;
    storage_upload_ref(u);
    *out = u;
    return 0;
}

/* see storage.h */
void storage_upload_purge(struct storage *s)
{
    int64_t now = storage__now_ms();
    void *v;

    if (s->closing || s->upload_ttl_ms == 0)
        return;
    for (size_t i = 0; at_map_next(&s->uploads, &i, NULL, &v);) {
        struct storage_upload *u = v;
        if (u->locked || u->wr_inflight || u->h_inflight || u->bs_inflight ||
            !at_list_empty(&u->flushes) || u->drain_cb != NULL ||
            u->hw_cb != NULL || u->commit_state != STORAGE__COMMIT_NONE)
            continue;
        if (now - u->last_active_ms <= (int64_t)s->upload_ttl_ms)
            continue;
        LOG_INFO("purging upload '%s' of '%s', idle %" PRId64 " ms", u->id,
                 u->repo, now - u->last_active_ms);
        storage_upload_cancel(u); /* deletes the current entry: allowed */
    }
}

/* see internal.h */
void storage__purge_timer_cb(uv_timer_t *t)
{
    struct storage__core *c = t->data;

    if (c->s != NULL)
        storage_upload_purge(c->s);
}

/* Read and check uploads/<id>.info: "<repo>\n<wall ms>\n". */
static int read_info(const char *path,
                     char **repo,
                     size_t *repo_len,
                     uint64_t *when,
                     struct stat *st)
{
    char buf[STORAGE__INFO_MAX + 1];
    size_t len = 0;
    char *nl;
    char *end;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        return AT_ECORRUPT;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return AT_ECORRUPT;
    }
    while (len < sizeof(buf)) {
        ssize_t k = read(fd, buf + len, sizeof(buf) - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    if (len == 0 || len > STORAGE__INFO_MAX)
        return AT_ECORRUPT;
    nl = memchr(buf, '\n', len);
    if (nl == NULL || !storage__repo_valid(buf, (size_t)(nl - buf)))
        return AT_ECORRUPT;
    end = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - buf));
    if (end == NULL || end != buf + len - 1 ||
        at_parse_u64(nl + 1, (size_t)(end - nl - 1), when) != 0)
        return AT_ECORRUPT;
    *repo_len = (size_t)(nl - buf);
    *repo = at_strndup(buf, *repo_len);
    return 0;
}

/* Remove a file or a directory tree; logs failures. */
static void remove_any(const char *path)
{
    int rv = 0;

    if (unlink(path) != 0 && errno != ENOENT) {
        if (errno == EISDIR || errno == EPERM)
            rv = storage__rm_tree(path);
        else
            rv = -errno;
    }
    if (rv != 0)
        LOG_WARN("remove '%s': %s", path, strerror(-rv));
}

static int64_t mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/* Resume one session: <id>.info (valid) plus <id>.data when has_data. */
static void load_one(struct storage *s, const char *id, bool has_data)
{
    struct storage_upload *u;
    struct stat ist;
    struct stat dst;
    char *info = storage__path_session(s->dir, id, ".info");
    char *data = storage__path_session(s->dir, id, ".data");
    char *repo = NULL;
    size_t repo_len = 0;
    uint64_t when = 0;
    int64_t age;
    int fd = -1;
    int rv;

    rv = read_info(info, &repo, &repo_len, &when, &ist);
    if (rv == 0 && has_data) {
        fd = open(data, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &dst) != 0 || !S_ISREG(dst.st_mode))
            rv = AT_ECORRUPT;
    }
    if (rv != 0) {
        LOG_WARN("removing upload '%s': corrupt info or data file", id);
        if (fd >= 0)
            close(fd);
        remove_any(info);
        remove_any(data);
        goto out;
    }
    u = storage__upload_new(s, id, repo, repo_len);
    u->created_wall_ms = when;
    u->fd = fd;
    u->info_exists = true; /* maybe not fsynced: the next sync does it */
    if (has_data) {
        u->wr_off = (uint64_t)dst.st_size;
        u->written = u->wr_off;
        u->size = u->wr_off;
        u->sfr_start = u->wr_off;
        u->sfr_prev = u->wr_off;
        u->sfr_waited = u->wr_off;
    }
    /* h_off = 0: the hash chain rehashes the file before new chunks */
    age = (int64_t)at_wall_ms() - mtime_ms(has_data ? &dst : &ist);
    u->last_active_ms = storage__now_ms() - AT_MAX(age, 0);
    u->refs = 1; /* the table's */
    u->in_table = true;
    at_map_put(&s->uploads, u->id, strlen(u->id), u);
    LOG_DEBUG("resumed upload '%s' of '%s' at %" PRIu64, u->id, u->repo,
              u->size);
out:
    free(repo);
    free(info);
    free(data);
}

#define FOUND_DATA ((uintptr_t)1)

#define FOUND_INFO ((uintptr_t)2)

/* If name is "<valid id>.data" or "<valid id>.info", return its FOUND_* bit
 * and the id length. */
static uintptr_t session_file(const char *name, size_t len, size_t *idlen)
{
    uintptr_t kind;

    if (len < 5)
        return 0;
    if (strcmp(name + len - 5, ".data") == 0)
        kind = FOUND_DATA;
    else if (strcmp(name + len - 5, ".info") == 0)
        kind = FOUND_INFO;
    else
        return 0;
    if (!storage_upload_id_valid(name, len - 5))
        return 0;
    *idlen = len - 5;
    return kind;
}

/* see internal.h */
int storage__uploads_load(struct storage *s)
{
    char *path = storage__path_uploads(s->dir);
    DIR *d = opendir(path);
    struct at_map found; /* id -> FOUND_* bits (as a pointer value) */
    struct dirent *e;
    const char *id;
    void *v;
    int rv = 0;

    at_map_init(&found);
    if (d == NULL) {
        at_errmsg_printf(s->errmsg, "opendir '%s': %s", path, strerror(errno));
        rv = storage__io_err(errno);
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        size_t idlen = 0;
        uintptr_t kind;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        kind = session_file(e->d_name, len, &idlen);
        if (kind == 0) {
            char *p = at_asprintf("%s/%s", path, e->d_name);
            LOG_WARN("removing '%s': not an upload file", p);
            remove_any(p);
            free(p);
            continue;
        }
        v = at_map_get(&found, e->d_name, idlen);
        at_map_put(&found, e->d_name, idlen, (void *)((uintptr_t)v | kind));
    }
    closedir(d);
    for (size_t i = 0; at_map_next(&found, &i, &id, &v);) {
        uintptr_t kind = (uintptr_t)v;
        if (kind & FOUND_INFO) {
            load_one(s, id, (kind & FOUND_DATA) != 0);
        } else {
            /* Never acknowledged (no sync flush): the client restarts. */
            char *p = storage__path_session(s->dir, id, ".data");
            LOG_INFO("removing '%s': upload never acknowledged", p);
            remove_any(p);
            free(p);
        }
    }
out:
    at_map_release(&found);
    free(path);
    return rv;
}

/* see internal.h */
void storage__uploads_drop(struct storage *s)
{
    void *v;

    for (size_t i = 0; at_map_next(&s->uploads, &i, NULL, &v);) {
        struct storage_upload *u = v;
        u->in_table = false;
        storage_upload_unref(u);
    }
}
