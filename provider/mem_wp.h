/* SPDX-License-Identifier: MIT */
/*
 * Write-protecting a range while the arena moves it (docs/design.md
 * "Memory registration"): other threads' writes, the kernel's on their
 * behalf included, wait instead of landing in pages already copied.
 */
#ifndef IPATHD_PROVIDER_MEM_WP_H
#define IPATHD_PROVIDER_MEM_WP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct ipd_wp {
	int uffd;		/* -1: not protected (no userfaultfd) */
	uintptr_t start;
	size_t len;
	sigset_t oldmask;
};

/*
 * Write-protect [start, start + len) with a userfaultfd and block this
 * thread's signals (a handler writing into the range would wait on
 * itself).  Best effort: without userfaultfd write protection for kernel
 * faults (vm.unprivileged_userfaultfd, seccomp, old kernels, a range some
 * other userfaultfd watches) wp->uffd is -1 and the move runs as before.
 * The caller must write nothing in the range until ipd_wp_end().
 */
void ipd_wp_begin(struct ipd_wp *wp, uintptr_t start, size_t len);

/*
 * Lift the protection: writers that waited retry, on whatever is mapped
 * there now (the moved pages after a successful mremap).
 */
void ipd_wp_end(struct ipd_wp *wp);

#endif
