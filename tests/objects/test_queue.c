// SPDX-License-Identifier: MIT
/* memfd rings: creation, sealing, client view, index validation. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ipathd.h"


static void test_create(void)
{
	struct ipd_queue q;
	struct stat st;
	long pg = sysconf(_SC_PAGESIZE);
	int fd = -1;

	CHECK(ipd_queue_create(&q, 5, 64, "t", &fd) == 0);
	CHECK(q.size == 8);
	CHECK(q.slot_size == 64);
	CHECK(q.hdr->size == 8 && q.hdr->slot_size == 64);
	CHECK(q.cons == 0 && q.prod == 0);
	CHECK(fstat(fd, &st) == 0);
	CHECK(st.st_size >= (off_t)ipd_ring_bytes(8, 64));
	CHECK(st.st_size % pg == 0);
	/* The client cannot shrink the ring under the daemon. */
	CHECK(ftruncate(fd, 0) < 0 && errno == EPERM);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	ipd_queue_destroy(&q);

	CHECK(ipd_queue_create(&q, 0, 64, "t", &fd) == 0);
	CHECK(q.size == 1);
	close(fd);
	ipd_queue_destroy(&q);

	CHECK(ipd_queue_create(&q, 4, 48, "t", &fd) == -EINVAL);
	CHECK(ipd_queue_create(&q, 4, 0, "t", &fd) == -EINVAL);
	CHECK(ipd_queue_create(&q, 1u << 30, 64, "t", &fd) == -EINVAL);
}

/* The client maps the fd, produces, and the daemon copies out. */
static void test_produce_consume(void)
{
	struct ipd_queue q;
	struct ipd_ring_hdr *client;
	uint8_t buf[128];
	int fd;

	CHECK(ipd_queue_create(&q, 4, 128, "t", &fd) == 0);
	client = mmap(NULL, q.map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(client != MAP_FAILED);
	if (client == MAP_FAILED)
		return;
	CHECK(ipd_queue_ready(&q) == 0);
	for (uint32_t i = 0; i < 4; i++)
		memset(ipd_ring_slot(client, 4, 128, i), 'a' + (int)i, 128);
	ipd_ring_publish(client, 3);
	CHECK(ipd_queue_ready(&q) == 3);
	ipd_queue_copy_next(&q, buf);
	CHECK(buf[0] == 'a' && buf[127] == 'a');
	CHECK(q.cons == 1);
	/* Consumed but not released: the client still sees it busy. */
	CHECK(atomic_load(&client->cons) == 0);
	ipd_queue_release(&q, q.cons);
	CHECK(atomic_load(&client->cons) == 1);
	ipd_queue_copy_next(&q, buf);
	CHECK(buf[5] == 'b');
	CHECK(ipd_queue_ready(&q) == 1);

	/* A producer index more than size ahead is impossible: nothing. */
	ipd_ring_publish(client, q.cons + 5);
	CHECK(ipd_queue_ready(&q) == 0);
	ipd_ring_publish(client, q.cons + 4);
	CHECK(ipd_queue_ready(&q) == 4);
	/* Behind the consumer (wraps to a huge count): nothing. */
	ipd_ring_publish(client, q.cons - 1);
	CHECK(ipd_queue_ready(&q) == 0);

	/* Free-running indices wrap at 2^32. */
	q.cons = 0xfffffffeu;
	ipd_ring_publish(client, 1);
	CHECK(ipd_queue_ready(&q) == 3);
	ipd_queue_copy_next(&q, buf);   /* slot 0xfffffffe & 3 = 2 */
	CHECK(buf[0] == 'c');
	ipd_queue_copy_next(&q, buf);   /* slot 3 */
	CHECK(buf[0] == 'd');
	ipd_queue_copy_next(&q, buf);   /* index 0: slot 0 */
	CHECK(buf[0] == 'a');
	CHECK(q.cons == 1);

	munmap(client, q.map_len);
	close(fd);
	ipd_queue_destroy(&q);
}

int main(void)
{
	test_create();
	test_produce_consume();
	return check_done("queue");
}
