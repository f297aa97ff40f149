/**
 * Deterministic "newc" cpio archives for the test guest's initramfs: the
 * same files give the same bytes (sorted names, sequential inode numbers,
 * owner root, one fixed mtime), unlike GNU or busybox cpio, which store the
 * real inode numbers and times.
 *
 *   node dist/test/guest/cpio.js DIR OUT [MTIME]   packs DIR (gzip'd) into OUT
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

/** One archive member. */
export interface CpioEntry {
  /** Path inside the archive, without a leading slash. */
  name: string;
  /** st_mode: file type and permission bits. */
  mode: number;
  data: Buffer;
  /** Device number of a character/block node. */
  rdev?: [number, number];
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Serialises entries (in the given order) plus the trailer. */
export function cpioPack(entries: CpioEntry[], mtime = 0): Buffer {
  const parts: Buffer[] = [];
  let ino = 0x1000;
  const put = (e: CpioEntry) => {
    const name = Buffer.from(e.name + '\0');
    const nlink = (e.mode & 0o170000) === S_IFDIR ? 2 : 1;
    const [maj, min] = e.rdev ?? [0, 0];
    const fields = [ino++, e.mode, 0, 0, nlink, mtime, e.data.length, 0, 0, maj, min, name.length, 0];
    const hdr = Buffer.from('070701' + fields.map((f) => (f >>> 0).toString(16).toUpperCase().padStart(8, '0')).join(''));
    parts.push(hdr, name, Buffer.alloc(pad4(hdr.length + name.length)), e.data, Buffer.alloc(pad4(e.data.length)));
  };
  for (const e of entries) put(e);
  put({ name: 'TRAILER!!!', mode: 0, data: Buffer.alloc(0) });
  return Buffer.concat(parts);
}

/** Entries for everything below dir, names sorted (regular files keep only their 0755 bits). */
export function entriesOf(dir: string, prefix = ''): CpioEntry[] {
  const out: CpioEntry[] = [];
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const full = path.join(dir, r);
      const st = fs.lstatSync(full);
      const name = prefix + r;
      if (st.isSymbolicLink()) out.push({ name, mode: S_IFLNK | 0o777, data: Buffer.from(fs.readlinkSync(full)) });
      else if (st.isDirectory()) {
        out.push({ name, mode: S_IFDIR | 0o755, data: Buffer.alloc(0) });
        walk(r);
      } else if (st.isFile()) out.push({ name, mode: S_IFREG | (st.mode & 0o755), data: fs.readFileSync(full) });
      else throw new Error(`unsupported file type: ${full}`);
    }
  };
  walk('');
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** A /dev/console node, so the kernel's init has a console before devtmpfs. */
export const DEV_CONSOLE: CpioEntry = { name: 'dev/console', mode: S_IFCHR | 0o600, data: Buffer.alloc(0), rdev: [5, 1] };

/** gzip with fixed settings (no name, no time in the header: deterministic). */
export function gzip(b: Buffer): Buffer {
  return zlib.gzipSync(b, { level: 6 });
}

/** Pads to a multiple of 512 bytes, so an archive appended later starts aligned. */
export function pad512(b: Buffer): Buffer {
  const p = (512 - (b.length % 512)) % 512;
  return p ? Buffer.concat([b, Buffer.alloc(p)]) : b;
}

if (require.main === module) {
  const [dir, out, mtime] = process.argv.slice(2);
  if (!dir || !out) {
    process.stderr.write('usage: cpio.js DIR OUT [MTIME]\n');
    process.exit(2);
  }
  const entries = entriesOf(dir);
  if (!entries.some((e) => e.name === 'dev/console')) entries.push(DEV_CONSOLE);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  fs.writeFileSync(out, pad512(gzip(cpioPack(entries, Number(mtime ?? 0)))));
}
