/*
 * The supervised child of bench/coldstart.ts, the same program under every manager:
 *
 *   coldstart-child SOCKET NAME READY_MS [--port N] [--ready-file PATH] [--notify] [--ready-fd N] [--ipc]
 *
 * 1. connects to the bench's unix socket SOCKET and writes "S NAME PID T\n", T being
 *    CLOCK_MONOTONIC in ns (process.hrtime.bigint()'s clock) as its main() begins;
 * 2. sleeps READY_MS;
 * 3. writes "R NAME T\n" (T taken before anything below), and only then becomes ready in the
 *    manager's terms, so that a dependent the manager starts on that readiness always has a start
 *    time after T:
 *      --port N        listens on 127.0.0.1:N and accepts (and closes) connections: a tcp probe;
 *      --ready-file P  creates P: an exec probe such as `test -f P`;
 *      --notify        sends READY=1 to $NOTIFY_SOCKET (systemd Type=notify, sd_notify(3));
 *      --ready-fd N    writes "READY=1\n" to descriptor N and closes it (pm's notify probe, s6's
 *                      notification-fd);
 *      --ipc           writes the JSON line "ready" to fd $NODE_CHANNEL_FD, which is what
 *                      process.send('ready') does in Node (PM2 wait_ready; PM2's fork mode always
 *                      opens that channel);
 * 4. stays alive until a signal ends it, with the bench connection open (the bench sees it close).
 *
 * A failure to become ready is reported as "E NAME message\n" and the child stays alive (a
 * manager must not restart it in a loop while the bench fails the run).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

static int bench = -1;
static const char *name = "?";

static unsigned long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

static void say(const char *line) {
  size_t left = strlen(line);
  while (bench >= 0 && left > 0) {
    ssize_t n = write(bench, line, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    line += n;
    left -= (size_t)n;
  }
}

static void fail(const char *what) {
  char line[512];
  snprintf(line, sizeof line, "E %s %s: %s\n", name, what, strerror(errno));
  say(line);
  fprintf(stderr, "coldstart-child %s: %s: %s\n", name, what, strerror(errno));
}

static void block_forever(void) {
  for (;;) pause();
}

static int fill_unix(struct sockaddr_un *addr, const char *path, socklen_t *len) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof addr->sun_path) return -1;
  memcpy(addr->sun_path, path, n);
  if (path[0] == '@') addr->sun_path[0] = '\0'; /* abstract socket, as systemd may hand out */
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  return 0;
}

static void notify_ready(void) {
  const char *path = getenv("NOTIFY_SOCKET");
  struct sockaddr_un addr;
  socklen_t len;
  if (path == NULL || fill_unix(&addr, path, &len) != 0) {
    errno = EINVAL;
    fail("--notify: NOTIFY_SOCKET unset or invalid");
    return;
  }
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&addr, len) != 7) fail("--notify: sendto NOTIFY_SOCKET");
  if (fd >= 0) close(fd);
}

static void ipc_ready(void) {
  const char *text = getenv("NODE_CHANNEL_FD");
  if (text == NULL) {
    errno = EINVAL;
    fail("--ipc: NODE_CHANNEL_FD unset");
    return;
  }
  int fd = atoi(text);
  if (write(fd, "\"ready\"\n", 8) != 8) fail("--ipc: write to NODE_CHANNEL_FD");
}

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fail("--port: socket");
    return -1;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    fail("--port: bind 127.0.0.1");
    close(fd);
    return -1;
  }
  if (listen(fd, 128) != 0) {
    fail("--port: listen");
    close(fd);
    return -1;
  }
  return fd;
}

int main(int argc, char **argv) {
  unsigned long long started = now_ns();
  if (argc < 4) {
    fputs("usage: coldstart-child SOCKET NAME READY_MS [--port N] [--ready-file PATH] [--notify] [--ready-fd N] [--ipc]\n", stderr);
    return 2;
  }
  name = argv[2];
  long ready_ms = atol(argv[3]);
  int port = 0, notify = 0, ipc = 0, ready_fd = -1;
  const char *ready_file = NULL;
  for (int i = 4; i < argc; i++) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = atoi(argv[++i]);
    else if (strcmp(argv[i], "--ready-file") == 0 && i + 1 < argc) ready_file = argv[++i];
    else if (strcmp(argv[i], "--notify") == 0) notify = 1;
    else if (strcmp(argv[i], "--ready-fd") == 0 && i + 1 < argc) ready_fd = atoi(argv[++i]);
    else if (strcmp(argv[i], "--ipc") == 0) ipc = 1;
    else {
      fprintf(stderr, "coldstart-child: unknown argument %s\n", argv[i]);
      return 2;
    }
  }

  struct sockaddr_un addr;
  socklen_t len;
  if (fill_unix(&addr, argv[1], &len) != 0) {
    fprintf(stderr, "coldstart-child %s: bad socket path %s\n", name, argv[1]);
    block_forever();
  }
  bench = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (bench < 0 || connect(bench, (struct sockaddr *)&addr, len) != 0) {
    perror("coldstart-child: connect");
    bench = -1;
    block_forever();
  }
  char line[256];
  snprintf(line, sizeof line, "S %s %d %llu\n", name, (int)getpid(), started);
  say(line);

  struct timespec delay = { ready_ms / 1000, (ready_ms % 1000) * 1000000L };
  while (nanosleep(&delay, &delay) != 0 && errno == EINTR) {
  }

  snprintf(line, sizeof line, "R %s %llu\n", name, now_ns());
  say(line);
  int server = port > 0 ? listen_on(port) : -1;
  if (ready_file != NULL) {
    int fd = open(ready_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) fail("--ready-file: open");
    else close(fd);
  }
  if (notify) notify_ready();
  if (ready_fd >= 0) {
    if (write(ready_fd, "READY=1\n", 8) != 8) fail("--ready-fd: write");
    close(ready_fd);
  }
  if (ipc) ipc_ready();

  if (server < 0) block_forever();
  for (;;) {
    int client = accept4(server, NULL, NULL, SOCK_CLOEXEC);
    if (client >= 0) close(client);
    else if (errno != EINTR && errno != ECONNABORTED) usleep(1000);
  }
  return 0;
}
