// pasta-helper: the single-threaded steps that a Node process cannot take.
//
// A Node process is multithreaded from its first instruction, so it can
// neither unshare(CLONE_NEWUSER) nor setns(CLONE_NEWUSER), and it cannot
// fork. This small executable does those steps (DESIGN.md "Namespaces and
// threads"):
//
//   pasta-helper userns --new [--soft] [--also-map UID:GID] -- PROG ARGS...
//       Create a user namespace, map the caller's UID/GID to 0 inside
//       ("0 UID 1", setgroups "deny"), then exec PROG (Node again).
//       --also-map (root only): map UID and GID of the initial namespace to
//       themselves as well, so that pasta can switch to its run-as user
//       (nobody) inside once set-up is done (isolation.ts). Only a process
//       of the parent namespace with CAP_SETUID may write such a map, so a
//       child forked before the unshare writes it; supplementary groups are
//       dropped first (inside, with setgroups "deny", they no longer can).
//       --soft: if no user namespace can be made, warn and exec PROG all
//       the same (passt's namespace only serves its isolation).
//   pasta-helper userns --join PATH -- PROG ARGS...
//       Join the user namespace at PATH (unless it is already ours), then
//       exec PROG.
//   pasta-helper spawn --status-fd N --release-fd M --parent-pid P
//                      [--hostname NAME] [--login] -- CMD ARGS...
//       Unshare network, mount, UTS, IPC and PID namespaces, fork the
//       command as PID 1 of the new PID namespace, report "OK <pid>\n" on
//       the status fd, and wait for the command. The command first mounts a
//       fresh /proc, sets ping_group_range to "0 0" and the hostname, then
//       waits until pasta writes one byte to the release fd (networking is
//       ready) and execs CMD. EOF on the release fd means pasta failed: the
//       command is not run. The helper exits with the command's status, or
//       128+N if it died from signal N. If pasta dies, the helper and the
//       command die with it (PR_SET_PDEATHSIG; see Spawn() for the race).
//       "OK" also carries the helper's own PID as /proc knows it, so that
//       pasta finds the command's network namespace even where /proc belongs
//       to another PID namespace than pasta's (unshare --pid without
//       --mount-proc).
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

namespace {

void Warn(const char* fmt, const char* arg, int err) {
  fprintf(stderr, "pasta: ");
  fprintf(stderr, fmt, arg);
  if (err) fprintf(stderr, ": %s", strerror(err));
  fprintf(stderr, "\n");
}

[[noreturn]] void Die(const char* fmt, const char* arg, int err) {
  Warn(fmt, arg, err);
  exit(1);
}

bool WriteFile(const char* path, const std::string& data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t r = write(fd, data.data(), data.size());
  int e = errno;
  close(fd);
  errno = e;
  return r == static_cast<ssize_t>(data.size());
}

// Writes the maps of process `pid`'s new user namespace from outside it:
// "0 UID 1" plus "ID ID 1" for the extra IDs. Returns false on failure.
bool WriteMapsFor(pid_t pid, uid_t uid, gid_t gid, uid_t also_uid, gid_t also_gid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/";
  std::string um = "0 " + std::to_string(uid) + " 1\n";
  std::string gm = "0 " + std::to_string(gid) + " 1\n";
  if (also_uid != uid) um += std::to_string(also_uid) + " " + std::to_string(also_uid) + " 1\n";
  if (also_gid != gid) gm += std::to_string(also_gid) + " " + std::to_string(also_gid) + " 1\n";
  if (!WriteFile((dir + "setgroups").c_str(), "deny")) Warn("Couldn't write %s", "setgroups", errno);
  return WriteFile((dir + "uid_map").c_str(), um) && WriteFile((dir + "gid_map").c_str(), gm);
}

int UserNs(int argc, char** argv) {
  int i = 0;
  const char* join = nullptr;
  bool create = false;
  long also_uid = -1, also_gid = -1;
  bool soft = false;
  for (; i < argc && strcmp(argv[i], "--"); i++) {
    if (!strcmp(argv[i], "--new")) create = true;
    else if (!strcmp(argv[i], "--join") && i + 1 < argc) join = argv[++i];
    else if (!strcmp(argv[i], "--soft")) soft = true;
    else if (!strcmp(argv[i], "--also-map") && i + 1 < argc) {
      if (sscanf(argv[++i], "%ld:%ld", &also_uid, &also_gid) != 2 || also_uid < 0 || also_gid < 0)
        Die("helper: bad --also-map %s", argv[i], 0);
    }
    else Die("helper: unknown userns argument %s", argv[i], 0);
  }
  if (i >= argc - 1) Die("helper: %s", "missing program", 0);
  char** prog = argv + i + 1;

  if (create && also_uid >= 0 && geteuid() == 0) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (setgroups(0, nullptr) < 0) Warn("Couldn't drop supplementary groups%s", "", errno);
    int sync[2];
    if (pipe(sync) < 0) Die("pipe%s", "", errno);
    // our PID as /proc names it: /proc may belong to an outer PID namespace
    // (pasta as PID 1 of `unshare --pid --fork`, without --mount-proc)
    char self_name[32] = "";
    ssize_t sn = readlink("/proc/self", self_name, sizeof(self_name) - 1);
    if (sn <= 0) Die("Couldn't read %s", "/proc/self", errno);
    self_name[sn] = 0;
    pid_t self = static_cast<pid_t>(atoi(self_name));
    pid_t writer = fork();
    if (writer < 0) Die("fork%s", "", errno);
    if (writer == 0) {
      close(sync[1]);
      char c;
      ssize_t r;
      do r = read(sync[0], &c, 1); while (r < 0 && errno == EINTR);
      if (r != 1) _exit(1);  // the unshare failed
      _exit(WriteMapsFor(self, uid, gid, static_cast<uid_t>(also_uid), static_cast<gid_t>(also_gid)) ? 0 : 2);
    }
    close(sync[0]);
    if (unshare(CLONE_NEWUSER) < 0) Die("Couldn't create user namespace%s", "", errno);
    if (write(sync[1], "1", 1) != 1) Die("Couldn't create user namespace%s", "", errno);
    close(sync[1]);
    int st = 0;
    while (waitpid(writer, &st, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) Die("Couldn't write the maps of the user namespace%s", "", 0);
  } else if (create) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER) < 0) {
      if (!soft) Die("Couldn't create user namespace%s", "", errno);
      // --soft (passt's namespace, for isolation only): run without it
      Warn("Couldn't create a user namespace (no mount namespace either)%s", "", errno);
    } else {
      if (!WriteFile("/proc/self/setgroups", "deny")) Warn("Couldn't write %s", "/proc/self/setgroups", errno);
      if (!WriteFile("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1"))
        Warn("Couldn't write %s", "/proc/self/uid_map", errno);
      if (!WriteFile("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"))
        Warn("Couldn't write %s", "/proc/self/gid_map", errno);
    }
  } else if (join) {
    int fd = open(join, O_RDONLY | O_CLOEXEC);
    if (fd < 0) Die("Couldn't open user namespace %s", join, errno);
    struct stat target, self;
    if (fstat(fd, &target) == 0 && stat("/proc/self/ns/user", &self) == 0 && target.st_ino == self.st_ino &&
        target.st_dev == self.st_dev) {
      // Already there: setns() would fail with EINVAL.
    } else if (setns(fd, CLONE_NEWUSER) < 0) {
      Die("Couldn't switch to user namespace %s", join, errno);
    }
    close(fd);
  }
  execv(prog[0], prog);
  Die("Couldn't run %s", prog[0], errno);
}

pid_t child_pid = -1;

void Forward(int sig) {
  if (child_pid > 0) kill(child_pid, sig);
}

int Spawn(int argc, char** argv) {
  int status_fd = -1, release_fd = -1;
  pid_t parent = 0;
  const char* hostname = nullptr;
  bool login = false;
  int i = 0;
  for (; i < argc && strcmp(argv[i], "--"); i++) {
    if (!strcmp(argv[i], "--status-fd") && i + 1 < argc) status_fd = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--release-fd") && i + 1 < argc) release_fd = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--parent-pid") && i + 1 < argc) parent = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--hostname") && i + 1 < argc) hostname = argv[++i];
    else if (!strcmp(argv[i], "--login")) login = true;
    else Die("helper: unknown spawn argument %s", argv[i], 0);
  }
  if (i >= argc - 1 || status_fd < 0 || release_fd < 0 || parent <= 0) Die("helper: %s", "bad spawn arguments", 0);
  char** cmd = argv + i + 1;

  // Dying with pasta. PR_SET_PDEATHSIG covers a parent that dies from now
  // on; one that died between our fork() and this prctl() has already
  // reparented us, which getppid() then shows. pasta passes its own PID
  // (--parent-pid), and that comparison is exact: while pasta lives,
  // getppid() is its PID, and once it has died we belong to a reaper that
  // was alive alongside it, so not a process with pasta's PID. Comparing
  // with 1 instead was wrong twice: pasta may itself be PID 1 of its PID
  // namespace (a container's entrypoint, unshare --pid --fork), and an
  // orphan may go to a subreaper rather than to init. In a PID namespace
  // made by pasta's parent, pasta and we see PIDs of the same namespace
  // (the one we unshare below is only for our child).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) exit(1);  // pasta already gone

  // Our PID as pasta's /proc names it, read before the command mounts its
  // own /proc in the mount namespace we are about to share with it. We
  // share the command's network namespace too (unshare() moves us into
  // it), and pasta opens that namespace through our /proc entry.
  char self[32] = "";
  ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);
  self[n > 0 ? n : 0] = 0;

  if (unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID) < 0) {
    dprintf(status_fd, "ERR %d\n", errno);
    Die("Couldn't create namespaces for the command%s", "", errno);
  }

  pid_t pid = fork();
  if (pid < 0) {
    dprintf(status_fd, "ERR %d\n", errno);
    Die("fork%s", "", errno);
  }
  if (pid == 0) {
    // PID 1 of the new PID namespace. getppid() is 0 here (our parent is
    // outside the namespace), so the fork-to-prctl race cannot be checked
    // like above; it needs no check: if we were orphaned before the prctl(),
    // pasta saw the helper exit and quits, which closes the release pipe,
    // and we exit below without running the command.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(status_fd);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
      Warn("Couldn't make / private%s", "", errno);
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
      Warn("Couldn't mount %s", "/proc", errno);
    if (!WriteFile("/proc/sys/net/ipv4/ping_group_range", "0 0"))
      Warn("Couldn't set %s", "ping_group_range", errno);
    if (hostname && sethostname(hostname, strnlen(hostname, 64)) < 0)
      Warn("Couldn't set hostname %s", hostname, errno);
    char go = 0;
    ssize_t r;
    do r = read(release_fd, &go, 1); while (r < 0 && errno == EINTR);
    if (r != 1) _exit(1);  // pasta failed before networking was ready
    close(release_fd);
    std::string arg0;
    const char* file = cmd[0];
    if (login) {
      const char* base = strrchr(cmd[0], '/');
      arg0 = std::string("-") + (base ? base + 1 : cmd[0]);
      cmd[0] = &arg0[0];
    }
    execvp(file, cmd);
    Warn("Failed to start command or shell %s", file, errno);
    _exit(errno == ENOENT ? 127 : 126);
  }

  child_pid = pid;
  close(release_fd);
  dprintf(status_fd, "OK %d %s\n", pid, n > 0 ? self : "0");
  close(status_fd);

  struct sigaction sa = {};
  sa.sa_handler = Forward;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);

  int st;
  for (;;) {
    pid_t w = waitpid(pid, &st, 0);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) Die("waitpid%s", "", errno);
  }
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Die("helper: %s", "missing mode", 0);
  if (!strcmp(argv[1], "userns")) return UserNs(argc - 2, argv + 2);
  if (!strcmp(argv[1], "spawn")) return Spawn(argc - 2, argv + 2);
  Die("helper: unknown mode %s", argv[1], 0);
}
