// A module with nothing in it (bench/rss-modules: the first file compiled is charged to the baseline).
export const warm = (x: number): number => x + 1;
