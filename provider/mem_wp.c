// SPDX-License-Identifier: MIT
/*
 * Write protection during an arena move (see mem_wp.h).  A userfaultfd
 * in write-protect mode makes every write to the range fault and wait on
 * the descriptor; nobody reads its events: the writers are woken when the
 * descriptor is closed, after the mremap, and their retried fault finds
 * the moved pages (not registered with the userfaultfd).  Kernel-mode
 * faults (read(2) into the buffer) wait the same way, which is why the
 * descriptor is created without UFFD_USER_MODE_ONLY: where that needs a
 * privilege we lack, there is no protection rather than EFAULT for them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mem_wp.h"

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13) /* Linux 6.4 */
#endif

/* A userfaultfd set up for write protection, or -1. */
static int wp_open(void)
{
	/* Never-touched pages are protected too where the kernel can. */
	static const uint64_t features[] = {
		UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED,
		UFFD_FEATURE_PAGEFAULT_FLAG_WP,
	};

	for (size_t i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		struct uffdio_api api = { .api = UFFD_API,
					  .features = features[i] };
		int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

		if (fd < 0)
			return -1;
		if (ioctl(fd, UFFDIO_API, &api) == 0)
			return fd;
		close(fd);
	}
	return -1;
}

void ipd_wp_begin(struct ipd_wp *wp, uintptr_t start, size_t len)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	struct uffdio_writeprotect prot = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	sigset_t all;

	wp->start = start;
	wp->len = len;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &wp->oldmask);
	wp->uffd = wp_open();
	if (wp->uffd >= 0 && (ioctl(wp->uffd, UFFDIO_REGISTER, &reg) ||
			      ioctl(wp->uffd, UFFDIO_WRITEPROTECT, &prot))) {
		close(wp->uffd);
		wp->uffd = -1;
	}
}

void ipd_wp_end(struct ipd_wp *wp)
{
	struct uffdio_writeprotect unprot = {
		.range = { .start = wp->start, .len = wp->len },
	};
	int saved = errno;

	if (wp->uffd >= 0) {
		/* Still the old pages if the move failed: lift the
		 * protection before closing (ENOENT once moved). */
		ioctl(wp->uffd, UFFDIO_WRITEPROTECT, &unprot);
		close(wp->uffd);
		wp->uffd = -1;
	}
	pthread_sigmask(SIG_SETMASK, &wp->oldmask, NULL);
	errno = saved;
}
