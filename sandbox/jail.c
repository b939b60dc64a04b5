/*
 * qcode-jail: runs one untrusted command (python3 + the qcode harness) so that
 * it can harm nothing. See sandbox/README.md for the threat model.
 *
 *   qcode-jail [options] -- /usr/bin/python3 -I -S -c HARNESS
 *
 * Process tree (namespace mode):
 *   launcher (host)                -- enforces wall clock, relays + caps output
 *     └─ init  (PID 1 of a new user/mount/pid/net/ipc/uts namespace)
 *          └─ python (uid nobody, rlimits, seccomp, no fds but 0-3)
 * Killing init tears down the whole PID namespace, so a timeout or a
 * cancelled launcher (init has PDEATHSIG=SIGKILL) leaves nothing behind.
 *
 * Degraded mode (no user namespaces, or --no-userns): same tree without
 * namespaces; python runs as nobody (when we are root) in its own session
 * with seccomp + rlimits, in a fresh 0700 directory under /tmp.
 *
 * File descriptors given to the jailed command: 0 = launcher's stdin (the
 * job), 1/2 = capped relays of the launcher's 1/2, 3 = the result channel
 * (relayed to the launcher's fd 3 when open). The launcher's final status is
 * one JSON line on --status-fd (default 4; stderr when that is not open).
 *
 *   qcode-jail --tied-to-parent -- COMMAND ARGS...
 *
 * A second, unrelated job: run COMMAND (not jailed) so that it is killed
 * when our parent dies. qcode starts llama-server this way, so a crashed or
 * SIGKILLed qcode does not leave a 1 GB server behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/mount.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define NOBODY 65534
/* Host uid that "root inside the namespace" maps to during setup. It owns no
 * host files, so even a setup bug cannot write anything as a real user. */
#define SETUP_HOST_UID 100000

enum { EXIT_USAGE = 2, EXIT_SETUP = 125 };

struct opts {
  double wall;       /* seconds, enforced here */
  long cpu;          /* RLIMIT_CPU seconds */
  long mem;          /* RLIMIT_AS bytes */
  long fsize;        /* RLIMIT_FSIZE bytes */
  long nproc;        /* RLIMIT_NPROC */
  long nofile;       /* RLIMIT_NOFILE */
  long out;          /* bytes of stdout and of stderr passed on */
  long tmpfs;        /* size of the /tmp work dir (namespace mode) */
  int no_userns;
  int status_fd;
  const char *hide[16]; /* extra private directories (--hide), e.g. the caller's repository */
  int nhide;
  char **argv;
};

/* init -> launcher messages. */
enum { MSG_SETUP_OK = 1, MSG_SETUP_ERR, MSG_EXEC_ERR, MSG_CHILD_STATUS };
struct msg {
  int kind;
  int value;
  char text[240];
};

static volatile sig_atomic_t g_init_pid = 0;
static volatile sig_atomic_t g_ns = 0;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void send_msg(int fd, int kind, int value, const char *fmt, ...) {
  struct msg m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.value = value;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m.text, sizeof m.text, fmt, ap);
    va_end(ap);
  }
  ssize_t r;
  do r = write(fd, &m, sizeof m); while (r < 0 && errno == EINTR);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void usage(void) {
  fprintf(stderr,
          "usage: qcode-jail [--wall S] [--cpu S] [--mem BYTES] [--fsize BYTES] [--nproc N]\n"
          "                  [--nofile N] [--out BYTES] [--tmpfs BYTES] [--status-fd N] [--no-userns]\n"
          "                  [--hide DIR]... -- COMMAND [ARGS...]\n");
}

static int parse(int argc, char **argv, struct opts *o) {
  *o = (struct opts){.wall = 10, .cpu = 5, .mem = 1L << 30, .fsize = 16L << 20, .nproc = 64,
                     .nofile = 64, .out = 64L << 10, .tmpfs = 64L << 20, .status_fd = 4};
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { i++; break; }
    if (strcmp(a, "--no-userns") == 0) { o->no_userns = 1; continue; }
    if (i + 1 >= argc) return -1;
    char *end = NULL;
    const char *v = argv[++i];
    errno = 0;
    if (strcmp(a, "--hide") == 0) {
      /* Absolute, not the root: hiding "/" or a relative path would hide the
       * interpreter itself or depend on the caller's working directory. */
      if (v[0] != '/' || v[1] == '\0' || o->nhide >= (int)(sizeof o->hide / sizeof *o->hide)) return -1;
      o->hide[o->nhide++] = v;
      continue;
    }
    if (strcmp(a, "--wall") == 0) o->wall = strtod(v, &end);
    else {
      long x = strtol(v, &end, 10);
      if (strcmp(a, "--cpu") == 0) o->cpu = x;
      else if (strcmp(a, "--mem") == 0) o->mem = x;
      else if (strcmp(a, "--fsize") == 0) o->fsize = x;
      else if (strcmp(a, "--nproc") == 0) o->nproc = x;
      else if (strcmp(a, "--nofile") == 0) o->nofile = x;
      else if (strcmp(a, "--out") == 0) o->out = x;
      else if (strcmp(a, "--tmpfs") == 0) o->tmpfs = x;
      else if (strcmp(a, "--status-fd") == 0) o->status_fd = (int)x;
      else return -1;
    }
    if (errno || !end || *end) return -1;
  }
  if (i >= argc || o->wall <= 0 || o->cpu <= 0 || o->mem <= 0 || o->nproc <= 0 || o->nofile < 8) return -1;
  o->argv = &argv[i];
  return 0;
}

/* ---- seccomp --------------------------------------------------------------------- */

/* Default allow with an EPERM denylist: Python needs a large, version-dependent
 * set of syscalls, while the dangerous ones are few and stable. Denied calls
 * fail with EPERM (not a kill) so the program sees a PermissionError and the
 * harness can still report every assert. */
static int install_seccomp(pid_t self) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return -1;
  static const char *deny[] = {
      "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
      "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
      "pidfd_open", "pidfd_send_signal",
      "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "mount_setattr",
      "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
      "fork", "vfork", "setsid", "setpgid",
      "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
      "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
      "io_uring_register", "keyctl", "add_key", "request_key", "swapon", "swapoff",
      "reboot", "acct", "quotactl", "open_by_handle_at", "name_to_handle_at",
      "fanotify_init", "sethostname", "setdomainname", "settimeofday", "clock_settime",
      "clock_adjtime", "adjtimex", "syslog", "vhangup", "iopl", "ioperm", "tkill",
      "msgget", "semget", "shmget", "mq_open", "lookup_dcookie", "uselib",
      "landlock_create_ruleset", "personality",
  };
  int rc = 0;
  for (size_t i = 0; i < sizeof deny / sizeof *deny && rc == 0; i++) {
    int nr = seccomp_syscall_resolve_name(deny[i]);
    if (nr == __NR_SCMP_ERROR) continue; /* not on this arch */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
  }
  /* Threads yes, processes no: clone without CLONE_THREAD is a fork. */
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
  /* clone3 passes flags in memory seccomp cannot read; ENOSYS makes glibc
   * fall back to clone, which the rule above inspects. */
  if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  /* Signals only to itself (and its threads): never to the launcher, init,
   * or, in degraded mode, another jail running as nobody. */
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(kill), 1,
                          SCMP_A0(SCMP_CMP_NE, (scmp_datum_t)self));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(tgkill), 1,
                          SCMP_A0(SCMP_CMP_NE, (scmp_datum_t)self));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(rt_sigqueueinfo), 1,
                          SCMP_A0(SCMP_CMP_NE, (scmp_datum_t)self));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(rt_tgsigqueueinfo), 1,
                          SCMP_A0(SCMP_CMP_NE, (scmp_datum_t)self));
  /* Terminal injection, should any tty ever be reachable. */
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI));
  if (rc == 0)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX));
  if (rc == 0) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  return rc;
}

/* ---- the jailed command ---------------------------------------------------------- */

static void set_limit(int res, rlim_t soft, rlim_t hard) {
  struct rlimit rl = {soft, hard};
  setrlimit(res, &rl);
}

static char g_workdir[64];

__attribute__((noreturn)) static void exec_child(const struct opts *o, int ns, int out_w, int err_w,
                                                 int res_w, int st_w, pid_t init_pid) {
  if (dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0 || dup2(res_w, 3) < 0) {
    send_msg(st_w, MSG_EXEC_ERR, errno, "dup2: %s", strerror(errno));
    _exit(127);
  }
  const char *dir = ns ? "/tmp" : g_workdir;
  if (chdir(dir) < 0) {
    send_msg(st_w, MSG_EXEC_ERR, errno, "chdir %s: %s", dir, strerror(errno));
    _exit(127);
  }
  if (ns || geteuid() == 0) {
    if (!ns && setgroups(0, NULL) < 0) goto fail_cred;
    if (setresgid(NOBODY, NOBODY, NOBODY) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0) goto fail_cred;
  }
  /* Credential changes clear PDEATHSIG, so set it afterwards. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != init_pid && !ns) _exit(137);

  set_limit(RLIMIT_CPU, (rlim_t)o->cpu, (rlim_t)o->cpu + 1);
  set_limit(RLIMIT_AS, (rlim_t)o->mem, (rlim_t)o->mem);
  set_limit(RLIMIT_FSIZE, (rlim_t)o->fsize, (rlim_t)o->fsize);
  set_limit(RLIMIT_NPROC, (rlim_t)o->nproc, (rlim_t)o->nproc);
  set_limit(RLIMIT_NOFILE, (rlim_t)o->nofile, (rlim_t)o->nofile);
  set_limit(RLIMIT_CORE, 0, 0);
  set_limit(RLIMIT_MSGQUEUE, 0, 0);
  set_limit(RLIMIT_MEMLOCK, 0, 0);

  /* A blocked or ignored SIGXCPU inherited from the caller would defeat the
   * CPU limit; the caller is a test runner or a daemon we do not control. */
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);

  /* Keep 0-3; everything else (incl. the status pipe) vanishes at exec. */
  if (syscall(SYS_close_range, 4U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    for (int fd = 4; fd < 4096; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || install_seccomp(getpid()) != 0) {
    send_msg(st_w, MSG_EXEC_ERR, errno, "seccomp: %s", strerror(errno));
    _exit(127);
  }
  char home[96];
  snprintf(home, sizeof home, "HOME=%s", dir);
  char tmpdir[96];
  snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", dir);
  char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", home, tmpdir, "LANG=C.UTF-8",
                 "PYTHONIOENCODING=utf-8", "PYTHONDONTWRITEBYTECODE=1", NULL};
  execve(o->argv[0], o->argv, env);
  send_msg(st_w, MSG_EXEC_ERR, errno, "exec %s: %s", o->argv[0], strerror(errno));
  _exit(127);
fail_cred:
  send_msg(st_w, MSG_EXEC_ERR, errno, "drop privileges: %s", strerror(errno));
  _exit(127);
}

/* ---- init ------------------------------------------------------------------------ */

static int hide(const char *path) {
  struct stat st;
  if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) return 0;
  return mount("none", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555");
}

/* The view of the filesystem: everything read-only and nosuid, private places
 * (homes, the repositories, the daemon's runtime and state) replaced by empty
 * read-only tmpfs, a fresh writable tmpfs at /tmp as the throwaway work dir,
 * and a /proc that shows only this PID namespace. */
static int setup_fs(const struct opts *o, char *err, size_t errlen) {
#define FAIL(what) do { snprintf(err, errlen, "%s: %s", what, strerror(errno)); return -1; } while (0)
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) FAIL("make / private");
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID};
  if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr) < 0)
    FAIL("mount_setattr read-only");
  static const char *hidden[] = {"/root", "/home", "/work", "/srv", "/var/lib", "/var/tmp",
                                 "/var/cache", "/var/log", "/run", "/dev/shm", "/mnt", "/media",
                                 "/opt", "/sys", "/boot", "/lost+found"};
  for (size_t i = 0; i < sizeof hidden / sizeof *hidden; i++)
    if (hide(hidden[i]) < 0) {
      snprintf(err, errlen, "hide %s: %s", hidden[i], strerror(errno));
      return -1;
    }
  /* A directory inside one hidden above no longer exists here, so hide() skips it. */
  for (int i = 0; i < o->nhide; i++)
    if (hide(o->hide[i]) < 0) {
      snprintf(err, errlen, "hide %s: %s", o->hide[i], strerror(errno));
      return -1;
    }
  char data[64];
  snprintf(data, sizeof data, "size=%ld,mode=1777,nr_inodes=4096", o->tmpfs);
  if (mount("none", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, data) < 0) FAIL("tmpfs /tmp");
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") < 0 &&
      mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
    /* Some container runtimes mask /proc so a new proc mount is refused;
     * then hide the host's /proc rather than show it. */
    if (hide("/proc") < 0) FAIL("mount /proc");
  }
  return 0;
#undef FAIL
}

__attribute__((noreturn)) static void init_main(const struct opts *o, int ns, int pipes[5][2]) {
  /* pipes: 0 out, 1 err, 2 res, 3 status (init->launcher), 4 go (launcher->init) */
  int out_w = pipes[0][1], err_w = pipes[1][1], res_w = pipes[2][1], st_w = pipes[3][1], go_r = pipes[4][0];
  close(pipes[0][0]); close(pipes[1][0]); close(pipes[2][0]); close(pipes[3][0]); close(pipes[4][1]);
  char go;
  ssize_t r;
  do r = read(go_r, &go, 1); while (r < 0 && errno == EINTR);
  if (r != 1) _exit(EXIT_SETUP); /* the launcher died or gave up */
  close(go_r);
  char err[200] = "";
  if (ns) {
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
      send_msg(st_w, MSG_SETUP_ERR, errno, "become root in the user namespace: %s", strerror(errno));
      _exit(EXIT_SETUP);
    }
    if (setup_fs(o, err, sizeof err) < 0) {
      send_msg(st_w, MSG_SETUP_ERR, 0, "%s", err);
      _exit(EXIT_SETUP);
    }
    sethostname("jail", 4);
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (!ns && getppid() == 1) _exit(EXIT_SETUP);
  setsid(); /* no controlling terminal; in degraded mode, a process group to kill */
  send_msg(st_w, MSG_SETUP_OK, ns, NULL);

  pid_t me = getpid();
  pid_t child = fork();
  if (child < 0) {
    send_msg(st_w, MSG_SETUP_ERR, errno, "fork: %s", strerror(errno));
    _exit(EXIT_SETUP);
  }
  if (child == 0) exec_child(o, ns, out_w, err_w, res_w, st_w, me);
  close(out_w); close(err_w); close(res_w);
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) { dup2(devnull, 0); dup2(devnull, 1); dup2(devnull, 2); close(devnull); }
  for (;;) {
    int status;
    pid_t p = waitpid(-1, &status, 0);
    if (p < 0 && errno == EINTR) continue;
    if (p < 0) _exit(0);
    if (p == child) {
      send_msg(st_w, MSG_CHILD_STATUS, status, NULL);
      _exit(0); /* as PID 1 this takes any stragglers with it */
    }
  }
}

/* ---- launcher -------------------------------------------------------------------- */

static void on_term(int sig) {
  (void)sig;
  pid_t p = g_init_pid;
  if (p > 0) {
    if (!g_ns) kill(-p, SIGKILL);
    kill(p, SIGKILL);
  }
  _exit(143);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb; (void)flag; (void)ftw;
  remove(path);
  return 0;
}

static int write_map(pid_t pid, const char *file, const char *text) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = write_all(fd, text, strlen(text));
  close(fd);
  return rc;
}

struct result {
  int ran, exit_code, signal, timed_out, flood, out_trunc, err_trunc, res_trunc;
  double wall_ms, cpu_ms;
  long max_rss_kb;
  char setup_error[240];
  char exec_error[240];
};

static void kill_tree(pid_t init, int ns) {
  if (!ns) kill(-init, SIGKILL);
  kill(init, SIGKILL);
}

/* Runs the jail once. Returns 1 when namespace setup failed and the caller
 * should retry in degraded mode (reason in *why). */
static int run(const struct opts *o, int ns, struct result *res, char *why, size_t whylen) {
  int pipes[5][2];
  for (int i = 0; i < 5; i++)
    if (pipe2(pipes[i], O_CLOEXEC) < 0) {
      snprintf(res->setup_error, sizeof res->setup_error, "pipe: %s", strerror(errno));
      return -1;
    }
  /* init and python inherit the write ends through fork, not exec: clear
   * O_CLOEXEC only where exec_child dup2s them anyway. */
  double t0 = now_ms();
  pid_t pid;
  if (ns) {
    pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                                        CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | SIGCHLD,
                         NULL, NULL, NULL, 0);
    if (pid < 0) {
      snprintf(why, whylen, "user namespaces unavailable: clone: %s", strerror(errno));
      for (int i = 0; i < 5; i++) { close(pipes[i][0]); close(pipes[i][1]); }
      return 1;
    }
  } else {
    pid = fork();
    if (pid < 0) {
      snprintf(res->setup_error, sizeof res->setup_error, "fork: %s", strerror(errno));
      return -1;
    }
  }
  if (pid == 0) init_main(o, ns, pipes);
  g_init_pid = pid;
  g_ns = ns;
  int out_r = pipes[0][0], err_r = pipes[1][0], res_r = pipes[2][0], st_r = pipes[3][0], go_w = pipes[4][1];
  close(pipes[0][1]); close(pipes[1][1]); close(pipes[2][1]); close(pipes[3][1]); close(pipes[4][0]);
  close(0); /* the job belongs to the jail */

  if (ns) {
    char map[64];
    snprintf(map, sizeof map, "0 %d 1\n%d %d 1\n", SETUP_HOST_UID, NOBODY, NOBODY);
    if (write_map(pid, "setgroups", "deny") < 0 || write_map(pid, "uid_map", map) < 0 ||
        write_map(pid, "gid_map", map) < 0) {
      snprintf(why, whylen, "user namespaces unusable: uid_map: %s", strerror(errno));
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      close(out_r); close(err_r); close(res_r); close(st_r); close(go_w);
      return 1;
    }
  }
  write_all(go_w, "g", 1);
  close(go_w);

  int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  int dest[3] = {1, 2, 3};
  long cap[3] = {o->out, o->out, 1L << 20};
  long sent[3] = {0, 0, 0}, seen[3] = {0, 0, 0};
  int *trunc[3] = {&res->out_trunc, &res->err_trunc, &res->res_trunc};
  int fds[3] = {out_r, err_r, res_r};
  for (int i = 0; i < 3; i++)
    if (fcntl(dest[i], F_GETFD) < 0) dest[i] = -1;
  long flood_limit = o->out * 256 > (16L << 20) ? o->out * 256 : (16L << 20);
  double deadline = t0 + o->wall * 1e3;
  int reaped = 0, status = 0, killed = 0;
  double kill_time = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  static char buf[65536];

  while (!reaped || fds[0] >= 0 || fds[1] >= 0 || fds[2] >= 0 || st_r >= 0) {
    double now = now_ms();
    if (!killed && now >= deadline) {
      res->timed_out = 1;
      kill_tree(pid, ns);
      killed = 1;
      kill_time = now;
    }
    /* Once init is gone nothing can hold the pipes open for long; a hard
     * stop keeps a wedged writer from hanging the launcher. */
    if (killed && now - kill_time > 3000) break;
    struct pollfd pf[5];
    int n = 0, which[5];
    for (int i = 0; i < 3; i++)
      if (fds[i] >= 0) { pf[n] = (struct pollfd){fds[i], POLLIN, 0}; which[n++] = i; }
    if (st_r >= 0) { pf[n] = (struct pollfd){st_r, POLLIN, 0}; which[n++] = 3; }
    if (!reaped && pidfd >= 0) { pf[n] = (struct pollfd){pidfd, POLLIN, 0}; which[n++] = 4; }
    int timeout = killed ? 100 : (int)(deadline - now) + 1;
    if (pidfd < 0 && !reaped && timeout > 50) timeout = 50;
    int pr = poll(pf, (nfds_t)n, timeout);
    if (pr < 0 && errno != EINTR) break;
    for (int k = 0; pr > 0 && k < n; k++) {
      if (!pf[k].revents) continue;
      int i = which[k];
      if (i < 3) {
        ssize_t got = read(fds[i], buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) { close(fds[i]); fds[i] = -1; continue; }
        seen[i] += got;
        long room = cap[i] - sent[i];
        long take = got < room ? got : (room > 0 ? room : 0);
        if (take > 0 && dest[i] >= 0 && write_all(dest[i], buf, (size_t)take) < 0) dest[i] = -1;
        sent[i] += take;
        if (take < got) *trunc[i] = 1;
        if (!killed && (seen[0] + seen[1] > flood_limit || seen[2] > 4 * cap[2])) {
          res->flood = 1;
          kill_tree(pid, ns);
          killed = 1;
          kill_time = now_ms();
        }
      } else if (i == 3) {
        struct msg m;
        ssize_t got = read(st_r, &m, sizeof m);
        if (got < 0 && errno == EINTR) continue;
        if (got != (ssize_t)sizeof m) { close(st_r); st_r = -1; continue; }
        if (m.kind == MSG_SETUP_ERR) snprintf(res->setup_error, sizeof res->setup_error, "%s", m.text);
        else if (m.kind == MSG_EXEC_ERR) snprintf(res->exec_error, sizeof res->exec_error, "%s", m.text);
        else if (m.kind == MSG_CHILD_STATUS) {
          res->ran = 1;
          if (WIFEXITED(m.value)) res->exit_code = WEXITSTATUS(m.value);
          else if (WIFSIGNALED(m.value)) res->signal = WTERMSIG(m.value);
        }
      }
    }
    if (!reaped) {
      int st;
      pid_t w = wait4(pid, &st, WNOHANG, &ru);
      if (w == pid) {
        reaped = 1;
        status = st;
        res->wall_ms = now_ms() - t0;
        if (!killed && !ns) kill(-pid, SIGKILL); /* degraded: anything left in the group */
      }
    }
  }
  if (!reaped) {
    kill_tree(pid, ns);
    wait4(pid, &status, 0, &ru);
    res->wall_ms = now_ms() - t0;
  }
  (void)status;
  g_init_pid = 0;
  for (int i = 0; i < 3; i++) if (fds[i] >= 0) close(fds[i]);
  if (st_r >= 0) close(st_r);
  if (pidfd >= 0) close(pidfd);
  res->cpu_ms = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 +
                ru.ru_stime.tv_usec / 1e3;
  res->max_rss_kb = ru.ru_maxrss;
  if (ns && !res->ran && res->setup_error[0] && !res->timed_out) {
    snprintf(why, whylen, "namespace setup failed: %s", res->setup_error);
    return 1;
  }
  /* A killed init never reports; the signal is then ours (SIGKILL). */
  if (!res->ran && (res->timed_out || res->flood)) res->signal = SIGKILL;
  return 0;
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/* --tied-to-parent: run COMMAND as our child and kill it when our parent
 * dies. PDEATHSIG alone would not do: it fires when the parent *thread* that
 * spawned us exits, and qcode spawns from pool threads that come and go. So
 * this process watches getppid() (it changes only when the parent process is
 * gone), and the child gets PDEATHSIG against this single-threaded watcher,
 * so killing the watcher (even by SIGKILL) takes the child with it. */
static volatile sig_atomic_t tied_child = 0;
static void forward_signal(int sig) {
  if (tied_child > 0) kill(tied_child, sig);
}

static int exec_tied_to_parent(int argc, char **argv) {
  if (argc < 4 || strcmp(argv[2], "--") != 0) {
    fprintf(stderr, "usage: qcode-jail --tied-to-parent -- COMMAND [ARGS...]\n");
    return EXIT_USAGE;
  }
  pid_t parent = getppid();
  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "qcode-jail: fork: %s\n", strerror(errno));
    return 127;
  }
  if (child == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() == 1) _exit(127);
    /* An ignored SIGTERM survives exec (qcode ignores it while its own
     * handler runs): restore defaults so the server's graceful stop works. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    execv(argv[3], &argv[3]);
    fprintf(stderr, "qcode-jail: exec %s: %s\n", argv[3], strerror(errno));
    _exit(127);
  }
  tied_child = child;
  signal(SIGTERM, forward_signal);
  signal(SIGINT, forward_signal);
  signal(SIGHUP, forward_signal);
  for (;;) {
    int status;
    pid_t r = waitpid(child, &status, WNOHANG);
    if (r == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (getppid() != parent) {
      kill(child, SIGTERM);
      for (int i = 0; i < 30 && waitpid(child, &status, WNOHANG) == 0; i++) usleep(100000);
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      return 1;
    }
    usleep(200000);
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--tied-to-parent") == 0) return exec_tied_to_parent(argc, argv);
  struct opts o;
  if (parse(argc, argv, &o) < 0) {
    usage();
    return EXIT_USAGE;
  }
  /* Fds leaked by a multithreaded caller would keep its pipes open past our
   * exit (and reach the jail): keep only 0-3 and the status fd. */
  for (int fd = 4; fd < o.status_fd; fd++) close(fd);
  syscall(SYS_close_range, (unsigned)(o.status_fd > 3 ? o.status_fd + 1 : 4), ~0U, 0);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGHUP, on_term);

  struct result res;
  memset(&res, 0, sizeof res);
  char why[300] = "";
  int ns = !o.no_userns;
  if (o.no_userns) snprintf(why, sizeof why, "forced by --no-userns");
  int rc = -1;
  if (ns) {
    rc = run(&o, 1, &res, why, sizeof why);
    if (rc == 1) {
      ns = 0;
      memset(&res, 0, sizeof res);
    }
  }
  if (!ns) {
    snprintf(g_workdir, sizeof g_workdir, "/tmp/qcode-jail-XXXXXX");
    if (!mkdtemp(g_workdir)) {
      fprintf(stderr, "qcode-jail: mkdtemp: %s\n", strerror(errno));
      return EXIT_SETUP;
    }
    if (geteuid() == 0 && chown(g_workdir, NOBODY, NOBODY) < 0) {
      fprintf(stderr, "qcode-jail: chown work dir: %s\n", strerror(errno));
      return EXIT_SETUP;
    }
    rc = run(&o, 0, &res, why, sizeof why);
    nftw(g_workdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  }

  FILE *sf = NULL;
  if (fcntl(o.status_fd, F_GETFD) >= 0) sf = fdopen(o.status_fd, "w");
  if (!sf) sf = stderr;
  fprintf(sf, "{\"isolation\":\"%s\",\"ran\":%s,\"exit_code\":%d,\"signal\":%d,\"timed_out\":%s,"
              "\"output_flood\":%s,\"stdout_truncated\":%s,\"stderr_truncated\":%s,"
              "\"results_truncated\":%s,\"wall_ms\":%.3f,\"cpu_ms\":%.3f,\"max_rss_kb\":%ld,",
          ns ? "namespaces" : "degraded", res.ran ? "true" : "false", res.exit_code, res.signal,
          res.timed_out ? "true" : "false", res.flood ? "true" : "false",
          res.out_trunc ? "true" : "false", res.err_trunc ? "true" : "false",
          res.res_trunc ? "true" : "false", res.wall_ms, res.cpu_ms, res.max_rss_kb);
  fputs("\"degraded_reason\":", sf);
  json_str(sf, ns ? "" : why);
  fputs(",\"setup_error\":", sf);
  json_str(sf, res.setup_error[0] ? res.setup_error : res.exec_error);
  fputs("}\n", sf);
  fflush(sf);
  return (res.setup_error[0] || res.exec_error[0]) ? EXIT_SETUP : 0;
}
