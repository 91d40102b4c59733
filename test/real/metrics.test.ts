// Metrics for real: a real sshd attacked by a real ssh client in the sandbox, the daemon's
// counters read back with `tallow status --json` and `tallow metrics`, Prometheus' own promtool
// checking the text, the HTTP endpoint answering on the configured address only (and absent
// unless configured), and the node_exporter textfile.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, SSHD_FILTER, inIpset, writeConfig } from './e2e-daemon';

const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 0, score: 0.5, pattern: '^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$' }] }];
const PORT = 9725;

let sb: Sandbox;
const daemons: DaemonProc[] = [];

function start(name: string, lines: string[]): { d: DaemonProc; conf: string } {
  const conf = writeConfig(sb, name, ['expires=60', 'whitelist=127.0.0.1', ...lines]);
  fs.writeFileSync(path.join(sb.dir, name, 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
  const d = new DaemonProc(sb, ['--config', conf]);
  daemons.push(d);
  return { d, conf };
}

/** TCP listeners in the server namespace, as `ss` shows them (local address:port). */
async function listeners(): Promise<string[]> {
  const out = await sb.check(['ss', '-Hltn'], { net: 'server' });
  return out.split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3]);
}

async function promtool(text: string): Promise<{ code: number | null; out: string }> {
  const r = await sb.run(['promtool', 'check', 'metrics'], { input: text });
  return { code: r.code, out: r.stdout + r.stderr };
}

describe('metrics', { timeout: 180_000 }, () => {
  before(async () => {
    if (!fs.existsSync('/usr/bin/promtool')) throw new Error('promtool is missing (Debian package prometheus; scripts/deps.sh installs it)');
    sb = await createSandbox({ sshd: true });
  });
  after(async () => {
    for (const d of daemons) if (!d.exit) d.kill('SIGKILL');
    await sb?.destroy();
  });

  it('no HTTP endpoint unless metrics_listen names one', async () => {
    const { d } = start('plain', []);
    await d.ready();
    const l = await listeners();
    assert.ok(l.some((a) => a.endsWith(':22')), `sshd is listening: ${l.join(' ')}`);
    assert.deepEqual(l.filter((a) => !a.endsWith(':22')), [], 'nothing but sshd listens');
    await d.stop();
    assert.equal(d.exit?.code, 0, d.output);
  });

  it('counts a real attack: status --json, tallow metrics (promtool-clean), HTTP on the named address only, textfile', async () => {
    const textfile = path.join(sb.dir, 'm', 'tallow.prom');
    const { d, conf } = start('m', [`metrics_listen=127.0.0.1:${PORT}`, `metrics_textfile=${textfile}`]);
    await d.ready();
    assert.ok(d.has(/metrics: Prometheus endpoint listening address=http:\/\/127\.0\.0\.1:9725\/metrics/), d.output);

    const attacker = sb.client.extraV4[0];
    for (let i = 0; i < 2; i++) assert.notEqual((await sb.failLogin(attacker)).code, 0);
    await waitFor(`${attacker} banned\n${d.output}`, () => inIpset(sb, attacker), 15000, 50);

    // status --json: the counters moved as the attack says.
    const st = await sb.run([process.execPath, CLI, 'status', '--json', '--config', conf], { net: 'server' });
    assert.equal(st.code, 0, st.stderr);
    const s = JSON.parse(st.stdout) as { bansActive: number; metrics: Record<string, unknown>; listeners: { name: string }[] };
    assert.equal(s.bansActive, 1);
    assert.deepEqual(s.metrics.matches_total, { 'sshd.json': 2 });
    assert.deepEqual(s.metrics.bans_total, { threshold: 1 });
    assert.deepEqual(s.metrics.bans_active, { ipv4: 1, ipv6: 0 });
    assert.ok((s.metrics.journal_entries_read_total as number) >= 2);
    assert.ok((s.metrics.firewall_batches_total as number) >= 1);
    assert.deepEqual(s.listeners.map((l) => l.name), ['firewall', 'log', 'metrics', 'state', 'recidive', 'history']);

    // A manual unban shows as an unban by reason.
    const ub = await sb.run([process.execPath, CLI, 'unban', attacker, '--config', conf], { net: 'server' });
    assert.equal(ub.code, 0, ub.stderr);

    const m = await sb.run([process.execPath, CLI, 'metrics', '--config', conf], { net: 'server' });
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stdout, /^tallow_matches_total\{file="sshd\.json"\} 2$/m);
    assert.match(m.stdout, /^tallow_bans_total\{reason="threshold"\} 1$/m);
    assert.match(m.stdout, /^tallow_unbans_total\{reason="manual"\} 1$/m);
    assert.match(m.stdout, /^# TYPE tallow_bans_total counter$/m);
    const check = await promtool(m.stdout);
    assert.equal(check.code, 0, `promtool check metrics:\n${check.out}\n${m.stdout}`);
    assert.equal(check.out.trim(), '', 'promtool has nothing to say');

    // HTTP: on 127.0.0.1 in the server namespace, the same text; not on the server's own address.
    const http = await sb.run(['curl', '-sS', '-D', '-', `http://127.0.0.1:${PORT}/metrics`], { net: 'server' });
    assert.equal(http.code, 0, http.stderr);
    assert.match(http.stdout, /^Content-Type: text\/plain; version=0\.0\.4/im);
    assert.match(http.stdout, /^tallow_bans_total\{reason="threshold"\} 1\r?$/m);
    assert.ok((await listeners()).includes(`127.0.0.1:${PORT}`));
    const fromOutside = await sb.run(['curl', '-sS', '--max-time', '3', `http://${sb.server.v4}:${PORT}/metrics`], { net: 'client' });
    assert.notEqual(fromOutside.code, 0, 'the endpoint must not answer on another address');

    // The textfile is there, complete, and promtool-clean.
    await waitFor('the metrics textfile', () => fs.existsSync(textfile), 5000, 50);
    const tf = fs.readFileSync(textfile, 'utf8');
    assert.match(tf, /^tallow_uptime_seconds /m);
    assert.equal((await promtool(tf)).code, 0);

    await d.stop();
    assert.equal(d.exit?.code, 0, d.output);
  });

  it('a bad metrics_listen value stops start-up with file:line and exit 78', async () => {
    const conf = writeConfig(sb, 'bad', ['metrics_listen=localhost:9725']);
    const r = await sb.run([process.execPath, CLI, '--config', conf], { net: 'server', timeoutMs: 30000 });
    assert.equal(r.code, 78, r.stderr);
    assert.match(r.stderr, /^tallow: \S+tallow\.conf:\d+: metrics_listen: expected ADDRESS:PORT with a literal address/);
  });
});
