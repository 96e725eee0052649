/* SPDX-License-Identifier: MIT */
/*
 * The transport engine's interface to the rest of the daemon: QP hooks,
 * the main-loop poll, packets and links.  Engine internals (requester,
 * responder, completer state) live in engine-private headers.
 */
#ifndef IPATHD_ENGINE_H
#define IPATHD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "ipathd.h"

/* ---- packets (pkt.c) ---------------------------------------------- */

#define IPD_PKT_HEADROOM 64u   /* room in front of the BTH for links */
#define IPD_PKT_HDR_MAX 64u    /* BTH + the largest extension headers */
#define IPD_PKT_DATA_MAX (IPD_PKT_HDR_MAX + 4096u + 4u) /* + payload + ICRC */

struct ipd_pkt {
	TAILQ_ENTRY(ipd_pkt) link;
	uint8_t *hdr;                 /* first byte of the BTH */
	uint32_t len;                 /* BTH .. end of pad; no ICRC */
	struct sockaddr_storage src;  /* IP of the sender (port unused) */
	struct sockaddr_storage dst;  /* IP of the receiver */
	uint16_t sport;               /* UDP source port (flow entropy) */
	uint16_t ip_id;		      /* IPv4 ID on the wire, set by the UDP
				       * link (GSO segments: 1, 2..), else 0 */
	/* Filled by the engine's parser on receive (engine-private use). */
	uint32_t mask;                /* opcode table properties */
	uint32_t psn, qpn;
	uint8_t opcode;
	uint8_t *payload;
	uint32_t paylen;
	/* PSNs the packet stands for: 1, except a direct loopback packet,
	 * which carries consecutive path-MTU packets of one message at once
	 * (never on a wire). */
	uint32_t npsn;
	/* Direct loopback: the payload is not in buf but still in the
	 * sender's memory, described here (engine_priv.h); NULL otherwise.
	 * Links other than the loopback never see such a packet. */
	struct ipd_pkt_ref *ref;
	uint8_t buf[IPD_PKT_HEADROOM + IPD_PKT_DATA_MAX];
};

/* Packets come from a per-device free list; never NULL unless out of memory. */
struct ipd_pkt *ipd_pkt_alloc(struct ipd_dev *dev);
void ipd_pkt_free(struct ipd_dev *dev, struct ipd_pkt *pkt);

/* ---- links (net.c, link_loop.c, link_udp.c, link_fabric.c) ---------- */

struct ipd_link;
struct ipd_link_ops {
	const char *name;
	/* Take ownership of pkt and send it (pkt->dst says where).  The
	 * link adds and checks the ICRC where the medium needs one. */
	int (*xmit)(struct ipd_link *link, struct ipd_pkt *pkt);
	/* Optional: hand what xmit queued to the medium now, not at the
	 * end of the loop iteration. */
	void (*flush)(struct ipd_link *link);
	/* Optional: the UDP source port this link's packets of flow sport
	 * towards dst leave from (the flow's own, or one it shares with
	 * other flows), its socket letting other sockets of the daemon's
	 * user bind it too (SO_REUSEPORT); 0 when there is none.  *held:
	 * the flow's own port, kept until flow_release (a client may send
	 * from it meanwhile). */
	uint16_t (*flow_port)(struct ipd_link *link,
			      const struct sockaddr_storage *dst,
			      uint16_t sport, bool *held);
	void (*flow_release)(struct ipd_link *link,
			     const struct sockaddr_storage *dst,
			     uint16_t sport);
	void (*destroy)(struct ipd_link *link);
};

struct ipd_link {
	const struct ipd_link_ops *ops;
	struct ipd_dev *dev;
	void *priv;
	/* The link hands sent packets to ipd_capture_pkt itself, once it
	 * knows their IP ID (link_udp.c with GSO); else ipd_net_xmit does. */
	bool tx_capture;
	/* Clients may send this link's packets from their own sockets
	 * (app_tx.c): a UDP link. */
	bool app_tx;
};

/* Links hand every received packet (ICRC checked and stripped) here. */
void ipd_engine_rx(struct ipd_dev *dev, struct ipd_pkt *pkt);
/* Send pkt towards av: the loopback link when av->local, else the network
 * link (dropped and counted when there is none). */
int ipd_net_xmit(struct ipd_dev *dev, struct ipd_pkt *pkt,
		 const struct ipd_av *av);
/* Hand what the network link queued to the medium now. */
void ipd_net_flush(struct ipd_dev *dev);

/* capture.c: write pkt (BTH .. pad, tx: being sent, else received) to
 * every running capture.  Callers test dev->captures first, so a daemon
 * that captures nothing pays one predictable branch per packet. */
void ipd_capture_pkt(struct ipd_dev *dev, const struct ipd_pkt *pkt, bool tx);

struct ipd_link *ipd_link_loop_create(struct ipd_dev *dev);
struct ipd_link *ipd_link_udp_create(struct ipd_dev *dev);
struct ipd_link *ipd_link_fabric_create(struct ipd_dev *dev);

/* ---- lifetime and hooks called by the rest of the daemon ----------- */

int ipd_engine_init(struct ipd_dev *dev);   /* pools, links */
void ipd_engine_fini(struct ipd_dev *dev);

int ipd_engine_qp_init(struct ipd_qp *qp);  /* at create (state RESET) */
void ipd_engine_qp_fini(struct ipd_qp *qp); /* at destroy: timers off, free */
/* After ibv_modify_qp succeeded (qp->attr already updated): old is the
 * state before.  Entering ERR flushes outstanding WQEs with
 * IBV_WC_WR_FLUSH_ERR; entering RESET forgets everything; RTR/RTS load
 * the PSNs from qp->attr. */
void ipd_engine_qp_modified(struct ipd_qp *qp, enum ibv_qp_state old,
			    int attr_mask);
/* An XRC SRQ is being destroyed: TGT QPs drop the message they were
 * placing in it (its receive WQE in hand completes as flushed). */
void ipd_engine_srq_gone(struct ipd_dev *dev, struct ipd_srq *srq);
/* Current PSNs for ibv_query_qp (next to send, next expected). */
void ipd_engine_qp_psns(struct ipd_qp *qp, uint32_t *sq_psn,
			uint32_t *rq_psn);

/* Main loop: run every QP's requester/completer/responder and deliver
 * queued loopback packets.  Returns true when anything progressed. */
bool ipd_engine_poll(struct ipd_dev *dev);

#endif
