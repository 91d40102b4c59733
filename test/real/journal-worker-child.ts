// Child of journal-live.test: worker threads open journals and go away (terminated while
// watching, exiting with a journal still open, ending normally); the process must not crash
// and every fd must come back.
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';
import { Journal } from '../../src/journal';
import { openFds } from '../fixtures/journal-export';

type Mode = 'warm-up' | 'terminate-while-watching' | 'exit-while-open' | 'end-normally';

async function inWorker(dir: string, mode: Mode): Promise<void> {
  if (mode === 'warm-up') return;
  const j = Journal.open({ directory: dir, fields: ['MESSAGE'] });
  if (mode === 'end-normally') {
    j.readBatch();
    return; // never closed, not watching: the environment's cleanup closes it
  }
  if (mode === 'exit-while-open') {
    j.readBatch();
    process.exit(0);
  }
  for await (const b of j.batches()) parentPort!.postMessage(`watching ${b.length}`);
}

function runWorker(dir: string, mode: Mode): Promise<void> {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: { dir, mode } });
    w.on('message', () => void w.terminate());
    w.on('error', reject);
    w.on('exit', () => resolve());
  });
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  Journal.open({ directory: dir, fields: ['MESSAGE'] }).close();
  // The first worker leaves an fd of Node's own behind; count from after it.
  await runWorker(dir, 'warm-up');
  const before = openFds();
  for (const mode of ['terminate-while-watching', 'exit-while-open', 'end-normally'] as Mode[]) {
    for (let i = 0; i < 3; i++) await runWorker(dir, mode);
  }
  await new Promise((r) => setTimeout(r, 50));
  const after = openFds();
  // Each worker's own loop fds are gone with it; journals must be too.
  if (after > before) throw new Error(`fds leaked by workers: ${before} before, ${after} after`);
  console.log(`ok fds ${before} -> ${after}`);
}

if (isMainThread) {
  main().catch((e: Error) => {
    console.error(e.message);
    process.exit(1);
  });
} else {
  const { dir, mode } = workerData as { dir: string; mode: Mode };
  void inWorker(dir, mode);
}
