// The client's output through a pipe read slowly is whole: the process exits only once its
// output is written (a `tallow list --json` of a few thousand bans is hundreds of KiB).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli.js');

test('large output to a slow pipe is not cut at exit (tallow test --unmatched over a big input file)', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-pipe-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // `tallow test --unmatched` prints every line no pattern matched: 20,000 lines make well over 64 KiB.
  const input = path.join(dir, 'lines.txt');
  const lines: string[] = [];
  for (let i = 0; i < 20_000; i++) lines.push(`nothing an attacker wrote, line ${i} of a quiet log`);
  fs.writeFileSync(input, lines.join('\n') + '\n');
  const child = spawn(process.execPath, [CLI, 'test', '--unmatched', '--config', '/dev/null', input], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pause();
  await new Promise((r) => setTimeout(r, 1500)); // the pipe fills while nobody reads
  const chunks: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => chunks.push(b));
  child.stdout.resume();
  const code = await new Promise<number | null>((r) => child.on('close', r));
  const out = Buffer.concat(chunks).toString('utf8');
  assert.equal(code, 1); // as grep: no line matched
  assert.ok(out.length > 200_000, `expected the whole report, got ${out.length} bytes`);
  assert.ok(out.endsWith('\n'), 'ends with its last line');
});
