// SPDX-License-Identifier: MIT
/*
 * Device discovery and publication.
 *
 * libibverbs (rdma-core 44) finds devices without a kernel driver through a
 * sysfs-shaped tree named by $SYSFS_PATH (used only when netlink RDMA is
 * unavailable, i.e. ib_core is not loaded).  We publish:
 *
 *   class/infiniband_verbs/abi_version                 "6"
 *   class/infiniband_verbs/<node>/{ibdev,dev,abi_version}
 *   class/infiniband/<dev>/{node_type,node_guid,sys_image_guid,fw_ver,
 *       hca_type,hw_rev,board_id,node_desc,ipathd_socket,device/modalias}
 *   class/infiniband/<dev>/ports/1/{state,phys_state,link_layer,rate,lid,
 *       sm_lid,sm_sl,lmc,cap_mask,gids/N,gid_attrs/types/N,
 *       gid_attrs/ndevs/N,pkeys/0}
 *
 * and /dev/infiniband/<node>, a character device with /dev/null's numbers
 * (1:3) so that libibverbs' cmd_fd answers ioctls with ENOTTY.
 *
 * libibverbs takes the mtime of class/infiniband/<dev> as the device's
 * identity (verbs_sysfs_dev.time_created): files in it are rewritten in
 * place, the directory is never recreated while we run.
 *
 * dev->node_guid is a host-order integer; its text form and the interface
 * id of GID 0 are its bytes from most to least significant.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <ifaddrs.h>
#include <limits.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <dirent.h>
#include <unistd.h>

#include "ipathd.h"

#define UVERBS_ABI_VERSION 6     /* what rdma-core 44 expects (3..6) */
#define IPD_PORT 1
#define DEV_NODE_DIR "/dev/infiniband"
#define REAL_SYSFS "/sys/class/"
/* /dev/null's numbers: opening it gives a cmd_fd whose ioctls say ENOTTY. */
#define CMD_FD_MAJOR 1
#define CMD_FD_MINOR 3

/* Port attributes as the kernel prints them (drivers/infiniband/core/sysfs.c). */
static const struct {
	const char *name;
	const char *value;
} port_files[] = {
	{ "state", "4: ACTIVE" },
	{ "phys_state", "5: LinkUp" },
	{ "link_layer", "Ethernet" },
	/* Must agree with ibv_query_port (device.c): 1X EDR. */
	{ "rate", "25 Gb/sec (1X EDR)" },
	{ "lid", "0x0" },
	{ "sm_lid", "0x0" },
	{ "sm_sl", "0" },
	{ "lmc", "0" },
	/* IBV_PORT_CM_SUP, as ibv_query_port reports (device.c). */
	{ "cap_mask", "0x00010000" },
	{ "pkeys/0", "0xffff" },
};

/* ---- discovery ----------------------------------------------------- */

/* Per-packet overhead below the IB payload: IPv4 or IPv6, UDP, BTH, the
 * largest extension header set (AtomicETH 28), ICRC. */
#define ROCE_OVERHEAD(iphdr) ((iphdr) + 8 + 12 + 28 + 4)

static const unsigned int ib_mtus[] = { 4096, 2048, 1024, 512, 256 };

static bool name_in_list(const char *list, const char *name)
{
	size_t len = strlen(name);
	const char *p = list;

	while (*p) {
		size_t n = strcspn(p, ", \t");

		if (n == len && !strncmp(p, name, len))
			return true;
		p += n;
		p += strspn(p, ", \t");
	}
	return false;
}

static bool ipv6_usable(const struct in6_addr *a)
{
	return !IN6_IS_ADDR_LINKLOCAL(a) && !IN6_IS_ADDR_LOOPBACK(a) &&
	       !IN6_IS_ADDR_MULTICAST(a) && !IN6_IS_ADDR_UNSPECIFIED(a);
}

static bool ifa_has_addr(const struct ifaddrs *ifa)
{
	const struct sockaddr *sa = ifa->ifa_addr;

	if (!sa)
		return false;
	if (sa->sa_family == AF_INET)
		return true;
	if (sa->sa_family == AF_INET6)
		return ipv6_usable(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
	return false;
}

/*
 * netdev = "" means every interface that is up and has an address, except
 * loopback; loopback is used only when nothing else qualifies (a host or
 * namespace with only lo still gets a working single-host device).
 */
static void choose_netdevs(const struct ipd_config *cfg, struct ifaddrs *ifs,
			   char *out, size_t outlen)
{
	struct ifaddrs *ifa;

	out[0] = '\0';
	if (cfg->netdevs[0]) {
		snprintf(out, outlen, "%s", cfg->netdevs);
		return;
	}
	for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
		if (!(ifa->ifa_flags & IFF_UP) || (ifa->ifa_flags & IFF_LOOPBACK) ||
		    !ifa_has_addr(ifa) || name_in_list(out, ifa->ifa_name))
			continue;
		snprintf(out + strlen(out), outlen - strlen(out), "%s%s",
			 out[0] ? "," : "", ifa->ifa_name);
	}
	if (!out[0])
		snprintf(out, outlen, "lo");
}

static struct ipd_gid *gid_slot(struct ipd_dev *dev)
{
	if (dev->ngids >= IPD_MAX_GIDS) {
		ipd_warn("GID table full (%d entries); ignoring further addresses",
			 IPD_MAX_GIDS);
		return NULL;
	}
	return &dev->gids[dev->ngids];
}

static void gid_add_sockaddr(struct ipd_dev *dev, const struct sockaddr *sa,
			     const char *netdev)
{
	struct ipd_gid g = { 0 };
	struct ipd_gid *slot;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		/* IPv4-mapped ::ffff:a.b.c.d, as RoCEv2 (IBA A17.4.5.1). */
		g.gid.raw[10] = 0xff;
		g.gid.raw[11] = 0xff;
		memcpy(&g.gid.raw[12], &sin->sin_addr, 4);
		memcpy(&g.addr, sin, sizeof(*sin));
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		memcpy(g.gid.raw, &sin6->sin6_addr, 16);
		memcpy(&g.addr, sin6, sizeof(*sin6));
	}
	g.family = sa->sa_family;
	snprintf(g.netdev, sizeof(g.netdev), "%s", netdev ? netdev : "");
	if (ipd_gid_find(dev, &g.gid) >= 0)
		return;
	slot = gid_slot(dev);
	if (!slot)
		return;
	*slot = g;
	dev->ngids++;
}

static const char *netdev_of(struct ifaddrs *ifs, const struct sockaddr *sa)
{
	struct ifaddrs *ifa;

	for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
		const struct sockaddr *a = ifa->ifa_addr;

		if (!a || a->sa_family != sa->sa_family)
			continue;
		if (a->sa_family == AF_INET &&
		    !memcmp(&((const struct sockaddr_in *)(const void *)a)->sin_addr,
			    &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4))
			return ifa->ifa_name;
		if (a->sa_family == AF_INET6 &&
		    !memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
			    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16))
			return ifa->ifa_name;
	}
	return NULL;
}

static int add_config_addrs(struct ipd_dev *dev, struct ifaddrs *ifs)
{
	const struct ipd_config *cfg = dev->cfg;
	int i;

	for (i = 0; i < cfg->naddrs; i++) {
		struct sockaddr_storage ss = { 0 };
		struct sockaddr_in *sin = (void *)&ss;
		struct sockaddr_in6 *sin6 = (void *)&ss;

		if (inet_pton(AF_INET, cfg->addrs[i], &sin->sin_addr) == 1) {
			sin->sin_family = AF_INET;
		} else if (inet_pton(AF_INET6, cfg->addrs[i],
				     &sin6->sin6_addr) == 1) {
			sin6->sin6_family = AF_INET6;
		} else {
			ipd_err("address '%s' is not an IP address", cfg->addrs[i]);
			return -EINVAL;
		}
		gid_add_sockaddr(dev, (struct sockaddr *)&ss,
				 netdev_of(ifs, (struct sockaddr *)&ss));
	}
	return 0;
}

/* EUI-64 from a MAC (RFC 4291 appendix A): flip U/L, insert ff:fe. */
static uint64_t eui64_from_mac(const uint8_t *mac)
{
	const uint8_t b[8] = { mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe,
			       mac[3], mac[4], mac[5] };
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/*
 * No MAC (loopback only): a GUID that stays the same across restarts on
 * this machine for this device name: FNV-1a of machine-id and name, marked
 * locally administered.
 */
static uint64_t stable_guid(const char *dev_name)
{
	uint64_t h = 0xcbf29ce484222325ull;
	char id[64] = "";
	const char *p;
	FILE *f;

	f = fopen("/etc/machine-id", "re");
	if (f) {
		if (!fgets(id, sizeof(id), f))
			id[0] = '\0';
		fclose(f);
	}
	if (!id[0])
		gethostname(id, sizeof(id) - 1);
	for (p = id; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	for (p = dev_name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	/* Byte 0 of the EUI-64: clear group bit, set "local" (U/L = 0 means
	 * local in modified EUI-64 form). */
	h &= ~(0x03ull << 56);
	return h;
}

static void pick_mac(struct ipd_dev *dev, struct ifaddrs *ifs, const char *list)
{
	static const uint8_t zero[6];
	struct ifaddrs *ifa;

	for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
		const struct sockaddr_ll *sll = (const void *)ifa->ifa_addr;

		if (!sll || sll->sll_family != AF_PACKET || sll->sll_halen != 6 ||
		    !memcmp(sll->sll_addr, zero, 6) ||
		    !name_in_list(list, ifa->ifa_name))
			continue;
		memcpy(dev->mac, sll->sll_addr, 6);
		dev->node_guid = eui64_from_mac(dev->mac);
		return;
	}
	dev->node_guid = stable_guid(dev->cfg->dev_name);
}

/* GID 0: fe80::/64 with the node GUID as interface id (IBA 4.1.1). */
static void add_link_local(struct ipd_dev *dev, const char *first_netdev)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	int i;

	sin6.sin6_addr.s6_addr[0] = 0xfe;
	sin6.sin6_addr.s6_addr[1] = 0x80;
	for (i = 0; i < 8; i++)
		sin6.sin6_addr.s6_addr[8 + i] =
			(uint8_t)(dev->node_guid >> (56 - 8 * i));
	sin6.sin6_scope_id = if_nametoindex(first_netdev);
	gid_add_sockaddr(dev, (struct sockaddr *)&sin6, first_netdev);
}

static unsigned int netdev_mtu(int sock, const char *name)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(sock, SIOCGIFMTU, &ifr) < 0)
		return 0;
	return (unsigned int)ifr.ifr_mtu;
}

static unsigned int ib_mtu_for(unsigned int link_mtu, bool ipv6)
{
	unsigned int over = ROCE_OVERHEAD(ipv6 ? 40 : 20);
	size_t i;

	for (i = 0; i < sizeof(ib_mtus) / sizeof(ib_mtus[0]); i++)
		if (ib_mtus[i] + over <= link_mtu)
			return ib_mtus[i];
	return 256;
}

static void choose_mtu(struct ipd_dev *dev, const char *list)
{
	unsigned int min = 0;
	bool ipv6 = false;
	const char *p = list;
	int sock, i;

	if (dev->cfg->mtu) {
		dev->active_mtu = dev->cfg->mtu;
		return;
	}
	for (i = 1; i < dev->ngids; i++)
		if (dev->gids[i].family == AF_INET6)
			ipv6 = true;
	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	while (sock >= 0 && *p) {
		char name[IF_NAMESIZE] = "";
		size_t n = strcspn(p, ", \t");
		unsigned int m;

		snprintf(name, sizeof(name), "%.*s", (int)n, p);
		m = netdev_mtu(sock, name);
		if (m && (!min || m < min))
			min = m;
		p += n;
		p += strspn(p, ", \t");
	}
	if (sock >= 0)
		close(sock);
	dev->active_mtu = min ? ib_mtu_for(min, ipv6) : 1024;
	ipd_info("active MTU %u (smallest link MTU %u)", dev->active_mtu, min);
}

static int check_netdevs_exist(const char *list)
{
	const char *p = list;

	while (*p) {
		char name[IF_NAMESIZE + 1] = "";
		size_t n = strcspn(p, ", \t");

		snprintf(name, sizeof(name), "%.*s", (int)n, p);
		if (!if_nametoindex(name)) {
			ipd_err("netdev '%s': no such interface", name);
			return -ENODEV;
		}
		p += n;
		p += strspn(p, ", \t");
	}
	return 0;
}

int ipd_gids_discover(struct ipd_dev *dev)
{
	char list[sizeof(dev->cfg->netdevs)];
	char first[IF_NAMESIZE] = "";
	struct ifaddrs *ifs, *ifa;
	int family, ret;

	if (getifaddrs(&ifs) < 0) {
		ret = -errno;
		ipd_err("getifaddrs: %s", strerror(errno));
		return ret;
	}
	choose_netdevs(dev->cfg, ifs, list, sizeof(list));
	ret = check_netdevs_exist(list);
	if (ret)
		goto out;
	snprintf(first, sizeof(first), "%.*s", (int)strcspn(list, ", \t"), list);
	memset(dev->gids, 0, sizeof(dev->gids));
	dev->ngids = 0;
	pick_mac(dev, ifs, list);
	add_link_local(dev, first);
	/* IPv4-mapped GIDs first: perftest and most tools pick those. */
	for (family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		for (ifa = ifs; ifa; ifa = ifa->ifa_next) {
			if (!ifa_has_addr(ifa) || ifa->ifa_addr->sa_family != family ||
			    !name_in_list(list, ifa->ifa_name))
				continue;
			gid_add_sockaddr(dev, ifa->ifa_addr, ifa->ifa_name);
		}
	}
	ret = add_config_addrs(dev, ifs);
	if (ret)
		goto out;
	choose_mtu(dev, list);
	ipd_info("device %s on %s: node GUID %016llx, %d GIDs", dev->cfg->dev_name,
		 list, (unsigned long long)dev->node_guid, dev->ngids);
out:
	freeifaddrs(ifs);
	return ret;
}

int ipd_gid_find(const struct ipd_dev *dev, const union ibv_gid *gid)
{
	int i;

	for (i = 0; i < dev->ngids; i++)
		if (!memcmp(dev->gids[i].gid.raw, gid->raw, 16))
			return i;
	return -1;
}

/* ---- the tree ------------------------------------------------------ */

/* snprintf into a PATH_MAX buffer; truncation is reported, not silent. */
static int pathf(char *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int pathf(char *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	return n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

int ipd_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Write dir/name (creating parent directories), truncating in place. */
static int put_file(const char *dir, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int put_file(const char *dir, const char *name, const char *fmt, ...)
{
	char path[PATH_MAX], text[256];
	va_list ap;
	ssize_t n;
	int fd, len, ret;
	char *slash;

	if (pathf(path, "%s/%s", dir, name))
		return -ENAMETOOLONG;
	slash = strrchr(path, '/');
	*slash = '\0';
	ret = ipd_mkdir_p(path, 0755);
	*slash = '/';
	if (ret)
		goto err;
	va_start(ap, fmt);
	len = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		ret = -errno;
		goto err;
	}
	n = write(fd, text, (size_t)len);
	ret = n == len ? 0 : (n < 0 ? -errno : -EIO);
	close(fd);
	if (ret)
		goto err;
	return 0;
err:
	ipd_err("sysfs: %s: %s", path, strerror(-ret));
	return ret;
}

static void fmt_gid(char *out, size_t len, const union ibv_gid *g)
{
	/* The kernel's %pI6 form: 8 groups of 4 hex digits (libibverbs parses
	 * exactly that). */
	snprintf(out, len, "%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x",
		 g->raw[0], g->raw[1], g->raw[2], g->raw[3], g->raw[4],
		 g->raw[5], g->raw[6], g->raw[7], g->raw[8], g->raw[9],
		 g->raw[10], g->raw[11], g->raw[12], g->raw[13], g->raw[14],
		 g->raw[15]);
}

static void fmt_guid(char *out, size_t len, uint64_t guid)
{
	snprintf(out, len, "%04x:%04x:%04x:%04x", (unsigned)(guid >> 48) & 0xffff,
		 (unsigned)(guid >> 32) & 0xffff, (unsigned)(guid >> 16) & 0xffff,
		 (unsigned)guid & 0xffff);
}

static int publish_gids(struct ipd_dev *dev, const char *port)
{
	const union ibv_gid zero = { 0 };
	char name[64], text[48], path[PATH_MAX];
	int i, ret;

	for (i = 0; i < IPD_MAX_GIDS; i++) {
		const struct ipd_gid *g = i < dev->ngids ? &dev->gids[i] : NULL;

		/* Every index below gid_tbl_len must read (ibv_query_gid_table);
		 * unused ones are the zero GID. */
		fmt_gid(text, sizeof(text), g ? &g->gid : &zero);
		snprintf(name, sizeof(name), "gids/%d", i);
		ret = put_file(port, name, "%s\n", text);
		if (ret)
			return ret;
		snprintf(name, sizeof(name), "gid_attrs/types/%d", i);
		ret = put_file(port, name, "RoCE v2\n");
		if (ret)
			return ret;
		snprintf(name, sizeof(name), "gid_attrs/ndevs/%d", i);
		if (g && g->netdev[0]) {
			ret = put_file(port, name, "%s\n", g->netdev);
			if (ret)
				return ret;
		} else {
			/* Optional; a stale one would name a wrong netdev. */
			pathf(path, "%s/%s", port, name);
			unlink(path);
		}
	}
	return 0;
}

static int publish_port(struct ipd_dev *dev, const char *devdir)
{
	char port[PATH_MAX];
	size_t i;
	int ret;

	pathf(port, "%s/ports/%d", devdir, IPD_PORT);
	for (i = 0; i < sizeof(port_files) / sizeof(port_files[0]); i++) {
		ret = put_file(port, port_files[i].name, "%s\n",
			       port_files[i].value);
		if (ret)
			return ret;
	}
	return publish_gids(dev, port);
}

static int publish_device(struct ipd_dev *dev, const char *devdir)
{
	const struct ipd_config *cfg = dev->cfg;
	char guid[32], host[64] = "";
	int ret = 0;

	gethostname(host, sizeof(host) - 1);
	fmt_guid(guid, sizeof(guid), dev->node_guid);
	ret = ret ?: put_file(devdir, "node_type", "1: CA\n");
	ret = ret ?: put_file(devdir, "node_guid", "%s\n", guid);
	ret = ret ?: put_file(devdir, "sys_image_guid", "%s\n", guid);
	ret = ret ?: put_file(devdir, "fw_ver", "0.1.0\n");
	ret = ret ?: put_file(devdir, "hca_type", "ipathd\n");
	ret = ret ?: put_file(devdir, "hw_rev", "0\n");
	ret = ret ?: put_file(devdir, "board_id", "ipathd\n");
	ret = ret ?: put_file(devdir, "node_desc", "%s %s\n", host, cfg->dev_name);
	ret = ret ?: put_file(devdir, "ipathd_socket", "%s\n", cfg->socket_path);
	/* The provider's match table matches "ipathd:*" (docs/design.md). */
	ret = ret ?: put_file(devdir, "device/modalias", "ipathd:%s\n",
			      cfg->dev_name);
	return ret ?: publish_port(dev, devdir);
}

static int publish_uverbs(struct ipd_dev *dev, const char *root)
{
	char dir[PATH_MAX], path[PATH_MAX], old[64] = "";
	FILE *f;
	int ret;

	pathf(dir, "%s/class/infiniband_verbs/%s", root,
		 dev->cfg->dev_node);
	pathf(path, "%s/ibdev", dir);
	f = fopen(path, "re");
	if (f) {
		if (fgets(old, sizeof(old), f)) {
			old[strcspn(old, "\n")] = '\0';
			if (strcmp(old, dev->cfg->dev_name))
				ipd_warn("sysfs: %s belonged to device %s; taking it over",
					 dir, old);
		}
		fclose(f);
	}
	ret = put_file(root, "class/infiniband_verbs/abi_version", "%d\n",
		       UVERBS_ABI_VERSION);
	ret = ret ?: put_file(dir, "ibdev", "%s\n", dev->cfg->dev_name);
	ret = ret ?: put_file(dir, "dev", "%d:%d\n", CMD_FD_MAJOR, CMD_FD_MINOR);
	ret = ret ?: put_file(dir, "abi_version", "%d\n", UVERBS_ABI_VERSION);
	return ret;
}

static int make_dev_node(const char *node)
{
	char path[PATH_MAX];
	struct stat st;
	dev_t want = makedev(CMD_FD_MAJOR, CMD_FD_MINOR);

	pathf(path, DEV_NODE_DIR "/%s", node);
	if (!stat(path, &st)) {
		if (S_ISCHR(st.st_mode) && st.st_rdev == want)
			return 0;
		ipd_err("%s exists and is not our node (a real RDMA device?); choose another dev_node",
			path);
		return -EEXIST;
	}
	if (mkdir(DEV_NODE_DIR, 0755) < 0 && errno != EEXIST)
		goto err;
	if (mknod(path, S_IFCHR | 0666, want) < 0)
		goto err;
	/* umask must not keep applications from opening it O_RDWR. */
	chmod(path, 0666);
	return 0;
err:
	ipd_err("%s: %s", path, strerror(errno));
	return -errno;
}

/*
 * Real RDMA devices stay visible: link /sys/class/<cls>/<entry> into our
 * tree.  Names we publish ourselves win.
 */
static void link_real_devices(const char *root, const char *cls)
{
	char src[PATH_MAX], dst[PATH_MAX];
	struct dirent *de;
	DIR *d;

	pathf(src, REAL_SYSFS "%s", cls);
	d = opendir(src);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "abi_version"))
			continue;
		pathf(src, REAL_SYSFS "%s/%s", cls, de->d_name);
		pathf(dst, "%s/class/%s/%s", root, cls, de->d_name);
		if (symlink(src, dst) == 0)
			ipd_info("sysfs: real device %s linked", src);
	}
	closedir(d);
}

static bool is_real_sysfs(const char *root)
{
	char rp[PATH_MAX];

	return realpath(root, rp) && !strcmp(rp, "/sys");
}

int ipd_sysfs_publish(struct ipd_dev *dev)
{
	const struct ipd_config *cfg = dev->cfg;
	const char *root = cfg->sysfs_path;
	char devdir[PATH_MAX];
	int ret;

	if (is_real_sysfs(root)) {
		ipd_err("sysfs path %s is the kernel's sysfs; use a private tree",
			root);
		return -EINVAL;
	}
	if (pathf(devdir, "%s/class/infiniband/%s", root, cfg->dev_name))
		return -ENAMETOOLONG;
	ret = ipd_mkdir_p(devdir, 0755);
	if (ret) {
		ipd_err("sysfs: %s: %s", devdir, strerror(-ret));
		return ret;
	}
	ret = publish_device(dev, devdir);
	if (ret)
		return ret;
	/* The uverbs entry last: libibverbs starts from it. */
	ret = publish_uverbs(dev, root);
	if (ret)
		return ret;
	ret = make_dev_node(cfg->dev_node);
	if (ret)
		return ret;
	link_real_devices(root, "infiniband");
	link_real_devices(root, "infiniband_verbs");
	ipd_info("published %s as %s/class/infiniband/%s (node " DEV_NODE_DIR "/%s)",
		 cfg->dev_name, root, cfg->dev_name, cfg->dev_node);
	return 0;
}

/* ---- withdrawal ---------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	if (remove(path) < 0 && errno != ENOENT)
		ipd_dbg("sysfs: remove %s: %s", path, strerror(errno));
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Remove the symlinks to real devices (they point into /sys/class/). */
static void unlink_real_devices(const char *root, const char *cls)
{
	char dir[PATH_MAX], path[PATH_MAX], target[PATH_MAX];
	struct dirent *de;
	ssize_t n;
	DIR *d;

	pathf(dir, "%s/class/%s", root, cls);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_type != DT_LNK)
			continue;
		pathf(path, "%s/%s", dir, de->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (!strncmp(target, REAL_SYSFS, strlen(REAL_SYSFS)))
			unlink(path);
	}
	closedir(d);
}

/* True when dir has entries other than "." / ".." / except. */
static bool dir_has_others(const char *dir, const char *except)
{
	struct dirent *de;
	bool others = false;
	DIR *d = opendir(dir);

	if (!d)
		return false;
	while (!others && (de = readdir(d)))
		others = strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
			 strcmp(de->d_name, except);
	closedir(d);
	return others;
}

void ipd_sysfs_unpublish(struct ipd_dev *dev)
{
	const struct ipd_config *cfg = dev->cfg;
	const char *root = cfg->sysfs_path;
	char path[PATH_MAX];
	struct stat st;

	/* Uverbs entry first, so that nobody finds a half-removed device. */
	pathf(path, "%s/class/infiniband_verbs/%s", root,
		 cfg->dev_node);
	rm_tree(path);
	pathf(path, "%s/class/infiniband/%s", root,
		 cfg->dev_name);
	rm_tree(path);
	unlink_real_devices(root, "infiniband");
	unlink_real_devices(root, "infiniband_verbs");
	/* Another daemon may share the tree: shared files go last-one-out. */
	pathf(path, "%s/class/infiniband_verbs", root);
	if (!dir_has_others(path, "abi_version")) {
		snprintf(path, sizeof(path),
			 "%s/class/infiniband_verbs/abi_version", root);
		unlink(path);
	}
	pathf(path, "%s/class/infiniband_verbs", root);
	rmdir(path);
	pathf(path, "%s/class/infiniband", root);
	rmdir(path);
	pathf(path, "%s/class", root);
	rmdir(path);
	rmdir(root);

	pathf(path, DEV_NODE_DIR "/%s", cfg->dev_node);
	if (!stat(path, &st) && S_ISCHR(st.st_mode) &&
	    st.st_rdev == makedev(CMD_FD_MAJOR, CMD_FD_MINOR)) {
		if (unlink(path) < 0)
			ipd_warn("%s: %s (left in place)", path, strerror(errno));
	}
	rmdir(DEV_NODE_DIR);
	ipd_info("withdrew %s", cfg->dev_name);
}
