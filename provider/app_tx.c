// SPDX-License-Identifier: MIT
/*
 * Application transmit (docs/design.md "Application transmit"): while the
 * daemon publishes an RC send queue as idle, a single-packet inline SEND
 * or WRITE is sent from here, from the application's own UDP socket (bound
 * to the source port the daemon sends the QP's packets from, where it
 * can: one flow for the network's ECMP hashing), and posted marked with the
 * PSN it went with.  The daemon takes it as sent and does the rest (ACKs,
 * retransmission, completion); a packet sent here that the daemon does not
 * accept is sent again by it.
 */
#include <errno.h>
#include <sched.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ipathd/hdr.h"
#include "ipathd/icrc.h"
#include "ipathd/sockopt.h"
#include "ipathd.h"

static bool addr_is_v4(const uint8_t a[16])
{
	static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};

	return !memcmp(a, mapped, sizeof(mapped));
}

/* a as a socket address with port. */
static socklen_t addr_make(const uint8_t a[16], uint16_t port,
			   struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (addr_is_v4(a)) {
		struct sockaddr_in *s4 = (void *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, a + 12, 4);
		return sizeof(*s4);
	}
	struct sockaddr_in6 *s6 = (void *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	memcpy(&s6->sin6_addr, a, 16);
	return sizeof(*s6);
}

/* As the daemon's sockets (link_udp.c): don't fragment, which also makes
 * the kernel send IPv4 ID 0 from an unconnected socket (the ICRC covers
 * the ID).  A port other than 0 is one the daemon published and keeps
 * open while it is published, shared with it (SO_REUSEPORT: only a
 * process of the daemon's user can join it). */
static int sock_open(const uint8_t src[16], uint16_t port, uint16_t *sport)
{
	struct sockaddr_storage ss, got;
	socklen_t len = addr_make(src, port, &ss), glen = sizeof(got);
	int fd, one = 1;

	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (ipd_sock_roce_opts(fd, ss.ss_family) ||
	    (port &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one))) ||
	    bind(fd, (struct sockaddr *)&ss, len) ||
	    getsockname(fd, (struct sockaddr *)&got, &glen))
		goto fail;
	*sport = ntohs(got.ss_family == AF_INET
			       ? ((struct sockaddr_in *)&got)->sin_port
			       : ((struct sockaddr_in6 *)&got)->sin6_port);
	return fd;
fail:
	close(fd);
	return -1;
}

void ipd_app_tx_ctx_init(struct ipd_context *ctx)
{
	pthread_spin_init(&ctx->mr_lock, PTHREAD_PROCESS_PRIVATE);
	pthread_mutex_init(&ctx->tx_lock, NULL);
}

void ipd_app_tx_ctx_fini(struct ipd_context *ctx)
{
	struct ipd_tx_sock *t;

	while ((t = ctx->tx_socks)) {
		ctx->tx_socks = t->next;
		if (t->fd >= 0)
			close(t->fd);
		free(t);
	}
	pthread_mutex_destroy(&ctx->tx_lock);
	pthread_spin_destroy(&ctx->mr_lock);
}

/* The context's socket for (src, want), opened at first use, with a
 * reference taken; NULL when none may be opened (IPD_APP_TX_PORTS) or
 * memory is short.  Called with tx_lock held. */
static struct ipd_tx_sock *tx_sock_get(struct ipd_context *ctx,
				       const uint8_t src[16], uint16_t want)
{
	struct ipd_tx_sock *t;

	for (t = ctx->tx_socks; t; t = t->next)
		if (t->want == want && !memcmp(t->src, src, 16))
			goto found;
	if (want && ctx->tx_ports >= IPD_APP_TX_PORTS)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	memcpy(t->src, src, 16);
	t->want = want;
	t->fd = sock_open(src, want, &t->sport);
	t->next = ctx->tx_socks;
	ctx->tx_socks = t;
	ctx->tx_ports += want && t->fd >= 0;
found:
	t->refs++;
	return t;
}

/* Drop a reference; the last one closes a socket bound to a QP's port.
 * The ephemeral ones stay for the context, and so do the records of
 * ports that could not be bound (an application of another user than
 * the daemon's would otherwise try each again for every QP).  Called with
 * tx_lock held. */
static void tx_sock_put(struct ipd_context *ctx, struct ipd_tx_sock *t)
{
	struct ipd_tx_sock **p;

	if (--t->refs || !t->want || t->fd < 0)
		return;
	for (p = &ctx->tx_socks; *p != t; p = &(*p)->next)
		;
	*p = t->next;
	close(t->fd);
	ctx->tx_ports--;
	free(t);
}

/* The socket for the QP's packets from src: bound to want, the port the
 * daemon published, or else (none published, not bindable: an application
 * of another user than the daemon's; too many) the context's one on an
 * ephemeral port for src, shared by its QPs.  NULL when src cannot be
 * bound (an application in another network namespace than the daemon's
 * address, an IPv6 link-local address): everything goes through the
 * daemon then.  Called with the send queue's lock held. */
static struct ipd_tx_sock *tx_sock(struct ipd_qp *qp, const uint8_t src[16],
				   uint16_t want)
{
	struct ipd_context *ctx = to_ictx(qp->vqp.qp.context);
	struct ipd_tx_sock *t = qp->tx;

	if (t && qp->tx_want == want && !memcmp(t->src, src, 16))
		return t->fd >= 0 ? t : NULL;
	pthread_mutex_lock(&ctx->tx_lock);
	if (qp->tx)
		tx_sock_put(ctx, qp->tx);
	t = want ? tx_sock_get(ctx, src, want) : NULL;
	if (t && t->fd < 0) {
		tx_sock_put(ctx, t);
		t = NULL;
	}
	if (!t)
		t = tx_sock_get(ctx, src, 0);
	pthread_mutex_unlock(&ctx->tx_lock);
	qp->tx = t;
	qp->tx_want = want;
	return t && t->fd >= 0 ? t : NULL;
}

/* The QP goes: its reference to its socket too. */
void ipd_app_tx_qp_fini(struct ipd_qp *qp)
{
	struct ipd_context *ctx = to_ictx(qp->vqp.qp.context);

	if (!qp->tx)
		return;
	pthread_mutex_lock(&ctx->tx_lock);
	tx_sock_put(ctx, qp->tx);
	pthread_mutex_unlock(&ctx->tx_lock);
	qp->tx = NULL;
}

/* ---- the lkeys SGEs are read through --------------------------------- */

static struct ipd_mr **mr_bucket(struct ipd_context *ctx, uint32_t lkey)
{
	return &ctx->mr_hash[(lkey ^ lkey >> 8) %
			     (sizeof(ctx->mr_hash) / sizeof(ctx->mr_hash[0]))];
}

void ipd_app_tx_mr_add(struct ipd_context *ctx, struct ipd_mr *mr)
{
	struct ipd_mr **b = mr_bucket(ctx, mr->vmr.ibv_mr.lkey);

	pthread_spin_lock(&ctx->mr_lock);
	mr->hnext = *b;
	*b = mr;
	pthread_spin_unlock(&ctx->mr_lock);
}

void ipd_app_tx_mr_del(struct ipd_context *ctx, struct ipd_mr *mr)
{
	struct ipd_mr **p;

	pthread_spin_lock(&ctx->mr_lock);
	for (p = mr_bucket(ctx, mr->vmr.ibv_mr.lkey); *p; p = &(*p)->hnext) {
		if (*p == mr) {
			*p = mr->hnext;
			break;
		}
	}
	pthread_spin_unlock(&ctx->mr_lock);
}

/* The checks the daemon makes of a local SGE (daemon/sge.c) that can
 * fail for a read: the lkey is a live MR of this PD covering the bytes.
 * Where they are in this process, or NULL. */
static const void *sge_mem(struct ipd_qp *qp, const struct ipd_sge *s)
{
	struct ipd_context *ctx = to_ictx(qp->vqp.qp.context);
	const void *p = NULL;
	struct ipd_mr *mr;

	pthread_spin_lock(&ctx->mr_lock);
	for (mr = *mr_bucket(ctx, s->lkey); mr; mr = mr->hnext) {
		if (mr->vmr.ibv_mr.lkey != s->lkey)
			continue;
		if (mr->pd == qp->vqp.qp.pd && s->addr >= mr->iova &&
		    s->length <= mr->length &&
		    s->addr - mr->iova <= mr->length - s->length)
			p = mr->addr + (s->addr - mr->iova);
		break;
	}
	pthread_spin_unlock(&ctx->mr_lock);
	return p;
}

/* The WQE's payload into dst (at most max bytes): false when it is more,
 * or an SGE would fail the daemon's checks. */
static bool payload_fill(struct ipd_qp *qp, struct ipd_send_wqe *w,
			 uint8_t *dst, uint32_t max, uint32_t *len)
{
	const struct ipd_sge *s = ipd_send_wqe_sge(w);
	uint32_t i, n = 0;

	if (w->send_flags & IBV_SEND_INLINE) {
		if (w->inline_len > max)
			return false;
		memcpy(dst, w->payload, w->inline_len);
		*len = w->inline_len;
		return true;
	}
	for (i = 0; i < w->num_sge; i++) {
		const void *src;

		if (s[i].length > max - n)
			return false;
		src = sge_mem(qp, &s[i]);
		if (!src)
			return false;
		memcpy(dst + n, src, s[i].length);
		n += s[i].length;
	}
	*len = n;
	return true;
}

/* ---- packets ----------------------------------------------------------- */

static bool op_ok(const struct ipd_send_wqe *w)
{
	switch (w->opcode) {
	case IBV_WR_SEND:
	case IBV_WR_SEND_WITH_IMM:
	case IBV_WR_RDMA_WRITE:
	case IBV_WR_RDMA_WRITE_WITH_IMM:
		return true;
	default:
		return false;
	}
}

/* The daemon may have shown a completion this post answers before it
 * handed that completion's ACK to the kernel (ring.h app_tx_ack_owed):
 * wait for it, so that the ACK leaves before a request sent from here, as
 * from a NIC.  The flag went up before that completion showed, so before
 * this post began: checked once, before the send queue's lock.  It is a
 * sendto away on another CPU: spin for up to IPD_APP_TX_ACK_SPIN_NS (a
 * yield would hand this CPU to another busy process for far longer), then
 * yield (the daemon may be waiting for this CPU); false after
 * IPD_APP_TX_ACK_WAIT_NS (a daemon that stopped) or when the daemon is
 * gone: this post then goes through the daemon. */
static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool ipd_app_tx_ack_wait(struct ipd_qp *qp)
{
	const _Atomic uint16_t *owed;
	struct ipd_context *ctx = to_ictx(qp->vqp.qp.context);
	uint64_t start = 0, waited;
	unsigned int i;

	if (!qp->sq.hdr)
		return true;
	owed = &qp->sq.hdr->app_tx_ack_owed;
	for (i = 1; atomic_load_explicit(owed, memory_order_acquire); i++) {
		if (i % 64)
			continue;
		if (!start)
			start = mono_ns();
		waited = mono_ns() - start;
		if (waited < IPD_APP_TX_ACK_SPIN_NS)
			continue;
		if (waited > IPD_APP_TX_ACK_WAIT_NS || atomic_load(&ctx->dead))
			return false;
		sched_yield();
	}
	return true;
}

bool ipd_app_tx_prepare(struct ipd_qp *qp, struct ipd_send_wqe *w, uint32_t idx,
			struct ipd_app_pkt *p)
{
	struct ipd_ring_hdr *h = qp->sq.hdr;
	uint64_t word = atomic_load_explicit(&h->app_tx, memory_order_acquire);
	const struct ipd_wr_opcode_info *info;
	struct ipd_icrc_flow flow;
	struct sockaddr_storage src;
	uint32_t len, hlen, psn, max = h->app_tx_mtu;
	struct ipd_tx_sock *t;
	uint8_t op, pad;

	if (!(word & IPD_APP_TX_VALID) || ipd_app_tx_idx(word) != idx ||
	    qp->vqp.qp.qp_type != IBV_QPT_RC || !op_ok(w) || qp->tx_off ||
	    atomic_load(&to_ictx(qp->vqp.qp.context)->dead))
		return false;
	info = ipd_wr_opcode_get(w->opcode, IBV_QPT_RC);
	if (!info || !info->name)
		return false;
	op = ipd_qpt_opcode_base(IBV_QPT_RC) | info->op_only;
	hlen = ipd_opcode_info[op].length;
	if (max > IPD_APP_TX_PAYLOAD)
		max = IPD_APP_TX_PAYLOAD;
	if (!payload_fill(qp, w, p->buf + hlen, max, &len))
		return false;
	t = tx_sock(qp, h->app_tx_src, h->app_tx_sport);
	if (!t)
		return false;
	psn = ipd_app_tx_psn(word);
	pad = (uint8_t)(-len & 3);
	memset(p->buf, 0, hlen);
	ipd_bth_init(p->buf, op, w->send_flags & IBV_SEND_SOLICITED, pad,
		     IPD_DEFAULT_PKEY, h->app_tx_dqpn, true, psn);
	if (ipd_opcode_info[op].mask & IPD_RETH_MASK)
		ipd_reth_set(p->buf, w->wr.rdma.remote_addr, w->wr.rdma.rkey,
			     len);
	if (ipd_opcode_info[op].mask & IPD_IMMDT_MASK)
		ipd_immdt_set_raw(p->buf, w->imm_data);
	memset(p->buf + hlen + len, 0, pad);
	p->dlen = addr_make(h->app_tx_dst, h->app_tx_dport, &p->dst);
	addr_make(h->app_tx_src, 0, &src);
	flow = (struct ipd_icrc_flow){
		.src = (struct sockaddr *)&src,
		.dst = (struct sockaddr *)&p->dst,
		.sport = t->sport,
		.dport = h->app_tx_dport,
		.ip_id = 0,
		.ip_df = true,
	};
	if (ipd_icrc_append(&flow, p->buf, hlen + len + pad))
		return false;
	p->len = hlen + len + pad + IPD_ICRC_BYTES;
	w->flags |= IPD_WQE_F_APP_SENT;
	w->app_psn = psn;
	return true;
}

void ipd_app_tx_send(struct ipd_qp *qp, const struct ipd_app_pkt *p)
{
	/* Refused (the WQE is posted as sent already): the daemon's
	 * retransmission sends it, and this QP sends nothing itself any
	 * more, so that a lasting refusal (a filter, a route) costs one
	 * retransmission, not one per message. */
	if (sendto(qp->tx->fd, p->buf, p->len, MSG_DONTWAIT,
		   (const struct sockaddr *)&p->dst, p->dlen) < 0)
		qp->tx_off = true;
}
