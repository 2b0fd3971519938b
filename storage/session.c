/* An upload session struct: its ids, creation, references, the store
 * table's reference, and the small accessors. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <fcntl.h>
#include <unistd.h>

#include "storage/internal.h"

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* see storage.h */
bool storage_upload_id_valid(const char *id, size_t len)
{
    size_t prefix;

    if (id == NULL || len < 32 || len > STORAGE_UPLOAD_ID_MAX)
        return false;
    if (len > 32) {
        prefix = len - 33;
        if (prefix < 1 || prefix > 16 || id[prefix] != '-')
            return false;
        for (size_t i = 0; i < prefix; i++) {
            char c = id[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                return false;
        }
        id += prefix + 1;
    }
    for (size_t i = 0; i < 32; i++) {
        if (!is_hex(id[i]))
            return false;
    }
    return true;
}

/* see internal.h */
bool storage__repo_valid(const char *repo, size_t len)
{
    if (len == 0 || len > STORAGE__REPO_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)repo[i];
        if (c < 0x21 || c == 0x7f)
            return false;
    }
    return true;
}

/* see internal.h */
struct storage_upload *storage__upload_new(struct storage *s,
                                           const char *id,
                                           const char *repo,
                                           size_t repo_len)
{
    struct storage_upload *u = at_calloc(1, sizeof(*u));
    size_t idlen = strlen(id);

    PRE(idlen <= STORAGE_UPLOAD_ID_MAX);
    u->core = s->core;
    memcpy(u->id, id, idlen + 1);
    u->repo = at_strndup(repo, repo_len);
    u->uploads_dir = storage__path_uploads(s->dir);
    u->data_path = storage__path_session(s->dir, id, ".data");
    u->info_path = storage__path_session(s->dir, id, ".info");
    u->created_wall_ms = at_wall_ms();
    u->fd = -1;
    at_list_init(&u->chunks);
    at_list_init(&u->flushes);
    at_list_init(&u->defer_link);
    u->wr_work.data = u;
    u->h_work.data = u;
    u->last_active_ms = storage__now_ms();
    at_sha256_init(&u->sha);
    storage__session_new(u->core);
    return u;
}

static void upload_free(struct storage_upload *u)
{
    struct storage__core *core = u->core;

    PRE(u->refs == 0 && !u->wr_inflight && !u->h_inflight && !u->bs_inflight &&
        !at_list_linked(&u->defer_link) && !u->in_table);
    PRE(at_list_empty(&u->flushes) && u->drain_cb == NULL && u->hw_cb == NULL);
    storage__chunks_drop(u);
    if (u->fd >= 0)
        close(u->fd);
    at_sha256_release(&u->sha);
    free(u->repo);
    free(u->uploads_dir);
    free(u->data_path);
    free(u->info_path);
    free(u->blob_path);
    free(u->blob_dir);
    free(u->blobs_root);
    free(u);
    storage__session_freed(core);
}

/* see storage.h */
void storage_upload_ref(struct storage_upload *u)
{
    AT_ASSERT(u->refs > 0);
    u->refs++;
}

/* see storage.h */
void storage_upload_unref(struct storage_upload *u)
{
    AT_ASSERT(u->refs > 0);
    if (--u->refs == 0)
        upload_free(u);
}

/* see internal.h */
void storage__table_remove(struct storage_upload *u)
{
    if (!u->in_table)
        return;
    u->in_table = false;
    AT_ASSERT(u->core->s != NULL); /* the table dies with storage_close */
    at_map_del(&u->core->s->uploads, u->id, strlen(u->id));
    storage_upload_unref(u); /* the table's reference; caller holds one */
}

/* see internal.h */
int storage__usable(struct storage_upload *u)
{
    if (u->error != 0)
        return u->error;
    if (u->canceled || u->committed)
        return AT_ENOTFOUND;
    if (u->core->closing)
        return AT_ESHUTDOWN;
    return 0;
}

/* see storage.h */
const char *storage_upload_id(const struct storage_upload *u)
{
    return u->id;
}

/* see storage.h */
const char *storage_upload_repo(const struct storage_upload *u)
{
    return u->repo;
}

/* see storage.h */
uint64_t storage_upload_size(const struct storage_upload *u)
{
    return u->size;
}

/* see storage.h */
int storage_upload_open_data(struct storage_upload *u, int *fd)
{
    int f;

    if (u->canceled || u->committed)
        return AT_ENOTFOUND;
    f = open(u->data_path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return errno == ENOENT ? AT_ENOTFOUND : AT_EIO;
    *fd = f;
    return 0;
}

/* see storage.h */
bool storage_upload_try_lock(struct storage_upload *u)
{
    if (u->locked)
        return false;
    u->locked = true;
    return true;
}

/* see storage.h */
void storage_upload_unlock(struct storage_upload *u)
{
    u->locked = false;
}

/* see storage.h */
void storage_upload_no_throttle(struct storage_upload *u)
{
    u->no_throttle = true;
}
