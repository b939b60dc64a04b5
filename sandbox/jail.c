/*
 * qcode-jail: runs one untrusted command (python3 + the qcode harness) so that
 * it can harm nothing, and, with --judge, a trusted judge beside it that alone
 * decides the verdict. See sandbox/README.md for the threat model.
 *
 *   qcode-jail [options] [--judge N JUDGE ARGS...] -- PROGRAM ARGS...
 *
 * Process tree (namespace mode):
 *   launcher (host)                -- wall clock, output caps, memory cgroup
 *     └─ init  (PID 1 of new user/mount/pid/net/ipc/uts/cgroup namespaces,
 *          │    root = a read-only tmpfs holding only what Python needs)
 *          ├─ program (uid nobody, rlimits, seccomp, fds 0-3)
 *          └─ judge   (its own uid, rlimits, seccomp, fds 0-5)
 * Killing init tears down the whole PID namespace, so a timeout or a
 * cancelled launcher (init has PDEATHSIG=SIGKILL) leaves nothing behind.
 *
 * Degraded mode (no user namespaces, or --no-userns): the same tree without
 * namespaces. As root, every concurrent run gets its own pair of host uids
 * (program, judge) from a slot; landlock, where the kernel has it, limits
 * the filesystem to the same allow-list the namespace root holds.
 *
 * File descriptors. Without --judge, the command gets 0 = the launcher's
 * stdin (the job), 1/2 = capped relays of the launcher's 1/2, 3 = the
 * result channel (relayed to the launcher's fd 3). With --judge, the judge
 * gets 0 = the job, 1/2 = the relays, 3 = the result channel, 4/5 = requests
 * to / replies from the program; the program gets 0 = requests, 1/2 = the
 * relays, 3 = replies: it never sees the job or the result channel. The
 * launcher's final status is one JSON line on --status-fd (default 4;
 * stderr when that is not open).
 *
 *   qcode-jail --serve --slots N --libpython PATH --python PATH --pyversion V [--ro DIR]...
 *
 * The warm pool (pool.c): jails set up once, a fresh program and judge forked
 * per job from an interpreter that already loaded the harness.
 *
 *   qcode-jail --tied-to-parent -- COMMAND ARGS...
 *
 * A second, unrelated job: run COMMAND (not jailed) so that it is killed
 * when our parent dies. qcode starts llama-server this way, so a crashed or
 * SIGKILLed qcode does not leave a 1 GB server behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef F_SETSIG
#define F_SETSIG 10
#endif
#ifndef F_SETOWN_EX
#define F_SETOWN_EX 15
#endif
#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#endif
#ifndef FIOSETOWN
#define FIOSETOWN 0x8901
#endif
#ifndef SIOCSPGRP
#define SIOCSPGRP 0x8902
#endif

#include "jail.h"

static volatile sig_atomic_t g_init_pid = 0;
static volatile sig_atomic_t g_ns = 0;
static volatile sig_atomic_t g_terminated = 0;

double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void send_msg(int fd, int kind, int value, double cpu_ms, const char *fmt, ...) {
  struct msg m;
  memset(&m, 0, sizeof m);
  m.kind = kind;
  m.value = value;
  m.cpu_ms = cpu_ms;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m.text, sizeof m.text, fmt, ap);
    va_end(ap);
  }
  ssize_t r;
  do r = write(fd, &m, sizeof m); while (r < 0 && errno == EINTR);
}

int write_all(int fd, const char *p, size_t n) {
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

int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = write_all(fd, text, strlen(text));
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

static void usage(void) {
  fprintf(stderr,
          "usage: qcode-jail [--wall S] [--cpu S] [--mem BYTES] [--fsize BYTES] [--nproc N]\n"
          "                  [--nofile N] [--out BYTES] [--tmpfs BYTES] [--status-fd N] [--no-userns]\n"
          "                  [--ro DIR]... [--cgroup DIR] [--judge N JUDGE ARGS...] -- COMMAND [ARGS...]\n"
          "Limits must be finite numbers in range: wall (0, 86400] s, cpu 1-86400 s, mem 32 MiB-1 TiB,\n"
          "fsize 0-1 TiB, nproc 1-65536, nofile 8-65536, out 0-1 GiB, tmpfs 1 MiB-1 TiB, status-fd 1-1023 (not 3).\n");
}

/* Whole decimal number in [lo, hi]: "nan", "1e9", "12abc" and overflow are refused,
 * so no flag can quietly disable a limit. */
int parse_long(const char *v, long lo, long hi, long *out) {
  char *end = NULL;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || end == v || *end || x < lo || x > hi) return -1;
  *out = x;
  return 0;
}

static int parse(int argc, char **argv, struct opts *o) {
  *o = (struct opts){.wall = 10, .cpu = 5, .mem = 1L << 30, .fsize = 16L << 20, .nproc = 64,
                     .nofile = 64, .out = 64L << 10, .tmpfs = 64L << 20, .status_fd = 4};
  const long TiB = 1L << 40;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { i++; break; }
    if (strcmp(a, "--no-userns") == 0) { o->no_userns = 1; continue; }
    if (i + 1 >= argc) return -1;
    const char *v = argv[++i];
    long x = 0;
    if (strcmp(a, "--hide") == 0) {
      /* Accepted for old callers; the allow-listed root shows nothing it does not name. */
      if (v[0] != '/') return -1;
    } else if (strcmp(a, "--ro") == 0) {
      /* Absolute, not the root, no "..": it is bound at the same path inside. */
      if (v[0] != '/' || v[1] == '\0' || strstr(v, "/..") || strlen(v) > 200 ||
          o->nro >= (int)(sizeof o->ro / sizeof *o->ro))
        return -1;
      o->ro[o->nro++] = v;
    } else if (strcmp(a, "--cgroup") == 0) {
      if (v[0] != '/' || strlen(v) > 300) return -1;
      o->cgroup = v;
    } else if (strcmp(a, "--judge") == 0) {
      if (parse_long(v, 1, 64, &x) < 0 || i + x >= argc) return -1;
      o->judge_argv = calloc((size_t)x + 1, sizeof *o->judge_argv); /* NULL-terminated for execve */
      if (!o->judge_argv) return -1;
      memcpy(o->judge_argv, &argv[i + 1], (size_t)x * sizeof *o->judge_argv);
      i += (int)x;
    } else if (strcmp(a, "--wall") == 0) {
      char *end = NULL;
      errno = 0;
      double w = strtod(v, &end);
      if (errno || end == v || *end || !isfinite(w) || w <= 0 || w > 86400) return -1;
      o->wall = w;
    } else if (strcmp(a, "--cpu") == 0) { if (parse_long(v, 1, 86400, &o->cpu) < 0) return -1; }
    else if (strcmp(a, "--mem") == 0) { if (parse_long(v, 32L << 20, TiB, &o->mem) < 0) return -1; }
    else if (strcmp(a, "--fsize") == 0) { if (parse_long(v, 0, TiB, &o->fsize) < 0) return -1; }
    else if (strcmp(a, "--nproc") == 0) { if (parse_long(v, 1, 65536, &o->nproc) < 0) return -1; }
    else if (strcmp(a, "--nofile") == 0) { if (parse_long(v, 8, 65536, &o->nofile) < 0) return -1; }
    else if (strcmp(a, "--out") == 0) { if (parse_long(v, 0, 1L << 30, &o->out) < 0) return -1; }
    else if (strcmp(a, "--tmpfs") == 0) { if (parse_long(v, 1L << 20, TiB, &o->tmpfs) < 0) return -1; }
    else if (strcmp(a, "--status-fd") == 0) {
      if (parse_long(v, 1, 1023, &x) < 0 || x == 3) return -1;
      o->status_fd = (int)x;
    } else return -1;
  }
  if (i >= argc) return -1;
  o->argv = &argv[i];
  return 0;
}

/* ---- seccomp --------------------------------------------------------------------- */

/* Default allow with an EPERM denylist: Python needs a large, version-dependent
 * set of syscalls, while the dangerous ones are few and stable. Denied calls
 * fail with EPERM (not a kill) so the program sees a PermissionError and the
 * judge can still report every assert. Both the program and the judge get it. */
int install_seccomp(pid_t self, const struct ids *ids) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return -1;
  /* x32 or i386 syscalls dodge a filter written for x86_64: kill the whole
   * process, not only the calling thread, or the run hangs until the wall clock. */
  int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  static const char *deny[] = {
      "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
      "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd",
      "pidfd_open", "pidfd_send_signal",
      "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "mount_setattr",
      "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
      "fork", "vfork", "setsid", "setpgid",
      "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
      "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
      "io_uring_register", "keyctl", "add_key", "request_key", "swapon", "swapoff",
      "reboot", "acct", "quotactl", "quotactl_fd", "open_by_handle_at", "name_to_handle_at",
      "fanotify_init", "sethostname", "setdomainname", "settimeofday", "clock_settime",
      "clock_adjtime", "adjtimex", "syslog", "vhangup", "iopl", "ioperm", "tkill",
      "msgget", "semget", "shmget", "mq_open", "lookup_dcookie", "uselib",
      "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "personality",
      "memfd_secret", "migrate_pages", "move_pages", "get_robust_list", "setpriority",
      "ioprio_set",
  };
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
   * the judge, or, in degraded mode, another jail. */
  static const int self_only[] = {SCMP_SYS(kill), SCMP_SYS(tgkill), SCMP_SYS(rt_sigqueueinfo),
                                  SCMP_SYS(rt_tgsigqueueinfo)};
  for (size_t i = 0; i < sizeof self_only / sizeof *self_only && rc == 0; i++)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), self_only[i], 1, SCMP_A0(SCMP_CMP_NE, (scmp_datum_t)self));
  /* Calls that take a pid act on the caller only as pid 0 (what glibc and
   * Python pass): no changing another process's limits or scheduling. */
  static const int pid_arg[] = {SCMP_SYS(prlimit64), SCMP_SYS(sched_setaffinity), SCMP_SYS(sched_setscheduler),
                                SCMP_SYS(sched_setparam), SCMP_SYS(sched_setattr)};
  for (size_t i = 0; i < sizeof pid_arg / sizeof *pid_arg && rc == 0; i++)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), pid_arg[i], 1, SCMP_A0(SCMP_CMP_NE, 0));
  /* Signal delivery by proxy: an fd's owner gets SIGIO/SIGURG (or any signal
   * chosen with F_SETSIG), bypassing the kill rules above. */
  static const int owner_cmds[] = {F_SETOWN, F_SETOWN_EX, F_SETSIG};
  for (size_t i = 0; i < sizeof owner_cmds / sizeof *owner_cmds && rc == 0; i++)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(fcntl), 1,
                          SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)owner_cmds[i]));
  /* Terminal injection, should any tty ever be reachable, and the ioctl twins of F_SETOWN. */
  static const unsigned long bad_ioctls[] = {TIOCSTI, TIOCLINUX, FIOSETOWN, SIOCSPGRP, TIOCSPGRP};
  for (size_t i = 0; i < sizeof bad_ioctls / sizeof *bad_ioctls && rc == 0; i++)
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                          SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, bad_ioctls[i]));
  /* Without a memory cgroup, RLIMIT_AS is the memory fence, and memfd pages
   * (written, not mapped) and big pipe buffers live outside it. */
  if (!ids->memory_cgroup) {
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(memfd_create), 0);
    if (rc == 0)
      rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(fcntl), 1,
                            SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)F_SETPIPE_SZ));
  }
  if (rc == 0) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  return rc;
}

/* ---- landlock (degraded mode) ------------------------------------------------------ */

/* Declared here: Debian 12's headers predate the fields we use (scopes, ABI 6). */
struct ll_ruleset_attr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;
  uint64_t scoped;
};
struct ll_path_beneath {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));
enum {
  LL_EXECUTE = 1 << 0, LL_WRITE_FILE = 1 << 1, LL_READ_FILE = 1 << 2, LL_READ_DIR = 1 << 3,
  LL_ABI1_ALL = (1 << 13) - 1, LL_REFER = 1 << 13, LL_TRUNCATE = 1 << 14, LL_IOCTL_DEV = 1 << 15,
  LL_SCOPE_ABSTRACT_UNIX = 1 << 0, LL_SCOPE_SIGNAL = 1 << 1,
};
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

static int landlock_abi(void) {
  long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1U /* LANDLOCK_CREATE_RULESET_VERSION */);
  return abi < 0 ? 0 : (int)abi;
}

static void ll_allow(int rs, const char *path, uint64_t access, uint64_t handled) {
  int fd = open(path, O_PATH | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode)) access &= LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV;
  struct ll_path_beneath rule = {.allowed_access = access & handled, .parent_fd = fd};
  syscall(SYS_landlock_add_rule, rs, 1 /* LANDLOCK_RULE_PATH_BENEATH */, &rule, 0);
  close(fd);
}

/* The degraded-mode counterpart of the namespace root: read what Python needs,
 * write only the work dir and the harmless devices; and, being a landlock
 * domain, no ptrace-style access (/proc/PID/mem) to processes outside it even
 * under the same uid, and (ABI 6) no signals out of it. Returns the ABI in
 * force, 0 when the kernel has no landlock, -1 on error. */
static int apply_landlock(const struct opts *o, const char *workdir) {
  int abi = landlock_abi();
  if (abi < 1) return 0;
  uint64_t fs = LL_ABI1_ALL | (abi >= 2 ? LL_REFER : 0) | (abi >= 3 ? LL_TRUNCATE : 0) | (abi >= 5 ? LL_IOCTL_DEV : 0);
  struct ll_ruleset_attr attr = {.handled_access_fs = fs, .scoped = abi >= 6 ? LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL : 0};
  int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, abi >= 6 ? sizeof attr : sizeof attr.handled_access_fs, 0);
  if (rs < 0) return -1;
  const uint64_t ro = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR;
  static const char *system_dirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                                      "/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"};
  for (size_t i = 0; i < sizeof system_dirs / sizeof *system_dirs; i++) ll_allow(rs, system_dirs[i], ro, fs);
  for (int i = 0; i < o->nro; i++) ll_allow(rs, o->ro[i], ro, fs);
  static const char *devices[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
  for (size_t i = 0; i < sizeof devices / sizeof *devices; i++)
    ll_allow(rs, devices[i], LL_READ_FILE | LL_WRITE_FILE | LL_TRUNCATE, fs);
  if (workdir) ll_allow(rs, workdir, fs, fs);
  long r = syscall(SYS_landlock_restrict_self, rs, 0);
  close(rs);
  return r < 0 ? -1 : abi;
}

/* ---- memory cgroup (cgroup v2, where delegated) ------------------------------------ */

static char g_cgroup[400];

static int has_word(const char *path, const char *word) {
  char buf[512];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n"))
    if (strcmp(tok, word) == 0) return 1;
  return 0;
}

/* The cgroup2 mount point, from mountinfo ("... - cgroup2 ..."). */
static int cgroup2_mount(char *out, size_t len) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return -1;
  char line[1024];
  int found = -1;
  while (found < 0 && fgets(line, sizeof line, f)) {
    char *sep = strstr(line, " - cgroup2 ");
    if (!sep) continue;
    char *p = line;
    for (int field = 0; field < 4 && p; field++) p = strchr(p + 1, ' ');
    if (!p) continue;
    char *end = strchr(p + 1, ' ');
    if (!end || (size_t)(end - p - 1) >= len) continue;
    memcpy(out, p + 1, (size_t)(end - p - 1));
    out[end - p - 1] = '\0';
    found = 0;
  }
  fclose(f);
  return found;
}

/* Puts `pid` (init, before it runs anything) in a fresh cgroup `name` with
 * memory.max, under --cgroup DIR or, as root, under <cgroup2 root>/qcode-jail;
 * its path goes to `cg` ("" when none). Everything in the run then shares one
 * memory budget that memfd, tmpfs and pipe pages cannot escape. Any failure
 * just means no cgroup: the seccomp fallback takes over and the run goes on.
 * `name` starts with "run-<pid of its creator>", so a creator that was
 * SIGKILLed leaves cgroups the next one recognises and removes. */
int cgroup_enter(const struct opts *o, pid_t pid, const char *name, char *cg, size_t len) {
  char parent[320], path[400];
  cg[0] = '\0';
  if (o->cgroup) {
    snprintf(parent, sizeof parent, "%s", o->cgroup);
  } else {
    char root[256];
    if (geteuid() != 0 || cgroup2_mount(root, sizeof root) < 0) return 0;
    snprintf(path, sizeof path, "%s/cgroup.controllers", root);
    if (!has_word(path, "memory")) return 0; /* e.g. a hybrid host whose memory controller is on v1 */
    snprintf(path, sizeof path, "%s/cgroup.subtree_control", root);
    if (!has_word(path, "memory") && write_file(path, "+memory") < 0) return 0;
    snprintf(parent, sizeof parent, "%s/qcode-jail", root);
    if (mkdir(parent, 0755) < 0 && errno != EEXIST) return 0;
  }
  snprintf(path, sizeof path, "%s/cgroup.controllers", parent);
  if (!has_word(path, "memory")) return 0;
  snprintf(path, sizeof path, "%s/cgroup.subtree_control", parent);
  if (!has_word(path, "memory") && write_file(path, "+memory") < 0) return 0;
  /* Cgroups of launchers that were SIGKILLed: empty once their runs died, removable. */
  DIR *d = opendir(parent);
  for (struct dirent *e; d && (e = readdir(d));) {
    int other = 0;
    if (sscanf(e->d_name, "run-%d", &other) == 1 && other > 0 && kill(other, 0) < 0 && errno == ESRCH) {
      if (snprintf(path, sizeof path, "%s/%s", parent, e->d_name) < (int)sizeof path) rmdir(path);
    }
  }
  if (d) closedir(d);
  if (snprintf(cg, len, "%s/%s", parent, name) >= (int)len || mkdir(cg, 0755) < 0) {
    cg[0] = '\0';
    return 0;
  }
  /* The program's address space, its work dir, and room for the judge and init. */
  char value[64];
  snprintf(value, sizeof value, "%ld", o->mem + o->tmpfs + (128L << 20));
  snprintf(path, sizeof path, "%s/memory.max", cg);
  int ok = write_file(path, value) == 0;
  snprintf(path, sizeof path, "%s/memory.swap.max", cg);
  write_file(path, "0"); /* absent without swap accounting: fine */
  snprintf(value, sizeof value, "%d", (int)pid);
  snprintf(path, sizeof path, "%s/cgroup.procs", cg);
  if (!ok || write_file(path, value) < 0) {
    rmdir(cg);
    cg[0] = '\0';
    return 0;
  }
  return 1;
}

void cgroup_leave(char *cg) {
  if (!cg[0]) return;
  /* The last exits are reaped before we get here, but the kernel may lag a moment. */
  for (int i = 0; i < 100 && rmdir(cg) < 0 && errno == EBUSY; i++) usleep(2000);
  cg[0] = '\0';
}

/* ---- the jail's root (namespace mode) -------------------------------------------- */

#define ROOT "/tmp" /* where the new root is assembled: our private view of the host's /tmp */

static int mkdir_p(const char *path, mode_t mode) {
  char buf[256];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(buf, mode) < 0 && errno != EEXIST ? -1 : 0;
}

/* Read-only, nosuid, nodev bind of a host directory or file at the same path
 * under the new root. Missing sources are skipped: not every host has /lib32. */
static int bind_ro(const char *src, int recursive) {
  struct stat st;
  if (stat(src, &st) < 0) return 0;
  char dst[300];
  snprintf(dst, sizeof dst, ROOT "%s", src);
  if (S_ISDIR(st.st_mode)) {
    if (mkdir_p(dst, 0755) < 0) return -1;
  } else {
    char parent[300];
    snprintf(parent, sizeof parent, "%s", dst);
    *strrchr(parent, '/') = '\0';
    if (mkdir_p(parent, 0755) < 0) return -1;
    int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    close(fd);
  }
  if (mount(src, dst, NULL, MS_BIND | (recursive ? MS_REC : 0), NULL) < 0) return -1;
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
  return (int)syscall(SYS_mount_setattr, AT_FDCWD, dst, recursive ? AT_RECURSIVE : 0, &attr, sizeof attr);
}

/* /bin, /lib, ...: a symlink on merged-/usr systems (copied as a symlink), a
 * directory elsewhere (bound read-only). */
static int top_level(const char *name) {
  char src[64], dst[96], target[256];
  snprintf(src, sizeof src, "/%s", name);
  snprintf(dst, sizeof dst, ROOT "/%s", name);
  struct stat st;
  if (lstat(src, &st) < 0) return 0;
  if (S_ISLNK(st.st_mode)) {
    ssize_t n = readlink(src, target, sizeof target - 1);
    if (n < 0) return -1;
    target[n] = '\0';
    return symlink(target, dst);
  }
  return S_ISDIR(st.st_mode) ? bind_ro(src, 1) : 0;
}

static int put_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  int rc = write_all(fd, text, strlen(text));
  close(fd);
  return rc;
}

/* The root is an allow-list, not the host minus a deny-list: a tmpfs holding
 * read-only binds of /usr (and the /bin, /lib* links or dirs), the few /etc
 * files the loader and libc read, generated passwd/group/hosts, a /dev with
 * null, zero, full, random and urandom only, a fresh /proc for this PID
 * namespace and a writable tmpfs /tmp as the work dir. Whatever else the host
 * has (data folders, mounts, device nodes, whatever their names) does not exist here. */
int setup_fs(const struct opts *o, char *err, size_t errlen) {
#define FAIL(what) do { snprintf(err, errlen, "%s: %s", what, strerror(errno)); return -1; } while (0)
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) FAIL("make / private");
  if (mount("qcode-root", ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=512,mode=0755") < 0)
    FAIL("tmpfs for the root");
  static const char *dirs[] = {ROOT "/etc", ROOT "/dev", ROOT "/proc", ROOT "/tmp", ROOT "/.old"};
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
    if (mkdir(dirs[i], 0755) < 0) FAIL("mkdir in the root");
  if (bind_ro("/usr", 1) < 0) FAIL("bind /usr");
  static const char *tops[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};
  for (size_t i = 0; i < sizeof tops / sizeof *tops; i++)
    if (top_level(tops[i]) < 0) FAIL("bind /bin or /lib*");
  for (int i = 0; i < o->nro; i++) {
    struct stat st;
    char inside[300];
    /* Setup runs as an unprivileged host uid: a prefix under a 0700 directory (say
     * /root) cannot be reached, and a jail without its interpreter is no jail. */
    if (stat(o->ro[i], &st) < 0) {
      snprintf(err, errlen, "--ro %s: %s (the jail's setup uid cannot reach it; use an interpreter "
                            "under /usr or in a world-readable prefix)", o->ro[i], strerror(errno));
      return -1;
    }
    snprintf(inside, sizeof inside, ROOT "%s", o->ro[i]);
    if (lstat(inside, &st) == 0 && !S_ISDIR(st.st_mode)) continue; /* already reachable through a link */
    if (bind_ro(o->ro[i], 1) < 0) {
      snprintf(err, errlen, "bind --ro %s: %s", o->ro[i], strerror(errno));
      return -1;
    }
  }
  /* The dynamic loader's cache, the time zone, and alternatives (where a
   * python3 symlink may point through). Nothing else of the host's /etc. */
  if (bind_ro("/etc/ld.so.cache", 0) < 0 || bind_ro("/etc/alternatives", 1) < 0) FAIL("bind /etc");
  char zone[256];
  ssize_t zn = readlink("/etc/localtime", zone, sizeof zone - 1);
  if (zn > 0) {
    zone[zn] = '\0';
    if (symlink(zone, ROOT "/etc/localtime") < 0) FAIL("link /etc/localtime");
  } else if (bind_ro("/etc/localtime", 0) < 0) {
    FAIL("bind /etc/localtime");
  }
  if (put_file(ROOT "/etc/passwd", "root:x:0:0:root:/:/usr/sbin/nologin\n"
                                   "judge:x:1:1:judge:/:/usr/sbin/nologin\n"
                                   "nobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n") < 0 ||
      put_file(ROOT "/etc/group", "root:x:0:\njudge:x:1:\nnogroup:x:65534:\n") < 0 ||
      put_file(ROOT "/etc/hosts", "127.0.0.1 localhost jail\n") < 0 ||
      put_file(ROOT "/etc/hostname", "jail\n") < 0)
    FAIL("write /etc");
  /* /dev: the five harmless devices, bound from the host (a user namespace
   * cannot mknod); no ptmx, tty, shm, GPU or disk. */
  if (mount("qcode-dev", ROOT "/dev", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755") < 0)
    FAIL("tmpfs /dev");
  static const char *devices[] = {"null", "zero", "full", "random", "urandom"};
  for (size_t i = 0; i < sizeof devices / sizeof *devices; i++) {
    char src[32], dst[64];
    snprintf(src, sizeof src, "/dev/%s", devices[i]);
    snprintf(dst, sizeof dst, ROOT "/dev/%s", devices[i]);
    int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) FAIL("create a /dev node");
    close(fd);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0) FAIL("bind a /dev node");
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC};
    if (syscall(SYS_mount_setattr, AT_FDCWD, dst, 0, &attr, sizeof attr) < 0) FAIL("seal a /dev node");
  }
  if (symlink("/proc/self/fd", ROOT "/dev/fd") < 0 || symlink("/proc/self/fd/0", ROOT "/dev/stdin") < 0 ||
      symlink("/proc/self/fd/1", ROOT "/dev/stdout") < 0 || symlink("/proc/self/fd/2", ROOT "/dev/stderr") < 0)
    FAIL("/dev links");
  char data[96];
  snprintf(data, sizeof data, "size=%ld,mode=1777,nr_inodes=4096", o->tmpfs);
  if (mount("qcode-tmp", ROOT "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, data) < 0) FAIL("tmpfs /tmp");
  /* Some container runtimes refuse a new proc mount; then /proc stays an empty directory. */
  if (mount("proc", ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") < 0)
    mount("proc", ROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  if (syscall(SYS_pivot_root, ROOT, ROOT "/.old") < 0) FAIL("pivot_root");
  if (chdir("/") < 0) FAIL("chdir /");
  if (umount2("/.old", MNT_DETACH) < 0) FAIL("detach the host's root");
  if (rmdir("/.old") < 0) FAIL("rmdir /.old");
  if (mount(NULL, "/dev", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) FAIL("seal /dev");
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) FAIL("seal /");
  return 0;
#undef FAIL
}

/* ---- the jailed processes ---------------------------------------------------------- */

static char g_workdir[64];

static int set_limit(int res, rlim_t soft, rlim_t hard) {
  struct rlimit rl = {soft, hard};
  return setrlimit(res, &rl);
}

/* Moves fds[i] to i for i < n (sources may sit on any target), then closes
 * everything above: the process starts with exactly n fds. */
static int place_fds(const int *fds, int n, int keep) {
  int tmp[8];
  for (int i = 0; i < n; i++) {
    tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 16);
    if (tmp[i] < 0) return -1;
  }
  for (int i = 0; i < n; i++)
    if (dup2(tmp[i], i) < 0) return -1;
  if (syscall(SYS_close_range, (unsigned)n, (unsigned)keep - 1, 0) < 0 ||
      syscall(SYS_close_range, (unsigned)keep + 1, ~0U, 0) < 0) {
    for (int fd = n; fd < 4096; fd++)
      if (fd != keep) close(fd);
  }
  return 0;
}

int child_setup(const struct opts *o, int ns, int role, const int *fds, int nfds, int st_w, pid_t init_pid,
                const struct ids *ids, int reset_handlers) {
  const char *who = role == ROLE_JUDGE ? "judge" : "program";
#define DIE(what) do { send_msg(st_w, MSG_EXEC_ERR, errno, 0, "%s: %s: %s", who, what, strerror(errno)); _exit(127); } while (0)
  /* The status pipe must survive place_fds for error reports: keep it high. */
  st_w = fcntl(st_w, F_DUPFD_CLOEXEC, 64);
  if (st_w < 0) _exit(127);
  if (place_fds(fds, nfds, st_w) < 0) DIE("fds");
  /* The judge lives beside the work dir in namespace mode (a test may read
   * what the program wrote); in degraded mode it stays out of the program's 0700 dir. */
  const char *dir = ns ? "/tmp" : (role == ROLE_JUDGE ? "/" : g_workdir);
  if (chdir(dir) < 0) DIE("chdir");
  uid_t uid = role == ROLE_JUDGE ? ids->judge_uid : ids->program_uid;
  gid_t gid = role == ROLE_JUDGE ? ids->judge_gid : ids->program_gid;
  if (ids->change) {
    if (!ns && setgroups(0, NULL) < 0) DIE("setgroups");
    if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) DIE("drop privileges");
  }
  /* Credential changes clear PDEATHSIG, so set it afterwards. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != init_pid && !ns) _exit(137);

  long nofile = ids->memory_cgroup || o->nofile < FALLBACK_NOFILE ? o->nofile : FALLBACK_NOFILE;
  /* A limit that cannot be set is a jail that cannot be trusted: stop here. */
  if (set_limit(RLIMIT_CPU, (rlim_t)o->cpu, (rlim_t)o->cpu + 1) < 0) DIE("setrlimit CPU");
  if (set_limit(RLIMIT_AS, (rlim_t)o->mem, (rlim_t)o->mem) < 0) DIE("setrlimit AS");
  if (set_limit(RLIMIT_FSIZE, (rlim_t)o->fsize, (rlim_t)o->fsize) < 0) DIE("setrlimit FSIZE");
  if (set_limit(RLIMIT_NPROC, (rlim_t)o->nproc, (rlim_t)o->nproc) < 0) DIE("setrlimit NPROC");
  if (set_limit(RLIMIT_NOFILE, (rlim_t)nofile, (rlim_t)nofile) < 0) DIE("setrlimit NOFILE");
  if (set_limit(RLIMIT_CORE, 0, 0) < 0 || set_limit(RLIMIT_MSGQUEUE, 0, 0) < 0 ||
      set_limit(RLIMIT_MEMLOCK, 0, 0) < 0)
    DIE("setrlimit");

  /* A blocked or ignored SIGXCPU inherited from the caller would defeat the
   * CPU limit; the caller is a test runner or a daemon we do not control. */
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  if (reset_handlers)
    for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) DIE("no_new_privs");
  if (!ns && ids->landlock > 0 && apply_landlock(o, role == ROLE_PROGRAM ? g_workdir : NULL) < 0) DIE("landlock");
  int seccomp_rc = install_seccomp(getpid(), ids);
  if (seccomp_rc != 0) {
    errno = seccomp_rc < 0 ? -seccomp_rc : errno;
    DIE("seccomp");
  }
  return st_w;
#undef DIE
}

__attribute__((noreturn)) static void exec_child(const struct opts *o, int ns, int role, const int *fds, int nfds,
                                                 int st_w, pid_t init_pid, const struct ids *ids) {
  st_w = child_setup(o, ns, role, fds, nfds, st_w, init_pid, ids, 1);
  const char *dir = ns ? "/tmp" : (role == ROLE_JUDGE ? "/" : g_workdir);
  char home[96], tmpdir[96];
  snprintf(home, sizeof home, "HOME=%s", ns || role == ROLE_PROGRAM ? dir : "/");
  snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", ns ? "/tmp" : g_workdir);
  char *env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", home, tmpdir, "LANG=C.UTF-8",
                 "PYTHONIOENCODING=utf-8", "PYTHONDONTWRITEBYTECODE=1", NULL};
  char **argv = role == ROLE_JUDGE ? o->judge_argv : o->argv;
  execve(argv[0], argv, env); /* st_w is close-on-exec: gone once this succeeds */
  send_msg(st_w, MSG_EXEC_ERR, errno, 0, "%s: exec: %s", role == ROLE_JUDGE ? "judge" : "program", strerror(errno));
  _exit(127);
}

void init_jobs(const struct opts *o, int ns, int job_fd, int out_w, int err_w, int res_w, int st_w,
               const struct ids *ids, launch_fn launch) {
  pid_t me = getpid();
  int with_judge = o->judge_argv != NULL;
  int req[2] = {-1, -1}, rep[2] = {-1, -1};
  if (with_judge && (pipe2(req, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0)) {
    send_msg(st_w, MSG_SETUP_ERR, errno, 0, "pipe: %s", strerror(errno));
    _exit(EXIT_SETUP);
  }
  pid_t program = fork();
  if (program == 0) {
    if (with_judge) {
      int fds[] = {req[0], out_w, err_w, rep[1]};
      launch(o, ns, ROLE_PROGRAM, fds, 4, st_w, me, ids);
    }
    int fds[] = {job_fd, out_w, err_w, res_w};
    launch(o, ns, ROLE_PROGRAM, fds, 4, st_w, me, ids);
  }
  pid_t judge = -1;
  if (program > 0 && with_judge) {
    judge = fork();
    if (judge == 0) {
      int fds[] = {job_fd, out_w, err_w, res_w, req[1], rep[0]};
      launch(o, ns, ROLE_JUDGE, fds, 6, st_w, me, ids);
    }
  }
  if (program < 0 || (with_judge && judge < 0)) {
    send_msg(st_w, MSG_SETUP_ERR, errno, 0, "fork: %s", strerror(errno));
    _exit(EXIT_SETUP);
  }
  close(out_w); close(err_w); close(res_w);
  if (job_fd > 2) close(job_fd);
  for (int i = 0; i < 2; i++) { if (req[i] >= 0) close(req[i]); if (rep[i] >= 0) close(rep[i]); }
  int devnull = open("/dev/null", O_RDONLY);
  if (devnull >= 0) { dup2(devnull, 0); dup2(devnull, 1); dup2(devnull, 2); close(devnull); }
  int waiting = judge > 0 ? 2 : 1;
  while (waiting > 0) {
    int status;
    struct rusage ru;
    pid_t p = wait4(-1, &status, 0, &ru);
    if (p < 0 && errno == EINTR) continue;
    if (p < 0) break;
    double cpu = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
    if (p == program || p == judge) {
      struct msg m;
      memset(&m, 0, sizeof m);
      m.kind = p == program ? MSG_CHILD_STATUS : MSG_JUDGE_STATUS;
      m.value = status;
      m.cpu_ms = cpu;
      m.maxrss_kb = ru.ru_maxrss;
      ssize_t w;
      do w = write(st_w, &m, sizeof m); while (w < 0 && errno == EINTR);
      waiting--;
    }
  }
  _exit(0); /* as PID 1 this takes any stragglers with it */
}

__attribute__((noreturn)) static void init_main(const struct opts *o, int ns, int pipes[5][2], int slot_sock,
                                                const struct ids *given) {
  struct ids mine = *given, *ids = &mine;
  /* pipes: 0 out, 1 err, 2 res, 3 status (init->launcher), 4 go (launcher->init) */
  int out_w = pipes[0][1], err_w = pipes[1][1], res_w = pipes[2][1], st_w = pipes[3][1], go_r = pipes[4][0];
  close(pipes[0][0]); close(pipes[1][0]); close(pipes[2][0]); close(pipes[3][0]); close(pipes[4][1]);
  if (slot_sock >= 0) close(slot_sock);
  char go;
  ssize_t r;
  do r = read(go_r, &go, 1); while (r < 0 && errno == EINTR);
  if (r != 1) _exit(EXIT_SETUP); /* the launcher died or gave up */
  close(go_r);
  ids->memory_cgroup = go == 'c'; /* the launcher put us in a memory cgroup */
  char err[200] = "";
  if (ns) {
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
      send_msg(st_w, MSG_SETUP_ERR, errno, 0, "become root in the user namespace: %s", strerror(errno));
      _exit(EXIT_SETUP);
    }
    if (setup_fs(o, err, sizeof err) < 0) {
      send_msg(st_w, MSG_SETUP_ERR, 0, 0, "%s", err);
      _exit(EXIT_SETUP);
    }
    sethostname("jail", 4);
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (!ns && getppid() == 1) _exit(EXIT_SETUP);
  setsid(); /* no controlling terminal; in degraded mode, a process group to kill */
  send_msg(st_w, MSG_SETUP_OK, ns, 0, NULL);
  init_jobs(o, ns, 0, out_w, err_w, res_w, st_w, ids, exec_child);
}

/* ---- launcher -------------------------------------------------------------------- */

/* SIGTERM (qcode cancelling a run): kill the tree now, then let the main flow
 * reap it and clean up (degraded mode's work dir, the cgroup) before exiting. */
static void on_term(int sig) {
  (void)sig;
  g_terminated = 1;
  pid_t p = g_init_pid;
  if (p > 0) {
    if (!g_ns) kill(-p, SIGKILL);
    kill(p, SIGKILL);
  }
}

int write_map(pid_t pid, const char *file, const char *text) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  return write_file(path, text);
}


static void kill_tree(pid_t init, int ns) {
  if (!ns) kill(-init, SIGKILL);
  kill(init, SIGKILL);
}

/* Runs the jail once. Returns 1 when namespace setup failed and the caller
 * should retry in degraded mode (reason in *why). */
static int run(const struct opts *o, int ns, struct ids *ids, int slot_sock, struct result *res, char *why,
               size_t whylen) {
  int pipes[5][2];
  for (int i = 0; i < 5; i++)
    if (pipe2(pipes[i], O_CLOEXEC) < 0) {
      snprintf(res->setup_error, sizeof res->setup_error, "pipe: %s", strerror(errno));
      return -1;
    }
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
  if (pid == 0) init_main(o, ns, pipes, slot_sock, ids);
  g_init_pid = pid;
  g_ns = ns;
  if (g_terminated) kill_tree(pid, ns);
  int out_r = pipes[0][0], err_r = pipes[1][0], res_r = pipes[2][0], st_r = pipes[3][0], go_w = pipes[4][1];
  close(pipes[0][1]); close(pipes[1][1]); close(pipes[2][1]); close(pipes[3][1]); close(pipes[4][0]);

  if (ns) {
    char map[96];
    snprintf(map, sizeof map, "0 %d 1\n%d %d 1\n%d %d 1\n", SETUP_HOST_UID, JUDGE_NS_UID, JUDGE_HOST_UID,
             NOBODY, NOBODY);
    if (write_map(pid, "setgroups", "deny") < 0 || write_map(pid, "uid_map", map) < 0 ||
        write_map(pid, "gid_map", map) < 0) {
      snprintf(why, whylen, "user namespaces unusable: uid_map: %s", strerror(errno));
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      close(out_r); close(err_r); close(res_r); close(st_r); close(go_w);
      return 1;
    }
  }
  /* init has not run anything yet: everything it starts inherits the cgroup. */
  char name[64];
  snprintf(name, sizeof name, "run-%d", (int)getpid());
  ids->memory_cgroup = cgroup_enter(o, pid, name, g_cgroup, sizeof g_cgroup);
  write_all(go_w, ids->memory_cgroup ? "c" : "g", 1);
  close(go_w);
  /* fd 0 (the job) stays open here: if namespace setup fails, the degraded retry needs it. */

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
  int reaped = 0, killed = 0;
  double kill_time = 0, init_cpu = 0;
  struct rusage ru;
  memset(&ru, 0, sizeof ru);
  static char buf[65536];

  while (!reaped || fds[0] >= 0 || fds[1] >= 0 || fds[2] >= 0 || st_r >= 0) {
    double now = now_ms();
    if (!killed && g_terminated) {
      killed = 1; /* the signal handler already killed the tree */
      kill_time = now;
    }
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
        m.text[sizeof m.text - 1] = '\0';
        if (m.kind == MSG_SETUP_ERR) snprintf(res->setup_error, sizeof res->setup_error, "%s", m.text);
        else if (m.kind == MSG_EXEC_ERR && !res->exec_error[0]) snprintf(res->exec_error, sizeof res->exec_error, "%s", m.text);
        else if (m.kind == MSG_CHILD_STATUS || m.kind == MSG_JUDGE_STATUS) {
          int judge = m.kind == MSG_JUDGE_STATUS;
          int code = WIFEXITED(m.value) ? WEXITSTATUS(m.value) : 0;
          int sig = WIFSIGNALED(m.value) ? WTERMSIG(m.value) : 0;
          if (judge) {
            res->judge_ran = 1, res->judge_exit_code = code, res->judge_signal = sig, res->judge_cpu_ms = m.cpu_ms;
          } else {
            res->ran = 1, res->exit_code = code, res->signal = sig, res->cpu_ms = m.cpu_ms;
          }
        }
      }
    }
    if (!reaped) {
      int st;
      pid_t w = wait4(pid, &st, WNOHANG, &ru);
      if (w == pid) {
        reaped = 1;
        res->wall_ms = now_ms() - t0;
        if (!killed && !ns) kill(-pid, SIGKILL); /* degraded: anything left in the group */
      }
    }
  }
  if (!reaped) {
    int st;
    kill_tree(pid, ns);
    wait4(pid, &st, 0, &ru);
    res->wall_ms = now_ms() - t0;
  }
  g_init_pid = 0;
  for (int i = 0; i < 3; i++) if (fds[i] >= 0) close(fds[i]);
  if (st_r >= 0) close(st_r);
  if (pidfd >= 0) close(pidfd);
  cgroup_leave(g_cgroup);
  init_cpu = ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
  /* A killed init never reports its children: then all we know is the tree's total. */
  if (!res->ran) res->cpu_ms = init_cpu;
  res->max_rss_kb = ru.ru_maxrss;
  if (ns && !res->ran && res->setup_error[0] && !res->timed_out) {
    snprintf(why, whylen, "namespace setup failed: %s", res->setup_error);
    return 1;
  }
  /* A killed init never reports; the signal is then ours (SIGKILL). */
  if (!res->ran && (res->timed_out || res->flood)) res->signal = SIGKILL;
  return 0;
}

/* ---- degraded mode: a uid pair per run, and a clean-up that runs as the program ---- */

/* A slot is an abstract unix socket name bound by this launcher: the kernel
 * frees it when we exit, however we exit, so no lock file can go stale. */
static int acquire_slot(int *sock) {
  for (int i = 0; i < SLOTS; i++) {
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "qcode-jail-slot-%d", i);
    if (bind(s, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) == 0) {
      *sock = s;
      return i;
    }
    close(s);
  }
  return -1;
}

/* As `uid`, kill every process of `uid` (kill(-1) reaches exactly those):
 * nothing an earlier run of this slot left can meet this one. */
static void sweep_uid(uid_t uid, gid_t gid) {
  pid_t p = fork();
  if (p == 0) {
    if (setgroups(0, NULL) == 0 && setresgid(gid, gid, gid) == 0 && setresuid(uid, uid, uid) == 0) kill(-1, SIGKILL);
    _exit(0);
  }
  if (p > 0) waitpid(p, NULL, 0);
}

/* Empties the directory open at `root` without following a symlink or a
 * path: only names relative to directory fds, with O(1) fds at any depth. */
static void empty_dir(int root) {
  struct stat rs;
  if (fstat(root, &rs) < 0) return;
  int cur = dup(root);
  for (long steps = 0; cur >= 0 && steps < 1000000; steps++) {
    int dfd = dup(cur);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) { if (dfd >= 0) close(dfd); break; }
    int next = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      if (unlinkat(cur, e->d_name, 0) == 0 || (errno != EISDIR && errno != EPERM)) continue;
      if (unlinkat(cur, e->d_name, AT_REMOVEDIR) == 0 || errno != ENOTEMPTY) continue;
      next = openat(cur, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next >= 0) break;
    }
    closedir(d);
    struct stat cs;
    if (next >= 0) { close(cur); cur = next; continue; }
    if (fstat(cur, &cs) < 0 || (cs.st_dev == rs.st_dev && cs.st_ino == rs.st_ino)) break;
    next = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    close(cur);
    cur = next;
  }
  if (cur >= 0) close(cur);
}

/* Removes a work dir as its owner: the uid the program ran as, never root
 * walking paths another process could have changed. */
static void remove_workdir(const struct ids *ids, const char *dir) {
  pid_t p = fork();
  if (p == 0) {
    if (ids->change && (setgroups(0, NULL) < 0 || setresgid(ids->program_gid, ids->program_gid, ids->program_gid) < 0 ||
                        setresuid(ids->program_uid, ids->program_uid, ids->program_uid) < 0))
      _exit(1);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) empty_dir(fd);
    _exit(0);
  }
  if (p > 0) waitpid(p, NULL, 0);
  rmdir(dir);
}

/* Work dirs of this slot's uid left by a launcher that was SIGKILLed: we hold
 * the slot, so none of them is in use. */
static void remove_stale_workdirs(const struct ids *ids) {
  DIR *d = opendir("/tmp");
  if (!d) return;
  struct dirent *e;
  char path[300];
  while ((e = readdir(d))) {
    struct stat st;
    if (strncmp(e->d_name, "qcode-jail-", 11) != 0) continue;
    snprintf(path, sizeof path, "/tmp/%s", e->d_name);
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ids->program_uid) remove_workdir(ids, path);
  }
  closedir(d);
}

void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/* The launcher's final status: one JSON line (sandbox/README.md lists the
 * fields). `path` says which way the run went: "cold" (this launcher, set up
 * for the run) or "warm" (a pool's pre-set-up jail). */
void write_status(FILE *sf, int ns, const struct result *res, const struct ids *ids, const char *why, const char *path) {
  fprintf(sf, "{\"isolation\":\"%s\",\"path\":\"%s\",\"ran\":%s,\"exit_code\":%d,\"signal\":%d,\"timed_out\":%s,"
              "\"output_flood\":%s,\"stdout_truncated\":%s,\"stderr_truncated\":%s,"
              "\"results_truncated\":%s,\"wall_ms\":%.3f,\"cpu_ms\":%.3f,\"max_rss_kb\":%ld,"
              "\"judge_ran\":%s,\"judge_exit_code\":%d,\"judge_signal\":%d,\"judge_cpu_ms\":%.3f,"
              "\"memory_fence\":\"%s\",\"landlock\":%d,\"program_uid\":%u,",
          ns ? "namespaces" : "degraded", path, res->ran ? "true" : "false", res->exit_code, res->signal,
          res->timed_out ? "true" : "false", res->flood ? "true" : "false",
          res->out_trunc ? "true" : "false", res->err_trunc ? "true" : "false",
          res->res_trunc ? "true" : "false", res->wall_ms, res->cpu_ms, res->max_rss_kb,
          res->judge_ran ? "true" : "false", res->judge_exit_code, res->judge_signal, res->judge_cpu_ms,
          ids->memory_cgroup ? "cgroup" : "rlimit", ns ? 0 : (ids->landlock > 0 ? ids->landlock : 0),
          ns ? (unsigned)NOBODY : (unsigned)ids->program_uid);
  fputs("\"degraded_reason\":", sf);
  json_str(sf, ns ? "" : why);
  fputs(",\"setup_error\":", sf);
  json_str(sf, res->setup_error[0] ? res->setup_error : res->exec_error);
  fputs("}\n", sf);
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
  /* qcode spawns this watcher from a thread that blocks most signals, and the
   * mask is inherited: a blocked SIGTERM was never forwarded, so every stop
   * waited for qcode's SIGKILL 3 s later and the server never exited cleanly.
   * Unblock now that the handlers are in place (a pending one runs at once). */
  sigset_t unblocked;
  sigemptyset(&unblocked);
  sigprocmask(SIG_SETMASK, &unblocked, NULL);
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
  if (argc > 1 && strcmp(argv[1], "--serve") == 0) return serve_main(argc, argv);
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
  struct sigaction term = {.sa_handler = on_term};
  sigemptyset(&term.sa_mask);
  sigaction(SIGTERM, &term, NULL);
  sigaction(SIGINT, &term, NULL);
  sigaction(SIGHUP, &term, NULL);

  struct result res;
  memset(&res, 0, sizeof res);
  char why[300] = "";
  int ns = !o.no_userns;
  if (o.no_userns) snprintf(why, sizeof why, "forced by --no-userns");
  struct ids ids = {.program_uid = NOBODY, .program_gid = NOBODY, .judge_uid = JUDGE_NS_UID,
                    .judge_gid = JUDGE_NS_UID, .change = 1};
  int rc = -1, slot = -1, slot_sock = -1;
  if (ns && !g_terminated) {
    rc = run(&o, 1, &ids, -1, &res, why, sizeof why);
    if (rc == 1) {
      ns = 0;
      memset(&res, 0, sizeof res);
    }
  }
  if (!ns && !g_terminated) {
    /* Neither init, the program nor the judge may be readable through
     * /proc/PID/mem by a program that shares the caller's uid (non-root). */
    prctl(PR_SET_DUMPABLE, 0);
    ids.change = geteuid() == 0;
    ids.landlock = landlock_abi();
    if (ids.change) {
      slot = acquire_slot(&slot_sock);
      if (slot < 0) {
        fprintf(stderr, "qcode-jail: no free uid slot (%d runs at once?): %s\n", SLOTS, strerror(errno));
        return EXIT_SETUP;
      }
      ids.program_uid = ids.program_gid = SLOT_UID_BASE + 2 * (unsigned)slot;
      ids.judge_uid = ids.judge_gid = SLOT_UID_BASE + 2 * (unsigned)slot + 1;
      sweep_uid(ids.program_uid, ids.program_gid);
      sweep_uid(ids.judge_uid, ids.judge_gid);
      remove_stale_workdirs(&ids);
    } else {
      ids.program_uid = ids.judge_uid = getuid();
      ids.program_gid = ids.judge_gid = getgid();
    }
    snprintf(g_workdir, sizeof g_workdir, "/tmp/qcode-jail-XXXXXX");
    if (!mkdtemp(g_workdir)) {
      fprintf(stderr, "qcode-jail: mkdtemp: %s\n", strerror(errno));
      return EXIT_SETUP;
    }
    if (ids.change && chown(g_workdir, ids.program_uid, ids.program_gid) < 0) {
      fprintf(stderr, "qcode-jail: chown work dir: %s\n", strerror(errno));
      rmdir(g_workdir);
      return EXIT_SETUP;
    }
    rc = run(&o, 0, &ids, slot_sock, &res, why, sizeof why);
    if (ids.change) {
      sweep_uid(ids.program_uid, ids.program_gid);
      sweep_uid(ids.judge_uid, ids.judge_gid);
    }
    remove_workdir(&ids, g_workdir);
  }
  (void)rc;

  FILE *sf = NULL;
  if (fcntl(o.status_fd, F_GETFD) >= 0) sf = fdopen(o.status_fd, "w");
  if (!sf) sf = stderr;
  write_status(sf, ns, &res, &ids, why, "cold");
  fflush(sf);
  if (g_terminated) return 143;
  return (res.setup_error[0] || res.exec_error[0]) ? EXIT_SETUP : 0;
}
