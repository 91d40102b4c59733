// The actions of tallow.conf as listeners, one each (its own queue and back-off: a slow webhook
// never holds back a command, the firewall or another action). Every action defined is started;
// each takes only the events routed to it (select.ts): its rules' (`"actions"` in a patterns
// file), or, for a rule that names none, those of `actions=` (default: all defined).
import * as fs from 'node:fs';
import type { Config } from '../config';
import { ConfigError } from '../config';
import type { Listener } from '../events';
import { errText } from '../limits';
import type { Logger } from '../log';
import type { Rule } from '../rule';
import { actionRouter } from './select';
import type { ActionConfig } from './settings';

// Each kind's module is loaded when an action of that kind is configured: webhook.ts brings
// node:http and node:https, which a daemon without webhooks need not hold (idle memory, issue 12).
const command = () => require('./command') as typeof import('./command');
const mail = () => require('./mail') as typeof import('./mail');
const webhook = () => require('./webhook') as typeof import('./webhook');

/** The actions of the rules that name none (and of bans without a rule): `actions=`, or every one defined. */
export function defaultActions(config: Pick<Config, 'actionDefs' | 'actions'>): ActionConfig[] {
  const { actionDefs = [], actions } = config;
  return actions == null ? actionDefs : actionDefs.filter((a) => actions.includes(a.name));
}

function executable(p: string): string | null {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile() ? null : 'not a file';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? errText(e);
  }
}

/**
 * One listener per action in use. A token or key file that cannot be read is a configuration
 * error (exit 78, naming the action); a program that is not there is logged now (and each run
 * that fails, later) so that the rest of the daemon still starts.
 */
export function actionListeners(config: Pick<Config, 'actionDefs' | 'actions' | 'file'>, log: Logger, rules?: () => readonly Rule[]): Listener[] {
  const out: Listener[] = [];
  const route = actionRouter(config, rules);
  for (const a of config.actionDefs ?? []) {
    const programs = a.kind === 'command' ? [a.ban?.[0], a.unban?.[0], a.notify?.[0]] : a.kind === 'mail' && !a.smtp ? [a.sendmail[0]] : [];
    for (const p of new Set(programs)) {
      const why = p ? executable(p) : null;
      if (why) log.error(`action.${a.name} (${a.where}): ${p}: ${why}; its runs will fail until it is there`);
    }
    if (a.kind === 'command') out.push(new (command().CommandListener)(a, log));
    else if (a.kind === 'mail') {
      const { mailTransport } = require('./transport') as typeof import('./transport');
      let transport;
      try {
        transport = mailTransport(a);
      } catch (e) {
        throw new ConfigError(`${a.where}: ${errText(e)}`);
      }
      out.push(new (mail().MailListener)(a, log, undefined, transport));
    }
    else {
      const { readSecret, WebhookListener } = webhook();
      const secret = (key: string, file: string) => {
        if (!file) return '';
        try {
          return key === 'ca_file' ? fs.readFileSync(file, 'utf8') : readSecret(`action.${a.name}.${key}`, file);
        } catch (e) {
          throw new ConfigError(`${a.where}: ${key === 'ca_file' ? `action.${a.name}.ca_file=${file}: ` : ''}${errText(e)}`);
        }
      };
      out.push(new WebhookListener(a, { bearer: secret('bearer_file', a.bearerFile), secret: secret('secret_file', a.secretFile), ca: secret('ca_file', a.caFile) }, log));
    }
    const l = out[out.length - 1];
    l.wants = (e) => route(e).has(a.name);
    log.info(`action.${a.name}: ${describe(a)}${usedBy(a.name, config, rules?.() ?? [])}`);
  }
  return out;
}

/** `; for rules sshd, postfix` / `; for every rule` / `; for no rule yet`, for the start-up line. */
function usedBy(name: string, config: Pick<Config, 'actions'>, rules: readonly Rule[]): string {
  const byDefault = config.actions == null || config.actions.includes(name);
  const own = rules.filter((r) => r.actions?.includes(name)).map((r) => r.name);
  const others = rules.some((r) => !r.actions);
  if (byDefault && others) return own.length ? `; for the rules without "actions" and ${own.join(', ')}` : '; for every rule without "actions"';
  return own.length ? `; for rules ${own.join(', ')}` : byDefault ? '; for bans without a rule' : '; for no rule (name it in a rule\'s "actions")';
}

function describe(a: ActionConfig): string {
  if (a.kind === 'command') {
    const on = [a.ban && 'ban', a.unban && 'unban', a.notify && 'notify'].filter(Boolean).join(' and ');
    return `command on ${on}, ${a.batch ? `up to ${a.batch} addresses per run on standard input` : `one run per address, ${a.concurrency} at once`}`;
  }
  if (a.kind === 'webhook') return `webhook ${new URL(a.url).origin} on ${a.on.join(' and ')}, up to ${a.batch} events per request${a.secretFile ? ', signed' : ''}`;
  const via = a.smtp ? `SMTP ${a.smtp.url}${a.smtp.tls ? '' : `, STARTTLS ${a.starttls ?? 'required'}`}${a.user ? `, as ${a.user}` : ''}` : a.sendmail[0];
  return `mail to ${a.to.join(', ')} on ${a.on.join(' and ')} through ${via}, at most one every ${Math.round(a.digestMs / 60_000)} min`;
}
