/**
 * Quitting when the target network namespace goes away (SPEC.md §9.6).
 *
 * The watched entry is the netns path's base name in its parent directory,
 * which was opened once at start-up (so a recycled PID's new /proc/PID is
 * never consulted). fstatfs() on that directory decides the mechanism:
 * - procfs, sysfs, devpts (or an fstatfs failure): inotify cannot see the
 *   entry disappear, so a 1 s timer re-opens it relative to the directory
 *   descriptor; EACCES means it still exists, any other failure means gone.
 * - otherwise: inotify (fs.watch) on the directory; an event for the base
 *   name is checked against the directory, and only its deletion counts
 *   (other netns files come and go in shared directories like podman's).
 *   If inotify is unavailable (limits), the timer is used, with a warning.
 */
import * as fs from 'node:fs';
import { native, E } from '../shared/native';
import { O_PATH, O_CLOEXEC, PROC_SUPER_MAGIC, SYSFS_MAGIC, DEVPTS_SUPER_MAGIC } from '../shared/linux';
import { log } from '../shared/log';

export type QuitMode = 'timer' | 'inotify';

export interface NetnsWatch {
  mode: QuitMode;
  stop(): void;
}

/**
 * True if `base` still exists in the directory behind dirfd. EACCES: we may
 * no longer search the directory (isolation.ts made a root-started pasta
 * nobody; or a /proc/PID/ns entry of another user): then the directory's
 * listing, read through the descriptor opened at start-up, decides, where
 * it can be read; otherwise the entry counts as there.
 */
export function entryExists(dirfd: number, base: string): boolean {
  const fd = native.openat(dirfd, base, O_PATH | O_CLOEXEC, 0);
  if (fd >= 0) {
    native.close(fd);
    return true;
  }
  if (fd !== -E.EACCES) return false;
  const names = native.listDir(dirfd);
  return typeof names === 'number' || names.includes(base);
}

/**
 * Starts watching; calls onGone() once when the entry disappears.
 * @param dirfd descriptor of the parent directory, opened at start-up
 * @param dirPath its path (for inotify)
 * @param base the entry's name in it
 */
export function watchNetns(dirfd: number, dirPath: string, base: string, onGone: () => void): NetnsWatch {
  let done = false;
  const gone = () => {
    if (done) return;
    done = true;
    watch.stop();
    onGone();
  };
  const startTimer = (): NetnsWatch => {
    const t = setInterval(() => {
      if (!entryExists(dirfd, base)) gone();
    }, 1000);
    return { mode: 'timer', stop: () => clearInterval(t) };
  };

  const fsType = native.fstatfs(dirfd);
  let watch: NetnsWatch;
  if (fsType < 0 || fsType === PROC_SUPER_MAGIC || fsType === SYSFS_MAGIC || fsType === DEVPTS_SUPER_MAGIC) {
    watch = startTimer();
  } else {
    try {
      const w = fs.watch(dirPath, { persistent: true }, (_event, name) => {
        if (name === base && !entryExists(dirfd, base)) gone();
      });
      w.on('error', () => {
        log.warn(`inotify watch on ${dirPath} failed, checking every second instead`);
        w.close();
        watch = startTimer();
      });
      watch = { mode: 'inotify', stop: () => w.close() };
    } catch (e) {
      log.warn(`Couldn't watch ${dirPath} with inotify (${(e as Error).message}), checking every second instead`);
      watch = startTimer();
    }
  }
  // the entry may already be gone between opening it and starting the watch
  if (!entryExists(dirfd, base)) setImmediate(gone);
  return { get mode() { return watch.mode; }, stop: () => watch.stop() };
}
