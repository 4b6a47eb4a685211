/*
 * The supervised child of bench/daemon.ts: connects to the unix socket named by argv[1] (or
 * $BENCH_REPORT_SOCKET), writes its pid and a newline, and blocks until a signal ends it. The
 * bench timestamps the connection: that moment is "the replacement is running". A C program keeps
 * its own start-up (about a millisecond) out of the figure, the same for every manager.
 *
 * If the socket cannot be reached it still blocks (after a line on stderr) instead of exiting, so
 * a manager never spins restarting it while the bench is shutting down.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void block_forever(void) {
  for (;;) pause();
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : getenv("BENCH_REPORT_SOCKET");
  if (path == NULL) {
    fputs("usage: reporter SOCKET (or BENCH_REPORT_SOCKET=SOCKET reporter)\n", stderr);
    return 2;
  }
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
    perror("reporter: connect");
    block_forever();
  }
  char line[32];
  int n = snprintf(line, sizeof line, "%d\n", (int)getpid());
  if (write(fd, line, (size_t)n) != n) perror("reporter: write");
  /* The socket stays open: the bench sees it close when this process dies. */
  block_forever();
  return 0;
}
