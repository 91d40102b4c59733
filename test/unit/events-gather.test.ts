// A listener with gatherMs (the history: fewer, larger transactions) is handed what was emitted
// over several ticks in one call; a full batch (maxBatch) is handed at once, without the wait;
// one without gatherMs still gets each tick's events a tick later.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dispatcher, type Listener, type TallowEvent } from '../../src/events';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const match = (i: number): TallowEvent => ({ kind: 'match', address: `192.0.2.${(i % 250) + 1}`, family: 4, pattern: 'x.json#1', file: 'x.json', at: i });
const tick = () => new Promise((r) => setImmediate(r));

function recorder(name: string, extra: Partial<Listener>): Listener & { calls: number[] } {
  const calls: number[] = [];
  return { name, wantsMatches: true, calls, handle: (es) => void calls.push(es.length), ...extra };
}

test('gatherMs: events of several ticks in one call; a full batch at once; others a tick later as before', async (t) => {
  const gathering = recorder('store', { gatherMs: 60_000, maxBatch: 50 });
  const plain = recorder('plain', {});
  const d = new Dispatcher([gathering, plain], quiet);
  t.after(() => d.close());
  for (let i = 0; i < 30; i++) {
    d.emit(match(i));
    if (i % 10 === 9) await tick();
  }
  await tick();
  assert.deepEqual(plain.calls, [10, 10, 10], 'each tick its own call');
  assert.deepEqual(gathering.calls, [], 'still gathering (60 s)');
  for (let i = 30; i < 50; i++) d.emit(match(i));
  await tick();
  assert.deepEqual(gathering.calls, [50], 'a full batch: handed at once, not after the wait');
});
