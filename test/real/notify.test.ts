// Login alerts end to end (issue 16.4): a real sshd in the sandbox's server namespace, a real ssh
// client logging in with a key the test generates, journald, and the built CLI with the shipped
// sshd-logins rule switched on and a command action whose notify_command appends its arguments
// to a file. A successful login makes exactly one alert with the right user, address, method and
// key fingerprint (the fingerprint computed by ssh-keygen, not by tallow); a failed one none.
// Root's home in the sandbox's mount namespace is a tmpfs of the test's (authorized_keys there):
// the host's /root is never touched.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { DaemonProc, writeConfig } from './e2e-daemon';

let sb: Sandbox;
let d: DaemonProc | null = null;

describe('login alerts from a real sshd', { timeout: 180_000 }, () => {
  let key: string;
  let fingerprint: string;
  let out: string;

  before(async () => {
    sb = await createSandbox({ sshd: true });
    key = path.join(sb.dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'tallow-test', '-f', key]);
    // "256 SHA256:... tallow-test (ED25519)": the fingerprint as OpenSSH prints it.
    fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${key}.pub`], { encoding: 'utf8' }).split(' ')[1];
    assert.match(fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    // Only inside the sandbox's mount namespace: a private /root holding the key.
    await sb.check(['sh', '-c', `set -e; mount -t tmpfs -o mode=700 tmpfs /root; mkdir -m 700 /root/.ssh; cp ${key}.pub /root/.ssh/authorized_keys; chmod 600 /root/.ssh/authorized_keys`]);

    out = path.join(sb.dir, 'alerts.txt');
    const record = path.join(sb.dir, 'record.sh');
    fs.writeFileSync(record, `#!/bin/sh\nprintf '%s|' "$@" >> ${out}\necho >> ${out}\n`, { mode: 0o755 });
    const conf = writeConfig(sb, 'n', ['backend=ipset', 'threshold=100', `whitelist=${sb.client.v4}`, `action.alert.notify_command=${record} {user} {address} {method} {fingerprint} {rule} {event}`]);
    // The shipped rule is off: an override block in patterns_dir switches it on.
    fs.writeFileSync(path.join(sb.dir, 'n', 'patterns', 'local.json'), JSON.stringify([{ name: 'sshd-logins', enabled: true }]));
    d = new DaemonProc(sb, ['--config', conf]);
    await d.ready();
  });

  after(async () => {
    await d?.stop();
    await sb?.destroy();
  });

  const login = (source: string) =>
    sb.run(
      [
        'ssh', '-b', source, '-i', key, '-o', 'IdentitiesOnly=yes', '-o', 'PreferredAuthentications=publickey', '-o', 'PasswordAuthentication=no',
        '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR',
        `root@${sb.server.v4}`, 'true',
      ],
      { net: 'client', timeoutMs: 20000 },
    );
  const alerts = () => (fs.existsSync(out) ? fs.readFileSync(out, 'utf8').split('\n').filter(Boolean) : []);

  it('a successful key login makes one alert with the user, address, method and fingerprint', async () => {
    const source = sb.client.extraV4[0];
    const r = await login(source);
    assert.equal(r.code, 0, `ssh login must succeed: ${r.stderr}`);
    await waitFor(`an alert in ${out}\n${d!.output}`, () => alerts().length > 0, 20000, 50);
    assert.deepEqual(alerts(), [`root|${source}|publickey|${fingerprint}|sshd-logins|notify|`]);
    assert.ok(d!.has(new RegExp(`notify rule=sshd-logins address=${source.replace(/\./g, '\\.')} user=root method=publickey fingerprint=SHA256:`)), d!.output);
  });

  it('a failed login makes none (the next successful one, from an allowlisted address, is the only new alert)', async () => {
    const failed = await sb.failLogin(sb.client.extraV4[0], 'root');
    assert.notEqual(failed.code, 0, 'the wrong password must fail');
    // The journal keeps order: once the next login's alert is there, the failure has been read.
    const ok = await login(sb.client.v4);
    assert.equal(ok.code, 0, ok.stderr);
    await waitFor(`a second alert in ${out}\n${d!.output}`, () => alerts().length > 1, 20000, 50);
    assert.deepEqual(alerts().slice(1), [`root|${sb.client.v4}|publickey|${fingerprint}|sshd-logins|notify|`]);
  });
});
