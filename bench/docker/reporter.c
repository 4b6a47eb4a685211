/*
 * The containers' process in bench/docker.ts: bench/daemon/reporter.c's behaviour, for a PID
 * namespace. It connects to the unix socket named by argv[1] (a folder of the bench bind-mounted
 * into the container), writes a token and a newline, and blocks until a signal ends it. The bench
 * stamps the connection: that moment is "the replacement is running", for every manager alike.
 *
 * The token is random, not the pid: in a container the pid is 1 every time, and the bench tells
 * one run from the next by its token. SIGTERM ends it (as PID 1 it would otherwise be ignored), so
 * a manager that stops its containers does not wait out a grace period. Built statically: the image
 * (busybox only) has no C library.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void on_term(int signo) {
  (void)signo;
  _exit(143);
}

static void block_forever(void) {
  for (;;) pause();
}

/* A positive 31-bit number, different in every run (getrandom; the clock if that fails). */
static long token(void) {
  uint32_t value = 0;
  if (getrandom(&value, sizeof value, 0) != (ssize_t)sizeof value) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    value = (uint32_t)now.tv_nsec ^ (uint32_t)now.tv_sec;
  }
  value &= 0x7fffffffu;
  return value == 0 ? 1 : (long)value;
}

int main(int argc, char **argv) {
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  if (argc < 2) {
    fputs("usage: reporter SOCKET\n", stderr);
    return 2;
  }
  const char *path = argv[1];
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr.sun_path) {
    fprintf(stderr, "reporter: socket path too long: %s\n", path);
    block_forever();
  }
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    /* Still blocks: a manager never spins restarting it while the bench is shutting down. */
    perror("reporter: connect");
    block_forever();
  }
  char line[32];
  int n = snprintf(line, sizeof line, "%ld\n", token());
  if (write(fd, line, (size_t)n) != n) perror("reporter: write");
  /* The socket stays open: the bench sees it close when this process dies. */
  block_forever();
  return 0;
}
