/*
 * qcode-jail --serve: the warm pool. The cold launcher (jail.c) builds a jail
 * and starts two interpreters for every run; most of a trivial run's time goes
 * there. The pool builds each jail's expensive parts once and forks the rest:
 *
 *   server (host: this process)         -- jobs in on fd 0, results out on fd 1;
 *     │                                    wall clocks, output caps, cgroups
 *     └─ zygote, one per slot            -- PID 1 of the slot's user/mount/pid/net/
 *          │                                ipc/uts/cgroup namespaces; the read-only
 *          │                                root; an interpreter (libpython) with the
 *          │                                harness loaded. Never runs a job's code.
 *          └─ job init, one per job      -- clone(NEWPID|NEWNS|NEWIPC): PID 1 of a
 *               │                           fresh PID namespace, a fresh /tmp, /proc
 *               ├─ program (fork)        -- nobody, rlimits, seccomp: the layers of
 *               └─ judge   (fork)           child_setup, as a cold run gets them
 *
 * Every job's program and judge are fresh forks, so each starts from the
 * zygote's pristine state, and nothing a job does reaches the next: it ends
 * with its PID namespace (its threads, anything it started), its /tmp ends
 * with its mount namespace, its memory with its processes. The zygote is
 * root of the slot's user namespace; jobs run as other uids without
 * capabilities, in a PID namespace below it (they cannot see or signal it),
 * under seccomp. A slot runs one job at a time, so no two jobs share a user
 * namespace (RLIMIT_NPROC counts, /proc) at once.
 *
 * The embedded interpreter is the configured python's own libpython (found by
 * the Swift side, version-checked here) run with -I -S -B's flags; whatever
 * keeps it from starting makes the pool unavailable, and qcode runs cold.
 *
 * Frames on fd 0 / fd 1: "<kind> <id> <length>\n" + length bytes.
 *   in:  S 0 n  the zygote's Python setup (once, first)
 *        J id n "<wall> <cpu> <mem> <fsize> <nproc> <nofile> <out> <tmpfs>\n" + the job (the judge's fd 0)
 *        C id 0 cancel job id
 *   out: P 0 n  "ready": a slot is ready (once)
 *        U 0 n  unavailable: why (then the server exits)
 *        R id n "<status> <stdout> <stderr> <results>\n" lengths, then the four
 *               (status: the cold launcher's JSON line, with "path":"warm")
 *        E id n the job did not run here (pool failure, cancelled): why
 * The server exits when fd 0 closes (qcode is gone) or its parent changes,
 * killing every job and zygote.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wchar.h>

#include "jail.h"

#define MAX_SLOTS 16
#define MAX_FRAME (256L << 20)
#define SLOT_RESTARTS 5
#define SLOT_START_MS 60000.0

/* ---- zygote <-> server messages (SOCK_SEQPACKET, fds by SCM_RIGHTS) ------------- */

enum { Z_READY = 1, Z_ERR, Z_STARTED, Z_DONE };
struct zmsg {
  int kind;
  int status;      /* Z_DONE: the job init's wait status, -1 if it never started */
  double cpu_ms;   /* Z_DONE: the job's CPU (init and everything it reaped) */
  long maxrss_kb;
  char text[240];  /* Z_ERR, Z_DONE with status -1: why */
};
/* The per-job limits the jailed processes apply (wall and output stay here). */
struct zjob {
  long cpu, mem, fsize, nproc, nofile, tmpfs;
};
enum { ZFD_JOB, ZFD_OUT, ZFD_ERR, ZFD_RES, ZFD_ST, ZFD_GO, ZFD_COUNT };

static int send_with_fds(int sock, const void *data, size_t len, const int *fds, int nfds) {
  struct iovec iov = {(void *)data, len};
  char control[CMSG_SPACE(sizeof(int) * ZFD_COUNT)];
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    memset(control, 0, sizeof control);
    mh.msg_control = control;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
  }
  ssize_t r;
  do r = sendmsg(sock, &mh, MSG_NOSIGNAL); while (r < 0 && errno == EINTR);
  return r == (ssize_t)len ? 0 : -1;
}

/* Returns the bytes read (0 at EOF, -1 on error); received fds go to fds[],
 * close-on-exec, their count to *nfds. */
static ssize_t recv_with_fds(int sock, void *data, size_t len, int *fds, int maxfds, int *nfds) {
  struct iovec iov = {data, len};
  char control[CMSG_SPACE(sizeof(int) * ZFD_COUNT)];
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  ssize_t r;
  do r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC); while (r < 0 && errno == EINTR);
  *nfds = 0;
  if (r < 0) return -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int got[ZFD_COUNT];
    if (n > ZFD_COUNT) n = ZFD_COUNT;
    memcpy(got, CMSG_DATA(c), sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
      if (*nfds < maxfds) fds[(*nfds)++] = got[i];
      else close(got[i]);
    }
  }
  if (mh.msg_flags & MSG_CTRUNC) {
    for (int i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
    errno = EPROTO;
    return -1;
  }
  return r;
}

/* ---- configuration ----------------------------------------------------------------- */

struct serve_cfg {
  int slots;
  const char *ro[16];
  int nro;
  const char *cgroup;
  const char *libpython; /* the interpreter's own shared library */
  const char *python;    /* the interpreter, as program name: its prefix holds the stdlib */
  const char *pyversion; /* what Py_GetVersion() must say: that interpreter's sys.version */
  char *setup;           /* the S frame: Python that loads the harness into the zygote */
};

static struct serve_cfg cfg;

/* ---- the zygote: an interpreter with the harness loaded, forking per job -------- */

static struct {
  void (*initialize)(int);
  int (*run_string)(const char *);
  void (*after_fork_child)(void);
  const char *(*version)(void);
  wchar_t *(*decode_locale)(const char *, size_t *);
  void (*set_program_name)(const wchar_t *);
} py;

__attribute__((noreturn)) static void zygote_fail(int ctl, const char *fmt, ...) {
  struct zmsg m;
  memset(&m, 0, sizeof m);
  m.kind = Z_ERR;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m.text, sizeof m.text, fmt, ap);
  va_end(ap);
  send_with_fds(ctl, &m, sizeof m, NULL, 0);
  _exit(EXIT_SETUP);
}

/* Starts the embedded interpreter as `python -I -S -B` would start: isolated
 * (no environment, no user site, no script directory), no site, no bytecode
 * written, its standard library from the interpreter's prefix, Python's own
 * signal handling (SIGINT, SIGPIPE and SIGXFSZ ignored). */
static void start_interpreter(int ctl) {
  void *lib = dlopen(cfg.libpython, RTLD_NOW | RTLD_GLOBAL);
  if (!lib) zygote_fail(ctl, "cannot load %s: %s", cfg.libpython, dlerror());
  static const char *flags[] = {"Py_IsolatedFlag", "Py_NoSiteFlag", "Py_DontWriteBytecodeFlag",
                                "Py_IgnoreEnvironmentFlag", "Py_NoUserSiteDirectory"};
  int *flag[5];
  for (int i = 0; i < 5; i++)
    if (!(flag[i] = dlsym(lib, flags[i]))) zygote_fail(ctl, "%s lacks %s (an embedding API this pool needs)", cfg.libpython, flags[i]);
  *(void **)&py.initialize = dlsym(lib, "Py_InitializeEx");
  *(void **)&py.run_string = dlsym(lib, "PyRun_SimpleString");
  *(void **)&py.after_fork_child = dlsym(lib, "PyOS_AfterFork_Child");
  *(void **)&py.version = dlsym(lib, "Py_GetVersion");
  *(void **)&py.decode_locale = dlsym(lib, "Py_DecodeLocale");
  *(void **)&py.set_program_name = dlsym(lib, "Py_SetProgramName");
  if (!py.initialize || !py.run_string || !py.after_fork_child || !py.version || !py.decode_locale ||
      !py.set_program_name)
    zygote_fail(ctl, "%s lacks the embedding API this pool needs (Python 3.8 to 3.12)", cfg.libpython);
  if (strcmp(py.version(), cfg.pyversion) != 0)
    zygote_fail(ctl, "%s is Python %.60s, the interpreter %s is %.60s", cfg.libpython, py.version(), cfg.python,
                cfg.pyversion);
  for (int i = 0; i < 5; i++) *flag[i] = 1;
  wchar_t *name = py.decode_locale(cfg.python, NULL);
  if (!name) zygote_fail(ctl, "cannot decode %s", cfg.python);
  py.set_program_name(name); /* kept: Python holds the pointer */
  py.initialize(1);
  if (py.run_string(cfg.setup) != 0)
    zygote_fail(ctl, "the harness did not load in the warm interpreter (its traceback is on qcode-jail's stderr)");
}

/* A job's program or judge: child_setup's layers, then the interpreter the
 * zygote started, into the harness's entry for `role`. */
__attribute__((noreturn)) static void warm_child(const struct opts *o, int ns, int role, const int *fds, int nfds,
                                                 int st_w, pid_t init_pid, const struct ids *ids) {
  st_w = child_setup(o, ns, role, fds, nfds, st_w, init_pid, ids, 0);
  /* What exec would have done: the status pipe goes (it is close-on-exec), and
   * /proc/self is the process's own again (credential changes cleared dumpable). */
  close(st_w);
  prctl(PR_SET_DUMPABLE, 1);
  py.after_fork_child();
  py.run_string(role == ROLE_JUDGE ? "_qcode_start('judge')" : "_qcode_start('program')");
  _exit(1); /* the harness ends with os._exit: getting here is a harness failure */
}

/* PID 1 of one job: a fresh /tmp and /proc, then init's job part. */
__attribute__((noreturn)) static void job_init(const struct zjob *zj, const int *fds) {
  close(3); /* the zygote's control socket */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int st_w = fds[ZFD_ST];
  char go;
  ssize_t r;
  do r = read(fds[ZFD_GO], &go, 1); while (r < 0 && errno == EINTR);
  if (r != 1) _exit(EXIT_SETUP); /* the server gave up on this job */
  close(fds[ZFD_GO]);
  /* The slot's /tmp and /proc are replaced, not covered, so the job's mount
   * table is a cold run's. A new proc may only be mounted while one is
   * visible (the kernel's rule for user namespaces): mount it aside, then
   * move it into place. */
  char data[96];
  snprintf(data, sizeof data, "size=%ld,mode=1777,nr_inodes=4096", zj->tmpfs);
  const char *step = "detach the slot's /tmp";
  if (umount2("/tmp", MNT_DETACH) < 0 ||
      (step = "tmpfs /tmp", mount("qcode-tmp", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, data) < 0) ||
      (step = "mkdir /tmp/.proc", mkdir("/tmp/.proc", 0700) < 0) ||
      (step = "proc", mount("proc", "/tmp/.proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") < 0 &&
                          mount("proc", "/tmp/.proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) ||
      (step = "detach the slot's /proc", umount2("/proc", MNT_DETACH) < 0) ||
      (step = "move /proc", mount("/tmp/.proc", "/proc", NULL, MS_MOVE, NULL) < 0) ||
      (step = "rmdir /tmp/.proc", rmdir("/tmp/.proc") < 0)) {
    send_msg(st_w, MSG_SETUP_ERR, errno, 0, "%s: %s", step, strerror(errno));
    _exit(EXIT_SETUP);
  }
  setsid();
  send_msg(st_w, MSG_SETUP_OK, 1, 0, NULL);
  static char *judge_marker[] = {"judge", NULL};
  struct opts o;
  memset(&o, 0, sizeof o);
  o.cpu = zj->cpu, o.mem = zj->mem, o.fsize = zj->fsize, o.nproc = zj->nproc, o.nofile = zj->nofile;
  o.tmpfs = zj->tmpfs;
  o.judge_argv = judge_marker;
  struct ids ids = {.program_uid = NOBODY, .program_gid = NOBODY, .judge_uid = JUDGE_NS_UID,
                    .judge_gid = JUDGE_NS_UID, .change = 1, .memory_cgroup = go == 'c'};
  init_jobs(&o, 1, fds[ZFD_JOB], fds[ZFD_OUT], fds[ZFD_ERR], fds[ZFD_RES], st_w, &ids, warm_child);
}

__attribute__((noreturn)) static void zygote_main(int ctl) {
  /* Only the control socket (fd 3) and stderr (qcode's diagnostics) stay: a
   * clone of the server holds other slots' sockets and other jobs' pipes. */
  int c = fcntl(ctl, F_DUPFD_CLOEXEC, 10);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (c < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(c, 3) < 0) _exit(EXIT_SETUP);
  ctl = 3;
  syscall(SYS_close_range, 4U, ~0U, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  char go;
  ssize_t r;
  do r = recv(ctl, &go, 1, 0); while (r < 0 && errno == EINTR);
  if (r != 1) _exit(EXIT_SETUP); /* the server died before writing our uid map */
  if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
    zygote_fail(ctl, "become root in the user namespace: %s", strerror(errno));
  struct opts o;
  memset(&o, 0, sizeof o);
  o.tmpfs = 1L << 20; /* each job mounts its own /tmp over this one */
  memcpy(o.ro, cfg.ro, sizeof o.ro);
  o.nro = cfg.nro;
  char err[200] = "";
  if (setup_fs(&o, err, sizeof err) < 0) zygote_fail(ctl, "%s", err);
  sethostname("jail", 4);
  setsid();
  /* Nothing but root of this namespace may read or trace the zygote; each job's
   * processes make themselves dumpable again, as an exec would. */
  prctl(PR_SET_DUMPABLE, 0);
  /* The interpreter's state is what every job starts from: Python's own
   * signal dispositions on a clean slate, and the environment a cold run's
   * interpreter sees (os.environ is read at startup). */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  clearenv();
  setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
  setenv("HOME", "/tmp", 1);
  setenv("TMPDIR", "/tmp", 1);
  setenv("LANG", "C.UTF-8", 1);
  setenv("PYTHONIOENCODING", "utf-8", 1);
  setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
  start_interpreter(ctl);
  struct zmsg m;
  memset(&m, 0, sizeof m);
  m.kind = Z_READY;
  if (send_with_fds(ctl, &m, sizeof m, NULL, 0) < 0) _exit(0);
  for (;;) {
    struct zjob zj;
    int fds[ZFD_COUNT], nfds = 0;
    r = recv_with_fds(ctl, &zj, sizeof zj, fds, ZFD_COUNT, &nfds);
    if (r <= 0) _exit(0); /* the server is gone */
    if (r != (ssize_t)sizeof zj || nfds != ZFD_COUNT) {
      for (int i = 0; i < nfds; i++) close(fds[i]);
      continue;
    }
    memset(&m, 0, sizeof m);
    pid_t job = (pid_t)syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | SIGCHLD, NULL, NULL, NULL, 0);
    if (job == 0) job_init(&zj, fds);
    for (int i = 0; i < ZFD_COUNT; i++) close(fds[i]);
    if (job < 0) {
      m.kind = Z_DONE;
      m.status = -1;
      snprintf(m.text, sizeof m.text, "clone the job's namespaces: %s", strerror(errno));
      send_with_fds(ctl, &m, sizeof m, NULL, 0);
      continue;
    }
    int pidfd = (int)syscall(SYS_pidfd_open, job, 0);
    m.kind = Z_STARTED;
    if (pidfd < 0 || send_with_fds(ctl, &m, sizeof m, &pidfd, 1) < 0) kill(job, SIGKILL);
    if (pidfd >= 0) close(pidfd);
    int status = 0;
    struct rusage ru;
    while (wait4(job, &status, 0, &ru) < 0 && errno == EINTR) {}
    memset(&m, 0, sizeof m);
    m.kind = Z_DONE;
    m.status = status;
    m.cpu_ms = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
    m.maxrss_kb = ru.ru_maxrss;
    if (send_with_fds(ctl, &m, sizeof m, NULL, 0) < 0) _exit(0);
  }
}

/* ---- the server ------------------------------------------------------------------ */

struct buf {
  char *p;
  size_t len, cap;
};

static int buf_add(struct buf *b, const char *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) return -1;
    b->p = q, b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

/* A job request from qcode, waiting for a slot. */
struct request {
  uint64_t id;
  struct opts o;
  char *input;
  size_t input_len;
  struct request *next;
};

/* One job's processes in a slot: the job init, and under it the program and
 * the judge, forked as soon as the slot is free and blocked until a request
 * is attached (its input written to the judge's fd 0). Used once. */
struct set {
  int slot;       /* -1 once its init was reaped */
  struct opts o;  /* the limits its processes were set up with */
  int attached;   /* carries request `id`: the judge has, or is getting, its input */
  uint64_t id;
  char *input;
  size_t input_len, input_off;
  int job_w;      /* the judge's fd 0 */
  int fds[4];     /* stdout, stderr, results, init's status messages: read ends */
  int go_w;
  int pidfd;      /* the job's init */
  double t0, deadline, kill_time, done_time, answered_at;
  int killed, cancelled, done, answered;
  char failure[400]; /* set: not judged here, qcode runs it cold */
  char cgroup[400];
  int memory_cgroup;
  unsigned long serial; /* names its cgroup */
  struct buf out[3];
  long seen[3];
  struct result res;
  double init_cpu_ms;
  long maxrss_kb;
  struct set *next;
};

enum { SLOT_OFF, SLOT_STARTING, SLOT_READY, SLOT_BUSY, SLOT_DEAD };

struct slot {
  int state;
  pid_t pid;
  int pidfd, ctl;
  int restarts;
  unsigned gen;    /* counts its zygotes: a poll result for an earlier one is stale */
  int failed_sets; /* sets in a row that died before their request: a broken slot */
  double since;
  struct set *set; /* BUSY: the set it holds */
  struct opts last; /* the limits of its last job: its next set is set up with them */
  int has_last;
};

static struct slot slots[MAX_SLOTS];
static struct request *queued;
static struct set *sets; /* every set not yet freed */
static int announced;
static char last_failure[240] = "no slot started";
static int cgroup_works = -1; /* -1 not tried yet, 0 this host offers none, 1 yes */
static volatile sig_atomic_t g_stop = 0;

static void on_stop(int sig) {
  (void)sig;
  g_stop = 1;
}

static void send_frame(char kind, uint64_t id, const char *p, size_t n) {
  char head[64];
  int h = snprintf(head, sizeof head, "%c %llu %zu\n", kind, (unsigned long long)id, n);
  if (write_all(1, head, (size_t)h) < 0 || write_all(1, p, n) < 0) g_stop = 1;
}

static void send_text(char kind, uint64_t id, const char *text) { send_frame(kind, id, text, strlen(text)); }

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static int same_limits(const struct opts *a, const struct opts *b) {
  return a->cpu == b->cpu && a->mem == b->mem && a->fsize == b->fsize && a->nproc == b->nproc &&
         a->nofile == b->nofile && a->tmpfs == b->tmpfs;
}

static void kill_set(struct set *s) {
  if (!s->killed) s->kill_time = now_ms();
  s->killed = 1;
  if (s->pidfd >= 0) syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
}

static void free_set(struct set *s) {
  for (int i = 0; i < 4; i++) close_fd(&s->fds[i]);
  close_fd(&s->job_w);
  close_fd(&s->go_w);
  close_fd(&s->pidfd);
  cgroup_leave(s->cgroup);
  for (int i = 0; i < 3; i++) free(s->out[i].p);
  free(s->input);
  free(s);
}

static void free_request(struct request *r) {
  free(r->input);
  free(r);
}

static void start_slot(int k) {
  struct slot *s = &slots[k];
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    snprintf(last_failure, sizeof last_failure, "socketpair: %s", strerror(errno));
    s->state = SLOT_DEAD;
    return;
  }
  pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                                            CLONE_NEWUTS | CLONE_NEWCGROUP | SIGCHLD,
                             NULL, NULL, NULL, 0);
  if (pid == 0) zygote_main(sv[1]);
  close(sv[1]);
  if (pid < 0) {
    snprintf(last_failure, sizeof last_failure, "user namespaces unavailable: clone: %s", strerror(errno));
    close(sv[0]);
    s->state = SLOT_DEAD;
    return;
  }
  char map[96];
  snprintf(map, sizeof map, "0 %d 1\n%d %d 1\n%d %d 1\n", SETUP_HOST_UID, JUDGE_NS_UID, JUDGE_HOST_UID, NOBODY, NOBODY);
  if (write_map(pid, "setgroups", "deny") < 0 || write_map(pid, "uid_map", map) < 0 ||
      write_map(pid, "gid_map", map) < 0 || send(sv[0], "g", 1, MSG_NOSIGNAL) != 1) {
    snprintf(last_failure, sizeof last_failure, "user namespaces unusable: uid_map: %s", strerror(errno));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(sv[0]);
    s->state = SLOT_DEAD;
    return;
  }
  s->pid = pid;
  s->gen++;
  s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  s->ctl = sv[0];
  s->state = SLOT_STARTING;
  s->since = now_ms();
  s->set = NULL;
  s->failed_sets = 0;
}

/* The set's init is gone (reaped, or its zygote died): the slot is free of it. */
static void set_ended(struct set *s) {
  s->done = 1;
  s->done_time = now_ms();
  s->slot = -1;
}

/* The slot's zygote is gone or must go: its set, if any, ends with it. */
static void end_slot(int k, const char *why, int restart) {
  struct slot *s = &slots[k];
  if (s->pidfd >= 0) syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
  else if (s->pid > 0) kill(s->pid, SIGKILL);
  if (s->pid > 0) waitpid(s->pid, NULL, 0);
  close_fd(&s->pidfd);
  close_fd(&s->ctl);
  s->pid = 0;
  if (s->set) {
    kill_set(s->set);
    if (!s->set->failure[0]) snprintf(s->set->failure, sizeof s->set->failure, "%s", why);
    set_ended(s->set);
    s->set = NULL;
  }
  snprintf(last_failure, sizeof last_failure, "%s", why);
  s->state = SLOT_DEAD;
  if (restart && s->restarts < SLOT_RESTARTS && !g_stop) {
    s->restarts++;
    start_slot(k);
  }
}

static int all_dead(void) {
  for (int k = 0; k < cfg.slots; k++)
    if (slots[k].state != SLOT_DEAD) return 0;
  return 1;
}

/* Sets up a job's processes in slot k with limits `o`: pipes, then the zygote
 * clones the job init, which forks the program and the judge. */
static struct set *prepare(int k, const struct opts *o) {
  struct slot *sl = &slots[k];
  static unsigned long serial;
  struct set *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->o = *o;
  s->serial = ++serial;
  s->job_w = s->go_w = s->pidfd = -1;
  for (int i = 0; i < 4; i++) s->fds[i] = -1;
  int p[6][2], n = 0;
  for (; n < 6; n++)
    if (pipe2(p[n], O_CLOEXEC) < 0) break;
  if (n < 6) {
    snprintf(last_failure, sizeof last_failure, "the pool could not make a job's pipes: %s", strerror(errno));
    for (int i = 0; i < n; i++) { close(p[i][0]); close(p[i][1]); }
    free(s);
    return NULL;
  }
  struct zjob zj = {o->cpu, o->mem, o->fsize, o->nproc, o->nofile, o->tmpfs};
  int fds[ZFD_COUNT] = {p[5][0], p[0][1], p[1][1], p[2][1], p[3][1], p[4][0]};
  for (int i = 0; i < 4; i++) {
    s->fds[i] = p[i][0];
    fcntl(p[i][0], F_SETFL, O_NONBLOCK);
  }
  s->go_w = p[4][1];
  s->job_w = p[5][1];
  fcntl(s->job_w, F_SETFL, O_NONBLOCK);
  /* Without a memory cgroup on this host, the job's init may go at once. */
  if (cgroup_works == 0) {
    write_all(s->go_w, "g", 1);
    close_fd(&s->go_w);
  }
  s->slot = k;
  s->next = sets;
  sets = s;
  sl->set = s;
  sl->state = SLOT_BUSY;
  int sent = send_with_fds(sl->ctl, &zj, sizeof zj, fds, ZFD_COUNT);
  for (int i = 0; i < ZFD_COUNT; i++) close(fds[i]);
  if (sent < 0) end_slot(k, "the warm jail's zygote stopped answering", 1);
  return s;
}

static void write_input(struct set *s) {
  while (s->job_w >= 0 && s->input_off < s->input_len) {
    ssize_t w = write(s->job_w, s->input + s->input_off, s->input_len - s->input_off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EAGAIN) return;
    if (w < 0) break; /* the judge is gone: its end says why */
    s->input_off += (size_t)w;
  }
  close_fd(&s->job_w);
  free(s->input);
  s->input = NULL;
}

/* The request's clock starts now: its input goes to the set's judge. */
static void attach(struct set *s, struct request *r) {
  s->attached = 1;
  s->id = r->id;
  s->o.wall = r->o.wall;
  s->o.out = r->o.out;
  s->input = r->input;
  s->input_len = r->input_len;
  r->input = NULL;
  free_request(r);
  s->t0 = now_ms();
  s->deadline = s->t0 + s->o.wall * 1e3;
  slots[s->slot].last = s->o;
  slots[s->slot].has_last = 1;
  write_input(s);
}

/* Requests go, oldest first, to a set already set up with their limits, else
 * to a free slot; a set with other limits that nothing wants is let go. */
static void dispatch(void) {
  while (queued) {
    struct request *r = queued;
    struct set *match = NULL;
    int ready = -1, spare = -1;
    for (int k = 0; k < cfg.slots; k++) {
      struct slot *sl = &slots[k];
      if (sl->state == SLOT_READY && ready < 0) ready = k;
      if (sl->state == SLOT_BUSY && sl->set && !sl->set->attached && !sl->set->killed) {
        if (!match && same_limits(&sl->set->o, &r->o)) match = sl->set;
        else if (spare < 0) spare = k;
      }
    }
    if (!match && ready >= 0) match = prepare(ready, &r->o);
    if (!match) {
      if (spare >= 0) kill_set(slots[spare].set); /* its slot comes back READY once it is reaped */
      return;
    }
    queued = r->next;
    attach(match, r);
  }
  /* Idle slots get their next set now, with their last job's limits. */
  for (int k = 0; k < cfg.slots; k++)
    if (slots[k].state == SLOT_READY && slots[k].has_last && slots[k].failed_sets < 3) prepare(k, &slots[k].last);
}

/* The set's init is known (its pidfd): place it in a memory cgroup if this
 * host offers one, then let it go. */
static void set_started(struct set *s, int pidfd) {
  s->pidfd = pidfd;
  if (s->killed) kill_set(s);
  if (s->go_w < 0) return;
  char go = 'g';
  if (cgroup_works != 0) {
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
    FILE *f = fopen(path, "re");
    pid_t pid = 0;
    while (f && fgets(line, sizeof line, f))
      if (sscanf(line, "Pid: %d", &pid) == 1) break;
    if (f) fclose(f);
    char name[64];
    snprintf(name, sizeof name, "run-%d-%lu", (int)getpid(), s->serial);
    s->memory_cgroup = pid > 0 && cgroup_enter(&s->o, pid, name, s->cgroup, sizeof s->cgroup);
    if (cgroup_works < 0) cgroup_works = s->memory_cgroup;
    if (s->memory_cgroup) go = 'c';
  }
  write_all(s->go_w, &go, 1);
  close_fd(&s->go_w);
}

/* The request's answer, once both processes ended and their output is in. */
static void answer(struct set *s) {
  s->answered = 1;
  s->answered_at = now_ms();
  for (int i = 0; i < 4; i++) close_fd(&s->fds[i]);
  close_fd(&s->job_w);
  struct result *res = &s->res;
  res->wall_ms = s->answered_at - s->t0;
  /* A killed init never reports its children: then all we know is the tree's total. */
  if (!res->ran) res->cpu_ms = s->init_cpu_ms;
  res->max_rss_kb = s->maxrss_kb;
  if (!res->ran && (res->timed_out || res->flood)) res->signal = SIGKILL;
  /* A program that never reported, unless we ended it, is the pool's failure, not the job's verdict. */
  if (!s->failure[0] && !res->ran && !res->timed_out && !res->flood && !s->cancelled)
    snprintf(s->failure, sizeof s->failure, "the warm jail could not run the job: %s",
             res->setup_error[0] ? res->setup_error : res->exec_error[0] ? res->exec_error : "its init ended first");
  if (s->failure[0] || s->cancelled) {
    send_text('E', s->id, s->cancelled ? "cancelled" : s->failure);
    return;
  }
  char *status = NULL;
  size_t slen = 0;
  FILE *f = open_memstream(&status, &slen);
  struct ids ids = {.program_uid = NOBODY, .memory_cgroup = s->memory_cgroup};
  if (f) {
    write_status(f, 1, res, &ids, "", "warm");
    fclose(f);
  }
  struct buf payload = {0};
  char head[128];
  int h = snprintf(head, sizeof head, "%zu %zu %zu %zu\n", slen, s->out[0].len, s->out[1].len, s->out[2].len);
  if (status && buf_add(&payload, head, (size_t)h) == 0 && buf_add(&payload, status, slen) == 0 &&
      buf_add(&payload, s->out[0].p ? s->out[0].p : "", s->out[0].len) == 0 &&
      buf_add(&payload, s->out[1].p ? s->out[1].p : "", s->out[1].len) == 0 &&
      buf_add(&payload, s->out[2].p ? s->out[2].p : "", s->out[2].len) == 0)
    send_frame('R', s->id, payload.p, payload.len);
  else
    send_text('E', s->id, "the pool ran out of memory composing the result");
  free(payload.p);
  free(status);
}

/* Relays what the job wrote, as the cold launcher does: stdout and stderr
 * kept up to --out bytes each, results up to 1 MiB, and the run killed as a
 * flood far beyond that. */
static void read_output(struct set *s, int i) {
  static char chunk[65536];
  for (;;) {
    ssize_t got = read(s->fds[i], chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == EAGAIN) return;
    if (got <= 0) {
      close_fd(&s->fds[i]);
      return;
    }
    long cap[3] = {s->o.out, s->o.out, 1L << 20};
    int *trunc[3] = {&s->res.out_trunc, &s->res.err_trunc, &s->res.res_trunc};
    s->seen[i] += got;
    long room = cap[i] - (long)s->out[i].len;
    long take = got < room ? got : (room > 0 ? room : 0);
    if (take > 0 && buf_add(&s->out[i], chunk, (size_t)take) < 0) take = 0;
    if (take < got) *trunc[i] = 1;
    long flood_limit = s->o.out * 256 > (16L << 20) ? s->o.out * 256 : (16L << 20);
    if (!s->killed && (s->seen[0] + s->seen[1] > flood_limit || s->seen[2] > 4 * cap[2])) {
      s->res.flood = 1;
      kill_set(s);
    }
  }
}

static void read_status(struct set *s) {
  for (;;) {
    struct msg m;
    ssize_t got = read(s->fds[3], &m, sizeof m);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == EAGAIN) return;
    if (got != (ssize_t)sizeof m) {
      close_fd(&s->fds[3]);
      return;
    }
    m.text[sizeof m.text - 1] = '\0';
    struct result *res = &s->res;
    if (m.kind == MSG_SETUP_ERR) snprintf(res->setup_error, sizeof res->setup_error, "%s", m.text);
    else if (m.kind == MSG_EXEC_ERR && !res->exec_error[0]) snprintf(res->exec_error, sizeof res->exec_error, "%s", m.text);
    else if (m.kind == MSG_CHILD_STATUS || m.kind == MSG_JUDGE_STATUS) {
      int code = WIFEXITED(m.value) ? WEXITSTATUS(m.value) : 0;
      int sig = WIFSIGNALED(m.value) ? WTERMSIG(m.value) : 0;
      if (m.kind == MSG_JUDGE_STATUS)
        res->judge_ran = 1, res->judge_exit_code = code, res->judge_signal = sig, res->judge_cpu_ms = m.cpu_ms;
      else
        res->ran = 1, res->exit_code = code, res->signal = sig, res->cpu_ms = m.cpu_ms;
      if (m.maxrss_kb > s->maxrss_kb) s->maxrss_kb = m.maxrss_kb;
    }
  }
}

static void slot_message(int k) {
  struct slot *sl = &slots[k];
  struct zmsg m;
  int fd = -1, nfds = 0;
  ssize_t r = recv_with_fds(sl->ctl, &m, sizeof m, &fd, 1, &nfds);
  if (r <= 0 || r != (ssize_t)sizeof m) {
    if (nfds) close(fd);
    end_slot(k, "the warm jail's zygote died", sl->state != SLOT_STARTING);
    return;
  }
  m.text[sizeof m.text - 1] = '\0';
  switch (m.kind) {
  case Z_READY:
    sl->state = SLOT_READY;
    sl->restarts = 0;
    if (!announced) {
      announced = 1;
      send_text('P', 0, "ready");
    }
    break;
  case Z_ERR:
    end_slot(k, m.text, 0); /* a setup error: the same next time */
    break;
  case Z_STARTED:
    if (sl->set && nfds == 1) set_started(sl->set, fd);
    else if (nfds) close(fd);
    break;
  case Z_DONE:
    if (sl->set) {
      struct set *s = sl->set;
      s->init_cpu_ms = m.cpu_ms;
      if (m.maxrss_kb > s->maxrss_kb) s->maxrss_kb = m.maxrss_kb;
      if (m.status == -1) snprintf(s->failure, sizeof s->failure, "the warm jail could not start the job: %s", m.text);
      /* A set that ended before a request reached it, unasked: something is wrong in this slot. */
      if (!s->attached && !s->killed) {
        sl->failed_sets++;
        snprintf(last_failure, sizeof last_failure, "a warm job ended before it was used: %s",
                 s->res.setup_error[0] ? s->res.setup_error : s->res.exec_error[0] ? s->res.exec_error : m.text);
      } else if (s->attached && (s->res.ran || s->res.timed_out || s->res.flood)) {
        sl->failed_sets = 0;
      } else if (s->attached && !s->killed) {
        sl->failed_sets++; /* its init ended before the program reported: the job reruns cold */
        snprintf(last_failure, sizeof last_failure, "a warm job's init ended before its program reported");
      }
      set_ended(s);
      sl->set = NULL;
    }
    sl->state = SLOT_READY;
    if (sl->failed_sets >= 3) end_slot(k, last_failure, 0);
    break;
  default:
    if (nfds) close(fd);
    end_slot(k, "the warm jail's zygote broke the protocol", 1);
  }
}

/* "<wall> <cpu> <mem> <fsize> <nproc> <nofile> <out> <tmpfs>\n" + input, in
 * the cold launcher's ranges: no request can quietly disable a limit. */
static int parse_request(struct request *r, const char *p, size_t n, char *why, size_t whylen) {
  const char *nl = memchr(p, '\n', n < 256 ? n : 256);
  if (!nl) return snprintf(why, whylen, "no limits line"), -1;
  char line[256], *tok[9], *save = NULL;
  memcpy(line, p, (size_t)(nl - p));
  line[nl - p] = '\0';
  int count = 0;
  for (char *t = strtok_r(line, " ", &save); t && count < 9; t = strtok_r(NULL, " ", &save)) tok[count++] = t;
  if (count != 8) return snprintf(why, whylen, "the limits line needs 8 numbers"), -1;
  char *end = NULL;
  errno = 0;
  double w = strtod(tok[0], &end);
  const long TiB = 1L << 40;
  if (errno || end == tok[0] || *end || !isfinite(w) || w <= 0 || w > 86400 ||
      parse_long(tok[1], 1, 86400, &r->o.cpu) < 0 || parse_long(tok[2], 32L << 20, TiB, &r->o.mem) < 0 ||
      parse_long(tok[3], 0, TiB, &r->o.fsize) < 0 || parse_long(tok[4], 1, 65536, &r->o.nproc) < 0 ||
      parse_long(tok[5], 8, 65536, &r->o.nofile) < 0 || parse_long(tok[6], 0, 1L << 30, &r->o.out) < 0 ||
      parse_long(tok[7], 1L << 20, TiB, &r->o.tmpfs) < 0)
    return snprintf(why, whylen, "a limit out of range"), -1;
  r->o.wall = w;
  size_t off = (size_t)(nl - p) + 1;
  r->input_len = n - off;
  r->input = malloc(r->input_len ? r->input_len : 1);
  if (!r->input) return snprintf(why, whylen, "out of memory"), -1;
  memcpy(r->input, p + off, r->input_len);
  return 0;
}

static void cancel(uint64_t id) {
  for (struct request **q = &queued; *q; q = &(*q)->next) {
    if ((*q)->id != id) continue;
    struct request *r = *q;
    *q = r->next;
    send_text('E', id, "cancelled");
    free_request(r);
    return;
  }
  for (struct set *s = sets; s; s = s->next)
    if (s->attached && s->id == id && !s->answered) {
      s->cancelled = 1;
      kill_set(s);
    }
}

/* One request frame; returns -1 when the stream is unusable. */
static int handle_frame(char kind, uint64_t id, const char *p, size_t n) {
  if (kind == 'S') {
    if (cfg.setup) return -1;
    cfg.setup = malloc(n + 1);
    if (!cfg.setup) return -1;
    memcpy(cfg.setup, p, n);
    cfg.setup[n] = '\0';
    for (int k = 0; k < cfg.slots; k++) start_slot(k);
    return 0;
  }
  if (kind == 'C') {
    cancel(id);
    return 0;
  }
  if (kind != 'J' || !cfg.setup) return -1;
  struct request *r = calloc(1, sizeof *r);
  if (!r) return -1;
  r->id = id;
  char why[160];
  if (parse_request(r, p, n, why, sizeof why) < 0) {
    char text[200];
    snprintf(text, sizeof text, "bad job request: %s", why);
    send_text('E', id, text);
    free_request(r);
    return 0;
  }
  struct request **tail = &queued;
  while (*tail) tail = &(*tail)->next;
  *tail = r;
  return 0;
}

/* Frames from qcode; returns -1 at EOF or on a malformed stream. */
static int read_requests(struct buf *in) {
  char chunk[65536];
  ssize_t got = read(0, chunk, sizeof chunk);
  if (got < 0) return errno == EINTR || errno == EAGAIN ? 0 : -1;
  if (got == 0) return -1;
  if (buf_add(in, chunk, (size_t)got) < 0) return -1;
  size_t used = 0;
  for (;;) {
    size_t avail = in->len - used;
    char *nl = memchr(in->p + used, '\n', avail < 64 ? avail : 64);
    if (!nl) {
      if (avail >= 64) return -1;
      break;
    }
    char kind, head[64];
    unsigned long long id;
    size_t n;
    memcpy(head, in->p + used, (size_t)(nl - (in->p + used)));
    head[nl - (in->p + used)] = '\0';
    if (sscanf(head, "%c %llu %zu", &kind, &id, &n) != 3 || n > MAX_FRAME) return -1;
    size_t start = (size_t)(nl - in->p) + 1;
    if (in->len - start < n) break;
    if (handle_frame(kind, id, in->p + start, n) < 0) return -1;
    used = start + n;
  }
  memmove(in->p, in->p + used, in->len - used);
  in->len -= used;
  return 0;
}

static void usage_serve(void) {
  fprintf(stderr, "usage: qcode-jail --serve --slots N --libpython PATH --python PATH --pyversion VERSION\n"
                  "                  [--ro DIR]... [--cgroup DIR]   (requests on stdin, see sandbox/pool.c)\n");
}

int serve_main(int argc, char **argv) {
  long slots_n = 0;
  for (int i = 2; i < argc; i++) {
    if (i + 1 >= argc) return usage_serve(), EXIT_USAGE;
    const char *a = argv[i], *v = argv[++i];
    if (strcmp(a, "--slots") == 0) {
      if (parse_long(v, 1, MAX_SLOTS, &slots_n) < 0) return usage_serve(), EXIT_USAGE;
    } else if (strcmp(a, "--ro") == 0) {
      if (v[0] != '/' || v[1] == '\0' || strstr(v, "/..") || strlen(v) > 200 || cfg.nro >= 16)
        return usage_serve(), EXIT_USAGE;
      cfg.ro[cfg.nro++] = v;
    } else if (strcmp(a, "--cgroup") == 0) {
      if (v[0] != '/' || strlen(v) > 300) return usage_serve(), EXIT_USAGE;
      cfg.cgroup = v;
    } else if (strcmp(a, "--libpython") == 0) {
      cfg.libpython = v;
    } else if (strcmp(a, "--python") == 0) {
      cfg.python = v;
    } else if (strcmp(a, "--pyversion") == 0) {
      cfg.pyversion = v;
    } else {
      return usage_serve(), EXIT_USAGE;
    }
  }
  if (slots_n < 1 || !cfg.libpython || cfg.libpython[0] != '/' || !cfg.python || cfg.python[0] != '/' || !cfg.pyversion)
    return usage_serve(), EXIT_USAGE;
  cfg.slots = (int)slots_n;
  syscall(SYS_close_range, 3U, ~0U, 0);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction stop = {.sa_handler = on_stop};
  sigemptyset(&stop.sa_mask);
  sigaction(SIGTERM, &stop, NULL);
  sigaction(SIGINT, &stop, NULL);
  sigaction(SIGHUP, &stop, NULL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  pid_t parent = getppid();
  for (int k = 0; k < MAX_SLOTS; k++) slots[k] = (struct slot){.state = SLOT_OFF, .pidfd = -1, .ctl = -1};
  struct buf in = {0};
  int input_open = 1;
  enum { MAX_POLL = 1 + 2 * MAX_SLOTS + 6 * 4 * MAX_SLOTS };
  struct pollfd pf[MAX_POLL];
  void *who[MAX_POLL];
  int what[MAX_POLL];
  unsigned gen[MAX_POLL];

  while (!g_stop && input_open) {
    if (getppid() != parent) break; /* qcode died and something else holds our stdin */
    if (cfg.setup && all_dead()) {
      for (struct request *r = queued; r; r = r->next) send_text('E', r->id, "the warm pool is unavailable");
      send_text('U', 0, last_failure);
      break;
    }
    int n = 0;
    pf[n] = (struct pollfd){0, POLLIN, 0}, who[n] = NULL, what[n++] = -1;
    double now = now_ms(), wake = now + 1000;
    for (int k = 0; k < cfg.slots; k++) {
      struct slot *sl = &slots[k];
      if (sl->state == SLOT_DEAD || sl->state == SLOT_OFF) continue;
      if (sl->state == SLOT_STARTING && now - sl->since > SLOT_START_MS) {
        end_slot(k, "the warm jail's zygote took over a minute to start", 0);
        continue;
      }
      pf[n] = (struct pollfd){sl->ctl, POLLIN, 0}, who[n] = sl, gen[n] = sl->gen, what[n++] = -2;
      if (sl->pidfd >= 0) pf[n] = (struct pollfd){sl->pidfd, POLLIN, 0}, who[n] = sl, gen[n] = sl->gen, what[n++] = -3;
    }
    for (struct set *s = sets; s; s = s->next) {
      if (s->attached && !s->answered) {
        if (!s->killed && now >= s->deadline) {
          s->res.timed_out = 1;
          kill_set(s);
        }
        if (!s->killed && s->deadline < wake) wake = s->deadline;
        if (s->killed || s->done) wake = now + 100 < wake ? now + 100 : wake;
      }
      /* An unattached set's pipes wait: nothing reads them until a request comes. */
      if (!s->attached || s->answered || n + 5 > MAX_POLL) continue;
      for (int i = 0; i < 4; i++)
        if (s->fds[i] >= 0) pf[n] = (struct pollfd){s->fds[i], POLLIN, 0}, who[n] = s, what[n++] = i;
      if (s->job_w >= 0) pf[n] = (struct pollfd){s->job_w, POLLOUT, 0}, who[n] = s, what[n++] = 4;
    }
    int timeout = (int)(wake - now) + 1;
    if (timeout < 0) timeout = 0;
    int pr = poll(pf, (nfds_t)n, timeout);
    if (pr < 0 && errno != EINTR) break;
    for (int i = 0; pr > 0 && i < n; i++) {
      if (!pf[i].revents) continue;
      if (what[i] == -1) {
        if (read_requests(&in) < 0) input_open = 0;
      } else if (what[i] == -2 || what[i] == -3) {
        int k = (int)((struct slot *)who[i] - slots);
        /* A zygote's end shows on its socket and its pidfd at once: once one of them
         * replaced it, the other is news of the old zygote, not the new one. */
        if (slots[k].state == SLOT_DEAD || slots[k].gen != gen[i]) continue;
        if (what[i] == -2) slot_message(k);
        else end_slot(k, "the warm jail's zygote died", slots[k].state != SLOT_STARTING);
      } else {
        struct set *s = who[i];
        if (what[i] == 4) write_input(s);
        else if (s->fds[what[i]] >= 0 && what[i] < 3) read_output(s, what[i]);
        else if (s->fds[what[i]] >= 0) read_status(s);
      }
    }
    dispatch();
    /* Answered once both processes ended and their output is in; given up on
     * 3 s after a kill whose end never came. Freed once the init is reaped. */
    now = now_ms();
    for (struct set **q = &sets; *q;) {
      struct set *s = *q;
      if (s->attached && !s->answered) {
        int output_open = s->fds[0] >= 0 || s->fds[1] >= 0 || s->fds[2] >= 0;
        int ended = (s->res.ran && s->res.judge_ran) || s->done;
        if (ended && (!output_open || (s->done && now - s->done_time > 3000))) answer(s);
        else if (s->killed && now - s->kill_time > 3000 && s->done) answer(s);
      }
      /* A kill the zygote never confirms: the slot is wedged; start it again. */
      if (s->killed && !s->done && now - s->kill_time > 5000 && s->slot >= 0)
        end_slot(s->slot, "the warm jail's zygote did not reap a killed job", 1);
      if (s->done && (s->answered || !s->attached)) {
        *q = s->next;
        free_set(s);
      } else {
        q = &s->next;
      }
    }
  }
  /* qcode is gone or told us to stop: nothing of ours outlives this. */
  for (struct set *s = sets; s; s = s->next) kill_set(s);
  for (int k = 0; k < cfg.slots; k++) {
    if (slots[k].pid <= 0) continue;
    if (slots[k].pidfd >= 0) syscall(SYS_pidfd_send_signal, slots[k].pidfd, SIGKILL, NULL, 0);
    else kill(slots[k].pid, SIGKILL);
    waitpid(slots[k].pid, NULL, 0);
  }
  for (struct set *s = sets; s; s = s->next) cgroup_leave(s->cgroup);
  return 0;
}
