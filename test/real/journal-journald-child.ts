// Child of journal-journald.test, run inside the sandbox's mount namespace: reads the local
// system journal (the sandbox's journald) from the tail, prints each entry tagged tallow-test
// as a JSON line, and ends on the entry whose MESSAGE is END.
import { Journal } from '../../src/journal';
import { journalSend } from '../../src/systemd';

async function main(): Promise<void> {
  const j = Journal.open({
    fields: ['MESSAGE', 'SYSLOG_IDENTIFIER', '_EXE', '_UID', 'TALLOW_TEST'],
    matches: [['SYSLOG_IDENTIFIER=tallow-test']],
    batchSize: 100,
  });
  j.seek({ at: 'tail' });
  console.log(JSON.stringify({ ready: true }));
  process.stdin.on('data', (b: Buffer) => {
    if (b.toString().includes('send')) journalSend({ MESSAGE: 'sent by journalSend', SYSLOG_IDENTIFIER: 'tallow-test', TALLOW_TEST: 'structured\nvalue' });
  });
  for await (const batch of j.batches()) {
    for (const e of batch) {
      console.log(JSON.stringify(e.fields));
      if (e.fields.MESSAGE === 'END') j.close();
    }
  }
  process.stdin.destroy();
}

main().catch((e: Error) => {
  console.error(`journald child: ${e.message}`);
  process.exit(1);
});
