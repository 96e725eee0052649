// SPDX-License-Identifier: MIT
/*
 * A hostile or buggy kernel stub: KSTUB_ATTACH and IOMMU_INVAL requests
 * with missing or wrong descriptors, impossible sizes, overlapping address
 * forms and foreign handles must each get a clear error (never a daemon
 * crash), and the daemon must keep serving the same client afterwards.
 * Uses the stub library's internals (provider/kstub/kstub_priv.h).
 *
 *   kstub_hostile        (IPATHD_SOCKET names the daemon)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kstub_priv.h"

static int failures;

static void expect(const char *what, int err, int want)
{
	bool ok = err == want;

	printf("%s: %s (%s%s%s)\n", ok ? "ok" : "FAIL", what,
	       err ? strerror(err) : "success", ok ? "" : ", want ",
	       ok ? "" : (want ? strerror(want) : "success"));
	if (!ok)
		failures++;
}

static int memfd(size_t len, bool sealable)
{
	int fd = memfd_create("hostile", sealable ? MFD_ALLOW_SEALING : 0);

	if (fd >= 0 && ftruncate(fd, (off_t)len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One KSTUB_ATTACH; returns the daemon's errno (0 on success). */
static int attach(struct ib_device *dev, uint64_t phys, uint64_t low,
		  uint64_t iova, uint64_t kva, const int *fds, int nfds)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__KstubAttach a = IPD__KSTUB_ATTACH__INIT;
	Ipd__Response *r;

	a.pd = dev->pd;
	a.phys_pages = phys;
	a.lowmem_pages = low;
	a.iova_pages = iova;
	a.kva_base = kva;
	req.op_case = IPD__REQUEST__OP_KSTUB_ATTACH;
	req.kstub_attach = &a;
	r = kstub_call(dev, &req, fds, nfds, NULL, NULL, 0);
	if (!r)
		return errno;
	ipd__response__free_unpacked(r, NULL);
	return 0;
}

static int inval(struct ib_device *dev, uint32_t mr, uint64_t first,
		 uint64_t n)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__IommuInval i = IPD__IOMMU_INVAL__INIT;
	Ipd__Response *r;

	i.mr = mr;
	i.first_page = first;
	i.npages = n;
	req.op_case = IPD__REQUEST__OP_IOMMU_INVAL;
	req.iommu_inval = &i;
	r = kstub_call(dev, &req, NULL, 0, NULL, NULL, 0);
	if (!r)
		return errno;
	ipd__response__free_unpacked(r, NULL);
	return 0;
}

int main(void)
{
	struct kstub_opts o = { .phys_pages = 64, .lowmem_pages = 32 };
	struct ib_device *dev = kstub_open(&o);
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	int good[2], plain[2], small[2];
	union ibv_gid gid;
	FILE *tmp;

	if (!dev) {
		if (errno == EOPNOTSUPP) {
			printf("SKIP: the daemon does not serve kernel stubs\n");
			return 77;
		}
		perror("kstub_open");
		return 1;
	}
	good[0] = memfd(64 * pg, true);
	good[1] = memfd(pg, true);
	plain[0] = memfd(64 * pg, false);      /* cannot be sealed */
	plain[1] = good[1];
	small[0] = memfd(4 * pg, true);        /* smaller than claimed */
	small[1] = good[1];
	tmp = tmpfile();
	if (good[0] < 0 || good[1] < 0 || plain[0] < 0 || small[0] < 0 || !tmp)
		return 99;

	expect("attach without descriptors", attach(dev, 64, 32, 128,
		IPD_KVA_BASE, NULL, 0), EINVAL);
	expect("attach with one descriptor", attach(dev, 64, 32, 128,
		IPD_KVA_BASE, good, 1), EINVAL);
	expect("attach an unsealable memfd", attach(dev, 64, 32, 128,
		IPD_KVA_BASE, plain, 2), EINVAL);
	{
		int fds[2] = { fileno(tmp), good[1] };

		expect("attach a regular file", attach(dev, 64, 32, 128,
			IPD_KVA_BASE, fds, 2), EINVAL);
	}
	expect("attach memory smaller than claimed", attach(dev, 64, 32, 128,
		IPD_KVA_BASE, small, 2), EINVAL);
	expect("attach 0 pages", attach(dev, 0, 0, 128, IPD_KVA_BASE, good, 2),
	       EINVAL);
	expect("attach lowmem > memory", attach(dev, 64, 65, 128,
		IPD_KVA_BASE, good, 2), EINVAL);
	expect("attach a huge IOMMU aperture", attach(dev, 64, 32,
		1ull << 40, IPD_KVA_BASE, good, 2), EINVAL);
	expect("attach a direct map inside the IOVA range", attach(dev, 64, 32,
		128, IPD_IOVA_BASE, good, 2), EINVAL);
	expect("attach a direct map in the page-form range", attach(dev, 64,
		32, 128, IPD_PAGE_TAG, good, 2), EINVAL);
	expect("attach an unaligned direct map", attach(dev, 64, 32, 128,
		IPD_KVA_BASE + 1, good, 2), EINVAL);
	expect("attach a wrapping direct map", attach(dev, 64, 32, 128,
		0xffff000000000000ull - pg, good, 2), EINVAL);
	expect("IOTLB flush of an unknown MR", inval(dev, 0xfffff, 0, 1),
	       EINVAL);
	if (kstub_dma_capable(dev)) {
		expect("IOTLB flush past the aperture",
		       inval(dev, dev->mr, o.phys_pages * 2, 1), EINVAL);
		expect("IOTLB flush of a wrapping range",
		       inval(dev, dev->mr, 1, UINT64_MAX), EINVAL);
	} else {
		expect("IOTLB flush without an IOMMU", inval(dev, dev->mr, 0, 1),
		       EOPNOTSUPP);
	}
	/* Still served, and a valid second attach still works. */
	expect("status after all that", kstub_query_gid(dev, 0, &gid) ? EIO : 0,
	       0);
	expect("a valid second attach", attach(dev, 64, 32, 128,
		IPD_KVA_BASE + (1ull << 36), good, 2), 0);
	fclose(tmp);
	kstub_close(dev);
	printf("%s (%d failures)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
