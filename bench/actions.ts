// What each action costs on a flood of 10,000 bans (issue 16): the bans go through the ledger and
// the dispatcher to the firewall queue (a backend that only notes when each element arrived) and
// to one action. Measured: CPU seconds of this process (the daemon's share) and of the programs
// it ran (children, from /proc/self/stat), how far the bans reach the firewall behind the writer
// (lag: apply time - decision time), how long until the action had everything, and for the
// webhook the largest batch in one request. The webhook receiver runs in a separate process (its
// CPU is not ours). Run: npx tsc -p . && node dist/bench/actions.js [bans] [case name part]
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CommandListener } from '../src/actions/command';
import { MailListener } from '../src/actions/mail';
import { WebhookListener } from '../src/actions/webhook';
import { Dispatcher, type Listener } from '../src/events';
import { Firewall } from '../src/firewall';
import type { BanEntry, FirewallBackend, KernelBan } from '../src/firewall/backend';
import { Ledger } from '../src/ledger';
import { firewallListener } from '../src/listeners/firewall';

const BANS = Number(process.argv[2] ?? 10_000);
/** Only the cases whose name holds this text (all by default). */
const ONLY = process.argv[3] ?? '';
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

class TimingBackend implements FirewallBackend {
  readonly name = 'timing';
  arrived = new Map<string, number>();
  describe() {
    return 'timing';
  }
  async setup() {}
  async check() {
    return true;
  }
  async apply(add: BanEntry[]) {
    const now = performance.now();
    for (const e of add) this.arrived.set(e.address, now);
  }
  async list(): Promise<KernelBan[]> {
    return [];
  }
}

/** utime+stime of waited-for children, seconds (fields 16 and 17 of /proc/self/stat). */
function childCpu(): number {
  const f = fs.readFileSync('/proc/self/stat', 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime, in clock ticks (100 a second on Linux).
  return (Number(rest[13]) + Number(rest[14])) / 100;
}

async function receiver(): Promise<{ url: string; stop: () => void }> {
  const code = `const h=require('http');const s=h.createServer((q,r)=>{q.resume();q.on('end',()=>r.writeHead(204).end())});s.listen(0,'127.0.0.1',()=>console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((r) => child.stdout.once('data', (d: Buffer) => r(d.toString().trim())));
  return { url: `http://127.0.0.1:${port}/`, stop: () => child.kill() };
}

interface Result {
  cpu: number;
  children: number;
  lagP99: number;
  lagMax: number;
  writer: number;
  done: number;
  extra: string;
}

async function run(make: (dir: string) => Promise<{ l: Listener | null; extra: () => string; stop?: () => void }>): Promise<Result> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-bench-actions-'));
  try {
    const { l, extra, stop } = await make(dir);
    const backend = new TimingBackend();
    let events!: Dispatcher;
    const ledger = new Ledger({ emit: (e) => events.emit(e) });
    const fw = new Firewall(backend, quiet, { checkIntervalMs: 600_000, held: () => ledger.values() });
    await fw.start();
    events = new Dispatcher([firewallListener(fw), ...(l ? [l] : [])], quiet);
    const decided = new Map<string, number>();
    const c0 = process.cpuUsage();
    const k0 = childCpu();
    const t0 = performance.now();
    // As a flood brings them: 100 bans per journal batch, a tick apart.
    for (let i = 0; i < BANS; i += 100) {
      const now = Date.now();
      for (let j = i; j < Math.min(BANS, i + 100); j++) {
        const address = j < 65_000 ? `2001:db8::${(j + 1).toString(16)}` : `2001:db8:1::${(j + 1).toString(16)}`;
        decided.set(address, performance.now());
        ledger.ban({ address, family: 6, seconds: 3600, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5 }, now);
      }
      await new Promise((r) => setImmediate(r));
    }
    const writer = performance.now() - t0;
    await fw.flush();
    await events.flush(600_000);
    const done = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    const children = childCpu() - k0;
    await events.close();
    stop?.();
    const lags = [...decided].map(([a, t]) => (backend.arrived.get(a) ?? Infinity) - t).sort((a, b) => a - b);
    return { cpu: (cpu.user + cpu.system) / 1e6, children, lagP99: lags[Math.floor(lags.length * 0.99)], lagMax: lags[lags.length - 1], writer, done, extra: extra() };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function script(dir: string, text: string): string {
  const p = path.join(dir, 'prog');
  fs.writeFileSync(p, `#!/bin/sh\n${text}\n`, { mode: 0o755 });
  return p;
}

async function main(): Promise<void> {
  const common = { where: 'bench', queue: 1_000_000, timeoutMs: 60_000 };
  const cases: [string, (dir: string) => Promise<{ l: Listener | null; extra: () => string; stop?: () => void }>][] = [
    ['firewall alone', async () => ({ l: null, extra: () => '' })],
    [
      'command, per address, concurrency 4 (/bin/true)',
      async () => {
        const l = new CommandListener({ ...common, kind: 'command', name: 'c', ban: ['/bin/true', '{address}'], unban: null, concurrency: 4, batch: 0, restored: false }, quiet);
        return { l, extra: () => `${l.stats.runs} runs` };
      },
    ],
    [
      'command, batch=500 (sh reading stdin)',
      async (dir) => {
        const l = new CommandListener({ ...common, kind: 'command', name: 'b', ban: [script(dir, 'cat > /dev/null'), '{event}'], unban: null, concurrency: 1, batch: 500, restored: false }, quiet);
        return { l, extra: () => `${l.stats.runs} runs` };
      },
    ],
    [
      'webhook (receiver in another process)',
      async () => {
        const rx = await receiver();
        const l = new WebhookListener({ ...common, kind: 'webhook', name: 'w', url: rx.url, on: ['ban', 'unban'], bearerFile: '', secretFile: '', caFile: '', batch: 500, format: 'tallow', timeoutMs: 10_000 }, { bearer: 'x', secret: 'k', ca: '' }, quiet);
        return { l, extra: () => `${l.stats.requests} requests, largest batch ${l.stats.largestBatch}`, stop: rx.stop };
      },
    ],
    [
      'mail (sendmail = sh reading stdin)',
      async (dir) => {
        const l = new MailListener({ ...common, kind: 'mail', name: 'm', on: ['ban'], to: ['root'], from: 'root@localhost', sendmail: [script(dir, 'cat > /dev/null')], digestMs: 600_000, report: null }, quiet);
        // The digest waits 10 minutes: close() sends it, which is what the bench times.
        return { l: { name: l.name, maxBatch: l.maxBatch, handle: (e) => l.handle(e), flush: async () => { await l.close(); }, close: () => l.close() }, extra: () => `${l.stats.mails} mails listing ${l.stats.listed}` };
      },
    ],
  ];
  console.log(`${BANS.toLocaleString('en')} bans, 100 per tick; CPU s of the daemon process and of the programs it ran; lag = decision -> firewall apply`);
  for (const [name, make] of cases) {
    if (!name.includes(ONLY) && name !== 'firewall alone') continue;
    await run(make); // warm
    const r = await run(make);
    console.log(
      `  ${name.padEnd(48)} cpu ${r.cpu.toFixed(2)} s  children ${r.children.toFixed(2)} s  lag p99 ${r.lagP99.toFixed(1)} ms max ${r.lagMax.toFixed(1)} ms  writer ${r.writer.toFixed(0)} ms  all done ${(r.done / 1000).toFixed(1)} s  ${r.extra}`,
    );
  }
}

void main();
