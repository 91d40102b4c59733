// The floor for bench/journal-read: the same read as src/journal.ts does (next, cursor,
// realtime, three fields with the "FIELD=" prefix stripped), in C++ alone.
// Usage: journal-read-floor DIR EXPECTED_ENTRIES -> prints "<entries> <milliseconds>".
#include <systemd/sd-journal.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DIR EXPECTED_ENTRIES\n", argv[0]);
    return 2;
  }
  const char* fields[] = {"MESSAGE", "_EXE", "_PID"};
  auto t0 = std::chrono::steady_clock::now();
  sd_journal* j;
  int r = sd_journal_open_directory(&j, argv[1], 0);
  if (r < 0) {
    fprintf(stderr, "sd_journal_open_directory: %s\n", strerror(-r));
    return 1;
  }
  sd_journal_set_data_threshold(j, 65536 + 256);
  sd_journal_seek_head(j);
  long n = 0;
  size_t bytes = 0;  // used, so nothing is optimized away
  while ((r = sd_journal_next(j)) > 0) {
    char* cursor;
    if (sd_journal_get_cursor(j, &cursor) < 0) return 1;
    std::string c(cursor);
    free(cursor);
    uint64_t rt;
    sd_journal_get_realtime_usec(j, &rt);
    bytes += c.size() + (rt & 1);
    for (const char* f : fields) {
      const void* d;
      size_t len;
      if (sd_journal_get_data(j, f, &d, &len) >= 0) {
        size_t skip = strlen(f) + 1;
        std::string v(static_cast<const char*>(d) + skip, len - skip);
        bytes += v.size();
      }
    }
    n++;
  }
  sd_journal_close(j);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (n != atol(argv[2])) {
    fprintf(stderr, "read %ld entries, expected %s\n", n, argv[2]);
    return 1;
  }
  printf("%ld %.1f %zu\n", n, ms, bytes);
  return 0;
}
