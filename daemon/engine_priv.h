/* SPDX-License-Identifier: MIT */
/*
 * Transport engine internals shared by req.c (requester), comp.c
 * (completer), resp.c (responder), sge.c, net.c, pkt.c and link_loop.c.
 * Nothing outside the engine includes this.
 */
#ifndef IPATHD_ENGINE_PRIV_H
#define IPATHD_ENGINE_PRIV_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "ipathd/hdr.h"
#include "ipathd/opcode.h"

/* Tunables (rxe's values, FACTS.md "Wire and reliability facts"). */
#define IPD_MAX_UNACKED_PSNS 128   /* requester window */
#define IPD_ACKREQ_EVERY 64        /* AckReq at least every N packets */
#define IPD_REQ_BUDGET 64          /* packets per QP per poll round */
#define IPD_RESP_RES IPD_MAX_RD_ATOM /* responder READ/atomic cache entries */
#define IPD_RESP_QUEUE 64          /* responses queued behind READ data */
#define IPD_READ_BUDGET 32         /* READ response packets per QP per round */
#define IPD_MIN_TIMEOUT_S 0.005    /* floor for the ACK timeout */
#define IPD_UD_GRH_BYTES 40
#define IPD_PKT_FREE_MAX 4096      /* packets kept on the free list */
#define IPD_ERR_RQ_POLL_S 0.1      /* RQ flush check in ERR (no doorbell) */
/* READ response PSNs the completer remembers beyond the oldest missing
 * one (a bit each); a response further ahead is dropped and asked again. */
#define IPD_READ_WINDOW 8192
#define IPD_REREQ_RUNS 8           /* READ requests per repair of one READ */
/* Tail loss probe (comp.c): the probe timeout is the larger of twice the
 * smoothed RTT and srtt + 4 * rttvar (RFC 6298's RTO), at least this, at
 * most half the ACK timeout (without an RTT sample yet: half the ACK
 * timeout). */
#define IPD_PROBE_MIN_S 0.001
/* Probes without progress per ACK timeout period (comp.c doubles the
 * delay each time, up to half the ACK timeout: with the 1 ms minimum
 * PTO this cap binds from timeout 17, about 0.5 s). */
#define IPD_PROBE_MAX 8
/* A direct loopback packet stands for at most this many PSNs, and direct
 * SEND/WRITE packets have this window of unacknowledged PSNs (req.c):
 * the engine then takes a few poll rounds per MiB instead of dozens. */
#define IPD_DIRECT_PSNS 256
#define IPD_DIRECT_WINDOW 1024

/* timewait.c: what a destroyed RC/XRC TGT QP had acknowledged. */
#define IPD_TIMEWAIT_MAX 64
struct ipd_timewait {
	uint32_t qpn, dqpn;
	int type;                 /* enum ibv_qp_type */
	uint32_t rq_psn, msn;
	struct ipd_av av;
	double expires;           /* ev_now() time; 0: unused */
};
/* Selective recovery (ooo.c): out-of-order packets a responder QP keeps,
 * by PSN distance from the expected one (a power of two; the requester's
 * window is IPD_MAX_UNACKED_PSNS), and kept packets per device. */
#define IPD_OOO_WINDOW 128
#define IPD_OOO_DEV_MAX 4096

struct ipd_engine {
	TAILQ_HEAD(, ipd_pkt) free_pkts;
	uint32_t nfree;
	struct ipd_timewait tw[IPD_TIMEWAIT_MAX];
	uint32_t tw_next;
	uint32_t ooo_held;        /* packets kept out of order (ooo.c) */
};

/* ---- send WQEs as the engine keeps them -------------------------- */

enum ipd_swqe_state {
	IPD_SWQE_POSTED,   /* not (completely) sent */
	IPD_SWQE_PENDING,  /* every packet sent, waiting for the ACK/response */
	IPD_SWQE_DONE,     /* finished, completion not yet posted */
	IPD_SWQE_ERROR,    /* finished with an error status */
};

struct ipd_swqe {
	struct ipd_send_wqe *wr;  /* private copy of the ring slot */
	const struct ipd_wr_opcode_info *info; /* NULL: illegal opcode */
	enum ipd_swqe_state state;
	int status;               /* enum ibv_wc_status for the completion */
	bool signaled;
	uint32_t length;          /* bytes of the message */
	uint32_t first_psn, last_psn;
	uint32_t sent;            /* requester: bytes sent (or requested) */
	uint32_t rcvd_psns;       /* completer: READ response packets placed */
	bool rerequested;         /* completer: missing responses were asked
				   * for again before any timeout */
};

/* Responder cache entry for READ and atomic requests (IBA 9.7.5.1.4). */
enum ipd_res_type { IPD_RES_NONE, IPD_RES_READ, IPD_RES_ATOMIC };

struct ipd_resp_res {
	enum ipd_res_type type;
	uint32_t first_psn, last_psn;
	uint64_t orig;            /* atomic: value returned the first time */
};

/* A response waiting for its turn: responses leave in PSN order, so ACKs
 * queue behind the READ responses still being sent. */
struct ipd_resp_item {
	struct ipd_pkt *pkt;      /* ready packet, or NULL for READ data */
	uint64_t va;              /* READ: next byte to send */
	uint32_t rkey, resid, psn;
	uint32_t srqn;            /* READ on an XRC TGT QP: the XRC SRQ whose
				   * PD the rkey is checked in */
	uint32_t first_psn, last_psn; /* READ: the request's PSN range */
	bool started;             /* READ: the FIRST response went out */
};

struct ipd_engine_qp {
	struct ipd_qp *qp;

	/* requester; indices are free-running like the ring's */
	struct ipd_swqe *swqe;    /* qp->sq.size entries */
	uint8_t *sq_copy;         /* qp->sq.size slots of qp->sq.slot_size */
	uint32_t sq_head;         /* next ring slot to copy in */
	uint32_t req_idx;         /* next WQE the requester works on */
	uint32_t comp_idx;        /* oldest WQE not completed */
	uint32_t req_psn;         /* next PSN to send */
	uint32_t rd_outstanding;  /* READ/atomic requests in flight */
	uint32_t noack_pkts;      /* packets since the last AckReq */

	/* completer */
	uint32_t comp_psn;        /* oldest PSN not acknowledged */
	uint32_t exec_psn;        /* the responder executed every request
				   * before this PSN (ACKs, responses) */
	uint32_t resp_high_psn;   /* highest PSN a response carried */
	uint32_t retry_left, rnr_left;
	/* READ response packets that arrived, a bit per PSN, indexed by
	 * PSN modulo the window; only [comp_psn, comp_psn + window) is
	 * kept, everything before comp_psn has arrived. */
	uint64_t read_map[IPD_READ_WINDOW / 64];
	bool rnr_wait;            /* requester paused by an RNR NAK */
	bool nak_retried;         /* went back to nak_retry_psn for a NAK */
	uint32_t nak_retry_psn;
	ev_timer retrans_timer;
	ev_timer rnr_timer;
	/* tail loss probe: the last packet sent goes again when nothing
	 * was acknowledged for a probe timeout (then 2x, 4x, ... later) */
	ev_timer probe_timer;
	uint8_t probes;           /* probes since progress or a timeout */
	bool rtt_timing;          /* rtt_psn's ACK is awaited */
	uint32_t rtt_psn;
	double rtt_start;         /* ev_time() when rtt_psn was sent */
	double srtt;              /* smoothed RTT in s; 0: no sample yet */
	double rttvar;            /* its mean deviation */

	/* responder */
	uint32_t rq_psn;          /* next expected PSN */
	uint32_t msn;
	bool nak_sent;            /* PSN sequence NAK sent for this gap */
	bool in_send, in_write;   /* inside a multi-packet message */
	bool drop_msg;            /* UC: discard until the next FIRST/ONLY */
	bool have_rwqe;
	bool rwqe_from_srq;
	struct ipd_srq *xsrq;     /* XRC TGT: the SRQ XRCETH named last */
	struct ipd_rwqe rwqe;
	uint32_t recv_off;        /* bytes placed in the receive WQE */
	uint64_t write_va;
	uint32_t write_rkey, write_resid, write_len;
	uint8_t *rq_slot;         /* scratch for one RQ slot */
	struct ipd_resp_res res[IPD_RESP_RES];
	uint32_t res_next;
	struct ipd_resp_item rsp[IPD_RESP_QUEUE];
	uint32_t rsp_head, rsp_tail;  /* free-running */
	/* out-of-order SEND/WRITE packets kept (ooo.c), slot PSN % window */
	struct ipd_pkt *ooo[IPD_OOO_WINDOW];
	uint32_t ooo_count;
	bool ooo_ack_owed;        /* an AckReq ran while packets were kept */
	bool ooo_lost;            /* a request past the hole was dropped, not
				   * kept: go back N once the kept ones ran */

	/* app_tx.c: the word in the ring header now, and the last valid one
	 * (a WQE the client sent is matched against it) */
	uint64_t app_tx_pub, app_tx_last;
	/* the link keeps the published source port's socket while the word
	 * is published (flow_port's *held), for this flow (set only then) */
	bool app_tx_held;
	uint16_t app_tx_held_sport;
	struct sockaddr_storage app_tx_held_dst;

	/* deferred QP error (set where iterating makes it unsafe) */
	bool err_pending;
	enum ibv_event_type err_event;
	bool flushing;
	bool sqd_notified;        /* IBV_EVENT_SQ_DRAINED sent for this SQD */
	ev_timer err_rq_timer;    /* ERR: look for receive WQEs to flush */
};

static inline struct ipd_swqe *ipd_swqe_at(struct ipd_engine_qp *e,
					   struct ipd_qp *qp, uint32_t idx)
{
	return &e->swqe[idx & (qp->sq.size - 1)];
}

/* ---- pkt.c ---------------------------------------------------------- */

/* Free every cached packet (ipd_engine_fini). */
void ipd_pkt_pool_drain(struct ipd_dev *dev);

/* ---- sge.c: local and remote memory, always checked --------------- */

enum ipd_copy_dir { IPD_TO_MEM, IPD_FROM_MEM };

/* Check an SGE list: keys, PD, bounds, access.  Returns an ibv_wc_status
 * (IBV_WC_SUCCESS, IBV_WC_LOC_PROT_ERR, IBV_WC_LOC_LEN_ERR). */
int ipd_sge_check(struct ipd_dev *dev, struct ipd_pd *pd,
		  const struct ipd_sge *sge, uint32_t num_sge,
		  uint32_t access, uint32_t *total);
/* Copy len bytes between buf and the SGE list at byte offset off.  Returns
 * IBV_WC_SUCCESS, IBV_WC_LOC_LEN_ERR (beyond the list) or
 * IBV_WC_LOC_PROT_ERR (bad key, PD, access or bounds). */
int ipd_sge_copy(struct ipd_dev *dev, struct ipd_pd *pd,
		 const struct ipd_sge *sge, uint32_t num_sge, uint32_t off,
		 void *buf, uint32_t len, enum ipd_copy_dir dir);
/* Resolve a remote access arriving on qp: rkey in pd with access, [va,
 * va+len) in bounds (a type 2 window only on the QP it was bound through).
 * Returns the daemon pointer or NULL. */
void *ipd_rkey_ptr(const struct ipd_qp *qp, struct ipd_pd *pd, uint32_t rkey,
		   uint64_t va, uint64_t len, uint32_t access);

/* Memory a direct copy reads or writes, as a cursor: an SGE list (local
 * keys) from byte off of it, or, with sge NULL, the range from va reached
 * through rkey by a request arriving on qp.  The keys are checked in pd
 * for access (IBV_ACCESS_*) every time memory is resolved. */
struct ipd_mem {
	struct ipd_pd *pd;
	uint32_t access;
	const struct ipd_sge *sge;
	uint32_t num_sge, off;
	const struct ipd_qp *qp;
	uint32_t rkey;
	uint64_t va;
};
/* Copy len bytes from src to dst and advance both.  msg_off is the offset
 * of the first byte in its message: pieces end where either side's SGE
 * ends and, in memory that is not one linear map (the kernel stubs'
 * memory, memory windows), at path-MTU (mtu) boundaries of the message, so
 * that every range resolved is one the per-packet path would resolve.
 * Returns IBV_WC_SUCCESS; a destination error (IBV_WC_LOC_LEN_ERR: past
 * the end of dst's SGE list, IBV_WC_LOC_PROT_ERR: key, PD, access or
 * bounds); or -1 when the source does not resolve (any more). */
int ipd_mem_copy(struct ipd_dev *dev, struct ipd_mem *dst, struct ipd_mem *src,
		 uint32_t len, uint32_t msg_off, unsigned int mtu);
/* Move the cursor m n bytes on. */
void ipd_mem_skip(struct ipd_mem *m, uint32_t n);

/* ---- direct loopback (docs/design.md "Direct loopback") ------------ */

/* The payload of a direct packet (pkt->ref), still in the sender's
 * memory: the sender's SGE list trimmed to the payload (SEND, WRITE), or
 * the READ's remote range (READ responses).  Carried inside pkt->buf. */
struct ipd_pkt_ref {
	/* The source PD (and QP, for a READ response's rkey) by handle and
	 * serial: looked up again on delivery, so one that went away in
	 * between (or whose handle was reused) makes the packet stale. */
	uint64_t pd_serial, qp_serial; /* qp_serial 0: no QP */
	uint32_t pd_handle, qpn;
	struct ipd_mem src;        /* src.sge, if any, points at sge[];
				    * src.pd and src.qp set on delivery */
	struct ipd_sge sge[IPD_MAX_SGE];
};

/* Make pkt a direct packet and return its (blank) reference. */
struct ipd_pkt_ref *ipd_pkt_ref_init(struct ipd_pkt *pkt);
/* The objects r's payload is read through (qp: NULL, or the responder
 * QP of a READ response). */
void ipd_pkt_ref_bind(struct ipd_pkt_ref *r, const struct ipd_pd *pd,
		      const struct ipd_qp *qp);
/* Give c (a fresh packet) the reference pkt carries. */
void ipd_pkt_ref_copy(struct ipd_pkt *c, const struct ipd_pkt *pkt);
/* May a packet of qp towards av carry its payload by reference, spanning
 * several PSNs?  RC (and XRC) on the loopback link, with [loopback]
 * direct on and no capture running (a capture must see real packets). */
bool ipd_eng_direct_ok(const struct ipd_qp *qp, const struct ipd_av *av);
/* Copy len bytes of a direct packet's payload, from byte skip of it, into
 * dst (msg_off, mtu: ipd_mem_copy).  Returns what ipd_mem_copy does; -1
 * also when the reference is stale (a PD or QP went away since it was
 * sent), counted in loop_direct_stale: the packet is then dropped like a
 * lost one. */
int ipd_pkt_ref_copy_out(struct ipd_dev *dev, const struct ipd_pkt *pkt,
			 uint32_t skip, uint32_t len, struct ipd_mem *dst,
			 uint32_t msg_off, unsigned int mtu);

/* ---- net.c: packet construction and dispatch ----------------------- */

/* The path MTU of a QP in bytes (UD: the port's active MTU). */
unsigned int ipd_eng_mtu(const struct ipd_qp *qp);
/* Allocate a packet with a BTH for opcode and room for paylen bytes
 * (pad zeroed, pkt->payload set); addresses from av. */
struct ipd_pkt *ipd_eng_pkt_new(struct ipd_qp *qp, const struct ipd_av *av,
				uint8_t opcode, uint32_t dqpn, uint32_t psn,
				uint32_t paylen, bool ackreq, bool se);
/* The same for a sender that is no QP any more (lqpn: the source QPN). */
struct ipd_pkt *ipd_eng_pkt_build(struct ipd_dev *dev, uint32_t lqpn,
				  const struct ipd_av *av, uint8_t opcode,
				  uint32_t dqpn, uint32_t psn, uint32_t paylen,
				  bool ackreq, bool se);
/* Did pkt come from peer (the address a connected QP sends to)? */
/* An address as 16 bytes, IPv4 in its IPv4-mapped form; false if unset. */
bool ipd_eng_addr_key(const struct sockaddr_storage *ss, uint8_t key[16]);
bool ipd_eng_src_ok(const struct sockaddr_storage *peer,
		    const struct ipd_pkt *pkt);

/* The same for a direct packet of npsn PSNs whose paylen bytes stay in
 * the sender's memory (the caller fills the returned pkt->ref). */
struct ipd_pkt *ipd_eng_pkt_new_ref(struct ipd_qp *qp, const struct ipd_av *av,
				    uint8_t opcode, uint32_t dqpn, uint32_t psn,
				    uint32_t npsn, uint32_t paylen, bool ackreq,
				    bool se);
/* Record a QP error to apply once the current operation finished. */
void ipd_eng_qp_error(struct ipd_qp *qp, enum ibv_event_type ev);
/* Apply a recorded QP error (ipd_qp_set_error). */
void ipd_eng_apply_error(struct ipd_qp *qp);
bool ipd_eng_flush(struct ipd_qp *qp);
/* Post a completion; a full CQ puts the QP in error. */
void ipd_eng_cq_post(struct ipd_qp *qp, struct ipd_cq *cq,
		     const struct ipd_cqe *cqe);

/* ---- req.c ---------------------------------------------------------- */

/* Send what the window allows.  True when a packet went out. */
/* ---- app_tx.c: the client sends an idle RC QP's next packet -------- */

/* Publish or withdraw the next WQE's index and PSN (every poll of an RTS
 * QP, and on every state change). */
void ipd_app_tx_publish(struct ipd_qp *qp);
void ipd_app_tx_clear(struct ipd_qp *qp);
/* The responder handed the link a response of qp: while the client may
 * send qp's next request itself, it goes out now, before the client can
 * post that request upon the completion it follows (or precedes, under
 * the ACK flag: ipd_app_tx_owe_ack). */
void ipd_app_tx_responded(struct ipd_qp *qp);
/* resp.c: a receive completion is about to show before its ACK leaves;
 * false (nothing raised) unless the word is published. */
bool ipd_app_tx_owe_ack(struct ipd_qp *qp);
/* ... and the ACK was sent: hand it to the kernel, lower the flag. */
void ipd_app_tx_ack_paid(struct ipd_qp *qp);
/* What the requester does with swqe (ring index idx, first and only
 * packet psn): not marked, marked and sent by the client exactly as
 * published (take it as sent, build nothing), or marked otherwise (send
 * it as usual). */
enum ipd_app_tx_verdict {
	IPD_APP_TX_NONE,
	IPD_APP_TX_TAKE,
	IPD_APP_TX_REFUSE,
};
enum ipd_app_tx_verdict ipd_app_tx_judge(const struct ipd_qp *qp,
					 const struct ipd_swqe *swqe,
					 uint32_t idx, uint32_t psn);
/* The packet is accounted for: count the verdict, forget the publication. */
void ipd_app_tx_settle(struct ipd_qp *qp, enum ipd_app_tx_verdict v);
/* An acknowledgement beyond what was sent: take WQEs the client sent
 * itself and has posted since (true if the requester moved). */
bool ipd_app_tx_catch_up(struct ipd_qp *qp);

bool ipd_req_run(struct ipd_qp *qp);
/* Copy newly posted WQEs from the ring; returns how many. */
uint32_t ipd_req_fetch(struct ipd_qp *qp);
/* Send again every request from the first one the responder may not have
 * executed (e->exec_psn) on: go back N over those only. */
void ipd_req_rewind(struct ipd_qp *qp);
/* Ask again for npsn responses of an executed READ, from psn (a READ
 * request with that PSN and the RETH adjusted), or for an atomic's. */
void ipd_req_rerequest(struct ipd_qp *qp, struct ipd_swqe *swqe,
		       uint32_t psn, uint32_t npsn);
/* Tail loss probe: send the SEND/WRITE packet with PSN psn (sent
 * before, not known to be executed) once more, with AckReq.  False when
 * there is none (a READ/atomic there, or out of packets). */
bool ipd_req_probe(struct ipd_qp *qp, uint32_t psn);
/* Selective recovery: a NAK named psn, the first request the responder
 * lacks while it keeps later ones: send again only the requests of the
 * hole PSNs from psn the NAK says are missing (at least psn's): SEND/WRITE
 * packets, whole READ/atomic requests.  False when psn is no request's
 * first PSN or packet (then go back N). */
bool ipd_req_resend(struct ipd_qp *qp, uint32_t psn, uint32_t hole);
void ipd_req_reset(struct ipd_qp *qp);

/* ---- comp.c ---------------------------------------------------------- */

void ipd_comp_rx(struct ipd_qp *qp, struct ipd_pkt *pkt);
/* Post completions of finished WQEs, oldest first, and free their slots. */
void ipd_comp_retire(struct ipd_qp *qp);
/* (Re)arm the ACK timer after sending a packet that needs an answer;
 * with ackreq the packet (PSN psn) may be timed for the RTT. */
void ipd_comp_timer_kick(struct ipd_qp *qp, uint32_t psn, bool ackreq);
/* A packet is sent again: no RTT sample until the next new one (Karn). */
void ipd_comp_rtt_cancel(struct ipd_qp *qp);
void ipd_comp_timers_init(struct ipd_qp *qp);
void ipd_comp_timers_stop(struct ipd_qp *qp);
void ipd_comp_reset_retries(struct ipd_qp *qp);
/* Nothing outstanding: the completer's PSNs start at psn. */
void ipd_comp_set_psn(struct ipd_qp *qp, uint32_t psn);

/* ---- resp.c ---------------------------------------------------------- */

/* True when the responder kept pkt (ooo.c): the caller must not free it. */
bool ipd_resp_rx(struct ipd_qp *qp, struct ipd_pkt *pkt);
/* NAK a PSN sequence error at the expected PSN; hole: how many PSNs from
 * it are missing (selective peers only, else 0; hdr.h resv7). */
void ipd_resp_nak_seq(struct ipd_qp *qp, uint32_t hole);
/* ACK everything before the expected PSN. */
void ipd_resp_ack_last(struct ipd_qp *qp);
/* Complete the receive WQE in hand (and the whole RQ when flushing). */
void ipd_resp_flush(struct ipd_qp *qp);
void ipd_resp_reset(struct ipd_qp *qp);
/* XRC TGT: the SRQ the QP receives into is going away. */
void ipd_resp_srq_gone(struct ipd_qp *qp, struct ipd_srq *srq);
/* Send queued responses (READ data first), at most a budget's worth.
 * True when anything went out. */
bool ipd_resp_pump(struct ipd_qp *qp);
/* Forget queued responses (reset, error, destroy). */
void ipd_resp_drain(struct ipd_qp *qp);
/* The responder's queue (READ data and what waits behind it) is empty. */
bool ipd_resp_quiet(const struct ipd_qp *qp);

/* ---- ooo.c: selective recovery ---------------------------------------- */

/* The QP's peer keeps out-of-order packets (and so does this daemon for
 * it): RC/XRC, [engine] selective_retransmit, and a loopback QP or a peer
 * that advertised FEATURE_SELECTIVE. */
bool ipd_ooo_on(const struct ipd_qp *qp);
/* Keep pkt, a request ahead of the expected PSN, if it is a SEND/WRITE
 * packet within the window and limits.  True when kept (owned). */
bool ipd_ooo_hold(struct ipd_qp *qp, struct ipd_pkt *pkt);
/* The kept packet with the expected PSN, removed (caller frees), or NULL. */
struct ipd_pkt *ipd_ooo_take(struct ipd_qp *qp);
/* An AckReq packet ran while packets are kept: true when its ACK waits
 * for ipd_ooo_settle. */
bool ipd_ooo_defer_ack(struct ipd_qp *qp);
/* After an in-order packet (and kept ones, ran) ran: NAK the next hole
 * behind kept packets that ran, or send the owed ACK; stalled: the last
 * one could not run (RNR or error NAK sent). */
void ipd_ooo_settle(struct ipd_qp *qp, bool ran, bool stalled);
/* Free every kept packet (reset, error, destroy). */
void ipd_ooo_flush(struct ipd_qp *qp);

/* ---- link_loop.c ------------------------------------------------------ */

/* Deliver the packets queued so far.  True when any was delivered. */
bool ipd_link_loop_poll(struct ipd_link *link);

/* ---- timewait.c: destroyed RC QPs answer retransmissions ----------- */

/* Remember what qp (being destroyed) had acknowledged. */
void ipd_timewait_add(struct ipd_qp *qp);
/* pkt is for no live QP: true when a tombstone answered it. */
bool ipd_timewait_rx(struct ipd_dev *dev, const struct ipd_pkt *pkt);

#endif
