// Loads the compiled N-API addon (build/Release/tallow.node) once, with an error that says
// how to build it when it is missing.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The native journal object (native/journal.h). Mechanisms only; src/journal.ts holds the policy. */
export interface NativeJournal {
  close(): void;
  setFields(fields: string[]): void;
  setMaxFieldSize(bytes: number): void;
  addMatch(term: string): void;
  addDisjunction(): void;
  seekHead(): void;
  seekTail(): void;
  seekCursor(cursor: string): void;
  seekRealtime(usec: number): void;
  next(): number;
  previous(): number;
  testCursor(cursor: string): boolean;
  /** Reads up to `max` entries, handing them to `sink` as its arguments, many entries per call:
   *  per entry cursor, realtime, then one value (or undefined) per field given to setFields.
   *  Returns the number of entries read. */
  readBatch(max: number, includeCurrent: boolean, sink: (...values: Array<string | number | undefined>) => void): number;
  process(): number;
  watch(callback: (processResult: number) => void): void;
  unwatch(): void;
}

export interface Addon {
  Journal: new (options: { directory?: string; files?: string[] }) => NativeJournal;
  /** nftables change notifications (native/rulewatch.h): `callback(count)` for messages of `types`
   *  (-1: some were dropped); never keeps the process alive. */
  RuleWatch: new (types: number[], callback: (count: number) => void) => { close(): void };
  notify(state: string): boolean;
  watchdogUsec(): number;
  journalSend(items: string[]): void;
  underJournal(): boolean;
  /** madvise(MADV_PAGEOUT) over [start, start+length): 0 or the errno (native/memory.cc). */
  pageOut(start: number, length: number): number;
  /** malloc_trim(0): true if memory went back to the kernel. */
  trimHeap(): boolean;
  /** dup2(fd, target): 0 or the errno (native/stdio.cc). */
  dupOnto(fd: number, target: number): number;
}

// dist/src/addon.js -> <root>/build; src/addon.ts run directly -> <root>/build.
const candidates = [
  path.resolve(__dirname, '..', '..', 'build', 'Release', 'tallow.node'),
  path.resolve(__dirname, '..', 'build', 'Release', 'tallow.node'),
];

let loaded: Addon | undefined;

export function addon(): Addon {
  if (loaded) return loaded;
  const file = candidates.find((p) => fs.existsSync(p));
  if (!file) {
    throw new Error(
      `tallow: the native addon is not built (looked for ${candidates[0]}); run "npm run build:addon" ` +
        '(needs g++, make, python3, pkg-config and libsystemd-dev)',
    );
  }
  try {
    loaded = require(file) as Addon;
  } catch (err) {
    throw new Error(`tallow: cannot load the native addon ${file}: ${(err as Error).message}; rebuild it with "npm run build:addon"`);
  }
  return loaded;
}
