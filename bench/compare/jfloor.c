/*
 * journald's own notification delay, for bench/compare: a minimal sd-journal follower with the
 * same source match as the daemons under test. Starts at the tail; for every new entry prints
 * "<CLOCK_REALTIME us when seen> <MESSAGE>" on stdout; with an argument, only for the entry whose
 * MESSAGE is exactly that (then exits). "ready" is printed once waiting.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-journal.h>

static long long now_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv) {
	const char *only = argc > 1 ? argv[1] : NULL;
	sd_journal *j;
	int r = sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY);
	if (r < 0) { fprintf(stderr, "jfloor: sd_journal_open: %s\n", strerror(-r)); return 1; }
	sd_journal_add_match(j, "_EXE=/usr/sbin/sshd", 0);
	sd_journal_add_disjunction(j);
	sd_journal_add_match(j, "SYSLOG_IDENTIFIER=sshd", 0);
	sd_journal_add_match(j, "_UID=0", 0);
	sd_journal_seek_tail(j);
	sd_journal_previous(j);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		r = sd_journal_next(j);
		if (r < 0) { fprintf(stderr, "jfloor: sd_journal_next: %s\n", strerror(-r)); return 1; }
		if (r == 0) {
			r = sd_journal_wait(j, (uint64_t)-1);
			if (r < 0) { fprintf(stderr, "jfloor: sd_journal_wait: %s\n", strerror(-r)); return 1; }
			continue;
		}
		const void *d;
		size_t l;
		if (sd_journal_get_data(j, "MESSAGE", &d, &l) >= 0 && l > 8) {
			if (only && (l - 8 != strlen(only) || memcmp((const char *)d + 8, only, l - 8) != 0)) continue;
			printf("%lld %.*s\n", now_us(), (int)(l - 8), (const char *)d + 8);
			fflush(stdout);
			if (only) return 0;
		}
	}
}
