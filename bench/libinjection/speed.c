/* Times libinjection_sqli + libinjection_xss over a set of strings, the way a
 * WAF calls both on every parameter value. Input: a file of records, each a
 * 4-byte little-endian length followed by that many bytes. Prints the median
 * and p99 time of one pass over all strings, in nanoseconds, over many passes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "libinjection.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: speed FILE [passes]\n"); return 2; }
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror("open"); return 2; }
  int passes = argc > 2 ? atoi(argv[2]) : 200000;
  char *strs[4096]; size_t lens[4096]; int n = 0;
  unsigned char hdr[4];
  while (n < 4096 && fread(hdr, 1, 4, f) == 4) {
    size_t len = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (size_t)hdr[3] << 24;
    strs[n] = malloc(len + 1);
    if (fread(strs[n], 1, len, f) != len) return 2;
    strs[n][len] = 0; lens[n] = len; n++;
  }
  fclose(f);
  double *t = malloc(sizeof(double) * passes);
  volatile int sink = 0;
  char fp[8];
  for (int w = 0; w < 10000; w++)
    for (int i = 0; i < n; i++) sink += libinjection_sqli(strs[i], lens[i], fp) + libinjection_xss(strs[i], lens[i]);
  for (int p = 0; p < passes; p++) {
    double start = now_ns();
    for (int i = 0; i < n; i++) sink += libinjection_sqli(strs[i], lens[i], fp) + libinjection_xss(strs[i], lens[i]);
    t[p] = now_ns() - start;
  }
  qsort(t, passes, sizeof(double), cmp);
  printf("%d strings: p50 %.0f ns, p99 %.0f ns per pass (sqli + xss on each)\n", n, t[passes / 2], t[passes * 99 / 100]);
  return sink == -1;
}
