/* Deliberate bugs for testing the fault-injection suite (jepsen-style/).
 *
 * A binary built with `make BUGS=1` (-DATOLL_TEST_BUGS) honours the
 * environment variable ATOLL_TEST_BUG=<name>, which switches on one known
 * violation of the consistency contract so that the suite can show it
 * catches it:
 *   stale-read  tag reads on followers answer from local state without
 *               asking the leader for a read index
 *   early-ack   a manifest PUT is acknowledged as soon as its command is
 *               proposed, before it is committed and applied
 * Normal builds compile every check to false. */
#ifndef COMMON_TESTBUG_H
#define COMMON_TESTBUG_H

#include <stdbool.h>

#ifdef ATOLL_TEST_BUGS
bool at_test_bug(const char *name);
#else
#define at_test_bug(name) false
#endif

#endif /* COMMON_TESTBUG_H */
