// CONTRACT (issue 2 implements, in the addon): libsystemd services other than reading.

/** sd_notify(0, state), e.g. 'READY=1\nSTATUS=...'. Returns false when not under systemd. */
export declare function notify(state: string): boolean;
/** sd_watchdog_enabled(): the watchdog interval in microseconds, or 0. */
export declare function watchdogUsec(): number;
/** sd_journal_sendv(): one structured entry, fields as FIELD -> value (MESSAGE, PRIORITY, TALLOW_*...). */
export declare function journalSend(fields: Record<string, string>): void;
/** True when stdout/stderr is connected to the journal (JOURNAL_STREAM matches). */
export declare function underJournal(): boolean;
