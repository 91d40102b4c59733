// Deeply nested JSON from outside (a pattern file, the state file; the control socket is in
// control.test.ts): each gets its clear error, never "Maximum call stack size exceeded".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { depthExceeded, JsonError, MAX_JSON_DEPTH, parseJson } from '../../src/json';
import { loadPatternFiles, parsePatternFile, PatternError } from '../../src/patterns';
import { StateStore } from '../../src/state';
import { exitStatusFor } from '../../src/cli';
import { testRun } from '../../src/tester';

function tmpdir(t: { after(fn: () => void): void }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-json-${process.pid}-`));
  t.after(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const deep = (n: number, leaf = '1'): string => '['.repeat(n) + leaf + ']'.repeat(n);

test('parseJson: refuses nesting beyond the limit before parsing, counting only brackets outside strings', () => {
  assert.deepEqual(parseJson(deep(MAX_JSON_DEPTH)), JSON.parse(deep(MAX_JSON_DEPTH)));
  assert.throws(() => parseJson(deep(MAX_JSON_DEPTH + 1)), (e: JsonError) => {
    assert.ok(e instanceof JsonError);
    assert.equal(e.kind, 'depth');
    assert.equal(e.message, `nested deeper than ${MAX_JSON_DEPTH} levels at line 1, column ${MAX_JSON_DEPTH + 1}`);
    return true;
  });
  // Brackets inside strings, escaped quotes and backslashes do not count.
  const text = '{"a":"[[[[\\"[[[[\\\\","b":[["]]]]{{{{"]]}';
  assert.deepEqual(parseJson(text, 3), JSON.parse(text));
  assert.throws(() => parseJson(text, 2), /nested deeper than 2 levels at line 1, column 26/);
  assert.equal(depthExceeded('{"a":\n  [[1]]}', 2), 9);
  assert.throws(() => parseJson('{"a":\n  [[1]]}', 2), /at line 2, column 4$/);
  // A million levels: refused quickly, no RangeError.
  const t0 = Date.now();
  assert.throws(() => parseJson(deep(1_000_000)), JsonError);
  assert.ok(Date.now() - t0 < 1000);
});

test('parseJson: syntax errors name the place, never the text', () => {
  const secret = 'root:$6$S3CRET';
  for (const [text, where] of [[secret, ''], ['{"a":1', ' (it ends too early)'], ['{"a" 1}', ' at line 1, column 6'], ['', ' (it ends too early)']]) {
    assert.throws(() => parseJson(text), (e: JsonError) => {
      assert.equal(e.kind, 'syntax');
      assert.equal(e.message, `not valid JSON${where}`);
      assert.ok(e.detail, 'V8 message kept apart, for files the administrator wrote');
      return true;
    });
  }
});

test('a pattern file nested 5,000+ levels deep is a PatternError naming the file (exit 78)', async (t) => {
  const spots = [
    `[{"filter":"_UID=0","items":[{"ban":${deep(6000)},"score":0.2,"pattern":"^x (<IP>)$"}]}]`,
    `[{"filter":${deep(6000, '"_UID=0"')},"items":[]}]`,
    `[{"filter":"_UID=0","items":[${deep(6000)}]}]`,
    deep(100_000),
  ];
  for (const text of spots) {
    assert.throws(() => parsePatternFile(text, 'deep.json', '/etc/tallow/deep.json'), (e: Error) => {
      assert.ok(e instanceof PatternError, `${e.name}: ${e.message}`);
      assert.match(e.message, new RegExp(`^/etc/tallow/deep\\.json: nested deeper than ${MAX_JSON_DEPTH} levels at line 1, column \\d+$`));
      assert.equal(exitStatusFor(e), 78);
      return true;
    });
  }
  // Loaded from a directory, and through `tallow test --patterns FILE`.
  const dir = tmpdir(t);
  const file = path.join(dir, 'deep.json');
  fs.writeFileSync(file, spots[0]);
  assert.throws(() => loadPatternFiles(dir, path.join(dir, 'none')), { name: 'Error', message: new RegExp(`^${file}: nested deeper than`) });
  let err = '';
  const code = await testRun(['--patterns', file], { out: () => {}, err: (s) => (err += s) });
  assert.equal(code, 78);
  assert.match(err, new RegExp(`^tallow test: ${file}: nested deeper than ${MAX_JSON_DEPTH} levels at line 1, column \\d+\\n$`));
});

test('a state file nested 5,000+ levels deep is set aside like any damaged state', (t) => {
  const dir = tmpdir(t);
  for (const text of [
    `{"version":${deep(10_000)},"saved":1,"cursor":null,"records":[],"bans":[]}`,
    `{"version":1,"saved":1,"cursor":null,"records":[${deep(10_000)}],"bans":[]}`,
    deep(200_000),
  ]) {
    const s = new StateStore(dir);
    fs.writeFileSync(s.file, text);
    const r = s.load();
    assert.equal(r.state, null);
    assert.match(r.problem ?? '', /^state file .*state\.json is damaged: nested deeper than 64 levels at line 1, column \d+; moved aside to .*state\.json\.corrupt-/);
    assert.equal(fs.existsSync(s.file), false);
  }
});
