/* SPDX-License-Identifier: MIT */
#ifndef IPATHD_LOG_H
#define IPATHD_LOG_H

enum { IPD_LOG_ERR = 0, IPD_LOG_WARN, IPD_LOG_INFO, IPD_LOG_DEBUG };

extern int ipd_log_level;

void ipd_log(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "err", "warn", "info", "debug" -> level, or -1. */
int ipd_log_parse_level(const char *name);

#define ipd_err(...) ipd_log(IPD_LOG_ERR, __VA_ARGS__)
#define ipd_warn(...) ipd_log(IPD_LOG_WARN, __VA_ARGS__)
#define ipd_info(...) ipd_log(IPD_LOG_INFO, __VA_ARGS__)
#define ipd_dbg(...)                                                       \
	do {                                                               \
		if (ipd_log_level >= IPD_LOG_DEBUG)                        \
			ipd_log(IPD_LOG_DEBUG, __VA_ARGS__);               \
	} while (0)

#endif
