/**
 * A file the program made and removes at exit (the passt socket, the
 * `--control` socket, the slirp4netns API socket), reached through a
 * descriptor of its directory opened when it was made: once the process is
 * isolated (isolation.ts) its root is an empty tmpfs and the path no longer
 * resolves. It is removed only while the name still stands for the file we
 * made (same inode): a file put in its place meanwhile is left alone.
 */
import * as path from 'node:path';
import { native } from '../shared/native';
import { O_PATH, O_DIRECTORY, O_CLOEXEC } from '../shared/linux';

export class Removable {
  private constructor(private dirfd: number, private readonly base: string, readonly ino: number) {}

  /** Remembers the file now at p (null if it or its directory can't be opened). */
  static of(p: string): Removable | null {
    const dirfd = native.open(path.dirname(p), O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
    if (dirfd < 0) return null;
    const base = path.basename(p);
    const ino = native.inodeAt(dirfd, base);
    if (ino < 0) {
      native.close(dirfd);
      return null;
    }
    return new Removable(dirfd, base, ino);
  }

  /** Removes the file if the name still stands for it; once. */
  remove(): void {
    if (this.dirfd < 0) return;
    if (native.inodeAt(this.dirfd, this.base) === this.ino) native.unlinkat(this.dirfd, this.base, 0);
    native.close(this.dirfd);
    this.dirfd = -1;
  }
}
