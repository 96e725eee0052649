/* SPDX-License-Identifier: MIT */
/*
 * vtest_common.h - helpers shared by the verbs test programs
 * (tests/verify.c, tests/negative.c).  Implementation: tests/vtest_common.c.
 *
 * Only the public libibverbs API is used, so the programs mean the same
 * thing against ipathd and against any RDMA device (e.g. Linux rxe).
 */
#ifndef VTEST_COMMON_H
#define VTEST_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <infiniband/verbs.h>

#define VT_QKEY		0x11111111u
#define VT_WAIT_MS	10000	/* bound on every single completion wait */

struct vt_dev {
	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_device_attr attr;
	struct ibv_port_attr port_attr;
	uint8_t port;
	int gid_index;
	union ibv_gid gid;
	enum ibv_mtu mtu;	/* port active_mtu */
	unsigned int mtu_bytes;
};

/* One QP with its own send and receive CQs (and optionally an SRQ). */
struct vt_qp {
	struct ibv_qp *qp;
	struct ibv_cq *scq;
	struct ibv_cq *rcq;
	struct ibv_srq *srq;	/* not owned */
	struct ibv_ah *ah;	/* UD: address of the peer */
	enum ibv_qp_type type;
	struct ibv_qp_cap cap;	/* as granted by create_qp */
};

struct vt_qp_opts {
	enum ibv_qp_type type;
	uint32_t max_send_wr, max_recv_wr, max_send_sge, max_recv_sge;
	uint32_t max_inline;
	int cqe;
	struct ibv_srq *srq;
	struct ibv_xrcd *xrcd;	/* IBV_QPT_XRC_RECV: its domain */
};

/* Connection parameters for vt_connect(); zero means "default". */
struct vt_conn_opts {
	uint8_t rnr_retry;	/* default 7 (infinite) */
	uint8_t retry_cnt;	/* default 7 */
	uint8_t min_rnr_timer;	/* default 1 (0.01 ms) */
	uint8_t timeout;	/* default 14 (~67 ms) */
	bool set_rnr_retry;	/* use rnr_retry even when 0 */
	int access;		/* default LOCAL_WRITE|REMOTE_* */
	/* Two processes (tests/verify.c --server/--client, tests/multihost):
	 * the peer's GID (NULL: our own), explicit PSNs, a path MTU. */
	const union ibv_gid *dgid;
	bool set_psn;		/* use rq_psn/sq_psn instead of 0x1234 */
	uint32_t rq_psn, sq_psn;
	enum ibv_mtu path_mtu;	/* 0: the port's active MTU */
};

extern int vt_verbose;

/* Open device @name (NULL: first device); @gid_index < 0: auto. */
int vt_open(struct vt_dev *d, const char *name, int gid_index);
void vt_close(struct vt_dev *d);

int vt_qp_create(struct vt_dev *d, struct vt_qp *q, const struct vt_qp_opts *o);
void vt_qp_destroy(struct vt_qp *q);

/* Bring @a and @b to RTS, each addressed to the other through the local GID. */
int vt_connect(struct vt_dev *d, struct vt_qp *a, struct vt_qp *b,
	       const struct vt_conn_opts *co);
int vt_qp_to_init(struct vt_dev *d, struct vt_qp *q, int access);
int vt_qp_to_rtr(struct vt_dev *d, struct vt_qp *q, uint32_t dest_qpn,
		 const struct vt_conn_opts *co);
int vt_qp_to_rts(struct vt_dev *d, struct vt_qp *q,
		 const struct vt_conn_opts *co);
void vt_fill_ah_attr(struct vt_dev *d, struct ibv_ah_attr *ah);

/*
 * Poll @cq until @n completions are in @wc or @ms milliseconds passed.
 * Returns the number polled (< n on timeout), or -1 if ibv_poll_cq failed.
 */
int vt_poll(struct ibv_cq *cq, struct ibv_wc *wc, int n, int ms);
/* True if no completion shows up on @cq within @ms milliseconds. */
bool vt_cq_quiet(struct ibv_cq *cq, int ms, struct ibv_wc *extra);

/* Deterministic PRNG (splitmix64 seeded xorshift64*). */
void vt_rand_seed(uint64_t seed);
uint64_t vt_rand(void);
uint64_t vt_rand_range(uint64_t lo, uint64_t hi);	/* inclusive */
void vt_rand_fill(void *buf, size_t len);

/* Fill @buf from a private generator seeded with @seed (same bytes for the
 * same seed in any process; the global stream is not touched). */
void vt_fill_seeded(void *buf, size_t len, uint64_t seed);

const char *vt_qpt_str(enum ibv_qp_type t);
const char *vt_state_str(enum ibv_qp_state s);
uint64_t vt_now_ms(void);

/*
 * A TCP side channel between two processes (the pingpongs' exchange,
 * with framing).  Every wait is bounded by @ms milliseconds.
 *   vt_tcp_listen("PORT")          listening socket (IPv6 any, dual stack;
 *                                  IPv4 any when there is no IPv6)
 *   vt_tcp_accept(lfd, ms)         one connection
 *   vt_tcp_connect("HOST:PORT", ms) retries until the peer listens;
 *                                  HOST may be "[v6addr]"
 * Messages: u32 type, u32 length, payload (network byte order).
 * vt_msg_recv returns the payload length, -1 on error, EOF or timeout
 * (with a message on stderr).
 */
int vt_tcp_listen(const char *port);
int vt_tcp_accept(int lfd, int ms);
int vt_tcp_connect(const char *hostport, int ms);
int vt_msg_send(int fd, uint32_t type, const void *payload, uint32_t len);
int vt_msg_recv(int fd, uint32_t *type, void *buf, uint32_t cap, int ms);

/* Building and parsing payloads in network byte order. */
struct vt_wbuf {
	uint8_t *p;
	size_t len, cap, pos;	/* pos: read position */
	bool err;		/* overflow or short read */
};
void vt_put8(struct vt_wbuf *b, uint8_t v);
void vt_put32(struct vt_wbuf *b, uint32_t v);
void vt_put64(struct vt_wbuf *b, uint64_t v);
void vt_putmem(struct vt_wbuf *b, const void *v, size_t n);
uint8_t vt_get8(struct vt_wbuf *b);
uint32_t vt_get32(struct vt_wbuf *b);
uint64_t vt_get64(struct vt_wbuf *b);
void vt_getmem(struct vt_wbuf *b, void *v, size_t n);

/* The peer's GID as text (for messages). */
const char *vt_gid_str(const union ibv_gid *g, char *buf, size_t len);

#endif
