// SPDX-License-Identifier: MIT
/*
 * Busy-poll and sleep (docs/design.md "Rings and doorbells").
 *
 * While there is work, an ev_idle watcher calls ipd_engine_poll() on every
 * loop iteration (libev then polls its fds without blocking).  After
 * cfg->spin_us without progress we go to sleep with the Dekker handshake of
 * include/ipathd/ring.h: raise daemon_sleeping in every client page, fence,
 * poll once more (a client may have published just before seeing the flag),
 * and only if that found nothing stop the idle watcher so libev blocks.
 * Any wake-up (doorbell, packet, timer, control request) runs the ev_check
 * watcher, which lowers the flags and resumes polling.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "engine.h"
#include "ipathd.h"

#define container_of(ptr, type, member)                                     \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct ipd_poller {
	struct ipd_dev *dev;
	ev_idle idle_w;
	ev_check check_w;
	bool sleeping;
	uint64_t last_work_ns;   /* CLOCK_MONOTONIC of the last progress */
	uint64_t spin_ns;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_sleeping(struct ipd_dev *dev, uint32_t v)
{
	struct ipd_client *c;

	TAILQ_FOREACH(c, &dev->clients, link)
		if (c->page)
			atomic_store_explicit(&c->page->daemon_sleeping, v,
					      memory_order_relaxed);
}

static void poller_sleep(struct ipd_poller *p)
{
	struct ipd_dev *dev = p->dev;

	set_sleeping(dev, 1);
	/* Pairs with the client's fence between publishing prod and reading
	 * daemon_sleeping (ipd_need_doorbell). */
	atomic_thread_fence(memory_order_seq_cst);
	if (ipd_engine_poll(dev)) {
		set_sleeping(dev, 0);
		p->last_work_ns = now_ns();
		return;
	}
	ev_idle_stop(dev->loop, &p->idle_w);
	p->sleeping = true;
	dev->spinning = false;
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct ipd_poller *p = container_of(w, struct ipd_poller, idle_w);
	uint64_t now;

	if (ipd_engine_poll(p->dev)) {
		p->last_work_ns = now_ns();
		return;
	}
	now = now_ns();
	if (now - p->last_work_ns >= p->spin_ns) {
		poller_sleep(p);
		return;
	}
	/* Clients busy-poll their CQs too: on a machine with fewer CPUs than
	 * spinners, hand the CPU over instead of burning our time slice. */
	sched_yield();
}

static void check_cb(struct ev_loop *loop, ev_check *w, int revents)
{
	struct ipd_poller *p = container_of(w, struct ipd_poller, check_w);

	if (!p->sleeping)
		return;
	set_sleeping(p->dev, 0);
	p->sleeping = false;
	p->dev->spinning = true;
	p->last_work_ns = now_ns();
	ev_idle_start(loop, &p->idle_w);
}

int ipd_loop_init(struct ipd_dev *dev)
{
	struct ipd_poller *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->dev = dev;
	p->spin_ns = (uint64_t)dev->cfg->spin_us * 1000u;
	p->last_work_ns = now_ns();
	ev_idle_init(&p->idle_w, idle_cb);
	ev_check_init(&p->check_w, check_cb);
	ev_idle_start(dev->loop, &p->idle_w);
	ev_check_start(dev->loop, &p->check_w);
	/* The check watcher alone must not keep ev_run() alive. */
	ev_unref(dev->loop);
	dev->spinning = true;
	dev->poller = p;
	return 0;
}

void ipd_loop_fini(struct ipd_dev *dev)
{
	struct ipd_poller *p = dev->poller;

	if (!p)
		return;
	ev_ref(dev->loop);
	ev_check_stop(dev->loop, &p->check_w);
	ev_idle_stop(dev->loop, &p->idle_w);
	set_sleeping(dev, 0);
	free(p);
	dev->poller = NULL;
	dev->spinning = false;
}
