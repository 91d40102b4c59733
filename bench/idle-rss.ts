// Idle memory of the daemon (issue 12): starts `tallow` the way users do (node dist/src/cli.js
// --config FILE) with the shipped tallow.conf, waits for its ready line, then reads VmRSS from
// /proc/PID/status several times and reports the median. The default wait is 60 s: V8's memory
// reducer shrinks the young generation and flushes start-up code some 30-45 s after start, so a
// reading at 10 s shows ~5 MiB that an idle daemon gives back. As root it runs in a throw-away network
// namespace with backend=auto (ipset+iptables there; nothing on the host's firewall); --dry-run
// runs without one. state_dir and socket point into a temporary directory; the journal is an
// empty --journal-dir (--system-journal: the host's journal, read only).
//   node dist/bench/idle-rss.js [--runs 5] [--wait 60] [--samples 5] [--dry-run] [--system-journal]
//        [--set key=value]... [--node-flag FLAG]... [--empty-node] [--floor] [--smaps] [--root DIR]
//        [--every S] (also print VmRSS every S seconds while waiting: the timeline of one start)
// The bench first gives back its own start-up pages (src/memory.ts, as the daemon does): a
// production daemon is the only node process, and pages of the node binary this process maps
// too would stay in the daemon's RSS (the kernel keeps shared pages when release_memory asks).
// --set adds a tallow.conf line (e.g. history=off, release_memory=no); --node-flag passes a flag to node (e.g.
// --max-semi-space-size=1); --empty-node measures `node -e 'setInterval(...)'` the same way (the
// floor); --floor measures bench/rss-floor.js (libsystemd, a socket, a child, SQLite: what the
// daemon cannot do without, none of its own code); --smaps prints the largest resident mappings of the first run; --root runs another
// built tree's dist/src/cli.js (e.g. a worktree of the commit before, for a before/after).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { addon } from '../src/addon';
import { releaseStartupPages, resident, type Resident } from '../src/memory';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const ROOT = path.resolve(opt('--root', path.resolve(__dirname, '..', '..')));
const many = (name: string): string[] => args.flatMap((a, i) => (a === name ? [args[i + 1]] : []));
const RUNS = Number(opt('--runs', '5'));
const WAIT = Number(opt('--wait', '60'));
const SAMPLES = Number(opt('--samples', '5'));
const DRY = args.includes('--dry-run');
const SYSTEM_JOURNAL = args.includes('--system-journal');
const EMPTY = args.includes('--empty-node');
const FLOOR = args.includes('--floor');
const SMAPS = args.includes('--smaps');
const EVERY = Number(opt('--every', '0'));
const SETS = many('--set');
const NODE_FLAGS = many('--node-flag');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** KiB from /proc/PID/status (src/memory.ts reads the daemon's own the same way). */
function mem(pid: number): Resident {
  return resident(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
}

/** CPU seconds of pid so far, all its threads (V8 compiles on background threads). */
function cpuOf(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const w = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(w[11]) + Number(w[12])) / 100; // utime + stime, in USER_HZ (100 on Linux)
}

/** Direct children of pid (the firewall session, nft monitor) and their VmRSS (KiB). */
function children(pid: number): { comm: string; rss: number }[] {
  let list: string[] = [];
  try {
    list = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
  return list.flatMap((c) => {
    try {
      return [{ comm: fs.readFileSync(`/proc/${c}/comm`, 'utf8').trim(), rss: mem(Number(c)).rss }];
    } catch {
      return [];
    }
  });
}

/** Largest resident mappings (KiB), grouped by what is mapped. */
function smaps(pid: number): string {
  const by = new Map<string, number>();
  let name = '';
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) name = head[1] || '[anon]';
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) by.set(name, (by.get(name) ?? 0) + Number(rss[1]));
  }
  return [...by].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([n, k]) => `    ${(k / 1024).toFixed(2).padStart(6)} MiB  ${n}`).join('\n');
}

function waitFor(child: ChildProcess, re: RegExp, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ready line after ${ms} ms:\n${out.slice(-3000)}`)), ms);
    const on = (d: Buffer) => {
      out += d.toString();
      if (re.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code ?? sig}) before its ready line:\n${out.slice(-3000)}`));
    });
  });
}

async function once(run: number): Promise<{ mem: Resident; kids: { comm: string; rss: number }[]; smaps: string; readyMs: number; readyCpu: number }> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-idle-rss-${process.pid}-`));
  const ns = `tallow-rss-${process.pid}-${run}`;
  let child: ChildProcess | null = null;
  let netns = false;
  try {
    const state = path.join(tmp, 'state');
    const journal = path.join(tmp, 'journal');
    fs.mkdirSync(state, { mode: 0o700 });
    fs.mkdirSync(path.join(tmp, 'run'), { mode: 0o700 });
    fs.mkdirSync(journal);
    const conf = path.join(tmp, 'tallow.conf');
    const shipped = fs.readFileSync(path.join(ROOT, 'tallow.conf'), 'utf8');
    fs.writeFileSync(conf, `${shipped}\n# bench/idle-rss\nstate_dir=${state}\nsocket=${path.join(tmp, 'run', 'tallow.sock')}\n${SETS.join('\n')}\n`);
    let argv: string[];
    let ready: RegExp;
    if (EMPTY) {
      argv = [process.execPath, ...NODE_FLAGS, '-e', 'console.log("ready"); setInterval(() => {}, 1e6)'];
      ready = /ready/;
    } else if (FLOOR) {
      argv = [process.execPath, ...NODE_FLAGS, path.join(__dirname, 'rss-floor.js'), tmp, '--sqlite'];
      ready = /ready/;
    } else {
      argv = [process.execPath, ...NODE_FLAGS, path.join(ROOT, 'dist/src/cli.js'), '--config', conf, ...(SYSTEM_JOURNAL ? [] : ['--journal-dir', journal]), ...(DRY ? ['--dry-run'] : [])];
      ready = /journal: .*starting at/;
    }
    if (!DRY && !EMPTY && !FLOOR) {
      execFileSync('ip', ['netns', 'add', ns]);
      netns = true;
      argv = ['ip', 'netns', 'exec', ns, ...argv]; // ip execs the command: the pid stays node's
    }
    const t0 = process.hrtime.bigint();
    const c = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    await waitFor(c, ready, 60_000);
    const readyMs = Number(process.hrtime.bigint() - t0) / 1e6;
    await sleep(1000); // background compilation of start-up code ends shortly after
    const readyCpu = cpuOf(c.pid!);
    if (EVERY > 0) {
      for (let t = EVERY; t <= WAIT; t += EVERY) {
        await sleep(EVERY * 1000);
        const m = mem(c.pid!);
        console.log(`    run ${run + 1}, ${t} s: VmRSS ${(m.rss / 1024).toFixed(1)} MiB (anon ${(m.anon / 1024).toFixed(1)}, file ${(m.file / 1024).toFixed(1)})`);
      }
      await sleep((WAIT % EVERY) * 1000);
    } else {
      await sleep(WAIT * 1000);
    }
    const samples: Resident[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      if (i) await sleep(1000);
      samples.push(mem(c.pid!));
    }
    const m = { rss: median(samples.map((s) => s.rss)), anon: median(samples.map((s) => s.anon)), file: median(samples.map((s) => s.file)) };
    return { mem: m, kids: children(c.pid!), smaps: SMAPS && run === 0 ? smaps(c.pid!) : '', readyMs, readyCpu };
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    if (netns) execFileSync('ip', ['netns', 'delete', ns]);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!DRY && !EMPTY && !FLOOR && process.getuid?.() !== 0) throw new Error('needs root for the network namespace (or --dry-run)');
  const what = EMPTY ? 'empty node' : FLOOR ? 'bench/rss-floor.js (libsystemd, socket, child, SQLite)' : `tallow, shipped tallow.conf${SETS.length ? ` + ${SETS.join(' ')}` : ''}, ${DRY ? '--dry-run' : 'backend=auto in a netns'}, ${SYSTEM_JOURNAL ? 'system journal' : 'empty --journal-dir'}`;
  console.log(`${ROOT}: ${what}${NODE_FLAGS.length ? `, node ${NODE_FLAGS.join(' ')}` : ''}: VmRSS ${WAIT} s after the ready line, median of ${SAMPLES} readings 1 s apart, ${RUNS} starts`);
  const runs: Awaited<ReturnType<typeof once>>[] = [];
  releaseStartupPages(addon());
  for (let r = 0; r < RUNS; r++) {
    const o = await once(r);
    runs.push(o);
    const kids = o.kids.map((k) => `${k.comm} ${(k.rss / 1024).toFixed(1)}`).join(', ');
    console.log(`  run ${r + 1}: ready after ${o.readyMs.toFixed(0)} ms (CPU ${o.readyCpu.toFixed(2)} s 1 s later); VmRSS ${(o.mem.rss / 1024).toFixed(1)} MiB (anon ${(o.mem.anon / 1024).toFixed(1)}, file ${(o.mem.file / 1024).toFixed(1)})${kids ? `; children: ${kids} MiB` : ''}`);
    if (o.smaps) console.log(`  largest mappings (run 1):\n${o.smaps}`);
  }
  const med = (f: (m: Resident) => number) => (median(runs.map((o) => f(o.mem))) / 1024).toFixed(1);
  const ready = median(runs.map((o) => o.readyMs)).toFixed(0);
  const readyCpu = median(runs.map((o) => o.readyCpu)).toFixed(2);
  console.log(`median: VmRSS ${med((m) => m.rss)} MiB (anon ${med((m) => m.anon)}, file ${med((m) => m.file)}); ready after ${ready} ms, CPU ${readyCpu} s`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
