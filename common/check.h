/* Assertions that stay on in release builds: for bugs in our code only. */
#ifndef AT_CHECK_H
#define AT_CHECK_H

AT_NORETURN void at_assert_fail(const char *expr,
                                const char *file,
                                int line,
                                const char *func);

/* Never assert what a client, a peer or the disk can cause. */
#define AT_ASSERT(x)                                          \
    do {                                                      \
        if (__builtin_expect(!(x), 0))                        \
            at_assert_fail(#x, __FILE__, __LINE__, __func__); \
    } while (0)

#define PRE(x)  AT_ASSERT(x)
#define POST(x) AT_ASSERT(x)

#endif /* AT_CHECK_H */
