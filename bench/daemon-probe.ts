// What the whole-daemon benches read from a running daemon: its CPU from /proc, and `status`
// straight from its control socket (a filesystem socket in the sandbox's directory).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { StatusResult } from '../src/control-results';
import type { Sandbox } from '../test/env/sandbox';

/** utime + stime of `pid` so far, in clock ticks (/proc units, 100 a second on Linux). */
export function cpuTicks(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

/** One `status` request to the daemon of the sandbox directory `name`. */
export function socketStatus(sb: Sandbox, name: string): Promise<StatusResult> {
  return new Promise((resolve, reject) => {
    const c = net.connect(path.join(sb.dir, name, 'tallow.sock'));
    let buf = '';
    c.on('connect', () => c.write('{"cmd":"status"}\n'));
    c.on('data', (b) => {
      buf += b.toString();
      if (!buf.includes('\n')) return;
      c.end();
      const r = JSON.parse(buf.split('\n')[0]) as { ok: boolean; result: StatusResult; error?: string };
      if (r.ok) resolve(r.result);
      else reject(new Error(r.error));
    });
    c.on('error', reject);
  });
}
