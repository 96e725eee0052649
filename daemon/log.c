// SPDX-License-Identifier: MIT
/*
 * Logging: one line per message on stderr, "time level: text".  Under
 * systemd stderr goes to the journal, which adds its own timestamp; the
 * daemon's own one is still useful when run by hand or by tests.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

int ipd_log_level = IPD_LOG_INFO;

static const char *const level_names[] = {
	[IPD_LOG_ERR] = "err",
	[IPD_LOG_WARN] = "warn",
	[IPD_LOG_INFO] = "info",
	[IPD_LOG_DEBUG] = "debug",
};

int ipd_log_parse_level(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (!strcmp(name, level_names[i]))
			return (int)i;
	return -1;
}

void ipd_log(int level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > ipd_log_level)
		return;
	if (level < IPD_LOG_ERR)
		level = IPD_LOG_ERR;
	if (level > IPD_LOG_DEBUG)
		level = IPD_LOG_DEBUG;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%06ld %s: ",
		     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000,
		     level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per message keeps lines whole when others share stderr. */
	n = (int)strlen(line);
	if (n > 0 && line[n - 1] == '\n')
		line[n - 1] = '\0';
	fprintf(stderr, "%s\n", line);
}
