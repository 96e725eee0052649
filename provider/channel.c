// SPDX-License-Identifier: MIT
/*
 * Completion channels without a kernel (docs/design.md "Completion
 * channels").
 *
 * ibv_create_comp_channel() is not a provider op: libibverbs write()s a
 * CREATE_COMP_CHANNEL command to cmd_fd and takes the channel descriptor
 * from the response the command points to.  With no kernel behind cmd_fd
 * nobody would fill that response, so the provider redirects libibverbs'
 * own imports of write(), read() and close() (its GOT entries, nothing
 * else in the process) to the hooks below:
 *
 *   write  on one of our cmd_fds with CREATE_COMP_CHANNEL: create a
 *          SOCK_SEQPACKET socket pair, give one end to the daemon
 *          (CreateChannel), answer with the other.  Everything else goes
 *          to the real write() untouched.
 *   read   an 8-byte read of one of our channel fds (ibv_get_cq_event):
 *          return only records of CQs that are still bound to the channel
 *          (the kernel drops a destroyed CQ's unread events; we cannot take
 *          records back out of a socket), and count the event for the
 *          ack wait in destroy_cq.
 *   close  of one of our channel fds (ibv_destroy_comp_channel): forget it.
 *
 * If the hooks cannot be installed, cmd_fd stays an eventfd whose write()
 * fails with EINVAL, so ibv_create_comp_channel fails cleanly.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rdma/ib_user_verbs.h>

#include "ipathd.h"

/* What libibverbs writes for ibv_create_comp_channel (write() mode). */
struct chan_cmd {
	struct ib_uverbs_cmd_hdr hdr;
	struct ib_uverbs_create_comp_channel core;
};

/* A channel this process created through the hook. */
struct ipd_chan {
	int fd;				/* ibv_comp_channel.fd */
	dev_t st_dev;			/* identity of that socket */
	ino_t st_ino;
	struct ipd_context *ctx;	/* NULL once the context is gone */
	uint32_t handle;		/* the daemon's */
	bool open;			/* not closed through libibverbs yet */
	unsigned int ncq;		/* CQs bound, plus reservations */
	struct ipd_cq *cqs;		/* bound CQs, linked by chan_next */
	struct ipd_chan *next;
};

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*read_fn)(int, void *, size_t);
typedef int (*close_fn)(int);

/*
 * Process-wide state: the GOT hooks are process-wide by nature.  One
 * mutex guards the lists; it is never held across a blocking call.
 */
static struct {
	pthread_once_t once;
	bool installed;
	write_fn real_write;
	read_fn real_read;
	close_fn real_close;
	pthread_mutex_t lock;
	struct ipd_context *ctxs;	/* linked by chan_next */
	struct ipd_chan *chans;		/* open channels (fd lookups) */
	_Atomic unsigned int nchans;	/* fast path: no channel, no lock */
} chan_state = {
	.once = PTHREAD_ONCE_INIT,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/* ------------------------------------------------------------------ */
/* Registry                                                            */

static struct ipd_context *ctx_by_cmd_fd(int fd)
{
	struct ipd_context *ctx;

	for (ctx = chan_state.ctxs; ctx; ctx = ctx->chan_next)
		if (ctx->vctx.context.cmd_fd == fd)
			return ctx;
	return NULL;
}

static struct ipd_chan *chan_by_fd(int fd)
{
	struct ipd_chan *ch;

	for (ch = chan_state.chans; ch; ch = ch->next)
		if (ch->fd == fd)
			return ch;
	return NULL;
}

/* Take ch off the fd list (lock held); free it when no CQ needs it. */
static void chan_unlist(struct ipd_chan *ch)
{
	struct ipd_chan **pp;

	for (pp = &chan_state.chans; *pp; pp = &(*pp)->next) {
		if (*pp == ch) {
			*pp = ch->next;
			chan_state.nchans--;
			break;
		}
	}
	ch->open = false;
	ch->next = NULL;
	if (!ch->ncq)
		free(ch);
}

void ipd_chan_ctx_add(struct ipd_context *ctx)
{
	ctx->pid = getpid();
	pthread_mutex_lock(&chan_state.lock);
	ctx->chan_next = chan_state.ctxs;
	chan_state.ctxs = ctx;
	pthread_mutex_unlock(&chan_state.lock);
}

void ipd_chan_ctx_del(struct ipd_context *ctx)
{
	struct ipd_context **pp;
	struct ipd_chan *ch;

	pthread_mutex_lock(&chan_state.lock);
	for (pp = &chan_state.ctxs; *pp; pp = &(*pp)->chan_next) {
		if (*pp == ctx) {
			*pp = ctx->chan_next;
			break;
		}
	}
	/* Channels outlive a context only as dead ends: no new CQs. */
	for (ch = chan_state.chans; ch; ch = ch->next)
		if (ch->ctx == ctx)
			ch->ctx = NULL;
	pthread_mutex_unlock(&chan_state.lock);
}

/* ------------------------------------------------------------------ */
/* The emulated CREATE_COMP_CHANNEL                                    */

static int daemon_create_channel(struct ipd_context *ctx, int fd,
				 uint32_t *handle)
{
	Ipd__Request req = IPD__REQUEST__INIT;
	Ipd__CreateChannel cc = IPD__CREATE_CHANNEL__INIT;
	Ipd__Response *resp;
	int err;

	req.op_case = IPD__REQUEST__OP_CREATE_CHANNEL;
	req.create_channel = &cc;
	err = ipd_ctl_request(ctx, &req, &fd, 1, &resp, NULL, NULL, 0);
	if (err)
		return err;
	if (resp->op_case != IPD__RESPONSE__OP_CREATE_CHANNEL)
		err = EPROTO;
	else
		*handle = resp->create_channel->handle;
	ipd_ctl_free(resp);
	return err;
}

static int create_channel(struct ipd_context *ctx, int *fd_out)
{
	struct ipd_chan *ch, *old;
	struct stat st;
	int sv[2], err;

	/*
	 * A forked child shares the parent's control socket: a request from
	 * it would interleave with the parent's.  (The kernel would let the
	 * child use the parent's context; we cannot.)
	 */
	if (ctx->pid != getpid())
		return EINVAL;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		err = errno;
		goto err_free;
	}
	if (fstat(sv[0], &st) < 0) {
		err = errno;
		goto err_close;
	}
	err = daemon_create_channel(ctx, sv[1], &ch->handle);
	/* A daemon without channels: the documented no-channel answer. */
	if (err == EOPNOTSUPP)
		err = EINVAL;
	if (err)
		goto err_close;
	chan_state.real_close(sv[1]);
	ch->fd = sv[0];
	ch->st_dev = st.st_dev;
	ch->st_ino = st.st_ino;
	ch->ctx = ctx;
	ch->open = true;
	pthread_mutex_lock(&chan_state.lock);
	/* The application closed an old channel behind libibverbs' back. */
	old = chan_by_fd(ch->fd);
	if (old)
		chan_unlist(old);
	ch->next = chan_state.chans;
	chan_state.chans = ch;
	chan_state.nchans++;
	pthread_mutex_unlock(&chan_state.lock);
	*fd_out = sv[0];
	return 0;

err_close:
	chan_state.real_close(sv[0]);
	chan_state.real_close(sv[1]);
err_free:
	free(ch);
	return err;
}

static bool is_create_channel(const void *buf, size_t n)
{
	const struct chan_cmd *cmd = buf;

	return buf && n == sizeof(*cmd) &&
	       cmd->hdr.command == IB_USER_VERBS_CMD_CREATE_COMP_CHANNEL;
}

static ssize_t hook_write(int fd, const void *buf, size_t n)
{
	const struct chan_cmd *cmd = buf;
	struct ib_uverbs_create_comp_channel_resp *resp;
	struct ipd_context *ctx;
	int err, chfd = -1;

	if (!is_create_channel(buf, n))
		return chan_state.real_write(fd, buf, n);
	pthread_mutex_lock(&chan_state.lock);
	ctx = ctx_by_cmd_fd(fd);
	pthread_mutex_unlock(&chan_state.lock);
	if (!ctx)
		return chan_state.real_write(fd, buf, n);
	resp = (void *)(uintptr_t)cmd->core.response;
	if (!resp || cmd->hdr.out_words * 4u < sizeof(*resp)) {
		errno = EINVAL;
		return -1;
	}
	err = create_channel(ctx, &chfd);
	if (err) {
		errno = err;
		return -1;
	}
	resp->fd = (uint32_t)chfd;
	return (ssize_t)n;
}

/* ------------------------------------------------------------------ */
/* Reading events and closing channels                                 */

static struct ipd_cq *chan_find_cq(struct ipd_chan *ch, uint64_t handle)
{
	struct ipd_cq *cq;

	for (cq = ch->cqs; cq; cq = cq->chan_next)
		if ((uintptr_t)&cq->vcq.cq == handle)
			return cq;
	return NULL;
}

/*
 * EOF on a channel: the daemon's end is gone, so is the daemon.  Wake the
 * reader with an event for a bound CQ that has completions or flushes to
 * poll (docs/design.md "Daemon failure"); with none, EOF it is, and
 * ibv_get_cq_event fails instead of blocking forever.
 */
static ssize_t chan_dead_event(int fd, struct ib_uverbs_comp_event_desc *ev)
{
	struct ipd_chan *ch;
	struct ipd_cq *cq = NULL;

	pthread_mutex_lock(&chan_state.lock);
	ch = chan_by_fd(fd);
	if (ch && ch->ctx) {
		ipd_fatal_mark(ch->ctx);
		for (cq = ch->cqs; cq; cq = cq->chan_next)
			if (ipd_fatal_cq_pending(cq))
				break;
	}
	if (cq) {
		cq->events_read++;
		ev->cq_handle = (uintptr_t)&cq->vcq.cq;
	}
	pthread_mutex_unlock(&chan_state.lock);
	return cq ? (ssize_t)sizeof(*ev) : 0;
}

static ssize_t hook_read(int fd, void *buf, size_t n)
{
	struct ib_uverbs_comp_event_desc ev;
	struct ipd_chan *ch;
	struct ipd_cq *cq;
	ssize_t r;

	if (n != sizeof(ev) || !atomic_load(&chan_state.nchans))
		return chan_state.real_read(fd, buf, n);
	pthread_mutex_lock(&chan_state.lock);
	ch = chan_by_fd(fd);
	pthread_mutex_unlock(&chan_state.lock);
	if (!ch)
		return chan_state.real_read(fd, buf, n);
	/* Each pass consumes one record: bounded by what the socket holds. */
	for (;;) {
		r = chan_state.real_read(fd, &ev, sizeof(ev));
		if (r == 0) {
			r = chan_dead_event(fd, &ev);
			if (r)
				memcpy(buf, &ev, sizeof(ev));
			return r;
		}
		if (r != (ssize_t)sizeof(ev))
			return r;
		pthread_mutex_lock(&chan_state.lock);
		ch = chan_by_fd(fd);
		cq = ch ? chan_find_cq(ch, ev.cq_handle) : NULL;
		if (cq)
			cq->events_read++;
		pthread_mutex_unlock(&chan_state.lock);
		if (cq || !ch) {
			memcpy(buf, &ev, sizeof(ev));
			return r;
		}
		/* A record of a CQ destroyed since: drop it, as the kernel does. */
	}
}

static int hook_close(int fd)
{
	struct ipd_chan *ch;

	if (atomic_load(&chan_state.nchans)) {
		pthread_mutex_lock(&chan_state.lock);
		ch = chan_by_fd(fd);
		if (ch)
			chan_unlist(ch);
		pthread_mutex_unlock(&chan_state.lock);
	}
	return chan_state.real_close(fd);
}

/* ------------------------------------------------------------------ */
/* CQs bound to channels                                               */

int ipd_chan_bind_begin(struct ipd_context *ctx,
			struct ibv_comp_channel *channel,
			struct ipd_chan **out, uint32_t *handle)
{
	struct ipd_chan *ch;
	struct stat st;
	int err = EINVAL;

	/* Our channels all carry a real socket: check the fd is still it. */
	if (!channel || channel->context != &ctx->vctx.context ||
	    fstat(channel->fd, &st) < 0)
		return EINVAL;
	pthread_mutex_lock(&chan_state.lock);
	ch = chan_by_fd(channel->fd);
	if (ch && ch->ctx == ctx && ch->st_dev == st.st_dev &&
	    ch->st_ino == st.st_ino) {
		ch->ncq++;	/* keeps ch until bind_end/abort */
		*out = ch;
		*handle = ch->handle;
		err = 0;
	}
	pthread_mutex_unlock(&chan_state.lock);
	return err;
}

void ipd_chan_bind_end(struct ipd_chan *ch, struct ipd_cq *cq)
{
	pthread_mutex_lock(&chan_state.lock);
	cq->chan = ch;
	cq->events_read = 0;
	cq->chan_next = ch->cqs;
	ch->cqs = cq;
	pthread_mutex_unlock(&chan_state.lock);
}

static void chan_put(struct ipd_chan *ch)
{
	if (!--ch->ncq && !ch->open)
		free(ch);
}

void ipd_chan_bind_abort(struct ipd_chan *ch)
{
	pthread_mutex_lock(&chan_state.lock);
	chan_put(ch);
	pthread_mutex_unlock(&chan_state.lock);
}

/*
 * After the daemon destroyed cq: no more records name it.  Wait, as the
 * kernel ABI does, until the application acked every event it read for
 * this CQ (ibv_ack_cq_events), so that no one still holds it.
 */
void ipd_chan_unbind(struct ipd_cq *cq)
{
	struct ipd_chan *ch = cq->chan;
	struct ibv_cq *ibcq = &cq->vcq.cq;
	struct ipd_cq **pp;
	uint32_t read;

	if (!ch)
		return;
	pthread_mutex_lock(&chan_state.lock);
	for (pp = &ch->cqs; *pp; pp = &(*pp)->chan_next) {
		if (*pp == cq) {
			*pp = cq->chan_next;
			break;
		}
	}
	read = cq->events_read;
	cq->chan = NULL;
	chan_put(ch);
	pthread_mutex_unlock(&chan_state.lock);
	pthread_mutex_lock(&ibcq->mutex);
	while ((int32_t)(read - ibcq->comp_events_completed) > 0)
		pthread_cond_wait(&ibcq->cond, &ibcq->mutex);
	pthread_mutex_unlock(&ibcq->mutex);
}

/* ------------------------------------------------------------------ */
/* Installing the hooks                                                */

struct got_target {
	const char *name;
	void *hook;
	void **slot;
};

struct got_search {
	uintptr_t base;			/* load address of libibverbs */
	struct got_target *t;
	size_t nt;
	uintptr_t relro_start, relro_end;
	bool found_object;
};

/* d_ptr values are relocated in place by glibc on most targets, not all. */
static uintptr_t dyn_ptr(uintptr_t base, ElfW(Addr) p)
{
	return p < base ? base + p : p;
}

static void got_scan(struct got_search *s, const ElfW(Dyn) *dyn)
{
	uintptr_t jmprel = 0, symtab = 0, strtab = 0;
	size_t relsz = 0, entsz;
	bool rela = true;

	for (; dyn->d_tag != DT_NULL; dyn++) {
		switch (dyn->d_tag) {
		case DT_JMPREL:
			jmprel = dyn_ptr(s->base, dyn->d_un.d_ptr);
			break;
		case DT_PLTRELSZ:
			relsz = dyn->d_un.d_val;
			break;
		case DT_PLTREL:
			rela = dyn->d_un.d_val == DT_RELA;
			break;
		case DT_SYMTAB:
			symtab = dyn_ptr(s->base, dyn->d_un.d_ptr);
			break;
		case DT_STRTAB:
			strtab = dyn_ptr(s->base, dyn->d_un.d_ptr);
			break;
		}
	}
	if (!jmprel || !symtab || !strtab)
		return;
	entsz = rela ? sizeof(ElfW(Rela)) : sizeof(ElfW(Rel));
	for (size_t off = 0; off + entsz <= relsz; off += entsz) {
		/* Rel and Rela begin alike: r_offset, r_info. */
		const ElfW(Rel) *r = (const void *)(jmprel + off);
		const ElfW(Sym) *sym = (const ElfW(Sym) *)symtab +
#if __ELF_NATIVE_CLASS == 64
				       ELF64_R_SYM(r->r_info);
#else
				       ELF32_R_SYM(r->r_info);
#endif
		const char *name = (const char *)strtab + sym->st_name;

		for (size_t i = 0; i < s->nt; i++)
			if (!s->t[i].slot && !strcmp(name, s->t[i].name))
				s->t[i].slot = (void **)(s->base + r->r_offset);
	}
}

static int got_find(struct dl_phdr_info *info, size_t size, void *data)
{
	struct got_search *s = data;
	const ElfW(Dyn) *dyn = NULL;

	(void)size;
	if (info->dlpi_addr != s->base)
		return 0;
	s->found_object = true;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_DYNAMIC)
			dyn = (const void *)(s->base + ph->p_vaddr);
		if (ph->p_type == PT_GNU_RELRO) {
			s->relro_start = s->base + ph->p_vaddr;
			s->relro_end = s->relro_start + ph->p_memsz;
		}
	}
	if (dyn)
		got_scan(s, dyn);
	return 1;
}

/* Store hook into slot; RELRO pages are read-only after relocation. */
static int got_patch(struct got_search *s, void **slot, void *hook)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t page = (uintptr_t)slot & ~(pg - 1);
	bool relro = (uintptr_t)slot >= s->relro_start &&
		     (uintptr_t)slot < s->relro_end;

	if (relro && mprotect((void *)page, pg, PROT_READ | PROT_WRITE))
		return errno;
	__atomic_store_n(slot, hook, __ATOMIC_SEQ_CST);
	if (relro)
		mprotect((void *)page, pg, PROT_READ);
	return 0;
}

/* The function a slot would call: what it holds when already bound,
 * otherwise the first definition in the global scope. */
static void *got_original(struct got_search *s, void **slot, const char *name)
{
	Dl_info di;
	void *cur = *slot;

	if (cur && dladdr(cur, &di) && (uintptr_t)di.dli_fbase != s->base)
		return cur;
	return dlsym(RTLD_DEFAULT, name);
}

/*
 * fork(): the child gets a copy of the lock; taking it around fork() means
 * that copy is never held by a thread the child does not have.  The lock
 * is only ever held for list updates, so the wait is short.
 */
static void chan_atfork_prepare(void)
{
	pthread_mutex_lock(&chan_state.lock);
}

static void chan_atfork_release(void)
{
	pthread_mutex_unlock(&chan_state.lock);
}

static void install_hooks(void)
{
	struct got_target t[] = {
		{ "write", (void *)hook_write, NULL },
		{ "read", (void *)hook_read, NULL },
		{ "close", (void *)hook_close, NULL },
	};
	struct got_search s = { .t = t, .nt = 3 };
	void *orig[3];
	Dl_info di;

	if (getenv("IPATHD_NO_CHANNELS"))
		return;
	/* The object that implements ibv_create_comp_channel. */
	if (!dladdr((void *)ibv_create_comp_channel, &di) || !di.dli_fbase)
		return;
	s.base = (uintptr_t)di.dli_fbase;
	dl_iterate_phdr(got_find, &s);
	for (int i = 0; i < 3; i++) {
		if (!t[i].slot)
			goto not_found;
		orig[i] = got_original(&s, t[i].slot, t[i].name);
		if (!orig[i])
			goto not_found;
	}
	if (pthread_atfork(chan_atfork_prepare, chan_atfork_release,
			   chan_atfork_release))
		return;
	chan_state.real_write = (write_fn)orig[0];
	chan_state.real_read = (read_fn)orig[1];
	chan_state.real_close = (close_fn)orig[2];
	/* close and read first: harmless alone; write enables channels. */
	if (got_patch(&s, t[2].slot, t[2].hook) ||
	    got_patch(&s, t[1].slot, t[1].hook) ||
	    got_patch(&s, t[0].slot, t[0].hook)) {
		if (getenv("IPATHD_DEBUG"))
			fprintf(stderr, IPD_PFX "cannot patch libibverbs: "
				"completion channels disabled\n");
		return;
	}
	chan_state.installed = true;
	return;

not_found:
	if (getenv("IPATHD_DEBUG"))
		fprintf(stderr, IPD_PFX "libibverbs imports not found: "
			"completion channels disabled\n");
}

bool ipd_chan_init(void)
{
	pthread_once(&chan_state.once, install_hooks);
	return chan_state.installed;
}
