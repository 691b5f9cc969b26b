/*
 * faultproxy.c - a TCP proxy that damages the links between nodes, for
 * tests: partitions, slow, lossy and flapping links, cut connections.
 *
 * usage:
 *   faultproxy --control HOST:PORT [--seed N] LISTEN=TARGET...
 *   faultproxy --ctl HOST:PORT COMMAND [ARG]
 *
 * The first form forwards every connection made to a LISTEN address
 * (HOST:PORT) to its TARGET, bytes as they come: between musubi nodes they
 * are CURVE-encrypted ZMTP, which the proxy neither reads nor needs to. A
 * line protocol on the control address says what happens to them; each
 * command answers one line, "ok ..." or "error ...". Faults combine until
 * "pass" clears them all:
 *   pass           forward untouched (and end cut, blackhole, flap)
 *   cut            reset every connection and every new one at once: the
 *                  peer sees the link refused, as across a dead router
 *                  that answers with resets
 *   blackhole      hold every connection open and forward nothing, new ones
 *                  included: a silent partition, no FIN nor RST; "pass"
 *                  lets the held bytes go on
 *   delay MS       every chunk goes out MS milliseconds after it came in
 *   drop PCT       each chunk read is discarded with probability PCT %:
 *                  the stream loses bytes in the middle
 *   corrupt PCT    each chunk read has one byte flipped with probability
 *                  PCT %
 *   truncate N     each connection is reset once N bytes (both directions)
 *                  have been forwarded: a disconnect mid-stream
 *   flap MS        alternate cut and pass every MS milliseconds
 *   stats          counters: conns accepted, open, bytes forwarded, chunks
 *                  dropped and corrupted, connections truncated and reset
 *                  by cut or refused
 *   mode           the faults in force
 * The second form sends one command and prints the answer; it exits 0 when
 * the answer is "ok". Randomness comes from erand48 seeded by --seed, so a
 * run can be repeated. The proxy runs until killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUTES 16
#define MAX_CONNS 256
#define MAX_CTLS 8
#define CHUNK 16384
#define QUEUE_MAX (512 * 1024)  /* bytes held per direction before reading stops */

struct chunk {
	struct chunk *next;
	int64_t due_ms;
	size_t len, off;
	unsigned char data[];
};

/* One direction of a connection: bytes read from fd `from` wait in the
 * queue until due, then go to fd `to`. */
struct dir {
	struct chunk *head, *tail;
	size_t queued;
	int eof;        /* `from` said EOF: shut `to` for writing once drained */
	int shut;
};

struct conn {
	int used;
	int cfd, ufd;           /* client side, upstream side */
	int connecting;         /* upstream connect in progress */
	int started;            /* upstream connect begun */
	int route;
	uint64_t bytes;         /* forwarded or queued, both directions */
	int doomed;             /* truncated: reset once the queues drain */
	struct dir d[2];        /* 0: client -> upstream, 1: upstream -> client */
};

struct route {
	int lfd;
	struct sockaddr_storage target;
	socklen_t target_len;
};

struct ctl {
	int fd;
	size_t len;
	char buf[256];
};

static struct {
	int cut, blackhole, delay_ms, drop_pct, corrupt_pct, flap_ms;
	uint64_t truncate;
	int64_t flap_start_ms;
} fault;

static struct {
	uint64_t accepted, bytes, dropped, corrupted, truncated, reset, refused;
} stats;

static struct route routes[MAX_ROUTES];
static int nroutes;
static struct conn conns[MAX_CONNS];
static struct ctl ctls[MAX_CTLS];
static int ctl_lfd = -1;
static unsigned short rng[3];

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int resolve(const char *hostport, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	int rc;

	if (colon == NULL || (size_t)(colon - hostport) >= sizeof(host)) {
		fprintf(stderr, "faultproxy: %s: want HOST:PORT\n", hostport);
		return -1;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	if ((rc = getaddrinfo(host, colon + 1, &hints, &ai)) != 0) {
		fprintf(stderr, "faultproxy: %s: %s\n", hostport, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static int listen_on(const char *hostport)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (resolve(hostport, &ss, &len) < 0)
		return -1;
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		fprintf(stderr, "faultproxy: listen on %s: %s\n", hostport, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Close with an RST rather than a FIN: a link that breaks, not a peer
 * that says goodbye. */
static void close_reset(int fd)
{
	struct linger l = { 1, 0 };

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static void conn_close(struct conn *c)
{
	close_reset(c->cfd);
	close_reset(c->ufd);
	for (int i = 0; i < 2; i++)
		while (c->d[i].head != NULL) {
			struct chunk *k = c->d[i].head;
			c->d[i].head = k->next;
			free(k);
		}
	memset(c, 0, sizeof(*c));
	c->cfd = c->ufd = -1;
}

/* Cut in force now: by command, or in the cut half of a flap period. */
static int cut_now(int64_t now)
{
	if (fault.cut)
		return 1;
	if (fault.flap_ms > 0)
		return ((now - fault.flap_start_ms) / fault.flap_ms) % 2 == 0;
	return 0;
}

static void cut_all(void)
{
	for (int i = 0; i < MAX_CONNS; i++)
		if (conns[i].used) {
			stats.reset++;
			conn_close(&conns[i]);
		}
}

static void start_upstream(struct conn *c)
{
	const struct route *r = &routes[c->route];

	c->started = 1;
	c->ufd = socket(r->target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->ufd < 0) {
		conn_close(c);
		return;
	}
	if (connect(c->ufd, (const struct sockaddr *)&r->target, r->target_len) == 0)
		return;
	if (errno == EINPROGRESS) {
		c->connecting = 1;
		return;
	}
	conn_close(c);
}

static void on_accept(int ri, int64_t now)
{
	int fd, one = 1;

	while ((fd = accept4(routes[ri].lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct conn *c = NULL;

		if (cut_now(now)) {
			stats.refused++;
			close_reset(fd);
			continue;
		}
		for (int i = 0; i < MAX_CONNS && c == NULL; i++)
			if (!conns[i].used)
				c = &conns[i];
		if (c == NULL) {
			stats.refused++;
			close_reset(fd);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->used = 1;
		c->cfd = fd;
		c->ufd = -1;
		c->route = ri;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		stats.accepted++;
		if (!fault.blackhole)
			start_upstream(c);
	}
}

/* Read what `from` has into direction d, through the faults in force. */
static void pump_in(struct conn *c, int di, int from, int64_t now)
{
	struct dir *d = &c->d[di];
	unsigned char buf[CHUNK];
	ssize_t n = recv(from, buf, sizeof(buf), 0);

	if (n == 0) {
		d->eof = 1;
		return;
	}
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			conn_close(c);
		return;
	}
	if (fault.drop_pct > 0 && erand48(rng) * 100 < fault.drop_pct) {
		stats.dropped++;
		return;
	}
	if (fault.corrupt_pct > 0 && erand48(rng) * 100 < fault.corrupt_pct) {
		buf[(size_t)(erand48(rng) * (double)n)] ^= 0x5a;
		stats.corrupted++;
	}
	if (fault.truncate > 0 && c->bytes + (uint64_t)n >= fault.truncate) {
		n = (ssize_t)(fault.truncate - c->bytes);
		c->doomed = 1;
		stats.truncated++;
	}
	c->bytes += (uint64_t)n;
	struct chunk *k = malloc(sizeof(*k) + (size_t)n);
	if (k == NULL) {
		conn_close(c);
		return;
	}
	k->next = NULL;
	k->due_ms = now + fault.delay_ms;
	k->len = (size_t)n;
	k->off = 0;
	memcpy(k->data, buf, (size_t)n);
	if (d->tail)
		d->tail->next = k;
	else
		d->head = k;
	d->tail = k;
	d->queued += (size_t)n;
}

/* Write the chunks of direction d that are due to `to`. */
static void pump_out(struct conn *c, int di, int to, int64_t now)
{
	struct dir *d = &c->d[di];

	while (d->head != NULL && d->head->due_ms <= now) {
		struct chunk *k = d->head;
		ssize_t n = send(to, k->data + k->off, k->len - k->off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				conn_close(c);
			return;
		}
		k->off += (size_t)n;
		d->queued -= (size_t)n;
		stats.bytes += (uint64_t)n;
		if (k->off < k->len)
			return;
		d->head = k->next;
		if (d->head == NULL)
			d->tail = NULL;
		free(k);
	}
	if (d->head == NULL && d->eof && !d->shut) {
		shutdown(to, SHUT_WR);
		d->shut = 1;
	}
}

static void set_fault(const char *cmd, long arg, int64_t now)
{
	if (!strcmp(cmd, "pass")) {
		memset(&fault, 0, sizeof(fault));
	} else if (!strcmp(cmd, "cut")) {
		fault.cut = 1;
		cut_all();
	} else if (!strcmp(cmd, "blackhole")) {
		fault.blackhole = 1;
	} else if (!strcmp(cmd, "delay")) {
		fault.delay_ms = (int)arg;
	} else if (!strcmp(cmd, "drop")) {
		fault.drop_pct = (int)arg;
	} else if (!strcmp(cmd, "corrupt")) {
		fault.corrupt_pct = (int)arg;
	} else if (!strcmp(cmd, "truncate")) {
		fault.truncate = (uint64_t)arg;
	} else if (!strcmp(cmd, "flap")) {
		fault.flap_ms = (int)arg;
		fault.flap_start_ms = now;
		cut_all();
	}
}

static void ctl_answer(struct ctl *k, int64_t now)
{
	static const char *const with_arg[] = { "delay", "drop", "corrupt", "truncate", "flap" };
	char cmd[32], out[512];
	long arg = 0;
	int nf, open = 0;

	k->buf[k->len] = '\0';
	nf = sscanf(k->buf, "%31s %ld", cmd, &arg);
	if (nf < 1) {
		snprintf(out, sizeof(out), "error: empty command\n");
	} else if (!strcmp(cmd, "stats")) {
		for (int i = 0; i < MAX_CONNS; i++)
			open += conns[i].used;
		snprintf(out, sizeof(out),
			 "ok conns %llu open %d bytes %llu dropped %llu corrupted %llu truncated %llu "
			 "reset %llu refused %llu\n",
			 (unsigned long long)stats.accepted, open, (unsigned long long)stats.bytes,
			 (unsigned long long)stats.dropped, (unsigned long long)stats.corrupted,
			 (unsigned long long)stats.truncated, (unsigned long long)stats.reset,
			 (unsigned long long)stats.refused);
	} else if (!strcmp(cmd, "mode")) {
		snprintf(out, sizeof(out), "ok%s%s delay %d drop %d corrupt %d truncate %llu flap %d\n",
			 fault.cut ? " cut" : "", fault.blackhole ? " blackhole" : "", fault.delay_ms,
			 fault.drop_pct, fault.corrupt_pct, (unsigned long long)fault.truncate,
			 fault.flap_ms);
	} else if (!strcmp(cmd, "pass") || !strcmp(cmd, "cut") || !strcmp(cmd, "blackhole")) {
		set_fault(cmd, 0, now);
		snprintf(out, sizeof(out), "ok %s\n", cmd);
	} else {
		int known = 0;
		for (size_t i = 0; i < sizeof(with_arg) / sizeof(with_arg[0]); i++)
			known |= !strcmp(cmd, with_arg[i]);
		if (!known)
			snprintf(out, sizeof(out), "error: unknown command %s\n", cmd);
		else if (nf < 2 || arg < 0 || arg > 100000000 ||
			 ((!strcmp(cmd, "drop") || !strcmp(cmd, "corrupt")) && arg > 100) ||
			 (!strcmp(cmd, "flap") && arg == 0))
			snprintf(out, sizeof(out), "error: %s wants a number in range\n", cmd);
		else {
			set_fault(cmd, arg, now);
			snprintf(out, sizeof(out), "ok %s %ld\n", cmd, arg);
		}
	}
	fprintf(stderr, "faultproxy: %s", out);
	if (send(k->fd, out, strlen(out), MSG_NOSIGNAL) < 0)
		fprintf(stderr, "faultproxy: control answer lost: %s\n", strerror(errno));
	close(k->fd);
	k->fd = -1;
}

static void on_ctl_read(struct ctl *k, int64_t now)
{
	ssize_t n = recv(k->fd, k->buf + k->len, sizeof(k->buf) - 1 - k->len, 0);

	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			close(k->fd);
			k->fd = -1;
		}
		return;
	}
	k->len += (size_t)n;
	if (memchr(k->buf, '\n', k->len) != NULL || k->len == sizeof(k->buf) - 1)
		ctl_answer(k, now);
}

static int64_t next_wake(int64_t now)
{
	int64_t wake = now + 1000;

	if (fault.flap_ms > 0) {
		int64_t t = now - fault.flap_start_ms;
		int64_t edge = now + fault.flap_ms - t % fault.flap_ms;
		if (edge < wake)
			wake = edge;
	}
	for (int i = 0; i < MAX_CONNS; i++)
		for (int di = 0; di < 2; di++)
			if (conns[i].used && conns[i].d[di].head && conns[i].d[di].head->due_ms < wake)
				wake = conns[i].d[di].head->due_ms;
	return wake;
}

static int run(void)
{
	struct pollfd pfd[MAX_ROUTES + 1 + MAX_CTLS + 2 * MAX_CONNS];
	/* Which conn and side each pollfd entry is, for entries past the listeners. */
	int who[2 * MAX_CONNS], side[2 * MAX_CONNS];
	int was_cut = 0;

	for (int i = 0; i < MAX_CONNS; i++)
		conns[i].cfd = conns[i].ufd = -1;
	for (int i = 0; i < MAX_CTLS; i++)
		ctls[i].fd = -1;
	for (;;) {
		int64_t now = now_ms();
		int np = 0, nc = 0, is_cut = cut_now(now);

		if (is_cut && !was_cut)
			cut_all();
		was_cut = is_cut;
		for (int i = 0; i < nroutes; i++)
			pfd[np++] = (struct pollfd){ routes[i].lfd, POLLIN, 0 };
		pfd[np++] = (struct pollfd){ ctl_lfd, POLLIN, 0 };
		for (int i = 0; i < MAX_CTLS; i++)
			pfd[np++] = (struct pollfd){ ctls[i].fd, POLLIN, 0 };
		int base = np;
		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn *c = &conns[i];
			if (!c->used)
				continue;
			if (!c->started && !fault.blackhole)
				start_upstream(c);
			if (!c->used || fault.blackhole)
				continue;
			for (int s = 0; s < 2; s++) {
				int fd = s == 0 ? c->cfd : c->ufd;
				short ev = 0;
				struct dir *in = &c->d[s], *out = &c->d[1 - s];
				if (c->connecting) {
					ev = s == 1 ? POLLOUT : 0;
				} else {
					if (!in->eof && !c->doomed && in->queued < QUEUE_MAX)
						ev |= POLLIN;
					if (out->head && out->head->due_ms <= now)
						ev |= POLLOUT;
				}
				who[nc] = i;
				side[nc++] = s;
				pfd[np++] = (struct pollfd){ fd, ev, 0 };
			}
		}
		int64_t wait = next_wake(now) - now;
		if (poll(pfd, (nfds_t)np, wait < 0 ? 0 : (int)wait) < 0) {
			if (errno == EINTR)
				continue;
			perror("faultproxy: poll");
			return 1;
		}
		now = now_ms();
		for (int i = 0; i < nroutes; i++)
			if (pfd[i].revents & POLLIN)
				on_accept(i, now);
		if (pfd[nroutes].revents & POLLIN) {
			int fd = accept4(ctl_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
			int slot = -1;
			for (int i = 0; i < MAX_CTLS && fd >= 0 && slot < 0; i++)
				if (ctls[i].fd < 0)
					slot = i;
			if (slot >= 0) {
				ctls[slot].fd = fd;
				ctls[slot].len = 0;
			} else if (fd >= 0) {
				close(fd);
			}
		}
		for (int i = 0; i < MAX_CTLS; i++)
			if (pfd[nroutes + 1 + i].fd >= 0 && pfd[nroutes + 1 + i].revents && ctls[i].fd >= 0)
				on_ctl_read(&ctls[i], now);
		for (int k = 0; k < nc; k++) {
			struct conn *c = &conns[who[k]];
			short re = pfd[base + k].revents;
			int s = side[k];
			if (!c->used || re == 0 || pfd[base + k].fd != (s == 0 ? c->cfd : c->ufd))
				continue;
			if (c->connecting) {
				int err = 0;
				socklen_t el = sizeof(err);
				getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err != 0) {
					conn_close(c);   /* the target is down: the client sees a reset */
					continue;
				}
				int one = 1;
				setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				c->connecting = 0;
				continue;
			}
			if ((re & POLLERR) || ((re & POLLHUP) && c->d[s].eof)) {
				conn_close(c);
				continue;
			}
			if (re & (POLLIN | POLLHUP))
				pump_in(c, s, s == 0 ? c->cfd : c->ufd, now);
			if (c->used && (re & POLLOUT))
				pump_out(c, 1 - s, s == 0 ? c->cfd : c->ufd, now);
		}
		/* Finish what is done: both directions drained and shut, or a
		 * truncated connection whose last bytes went out. */
		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn *c = &conns[i];
			if (!c->used || fault.blackhole || c->connecting || c->ufd < 0)
				continue;
			for (int di = 0; di < 2; di++)
				if (c->d[di].eof && c->d[di].head == NULL && !c->d[di].shut) {
					shutdown(di == 0 ? c->ufd : c->cfd, SHUT_WR);
					c->d[di].shut = 1;
				}
			if ((c->d[0].shut && c->d[1].shut) ||
			    (c->doomed && c->d[0].head == NULL && c->d[1].head == NULL))
				conn_close(c);
		}
	}
}

static int ctl_send(const char *hostport, int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char line[256] = "", ans[512];
	size_t off = 0;
	ssize_t n;
	int fd;

	for (int i = 0; i < argc; i++)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s", i ? " " : "", argv[i]);
	strncat(line, "\n", sizeof(line) - strlen(line) - 1);
	if (resolve(hostport, &ss, &len) < 0)
		return 2;
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&ss, len) < 0) {
		fprintf(stderr, "faultproxy: control %s: %s\n", hostport, strerror(errno));
		return 2;
	}
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0) {
		fprintf(stderr, "faultproxy: control %s: %s\n", hostport, strerror(errno));
		close(fd);
		return 2;
	}
	while (off < sizeof(ans) - 1 && (n = recv(fd, ans + off, sizeof(ans) - 1 - off, 0)) > 0)
		off += (size_t)n;
	close(fd);
	ans[off] = '\0';
	fputs(ans, stdout);
	return strncmp(ans, "ok", 2) == 0 ? 0 : 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: faultproxy --control HOST:PORT [--seed N] LISTEN=TARGET...\n"
			"       faultproxy --ctl HOST:PORT COMMAND [ARG]\n"
			"commands: pass cut blackhole 'delay MS' 'drop PCT' 'corrupt PCT'\n"
			"          'truncate BYTES' 'flap MS' stats mode\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "ctl", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *control = NULL, *ctl = NULL;
	unsigned long seed = 1;
	int o;

	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 'c': control = optarg; break;
		case 't': ctl = optarg; break;
		case 's': seed = strtoul(optarg, NULL, 10); break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (ctl != NULL) {
		if (optind >= argc) {
			usage();
			return 2;
		}
		return ctl_send(ctl, argc - optind, argv + optind);
	}
	if (control == NULL || optind >= argc || argc - optind > MAX_ROUTES) {
		usage();
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	rng[0] = (unsigned short)seed;
	rng[1] = (unsigned short)(seed >> 16);
	rng[2] = 0x330e;
	for (int i = optind; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (eq == NULL) {
			usage();
			return 2;
		}
		*eq = '\0';
		struct route *r = &routes[nroutes];
		if (resolve(eq + 1, &r->target, &r->target_len) < 0 || (r->lfd = listen_on(argv[i])) < 0)
			return 1;
		nroutes++;
	}
	if ((ctl_lfd = listen_on(control)) < 0)
		return 1;
	return run();
}
