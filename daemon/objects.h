/* SPDX-License-Identifier: MIT */
/*
 * Private interface between the verbs-object files (pd.c mr.c cq.c srq.c
 * ah.c qp.c objects.c): owned lookups and destructors.  Nothing outside
 * these files includes it.
 */
#ifndef IPATHD_OBJECTS_H
#define IPATHD_OBJECTS_H

#include <string.h>

#include "ipathd.h"
#include "ipathd/verbs_msg.h"

/* Objects of this client by handle; NULL when missing or another
 * client's (the caller answers EINVAL either way, as design.md says). */
struct ipd_pd *ipd_pd_get(struct ipd_client *c, uint32_t handle);
struct ipd_mr *ipd_mr_get(struct ipd_client *c, uint32_t handle);
struct ipd_cq *ipd_cq_get(struct ipd_client *c, uint32_t handle);
struct ipd_srq *ipd_srq_get(struct ipd_client *c, uint32_t handle);
struct ipd_qp *ipd_qp_get(struct ipd_client *c, uint32_t handle);
struct ipd_ah *ipd_ah_get(struct ipd_client *c, uint32_t handle);
struct ipd_xrcd *ipd_xrcd_get(struct ipd_client *c, uint32_t handle);
/* Does client c have the domain dom open (it may then use its TGT QPs)? */
bool ipd_xrcd_client_has(struct ipd_client *c, const struct ipd_xrcd_dom *dom);
/* End every ibv_open_qp use client c holds (it is going away). */
void ipd_xrcd_release_opens(struct ipd_client *c);

/* Destructors: 0, or -EBUSY while other objects still use it. */
int ipd_pd_destroy(struct ipd_pd *pd);
int ipd_mr_destroy(struct ipd_mr *mr);
int ipd_cq_destroy(struct ipd_cq *cq);
int ipd_srq_destroy(struct ipd_srq *srq);
int ipd_qp_destroy(struct ipd_qp *qp);
int ipd_ah_destroy(struct ipd_ah *ah);
int ipd_xrcd_destroy(struct ipd_xrcd *xrcd);

/* Registered-memory access flags a verbs consumer may pass (reg_mr and
 * modify_qp share the check); 0 or -EINVAL. */
int ipd_access_flags_check(uint32_t access, bool is_mr);

static inline uint32_t ipd_roundup_pow2(uint32_t n)
{
	uint32_t p = 1;

	while (p < n)
		p <<= 1;
	return p;
}

/* enum ibv_mtu for a byte count (256..4096, rounded down); 0 if < 256. */
static inline uint32_t ipd_mtu_enum(unsigned int bytes)
{
	uint32_t e = IBV_MTU_256;

	if (bytes < 256)
		return 0;
	for (unsigned int b = 512; b <= bytes && e < IBV_MTU_4096; b <<= 1)
		e++;
	return e;
}

/* Bytes of an enum ibv_mtu (IBV_MTU_256..IBV_MTU_4096). */
static inline unsigned int ipd_mtu_bytes(uint32_t mtu)
{
	return 128u << mtu;
}

/* A copy of s that lives until the response is sent. */
static inline char *ipd_req_strdup(struct ipd_req_ctx *ctx, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = ipd_req_alloc(ctx, n);

	if (p)
		memcpy(p, s, n);
	return p;
}

#endif
