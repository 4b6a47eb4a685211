// pm's spawner: posix_spawn(3) and a pidfd per child, for the exec driver (src/drivers/exec/native.ts).
//
// Why: libuv (1.46, Node 20) starts a child with fork(), which copies the page tables of the whole
// daemon and leaves every page it later writes to a copy-on-write fault, and then blocks the event
// loop until the child has exec'd. That grows with the daemon's memory: 1.9 ms per spawn at 50 MiB
// resident, 8.7 ms at 111 MiB (node bench/spawn-cost.mjs 0 60). glibc's posix_spawn uses
// clone(CLONE_VM | CLONE_VFORK): no copy, about 0.5 ms whatever the daemon's size.
//
// libuv only reaps the children it started (waitpid on each of its own PIDs), so a child started
// here is watched with a pidfd polled on Node's own event loop and reaped with waitid(P_PIDFD).
//
// The spawn itself runs in libuv's thread pool (napi async work): posix_spawn's parent waits,
// suspended, until the child has exec'd, and under load that was 1–2 ms of the event loop per
// start (--cpu-prof of a daemon starting 100 processes). The call copies its arguments and the
// descriptors it hands on (so the caller may close its own at once) and returns a promise. It can
// also open the child's files itself (log files, the notify file) in that thread, just before the
// spawn: one thread-pool round trip per start instead of three (two opens, then the spawn), and no
// open or close of them on the event loop (--cpu-prof of a daemon starting 100 processes).
//
// What the child gets is what libuv gives it (uv__process_child_init): its own session, every
// signal at its default disposition and none blocked, the descriptors asked for and no other, the
// working directory, and the program looked up in the child's own PATH as execvp(3) would.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

// What native.ts checks before it uses this build: raised with every change of the interface, so an
// addon built from an older spawn.c (npm run build not run since a pull) is refused, not misused.
#define PM_SPAWN_VERSION 4

// fds[i] asking for a new pipe whose read end the child gets (the cgroup gate, native.ts).
#define PIPE_TO_CHILD (-2)

// The PATH glibc's execvp, which libuv calls, searches when the child's environment has none.
#define DEFAULT_PATH "/bin:/usr/bin"

typedef struct child_watch {
  uv_poll_t poll;  // first: a uv_poll_t* is a child_watch*
  napi_env env;
  napi_ref on_exit;
  struct module_state *state;
  int pidfd;
  int polling;     // the poll handle is open (not closing or closed)
  int js_gone;     // the JS handle was collected: free once the poll handle is closed
  int handle_gone; // the poll handle is closed: free once the JS handle is collected
  struct child_watch *prev, *next;
} child_watch;

typedef struct module_state {
  napi_async_context async_context;
  child_watch *watches;  // every watch whose poll handle is open, for the env's cleanup
  int closing;           // poll handles closed but whose close callback has not run yet
  int spawning;          // spawns queued or running in the thread pool (Node finishes them before an env's cleanup)
  napi_async_cleanup_hook_handle cleanup;  // set while the env is torn down and handles still close
} module_state;

/** One spawn, from the call (main thread) through the thread pool and back. */
typedef struct spawn_request {
  napi_async_work work;
  napi_deferred deferred;
  napi_ref on_exit;
  module_state *state;
  char *file, *cwd;
  char **argv, **envp;
  uint32_t fd_count;
  int *tmp_fds;        // the caller's descriptors, copied above every target (close-on-exec)
  char **open_paths;   // per target: a file to open for it in the thread pool (NULL: none)
  int *open_flags, *open_modes;
  int failed_fd;       // the target whose file could not be opened, or -1
  int pipe_write;      // the pipe's end pm keeps, or -1
  // Set in the thread pool:
  pid_t pid;
  int pidfd;
  int err;
  const char *failed;
  char start_time[32]; // field 22 of /proc/PID/stat, read before anyone can reap the child; "" if unread
} spawn_request;

/** An Error carrying `errno` (negative, as Node's) and `syscall`; native.ts names the code. */
static napi_value errno_error(napi_env env, int err, const char *syscall_name) {
  napi_value message, error, number, name;
  char text[256];
  snprintf(text, sizeof text, "%s: %s", syscall_name, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_create_int32(env, -err, &number);
  napi_set_named_property(env, error, "errno", number);
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &name);
  napi_set_named_property(env, error, "syscall", name);
  return error;
}

static void throw_errno(napi_env env, int err, const char *syscall_name) {
  napi_throw(env, errno_error(env, err, syscall_name));
}

static char *string_of(napi_env env, napi_value value) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) return NULL;
  char *text = malloc(length + 1);
  if (text == NULL) return NULL;
  napi_get_value_string_utf8(env, value, text, length + 1, &length);
  return text;
}

static void free_strings(char **strings) {
  if (strings == NULL) return;
  for (char **s = strings; *s != NULL; s++) free(*s);
  free(strings);
}

/** A NULL-terminated copy of a JS array of strings; NULL on a bad value or no memory. */
static char **strings_of(napi_env env, napi_value array) {
  uint32_t count;
  if (napi_get_array_length(env, array, &count) != napi_ok) return NULL;
  char **strings = calloc(count + 1, sizeof *strings);
  if (strings == NULL) return NULL;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    napi_get_element(env, array, i, &item);
    strings[i] = string_of(env, item);
    if (strings[i] == NULL) {
      free_strings(strings);
      return NULL;
    }
  }
  return strings;
}

/** An executable regular file: 0, else the errno execve(2) would give. */
static int executable(const char *path) {
  struct stat info;
  if (stat(path, &info) != 0) return errno;
  if (!S_ISREG(info.st_mode)) return EACCES;
  return access(path, X_OK) == 0 ? 0 : errno;
}

/**
 * execvp(3)'s search in the child's PATH, done here so that a missing program costs no spawn:
 * the first executable candidate wins; EACCES is remembered and the search goes on, as glibc's.
 * Relative candidates are checked against `cwd`, where the child will look for them.
 */
static int resolve_program(const char *file, char **envp, const char *cwd, char **resolved) {
  *resolved = NULL;
  if (file[0] == '\0') return ENOENT;
  if (strchr(file, '/') != NULL) {
    *resolved = strdup(file);
    return *resolved == NULL ? ENOMEM : 0;
  }
  const char *path = DEFAULT_PATH;
  for (char **e = envp; *e != NULL; e++) {
    if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
  }
  int seen_eacces = 0;
  size_t file_length = strlen(file);
  for (const char *dir = path;; dir++) {
    const char *end = strchrnul(dir, ':');
    size_t dir_length = (size_t)(end - dir);
    // An empty entry is the working directory.
    const char *prefix = dir_length == 0 ? "." : dir;
    size_t prefix_length = dir_length == 0 ? 1 : dir_length;
    char *candidate = malloc(prefix_length + 1 + file_length + 1);
    if (candidate == NULL) return ENOMEM;
    memcpy(candidate, prefix, prefix_length);
    candidate[prefix_length] = '/';
    memcpy(candidate + prefix_length + 1, file, file_length + 1);
    int err;
    if (candidate[0] != '/' && cwd != NULL) {
      char *checked = malloc(strlen(cwd) + 1 + strlen(candidate) + 1);
      if (checked == NULL) {
        free(candidate);
        return ENOMEM;
      }
      sprintf(checked, "%s/%s", cwd, candidate);
      err = executable(checked);
      free(checked);
    } else {
      err = executable(candidate);
    }
    if (err == 0) {
      *resolved = candidate;
      return 0;
    }
    free(candidate);
    switch (err) {
      case EACCES:
        seen_eacces = 1;
        break;
      case ENOENT:
      case ENOTDIR:
      case ESTALE:
      case ENODEV:
      case ETIMEDOUT:
      case ELOOP:
      case ENAMETOOLONG:
        break;
      default:
        return err;
    }
    if (*end == '\0') break;
    dir = end;
  }
  return seen_eacces ? EACCES : ENOENT;
}

/**
 * glibc's sigfillset leaves out the two signals its threads use internally (32 and 33), and its
 * posix_spawn then has the child ignore them, an ignored signal stays ignored across exec, where
 * libuv's child (and systemd's) has every signal at its default. Their bits are set by hand: the
 * kernel's layout, bit N - 1 for signal N, which glibc's and musl's sigset_t share.
 */
static void with_reserved_signals(sigset_t *set) {
  unsigned long words[2];
  memcpy(words, set, sizeof words);
  if (sizeof(unsigned long) == 8) {
    words[0] |= 1UL << 31 | 1UL << 32;
  } else {
    words[0] |= 1UL << 31;
    words[1] |= 1UL;
  }
  memcpy(set, words, sizeof words);
}

static void unlink_watch(module_state *state, child_watch *watch) {
  if (watch->prev != NULL) watch->prev->next = watch->next;
  else if (state->watches == watch) state->watches = watch->next;
  if (watch->next != NULL) watch->next->prev = watch->prev;
  watch->prev = watch->next = NULL;
}

/** The env is torn down and nothing of this module is left open or in flight: let it go on. */
static void release_cleanup_if_idle(module_state *state) {
  if (state->closing == 0 && state->spawning == 0 && state->cleanup != NULL) {
    napi_async_cleanup_hook_handle cleanup = state->cleanup;
    state->cleanup = NULL;
    napi_remove_async_cleanup_hook(cleanup);
  }
}

static void on_poll_closed(uv_handle_t *handle) {
  child_watch *watch = (child_watch *)handle;
  module_state *state = watch->state;
  close(watch->pidfd);
  watch->pidfd = -1;
  watch->handle_gone = 1;
  if (watch->js_gone) free(watch);
  // The env is going away (a worker thread ends): it may unload this code once the last is closed.
  state->closing--;
  release_cleanup_if_idle(state);
}

static void stop_watch(module_state *state, child_watch *watch) {
  if (!watch->polling) return;
  watch->polling = 0;
  state->closing++;
  unlink_watch(state, watch);
  uv_poll_stop(&watch->poll);
  uv_close((uv_handle_t *)&watch->poll, on_poll_closed);
}

static void on_js_handle_collected(napi_env env, void *data, void *hint) {
  (void)hint;
  child_watch *watch = data;
  if (watch->on_exit != NULL) {
    napi_delete_reference(env, watch->on_exit);
    watch->on_exit = NULL;
  }
  watch->js_gone = 1;
  if (watch->handle_gone) free(watch);
}

/** The child's pidfd is readable: it has exited. Reap it and tell JS (code, signal number, known). */
static void on_pidfd_readable(uv_poll_t *poll, int status, int events) {
  (void)status;
  (void)events;
  child_watch *watch = (child_watch *)poll;
  napi_env env = watch->env;
  module_state *state = watch->state;

  siginfo_t info;
  memset(&info, 0, sizeof info);
  int rc = waitid((idtype_t)P_PIDFD, (id_t)watch->pidfd, &info, WEXITED | WNOHANG);
  if (rc == 0 && info.si_pid == 0) return;  // not yet: woken for nothing
  stop_watch(state, watch);

  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value argv[3], callback, receiver, result;
  if (rc != 0) {
    // Reaped by someone else: the exit is known to have happened, not how.
    napi_get_null(env, &argv[0]);
    napi_create_int32(env, 0, &argv[1]);
    napi_get_boolean(env, false, &argv[2]);
  } else if (info.si_code == CLD_EXITED) {
    napi_create_int32(env, info.si_status, &argv[0]);
    napi_create_int32(env, 0, &argv[1]);
    napi_get_boolean(env, true, &argv[2]);
  } else {
    napi_get_null(env, &argv[0]);
    napi_create_int32(env, info.si_status, &argv[1]);
    napi_get_boolean(env, true, &argv[2]);
  }
  callback = NULL;
  if (watch->on_exit != NULL) {
    napi_get_reference_value(env, watch->on_exit, &callback);
    // Dropped now: the callback holds the JS handle, which would otherwise never be collected.
    napi_delete_reference(env, watch->on_exit);
    watch->on_exit = NULL;
  }
  if (callback != NULL) {
    napi_get_global(env, &receiver);
    // make_callback, not call_function: it runs the microtasks the callback queues, as any libuv callback.
    if (napi_make_callback(env, state->async_context, receiver, callback, 3, argv, &result) == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

static child_watch *watch_of(napi_env env, napi_value handle) {
  void *data = NULL;
  if (napi_get_value_external(env, handle, &data) != napi_ok) return NULL;
  return data;
}

static void free_request(spawn_request *r) {
  if (r->tmp_fds != NULL) {
    for (uint32_t i = 0; i < r->fd_count; i++) {
      if (r->tmp_fds[i] >= 0) close(r->tmp_fds[i]);
    }
  }
  if (r->open_paths != NULL) {
    for (uint32_t i = 0; i < r->fd_count; i++) free(r->open_paths[i]);
  }
  free(r->open_paths);
  free(r->open_flags);
  free(r->open_modes);
  free(r->tmp_fds);
  free(r->cwd);
  free_strings(r->envp);
  free_strings(r->argv);
  free(r->file);
  free(r);
}

/** Field 22 of /proc/PID/stat (the start time in clock ticks since boot), as the exec driver keys a child by it. */
static void read_start_time(pid_t pid, char *out, size_t size) {
  out[0] = '\0';
  char path[64], text[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t length = read(fd, text, sizeof text - 1);
  close(fd);
  if (length <= 0) return;
  text[length] = '\0';
  // The command name (field 2) may hold spaces and parentheses: fields are counted after the last ')',
  // each space beginning the next.
  char *field = strrchr(text, ')');
  if (field == NULL) return;
  int number = 2;
  for (field++; *field != '\0' && number < 22; field++) {
    if (*field == ' ') number++;
  }
  if (number != 22) return;
  size_t digits = strspn(field, "0123456789");
  if (digits == 0 || digits >= size) return;
  memcpy(out, field, digits);
  out[digits] = '\0';
}

/**
 * Opens the files asked for, each above every target and close-on-exec, as the caller's own
 * descriptors are copied. A path asked for twice with the same flags is opened once (stdout and
 * stderr to one log: one descriptor, so their lines keep their order). 0, else the errno.
 */
static int open_files(spawn_request *r) {
  for (uint32_t i = 0; i < r->fd_count; i++) {
    if (r->open_paths[i] == NULL) continue;
    int fd = -1, shared = 0;
    for (uint32_t j = 0; j < i && !shared; j++) {
      if (r->open_paths[j] != NULL && r->open_flags[j] == r->open_flags[i] && strcmp(r->open_paths[j], r->open_paths[i]) == 0) {
        // The same description, never a second open: lines to either keep their order.
        shared = 1;
        fd = fcntl(r->tmp_fds[j], F_DUPFD_CLOEXEC, (int)r->fd_count);
      }
    }
    if (!shared) {
      int opened = open(r->open_paths[i], r->open_flags[i] | O_CLOEXEC, (mode_t)r->open_modes[i]);
      fd = opened < 0 || opened >= (int)r->fd_count ? opened : fcntl(opened, F_DUPFD_CLOEXEC, (int)r->fd_count);
      if (fd != opened) {
        int saved = errno;
        close(opened);
        errno = saved;
      }
    }
    if (fd < 0) {
      r->failed_fd = (int)i;
      return errno;
    }
    r->tmp_fds[i] = fd;
  }
  return 0;
}

/** In the thread pool: open the child's files, look the program up, spawn it, open its pidfd. No N-API here. */
static void execute_spawn(napi_env env, void *data) {
  (void)env;
  spawn_request *r = data;
  char *program = NULL;
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  int actions_ready = 0, attr_ready = 0;

  r->err = open_files(r);
  if (r->err != 0) {
    r->failed = "open";
    goto done;
  }
  r->failed = "posix_spawn";
  r->err = resolve_program(r->file, r->envp, r->cwd, &program);
  if (r->err != 0) {
    r->failed = "execvp";
    goto done;
  }
  posix_spawn_file_actions_init(&actions);
  actions_ready = 1;
  if (r->cwd != NULL && (r->err = posix_spawn_file_actions_addchdir_np(&actions, r->cwd)) != 0) goto done;
  for (uint32_t i = 0; i < r->fd_count; i++) {
    if (r->tmp_fds[i] >= 0) {
      r->err = posix_spawn_file_actions_adddup2(&actions, r->tmp_fds[i], (int)i);
    } else if (i <= 2) {
      r->err = posix_spawn_file_actions_addopen(&actions, (int)i, "/dev/null", i == 0 ? O_RDONLY : O_RDWR, 0);
    } else {
      r->err = posix_spawn_file_actions_addclose(&actions, (int)i);
    }
    if (r->err != 0) goto done;
  }
  // Nothing else reaches the child, even a descriptor pm inherited without close-on-exec.
  if ((r->err = posix_spawn_file_actions_addclosefrom_np(&actions, (int)(r->fd_count < 3 ? 3 : r->fd_count))) != 0) goto done;

  posix_spawnattr_init(&attr);
  attr_ready = 1;
  sigset_t all, none;
  sigfillset(&all);
  with_reserved_signals(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  // Set, not inherited: this thread's mask is libuv's, not the child's business.
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  r->err = posix_spawn(&r->pid, program, &actions, &attr, r->argv, r->envp);
  // The child has its copies (or there is no child): ours go now, not on the event loop.
  for (uint32_t i = 0; i < r->fd_count; i++) {
    if (r->tmp_fds[i] >= 0) close(r->tmp_fds[i]);
    r->tmp_fds[i] = -1;
  }
  if (r->err != 0) goto done;
  // Nobody reaps it before complete_spawn watches it: its /proc entry is there to read.
  read_start_time(r->pid, r->start_time, sizeof r->start_time);
  r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
  if (r->pidfd < 0) {
    // The child runs but could not be watched (no descriptor left): end it rather than lose it.
    r->err = errno;
    r->failed = "pidfd_open";
    kill(r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
  }

done:
  if (actions_ready) posix_spawn_file_actions_destroy(&actions);
  if (attr_ready) posix_spawnattr_destroy(&attr);
  free(program);
}

/** Back on the event loop: watch the child and resolve, or reject with the errno. */
static void complete_spawn(napi_env env, napi_status status, void *data) {
  spawn_request *r = data;
  module_state *state = r->state;
  state->spawning--;
  if (status != napi_ok && r->err == 0) {
    r->err = ECANCELED;
    r->failed = "spawn";
  }
  child_watch *watch = NULL;
  if (r->err == 0) {
    watch = calloc(1, sizeof *watch);
    uv_loop_t *loop = NULL;
    napi_get_uv_event_loop(env, &loop);
    int poll_err = watch == NULL ? 0 : uv_poll_init(loop, &watch->poll, r->pidfd);
    if (watch == NULL || poll_err != 0) {
      r->err = poll_err < 0 ? -poll_err : ENOMEM;
      r->failed = "uv_poll_init";
      kill(r->pid, SIGKILL);
      waitpid(r->pid, NULL, 0);
      close(r->pidfd);
      free(watch);
      watch = NULL;
    }
  }

  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  if (watch != NULL) {
    watch->env = env;
    watch->state = state;
    watch->pidfd = r->pidfd;
    watch->polling = 1;
    watch->on_exit = r->on_exit;
    r->on_exit = NULL;
    uv_poll_start(&watch->poll, UV_READABLE, on_pidfd_readable);
    watch->next = state->watches;
    if (state->watches != NULL) state->watches->prev = watch;
    state->watches = watch;

    napi_value out, pid_value, handle, start_time;
    napi_create_object(env, &out);
    napi_create_int32(env, r->pid, &pid_value);
    napi_set_named_property(env, out, "pid", pid_value);
    napi_create_external(env, watch, on_js_handle_collected, NULL, &handle);
    napi_set_named_property(env, out, "handle", handle);
    if (r->start_time[0] != '\0') {
      napi_create_string_utf8(env, r->start_time, NAPI_AUTO_LENGTH, &start_time);
      napi_set_named_property(env, out, "startTime", start_time);
    }
    if (r->pipe_write >= 0) {
      napi_value pipe_value;
      napi_create_int32(env, r->pipe_write, &pipe_value);
      napi_set_named_property(env, out, "pipe", pipe_value);
    }
    napi_resolve_deferred(env, r->deferred, out);
  } else {
    if (r->pipe_write >= 0) close(r->pipe_write);
    napi_value error = errno_error(env, r->err, r->failed);
    if (r->failed_fd >= 0) {
      // Which file: the caller names it, or opens it again itself to say more (a missing folder).
      napi_value path, fd;
      napi_create_string_utf8(env, r->open_paths[r->failed_fd], NAPI_AUTO_LENGTH, &path);
      napi_set_named_property(env, error, "path", path);
      napi_create_int32(env, r->failed_fd, &fd);
      napi_set_named_property(env, error, "fd", fd);
    }
    napi_reject_deferred(env, r->deferred, error);
  }
  napi_close_handle_scope(env, scope);
  if (r->on_exit != NULL) napi_delete_reference(env, r->on_exit);
  napi_delete_async_work(env, r->work);
  free_request(r);
  release_cleanup_if_idle(state);
}

/**
 * spawn(file, argv, envp, cwd | null, fds, onExit) → Promise<{ pid, handle, startTime?, pipe? }>.
 * fds[i] is the parent's descriptor that becomes the child's descriptor i (copied before this
 * returns: the caller may close its own at once); -1: /dev/null for 0–2, closed above; -2 (one at
 * most): the read end of a new pipe, whose write end is resolved as `pipe` (close-on-exec; the
 * caller closes it); { path, flags, mode }: that file, opened in the thread pool before the spawn.
 * Rejects with an Error with errno and syscall when the program cannot be started (syscall "open",
 * with `path` and `fd`, when a file could not be opened: nothing was started); throws only on bad
 * arguments.
 */
static napi_value Spawn(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value args[6];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "spawn(file, argv, envp, cwd, fds, onExit)");
    return NULL;
  }
  module_state *state;
  napi_get_instance_data(env, (void **)&state);

  spawn_request *r = calloc(1, sizeof *r);
  if (r == NULL) {
    throw_errno(env, ENOMEM, "malloc");
    return NULL;
  }
  r->state = state;
  r->pipe_write = -1;
  r->pidfd = -1;
  r->failed_fd = -1;
  r->file = string_of(env, args[0]);
  r->argv = strings_of(env, args[1]);
  r->envp = strings_of(env, args[2]);
  napi_valuetype cwd_type;
  napi_typeof(env, args[3], &cwd_type);
  r->cwd = cwd_type == napi_string ? string_of(env, args[3]) : NULL;
  napi_get_array_length(env, args[4], &r->fd_count);
  size_t slots = r->fd_count == 0 ? 1 : r->fd_count;
  r->tmp_fds = calloc(slots, sizeof *r->tmp_fds);
  // -1 at once: free_request closes every slot that is not, and 0 is a descriptor (pm's stdin).
  if (r->tmp_fds != NULL) {
    for (size_t i = 0; i < slots; i++) r->tmp_fds[i] = -1;
  }
  r->open_paths = calloc(slots, sizeof *r->open_paths);
  r->open_flags = calloc(slots, sizeof *r->open_flags);
  r->open_modes = calloc(slots, sizeof *r->open_modes);
  int err = 0;
  const char *failed = "malloc";
  if (r->file == NULL || r->argv == NULL || r->envp == NULL || (cwd_type == napi_string && r->cwd == NULL) || r->tmp_fds == NULL || r->open_paths == NULL || r->open_flags == NULL || r->open_modes == NULL) {
    err = ENOMEM;
    goto fail;
  }
  for (uint32_t i = 0; i < r->fd_count; i++) {
    napi_value item;
    napi_valuetype item_type;
    int32_t parent_fd = -1;
    napi_get_element(env, args[4], i, &item);
    napi_typeof(env, item, &item_type);
    if (item_type == napi_object) {
      napi_value path, flags, mode;
      napi_get_named_property(env, item, "path", &path);
      napi_get_named_property(env, item, "flags", &flags);
      napi_get_named_property(env, item, "mode", &mode);
      r->open_paths[i] = string_of(env, path);
      if (r->open_paths[i] == NULL || napi_get_value_int32(env, flags, &r->open_flags[i]) != napi_ok || napi_get_value_int32(env, mode, &r->open_modes[i]) != napi_ok) {
        if (r->pipe_write >= 0) close(r->pipe_write);
        free_request(r);
        napi_throw_type_error(env, NULL, "spawn: a file to open is { path: string, flags: number, mode: number }");
        return NULL;
      }
      continue;
    }
    napi_get_value_int32(env, item, &parent_fd);
    if (parent_fd == PIPE_TO_CHILD) {
      int ends[2];
      if (r->pipe_write >= 0) {
        err = EINVAL;
        failed = "spawn (more than one pipe)";
        goto fail;
      }
      if (pipe2(ends, O_CLOEXEC) != 0) {
        err = errno;
        failed = "pipe2";
        goto fail;
      }
      // The write end stays here; in the child it is close-on-exec, or overwritten by a target.
      r->pipe_write = ends[1];
      r->tmp_fds[i] = fcntl(ends[0], F_DUPFD_CLOEXEC, (int)r->fd_count);
      int dup_err = errno;
      close(ends[0]);
      if (r->tmp_fds[i] < 0) {
        err = dup_err;
        failed = "fcntl";
        goto fail;
      }
    } else if (parent_fd >= 0) {
      // A copy above every target, so that no dup2 overwrites a source a later one needs;
      // close-on-exec, so the copies end with the exec (and never reach another child).
      r->tmp_fds[i] = fcntl(parent_fd, F_DUPFD_CLOEXEC, (int)r->fd_count);
      if (r->tmp_fds[i] < 0) {
        err = errno;
        failed = "fcntl";
        goto fail;
      }
    }
  }

  napi_value promise, resource_name;
  napi_create_promise(env, &r->deferred, &promise);
  napi_create_reference(env, args[5], 1, &r->on_exit);
  napi_create_string_utf8(env, "pm:spawn", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_create_async_work(env, NULL, resource_name, execute_spawn, complete_spawn, r, &r->work) != napi_ok || napi_queue_async_work(env, r->work) != napi_ok) {
    // Nothing queued: settle here (the promise is already made) rather than leave it pending.
    if (r->work != NULL) napi_delete_async_work(env, r->work);
    napi_delete_reference(env, r->on_exit);
    if (r->pipe_write >= 0) close(r->pipe_write);
    napi_reject_deferred(env, r->deferred, errno_error(env, EAGAIN, "napi_queue_async_work"));
    free_request(r);
    return promise;
  }
  state->spawning++;
  return promise;

fail:
  if (r->pipe_write >= 0) close(r->pipe_write);
  free_request(r);
  throw_errno(env, err, failed);
  return NULL;
}

/** The watch of the call's one argument while its poll handle is open, else NULL (the child has exited). */
static child_watch *open_watch_of(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value handle;
  napi_get_cb_info(env, info, &argc, &handle, NULL, NULL);
  child_watch *watch = argc < 1 ? NULL : watch_of(env, handle);
  return watch != NULL && watch->polling ? watch : NULL;
}

/** ref(handle) / unref(handle): whether the child's watch keeps Node's event loop alive. */
static napi_value Ref(napi_env env, napi_callback_info info) {
  child_watch *watch = open_watch_of(env, info);
  if (watch != NULL) uv_ref((uv_handle_t *)&watch->poll);
  return NULL;
}

static napi_value Unref(napi_env env, napi_callback_info info) {
  child_watch *watch = open_watch_of(env, info);
  if (watch != NULL) uv_unref((uv_handle_t *)&watch->poll);
  return NULL;
}

/** The env is torn down: close every watch, and hold the teardown until their close callbacks ran. */
static void cleanup(napi_async_cleanup_hook_handle handle, void *data) {
  module_state *state = data;
  // Watches end; their children run on, unwatched, as any process pm started outlives it.
  while (state->watches != NULL) stop_watch(state, state->watches);
  if (state->closing == 0 && state->spawning == 0) {
    napi_remove_async_cleanup_hook(handle);
  } else {
    state->cleanup = handle;
  }
}

static void free_state(napi_env env, void *data, void *hint) {
  (void)hint;
  module_state *state = data;
  napi_async_destroy(env, state->async_context);
  free(state);
}

NAPI_MODULE_INIT() {
  // pidfds need Linux 5.3 and waitid(P_PIDFD) 5.4: refuse to load without them, so pm uses
  // Node's spawn instead of failing at the first start.
  int self = (int)syscall(SYS_pidfd_open, getpid(), 0);
  if (self < 0) {
    throw_errno(env, errno, "pidfd_open");
    return NULL;
  }
  siginfo_t info;
  int rc = waitid((idtype_t)P_PIDFD, (id_t)self, &info, WEXITED | WNOHANG);
  int wait_err = errno;
  close(self);
  if (rc == 0 || wait_err != ECHILD) {
    throw_errno(env, rc == 0 ? EINVAL : wait_err, "waitid(P_PIDFD)");
    return NULL;
  }

  module_state *state = calloc(1, sizeof *state);
  if (state == NULL) {
    throw_errno(env, ENOMEM, "malloc");
    return NULL;
  }
  napi_value resource_name;
  napi_create_string_utf8(env, "pm:child-exit", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &state->async_context);
  napi_set_instance_data(env, state, free_state, NULL);
  napi_add_async_cleanup_hook(env, cleanup, state, NULL);

  napi_property_descriptor methods[] = {
      {"spawn", NULL, Spawn, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, Ref, NULL, NULL, NULL, napi_default, NULL},
      {"unref", NULL, Unref, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  napi_value version;
  napi_create_int32(env, PM_SPAWN_VERSION, &version);
  napi_set_named_property(env, exports, "version", version);
  return exports;
}
