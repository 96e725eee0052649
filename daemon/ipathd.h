/* SPDX-License-Identifier: MIT */
/*
 * ipathd core: the objects every daemon file shares.  Ownership of files:
 *   main.c loop.c config.c log.c sysfs.c ctl.c    daemon infrastructure
 *   table.c queue.c pd.c mr.c cq.c srq.c ah.c qp.c  verbs objects (+ handlers)
 *   xrcd.c                                          XRC domains
 *   engine.h opcode.c hdr.h pkt.c req.c resp.c comp.c sge.c net.c link_loop.c
 *                                                   transport engine
 * A file only touches another concern through the functions declared here
 * or in engine.h.
 */
#ifndef IPATHD_H
#define IPATHD_H

#include <ev.h>
#include <infiniband/verbs.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "ipathd/ctl.h"
#include "ipathd/ring.h"
#include "log.h"

struct ipd_dev;
struct ipd_client;
struct ipd_qp;
struct ipd_engine_qp; /* engine.h */
struct ipd_link;      /* engine.h */
struct ipd_engine;    /* engine_priv.h */

/* ------------------------------------------------------------------ */
/* Configuration (config.c): ipathd.conf, then command-line overrides.  */

#define IPD_MAX_GIDS 16
#define IPD_MAX_ADDRS 8

struct ipd_config {
	char dev_name[64];        /* [device] name = ipath0 */
	char netdevs[256];        /* [device] netdev = eth0,lo ("" = all up) */
	char addrs[IPD_MAX_ADDRS][64]; /* [device] address = extra GID IPs */
	int naddrs;
	unsigned int mtu;         /* [device] mtu = 0 (auto from netdev) | 256..4096 */
	bool dma_capable;         /* [device] dma_capable = no */
	char socket_path[256];    /* [paths] socket */
	char sysfs_path[256];     /* [paths] sysfs */
	char dev_node[64];        /* [paths] dev_node = uverbs0 (/dev/infiniband/) */
	char link_type[16];       /* [link] type = udp | loopback | fabric */
	unsigned int udp_port;    /* [link] udp_port = 4791 */
	unsigned int peer_port;   /* [link] peer_port = 0 (udp_port + 1) */
	char fabric_provider[64]; /* [link] fabric_provider = udp;ofi_rxd */
	bool udp_gso;             /* [link] udp_gso = yes: UDP_SEGMENT on send */
	bool udp_gro;             /* [link] udp_gro = yes: UDP_GRO on receive */
	char udp_rx[8];           /* [link] udp_rx = udp | packet (IPv4 receive) */
	/* [loopback] impairment for tests: percentages 0..100 */
	double loop_loss, loop_dup, loop_reorder;
	/* [loopback] direct = yes: RC WRITE/SEND/READ payloads between QPs of
	 * this daemon are copied once, memory to memory (docs/design.md
	 * "Direct loopback") */
	bool loop_direct;
	/* [limits] */
	unsigned int max_qp, max_qp_wr, max_sge, max_cq, max_cqe, max_mr,
		max_pd, max_srq, max_srq_wr, max_ah, max_inline,
		max_qp_rd_atom, max_clients;
	unsigned long long max_mr_size;
	/* [engine] */
	bool tail_probe;          /* tail_probe = yes: RC tail loss probe */
	/* selective_retransmit = yes: keep out-of-order packets, resend
	 * only NAKed ones, with ipathd peers that advertise it (ooo.c) */
	bool selective_retransmit;
	/* app_tx = yes: clients send an idle RC QP's single-packet
	 * SEND/WRITE themselves (app_tx.c); on by default */
	bool app_tx;
	/* [daemon] */
	int log_level;            /* IPD_LOG_* */
	unsigned int spin_us;     /* busy-poll this long after work before sleeping */
	char user[64];            /* drop privileges to this user after setup ("" = stay) */
};

void ipd_config_defaults(struct ipd_config *cfg);
/* Load an INI file over cfg.  0 or -errno; errors are logged with line numbers. */
int ipd_config_load(struct ipd_config *cfg, const char *path);
/* Parse argv over cfg (after the file).  0, 1 = exit(0) (--help), or -EINVAL. */
int ipd_config_args(struct ipd_config *cfg, int argc, char **argv,
		    const char **config_path);

/* ------------------------------------------------------------------ */
/* Handle tables (table.c): small integers -> objects.                  */

struct ipd_table {
	void **slots;
	uint32_t nslots;   /* capacity */
	uint32_t count;
	uint32_t max;      /* configured limit */
	uint32_t base;     /* handle of slot 0 (e.g. first QPN) */
	uint32_t next;     /* allocation cursor (handles are not reused at once) */
};

int ipd_table_init(struct ipd_table *t, uint32_t base, uint32_t max);
void ipd_table_fini(struct ipd_table *t);
/* Returns the handle, or 0 with errno (ENOMEM when full). */
uint32_t ipd_table_insert(struct ipd_table *t, void *obj);
void *ipd_table_get(const struct ipd_table *t, uint32_t handle);
void ipd_table_remove(struct ipd_table *t, uint32_t handle);

/* ------------------------------------------------------------------ */
/* A shared-memory ring as the daemon sees it (queue.c).                 */

struct ipd_queue {
	struct ipd_ring_hdr *hdr;  /* shared mapping */
	size_t map_len;
	uint32_t size;             /* slots, power of two (daemon's own copy) */
	uint32_t slot_size;
	uint32_t cons;             /* daemon-consumed rings: next slot to read */
	uint32_t prod;             /* daemon-produced rings (CQ): next slot */
};

/* Create a memfd-backed ring with at least min_slots slots.  *memfd_out is
 * the descriptor to send to the client (caller closes it after sending). */
int ipd_queue_create(struct ipd_queue *q, uint32_t min_slots,
		     uint32_t slot_size, const char *name, int *memfd_out);
void ipd_queue_destroy(struct ipd_queue *q);
/* Client-produced rings: number of slots ready to read (0 if the client
 * published an impossible producer index; that is counted and logged). */
uint32_t ipd_queue_ready(struct ipd_queue *q);
/* Copy slot q->cons into dst (slot_size bytes) and advance cons (released
 * to the client only by ipd_queue_release). */
void ipd_queue_copy_next(struct ipd_queue *q, void *dst);
/* Tell the client that slots up to new_cons are free. */
void ipd_queue_release(struct ipd_queue *q, uint32_t new_cons);
/* Around "release the slot, then post its completion" on cq (NULL: no
 * completion follows): note the WQE so that a client outliving the daemon
 * can tell whether that completion was posted (ipathd/ring.h). */
void ipd_queue_retire_begin(struct ipd_queue *q, uint32_t new_cons,
			    uint64_t wr_id, const struct ipd_queue *cq);
void ipd_queue_retire_end(struct ipd_queue *q);

/* ------------------------------------------------------------------ */
/* Verbs objects.  Every object belongs to one client and one device.  */

enum ipd_obj_type {
	IPD_OBJ_PD = 1,
	IPD_OBJ_MR,
	IPD_OBJ_CQ,
	IPD_OBJ_SRQ,
	IPD_OBJ_QP,
	IPD_OBJ_AH,
	IPD_OBJ_XRCD,
};

/* An XRC domain (xrcd.c): what XRC SRQs and XRC_RECV (TGT) QPs belong
 * to.  Domains opened through the same file are one domain, shared by
 * every client of the daemon (IBA 11.2.x / ibv_open_xrcd). */
struct ipd_xrcd_dom;

/* One client's open of a domain (its ibv_xrcd). */
struct ipd_xrcd {
	uint32_t handle;
	struct ipd_client *client;
	struct ipd_xrcd_dom *dom;
	unsigned int refcnt;       /* SRQs, TGT QPs and opened QPs using it */
};

struct ipd_pd {
	uint32_t handle;
	struct ipd_client *client;
	unsigned int refcnt;       /* objects created on this PD */
	uint64_t serial;           /* unique for the daemon's lifetime */
};

struct ipd_mr {
	uint32_t handle;           /* index in dev->mrs */
	uint32_t lkey, rkey;       /* handle << 8 | key byte */
	struct ipd_client *client;
	struct ipd_pd *pd;
	uint32_t access;           /* IBV_ACCESS_* */
	uint64_t addr;             /* client VA given to reg_mr */
	uint64_t iova;             /* address remote/local requests use */
	uint64_t length;
	uint8_t *map;              /* daemon mapping of the page-rounded range */
	size_t map_len;
	uint32_t page_off;         /* addr - page_round_down(addr) */
	unsigned int refcnt;       /* engine references (in-flight ops) */
	/* mr.c: pages of a client file the client truncated, replaced by
	 * the SIGBUS handler; logged once, from the loop. */
	volatile sig_atomic_t truncated_faults;
	bool truncated_logged;
};

/* What an access does to the memory (the DMA direction an IOMMU checks). */
#define IPD_MEM_READ 1u    /* device reads: send data, READ/atomic source */
#define IPD_MEM_WRITE 2u   /* device writes: receive, WRITE, READ response */

/* IPD_MEM_* for an access that needs the IBV_ACCESS_* flags in access
 * (0: a local read, as a send's gather list). */
static inline unsigned int ipd_access_rw(uint32_t access)
{
	unsigned int rw = 0;

	if (access & (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE |
		      IBV_ACCESS_REMOTE_ATOMIC))
		rw |= IPD_MEM_WRITE;
	if (!access || (access & (IBV_ACCESS_REMOTE_READ |
				  IBV_ACCESS_REMOTE_ATOMIC)))
		rw |= IPD_MEM_READ;
	return rw;
}

/* mr.c: catch SIGBUS on pages of client files truncated under an MR
 * (called once at startup, after sanitizer runtimes installed theirs);
 * fini restores the previous handler.  0 or -errno. */
int ipd_mr_guard_init(void);
void ipd_mr_guard_fini(void);

/* Translate [iova, iova+len) of mr to a daemon pointer for an access doing
 * rw (IPD_MEM_*; 0 checks bounds only); NULL when out of bounds (len 0 at
 * the end is in bounds) or, for kernel memory behind the IOMMU, when a
 * page's mapping direction does not allow rw. */
void *ipd_mr_ptr(struct ipd_mr *mr, uint64_t iova, uint64_t len,
		 unsigned int rw);
/* Look up an lkey or rkey exactly (the key byte must match). */
struct ipd_mr *ipd_mr_lookup(struct ipd_dev *dev, uint32_t key);

struct ipd_cq {
	uint32_t handle;
	struct ipd_client *client;
	uint64_t user_handle;
	struct ipd_queue q;        /* daemon produces */
	uint32_t cqe;              /* entries the application asked for/got */
	bool overflowed;
	unsigned int refcnt;       /* QPs using it */
	struct ipd_channel *channel;  /* completion channel (cq.c), or NULL */
	bool event_queued;            /* waits in channel->queued */
	TAILQ_ENTRY(ipd_cq) event_link;
};

/* Post one completion.  0, or -ENOSPC on overflow (the CQ then reports
 * IBV_EVENT_CQ_ERR once and the caller moves the QP to the error state). */
int ipd_cq_post(struct ipd_cq *cq, const struct ipd_cqe *cqe);

struct ipd_srq {
	uint32_t handle;
	struct ipd_client *client;
	struct ipd_pd *pd;
	uint64_t user_handle;
	struct ipd_queue q;        /* client produces */
	uint32_t max_wr, max_sge, limit;
	bool limit_armed;
	unsigned int refcnt;       /* QPs using it */
	/* IBV_SRQT_XRC: receives for TGT QPs of the domain; the handle is
	 * the SRQ number XRCETH names. */
	struct ipd_xrcd *xrcd;     /* NULL: a basic SRQ */
	struct ipd_cq *cq;         /* XRC: where its completions go */
};

/* The XRC SRQ numbered srqn if a TGT QP of dom may use it, else NULL. */
struct ipd_srq *ipd_srq_xrc_lookup(struct ipd_dev *dev, uint32_t srqn,
				   const struct ipd_xrcd_dom *dom);

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Outstanding RDMA READ/atomic operations per QP at most: the responder
 * keeps the result of each (IPD_RESP_RES in engine_priv.h) to answer a
 * duplicate request, as IBA 9.7.5.1.4 asks, so no more may be allowed. */
#define IPD_MAX_RD_ATOM 32

/* A receive WQE as the daemon keeps it (copied out of the ring). */
#define IPD_MAX_SGE 32
struct ipd_rwqe {
	uint64_t wr_id;
	uint32_t num_sge;
	struct ipd_sge sge[IPD_MAX_SGE];
};

/* Take the next receive WQE (copied) from the SRQ; fires the limit event
 * when armed.  0, -EAGAIN when empty, or -EINVAL when the client wrote a
 * WQE with more than max_sge entries (it is consumed and dropped). */
int ipd_srq_take(struct ipd_srq *srq, struct ipd_rwqe *out);

/* An address vector, resolved to where packets go. */
struct ipd_av {
	union ibv_gid dgid;
	uint8_t sgid_index;
	uint8_t hop_limit;
	uint8_t traffic_class;
	uint8_t sl;
	uint32_t flow_label;
	struct sockaddr_storage dst;   /* IP/UDP destination from dgid */
	struct sockaddr_storage src;   /* our address for sgid_index */
	bool local;                    /* dgid is one of this daemon's GIDs */
};

struct ipd_ah {
	uint32_t handle;
	struct ipd_client *client;
	struct ipd_pd *pd;
	struct ipd_av av;
};

/* Resolve an ibv_ah_attr into av.  0 or -EINVAL (bad sgid index, no GRH on
 * RoCE, unusable dgid). */
int ipd_av_resolve(struct ipd_dev *dev, const struct ibv_ah_attr *attr,
		   struct ipd_av *av);

struct ipd_qp {
	uint32_t qpn;
	uint64_t serial;              /* unique for the daemon's lifetime */
	struct ipd_client *client;
	struct ipd_dev *dev;
	struct ipd_pd *pd;
	struct ipd_cq *scq, *rcq;
	struct ipd_srq *srq;          /* NULL: the QP has its own RQ */
	/* XRC_RECV (TGT): its domain; no PD, CQs or rings of its own.
	 * XRC_SEND (INI) has a PD and send CQ and no receive side. */
	struct ipd_xrcd *xrcd;        /* the creator's open (NULL once the
				       * creator destroyed the QP) */
	struct ipd_xrcd_dom *xrc_dom; /* TGT: the domain, while it lives */
	/* TGT: ibv_open_qp uses (xrcd.c).  The QP lives while its creator
	 * or any of them does: client is NULL once the creator is gone. */
	LIST_HEAD(, ipd_qp_open) opens;
	enum ibv_qp_type type;
	bool sq_sig_all;
	uint64_t user_handle;
	struct ibv_qp_cap cap;        /* actual capabilities */
	struct ibv_qp_attr attr;      /* current attributes (attr.qp_state) */
	struct ipd_av av;             /* resolved primary path (RC/UC) */
	unsigned int mtu;             /* bytes, from attr.path_mtu */
	struct ipd_queue sq;          /* client produces send WQEs */
	struct ipd_queue rq;          /* client produces recv WQEs (no SRQ) */
	struct ipd_engine_qp *eng;    /* engine state (engine.h) */
	TAILQ_ENTRY(ipd_qp) dev_link; /* dev->qps */
};

/* One ibv_open_qp of a TGT QP: the process's own ibv_qp (user_handle)
 * gets the QP's async events too, as the kernel's per-open handler does. */
struct ipd_qp_open {
	struct ipd_client *client;
	struct ipd_xrcd *xrcd;        /* the open it was made through */
	uint64_t user_handle;
	LIST_ENTRY(ipd_qp_open) link;
};

struct ipd_qp *ipd_qp_lookup(struct ipd_dev *dev, uint32_t qpn);
/* Any client's PD by handle (the engine's direct packets, link_loop.c). */
struct ipd_pd *ipd_pd_lookup(struct ipd_dev *dev, uint32_t handle);
/* Raise an async event on qp for its creator and every opener. */
void ipd_qp_async_event(struct ipd_qp *qp, enum ibv_event_type ev);
/* Free a QP nobody holds any more (no creator, no opens). */
void ipd_qp_free(struct ipd_qp *qp);
/* Move a QP to the error state from inside the daemon (engine errors):
 * sets attr.qp_state, tells the engine to flush, raises the async event. */
void ipd_qp_set_error(struct ipd_qp *qp, enum ibv_event_type ev);

/* ------------------------------------------------------------------ */
/* Clients (ctl.c).                                                     */

struct ipd_client {
	uint32_t id;
	struct ipd_dev *dev;
	int sock;
	ev_io sock_w;
	pid_t pid;
	uid_t uid;
	char name[64];
	struct ipd_client_page *page; /* shared with the client */
	int page_fd;
	int doorbell_fd;              /* eventfd the client writes */
	ev_io doorbell_w;
	int async_fd;                 /* pipe write end, -1 until HELLO */
	bool hello_done;
	uint64_t async_dropped;
	struct ipd_capture *capture;  /* capture.c: its pcap capture, or NULL */
	TAILQ_ENTRY(ipd_client) link;
};

/* Write one async event record to the client (non-blocking; counted and
 * dropped when the client does not read). */
void ipd_async_event(struct ipd_client *client, uint64_t element,
		     enum ibv_event_type type);
/* Free everything a client owns (QPs, SRQs, CQs, AHs, MRs, PDs in that
 * order).  Implemented with the objects (objects.c callers). */
void ipd_client_release_objects(struct ipd_client *client);

/* A request being served: handlers read req, fill resp (allocating nested
 * messages with ipd_req_alloc, freed after sending) and may attach fds. */
struct ipd_req_ctx {
	struct ipd_client *client;
	const Ipd__Request *req;
	Ipd__Response *resp;
	int in_fds[IPD_CTL_MAX_FDS];  /* a handler that keeps one sets it to -1 */
	int n_in_fds;
	int out_fds[IPD_CTL_MAX_FDS]; /* closed after the response is sent */
	int n_out_fds;
	void *scratch[32];
	int n_scratch;
};

/* Zeroed memory that lives until the response is sent; NULL on failure. */
void *ipd_req_alloc(struct ipd_req_ctx *ctx, size_t size);
/* Set resp->err and resp->msg (printf-style); returns -err for chaining. */
int ipd_req_fail(struct ipd_req_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Request handlers (objects): each returns 0 or -errno (with
 * ipd_req_fail already called for a clear message). */
int ipd_handle_query_device(struct ipd_req_ctx *ctx);
int ipd_handle_query_port(struct ipd_req_ctx *ctx);
int ipd_handle_alloc_pd(struct ipd_req_ctx *ctx);
int ipd_handle_reg_mr(struct ipd_req_ctx *ctx);
int ipd_handle_create_cq(struct ipd_req_ctx *ctx);
int ipd_handle_resize_cq(struct ipd_req_ctx *ctx);
int ipd_handle_create_srq(struct ipd_req_ctx *ctx);
int ipd_handle_modify_srq(struct ipd_req_ctx *ctx);
int ipd_handle_query_srq(struct ipd_req_ctx *ctx);
int ipd_handle_create_ah(struct ipd_req_ctx *ctx);
int ipd_handle_create_qp(struct ipd_req_ctx *ctx);
int ipd_handle_modify_qp(struct ipd_req_ctx *ctx);
int ipd_handle_query_qp(struct ipd_req_ctx *ctx);
int ipd_handle_destroy(struct ipd_req_ctx *ctx);
int ipd_handle_status(struct ipd_req_ctx *ctx);
int ipd_handle_create_channel(struct ipd_req_ctx *ctx);
/* Close the completion channels a departing client created (after its
 * CQs are gone); cq.c. */
void ipd_client_release_channels(struct ipd_client *client);
/* XRC domains (xrcd.c). */
int ipd_handle_open_xrcd(struct ipd_req_ctx *ctx);
int ipd_handle_open_qp(struct ipd_req_ctx *ctx);
/* Memory windows (mw.c). */
int ipd_handle_alloc_mw(struct ipd_req_ctx *ctx);
int ipd_handle_dealloc_mw(struct ipd_req_ctx *ctx);
int ipd_handle_bind_mw(struct ipd_req_ctx *ctx);
/* Free a departing client's windows, before its MRs and PDs go. */
void ipd_client_release_mws(struct ipd_client *client);
/* Packet capture to a pcap file (capture.c). */
int ipd_handle_capture_start(struct ipd_req_ctx *ctx);
int ipd_handle_capture_stop(struct ipd_req_ctx *ctx);
/* End a departing client's capture (file flushed and closed). */
void ipd_client_release_capture(struct ipd_client *client);
/* Is key in the window key space?  Then ipd_mw_rkey_ptr resolves it for
 * remote access (NULL when not bound, out of range or not permitted). */
bool ipd_mw_key(uint32_t key);
void *ipd_mw_rkey_ptr(const struct ipd_qp *qp, struct ipd_pd *pd,
		      uint32_t rkey, uint64_t va, uint64_t len, uint32_t access);
/* SEND with Invalidate arrived on qp for rkey (IETH), a window of pd (the
 * QP's, or on an XRC TGT QP the XRC SRQ's): 0 or -EINVAL. */
int ipd_mw_remote_inv(struct ipd_qp *qp, struct ipd_pd *pd, uint32_t rkey);

/* ------------------------------------------------------------------ */
/* The device.                                                          */

struct ipd_gid {
	union ibv_gid gid;
	int family;                 /* AF_INET (IPv4-mapped) or AF_INET6 */
	char netdev[32];
	struct sockaddr_storage addr;
};

/* Counters shown by ipathctl; add fields freely (one per event). */
struct ipd_counters {
	uint64_t pkts_sent, pkts_rcvd, bytes_sent, bytes_rcvd;
	uint64_t drop_malformed, drop_icrc, drop_no_qp, drop_bad_state,
		drop_bad_pkey, drop_bad_qkey, drop_seq;
	uint64_t retransmits, rnr_naks_sent, rnr_naks_rcvd, naks_sent,
		naks_rcvd, dup_requests, timeouts;
	uint64_t read_rerequests, dup_responses; /* comp.c: READ recovery */
	uint64_t tail_probes;            /* comp.c: tail loss probes sent */
	uint64_t timewait_acks;          /* timewait.c: ACKs for destroyed QPs */
	/* ooo.c: out-of-order packets kept, ones that could not be kept
	 * (window or device limit), packets kept that ran once their turn
	 * came; req.c: packets sent again alone for a NAK */
	uint64_t ooo_held, ooo_dropped, ooo_executed, selective_resends;
	uint64_t loop_dropped, loop_duplicated, loop_reordered;
	/* direct loopback: packets sent by reference, and those dropped on
	 * arrival because their source had changed meanwhile */
	uint64_t loop_direct_pkts, loop_direct_stale;
	/* app_tx.c: packets clients sent themselves, and marked WQEs not
	 * taken as sent (sent again by the daemon) */
	uint64_t app_tx_pkts, app_tx_refused;
	uint64_t bad_ring_index, clients_cut_off;
	uint64_t udp_tx_errors;          /* link_udp.c: datagrams the kernel refused */
	/* link_udp.c: GSO datagrams the kernel took, and the packets in them */
	uint64_t udp_gso_sends, udp_gso_pkts;
	/* link_udp.c: per-port sockets closed to make room (UDP_SPORT_IDLE) */
	uint64_t udp_sport_evictions;
	/* link_fabric.c: sends dropped (backlog full, no address), sends
	 * and receives the provider failed, malformed messages */
	uint64_t fabric_tx_dropped, fabric_tx_errors, fabric_rx_errors,
		fabric_rx_bad;
	/* mr.c: pages of client files truncated under an MR, replaced */
	uint64_t mr_truncated_faults;
};

struct ipd_dev {
	struct ipd_config *cfg;
	struct ev_loop *loop;
	uint64_t node_guid;
	uint8_t mac[6];
	struct ipd_gid gids[IPD_MAX_GIDS];
	int ngids;
	struct ipd_table pds, mrs, cqs, srqs, qps, ahs, xrcds;
	LIST_HEAD(, ipd_xrcd_dom) xrcd_doms; /* xrcd.c: domains with a file */
	TAILQ_HEAD(, ipd_qp) qps_list;     /* every QP, for the engine scan */
	TAILQ_HEAD(, ipd_client) clients;
	uint32_t next_client_id;
	struct ipd_link *loop_link;        /* same-daemon delivery */
	struct ipd_link *net_link;         /* to other hosts (UDP, fabric) */
	unsigned int active_mtu;           /* bytes: cfg->mtu, or from netdev MTUs */
	struct ipd_counters cnt;
	struct ipd_engine *engine;         /* engine private (engine_priv.h) */
	bool spinning;                     /* loop.c: busy-poll phase */
	struct ipd_ctl_server *ctl;        /* ctl.c: listening socket */
	struct ipd_poller *poller;         /* loop.c: busy-poll watchers */
	/* cq.c: completion channels (an all-zero LIST_HEAD is empty). */
	LIST_HEAD(, ipd_channel) channels;
	uint32_t next_channel;
	struct ipd_table *mws;             /* mw.c: windows, while any exist */
	struct ipd_capture *captures;      /* capture.c: running captures */
	/* The last serial given to a PD or QP: a direct loopback packet
	 * names its source objects by handle and serial (link_loop.c). */
	uint64_t obj_serial;
};

/* Infrastructure called from main.c.  0 or -errno. */
int ipd_ctl_init(struct ipd_dev *dev);   /* listen on cfg->socket_path */
/* Stop accepting, release every client, remove the socket. */
void ipd_ctl_fini(struct ipd_dev *dev);
int ipd_loop_init(struct ipd_dev *dev);  /* busy-poll/sleep scheme */
void ipd_loop_fini(struct ipd_dev *dev);

/* sysfs.c: publish and withdraw the device. 0 or -errno. */
int ipd_sysfs_publish(struct ipd_dev *dev);
void ipd_sysfs_unpublish(struct ipd_dev *dev);
/* Fill dev->gids from the configured interfaces/addresses. */
int ipd_gids_discover(struct ipd_dev *dev);
/* mkdir -p: 0 or -errno. */
int ipd_mkdir_p(const char *path, mode_t mode);
/* Index of the GID equal to gid, or -1. */
int ipd_gid_find(const struct ipd_dev *dev, const union ibv_gid *gid);

#endif
