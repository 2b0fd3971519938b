/* The common module's public header: everything below is usable anywhere. */
#ifndef AT_COMMON_H
#define AT_COMMON_H

#include "common/compat.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/check.h"
#include "common/clock.h"
#include "common/digest.h"
#include "common/dmap.h"
#include "common/err.h"
#include "common/list.h"
#include "common/log.h"
#include "common/map.h"
#include "common/parse.h"

#endif /* AT_COMMON_H */
