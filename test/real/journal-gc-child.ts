// Child of journal-live.test: opens journals it never closes, drops them, and checks that
// garbage collection closes them (the open fd count comes back). Run with --expose-gc.
import { Journal } from '../../src/journal';
import { openFds } from '../fixtures/journal-export';

function openAndDrop(dir: string): void {
  for (let i = 0; i < 50; i++) {
    const j = Journal.open({ directory: dir, fields: ['MESSAGE'] });
    if (j.readBatch().length !== 3) throw new Error('expected 3 entries');
  }
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  Journal.open({ directory: dir, fields: ['MESSAGE'] }).close(); // load the addon first
  const before = openFds();
  openAndDrop(dir); // in its own frame, so no journal stays reachable from this one
  const opened = openFds();
  if (opened < before + 50) throw new Error(`expected at least 50 more fds while open, got ${before} -> ${opened}`);
  for (let i = 0; i < 20 && openFds() > before; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  const after = openFds();
  if (after > before) throw new Error(`fds not released by GC: ${before} before, ${opened} open, ${after} after`);
  console.log(`ok fds ${before} -> ${opened} -> ${after}`);
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
