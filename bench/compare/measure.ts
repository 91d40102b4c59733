// Measurement helpers for bench/compare: a cgroup v2 per daemon run (CPU of the daemon and of every
// process it spawns, living or exited), RSS from /proc, and a persistent `ipset -` session in the
// daemon's network namespace to ask the kernel what is banned without one process per question.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Sandbox } from '../../test/env/sandbox';

/** Wall clock in milliseconds with sub-millisecond resolution (comparable with CLOCK_REALTIME). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Where a writable cgroup v2 hierarchy is mounted (pure v2, or the hybrid layout's unified/). */
export function cgroupRoot(): string {
  for (const p of ['/sys/fs/cgroup/unified', '/sys/fs/cgroup']) {
    if (fs.existsSync(path.join(p, 'cgroup.procs')) && fs.existsSync(path.join(p, 'cgroup.subtree_control'))) return p;
  }
  throw new Error('bench: no cgroup v2 hierarchy found (/sys/fs/cgroup/unified or /sys/fs/cgroup); CPU of spawned processes cannot be counted');
}

const liveCgroups = new Set<string>();
// After the sandbox's own exit handler (registered first) has ended the processes.
process.on('exit', () => {
  for (const d of liveCgroups) {
    try {
      fs.rmdirSync(d);
    } catch {
      /* still busy or gone */
    }
  }
});

export class Cgroup {
  readonly dir: string;
  constructor(name: string) {
    this.dir = path.join(cgroupRoot(), name);
    fs.mkdirSync(this.dir);
    liveCgroups.add(this.dir);
    if (!fs.existsSync(path.join(this.dir, 'cpu.stat'))) throw new Error(`bench: ${this.dir}/cpu.stat is missing (kernel too old for cgroup v2 cpu.stat)`);
  }

  /** CPU seconds (user+system) of everything that ever ran in this cgroup. */
  cpuSeconds(): number {
    const m = /usage_usec (\d+)/.exec(fs.readFileSync(path.join(this.dir, 'cpu.stat'), 'utf8'));
    return m ? Number(m[1]) / 1e6 : NaN;
  }

  pids(): number[] {
    try {
      return fs
        .readFileSync(path.join(this.dir, 'cgroup.procs'), 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map(Number);
    } catch {
      return [];
    }
  }

  /** Sum over the cgroup's processes of a /proc/<pid>/status field in KiB (VmRSS, VmHWM). */
  sumStatusKiB(field: 'VmRSS' | 'VmHWM'): number {
    let sum = 0;
    for (const pid of this.pids()) sum += statusKiB(pid, field);
    return sum;
  }

  /** CPU seconds of each living process (its own utime+stime), summed by name: where the time went. */
  cpuByName(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const pid of this.pids()) {
      try {
        const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        const comm = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        // After the name: state is field 3, utime 14, stime 15 (clock ticks, 100 per second on Linux).
        out[comm] = (out[comm] ?? 0) + (Number(f[11]) + Number(f[12])) / 100;
      } catch {
        /* exited */
      }
    }
    return out;
  }

  /** Names of the processes in the cgroup (for readiness checks, e.g. sshguard's journalctl). */
  comms(): string[] {
    const out: string[] = [];
    for (const pid of this.pids()) {
      try {
        out.push(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
      } catch {
        /* exited */
      }
    }
    return out;
  }

  /** Remove the cgroup once its processes are gone (waits up to 5 s). */
  async remove(): Promise<void> {
    const end = Date.now() + 5000;
    for (;;) {
      try {
        fs.rmdirSync(this.dir);
        liveCgroups.delete(this.dir);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return void liveCgroups.delete(this.dir);
        if (Date.now() > end) {
          process.stderr.write(`bench: could not remove ${this.dir}: ${(e as Error).message}\n`);
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

export function statusKiB(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Samples the summed RSS of a cgroup's processes and keeps the peak. */
export class RssSampler {
  peakKiB = 0;
  private timer: NodeJS.Timeout | null = null;
  constructor(private cg: Cgroup, everyMs = 100) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }
  sample(): void {
    this.peakKiB = Math.max(this.peakKiB, this.cg.sumStatusKiB('VmRSS'));
  }
  stop(): number {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
    // The high-water marks catch peaks between samples (an upper bound when processes peak apart).
    return Math.max(this.peakKiB, this.cg.sumStatusKiB('VmHWM'));
  }
}

/**
 * One long-lived `ipset -` (interactive mode) in the server namespace. `test` answers come on
 * stderr, one line per command; `list -t` output comes on stdout, one block per prompt. Two
 * sessions keep the two streams apart.
 */
export class IpsetSession {
  private child: ChildProcess;
  private pending: ((line: string) => void)[] = [];
  private buf = '';
  private closed = false;

  constructor(sb: Sandbox, mode: 'test' | 'list') {
    // -o0: no stdio buffering on stdout, so each block arrives as soon as it is printed.
    this.child = sb.spawn(['stdbuf', '-o0', 'ipset', '-'], { net: 'server' });
    const stream = mode === 'test' ? this.child.stderr! : this.child.stdout!;
    const other = mode === 'test' ? this.child.stdout! : this.child.stderr!;
    other.resume();
    stream.setEncoding('utf8');
    let skippedFirstPrompt = false;
    stream.on('data', (d: string) => {
      this.buf += d;
      if (mode === 'test') {
        let i;
        while ((i = this.buf.indexOf('\n')) >= 0) {
          const line = this.buf.slice(0, i);
          this.buf = this.buf.slice(i + 1);
          this.pending.shift()?.(line);
        }
      } else {
        let i;
        while ((i = this.buf.indexOf('ipset> ')) >= 0) {
          const block = this.buf.slice(0, i);
          this.buf = this.buf.slice(i + 7);
          if (!skippedFirstPrompt) {
            skippedFirstPrompt = true;
            continue;
          }
          this.pending.shift()?.(block);
        }
      }
    });
    this.child.on('exit', () => {
      this.closed = true;
      for (const p of this.pending.splice(0)) p('');
    });
    this.child.stdin!.on('error', () => {});
  }

  private ask(cmd: string): Promise<string> {
    if (this.closed) return Promise.resolve('');
    return new Promise((resolve) => {
      this.pending.push(resolve);
      this.child.stdin!.write(cmd + '\n');
    });
  }

  /** Is `addr` in `set` (false also when the set does not exist yet)? */
  async test(set: string, addr: string): Promise<boolean> {
    const line = await this.ask(`test ${set} ${addr}`);
    return / is in set /.test(line);
  }

  /** Entries per existing set. */
  async counts(): Promise<Map<string, number>> {
    const block = await this.ask('list -t');
    const out = new Map<string, number>();
    let name = '';
    for (const l of block.split('\n')) {
      const n = /^Name: (\S+)/.exec(l);
      if (n) name = n[1];
      const c = /^Number of entries: (\d+)/.exec(l);
      if (c && name) out.set(name, Number(c[1]));
    }
    return out;
  }

  close(): void {
    this.child.stdin!.end();
    setTimeout(() => {
      if (!this.closed) this.child.kill('SIGKILL');
    }, 1000).unref();
  }
}

/** Members of the given sets, from `ipset save` (one process). */
export async function setMembers(sb: Sandbox, sets: string[]): Promise<Set<string>> {
  const out = new Set<string>();
  const r = await sb.run(['ipset', 'save'], { net: 'server', timeoutMs: 60000 });
  for (const l of r.stdout.split('\n')) {
    const m = /^add (\S+) (\S+)/.exec(l);
    if (m && sets.includes(m[1])) out.add(m[2].replace(/\/(32|128)$/, ''));
  }
  return out;
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}
