// CONTRACT (issue 6 implements): the control socket, newline-delimited JSON.
// The daemon serves requests through a handler; `tallow status|list|ban|unban` are clients.

export type ControlRequest =
  | { cmd: 'status' }
  | { cmd: 'list' }
  | { cmd: 'ban'; address: string; seconds?: number }
  | { cmd: 'unban'; address: string };

export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string };

export type ControlHandler = (req: ControlRequest) => Promise<ControlResponse>;

export declare class ControlServer {
  /** Listens on `path` (mode 0600, parent created 0700 if missing); replaces a stale socket. */
  static listen(path: string, handler: ControlHandler): Promise<ControlServer>;
  close(): Promise<void>;
}
