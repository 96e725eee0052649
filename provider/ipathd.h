/* SPDX-License-Identifier: MIT */
/*
 * libipathd-rdmav34.so: the verbs provider.  A thin client of the daemon:
 * control verbs become requests on the context's control socket (ctl.c,
 * verbs.c), the data path touches only the shared rings (post.c), and
 * registered memory lives in the memfd arena (mem.c).
 *
 *   ipathd.c  registration, device, context, ops table, query verbs
 *   ctl.c     control socket: connect, HELLO, one request at a time
 *   verbs.c   PD, MR, CQ, SRQ, QP, AH control verbs
 *   post.c    post_send/post_recv/post_srq_recv/poll_cq, ibv_cq_ex, ibv_qp_ex
 *   mem.c     the memfd arena (mem.h)
 *   channel.c completion channels (libibverbs' write/read/close redirected)
 *   mw.c      memory windows
 *   fatal.c   the daemon's death: DEVICE_FATAL, flush, dead control path
 */
#ifndef IPATHD_PROVIDER_H
#define IPATHD_PROVIDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "ipathd/ctl.h"
#include "ipathd/ring.h"
#include "ipathd/verbs_abi.h"

#define IPD_PFX "ipathd: "

struct ipd_device {
	struct verbs_device vdev;
};

struct ipd_context {
	struct verbs_context vctx;
	int sock;			/* control socket */
	pthread_mutex_t ctl_lock;	/* one request/response at a time */
	struct ipd_client_page *page;	/* daemon_sleeping flag */
	size_t page_len;
	int doorbell_fd;		/* eventfd: wake the daemon */
	uint32_t client_id;
	pid_t pid;			/* process that opened the context */
	struct ipd_context *chan_next;	/* channel.c: cmd_fd registry */
	/* fatal.c: the daemon's death (docs/design.md "Daemon failure") */
	int async_wr;			/* our write end of the async pipe */
	_Atomic bool dead;		/* the control socket hung up */
	_Atomic bool dying;		/* ipd_fatal_mark() has begun */
	pthread_t mon;			/* waits for the hang-up */
	bool mon_running;
	int mon_stop;			/* eventfd: stop the monitor */
	pthread_mutex_t qp_lock;	/* guards qps */
	struct ipd_qp *qps;		/* linked by fatal_next */
	/* app_tx.c: registered MRs by lkey, for SGEs sent from here */
	pthread_spinlock_t mr_lock;
	struct ipd_mr *mr_hash[64];
	/* app_tx.c: UDP sockets by source address, shared by the QPs */
	pthread_mutex_t tx_lock;
	struct ipd_tx_sock *tx_socks;
	unsigned int tx_ports;		/* of them bound to a QP's port */
};

/* app_tx.c: a UDP socket bound to one source address and port: the
 * port a QP's packets leave from (want), or 0 for an ephemeral one. */
struct ipd_tx_sock {
	struct ipd_tx_sock *next;
	uint8_t src[16];
	int fd;				/* -1: cannot be bound */
	uint16_t want;
	uint16_t sport;			/* the port bound */
	unsigned int refs;		/* QPs sending from it (qp->tx) */
};

/* app_tx.c: at most this many sockets per context bound to a port the
 * daemon published at once (as many as the daemon sends from per family,
 * daemon/link_udp.c: 63 ports of one flow each, 8 shared; the cap counts
 * both families and every source address together); a socket closes with
 * the last QP sending from it; QPs beyond them send from the ephemeral
 * one. */
#define IPD_APP_TX_PORTS 71
/* app_tx.c: how long to spin on the daemon's ACK flag before yielding,
 * and to wait for it at most. */
#define IPD_APP_TX_ACK_SPIN_NS 20000u
#define IPD_APP_TX_ACK_WAIT_NS 100000000u

/* A ring as the client maps it (layout in ipathd/ring.h). */
struct ipd_uring {
	struct ipd_ring_hdr *hdr;
	size_t map_len;
	uint32_t size;			/* slots, power of two */
	uint32_t slot_size;
	pthread_spinlock_t lock;	/* serialises this side's users */
};

struct ipd_cq {
	struct verbs_cq vcq;
	struct ipd_uring ring;
	uint64_t wc_flags;		/* IBV_WC_EX_WITH_* asked at create */
	struct ipd_cqe *cur;		/* ibv_cq_ex: entry being read */
	/* channel.c, under its lock: the completion channel, if any */
	struct ipd_chan *chan;
	struct ipd_cq *chan_next;	/* CQs of the same channel */
	uint32_t events_read;		/* events ibv_get_cq_event returned */
	/* fatal.c, under the CQ lock: the daemon's last prod, once dead */
	bool flushing;
	uint32_t daemon_prod;
};

struct ipd_srq {
	struct verbs_srq vsrq;
	struct ipd_uring ring;
	uint32_t max_sge;
};

struct ipd_qp {
	struct verbs_qp vqp;
	struct ipd_uring sq;
	struct ipd_uring rq;		/* unmapped (hdr NULL) with an SRQ */
	struct ibv_qp_cap cap;		/* actual capabilities */
	bool sq_sig_all;
	/* ibv_qp_ex builder state, valid between wr_start and wr_complete */
	struct ipd_send_wqe *wr_cur;	/* WQE being built, NULL if none */
	uint32_t wr_prod;		/* producer index incl. built WQEs */
	int wr_err;			/* first error since wr_start */
	/* wr_bind_mw/wr_local_inv of the batch, run at wr_complete after
	 * the WQEs before them (post.c); allocated at first use */
	struct ipd_wr_defer *defer;
	unsigned int ndefer;
	bool opened;			/* ibv_open_qp: a use of a TGT QP */
	/* app_tx.c: the context's socket this QP's packets go out on; off:
	 * a send failed, leave everything to the daemon */
	struct ipd_tx_sock *tx;
	uint16_t tx_want;		/* the port tx was looked up for */
	bool tx_off;
	struct ipd_qp *fatal_next;	/* fatal.c: the context's QPs */
};

struct ipd_ah {
	struct ibv_ah ibv_ah;		/* ibv_ah.handle = daemon handle */
};

struct ipd_mr {
	struct verbs_mr vmr;		/* ibv_mr.handle = daemon handle */
	/* app_tx.c: the context's lkey table; the registration as made
	 * (libibverbs fills ibv_mr's pd, addr, length only after reg_mr) */
	struct ipd_mr *hnext;
	struct ibv_pd *pd;
	const uint8_t *addr;
	uint64_t length;
	uint64_t iova;			/* the address SGEs use for addr */
};

/* ibv_context sits at the end of verbs_context (which grows downwards). */
static inline struct ipd_context *to_ictx(struct ibv_context *ctx)
{
	return (struct ipd_context *)(void *)((char *)ctx -
		offsetof(struct ipd_context, vctx.context));
}

static inline struct ipd_cq *to_icq(struct ibv_cq *cq)
{
	return (struct ipd_cq *)(void *)cq;
}

static inline struct ipd_cq *cqex_to_icq(struct ibv_cq_ex *cq)
{
	return (struct ipd_cq *)(void *)cq;
}

static inline struct ipd_srq *to_isrq(struct ibv_srq *srq)
{
	return (struct ipd_srq *)(void *)srq;
}

static inline struct verbs_xrcd *to_vxrcd(struct ibv_xrcd *xrcd)
{
	return (struct verbs_xrcd *)(void *)xrcd;
}

static inline struct ipd_qp *to_iqp(struct ibv_qp *qp)
{
	return (struct ipd_qp *)(void *)qp;
}

static inline struct ipd_qp *qpex_to_iqp(struct ibv_qp_ex *qp)
{
	return (struct ipd_qp *)(void *)qp;
}

/* ctl.c */
int ipd_ctl_connect(struct ipd_context *ctx, const char *sysfs_dir);
void ipd_ctl_disconnect(struct ipd_context *ctx);
/*
 * Send req (with nfds descriptors) and wait for the answer.  Returns 0 with
 * *resp set (free with ipd_ctl_free), or a positive errno: the daemon's
 * Response.err or a transport error.  Received descriptors go to rfds
 * (closed when the call fails); pass rfds NULL to close them all.
 */
int ipd_ctl_request(struct ipd_context *ctx, Ipd__Request *req,
		    const int *fds, int nfds, Ipd__Response **resp,
		    int *rfds, int *nrfds, int maxrfds);
void ipd_ctl_free(Ipd__Response *resp);
/* Destroy a daemon object; 0 or a positive errno. */
int ipd_ctl_destroy(struct ipd_context *ctx, Ipd__ObjType type,
		    uint32_t handle);

/* fatal.c: daemon failure (docs/design.md "Daemon failure") */
int ipd_fatal_start(struct ipd_context *ctx);
void ipd_fatal_stop(struct ipd_context *ctx);
/* The daemon is gone: once, queue IBV_EVENT_DEVICE_FATAL. */
void ipd_fatal_mark(struct ipd_context *ctx);
bool ipd_fatal_dead(struct ipd_context *ctx);
void ipd_fatal_qp_add(struct ipd_qp *qp);
void ipd_fatal_qp_del(struct ipd_qp *qp);
/* With cq's lock held: if the daemon is gone, write flush completions for
 * the outstanding work of cq's QPs; returns how many. */
uint32_t ipd_fatal_flush(struct ipd_cq *cq);
/* Something to poll on cq (completions or work to flush). */
bool ipd_fatal_cq_pending(struct ipd_cq *cq);
/* channel.c: completion channels (docs/design.md) */
struct ipd_chan;
/* Install the libibverbs hooks once; false when channels are unavailable. */
bool ipd_chan_init(void);
void ipd_chan_ctx_add(struct ipd_context *ctx);
void ipd_chan_ctx_del(struct ipd_context *ctx);
/* Creating a CQ on a channel: begin (EINVAL unless channel is one of
 * ctx's), then end once the CQ exists or abort if it does not. */
int ipd_chan_bind_begin(struct ipd_context *ctx,
			struct ibv_comp_channel *channel,
			struct ipd_chan **out, uint32_t *handle);
void ipd_chan_bind_end(struct ipd_chan *ch, struct ipd_cq *cq);
void ipd_chan_bind_abort(struct ipd_chan *ch);
/* The daemon destroyed cq: unbind and wait for the events to be acked. */
void ipd_chan_unbind(struct ipd_cq *cq);

/* mw.c: memory windows (docs/design.md) */
struct ibv_mw *ipd_alloc_mw(struct ibv_pd *pd, enum ibv_mw_type type);
int ipd_dealloc_mw(struct ibv_mw *mw);
int ipd_bind_mw(struct ibv_qp *qp, struct ibv_mw *mw,
		struct ibv_mw_bind *mw_bind);
/* IBV_WR_BIND_MW / IBV_WR_LOCAL_INV from post_send, after the WQEs before
 * index prod retired; called without the SQ lock. */
int ipd_mw_post(struct ipd_qp *qp, const struct ibv_send_wr *wr,
		uint32_t prod);

/* Map a ring memfd (closes fd).  0 or a positive errno. */
int ipd_uring_map(struct ipd_uring *r, int fd, uint32_t size,
		  uint32_t slot_size);
void ipd_uring_unmap(struct ipd_uring *r);

/* verbs.c: control verbs */
struct ibv_pd *ipd_alloc_pd(struct ibv_context *context);
int ipd_dealloc_pd(struct ibv_pd *pd);
struct ibv_mr *ipd_reg_mr(struct ibv_pd *pd, void *addr, size_t length,
			  uint64_t hca_va, int access);
int ipd_dereg_mr(struct verbs_mr *vmr);
struct ibv_cq *ipd_create_cq(struct ibv_context *context, int cqe,
			     struct ibv_comp_channel *channel, int comp_vector);
struct ibv_cq_ex *ipd_create_cq_ex(struct ibv_context *context,
				   struct ibv_cq_init_attr_ex *attr);
int ipd_resize_cq(struct ibv_cq *cq, int cqe);
int ipd_destroy_cq(struct ibv_cq *cq);
struct ibv_srq *ipd_create_srq(struct ibv_pd *pd,
			       struct ibv_srq_init_attr *attr);
struct ibv_srq *ipd_create_srq_ex(struct ibv_context *context,
				  struct ibv_srq_init_attr_ex *attr);
int ipd_get_srq_num(struct ibv_srq *srq, uint32_t *srq_num);
struct ibv_xrcd *ipd_open_xrcd(struct ibv_context *context,
			       struct ibv_xrcd_init_attr *attr);
int ipd_close_xrcd(struct ibv_xrcd *xrcd);
struct ibv_qp *ipd_open_qp(struct ibv_context *context,
			   struct ibv_qp_open_attr *attr);
int ipd_modify_srq(struct ibv_srq *srq, struct ibv_srq_attr *attr, int mask);
int ipd_query_srq(struct ibv_srq *srq, struct ibv_srq_attr *attr);
int ipd_destroy_srq(struct ibv_srq *srq);
struct ibv_qp *ipd_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attr);
struct ibv_qp *ipd_create_qp_ex(struct ibv_context *context,
				struct ibv_qp_init_attr_ex *attr);
int ipd_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask);
int ipd_query_qp(struct ibv_qp *qp, struct ibv_qp_attr *attr, int mask,
		 struct ibv_qp_init_attr *init_attr);
int ipd_destroy_qp(struct ibv_qp *qp);
struct ibv_ah *ipd_create_ah(struct ibv_pd *pd, struct ibv_ah_attr *attr);
int ipd_destroy_ah(struct ibv_ah *ah);

/* post.c: data path */
/* app_tx.c: an idle RC QP's single-packet inline SEND/WRITE sent from
 * the application (docs/design.md "Application transmit") */
#define IPD_APP_TX_PAYLOAD 4096u
struct ipd_app_pkt {
	uint32_t len;
	socklen_t dlen;
	struct sockaddr_storage dst;
	/* BTH, RETH, ImmDt, payload, pad, ICRC */
	uint8_t buf[32 + IPD_APP_TX_PAYLOAD + 3 + 4];
};
/* Before the SQ lock: false when a post must go through the daemon (its
 * ACK flag stayed up, the daemon is gone). */
bool ipd_app_tx_ack_wait(struct ipd_qp *qp);
/* Under the SQ lock, WQE w (ring index idx) built: true when it may go
 * from here; then p holds its packet and w is marked. */
bool ipd_app_tx_prepare(struct ipd_qp *qp, struct ipd_send_wqe *w,
			uint32_t idx, struct ipd_app_pkt *p);
/* After the WQE was published. */
void ipd_app_tx_send(struct ipd_qp *qp, const struct ipd_app_pkt *p);
/* At context creation and release. */
void ipd_app_tx_ctx_init(struct ipd_context *ctx);
void ipd_app_tx_ctx_fini(struct ipd_context *ctx);
void ipd_app_tx_qp_fini(struct ipd_qp *qp);
/* The context's MRs by lkey (added once registered, removed before
 * deregistration). */
void ipd_app_tx_mr_add(struct ipd_context *ctx, struct ipd_mr *mr);
void ipd_app_tx_mr_del(struct ipd_context *ctx, struct ipd_mr *mr);

int ipd_post_send(struct ibv_qp *qp, struct ibv_send_wr *wr,
		  struct ibv_send_wr **bad_wr);
int ipd_post_recv(struct ibv_qp *qp, struct ibv_recv_wr *wr,
		  struct ibv_recv_wr **bad_wr);
int ipd_post_srq_recv(struct ibv_srq *srq, struct ibv_recv_wr *wr,
		      struct ibv_recv_wr **bad_wr);
int ipd_poll_cq(struct ibv_cq *cq, int num_entries, struct ibv_wc *wc);
int ipd_req_notify_cq(struct ibv_cq *cq, int solicited_only);
/* Wire the ibv_cq_ex polling functions (wc_flags already checked). */
void ipd_cq_ex_init(struct ipd_cq *cq);
/* Wire the ibv_qp_ex work request builders. */
void ipd_qp_ex_init(struct ipd_qp *qp);
/* IBV_QP_EX_WITH_* flags the builders support. */
#define IPD_SUPPORTED_SEND_OPS                                               \
	(IBV_QP_EX_WITH_SEND | IBV_QP_EX_WITH_SEND_WITH_IMM |                \
	 IBV_QP_EX_WITH_SEND_WITH_INV | IBV_QP_EX_WITH_RDMA_WRITE |          \
	 IBV_QP_EX_WITH_RDMA_WRITE_WITH_IMM | IBV_QP_EX_WITH_RDMA_READ |     \
	 IBV_QP_EX_WITH_ATOMIC_CMP_AND_SWP |                                 \
	 IBV_QP_EX_WITH_ATOMIC_FETCH_AND_ADD | IBV_QP_EX_WITH_BIND_MW |      \
	 IBV_QP_EX_WITH_LOCAL_INV)
/* IBV_WC_EX_WITH_* flags the ibv_cq_ex readers support. */
#define IPD_SUPPORTED_WC_FLAGS                                               \
	(IBV_WC_EX_WITH_BYTE_LEN | IBV_WC_EX_WITH_IMM |                      \
	 IBV_WC_EX_WITH_QP_NUM | IBV_WC_EX_WITH_SRC_QP |                     \
	 IBV_WC_EX_WITH_SLID | IBV_WC_EX_WITH_SL |                           \
	 IBV_WC_EX_WITH_DLID_PATH_BITS)

#endif
