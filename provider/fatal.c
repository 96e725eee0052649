// SPDX-License-Identifier: MIT
/*
 * Daemon failure (docs/design.md "Daemon failure"): when the daemon dies,
 * the provider plays the device that had a fatal error.
 *
 * A monitor thread per context waits for the control socket to hang up
 * (the daemon exited, was killed or dropped us).  Then the context is dead:
 *
 *   - one IBV_EVENT_DEVICE_FATAL goes to ibv_get_async_event (the provider
 *     keeps its own write end of the async pipe for that);
 *   - every QP behaves as in the error state: the work requests the daemon
 *     had not completed, and any posted afterwards, complete with
 *     IBV_WC_WR_FLUSH_ERR.  The provider takes over the daemon's side of
 *     the rings: it consumes the SQ/RQ from where the daemon released them
 *     and writes the flush completions into the CQ ring after the ones the
 *     daemon wrote, so an application sees every real completion first and
 *     then one flush per outstanding work request;
 *   - control verbs fail with EIO, destroy verbs succeed (ctl.c);
 *   - completion channel readers see an event for a CQ with something to
 *     poll, otherwise EOF (channel.c).
 *
 * The rings and the client page are memfds: the mappings outlive the
 * daemon, so nothing faults.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ipathd.h"

/* What libibverbs reads from async_fd (FACTS.md "The provider interface"). */
struct async_rec {
	uint64_t element;
	uint32_t event_type;
	uint32_t reserved;
};

bool ipd_fatal_dead(struct ipd_context *ctx)
{
	return atomic_load_explicit(&ctx->dead, memory_order_acquire);
}

void ipd_fatal_mark(struct ipd_context *ctx)
{
	struct async_rec rec = {.event_type = IBV_EVENT_DEVICE_FATAL};

	/*
	 * The message and the event come before `dead` is published: once
	 * it is, pollers flush, and an application that exits on its first
	 * flushed completion must already have had both.  A second caller
	 * waits for the first to publish (a message and a non-blocking
	 * write).
	 */
	if (atomic_exchange(&ctx->dying, true)) {
		while (!ipd_fatal_dead(ctx))
			sched_yield();
		return;
	}
	fprintf(stderr,
		IPD_PFX "lost the daemon (%s): device fatal, "
			"outstanding work requests are flushed\n",
		ctx->vctx.context.device->name);
	/* Nobody else writes the pipe any more; never block on a full one
	 * (the daemon's copy of the flag is gone with it). */
	if (ctx->async_wr >= 0 &&
	    (fcntl(ctx->async_wr, F_SETFL, O_NONBLOCK) < 0 ||
	     write(ctx->async_wr, &rec, sizeof(rec)) != sizeof(rec))) {
		/* The application never reads async events: nothing to tell. */
	}
	atomic_store_explicit(&ctx->dead, true, memory_order_release);
}

/* ------------------------------------------------------------------ */
/* The monitor thread                                                  */

static void *monitor(void *arg)
{
	struct ipd_context *ctx = arg;
	struct pollfd p[2] = {
		{.fd = ctx->sock, .events = POLLRDHUP},
		{.fd = ctx->mon_stop, .events = POLLIN},
	};

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		if (p[0].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			ipd_fatal_mark(ctx);
			return NULL;
		}
	}
}

int ipd_fatal_start(struct ipd_context *ctx)
{
	sigset_t all, old;
	int err;

	pthread_mutex_init(&ctx->qp_lock, NULL);
	ctx->mon_stop = eventfd(0, EFD_CLOEXEC);
	if (ctx->mon_stop < 0)
		return errno;
	/* The application's signal handlers never run on our thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&ctx->mon, NULL, monitor, ctx);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		close(ctx->mon_stop);
		ctx->mon_stop = -1;
		return err;
	}
	ctx->mon_running = true;
	return 0;
}

void ipd_fatal_stop(struct ipd_context *ctx)
{
	uint64_t one = 1;

	if (ctx->mon_running) {
		/* A forked child has the context but not the thread. */
		if (ctx->pid == getpid()) {
			if (write(ctx->mon_stop, &one, sizeof(one)) < 0) {
				/* eventfd write of 1 cannot fail here */
			}
			pthread_join(ctx->mon, NULL);
		}
		ctx->mon_running = false;
	}
	if (ctx->mon_stop >= 0)
		close(ctx->mon_stop);
	ctx->mon_stop = -1;
	pthread_mutex_destroy(&ctx->qp_lock);
}

/* ------------------------------------------------------------------ */
/* QPs of a context                                                    */

void ipd_fatal_qp_add(struct ipd_qp *qp)
{
	struct ipd_context *ctx = to_ictx(qp->vqp.qp.context);

	pthread_mutex_lock(&ctx->qp_lock);
	qp->fatal_next = ctx->qps;
	ctx->qps = qp;
	pthread_mutex_unlock(&ctx->qp_lock);
}

void ipd_fatal_qp_del(struct ipd_qp *qp)
{
	struct ipd_context *ctx = to_ictx(qp->vqp.qp.context);
	struct ipd_qp **pp;

	pthread_mutex_lock(&ctx->qp_lock);
	for (pp = &ctx->qps; *pp; pp = &(*pp)->fatal_next) {
		if (*pp == qp) {
			*pp = qp->fatal_next;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->qp_lock);
}

/* ------------------------------------------------------------------ */
/* Flushing                                                            */

/* Work requests posted to q that nobody consumed (bounded by its size). */
static uint32_t ring_pending(struct ipd_uring *q)
{
	uint32_t cons =
		atomic_load_explicit(&q->hdr->cons, memory_order_relaxed);
	uint32_t n = ipd_ring_avail(q->hdr, cons);

	return n > q->size ? q->size : n;
}

/* Work for flush_ring: WQEs to flush or a retire record to settle. */
static bool queue_pending(struct ipd_uring *q)
{
	return ring_pending(q) ||
	       atomic_load_explicit(&q->hdr->retiring, memory_order_relaxed);
}

/* Write a flush completion into slot idx of cq's ring. */
static void put_flush(struct ipd_cq *cq, uint32_t idx, uint64_t wr_id,
		      const struct ipd_qp *qp, bool send)
{
	struct ipd_cqe *e = ipd_ring_slot(cq->ring.hdr, cq->ring.size,
					  cq->ring.slot_size, idx);

	memset(e, 0, sizeof(*e));
	e->wr_id = wr_id;
	e->status = IBV_WC_WR_FLUSH_ERR;
	/* Only wr_id, status, qp_num, vendor_err are valid on error
	 * (ibv_poll_cq(3)); the opcode says which queue. */
	e->opcode = send ? IBV_WC_SEND : IBV_WC_RECV;
	e->qp_num = qp->vqp.qp.qp_num;
}

/*
 * The daemon died between freeing the slot of q's last retired WQE and
 * posting its completion (ipathd/ring.h): that WQE is owed a completion.
 */
static bool owed_retired(struct ipd_cq *cq, struct ipd_uring *q, uint32_t cons)
{
	struct ipd_ring_hdr *h = q->hdr;

	return h->retire_cons == cons && h->retire_cq_prod == cq->daemon_prod;
}

/*
 * Consume what is left in q (the SQ or RQ of qp) into flush completions on
 * cq, as far as cq has room.  Called with cq's lock held, which makes this
 * the only consumer of q (q's completions all go to cq) and the only
 * producer of cq (the daemon is gone).  Returns completions written.
 */
static uint32_t flush_ring(struct ipd_cq *cq, struct ipd_qp *qp,
			   struct ipd_uring *q, bool send)
{
	struct ipd_ring_hdr *ch = cq->ring.hdr;
	uint32_t cq_prod =
		atomic_load_explicit(&ch->prod, memory_order_relaxed);
	uint32_t room = cq->ring.size -
			(cq_prod -
			 atomic_load_explicit(&ch->cons, memory_order_relaxed));
	uint32_t cons =
		atomic_load_explicit(&q->hdr->cons, memory_order_relaxed);
	uint32_t n = ring_pending(q), i, done = 0;

	if (atomic_load_explicit(&q->hdr->retiring, memory_order_acquire)) {
		bool owed = owed_retired(cq, q, cons);

		if (owed && !room)
			return 0;
		if (owed) {
			put_flush(cq, cq_prod + done++, q->hdr->retire_wr_id,
				  qp, send);
			room--;
		}
		/* Settled once: the record is ours now. */
		atomic_store_explicit(&q->hdr->retiring, 0,
				      memory_order_relaxed);
	}
	if (n > room)
		n = room;
	for (i = 0; i < n; i++) {
		uint64_t wr_id;

		/* Both WQE layouts begin with wr_id. */
		memcpy(&wr_id,
		       ipd_ring_slot(q->hdr, q->size, q->slot_size, cons + i),
		       sizeof(wr_id));
		put_flush(cq, cq_prod + done++, wr_id, qp, send);
	}
	if (!done)
		return 0;
	/* Slots first, then completions, as the daemon does (comp.c). */
	if (n)
		ipd_ring_release(q->hdr, cons + n);
	ipd_ring_publish(ch, cq_prod + done);
	return done;
}

static bool flushes_sq(const struct ipd_qp *qp, const struct ipd_cq *cq)
{
	return qp->sq.hdr && qp->vqp.qp.send_cq == &cq->vcq.cq;
}

static bool flushes_rq(const struct ipd_qp *qp, const struct ipd_cq *cq)
{
	return qp->rq.hdr && qp->vqp.qp.recv_cq == &cq->vcq.cq;
}

uint32_t ipd_fatal_flush(struct ipd_cq *cq)
{
	struct ipd_context *ctx = to_ictx(cq->vcq.cq.context);
	struct ipd_qp *qp;
	uint32_t n = 0;

	if (!ipd_fatal_dead(ctx))
		return 0;
	if (!cq->flushing) {
		/* Everything before this index is the daemon's. */
		cq->daemon_prod = atomic_load_explicit(&cq->ring.hdr->prod,
						       memory_order_acquire);
		cq->flushing = true;
	}
	pthread_mutex_lock(&ctx->qp_lock);
	for (qp = ctx->qps; qp; qp = qp->fatal_next) {
		if (flushes_sq(qp, cq))
			n += flush_ring(cq, qp, &qp->sq, true);
		if (flushes_rq(qp, cq))
			n += flush_ring(cq, qp, &qp->rq, false);
	}
	pthread_mutex_unlock(&ctx->qp_lock);
	return n;
}

bool ipd_fatal_cq_pending(struct ipd_cq *cq)
{
	struct ipd_context *ctx = to_ictx(cq->vcq.cq.context);
	struct ipd_ring_hdr *ch = cq->ring.hdr;
	struct ipd_qp *qp;
	bool any;

	any = ipd_ring_avail(
		ch, atomic_load_explicit(&ch->cons, memory_order_relaxed));
	pthread_mutex_lock(&ctx->qp_lock);
	for (qp = ctx->qps; qp && !any; qp = qp->fatal_next)
		any = (flushes_sq(qp, cq) && queue_pending(&qp->sq)) ||
		      (flushes_rq(qp, cq) && queue_pending(&qp->rq));
	pthread_mutex_unlock(&ctx->qp_lock);
	return any;
}
