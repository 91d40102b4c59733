/*
 * Workload writer for bench/compare. The bench bind-mounts this binary over /usr/sbin/sshd inside
 * the sandbox's private mount namespace, so journald records _EXE=/usr/sbin/sshd, and runs it as
 * root (_UID=0), exactly like sshd's own failure lines.
 *
 * Every line is one connection, and a real sshd logs each connection from its own process: the
 * syslog header carries a different pid per line ("sshd[PID]: ", journald's SYSLOG_PID), as
 * fail2ban ties lines of one connection together by that pid. One process writes them all (a
 * fork per line would cost more than the daemons under test), giving openlog(3) the ident
 * "sshd[PID]" without LOG_PID.
 *
 *   writer [-r LINES_PER_SEC] [-l LINGER_MS] PLANFILE
 *
 * PLANFILE holds one message per line (OpenSSH's wording, made by the bench). Each is sent with
 * syslog(3), ident "sshd", facility LOG_AUTH, priority LOG_INFO (as sshd logs "Failed password").
 * -r 0 (default) writes as fast as journald accepts. On stdout, after the last line was handed
 * to the socket: "first <us> last <us> lines <n>" (CLOCK_REALTIME, microseconds). It then stays
 * alive LINGER_MS (default 500) so journald can still read /proc/<pid>/exe for the last lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static long long now_us(clockid_t c) {
	struct timespec ts;
	clock_gettime(c, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void sleep_us(long long us) {
	struct timespec ts = { us / 1000000LL, (us % 1000000LL) * 1000 };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
}

int main(int argc, char **argv) {
	double rate = 0;
	long linger_ms = 500;
	int opt;
	while ((opt = getopt(argc, argv, "r:l:")) != -1) {
		if (opt == 'r') rate = atof(optarg);
		else if (opt == 'l') linger_ms = atol(optarg);
		else { fprintf(stderr, "usage: writer [-r LINES_PER_SEC] [-l LINGER_MS] PLANFILE\n"); return 64; }
	}
	if (optind != argc - 1) { fprintf(stderr, "writer: one PLANFILE expected\n"); return 64; }
	FILE *f = fopen(argv[optind], "r");
	if (!f) { fprintf(stderr, "writer: %s: %s\n", argv[optind], strerror(errno)); return 66; }

	/* Read the whole plan first, so file reading does not pace the writes. */
	size_t cap = 1024, n = 0;
	char **lines = malloc(cap * sizeof *lines);
	char *buf = NULL;
	size_t bl = 0;
	ssize_t len;
	while ((len = getline(&buf, &bl, f)) != -1) {
		if (len > 0 && buf[len - 1] == '\n') buf[--len] = 0;
		if (len == 0) continue;
		if (n == cap) { cap *= 2; lines = realloc(lines, cap * sizeof *lines); }
		lines[n++] = strdup(buf);
	}
	fclose(f);

	char ident[32];
	int pid0 = 100000 + (int)(getpid() % 1000) * 1000;
	long long start = now_us(CLOCK_MONOTONIC);
	long long first = now_us(CLOCK_REALTIME), last = first;
	for (size_t i = 0; i < n; i++) {
		if (rate > 0 && (i % 64) == 0) {
			long long due = start + (long long)(i * 1e6 / rate);
			long long t = now_us(CLOCK_MONOTONIC);
			if (due > t) sleep_us(due - t);
		}
		snprintf(ident, sizeof ident, "sshd[%d]", pid0 + (int)(i % 3000000));
		openlog(ident, LOG_NDELAY, LOG_AUTH);
		syslog(LOG_INFO, "%s", lines[i]);
		if (i == 0) first = now_us(CLOCK_REALTIME);
	}
	last = now_us(CLOCK_REALTIME);
	printf("first %lld last %lld lines %zu\n", first, last, n);
	fflush(stdout);
	if (linger_ms > 0) sleep_us(linger_ms * 1000LL);
	return 0;
}
