// SPDX-License-Identifier: MIT
/*
 * Configuration: defaults, then /etc/ipathd/ipathd.conf (or -c FILE), then
 * command-line flags.  Every setting is one row of opt_table; the INI keys,
 * the long options, the validation and --help all come from that table, so
 * a new option is one line here plus its documentation in conf/ipathd.conf.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ipathd.h"

enum opt_type {
	OPT_NAME,   /* device/node name: [A-Za-z0-9_.-]+ */
	OPT_STR,    /* free text (netdev list, provider, user) */
	OPT_PATH,   /* absolute path */
	OPT_UINT,
	OPT_ULL,
	OPT_BOOL,
	OPT_PCT,    /* percentage 0..100 */
	OPT_MTU,    /* 0 (auto) or an IB MTU 256..4096 */
	OPT_LINK,   /* udp | loopback | fabric */
	OPT_UDP_RX, /* udp | packet */
	OPT_LEVEL,  /* err | warn | info | debug */
	OPT_ADDR,   /* IPv4/IPv6 address(es), appended */
};

struct opt_desc {
	const char *section;
	const char *key;
	const char *longopt;   /* NULL: INI only */
	const char *argname;   /* for --help */
	enum opt_type type;
	size_t off;
	size_t size;           /* strings: buffer size */
	unsigned long long min, max;
};

#define CFG_OFF(f) offsetof(struct ipd_config, f)
#define CFG_STR(f) CFG_OFF(f), sizeof(((struct ipd_config *)0)->f)
#define LIM(k, lo, hi)                                                     \
	{ "limits", #k, NULL, NULL, OPT_UINT, CFG_OFF(k), 0, lo, hi }

/* QPNs are 24 bits and the first 0x11 are never handed out (ipathd.h). */
#define QPN_SPACE (0xffffffu - 0x11u)
/* A UNIX socket path must fit sockaddr_un.sun_path (108 bytes with NUL). */
#define SUN_PATH_MAX 107

static const struct opt_desc opt_table[] = {
	{ "device", "name", "name", "DEV", OPT_NAME, CFG_STR(dev_name) },
	{ "device", "netdev", "netdev", "IF[,IF..]", OPT_STR, CFG_STR(netdevs) },
	{ "device", "address", "address", "IP", OPT_ADDR, CFG_OFF(addrs) },
	{ "device", "mtu", "mtu", "N", OPT_MTU, CFG_OFF(mtu) },
	{ "device", "dma_capable", "dma-capable", "yes|no", OPT_BOOL,
	  CFG_OFF(dma_capable) },
	{ "paths", "socket", "socket", "PATH", OPT_PATH, CFG_STR(socket_path),
	  0, SUN_PATH_MAX },
	{ "paths", "sysfs", "sysfs", "PATH", OPT_PATH, CFG_STR(sysfs_path) },
	{ "paths", "dev_node", "dev-node", "NAME", OPT_NAME, CFG_STR(dev_node) },
	{ "link", "type", "link", "udp|loopback|fabric", OPT_LINK,
	  CFG_STR(link_type) },
	{ "link", "udp_port", "udp-port", "N", OPT_UINT, CFG_OFF(udp_port),
	  0, 1, 65535 },
	{ "link", "peer_port", "peer-port", "N", OPT_UINT, CFG_OFF(peer_port),
	  0, 0, 65535 },
	{ "link", "fabric_provider", NULL, NULL, OPT_STR,
	  CFG_STR(fabric_provider) },
	{ "link", "udp_gso", "udp-gso", "yes|no", OPT_BOOL, CFG_OFF(udp_gso) },
	{ "link", "udp_gro", "udp-gro", "yes|no", OPT_BOOL, CFG_OFF(udp_gro) },
	{ "link", "udp_rx", "udp-rx", "udp|packet", OPT_UDP_RX,
	  CFG_STR(udp_rx) },
	{ "loopback", "loss", "loop-loss", "PCT", OPT_PCT, CFG_OFF(loop_loss) },
	{ "loopback", "dup", "loop-dup", "PCT", OPT_PCT, CFG_OFF(loop_dup) },
	{ "loopback", "reorder", "loop-reorder", "PCT", OPT_PCT,
	  CFG_OFF(loop_reorder) },
	{ "loopback", "direct", "loop-direct", "yes|no", OPT_BOOL,
	  CFG_OFF(loop_direct) },
	LIM(max_qp, 1, QPN_SPACE),
	LIM(max_qp_wr, 1, 1u << 20),
	LIM(max_sge, 1, IPD_MAX_SGE),
	LIM(max_cq, 1, 1u << 20),
	LIM(max_cqe, 1, 1u << 22),
	LIM(max_mr, 1, 1u << 22),
	LIM(max_pd, 1, 1u << 20),
	LIM(max_srq, 1, 1u << 20),
	LIM(max_srq_wr, 1, 1u << 20),
	LIM(max_ah, 1, 1u << 22),
	LIM(max_inline, 0, 4096),
	LIM(max_qp_rd_atom, 1, IPD_MAX_RD_ATOM),
	LIM(max_clients, 1, 65536),
	{ "limits", "max_mr_size", NULL, NULL, OPT_ULL, CFG_OFF(max_mr_size),
	  0, 4096, 1ull << 48 },
	{ "engine", "tail_probe", "tail-probe", "yes|no", OPT_BOOL,
	  CFG_OFF(tail_probe) },
	{ "engine", "selective_retransmit", "selective-retransmit", "yes|no",
	  OPT_BOOL, CFG_OFF(selective_retransmit) },
	{ "engine", "app_tx", "app-tx", "yes|no", OPT_BOOL, CFG_OFF(app_tx) },
	{ "daemon", "log_level", "log-level", "err|warn|info|debug", OPT_LEVEL,
	  CFG_OFF(log_level) },
	{ "daemon", "spin_us", "spin-us", "US", OPT_UINT, CFG_OFF(spin_us),
	  0, 0, 10000000 },
	{ "daemon", "user", "user", "NAME", OPT_STR, CFG_STR(user) },
};

#define N_OPTS ARRAY_SIZE(opt_table)

static const char *const link_types[] = { "udp", "loopback", "fabric" };
static const char *const udp_rx_modes[] = { "udp", "packet" };

static const struct {
	const char *word;
	bool value;
} bool_words[] = {
	{ "yes", true }, { "true", true }, { "on", true }, { "1", true },
	{ "no", false }, { "false", false }, { "off", false }, { "0", false },
};

void ipd_config_defaults(struct ipd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->dev_name, "ipath0");
	cfg->mtu = 0;
	cfg->dma_capable = false;
	strcpy(cfg->socket_path, IPD_DEFAULT_SOCKET);
	strcpy(cfg->sysfs_path, IPD_DEFAULT_SYSFS);
	strcpy(cfg->dev_node, "uverbs0");
	strcpy(cfg->link_type, "udp");
	cfg->udp_port = 4791;	/* IANA RoCEv2 */
	strcpy(cfg->fabric_provider, "tcp;ofi_rxm");
	cfg->udp_gso = true;	/* link_udp.c: ICRCs for the segments' IP IDs */
	cfg->udp_gro = true;
	strcpy(cfg->udp_rx, "udp");
	cfg->max_qp = 1024;
	cfg->max_qp_wr = 16384;
	cfg->max_sge = IPD_MAX_SGE;
	cfg->max_cq = 1024;
	cfg->max_cqe = 65536;
	cfg->max_mr = 4096;
	cfg->max_pd = 1024;
	cfg->max_srq = 256;
	cfg->max_srq_wr = 16384;
	cfg->max_ah = 4096;
	cfg->max_inline = 256;
	cfg->max_qp_rd_atom = 16;
	cfg->max_clients = 256;
	cfg->max_mr_size = 1ull << 40;
	cfg->tail_probe = true;
	cfg->loop_direct = true;
	cfg->selective_retransmit = true;
	cfg->app_tx = true;
	cfg->log_level = IPD_LOG_INFO;
	cfg->spin_us = 50;
}

static int parse_ull(const char *v, unsigned long long *out)
{
	char *end;

	if (!*v || *v == '-')
		return -EINVAL;
	errno = 0;
	*out = strtoull(v, &end, 0);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

static int set_name(const struct opt_desc *d, char *dst, const char *v,
		    char *why, size_t wlen)
{
	const char *p;

	if (!*v) {
		snprintf(why, wlen, "must not be empty");
		return -EINVAL;
	}
	for (p = v; *p; p++) {
		if (!strchr("abcdefghijklmnopqrstuvwxyz"
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *p)) {
			snprintf(why, wlen, "'%s': only letters, digits, '_.-'",
				 v);
			return -EINVAL;
		}
	}
	/* libibverbs' rxe provider claims every device whose name has "rxe". */
	if (strstr(v, "rxe")) {
		snprintf(why, wlen, "'%s': names containing \"rxe\" are taken by the rxe provider",
			 v);
		return -EINVAL;
	}
	if (strlen(v) >= d->size) {
		snprintf(why, wlen, "'%s' is too long", v);
		return -EINVAL;
	}
	strcpy(dst, v);
	return 0;
}

static int set_str(const struct opt_desc *d, char *dst, const char *v,
		   char *why, size_t wlen)
{
	size_t max = d->max ? d->max : d->size - 1;

	if (d->type == OPT_PATH && v[0] != '/') {
		snprintf(why, wlen, "'%s' is not an absolute path", v);
		return -EINVAL;
	}
	if (strlen(v) > max) {
		snprintf(why, wlen, "longer than %zu characters", max);
		return -EINVAL;
	}
	strcpy(dst, v);
	return 0;
}

static int set_addrs(struct ipd_config *cfg, const char *v, char *why,
		     size_t wlen)
{
	char buf[256], *tok, *save = NULL;
	struct in6_addr a6;

	if (strlen(v) >= sizeof(buf)) {
		snprintf(why, wlen, "address list too long");
		return -EINVAL;
	}
	strcpy(buf, v);
	for (tok = strtok_r(buf, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		if (inet_pton(AF_INET, tok, &a6) != 1 &&
		    inet_pton(AF_INET6, tok, &a6) != 1) {
			snprintf(why, wlen, "'%s' is not an IPv4 or IPv6 address",
				 tok);
			return -EINVAL;
		}
		if (cfg->naddrs >= IPD_MAX_ADDRS) {
			snprintf(why, wlen, "at most %d addresses", IPD_MAX_ADDRS);
			return -EINVAL;
		}
		snprintf(cfg->addrs[cfg->naddrs++], sizeof(cfg->addrs[0]), "%s",
			 tok);
	}
	return 0;
}

/* v must be one of words[n]; the word is copied to dst. */
static int set_word(char *dst, const char *v, const char *const *words,
		    size_t n, char *why, size_t wlen)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(v, words[i])) {
			strcpy(dst, words[i]);
			return 0;
		}
	snprintf(why, wlen, "'%s' is not one of", v);
	for (i = 0; i < n; i++)
		snprintf(why + strlen(why), wlen - strlen(why), "%s %s",
			 i ? "," : "", words[i]);
	return -EINVAL;
}

static int set_number(const struct opt_desc *d, void *dst, const char *v,
		      char *why, size_t wlen)
{
	unsigned long long n;

	if (parse_ull(v, &n)) {
		snprintf(why, wlen, "'%s' is not a number", v);
		return -EINVAL;
	}
	if (d->type == OPT_MTU) {
		/* IBA 9.6: path MTU 256, 512, 1024, 2048 or 4096; 0 = auto. */
		if (n && (n < 256 || n > 4096 || (n & (n - 1)))) {
			snprintf(why, wlen, "%llu: use 0 (auto) or 256, 512, 1024, 2048, 4096",
				 n);
			return -EINVAL;
		}
		*(unsigned int *)dst = (unsigned int)n;
		return 0;
	}
	if (n < d->min || n > d->max) {
		snprintf(why, wlen, "%llu is outside %llu..%llu", n, d->min,
			 d->max);
		return -EINVAL;
	}
	if (d->type == OPT_ULL)
		*(unsigned long long *)dst = n;
	else
		*(unsigned int *)dst = (unsigned int)n;
	return 0;
}

static int set_pct(double *dst, const char *v, char *why, size_t wlen)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || !*v || *end || !(d >= 0.0 && d <= 100.0)) {
		snprintf(why, wlen, "'%s' is not a percentage 0..100", v);
		return -EINVAL;
	}
	*dst = d;
	return 0;
}

static int set_bool(bool *dst, const char *v, char *why, size_t wlen)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bool_words); i++) {
		if (!strcasecmp(v, bool_words[i].word)) {
			*dst = bool_words[i].value;
			return 0;
		}
	}
	snprintf(why, wlen, "'%s' is not yes or no", v);
	return -EINVAL;
}

/* Apply one value; on error fill why and return -EINVAL. */
static int opt_set(struct ipd_config *cfg, const struct opt_desc *d,
		   const char *v, char *why, size_t wlen)
{
	void *dst = (char *)cfg + d->off;
	int i;

	switch (d->type) {
	case OPT_NAME:
		return set_name(d, dst, v, why, wlen);
	case OPT_STR:
	case OPT_PATH:
		return set_str(d, dst, v, why, wlen);
	case OPT_UINT:
	case OPT_ULL:
	case OPT_MTU:
		return set_number(d, dst, v, why, wlen);
	case OPT_BOOL:
		return set_bool(dst, v, why, wlen);
	case OPT_PCT:
		return set_pct(dst, v, why, wlen);
	case OPT_LINK:
		return set_word(dst, v, link_types, ARRAY_SIZE(link_types),
				why, wlen);
	case OPT_UDP_RX:
		return set_word(dst, v, udp_rx_modes,
				ARRAY_SIZE(udp_rx_modes), why, wlen);
	case OPT_LEVEL:
		i = ipd_log_parse_level(v);
		if (i < 0) {
			snprintf(why, wlen, "'%s' is not one of err, warn, info, debug",
				 v);
			return -EINVAL;
		}
		*(int *)dst = i;
		return 0;
	case OPT_ADDR:
		return set_addrs(cfg, v, why, wlen);
	}
	return -EINVAL;
}

/* ---- INI file ------------------------------------------------------ */

struct ini_ctx {
	struct ipd_config *cfg;
	const char *path;
	FILE *f;
	int line;      /* line the reader returned last */
	int errors;
};

/* ini_parse_stream reader that counts lines, so messages name file:line. */
static char *cfg_ini_reader(char *str, int num, void *stream)
{
	struct ini_ctx *ctx = stream;
	char *r = fgets(str, num, ctx->f);

	if (r)
		ctx->line++;
	return r;
}

static int cfg_ini_handler(void *user, const char *section, const char *name,
		       const char *value)
{
	struct ini_ctx *ctx = user;
	char why[192] = "";
	size_t i;

	for (i = 0; i < N_OPTS; i++) {
		if (strcmp(opt_table[i].section, section) ||
		    strcmp(opt_table[i].key, name))
			continue;
		if (opt_set(ctx->cfg, &opt_table[i], value, why, sizeof(why))) {
			ipd_err("%s:%d: [%s] %s: %s", ctx->path, ctx->line,
				section, name, why);
			ctx->errors++;
		}
		return 1;
	}
	ipd_err("%s:%d: unknown key '%s' in section [%s]", ctx->path,
		ctx->line, name, section);
	ctx->errors++;
	return 1;
}

int ipd_config_load(struct ipd_config *cfg, const char *path)
{
	struct ini_ctx ctx = { .cfg = cfg, .path = path };
	int ret;

	ctx.f = fopen(path, "re");
	if (!ctx.f) {
		ret = -errno;
		ipd_err("%s: %s", path, strerror(errno));
		return ret;
	}
	ret = ini_parse_stream(cfg_ini_reader, &ctx, cfg_ini_handler, &ctx);
	fclose(ctx.f);
	if (ret > 0) {
		/* Syntax error (no '=' or unterminated section). */
		ipd_err("%s:%d: syntax error", path, ret);
		return -EINVAL;
	}
	if (ret < 0) {
		ipd_err("%s: read error", path);
		return -EIO;
	}
	return ctx.errors ? -EINVAL : 0;
}

/* ---- command line -------------------------------------------------- */

#define OPT_VAL_BASE 256

static void usage(FILE *out, const char *prog)
{
	size_t i;

	fprintf(out, "usage: %s [-c FILE] [options]\n\n"
		     "  -c, --config FILE   configuration file (default %s when it exists)\n",
		prog, "/etc/ipathd/ipathd.conf");
	for (i = 0; i < N_OPTS; i++) {
		const struct opt_desc *d = &opt_table[i];
		char lhs[64];

		if (!d->longopt)
			continue;
		snprintf(lhs, sizeof(lhs), "--%s %s", d->longopt, d->argname);
		fprintf(out, "      %-34s [%s] %s\n", lhs, d->section, d->key);
	}
	fprintf(out, "  -h, --help            this text\n\n"
		     "Every option has an INI equivalent; see ipathd.conf(5) / conf/ipathd.conf.\n");
}

int ipd_config_args(struct ipd_config *cfg, int argc, char **argv,
		    const char **config_path)
{
	struct option longopts[N_OPTS + 3];
	char why[192];
	size_t i, n = 0;
	int c;

	for (i = 0; i < N_OPTS; i++) {
		if (!opt_table[i].longopt)
			continue;
		longopts[n++] = (struct option){ opt_table[i].longopt,
						 required_argument, NULL,
						 OPT_VAL_BASE + (int)i };
	}
	longopts[n++] = (struct option){ "config", required_argument, NULL, 'c' };
	longopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[n] = (struct option){ 0 };

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		const struct opt_desc *d;

		switch (c) {
		case 'c':
			*config_path = optarg;
			continue;
		case 'h':
			usage(stdout, argv[0]);
			return 1;
		case '?':
			usage(stderr, argv[0]);
			return -EINVAL;
		}
		d = &opt_table[c - OPT_VAL_BASE];
		why[0] = '\0';
		if (opt_set(cfg, d, optarg, why, sizeof(why))) {
			ipd_err("--%s: %s", d->longopt, why);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		ipd_err("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}
