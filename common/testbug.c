/* The ATOLL_TEST_BUG switch of test builds (see testbug.h). */
#include "common/compat.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/testbug.h"

#ifdef ATOLL_TEST_BUGS
bool at_test_bug(const char *name)
{
    static const char *bug;
    static bool read;

    if (!read) {
        bug = getenv("ATOLL_TEST_BUG");
        read = true;
        if (bug != NULL && bug[0] != '\0')
            LOG_WARN("test build: deliberate bug '%s' is ON", bug);
    }
    return bug != NULL && strcmp(bug, name) == 0;
}
#else
/* ISO C forbids an empty translation unit. */
typedef int at__testbug_unused;
#endif
