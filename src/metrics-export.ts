// The metrics where Prometheus can take them, when the administrator asks: an HTTP endpoint on
// the one address named in tallow.conf (`metrics_listen`, off by default), and a textfile for
// node_exporter's textfile collector (`metrics_textfile`), rewritten atomically every 15 s.
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import type { Config } from './config';
import type { Logger } from './log';
import type { Metrics } from './metrics';

const TEXTFILE_EVERY_MS = 15_000;
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** `127.0.0.1:9725`, `[::1]:9725` -> host and port (config.ts has checked the form). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  if (!m) throw new Error(`expected ADDRESS:PORT (e.g. 127.0.0.1:9725 or [::1]:9725), got '${text}'`);
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

export class MetricsExport {
  private server: http.Server | null = null;
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  static async start(config: Config, metrics: Metrics, log: Logger): Promise<MetricsExport> {
    const x = new MetricsExport(metrics, log);
    if (config.metricsListen) await x.listen(config.metricsListen);
    if (config.metricsTextfile) x.textfile(config.metricsTextfile);
    return x;
  }

  /** Failing to listen is logged, not fatal: banning matters more than being scraped. */
  private async listen(where: string): Promise<void> {
    const { host, port } = parseListen(where);
    // node:http only when metrics_listen is set (it costs ~0.7 MiB of RSS to load: issue 12).
    const { createServer } = require('node:http') as typeof import('node:http');
    const server = createServer((req, res) => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD' }).end();
        return;
      }
      if (req.url !== '/metrics') {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('see /metrics\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': CONTENT_TYPE }).end(req.method === 'HEAD' ? undefined : this.metrics.prometheus());
    });
    server.headersTimeout = 10_000;
    server.requestTimeout = 10_000;
    server.maxConnections = 16;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port, exclusive: true }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      this.log.error(`metrics: cannot listen on ${where}: ${(e as Error).message}`);
      return;
    }
    server.on('error', (e) => this.log.error(`metrics: ${e.message}`));
    this.server = server;
    this.log.info('metrics: Prometheus endpoint listening', { address: `http://${where}/metrics` });
  }

  private textfile(file: string): void {
    const write = () => {
      const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
      try {
        // O_EXCL|O_NOFOLLOW: never write through a link someone planted; rename is atomic for the collector.
        const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
        try {
          fs.writeSync(fd, this.metrics.prometheus());
        } finally {
          fs.closeSync(fd);
        }
        fs.renameSync(tmp, file);
      } catch (e) {
        fs.rmSync(tmp, { force: true });
        this.log.error(`metrics: cannot write the textfile ${file}: ${(e as Error).message}`);
      }
    };
    write();
    this.timer = setInterval(write, TEXTFILE_EVERY_MS);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const s = this.server;
    this.server = null;
    if (s) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  }
}
