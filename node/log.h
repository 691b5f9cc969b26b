/*
 * log.h - musubid's log: one line per event on stderr, with a UTC time
 * and a level, so journald and people can both read it.
 */
#ifndef MU_LOG_H
#define MU_LOG_H

enum log_level { LOG_ERR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Messages above this level are dropped (default LOG_INFO). */
void log_set_level(enum log_level l);
/* Parse "error", "warn", "info", "debug"; -1 if unknown. */
int log_parse_level(const char *s);
void log_msg(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
