// The control socket: newline-delimited JSON over a UNIX socket, one request per line, one
// response per line. The daemon serves requests through a handler; `tallow status|list|ban|unban`
// are clients (ctl.ts). The server validates every request (control-requests.ts) before the
// handler sees it, so the handler only ever gets well-formed commands with canonical addresses;
// the shapes of the answers are in control-results.ts.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { parseJson } from './json';
import { MAX_BAN_SECONDS } from './limits';
import { checkPrivateDir } from './private-dir';
import { validateRequest, type ControlRequest } from './control-requests';

/** `exitCode`: the status the client exits with (78: a reload refused for a configuration error); default 1. */
export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string; exitCode?: number };

/**
 * The handler receives validated requests only: `address` is canonical (parseAddress: IPv4-mapped
 * IPv6 as IPv4, IPv6 in RFC 5952 form); `seconds`, when present, is an integer in
 * 1..MAX_BAN_SECONDS (absent: the daemon's `expires`). A thrown error becomes {ok:false,error}.
 */
export type ControlHandler = (req: ControlRequest) => Promise<ControlResponse>;

/** Longest manual ban: the kernel's ipset timeout limit, ~24.8 days. */
export { MAX_BAN_SECONDS };
/** A request line longer than this is refused and the connection closed. */
export const MAX_REQUEST_BYTES = 64 * 1024;
/** Connections served at once; more are refused with an error line. */
export const MAX_CLIENTS = 64;
/**
 * A client has this long, from connecting or from its last answer, to complete its next request
 * and read what it was sent; bytes that do not finish a request do not extend it.
 */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Answers waiting for a client that does not read: beyond this, its next request waits. */
export const MAX_QUEUED_REPLY_BYTES = 64 * 1024;
/** Control requests are flat objects; anything nested deeper is refused before it is parsed. */
const MAX_REQUEST_DEPTH = 8;

export const DEFAULT_SOCKET = '/run/tallow/tallow.sock';

function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Is something accepting connections on this socket path? */
function probe(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(p);
    const done = (live: boolean): void => {
      s.destroy();
      resolve(live);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

export interface ControlServerOptions {
  /** Called for server-side problems worth a log line (never for ordinary client mistakes). */
  onError?: (message: string) => void;
  /** REQUEST_TIMEOUT_MS unless given (tests). */
  requestTimeoutMs?: number;
}

export class ControlServer {
  private readonly clients = new Set<net.Socket>();
  private readonly refused = new Set<net.Socket>();
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly server: net.Server,
    private readonly handler: ControlHandler,
    private readonly options: ControlServerOptions,
  ) {}

  /**
   * Listens on `path` (mode 0600, parent created 0700 if missing); replaces a stale socket.
   * Refuses (UnsafeDirError) a directory another user could write: they could swap the socket.
   */
  static async listen(socketPath: string, handler: ControlHandler, options: ControlServerOptions = {}): Promise<ControlServer> {
    checkPrivateDir(path.dirname(socketPath), 'control socket directory');
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(socketPath);
    } catch {
      st = undefined;
    }
    if (st) {
      if (!st.isSocket()) throw new Error(`control socket: ${socketPath} exists and is not a socket; refusing to replace it`);
      if (await probe(socketPath)) {
        throw new Error(`control socket: another tallow is already listening on ${socketPath}`);
      }
      fs.unlinkSync(socketPath); // stale: left by a daemon that died
    }

    // allowHalfOpen: a client may send its last request and end; it still gets the answer.
    const server = net.createServer({ allowHalfOpen: true });
    const cs = new ControlServer(socketPath, server, handler, options);
    server.on('connection', (sock) => cs.accept(sock));
    server.maxConnections = MAX_CLIENTS * 2; // hard stop far above the polite refusal below
    // umask around listen: the socket is created 0600 from the start, never briefly world-open.
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      throw new Error(`control socket: cannot listen on ${socketPath}: ${errorText(e)}`);
    } finally {
      process.umask(old);
    }
    fs.chmodSync(socketPath, 0o600); // umask is process-wide; make sure regardless
    server.on('error', (e) => options.onError?.(`control socket: ${errorText(e)}`));
    return cs;
  }

  private accept(sock: net.Socket): void {
    if (this.closed) {
      sock.destroy();
      return;
    }
    sock.on('error', () => {}); // a client vanishing (EPIPE, ECONNRESET) is its business
    if (this.clients.size >= MAX_CLIENTS) {
      this.refused.add(sock);
      sock.on('close', () => this.refused.delete(sock));
      setTimeout(() => sock.destroy(), 1000).unref(); // a deadline: bytes it sends do not extend it
      sock.end(JSON.stringify({ ok: false, error: 'too many control connections; try again' }) + '\n');
      sock.resume(); // read (and drop) whatever it sends, so its end is seen and the socket freed
      return;
    }
    this.clients.add(sock);
    this.converse(sock);
  }

  /**
   * One client: requests are taken one at a time, in order. Its input is buffered up to about one
   * request (then reading pauses), and the next request waits while earlier answers sit unread
   * (more than MAX_QUEUED_REPLY_BYTES), so a client that sends without reading costs a bounded
   * amount of memory and, at its deadline, its connection.
   */
  private converse(sock: net.Socket): void {
    const timeoutMs = this.options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    let inbuf: Buffer = Buffer.alloc(0);
    let off = 0; // start of the next request in inbuf
    let scanned = 0; // inbuf[off, scanned) holds no newline
    let pumping = false;
    let serving = false;
    let ended = false;
    let done = false;
    let deadline: NodeJS.Timeout | null = null;

    // A deadline, not an idle timer: only an answer sent starts a new one. While the handler
    // works the client is waiting for us, so it is not cut off then (the answer re-arms).
    const arm = (): void => {
      if (deadline) clearTimeout(deadline);
      deadline = setTimeout(() => {
        if (!serving) sock.destroy();
      }, timeoutMs);
      deadline.unref();
    };
    arm();
    sock.on('close', () => {
      this.clients.delete(sock);
      if (deadline) clearTimeout(deadline);
      done = true;
    });

    const reply = (res: ControlResponse): void => {
      if (!sock.destroyed && sock.writable) sock.write(JSON.stringify(res) + '\n');
    };
    const drained = (): Promise<void> =>
      new Promise((resolve) => {
        const go = (): void => {
          sock.off('drain', go);
          sock.off('close', go);
          resolve();
        };
        sock.on('drain', go);
        sock.on('close', go);
      });
    const tooLong = (): void => {
      done = true;
      inbuf = Buffer.alloc(0);
      sock.resume(); // read (and drop) what it still sends, so its end is seen
      reply({ ok: false, error: `request longer than ${MAX_REQUEST_BYTES} bytes; closing` });
      sock.end();
      setTimeout(() => sock.destroy(), 1000).unref(); // a client that keeps sending is cut off
    };
    const answer = async (line: string): Promise<void> => {
      serving = true;
      const res = await this.serve(line);
      serving = false;
      if (res) {
        reply(res);
        arm(); // a blank line is no request: it earns no more time
      }
    };

    const pump = async (): Promise<void> => {
      if (pumping) return;
      pumping = true;
      try {
        while (!done && !sock.destroyed) {
          if (sock.writableLength > MAX_QUEUED_REPLY_BYTES) {
            sock.pause(); // the client is not reading: neither do we
            await drained();
            continue;
          }
          const nl = inbuf.indexOf(0x0a, scanned);
          if (nl < 0) {
            scanned = inbuf.length;
            if (inbuf.length - off > MAX_REQUEST_BYTES) return tooLong();
            if (ended) {
              // A last request without a newline, then end: answer it too, then hang up.
              const rest = inbuf.subarray(off).toString('utf8');
              inbuf = Buffer.alloc(0);
              off = scanned = 0;
              if (rest.trim() !== '') await answer(rest);
              done = true;
              sock.end();
              return;
            }
            sock.resume();
            return;
          }
          const line = inbuf.subarray(off, nl);
          off = scanned = nl + 1;
          if (line.length > MAX_REQUEST_BYTES) return tooLong();
          await answer(line.toString('utf8'));
        }
      } finally {
        pumping = false;
      }
    };

    sock.on('data', (chunk: Buffer) => {
      if (done) return;
      // Keep only what is not yet served; copying is bounded because reading pauses beyond that.
      inbuf = off < inbuf.length ? Buffer.concat([inbuf.subarray(off), chunk]) : chunk;
      scanned -= off;
      if (scanned < 0) scanned = 0;
      off = 0;
      if (inbuf.length > MAX_REQUEST_BYTES) sock.pause();
      void pump();
    });
    sock.on('end', () => {
      ended = true;
      void pump();
    });
  }

  /** One line in, one response out (null: blank line, nothing to say). Never throws. */
  private async serve(line: string): Promise<ControlResponse | null> {
    if (line.trim() === '') return null;
    let value: unknown;
    try {
      value = parseJson(line, MAX_REQUEST_DEPTH);
    } catch (e) {
      return { ok: false, error: `malformed request: ${errorText(e)}` };
    }
    let checked: ReturnType<typeof validateRequest>;
    try {
      checked = validateRequest(value);
    } catch (e) {
      // validateRequest is meant never to throw; if it does, the client still gets an answer.
      this.options.onError?.(`control: validating a request failed: ${errorText(e)}`);
      return { ok: false, error: 'malformed request' };
    }
    if ('error' in checked) return { ok: false, error: checked.error };
    try {
      const res = await this.handler(checked.req);
      if (!res || typeof res !== 'object' || typeof (res as { ok?: unknown }).ok !== 'boolean') {
        this.options.onError?.(`control: handler returned no response for ${checked.req.cmd}`);
        return { ok: false, error: 'internal error: no response' };
      }
      return res;
    } catch (e) {
      return { ok: false, error: errorText(e) };
    }
  }

  /** Stop accepting, drop connections, remove the socket file (only if it is still ours). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.clients, ...this.refused]) c.destroy();
    this.clients.clear();
    this.refused.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    // net.Server.close() unlinks the path itself on Linux; nothing else to do unless it lingers.
    try {
      if (fs.lstatSync(this.path).isSocket() && !(await probe(this.path))) fs.unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}
