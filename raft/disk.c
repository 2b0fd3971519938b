/* The raft log's disk reserve: see disk.h. */
#include "common/compat.h"

#include <sys/statvfs.h>

#define AT_LOG_COMP "raft"

#include "raft/disk.h"

#include "raft/internal.h"

#define DISK_EVERY_MS 1000

/* see disk.h */
void meta__disk_refresh(struct meta *m)
{
    struct statvfs sv;
    uint64_t now = uv_now(m->loop);

    if (m->raft_reserve == 0 || now < m->disk_next)
        return;
    m->disk_next = now + DISK_EVERY_MS;
    if (statvfs(m->dir, &sv) != 0)
        return; /* keep the last reading */
    m->disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
    bool low = m->disk_free < m->raft_reserve;
    if (low && !m->disk_low)
        LOG_ERROR("raft log disk: %" PRIu64
                  " bytes free in '%s', below "
                  "raft_reserve (%" PRIu64
                  "): writes are refused (507) "
                  "until space returns",
                  m->disk_free, m->dir, m->raft_reserve);
    else if (!low && m->disk_low)
        LOG_INFO("raft log disk: %" PRIu64
                 " bytes free in '%s' again: "
                 "writes are taken",
                 m->disk_free, m->dir);
    m->disk_low = low;
}

/* see disk.h */
bool meta__disk_ok(const struct meta *m)
{
    return !m->disk_low;
}
