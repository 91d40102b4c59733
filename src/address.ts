// CONTRACT (issue 3 implements): address parsing and normalisation (ip-address).

export type Family = 4 | 6;
export interface Address {
  /** Canonical text: dotted quad for IPv4 (IPv4-mapped IPv6 becomes IPv4), RFC 5952 for IPv6. */
  address: string;
  family: Family;
}
/** null when `text` is not a single valid IPv4/IPv6 address (no CIDR, no port, no zone). */
export declare function parseAddress(text: string): Address | null;
