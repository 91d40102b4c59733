// CONTRACT (issue 6 implements): `tallow test ...`, the pattern tester.
// cli.ts hands over the arguments after `test`; the result is the exit status.

export declare function testMain(args: string[]): Promise<number>;
