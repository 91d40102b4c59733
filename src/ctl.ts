// CONTRACT (issue 6 implements): `tallow status|list|ban|unban ...`, clients of the control socket.
// cli.ts hands over the arguments after the subcommand name; the result is the exit status.

export declare function ctlMain(subcommand: 'status' | 'list' | 'ban' | 'unban', args: string[]): Promise<number>;
