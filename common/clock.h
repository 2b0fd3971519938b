/* Time sources. Never used inside the FSM's apply (it must be deterministic).
 */
#ifndef AT_CLOCK_H
#define AT_CLOCK_H

/* Monotonic milliseconds. */
uint64_t at_now_ms(void);
/* Wall-clock milliseconds since the epoch. */
uint64_t at_wall_ms(void);

#endif /* AT_CLOCK_H */
