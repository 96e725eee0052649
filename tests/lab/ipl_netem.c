// SPDX-License-Identifier: MIT
/*
 * ipl-netem: a user-space stand-in for tc netem, for kernels built
 * without sch_netem (CONFIG_NET_SCH_NETEM unset, as on the project's
 * machines).  ipathd-lab.sh splices it between a host's veth and the
 * bridge; it forwards Ethernet frames between two interfaces with
 * AF_PACKET sockets and impairs the direction IN -> OUT the way netem
 * impairs a device's egress:
 *
 *   ipl-netem IN OUT [delay TIME [JITTER]] [loss PCT] [duplicate PCT]
 *             [corrupt PCT] [reorder PCT] [seed N]
 *
 * TIME in us/ms/s (netem syntax), PCT like "1%" or "0.5".  Frames from
 * OUT to IN pass untouched.  corrupt flips one random bit after the
 * Ethernet header (as netem, the frame is still delivered; an IP header
 * hit is dropped by the receiving kernel, a payload hit reaches the
 * application unless a checksum catches it: offloaded checksums are
 * finished first, and a GSO super-frame passes the corruption on to the
 * next ordinary frame).  reorder PCT sends that share of frames at once while
 * the others wait for the delay (netem's gap-less reorder); without a
 * delay a reordered frame is held back until the next frame has gone.
 * Runs until SIGTERM/SIGINT; bounded queue (frames beyond it are dropped
 * and counted, like netem's limit).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Frames carry a virtio_net_hdr (PACKET_VNET_HDR): GSO super-frames and
 * frames whose checksum the sender left to offload pass through intact,
 * the kernel finishes them when we send them on. */
#define VNET_HLEN sizeof(struct virtio_net_hdr)
#define FRAME_MAX (VNET_HLEN + ETH_HLEN + 65536)
#define QUEUE_MAX 4096        /* netem's default limit is 1000 */

struct frame {
	uint64_t due_ns;
	uint64_t seq;         /* tie-break: FIFO among equal due times */
	uint32_t len;         /* virtio_net_hdr + Ethernet frame */
	uint8_t data[];
};

struct impair {
	uint64_t delay_ns, jitter_ns;
	double loss, dup, corrupt, reorder;   /* probabilities 0..1 */
};

struct stats {
	uint64_t in, out, back, lost, duplicated, corrupted, reordered,
		overflow;
};

static volatile sig_atomic_t stop;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static void on_signal(int sig)
{
	stop = 1;
}

/* xorshift64*: good enough for coin flips, reproducible with "seed". */
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static bool chance(double p)
{
	return p > 0 && (double)(rng() >> 11) / (double)(1ull << 53) < p;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int parse_time(const char *s, uint64_t *ns)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || v < 0)
		return -1;
	if (!strcmp(end, "us") || !strcmp(end, "usec"))
		*ns = (uint64_t)(v * 1e3);
	else if (!strcmp(end, "ms") || !strcmp(end, "msec"))
		*ns = (uint64_t)(v * 1e6);
	else if (!strcmp(end, "s") || !strcmp(end, "sec") || !*end)
		*ns = (uint64_t)(v * 1e9);
	else
		return -1;
	return 0;
}

static int parse_pct(const char *s, double *p)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || (*end && strcmp(end, "%")) || v < 0 || v > 100)
		return -1;
	*p = v / 100.0;
	return 0;
}

static int parse_args(int argc, char **argv, struct impair *im)
{
	int i;

	for (i = 0; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			return -1;
		if (!strcmp(k, "delay")) {
			if (parse_time(v, &im->delay_ns))
				return -1;
			i++;
			if (i + 1 < argc && !parse_time(argv[i + 1], &im->jitter_ns))
				i++;
			continue;
		}
		if (!strcmp(k, "seed"))
			rng_state = strtoull(v, NULL, 0) | 1;
		else if (!strcmp(k, "loss") ? parse_pct(v, &im->loss) :
			 !strcmp(k, "duplicate") ? parse_pct(v, &im->dup) :
			 !strcmp(k, "corrupt") ? parse_pct(v, &im->corrupt) :
			 !strcmp(k, "reorder") ? parse_pct(v, &im->reorder) : -1)
			return -1;
		i++;
	}
	return 0;
}

static int packet_socket(const char *ifname)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET,
				   .sll_protocol = htons(ETH_P_ALL) };
	struct packet_mreq mr = { .mr_type = PACKET_MR_PROMISC };
	int one = 1, sz = 8 << 20;
	int fd;

	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (!sll.sll_ifindex) {
		fprintf(stderr, "ipl-netem: no interface %s\n", ifname);
		return -1;
	}
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    htons(ETH_P_ALL));
	if (fd < 0)
		goto err;
	mr.mr_ifindex = sll.sll_ifindex;
	/* Our own transmissions must not come back to us. */
	if (setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one,
		       sizeof(one)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll)))
		goto err;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	return fd;
err:
	fprintf(stderr, "ipl-netem: %s: %s\n", ifname, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* ---- the delay line: a binary min-heap on (due_ns, seq) -------------- */

static struct frame *heap[QUEUE_MAX];
static unsigned int nheap;

static bool before(const struct frame *a, const struct frame *b)
{
	return a->due_ns < b->due_ns ||
	       (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void heap_push(struct frame *f)
{
	unsigned int i = nheap++;

	while (i && before(f, heap[(i - 1) / 2])) {
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = f;
}

static struct frame *heap_pop(void)
{
	struct frame *top = heap[0], *last = heap[--nheap];
	unsigned int i = 0, c;

	while ((c = 2 * i + 1) < nheap) {
		if (c + 1 < nheap && before(heap[c + 1], heap[c]))
			c++;
		if (!before(heap[c], last))
			break;
		heap[i] = heap[c];
		i = c;
	}
	heap[i] = last;
	return top;
}

/* ---- forwarding -------------------------------------------------------- */

static struct stats st;
static uint64_t seq;
static struct frame *held;    /* reorder without delay: waits one frame */

static void send_frame(int fd, const struct frame *f)
{
	if (send(fd, f->data, f->len, 0) == (ssize_t)f->len)
		st.out++;
}

static void enqueue(const struct impair *im, struct frame *f, uint64_t now,
		    int out_fd)
{
	int64_t jit = 0;

	if (im->jitter_ns)
		jit = (int64_t)(rng() % (2 * im->jitter_ns + 1)) -
		      (int64_t)im->jitter_ns;
	f->seq = seq++;
	if (chance(im->reorder)) {
		st.reordered++;
		if (!im->delay_ns) {
			if (held) {
				send_frame(out_fd, held);
				free(held);
			}
			held = f;
			return;
		}
		f->due_ns = now;   /* jumps the queue */
	} else {
		int64_t d = (int64_t)im->delay_ns + jit;

		f->due_ns = now + (uint64_t)(d < 0 ? 0 : d);
	}
	if (nheap == QUEUE_MAX) {
		st.overflow++;
		free(f);
		return;
	}
	heap_push(f);
}

/* Finish a checksum the sender left to offload (VIRTIO_NET_HDR_F_NEEDS_CSUM)
 * so that corruption after it is detectable, as netem does with
 * skb_checksum_help before corrupting.  RFC 1071 ones' complement sum over
 * [csum_start, end) including the seeded field, folded and inverted. */
static bool finish_csum(uint8_t *data, uint32_t len)
{
	struct virtio_net_hdr vh;
	uint32_t start, field, i, sum = 0;
	uint8_t *frame = data + VNET_HLEN;
	uint32_t flen = len - VNET_HLEN;
	uint16_t c;

	memcpy(&vh, data, sizeof(vh));
	if (vh.gso_type != VIRTIO_NET_HDR_GSO_NONE)
		return false;   /* segmented later: corruption would be hidden */
	if (!(vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
		return true;
	start = vh.csum_start;
	field = start + vh.csum_offset;
	if (start >= flen || field + 2 > flen)
		return false;
	for (i = start; i + 1 < flen; i += 2)
		sum += (uint32_t)(frame[i] << 8 | frame[i + 1]);
	if (i < flen)
		sum += (uint32_t)(frame[i] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	c = (uint16_t)~sum;
	frame[field] = (uint8_t)(c >> 8);
	frame[field + 1] = (uint8_t)c;
	vh.flags &= (uint8_t)~VIRTIO_NET_HDR_F_NEEDS_CSUM;
	memcpy(data, &vh, sizeof(vh));
	return true;
}

static bool corrupt_pending;   /* a GSO frame dodged its corruption */

static void impair_frame(const struct impair *im, const uint8_t *buf,
			 uint32_t len, int out_fd)
{
	int copies = 1, i;
	uint64_t now = now_ns();

	st.in++;
	if (chance(im->loss)) {
		st.lost++;
		return;
	}
	if (chance(im->dup)) {
		st.duplicated++;
		copies = 2;
	}
	for (i = 0; i < copies; i++) {
		struct frame *f = malloc(sizeof(*f) + len);
		const uint32_t hl = VNET_HLEN + ETH_HLEN;

		if (!f)
			return;
		memcpy(f->data, buf, len);
		f->len = len;
		if (i == 0 && len > hl &&
		    (corrupt_pending || chance(im->corrupt))) {
			corrupt_pending = !finish_csum(f->data, len);
			if (!corrupt_pending) {
				uint32_t bit = (uint32_t)(rng() % ((len - hl) * 8));

				f->data[hl + bit / 8] ^= (uint8_t)(1u << (bit % 8));
				st.corrupted++;
			}
		}
		enqueue(im, f, now, out_fd);
	}
	/* a held (reordered) frame goes right after the next one */
	if (held && !im->delay_ns && nheap) {
		struct frame *f;

		while (nheap) {
			f = heap_pop();
			send_frame(out_fd, f);
			free(f);
		}
		send_frame(out_fd, held);
		free(held);
		held = NULL;
	}
}

static void release_due(int out_fd)
{
	uint64_t now = now_ns();

	while (nheap && heap[0]->due_ns <= now) {
		struct frame *f = heap_pop();

		send_frame(out_fd, f);
		free(f);
	}
}

static int poll_timeout_ms(void)
{
	uint64_t now, due;

	if (held)
		return 10;   /* a lone held frame goes out after 10 ms */
	if (!nheap)
		return 1000;
	now = now_ns();
	due = heap[0]->due_ns;
	if (due <= now)
		return 0;
	return (int)((due - now + 999999) / 1000000);
}

static void drain(int in_fd, int out_fd, const struct impair *im, bool impaired)
{
	static uint8_t buf[FRAME_MAX];
	int n;

	for (n = 0; n < 256; n++) {
		ssize_t len = recv(in_fd, buf, sizeof(buf), MSG_TRUNC);

		if (len <= 0)
			return;
		if ((size_t)len > FRAME_MAX)
			continue;
		if (impaired) {
			impair_frame(im, buf, (uint32_t)len, out_fd);
		} else if (send(out_fd, buf, (size_t)len, 0) == len) {
			st.back++;
		}
	}
}

int main(int argc, char **argv)
{
	struct impair im = { 0 };
	struct pollfd pfd[2];
	int in_fd, out_fd, t;

	if (argc < 3 || parse_args(argc - 3, argv + 3, &im)) {
		fprintf(stderr,
			"usage: ipl-netem IN OUT [delay TIME [JITTER]] [loss PCT] [duplicate PCT]\n"
			"                 [corrupt PCT] [reorder PCT] [seed N]\n");
		return 2;
	}
	in_fd = packet_socket(argv[1]);
	out_fd = packet_socket(argv[2]);
	if (in_fd < 0 || out_fd < 0)
		return 1;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	pfd[0] = (struct pollfd){ .fd = in_fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = out_fd, .events = POLLIN };
	fprintf(stderr, "ipl-netem: %s -> %s delay %lluus jitter %lluus loss %g dup %g corrupt %g reorder %g\n",
		argv[1], argv[2], (unsigned long long)(im.delay_ns / 1000),
		(unsigned long long)(im.jitter_ns / 1000), im.loss, im.dup,
		im.corrupt, im.reorder);
	while (!stop) {
		t = poll_timeout_ms();
		if (poll(pfd, 2, t) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents & POLLIN)
			drain(in_fd, out_fd, &im, true);
		if (pfd[1].revents & POLLIN)
			drain(out_fd, in_fd, &im, false);
		release_due(out_fd);
		if (held && !nheap && t == 10 && !(pfd[0].revents & POLLIN)) {
			send_frame(out_fd, held);
			free(held);
			held = NULL;
		}
	}
	fprintf(stderr, "ipl-netem: in %llu out %llu back %llu lost %llu dup %llu corrupt %llu reorder %llu overflow %llu\n",
		(unsigned long long)st.in, (unsigned long long)st.out,
		(unsigned long long)st.back, (unsigned long long)st.lost,
		(unsigned long long)st.duplicated,
		(unsigned long long)st.corrupted,
		(unsigned long long)st.reordered,
		(unsigned long long)st.overflow);
	return 0;
}
