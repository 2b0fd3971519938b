/* Snapshot files of our own. See snapfile.h.
 *
 * Happy path: the child writes the encoding into fsm-<index>.tmp, hashing
 * each buffer as it goes, and exits; the pool fsyncs the file, renames it
 * to its final name and fsyncs the dir; libraft stores the descriptor; a
 * restore maps the file and checks length and hash before the decoder
 * sees a byte.
 *
 * Failure modes: a write, fsync or rename that fails removes the
 * temporary file and says why (the snapshot fails, raft retries later);
 * a file missing, of another length or hash at restore is refused (the
 * restore fails as a corrupt snapshot would); a crash mid-write leaves a
 * temporary file that the next prune removes. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "raft/snapfile.h"

#include "common/common.h"

#define DESC_MAGIC   "ATSF"
#define DESC_VERSION 1u
#define PATH_SIZE    4096

/* ---- descriptor ---- */

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* see snapfile.h */
void meta__snapfile_name(const struct meta_snapfile *d,
                         char out[META_SNAPFILE_NAME_SIZE])
{
    snprintf(out, META_SNAPFILE_NAME_SIZE,
             "fsm-%016" PRIx64 "-%016" PRIx64 ".ats2", d->index, d->hash);
}

/* see snapfile.h: magic, version (4 bytes each), index, len, hash */
void meta__snapfile_desc_encode(const struct meta_snapfile *d, uint8_t *out)
{
    memcpy(out, DESC_MAGIC, 4);
    for (int i = 0; i < 4; i++)
        out[4 + i] = (uint8_t)(DESC_VERSION >> (8 * i));
    put_le64(out + 8, d->index);
    put_le64(out + 16, d->len);
    put_le64(out + 24, d->hash);
}

/* see snapfile.h */
bool meta__snapfile_desc_decode(const void *buf,
                                size_t len,
                                struct meta_snapfile *d)
{
    const uint8_t *p = buf;
    if (len != META_SNAPFILE_DESC_LEN || memcmp(p, DESC_MAGIC, 4) != 0)
        return false;
    uint32_t version = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
                       (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    if (version != DESC_VERSION)
        return false;
    d->index = get_le64(p + 8);
    d->len = get_le64(p + 16);
    d->hash = get_le64(p + 24);
    return d->len > 0;
}

/* ---- hash: four lanes of multiply-rotate over 64-bit words ---- */

#define K1 0x9E3779B185EBCA87ULL
#define K2 0xC2B2AE3D27D4EB4FULL

static inline uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t mix(uint64_t acc, uint64_t w)
{
    return rotl(acc + w * K2, 31) * K1;
}

static inline uint64_t word(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static uint64_t finish(const uint64_t lane[4],
                       uint64_t n,
                       const uint8_t *c,
                       size_t rest)
{
    uint64_t h = n * K1;
    h = (h ^ mix(0, lane[0])) * K1 + K2;
    h = (rotl(h, 7) ^ mix(0, lane[1])) * K1 + K2;
    h = (rotl(h, 12) ^ mix(0, lane[2])) * K1 + K2;
    h = (rotl(h, 18) ^ mix(0, lane[3])) * K1 + K2;
    size_t i = 0;
    for (; i + 8 <= rest; i += 8)
        h = rotl(h ^ mix(0, word(c + i)), 27) * K1 + K2;
    for (; i < rest; i++)
        h = rotl(h ^ ((uint64_t)c[i] * K1), 11) * K2;
    h ^= h >> 33;
    h *= K2;
    h ^= h >> 29;
    h *= K1;
    h ^= h >> 32;
    return h;
}

static void blocks(uint64_t lane[4], const uint8_t *c, size_t n)
{
    uint64_t l0 = lane[0], l1 = lane[1], l2 = lane[2], l3 = lane[3];
    for (size_t i = 0; i + 32 <= n; i += 32) {
        l0 = mix(l0, word(c + i));
        l1 = mix(l1, word(c + i + 8));
        l2 = mix(l2, word(c + i + 16));
        l3 = mix(l3, word(c + i + 24));
    }
    lane[0] = l0;
    lane[1] = l1;
    lane[2] = l2;
    lane[3] = l3;
}

/* see snapfile.h */
void meta__snaphash_init(struct meta_snaphash *h)
{
    memset(h, 0, sizeof(*h));
    h->lane[0] = K1;
    h->lane[1] = K2;
    h->lane[2] = ~K1;
    h->lane[3] = ~K2;
}

/* see snapfile.h */
void meta__snaphash_update(struct meta_snaphash *h, const void *p, size_t n)
{
    const uint8_t *c = p;
    size_t have = (size_t)(h->n % 32);
    h->n += n;
    if (have > 0) {
        size_t take = 32 - have < n ? 32 - have : n;
        memcpy(h->tail + have, c, take);
        c += take;
        n -= take;
        if (have + take < 32)
            return;
        blocks(h->lane, h->tail, 32);
    }
    size_t whole = n - n % 32;
    blocks(h->lane, c, whole);
    memcpy(h->tail, c + whole, n - whole);
}

/* see snapfile.h */
uint64_t meta__snaphash_final(const struct meta_snaphash *h)
{
    return finish(h->lane, h->n, h->tail, (size_t)(h->n % 32));
}

/* see snapfile.h */
uint64_t meta__snapfile_hash(const void *p, size_t n)
{
    uint64_t lane[4] = { K1, K2, ~K1, ~K2 };
    size_t whole = n - n % 32;
    blocks(lane, p, whole);
    return finish(lane, n, (const uint8_t *)p + whole, n - whole);
}

/* ---- the child's write ---- */

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rv = fsync(fd);
    close(fd);
    return rv;
}

static void tmp_path(const char *dir, uint64_t index, char *out, size_t size)
{
    snprintf(out, size, "%s/fsm-%016" PRIx64 ".tmp", dir, index);
}

/* d's file in dir (its name made from d's numbers). */
static void file_path(const char *dir,
                      const struct meta_snapfile *d,
                      char *out,
                      size_t size)
{
    char name[META_SNAPFILE_NAME_SIZE];
    meta__snapfile_name(d, name);
    snprintf(out, size, "%s/%s", dir, name);
}

/* see snapfile.h */
int meta__snapfile_create(const char *dir,
                          struct meta_snapfile *d,
                          int (*write)(int fd, void *data, uint64_t *hash),
                          void *data,
                          char *errmsg)
{
    char tmp[PATH_SIZE];
    struct stat st;

    tmp_path(dir, d->index, tmp, sizeof(tmp));
    int fd = meta__snapfile_tmp_open(dir, d, errmsg);
    if (fd < 0)
        return fd;
    int rv = write(fd, data, &d->hash);
    if (rv == 0 && fstat(fd, &st) != 0)
        rv = AT_EIO;
    if (close(fd) != 0 && rv == 0)
        rv = AT_EIO;
    if (rv != 0) {
        unlink(tmp);
        at_errmsg_printf(errmsg, "snapshot file '%s': %s", tmp,
                         rv == AT_ENOSPC ? "no space left" : "write failed");
        return rv;
    }
    d->len = (uint64_t)st.st_size;
    return 0;
}

/* see snapfile.h */
int meta__snapfile_commit(const char *dir,
                          const struct meta_snapfile *d,
                          char *errmsg)
{
    char tmp[PATH_SIZE], final[PATH_SIZE];
    const char *step = "open";

    tmp_path(dir, d->index, tmp, sizeof(tmp));
    file_path(dir, d, final, sizeof(final));
    int fd = open(tmp, O_RDWR | O_CLOEXEC);
    bool ok = fd >= 0;
    if (ok) {
        step = "fsync";
        ok = fsync(fd) == 0;
        close(fd);
    }
    if (ok) {
        step = "rename";
        ok = rename(tmp, final) == 0;
    }
    if (ok) {
        step = "fsync of the dir";
        ok = fsync_dir(dir) == 0;
    }
    if (!ok) {
        int e = errno;
        unlink(tmp);
        at_errmsg_printf(errmsg, "snapshot file '%s': %s: %s", tmp, step,
                         strerror(e));
        return AT_EIO;
    }
    return 0;
}

/* ---- restore ---- */

/* The file at path mapped read-only once its length and hash are d's
 * (populate: read ahead of use, for a restore; else read once, front to
 * back, for a check). */
static int map_checked(const char *path,
                       const struct meta_snapfile *d,
                       bool populate,
                       bool hash,
                       const void **p,
                       char *errmsg)
{
    struct stat st;

    *p = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        at_errmsg_printf(errmsg, "snapshot file '%s': %s", path, strerror(e));
        return e == ENOENT ? AT_ENOTFOUND : AT_EIO;
    }
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != d->len ||
        d->len > SIZE_MAX) {
        close(fd);
        at_errmsg_printf(errmsg,
                         "snapshot file '%s': %lld bytes, its descriptor "
                         "says %" PRIu64,
                         path, (long long)st.st_size, d->len);
        return AT_ECORRUPT;
    }
    void *m = mmap(NULL, (size_t)d->len, PROT_READ,
                   MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) {
        at_errmsg_printf(errmsg, "snapshot file '%s': mmap: %s", path,
                         strerror(e));
        return AT_EIO;
    }
    if (!populate)
        madvise(m, (size_t)d->len, MADV_SEQUENTIAL);
    if (hash && meta__snapfile_hash(m, (size_t)d->len) != d->hash) {
        munmap(m, (size_t)d->len);
        at_errmsg_printf(errmsg, "snapshot file '%s': hash mismatch", path);
        return AT_ECORRUPT;
    }
    *p = m;
    return 0;
}

/* d's file in dir, mapped for a restore. */
static int map_named(const char *dir,
                     const struct meta_snapfile *d,
                     bool hash,
                     const void **p,
                     char *errmsg)
{
    char path[PATH_SIZE];

    file_path(dir, d, path, sizeof(path));
    return map_checked(path, d, true, hash, p, errmsg);
}

/* see snapfile.h */
int meta__snapfile_map(const char *dir,
                       const struct meta_snapfile *d,
                       const void **p,
                       char *errmsg)
{
    return map_named(dir, d, true, p, errmsg);
}

/* see snapfile.h */
int meta__snapfile_map_unhashed(const char *dir,
                                const struct meta_snapfile *d,
                                const void **p,
                                char *errmsg)
{
    return map_named(dir, d, false, p, errmsg);
}

/* see snapfile.h */
void meta__snapfile_unmap(const void *p, const struct meta_snapfile *d)
{
    if (p != NULL)
        munmap((void *)p, (size_t)d->len);
}

/* ---- a file fetched from a peer, and serving ours ---- */

/* see snapfile.h */
int meta__snapfile_tmp_open(const char *dir,
                            const struct meta_snapfile *d,
                            char *errmsg)
{
    char tmp[PATH_SIZE];

    tmp_path(dir, d->index, tmp, sizeof(tmp));
    int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        at_errmsg_printf(errmsg, "snapshot file '%s': open: %s", tmp,
                         strerror(e));
        return e == ENOSPC ? AT_ENOSPC : AT_EIO;
    }
    return fd;
}

/* see snapfile.h */
void meta__snapfile_tmp_remove(const char *dir, const struct meta_snapfile *d)
{
    char tmp[PATH_SIZE];

    tmp_path(dir, d->index, tmp, sizeof(tmp));
    unlink(tmp);
}

/* see snapfile.h */
int meta__snapfile_adopt(const char *dir,
                         const struct meta_snapfile *d,
                         char *errmsg)
{
    char tmp[PATH_SIZE];
    const void *m;

    tmp_path(dir, d->index, tmp, sizeof(tmp));
    int rv = map_checked(tmp, d, false, true, &m, errmsg);
    if (rv != 0) {
        unlink(tmp);
        return rv;
    }
    munmap((void *)m, (size_t)d->len);
    return meta__snapfile_commit(dir, d, errmsg);
}

/* see snapfile.h */
int meta__snapfile_open(const char *dir,
                        const struct meta_snapfile *d,
                        uint64_t *len)
{
    char path[PATH_SIZE];
    struct stat st;

    file_path(dir, d, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? AT_ENOTFOUND : AT_EIO;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return AT_EIO;
    }
    *len = (uint64_t)st.st_size;
    return fd;
}

/* see snapfile.h */
bool meta__snapfile_exists(const char *dir, const struct meta_snapfile *d)
{
    char path[PATH_SIZE];
    struct stat st;

    file_path(dir, d, path, sizeof(path));
    return stat(path, &st) == 0 && (uint64_t)st.st_size == d->len;
}

/* ---- prune ---- */

struct indexes {
    uint64_t *v;
    size_t n, cap;
    uint64_t max;
};

static void indexes_add(struct indexes *x, uint64_t index)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 8;
        x->v = at_realloc(x->v, x->cap * sizeof(*x->v));
    }
    x->v[x->n++] = index;
    if (index > x->max)
        x->max = index;
}

static bool indexes_has(const struct indexes *x, uint64_t index)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->v[i] == index)
            return true;
    return false;
}

/* Our file's index from its name (a .ats2 or a .tmp), or false. */
static bool our_index(const char *name, uint64_t *index)
{
    char *end;
    if (strncmp(name, "fsm-", 4) != 0)
        return false;
    errno = 0;
    *index = strtoull(name + 4, &end, 16);
    return errno == 0 && end == name + 4 + 16 &&
           (strcmp(end, ".tmp") == 0 ||
            (end[0] == '-' && strlen(end) == 1 + 16 + 5 &&
             strcmp(end + 17, ".ats2") == 0));
}

/* see snapfile.h */
unsigned meta__snapfile_prune(const char *dir)
{
    struct indexes libraft = { 0 };
    struct dirent *e;
    unsigned removed = 0;

    DIR *dp = opendir(dir);
    if (dp == NULL) {
        LOG_WARN("snapshot files in '%s': %s", dir, strerror(errno));
        return 0;
    }
    /* libraft's first, then ours: a file of ours written meanwhile is
     * above the newest of libraft's seen, and stays */
    while ((e = readdir(dp)) != NULL) {
        unsigned long long term, index, ms;
        char tail[8];
        if (sscanf(e->d_name, "snapshot-%llu-%llu-%llu%7s", &term, &index, &ms,
                   tail) == 4 &&
            strcmp(tail, ".meta") == 0)
            indexes_add(&libraft, index);
    }
    rewinddir(dp);
    while ((e = readdir(dp)) != NULL) {
        uint64_t index;
        if (!our_index(e->d_name, &index) || index > libraft.max ||
            (indexes_has(&libraft, index) && strstr(e->d_name, ".tmp") == NULL))
            continue;
        if (unlinkat(dirfd(dp), e->d_name, 0) == 0)
            removed++;
        else
            LOG_WARN("snapshot file '%s/%s': unlink: %s", dir, e->d_name,
                     strerror(errno));
    }
    closedir(dp);
    at_free(libraft.v);
    return removed;
}
