// SPDX-License-Identifier: MIT
/*
 * vtest_common.c - device, QP and polling helpers for the verbs test
 * programs.  Linked into tests/verify.c and tests/negative.c.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "vtest_common.h"

int vt_verbose;

uint64_t vt_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- PRNG --------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

void vt_rand_seed(uint64_t seed)
{
	/* splitmix64 step so that small seeds give unrelated streams */
	uint64_t z = seed + 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	rng_state = (z ^ (z >> 31)) | 1;
}

uint64_t vt_rand(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

uint64_t vt_rand_range(uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + vt_rand() % (hi - lo + 1);
}

void vt_rand_fill(void *buf, size_t len)
{
	uint8_t *p = buf;
	uint64_t r;

	while (len >= 8) {
		r = vt_rand();
		memcpy(p, &r, 8);
		p += 8;
		len -= 8;
	}
	r = vt_rand();
	memcpy(p, &r, len);
}

void vt_fill_seeded(void *buf, size_t len, uint64_t seed)
{
	uint64_t z = seed + 0x9e3779b97f4a7c15ull, st, r;
	uint8_t *p = buf;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	st = (z ^ (z >> 31)) | 1;
	while (len) {
		size_t n = len < 8 ? len : 8;

		st ^= st >> 12;
		st ^= st << 25;
		st ^= st >> 27;
		r = st * 0x2545f4914f6cdd1dull;
		memcpy(p, &r, n);
		p += n;
		len -= n;
	}
}

/* ---- names -------------------------------------------------------- */

const char *vt_qpt_str(enum ibv_qp_type t)
{
	switch (t) {
	case IBV_QPT_RC: return "rc";
	case IBV_QPT_UC: return "uc";
	case IBV_QPT_UD: return "ud";
	case IBV_QPT_XRC_SEND: return "xrc";
	case IBV_QPT_XRC_RECV: return "xrc_tgt";
	default: return "?";
	}
}

const char *vt_state_str(enum ibv_qp_state s)
{
	static const char *const names[] = {
		"RESET", "INIT", "RTR", "RTS", "SQD", "SQE", "ERR"
	};

	if ((unsigned int)s < sizeof(names) / sizeof(names[0]))
		return names[s];
	return "UNKNOWN";
}

/* ---- device ------------------------------------------------------- */

static bool gid_is_ipv4_mapped(const union ibv_gid *g)
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
					    0, 0, 0xff, 0xff };

	return !memcmp(g->raw, prefix, sizeof(prefix));
}

static bool gid_is_zero(const union ibv_gid *g)
{
	static const union ibv_gid zero;

	return !memcmp(g, &zero, sizeof(zero));
}

/*
 * Pick a GID: the first IPv4-mapped RoCE v2 one (what perftest prefers),
 * else the first RoCE v2 one, else the first non-zero one.
 */
static int pick_gid(struct vt_dev *d)
{
	int best = -1, rank_best = 0;
	union ibv_gid g;
	int i, rank;

	for (i = 0; i < d->port_attr.gid_tbl_len; i++) {
		struct ibv_gid_entry ent;
		bool v2 = false;

		if (ibv_query_gid(d->ctx, d->port, i, &g) || gid_is_zero(&g))
			continue;
		if (!ibv_query_gid_ex(d->ctx, d->port, i, &ent, 0))
			v2 = ent.gid_type == IBV_GID_TYPE_ROCE_V2;
		rank = 1 + (v2 ? 1 : 0) + (v2 && gid_is_ipv4_mapped(&g) ? 1 : 0);
		if (rank > rank_best) {
			rank_best = rank;
			best = i;
		}
		if (rank == 3)
			break;
	}
	return best;
}

static struct ibv_context *open_by_name(const char *name)
{
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	int i, n;

	list = ibv_get_device_list(&n);
	if (!list || n == 0) {
		fprintf(stderr, "no RDMA devices found (SYSFS_PATH=%s)\n",
			getenv("SYSFS_PATH") ? getenv("SYSFS_PATH") : "unset");
		if (list)
			ibv_free_device_list(list);
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if (name && strcmp(ibv_get_device_name(list[i]), name))
			continue;
		ctx = ibv_open_device(list[i]);
		if (!ctx)
			fprintf(stderr, "ibv_open_device(%s): %s\n",
				ibv_get_device_name(list[i]), strerror(errno));
		break;
	}
	if (i == n)
		fprintf(stderr, "device %s not found\n", name);
	ibv_free_device_list(list);
	return ctx;
}

int vt_open(struct vt_dev *d, const char *name, int gid_index)
{
	memset(d, 0, sizeof(*d));
	d->port = 1;
	d->ctx = open_by_name(name);
	if (!d->ctx)
		return -1;
	if (ibv_query_device(d->ctx, &d->attr)) {
		fprintf(stderr, "ibv_query_device failed\n");
		goto err;
	}
	if (ibv_query_port(d->ctx, d->port, &d->port_attr)) {
		fprintf(stderr, "ibv_query_port failed\n");
		goto err;
	}
	d->mtu = d->port_attr.active_mtu;
	d->mtu_bytes = 128u << d->mtu;
	d->gid_index = gid_index >= 0 ? gid_index : pick_gid(d);
	if (d->gid_index < 0) {
		fprintf(stderr, "no usable GID on port %u\n", d->port);
		goto err;
	}
	if (ibv_query_gid(d->ctx, d->port, d->gid_index, &d->gid)) {
		fprintf(stderr, "ibv_query_gid(%d) failed\n", d->gid_index);
		goto err;
	}
	d->pd = ibv_alloc_pd(d->ctx);
	if (!d->pd) {
		fprintf(stderr, "ibv_alloc_pd: %s\n", strerror(errno));
		goto err;
	}
	if (vt_verbose)
		fprintf(stderr, "device %s port %u gid[%d] mtu %u\n",
			ibv_get_device_name(d->ctx->device), d->port,
			d->gid_index, d->mtu_bytes);
	return 0;
err:
	ibv_close_device(d->ctx);
	d->ctx = NULL;
	return -1;
}

void vt_close(struct vt_dev *d)
{
	if (d->pd && ibv_dealloc_pd(d->pd))
		fprintf(stderr, "warning: ibv_dealloc_pd failed\n");
	if (d->ctx)
		ibv_close_device(d->ctx);
	memset(d, 0, sizeof(*d));
}

/* ---- QPs ---------------------------------------------------------- */

/* XRC: an INI QP sends only (a PD and a send CQ), a TGT QP has only its
 * domain; both need ibv_create_qp_ex. */
static struct ibv_qp *xrc_qp_create(struct vt_dev *d, struct vt_qp *q,
				    const struct vt_qp_opts *o,
				    struct ibv_qp_init_attr *ia)
{
	struct ibv_qp_init_attr_ex ax = {
		.qp_type = o->type,
		.cap = ia->cap,
	};

	if (o->type == IBV_QPT_XRC_RECV) {
		ax.comp_mask = IBV_QP_INIT_ATTR_XRCD;
		ax.xrcd = o->xrcd;
		memset(&ax.cap, 0, sizeof(ax.cap));
	} else {
		ax.comp_mask = IBV_QP_INIT_ATTR_PD;
		ax.pd = d->pd;
		ax.send_cq = q->scq;
		ax.cap.max_recv_wr = ax.cap.max_recv_sge = 0;
	}
	struct ibv_qp *qp = ibv_create_qp_ex(d->ctx, &ax);

	if (qp)
		ia->cap = ax.cap;
	return qp;
}

int vt_qp_create(struct vt_dev *d, struct vt_qp *q, const struct vt_qp_opts *o)
{
	struct ibv_qp_init_attr ia;
	int cqe = o->cqe ? o->cqe : 256;

	memset(q, 0, sizeof(*q));
	q->type = o->type;
	q->srq = o->srq;
	q->scq = ibv_create_cq(d->ctx, cqe, NULL, NULL, 0);
	q->rcq = ibv_create_cq(d->ctx, cqe, NULL, NULL, 0);
	if (!q->scq || !q->rcq) {
		fprintf(stderr, "ibv_create_cq(%d): %s\n", cqe, strerror(errno));
		goto err;
	}
	memset(&ia, 0, sizeof(ia));
	ia.send_cq = q->scq;
	ia.recv_cq = q->rcq;
	ia.srq = o->srq;
	ia.qp_type = o->type;
	ia.sq_sig_all = 0;
	ia.cap.max_send_wr = o->max_send_wr ? o->max_send_wr : 64;
	ia.cap.max_recv_wr = o->srq ? 0 : (o->max_recv_wr ? o->max_recv_wr : 64);
	ia.cap.max_send_sge = o->max_send_sge ? o->max_send_sge : 1;
	ia.cap.max_recv_sge = o->srq ? 0 : (o->max_recv_sge ? o->max_recv_sge : 1);
	ia.cap.max_inline_data = o->max_inline;
	if (o->type == IBV_QPT_XRC_SEND || o->type == IBV_QPT_XRC_RECV)
		q->qp = xrc_qp_create(d, q, o, &ia);
	else
		q->qp = ibv_create_qp(d->pd, &ia);
	if (!q->qp) {
		fprintf(stderr, "ibv_create_qp(%s): %s\n", vt_qpt_str(o->type),
			strerror(errno));
		goto err;
	}
	q->cap = ia.cap;
	return 0;
err:
	vt_qp_destroy(q);
	return -1;
}

void vt_qp_destroy(struct vt_qp *q)
{
	if (q->ah)
		ibv_destroy_ah(q->ah);
	if (q->qp && ibv_destroy_qp(q->qp))
		fprintf(stderr, "warning: ibv_destroy_qp failed\n");
	if (q->scq)
		ibv_destroy_cq(q->scq);
	if (q->rcq)
		ibv_destroy_cq(q->rcq);
	memset(q, 0, sizeof(*q));
}

void vt_fill_ah_attr(struct vt_dev *d, struct ibv_ah_attr *ah)
{
	memset(ah, 0, sizeof(*ah));
	ah->is_global = 1;
	ah->grh.dgid = d->gid;
	ah->grh.sgid_index = (uint8_t)d->gid_index;
	ah->grh.hop_limit = 64;
	ah->port_num = d->port;
}

int vt_qp_to_init(struct vt_dev *d, struct vt_qp *q, int access)
{
	struct ibv_qp_attr a;
	int mask = IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT;
	int ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_INIT;
	a.port_num = d->port;
	if (q->type == IBV_QPT_UD) {
		a.qkey = VT_QKEY;
		mask |= IBV_QP_QKEY;
	} else {
		a.qp_access_flags = access;
		mask |= IBV_QP_ACCESS_FLAGS;
	}
	ret = ibv_modify_qp(q->qp, &a, mask);
	if (ret)
		fprintf(stderr, "modify_qp(%s RESET->INIT): %s\n",
			vt_qpt_str(q->type), strerror(ret));
	return ret;
}

int vt_qp_to_rtr(struct vt_dev *d, struct vt_qp *q, uint32_t dest_qpn,
		 const struct vt_conn_opts *co)
{
	struct ibv_qp_attr a;
	int mask = IBV_QP_STATE;
	int ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTR;
	if (q->type != IBV_QPT_UD) {
		vt_fill_ah_attr(d, &a.ah_attr);
		if (co && co->dgid)
			a.ah_attr.grh.dgid = *co->dgid;
		a.path_mtu = co && co->path_mtu ? co->path_mtu : d->mtu;
		a.dest_qp_num = dest_qpn;
		a.rq_psn = co && co->set_psn ? co->rq_psn & 0xffffff : 0x1234;
		mask |= IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
			IBV_QP_RQ_PSN;
	}
	/* the responder's attributes: RC and XRC TGT (the kernel's table) */
	if (q->type == IBV_QPT_RC || q->type == IBV_QPT_XRC_RECV) {
		a.max_dest_rd_atomic = d->attr.max_qp_rd_atom ?
			(uint8_t)(d->attr.max_qp_rd_atom > 16 ? 16 :
				  d->attr.max_qp_rd_atom) : 1;
		a.min_rnr_timer = co && co->min_rnr_timer ? co->min_rnr_timer : 1;
		mask |= IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER;
	}
	ret = ibv_modify_qp(q->qp, &a, mask);
	if (ret)
		fprintf(stderr, "modify_qp(%s INIT->RTR): %s\n",
			vt_qpt_str(q->type), strerror(ret));
	return ret;
}

int vt_qp_to_rts(struct vt_dev *d, struct vt_qp *q,
		 const struct vt_conn_opts *co)
{
	struct ibv_qp_attr a;
	int mask = IBV_QP_STATE | IBV_QP_SQ_PSN;
	int ret;

	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = co && co->set_psn ? co->sq_psn & 0xffffff : 0x1234;
	/* XRC TGT: only the ACK timeout (it never requests) */
	if (q->type == IBV_QPT_XRC_RECV) {
		a.timeout = co && co->timeout ? co->timeout : 14;
		mask |= IBV_QP_TIMEOUT;
	}
	if (q->type == IBV_QPT_RC || q->type == IBV_QPT_XRC_SEND) {
		a.timeout = co && co->timeout ? co->timeout : 14;
		a.retry_cnt = co && co->retry_cnt ? co->retry_cnt : 7;
		a.rnr_retry = co && (co->rnr_retry || co->set_rnr_retry) ?
			co->rnr_retry : 7;
		a.max_rd_atomic = d->attr.max_qp_rd_atom > 16 ? 16 :
			(uint8_t)d->attr.max_qp_rd_atom;
		mask |= IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
			IBV_QP_MAX_QP_RD_ATOMIC;
	}
	ret = ibv_modify_qp(q->qp, &a, mask);
	if (ret)
		fprintf(stderr, "modify_qp(%s RTR->RTS): %s\n",
			vt_qpt_str(q->type), strerror(ret));
	return ret;
}

static int connect_one(struct vt_dev *d, struct vt_qp *q, uint32_t dest_qpn,
		       const struct vt_conn_opts *co)
{
	int access = co && co->access ? co->access :
		IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
		IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;

	if (q->type == IBV_QPT_UC)
		access &= ~(IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC);
	if (vt_qp_to_init(d, q, access) || vt_qp_to_rtr(d, q, dest_qpn, co))
		return -1;
	return vt_qp_to_rts(d, q, co);
}

int vt_connect(struct vt_dev *d, struct vt_qp *a, struct vt_qp *b,
	       const struct vt_conn_opts *co)
{
	struct ibv_ah_attr ah;

	if (a->qp->qp_type == IBV_QPT_RC ||
	    a->qp->qp_type == IBV_QPT_XRC_SEND) {
		/* max_rd_atomic must not exceed the device limit */
		if (d->attr.max_qp_rd_atom == 0) {
			fprintf(stderr, "device reports max_qp_rd_atom 0\n");
			return -1;
		}
	}
	if (connect_one(d, a, b->qp->qp_num, co) ||
	    connect_one(d, b, a->qp->qp_num, co))
		return -1;
	if (a->type != IBV_QPT_UD)
		return 0;
	vt_fill_ah_attr(d, &ah);
	a->ah = ibv_create_ah(d->pd, &ah);
	b->ah = ibv_create_ah(d->pd, &ah);
	if (!a->ah || !b->ah) {
		fprintf(stderr, "ibv_create_ah: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- polling ------------------------------------------------------ */

int vt_poll(struct ibv_cq *cq, struct ibv_wc *wc, int n, int ms)
{
	const struct timespec nap = { 0, 20000 };
	uint64_t deadline = vt_now_ms() + (uint64_t)ms;
	unsigned int idle = 0;
	int got = 0, r;

	while (got < n) {
		r = ibv_poll_cq(cq, n - got, wc + got);
		if (r < 0) {
			fprintf(stderr, "ibv_poll_cq returned %d\n", r);
			return -1;
		}
		got += r;
		if (r > 0) {
			deadline = vt_now_ms() + (uint64_t)ms;
			idle = 0;
			continue;
		}
		if (vt_now_ms() > deadline)
			break;
		/* leave the CPU to a software device after a short spin */
		if (++idle > 200)
			nanosleep(&nap, NULL);
	}
	return got;
}

bool vt_cq_quiet(struct ibv_cq *cq, int ms, struct ibv_wc *extra)
{
	return vt_poll(cq, extra, 1, ms) == 0;
}

/* ---- TCP side channel ------------------------------------------------ */

int vt_tcp_listen(const char *port)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	int fd = -1, one = 1, ret, fam;

	/* IPv6 first (dual stack), then IPv4 */
	for (fam = 0; fam < 2 && fd < 0; fam++) {
		hints.ai_family = fam ? AF_INET : AF_INET6;
		ret = getaddrinfo(NULL, port, &hints, &res);
		if (ret)
			continue;
		for (ai = res; ai && fd < 0; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				    ai->ai_protocol);
			if (fd < 0)
				continue;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				   sizeof(one));
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) ||
			    listen(fd, 4)) {
				close(fd);
				fd = -1;
			}
		}
		freeaddrinfo(res);
	}
	if (fd < 0)
		fprintf(stderr, "cannot listen on TCP port %s: %s\n", port,
			strerror(errno));
	return fd;
}

static int wait_fd(int fd, short ev, int ms)
{
	struct pollfd p = { .fd = fd, .events = ev };
	int ret;

	do
		ret = poll(&p, 1, ms);
	while (ret < 0 && errno == EINTR);
	if (ret == 0)
		errno = ETIMEDOUT;
	return ret > 0 ? 0 : -1;
}

static void tune(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int vt_tcp_accept(int lfd, int ms)
{
	int fd;

	if (wait_fd(lfd, POLLIN, ms)) {
		fprintf(stderr, "no TCP connection within %d ms: %s\n", ms,
			strerror(errno));
		return -1;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		fprintf(stderr, "accept: %s\n", strerror(errno));
	else
		tune(fd);
	return fd;
}

int vt_tcp_connect(const char *hostport, int ms)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	char host[256], *port;
	uint64_t deadline = vt_now_ms() + (uint64_t)ms;
	int fd = -1, ret, err = 0;

	if (strlen(hostport) >= sizeof(host)) {
		fprintf(stderr, "address too long: %s\n", hostport);
		return -1;
	}
	strcpy(host, hostport);
	port = strrchr(host, ':');
	if (!port || port == host) {
		fprintf(stderr, "expected HOST:PORT, got '%s'\n", hostport);
		return -1;
	}
	*port++ = '\0';
	if (host[0] == '[' && port[-2] == ']') {
		port[-2] = '\0';
		memmove(host, host + 1, strlen(host));
	}
	ret = getaddrinfo(host, port, &hints, &res);
	if (ret) {
		fprintf(stderr, "%s: %s\n", hostport, gai_strerror(ret));
		return -1;
	}
	for (;;) {
		for (ai = res; ai; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
				    ai->ai_protocol);
			if (fd < 0) {
				err = errno;
				continue;
			}
			if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
				goto done;
			err = errno;
			close(fd);
			fd = -1;
		}
		if (vt_now_ms() >= deadline)
			break;
		usleep(100000);
	}
	fprintf(stderr, "cannot connect to %s within %d ms: %s\n", hostport,
		ms, strerror(err));
done:
	freeaddrinfo(res);
	if (fd >= 0)
		tune(fd);
	return fd;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "side channel send: %s\n",
				strerror(errno));
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_all(int fd, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len) {
		uint64_t now = vt_now_ms();

		if (now >= deadline ||
		    wait_fd(fd, POLLIN, (int)(deadline - now))) {
			fprintf(stderr, "side channel: nothing from the peer in time\n");
			return -1;
		}
		n = recv(fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "side channel: %s\n",
				n ? strerror(errno) : "the peer closed it");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int vt_msg_send(int fd, uint32_t type, const void *payload, uint32_t len)
{
	uint32_t h[2] = { htonl(type), htonl(len) };

	if (send_all(fd, h, sizeof(h)))
		return -1;
	return len ? send_all(fd, payload, len) : 0;
}

int vt_msg_recv(int fd, uint32_t *type, void *buf, uint32_t cap, int ms)
{
	uint64_t deadline = vt_now_ms() + (uint64_t)ms;
	uint32_t h[2], len;

	if (recv_all(fd, h, sizeof(h), deadline))
		return -1;
	*type = ntohl(h[0]);
	len = ntohl(h[1]);
	if (len > cap) {
		fprintf(stderr, "side channel: message of %u bytes (type %u) exceeds %u\n",
			len, *type, cap);
		return -1;
	}
	if (len && recv_all(fd, buf, len, deadline))
		return -1;
	return (int)len;
}

static bool wb_room(struct vt_wbuf *b, size_t n)
{
	if (b->err || b->len + n > b->cap) {
		b->err = true;
		return false;
	}
	return true;
}

void vt_putmem(struct vt_wbuf *b, const void *v, size_t n)
{
	if (!wb_room(b, n))
		return;
	memcpy(b->p + b->len, v, n);
	b->len += n;
}

void vt_put8(struct vt_wbuf *b, uint8_t v)
{
	vt_putmem(b, &v, 1);
}

void vt_put32(struct vt_wbuf *b, uint32_t v)
{
	v = htonl(v);
	vt_putmem(b, &v, 4);
}

void vt_put64(struct vt_wbuf *b, uint64_t v)
{
	vt_put32(b, (uint32_t)(v >> 32));
	vt_put32(b, (uint32_t)v);
}

void vt_getmem(struct vt_wbuf *b, void *v, size_t n)
{
	if (b->err || b->pos + n > b->len) {
		b->err = true;
		memset(v, 0, n);
		return;
	}
	memcpy(v, b->p + b->pos, n);
	b->pos += n;
}

uint8_t vt_get8(struct vt_wbuf *b)
{
	uint8_t v;

	vt_getmem(b, &v, 1);
	return v;
}

uint32_t vt_get32(struct vt_wbuf *b)
{
	uint32_t v;

	vt_getmem(b, &v, 4);
	return ntohl(v);
}

uint64_t vt_get64(struct vt_wbuf *b)
{
	uint64_t hi = vt_get32(b);

	return hi << 32 | vt_get32(b);
}

const char *vt_gid_str(const union ibv_gid *g, char *buf, size_t len)
{
	if (!inet_ntop(AF_INET6, g->raw, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}
