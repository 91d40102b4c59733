// Limits shared by every stage, each defined once.

/** Longest ban, in seconds: ipset keeps timeouts as milliseconds in a signed 32-bit value (~24.8 days). */
export const MAX_BAN_SECONDS = 2_147_483;

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
