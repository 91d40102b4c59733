// The test environment itself (SPEC section 8): if these fail, every real-component test is moot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSandbox, waitFor } from '../env/sandbox';

test('sandbox journald records sshd failures with trusted fields, and ordinary senders with their uid', async (t) => {
  const sb = await createSandbox({ sshd: true });
  t.after(() => sb.destroy());

  await sb.logger('sshd', 'forged by nobody', 'nobody');
  const r = await sb.failLogin(sb.client.v4, 'root');
  assert.notEqual(r.code, 0, 'a wrong password must not log in');
  const r6 = await sb.failLogin(sb.client.v6, 'nosuchuser');
  assert.notEqual(r6.code, 0);

  let entries: Record<string, unknown>[] = [];
  await waitFor('sshd failure lines in the sandbox journal', async () => {
    entries = await sb.journal();
    const msgs = entries.map((e) => String(e.MESSAGE));
    return (
      msgs.some((m) => m.startsWith(`Failed password for root from ${sb.client.v4} port`)) &&
      msgs.some((m) => m.includes(`invalid user nosuchuser from ${sb.client.v6} port`))
    );
  });
  const failed = entries.find((e) => String(e.MESSAGE).startsWith('Failed password for root'))!;
  assert.equal(failed._EXE, '/usr/sbin/sshd');
  assert.equal(failed._UID, '0');
  const forged = entries.find((e) => e.MESSAGE === 'forged by nobody')!;
  assert.equal(forged.SYSLOG_IDENTIFIER, 'sshd');
  assert.equal(forged._UID, '65534');
  assert.notEqual(forged._EXE, '/usr/sbin/sshd');
});

test('sandbox network: the client reaches the server over IPv4 and IPv6', async (t) => {
  const sb = await createSandbox({ network: true });
  t.after(() => sb.destroy());
  const listener = sb.spawn(
    [process.execPath, '-e', "require('net').createServer(s=>s.end()).listen(2222,'::',()=>console.log('up'))"],
    { net: 'server' },
  );
  await new Promise<void>((res) => listener.stdout!.once('data', () => res()));
  assert.equal(await sb.canConnect(sb.client.v4, 2222), true);
  assert.equal(await sb.canConnect(sb.client.v6, 2222), true);
  assert.equal(await sb.canConnect(sb.client.v4, 2223), false, 'a closed port must refuse');
});
