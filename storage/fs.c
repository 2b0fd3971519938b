/* The store on the filesystem: where each thing lives under the store
 * directory (every path storage builds is spelled here), creating that
 * layout, the free-space guard, and the file helpers every storage file
 * uses. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "storage/internal.h"

#define RM_MAX_DEPTH 16

static int rm_contents_fd(int dfd, int depth);

/* see internal.h */
int storage__io_err(int err)
{
    return (err == ENOSPC || err == EDQUOT) ? AT_ENOSPC : AT_EIO;
}

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

/* see storage.h */
bool storage_space_ok(struct storage *s)
{
    uint64_t now = at_now_ms();
    struct statvfs st;

    if (s->closing)
        return false;
    if (s->reserve_bytes == 0)
        return true; /* no reserve: only ENOSPC itself stops a write */
    if (s->free_checked_ms == 0 || now - s->free_checked_ms >= 1000) {
        if (statvfs(s->dir, &st) == 0) {
            s->free_bytes = (uint64_t)st.f_bavail * (uint64_t)st.f_frsize;
            s->appended = 0;
        } else {
            LOG_WARN("statvfs '%s': %s", s->dir, strerror(errno));
        }
        s->free_checked_ms = now != 0 ? now : 1;
    }
    /* between two readings, the bytes uploads took since count too */
    return s->free_bytes >= s->appended &&
           s->free_bytes - s->appended >= s->reserve_bytes;
}

/* see internal.h */
int storage__layout_init(struct storage *s)
{
    static const char *const subdirs[] = { "blobs", "blobs/sha256", "uploads",
                                           "tmp" };
    int rv;

    rv = mkdir_parents(s, s->dir);
    if (rv != 0)
        return rv;
    for (size_t i = 0; i < AT_ARRAY_SIZE(subdirs); i++) {
        char *p = at_asprintf("%s/%s", s->dir, subdirs[i]);
        rv = mkdir_one(s, p);
        free(p);
        if (rv != 0)
            return rv;
    }
    {
        char *tmp = at_asprintf("%s/tmp", s->dir);
        int r = rm_contents(tmp);
        if (r != 0)
            LOG_WARN("empty '%s': %s", tmp, strerror(-r));
        free(tmp);
    }
    return 0;
}

/* see internal.h */
char *storage__path_blob(const char *dir,
                         const struct at_digest *d,
                         char **sub,
                         char **root)
{
    char hex[AT_DIGEST_HEX_LEN + 1];

    at_digest_hex(d, hex);
    if (root != NULL)
        *root = storage__path_blobs(dir);
    if (sub != NULL)
        *sub = at_asprintf("%s/blobs/sha256/%.2s", dir, hex);
    return at_asprintf("%s/blobs/sha256/%.2s/%s", dir, hex, hex);
}

/* see internal.h */
char *storage__path_blobs(const char *dir)
{
    return at_asprintf("%s/blobs/sha256", dir);
}

/* see internal.h */
char *storage__path_uploads(const char *dir)
{
    return at_asprintf("%s/uploads", dir);
}

/* see internal.h */
char *storage__path_session(const char *dir, const char *id, const char *ext)
{
    return at_asprintf("%s/uploads/%s%s", dir, id, ext);
}
