// Giving back the memory that only start-up used (issue 12, idle memory). Starting reads and
// compiles the configuration, the patterns and the modules: it runs code of the node binary
// (module loader, parsers, compilers) and of the libraries that an idle or busy daemon does not
// run again, and those pages stay mapped, counted in the daemon's RSS, until the kernel needs
// the memory. Once the daemon has settled, it asks the kernel to take them back now
// (madvise MADV_PAGEOUT, native/memory.cc) over the read-only mappings of the executable files
// it maps. The kernel drops only clean pages no other process maps (an admin's `node` running
// beside it keeps its pages), never changes what they hold, and a page used again is read back
// from the file. Writable mappings (data, heap, the journal's and SQLite's files) are not touched.
import * as fs from 'node:fs';
import { constants } from 'node:os';
import type { Addon } from './addon';

export interface CodeRange {
  start: number;
  length: number;
  file: string;
}

/**
 * The read-only mappings (code, constants) of every file mapped executable: the node binary,
 * shared libraries, addons. `maps` is the text of /proc/self/maps.
 */
export function codeRanges(maps: string): CodeRange[] {
  const rows: { start: number; end: number; perms: string; file: string }[] = [];
  for (const line of maps.split('\n')) {
    // start-end perms offset dev inode [path]; a path may hold spaces.
    const m = /^([0-9a-f]+)-([0-9a-f]+) ([rwxps-]{4}) [0-9a-f]+ \S+ \d+ +(\/.*)$/.exec(line);
    if (!m || m[4].endsWith(' (deleted)')) continue;
    rows.push({ start: parseInt(m[1], 16), end: parseInt(m[2], 16), perms: m[3], file: m[4] });
  }
  const executable = new Set(rows.filter((r) => r.perms[2] === 'x').map((r) => r.file));
  return rows
    .filter((r) => executable.has(r.file) && r.perms[1] !== 'w' && r.end > r.start && Number.isSafeInteger(r.end))
    .map((r) => ({ start: r.start, length: r.end - r.start, file: r.file }));
}

/** KiB from /proc/self/status. */
export interface Resident {
  rss: number;
  anon: number;
  file: number;
}

export function resident(status: string): Resident {
  const g = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: g('VmRSS'), anon: g('RssAnon'), file: g('RssFile') };
}

export interface Released {
  before: Resident;
  after: Resident;
  /** why the kernel refused (a kernel before 5.4 has no MADV_PAGEOUT), else undefined */
  unsupported?: string;
}

type Native = Pick<Addon, 'pageOut' | 'trimHeap'>;

const { EINVAL, ENOMEM } = constants.errno; // ENOMEM: the range was unmapped meanwhile, nothing to do

/** Gives back start-up's pages now (see the head of this file). Never throws for the kernel's answer. */
export function releaseStartupPages(native: Native, read: (file: string) => string = (f) => fs.readFileSync(f, 'utf8')): Released {
  const before = resident(read('/proc/self/status'));
  const ranges = codeRanges(read('/proc/self/maps'));
  let unsupported: string | undefined;
  for (const r of ranges) {
    const errno = native.pageOut(r.start, r.length);
    if (errno === 0 || errno === ENOMEM) continue;
    unsupported = errno === EINVAL ? 'the kernel has no MADV_PAGEOUT (Linux 5.4 and later)' : `madvise(MADV_PAGEOUT) on ${r.file}: errno ${errno}`;
    break;
  }
  // Start-up's freed C heap (parsers, the addon's buffers) stays with glibc until trimmed.
  native.trimHeap();
  return { before, after: resident(read('/proc/self/status')), unsupported };
}

const mib = (kib: number) => (kib / 1024).toFixed(1);

/** The log line for what releaseStartupPages did. */
export function releasedText(r: Released): string {
  if (r.unsupported) return `memory: start-up pages not given back: ${r.unsupported}`;
  return (
    `memory: gave back pages only start-up used: resident ${mib(r.before.rss)} -> ${mib(r.after.rss)} MiB ` +
    `(code of node and its libraries ${mib(r.before.file)} -> ${mib(r.after.file)} MiB; a page used again is read back from its file)`
  );
}
