// The floor under the daemon's idle RSS (bench/idle-rss --floor): a node process doing only what
// the daemon cannot do without, none of tallow's own code: the addon with libsystemd opened on a
// journal directory, a Unix socket listening (node:net), a long-lived child process on pipes
// (node:child_process, like the firewall session), os.networkInterfaces() (never-ban), and with
// --sqlite an SQLite file opened through better-sqlite3 (history=sqlite, the shipped default).
//   node dist/bench/rss-floor.js DIR [--sqlite]      (prints "ready", then idles)
import { spawn } from 'node:child_process';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { addon } from '../src/addon';

const dir = process.argv[2];
const journal = new (addon().Journal)({ directory: path.join(dir, 'journal') });
journal.seekTail();
const server = net.createServer(() => {});
server.listen(path.join(dir, 'run', 'floor.sock'), () => {
  const child = spawn('cat', [], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdout.on('data', () => {});
  os.networkInterfaces();
  if (process.argv.includes('--sqlite')) {
    const Database = require('better-sqlite3') as typeof import('better-sqlite3');
    const db = new Database(path.join(dir, 'state', 'floor.sqlite'));
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE IF NOT EXISTS t (a TEXT)');
  }
  console.log('ready');
  setInterval(() => {}, 60_000);
});
