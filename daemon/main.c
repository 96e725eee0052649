// SPDX-License-Identifier: MIT
/*
 * ipathd: set up the device, serve until SIGINT/SIGTERM, withdraw it.
 * Everything the daemon owns hangs off one struct ipd_dev so that shutdown
 * can free all of it (the daemon runs clean under LeakSanitizer).
 */
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "engine.h"
#include "ipathd.h"

#define DEFAULT_CONFIG "/etc/ipathd/ipathd.conf"
/* QPN 0 and 1 are the special QPs (IBA 3.5.2); ipathd hands out 0x11 on,
 * which also keeps tshark from decoding data as MADs. */
#define FIRST_QPN 0x11

struct ipd_daemon {
	struct ipd_config cfg;
	struct ipd_dev dev;
	ev_signal sigint_w, sigterm_w;
};

/*
 * libinfinipath (a dependency of libfabric's psm provider, so loaded with
 * the daemon) installs, from a constructor, handlers for SIGSEGV, SIGBUS,
 * SIGILL and SIGABRT that print a backtrace and exit(1): a crashing daemon
 * would leave no core and look like a clean error exit.  Its handlers are
 * put back to the default, which dumps core (mr.c's SIGBUS guard is
 * installed later and chains to the default).  Others (a sanitizer
 * runtime's) stay.
 */
static void drop_infinipath_crash_handlers(void)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT };
	struct sigaction sa;
	Dl_info self, owner;
	size_t i;

	if (!dladdr((void *)drop_infinipath_crash_handlers, &self))
		return;
	for (i = 0; i < ARRAY_SIZE(sigs); i++) {
		if (sigaction(sigs[i], NULL, &sa) < 0)
			continue;
		if (!(sa.sa_flags & SA_SIGINFO) && (sa.sa_handler == SIG_DFL ||
						    sa.sa_handler == SIG_IGN))
			continue;
		if (!dladdr((void *)sa.sa_handler, &owner) ||
		    owner.dli_fbase == self.dli_fbase || !owner.dli_fname ||
		    !strstr(owner.dli_fname, "libinfinipath"))
			continue;
		ipd_dbg("signal %d: dropping the handler of %s", sigs[i],
			owner.dli_fname);
		signal(sigs[i], SIG_DFL);
	}
}

static int load_config(struct ipd_config *cfg, int argc, char **argv)
{
	const char *path = NULL;
	struct ipd_config probe;
	int ret;

	ipd_config_defaults(cfg);
	/* First pass only finds -c and rejects bad flags early; the file is
	 * loaded next and the flags applied over it. */
	probe = *cfg;
	ret = ipd_config_args(&probe, argc, argv, &path);
	if (ret)
		return ret;
	if (!path && access(DEFAULT_CONFIG, F_OK) == 0)
		path = DEFAULT_CONFIG;
	if (path) {
		ret = ipd_config_load(cfg, path);
		if (ret)
			return ret;
	}
	return ipd_config_args(cfg, argc, argv, &path);
}

static const struct {
	size_t off;
	uint32_t base;
	size_t max_off;
} tables[] = {
	{ offsetof(struct ipd_dev, pds), 1, offsetof(struct ipd_config, max_pd) },
	{ offsetof(struct ipd_dev, mrs), 1, offsetof(struct ipd_config, max_mr) },
	{ offsetof(struct ipd_dev, cqs), 1, offsetof(struct ipd_config, max_cq) },
	{ offsetof(struct ipd_dev, srqs), 1, offsetof(struct ipd_config, max_srq) },
	{ offsetof(struct ipd_dev, qps), FIRST_QPN, offsetof(struct ipd_config, max_qp) },
	{ offsetof(struct ipd_dev, ahs), 1, offsetof(struct ipd_config, max_ah) },
	/* one XRCD open per PD is plenty */
	{ offsetof(struct ipd_dev, xrcds), 1, offsetof(struct ipd_config, max_pd) },
};

#define N_TABLES (sizeof(tables) / sizeof(tables[0]))

static struct ipd_table *dev_table(struct ipd_dev *dev, size_t i)
{
	return (struct ipd_table *)(void *)((char *)dev + tables[i].off);
}

static void tables_fini(struct ipd_dev *dev, size_t n)
{
	while (n--)
		ipd_table_fini(dev_table(dev, n));
}

static int tables_init(struct ipd_dev *dev)
{
	size_t i;
	int ret;

	for (i = 0; i < N_TABLES; i++) {
		uint32_t max = *(const unsigned int *)(const void *)
			((const char *)dev->cfg + tables[i].max_off);

		ret = ipd_table_init(dev_table(dev, i), tables[i].base, max);
		if (ret) {
			tables_fini(dev, i);
			return ret;
		}
	}
	return 0;
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	ipd_info("signal %d: shutting down", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

/* nftw() callbacks take no context pointer. */
static uid_t chown_uid;
static gid_t chown_gid;

static int chown_entry(const char *path, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	if (lchown(path, chown_uid, chown_gid) < 0)
		ipd_warn("chown %s: %s", path, strerror(errno));
	return 0;
}

/*
 * After setup nothing needs root (the device node and sockets exist); the
 * sysfs tree is handed to the user so that it can still withdraw it.  The
 * device node and the socket stay behind if the user cannot remove them;
 * the next start replaces both.
 */
static int drop_privileges(const struct ipd_config *cfg)
{
	struct passwd *pw;

	if (!cfg->user[0])
		return 0;
	pw = getpwnam(cfg->user);
	if (!pw) {
		ipd_err("user '%s' not found", cfg->user);
		return -ENOENT;
	}
	chown_uid = pw->pw_uid;
	chown_gid = pw->pw_gid;
	nftw(cfg->sysfs_path, chown_entry, 16, FTW_PHYS);
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		ipd_err("dropping privileges to %s: %s", cfg->user,
			strerror(errno));
		return -errno;
	}
	if (setuid(0) == 0) {
		ipd_err("privileges could be regained after dropping them");
		return -EPERM;
	}
	ipd_info("running as %s (uid %u)", cfg->user, (unsigned)pw->pw_uid);
	return 0;
}

static void signals_start(struct ipd_daemon *d)
{
	struct ev_loop *loop = d->dev.loop;

	signal(SIGPIPE, SIG_IGN);
	/* Installed in main, after a sanitizer runtime's own SIGBUS handler
	 * (which stays the one for faults outside client files). */
	if (ipd_mr_guard_init())
		ipd_warn("no SIGBUS handler: a client truncating a registered "
			 "file will crash the daemon");
	ev_signal_init(&d->sigint_w, signal_cb, SIGINT);
	ev_signal_init(&d->sigterm_w, signal_cb, SIGTERM);
	ev_signal_start(loop, &d->sigint_w);
	ev_signal_start(loop, &d->sigterm_w);
}

static void signals_stop(struct ipd_daemon *d)
{
	ev_signal_stop(d->dev.loop, &d->sigint_w);
	ev_signal_stop(d->dev.loop, &d->sigterm_w);
}

static int dev_init(struct ipd_dev *dev, struct ipd_config *cfg)
{
	dev->cfg = cfg;
	dev->loop = ev_default_loop(EVFLAG_AUTO);
	if (!dev->loop) {
		ipd_err("libev: no event loop");
		return -ENOMEM;
	}
	TAILQ_INIT(&dev->qps_list);
	TAILQ_INIT(&dev->clients);
	return tables_init(dev);
}

static int run(struct ipd_daemon *d)
{
	struct ipd_dev *dev = &d->dev;
	int ret;

	ret = dev_init(dev, &d->cfg);
	if (ret)
		goto err_loop;
	ret = ipd_gids_discover(dev);
	if (ret)
		goto err_tables;
	ret = ipd_engine_init(dev);
	if (ret) {
		ipd_err("transport engine: %s", strerror(-ret));
		goto err_tables;
	}
	/* Without the peer port the daemon still runs (forms show "?"). */
	ipd_peer_init(dev);
	/* The socket first: it refuses to start next to a running daemon,
	 * before we touch the published tree that daemon owns. */
	ret = ipd_ctl_init(dev);
	if (ret)
		goto err_engine;
	ret = ipd_sysfs_publish(dev);
	if (ret)
		goto err_sysfs;
	ret = ipd_loop_init(dev);
	if (ret)
		goto err_sysfs;
	signals_start(d);
	ret = drop_privileges(dev->cfg);
	if (ret)
		goto err_signals;

	ipd_info("ipathd ready: device %s, link %s, socket %s",
		 d->cfg.dev_name, d->cfg.link_type, d->cfg.socket_path);
	ev_run(dev->loop, 0);

err_signals:
	signals_stop(d);
	ipd_loop_fini(dev);
err_sysfs:
	/* Withdraw the device before its clients go, so nobody new opens it. */
	ipd_sysfs_unpublish(dev);
	ipd_ctl_fini(dev);      /* releases every client's objects */
	ipd_mr_guard_fini();
err_engine:
	ipd_peer_fini(dev);
	ipd_engine_fini(dev);
err_tables:
	tables_fini(dev, N_TABLES);
err_loop:
	if (dev->loop)
		ev_loop_destroy(dev->loop);
	return ret;
}

int main(int argc, char **argv)
{
	struct ipd_daemon *d;
	int ret;

	d = calloc(1, sizeof(*d));
	if (!d) {
		perror("ipathd");
		return 1;
	}
	ret = load_config(&d->cfg, argc, argv);
	if (ret) {
		free(d);
		return ret > 0 ? 0 : 2;
	}
	ipd_log_level = d->cfg.log_level;
	drop_infinipath_crash_handlers();
	ret = run(d);
	free(d);
	return ret ? 1 : 0;
}
