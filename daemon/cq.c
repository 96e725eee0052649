// SPDX-License-Identifier: MIT
/*
 * Completion queues: a daemon-produced ring of struct ipd_cqe, and the
 * completion channels their events go to (docs/design.md "Completion
 * channels").
 *
 * A channel is the daemon's end of a SOCK_SEQPACKET socket pair whose other
 * end the application holds as ibv_comp_channel.fd.  An armed CQ (the
 * client writes the ring header's arm word in ibv_req_notify_cq) fires
 * once: the daemon clears the arm word and sends {u64 user_handle}.  A CQ
 * has at most one event in flight per arming, so when the socket is full
 * the event waits in the channel's queue (one entry per CQ at most) and is
 * sent when the socket drains; nothing is dropped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "objects.h"

/* A hostile client must not make the daemon hold unbounded descriptors. */
#define IPD_MAX_CHANNELS_PER_CLIENT 1024u
/* Bytes of junk a client may write into its channel per wake-up. */
#define CHANNEL_DRAIN_MAX 4096

struct ipd_channel {
	uint32_t handle;
	uint32_t client_id;          /* owner; channels never point at clients */
	struct ipd_dev *dev;
	int fd;                      /* -1 once closed */
	ev_io rd_w;                  /* peer closed (EOF) or wrote junk */
	ev_io wr_w;                  /* room again for queued events */
	unsigned int refcnt;         /* CQs bound to the channel */
	TAILQ_HEAD(, ipd_cq) queued; /* events waiting for room */
	LIST_ENTRY(ipd_channel) link;
};

/* The record ibv_get_cq_event() reads (struct ib_uverbs_comp_event_desc). */
struct ipd_comp_event {
	uint64_t cq_handle;
};
_Static_assert(sizeof(struct ipd_comp_event) == 8, "comp event record");

static void channel_free(struct ipd_channel *ch)
{
	LIST_REMOVE(ch, link);
	free(ch);
}

/*
 * No more events: stop watching, close our end (the application's reads
 * see end-of-file) and forget queued events.  The memory stays while CQs
 * still point at the channel.
 */
static void channel_close(struct ipd_channel *ch)
{
	struct ipd_cq *cq;

	if (ch->fd < 0)
		return;
	ev_io_stop(ch->dev->loop, &ch->rd_w);
	ev_io_stop(ch->dev->loop, &ch->wr_w);
	close(ch->fd);
	ch->fd = -1;
	while ((cq = TAILQ_FIRST(&ch->queued))) {
		TAILQ_REMOVE(&ch->queued, cq, event_link);
		cq->event_queued = false;
	}
	if (!ch->refcnt)
		channel_free(ch);
}

/* 1 sent, 0 no room (try later), -1 the channel is gone. */
static int channel_send(struct ipd_channel *ch, uint64_t handle)
{
	struct ipd_comp_event ev = { .cq_handle = handle };
	ssize_t n;

	n = send(ch->fd, &ev, sizeof(ev), MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == (ssize_t)sizeof(ev))
		return 1;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		      errno == ENOBUFS || errno == EINTR))
		return 0;
	return -1;
}

static void channel_flush(struct ipd_channel *ch)
{
	struct ipd_cq *cq;
	int ret;

	while ((cq = TAILQ_FIRST(&ch->queued))) {
		ret = channel_send(ch, cq->user_handle);
		if (ret == 0)
			break;
		if (ret < 0) {
			channel_close(ch);
			return;
		}
		TAILQ_REMOVE(&ch->queued, cq, event_link);
		cq->event_queued = false;
	}
	if (TAILQ_EMPTY(&ch->queued))
		ev_io_stop(ch->dev->loop, &ch->wr_w);
	else
		ev_io_start(ch->dev->loop, &ch->wr_w);
}

static void channel_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipd_channel *ch = w->data;

	(void)loop;
	(void)revents;
	channel_flush(ch);
}

/* Readable: the application closed its end (EOF), or wrote into it. */
static void channel_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ipd_channel *ch = w->data;
	char junk[256];
	ssize_t n;
	int total = 0;

	(void)loop;
	(void)revents;
	while (total < CHANNEL_DRAIN_MAX) {
		n = recv(ch->fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (n > 0) {
			total += (int)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			      errno == EINTR))
			return;
		ipd_dbg("channel %u: closed by the application", ch->handle);
		channel_close(ch);
		return;
	}
}

static struct ipd_channel *channel_get(struct ipd_client *c, uint32_t handle)
{
	struct ipd_channel *ch;

	LIST_FOREACH(ch, &c->dev->channels, link)
		if (ch->handle == handle && ch->client_id == c->id &&
		    ch->fd >= 0)
			return ch;
	return NULL;
}

static unsigned int client_channels(struct ipd_client *c)
{
	struct ipd_channel *ch;
	unsigned int n = 0;

	LIST_FOREACH(ch, &c->dev->channels, link)
		if (ch->client_id == c->id && ch->fd >= 0)
			n++;
	return n;
}

int ipd_handle_create_channel(struct ipd_req_ctx *ctx)
{
	struct ipd_client *c = ctx->client;
	struct ipd_dev *dev = c->dev;
	Ipd__CreateChannelResp *r;
	struct ipd_channel *ch;
	socklen_t len = sizeof(int);
	int type = 0;

	if (ctx->n_in_fds != 1)
		return ipd_req_fail(ctx, EINVAL,
				    "create_channel: expected one descriptor");
	/* Events are whole records only on a packet socket. */
	if (getsockopt(ctx->in_fds[0], SOL_SOCKET, SO_TYPE, &type, &len) ||
	    type != SOCK_SEQPACKET)
		return ipd_req_fail(ctx, EINVAL,
				    "create_channel: not a SOCK_SEQPACKET socket");
	if (client_channels(c) >= IPD_MAX_CHANNELS_PER_CLIENT)
		return ipd_req_fail(ctx, ENOMEM, "create_channel: too many");
	r = ipd_req_alloc(ctx, sizeof(*r));
	ch = r ? calloc(1, sizeof(*ch)) : NULL;
	if (!ch)
		return ipd_req_fail(ctx, ENOMEM, "create_channel: out of memory");
	do
		ch->handle = ++dev->next_channel;
	while (!ch->handle);
	ch->client_id = c->id;
	ch->dev = dev;
	ch->fd = ctx->in_fds[0];
	ctx->in_fds[0] = -1;
	TAILQ_INIT(&ch->queued);
	ev_io_init(&ch->rd_w, channel_readable, ch->fd, EV_READ);
	ev_io_init(&ch->wr_w, channel_writable, ch->fd, EV_WRITE);
	ch->rd_w.data = ch;
	ch->wr_w.data = ch;
	ev_io_start(dev->loop, &ch->rd_w);
	LIST_INSERT_HEAD(&dev->channels, ch, link);
	ipd__create_channel_resp__init(r);
	r->handle = ch->handle;
	ctx->resp->op_case = IPD__RESPONSE__OP_CREATE_CHANNEL;
	ctx->resp->create_channel = r;
	return 0;
}

void ipd_client_release_channels(struct ipd_client *client)
{
	struct ipd_channel *ch, *next;

	for (ch = LIST_FIRST(&client->dev->channels); ch; ch = next) {
		next = LIST_NEXT(ch, link);
		if (ch->client_id == client->id)
			channel_close(ch);
	}
}

static void cq_unbind_channel(struct ipd_cq *cq)
{
	struct ipd_channel *ch = cq->channel;

	if (!ch)
		return;
	if (cq->event_queued) {
		TAILQ_REMOVE(&ch->queued, cq, event_link);
		cq->event_queued = false;
	}
	cq->channel = NULL;
	if (!--ch->refcnt && ch->fd < 0)
		channel_free(ch);
}

/*
 * Does this completion fire the CQ's event?  Consumes the arming if so.
 * Dekker with ibv_req_notify_cq: the CQE is published before we read the
 * arm word, and the client writes the arm word before it polls again, so
 * a completion is either seen by that poll or fires the event (or both).
 */
static bool cq_take_arm(struct ipd_cq *cq, const struct ipd_cqe *cqe)
{
	_Atomic uint32_t *arm = &cq->q.hdr->arm;
	bool solicited = (cqe->flags & IPD_CQE_F_SOLICITED) ||
			 cqe->status != IBV_WC_SUCCESS;
	uint32_t cur;

	atomic_thread_fence(memory_order_seq_cst);
	cur = atomic_load_explicit(arm, memory_order_relaxed);
	/* Bounded: a client flipping the word cannot keep us here. */
	for (int tries = 0; tries < 8; tries++) {
		if (cur != IPD_CQ_ARM_NEXT &&
		    !(cur == IPD_CQ_ARM_SOLICITED && solicited))
			return false;
		if (atomic_compare_exchange_strong(arm, &cur, IPD_CQ_ARM_NONE))
			return true;
	}
	atomic_store(arm, IPD_CQ_ARM_NONE);
	return true;
}

static void cq_notify(struct ipd_cq *cq, const struct ipd_cqe *cqe)
{
	struct ipd_channel *ch = cq->channel;
	int ret;

	if (!ch || ch->fd < 0 || !cq_take_arm(cq, cqe))
		return;
	/* Already queued: that event covers this completion too. */
	if (cq->event_queued)
		return;
	ret = TAILQ_EMPTY(&ch->queued) ? channel_send(ch, cq->user_handle) : 0;
	if (ret < 0) {
		channel_close(ch);
		return;
	}
	if (ret == 0) {
		TAILQ_INSERT_TAIL(&ch->queued, cq, event_link);
		cq->event_queued = true;
		ev_io_start(ch->dev->loop, &ch->wr_w);
	}
}

struct ipd_cq *ipd_cq_get(struct ipd_client *c, uint32_t handle)
{
	struct ipd_cq *cq = ipd_table_get(&c->dev->cqs, handle);

	return cq && cq->client == c ? cq : NULL;
}

/* Ring slots for cqe entries: a power of two with one spare slot, as
 * many verbs devices report (the reported cqe is ring - 1). */
static int cq_ring_slots(const struct ipd_config *cfg, uint32_t cqe,
			 uint32_t *slots)
{
	/* rxe: cqe must be positive and within the device's max_cqe. */
	if (cqe == 0 || cqe > cfg->max_cqe)
		return -EINVAL;
	*slots = ipd_roundup_pow2(cqe + 1);
	return 0;
}

int ipd_cq_post(struct ipd_cq *cq, const struct ipd_cqe *cqe)
{
	struct ipd_queue *q = &cq->q;

	if (cq->overflowed)
		return -ENOSPC;
	if (ipd_ring_full(q->hdr, q->size, q->prod)) {
		/* IBA 11.4.2.1 / verbs: a CQ overrun is an affiliated
		 * asynchronous error (IBV_EVENT_CQ_ERR), raised once. */
		cq->overflowed = true;
		ipd_async_event(cq->client, cq->user_handle, IBV_EVENT_CQ_ERR);
		return -ENOSPC;
	}
	memcpy(ipd_ring_slot(q->hdr, q->size, q->slot_size, q->prod), cqe,
	       sizeof(*cqe));
	q->prod++;
	ipd_ring_publish(q->hdr, q->prod);
	cq_notify(cq, cqe);
	return 0;
}

/* Fill the preallocated response r for cq and attach its ring. */
static void cq_reply(struct ipd_req_ctx *ctx, struct ipd_cq *cq,
		    Ipd__CreateCqResp *r, int fd, bool resize)
{
	ipd__create_cq_resp__init(r);
	r->handle = cq->handle;
	r->cqe = cq->cqe;
	r->ring_size = cq->q.size;
	ctx->out_fds[ctx->n_out_fds++] = fd;
	if (resize) {
		ctx->resp->op_case = IPD__RESPONSE__OP_RESIZE_CQ;
		ctx->resp->resize_cq = r;
	} else {
		ctx->resp->op_case = IPD__RESPONSE__OP_CREATE_CQ;
		ctx->resp->create_cq = r;
	}
}

int ipd_handle_create_cq(struct ipd_req_ctx *ctx)
{
	const Ipd__CreateCq *m = ctx->req->create_cq;
	struct ipd_dev *dev = ctx->client->dev;
	struct ipd_channel *ch = NULL;
	Ipd__CreateCqResp *r;
	struct ipd_cq *cq;
	uint32_t slots;
	int fd, err;

	if (cq_ring_slots(dev->cfg, m->cqe, &slots))
		return ipd_req_fail(ctx, EINVAL, "create_cq: cqe %u not in 1..%u",
				    m->cqe, dev->cfg->max_cqe);
	if (m->channel) {
		ch = channel_get(ctx->client, m->channel);
		if (!ch)
			return ipd_req_fail(ctx, EINVAL,
					    "create_cq: no channel %u",
					    m->channel);
	}
	r = ipd_req_alloc(ctx, sizeof(*r));
	cq = r ? calloc(1, sizeof(*cq)) : NULL;
	if (!cq)
		return ipd_req_fail(ctx, ENOMEM, "create_cq: out of memory");
	err = ipd_queue_create(&cq->q, slots, sizeof(struct ipd_cqe), "ipathd-cq",
			       &fd);
	if (err)
		goto err_free;
	cq->handle = ipd_table_insert(&dev->cqs, cq);
	if (!cq->handle) {
		err = -ENOMEM;
		goto err_queue;
	}
	cq->client = ctx->client;
	cq->user_handle = m->user_handle;
	cq->cqe = cq->q.size - 1;
	if (ch) {
		cq->channel = ch;
		ch->refcnt++;
	}
	cq_reply(ctx, cq, r, fd, false);
	return 0;

err_queue:
	close(fd);
	ipd_queue_destroy(&cq->q);
err_free:
	free(cq);
	return ipd_req_fail(ctx, -err, "create_cq: cannot create the ring");
}

/*
 * Resize: a new ring holding the completions the client has not polled
 * yet, at indices 0..n-1 (cons 0, prod n).  The client must map the new
 * ring and restart its consumer index at the new header's cons.
 */
int ipd_handle_resize_cq(struct ipd_req_ctx *ctx)
{
	const Ipd__ResizeCq *m = ctx->req->resize_cq;
	struct ipd_cq *cq = ipd_cq_get(ctx->client, m->handle);
	struct ipd_queue nq, *oq;
	Ipd__CreateCqResp *r;
	uint32_t slots, cons, n;
	int fd, err;

	if (!cq)
		return ipd_req_fail(ctx, EINVAL, "resize_cq: no CQ %u", m->handle);
	if (cq_ring_slots(ctx->client->dev->cfg, m->cqe, &slots))
		return ipd_req_fail(ctx, EINVAL, "resize_cq: cqe %u out of range",
				    m->cqe);
	oq = &cq->q;
	cons = atomic_load_explicit(&oq->hdr->cons, memory_order_acquire);
	n = oq->prod - cons;
	if (n > oq->size)        /* bogus consumer index: nothing to keep */
		n = 0;
	if (m->cqe < n)
		return ipd_req_fail(ctx, EINVAL,
				    "resize_cq: %u completions outstanding", n);
	r = ipd_req_alloc(ctx, sizeof(*r));
	if (!r)
		return ipd_req_fail(ctx, ENOMEM, "resize_cq: out of memory");
	err = ipd_queue_create(&nq, slots, sizeof(struct ipd_cqe), "ipathd-cq",
			       &fd);
	if (err)
		return ipd_req_fail(ctx, -err, "resize_cq: cannot create the ring");
	for (uint32_t i = 0; i < n; i++)
		memcpy(ipd_ring_slot(nq.hdr, nq.size, nq.slot_size, i),
		       ipd_ring_slot(oq->hdr, oq->size, oq->slot_size, cons + i),
		       sizeof(struct ipd_cqe));
	nq.prod = n;
	ipd_ring_publish(nq.hdr, n);
	atomic_store(&nq.hdr->arm, atomic_load(&oq->hdr->arm));
	ipd_queue_destroy(oq);
	cq->q = nq;
	cq->cqe = nq.size - 1;
	cq->overflowed = false;
	cq_reply(ctx, cq, r, fd, true);
	return 0;
}

int ipd_cq_destroy(struct ipd_cq *cq)
{
	if (cq->refcnt)
		return -EBUSY;
	cq_unbind_channel(cq);
	ipd_table_remove(&cq->client->dev->cqs, cq->handle);
	ipd_queue_destroy(&cq->q);
	free(cq);
	return 0;
}
