/*
 * What the cold launcher (jail.c) and the warm pool (pool.c) share: the
 * limits, who runs as whom, the init -> launcher messages, the layers every
 * jailed process gets. See sandbox/README.md for the threat model.
 */
#ifndef QCODE_JAIL_H
#define QCODE_JAIL_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>

#define NOBODY 65534
/* Host uids that "root inside the namespace" (setup, init) and the judge map
 * to. They own no host files, so even a setup bug cannot write anything as a
 * real user, and the program (nobody) can neither signal nor read the judge. */
#define SETUP_HOST_UID 100000
#define JUDGE_NS_UID 1
#define JUDGE_HOST_UID 100001
/* Degraded mode as root: slot k runs the program as SLOT_UID_BASE + 2k and the
 * judge as SLOT_UID_BASE + 2k + 1, far above real accounts and the usual
 * subordinate-id ranges. */
#define SLOT_UID_BASE 1879048192u
#define SLOTS 512
/* Without a memory cgroup, fds are what bounds pipe buffers (memfd is denied). */
#define FALLBACK_NOFILE 32

enum { EXIT_USAGE = 2, EXIT_SETUP = 125 };
enum { ROLE_PROGRAM, ROLE_JUDGE };

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
  const char *ro[16]; /* extra read-only directories (--ro), e.g. an interpreter outside /usr */
  int nro;
  const char *cgroup; /* a delegated cgroup v2 directory to create run cgroups in */
  char **judge_argv;  /* NULL: one process, the command, as before --judge existed */
  char **argv;
};

/* Who runs what: host-visible ids differ per mode, see the top of the file. */
struct ids {
  uid_t program_uid, judge_uid;
  gid_t program_gid, judge_gid;
  int change;        /* 0: degraded and not root, everything runs as the caller */
  int memory_cgroup; /* 1: a cgroup caps the run's memory, memfd may stay */
  int landlock;      /* degraded only: landlock ABI in force, 0 when unavailable */
};

/* init -> launcher messages. */
enum { MSG_SETUP_OK = 1, MSG_SETUP_ERR, MSG_EXEC_ERR, MSG_CHILD_STATUS, MSG_JUDGE_STATUS, MSG_LANDLOCK };
struct msg {
  int kind;
  int value;
  double cpu_ms;
  long maxrss_kb; /* MSG_CHILD_STATUS, MSG_JUDGE_STATUS: the process's peak RSS */
  char text[240];
};

struct result {
  int ran, exit_code, signal, timed_out, flood, out_trunc, err_trunc, res_trunc;
  int judge_ran, judge_exit_code, judge_signal;
  double wall_ms, cpu_ms, judge_cpu_ms;
  long max_rss_kb;
  char setup_error[240];
  char exec_error[240];
};

double now_ms(void);
void send_msg(int fd, int kind, int value, double cpu_ms, const char *fmt, ...);
int write_all(int fd, const char *p, size_t n);
int write_file(const char *path, const char *text);
int parse_long(const char *v, long lo, long hi, long *out);
int install_seccomp(pid_t self, const struct ids *ids);
int setup_fs(const struct opts *o, char *err, size_t errlen);
int write_map(pid_t pid, const char *file, const char *text);
int cgroup_enter(const struct opts *o, pid_t pid, const char *name, char *path, size_t len);
void cgroup_leave(char *path);
void json_str(FILE *f, const char *s);
void write_status(FILE *f, int ns, const struct result *res, const struct ids *ids, const char *why, const char *path);

/* The layers of one jailed process (fds, cwd, uid, PDEATHSIG, rlimits, signal
 * mask, no_new_privs, landlock, seccomp), short of what it runs. Returns the
 * status pipe moved out of the way (close-on-exec); on failure it reports
 * MSG_EXEC_ERR and exits. `reset_handlers`: 0 keeps the signal dispositions,
 * for a warm interpreter whose own (Python's SIGINT, SIGPIPE and SIGXFSZ
 * ignored) are exactly a fresh interpreter's. */
int child_setup(const struct opts *o, int ns, int role, const int *fds, int nfds, int st_w, pid_t init_pid,
                const struct ids *ids, int reset_handlers);

/* What init runs per role after child_setup's layers: the cold launcher execs
 * a fresh interpreter, the warm pool calls into the one it forked from. */
typedef void (*launch_fn)(const struct opts *o, int ns, int role, const int *fds, int nfds, int st_w, pid_t init_pid,
                          const struct ids *ids);

/* The job part of init: forks the program (and the judge), reports how each
 * ended on st_w, then exits, taking any straggler with it as PID 1. */
__attribute__((noreturn)) void init_jobs(const struct opts *o, int ns, int job_fd, int out_w, int err_w, int res_w,
                                         int st_w, const struct ids *ids, launch_fn launch);

int serve_main(int argc, char **argv);

#endif
