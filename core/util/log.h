/* log: one-line, leveled logging to stderr.
 *
 * Lines look like "2026-11-21T08:49:25.123Z INFO  cairn: ready ...".
 * log_set_level() picks the lowest level printed (default LOG_INFO).
 * Safe to call from helper threads: each line is one write(2).
 */
#ifndef CAIRN_CORE_UTIL_LOG_H
#define CAIRN_CORE_UTIL_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level lvl);
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
