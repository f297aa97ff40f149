/**
 * Domain-name wire encoding (RFC 1035 §3.1 labels, §4.1.4 compression) for the
 * search-list options: DHCP option 119 (RFC 3397, with compression), the
 * DHCPv6 domain list option 24 (RFC 3646) and the NDP DNSSL option (RFC 8106),
 * both without compression.
 *
 * Theory of operation: names are normalised once at start-up (trailing dots
 * dropped, root-only and invalid names skipped: a label of 1–63 bytes, a whole
 * name ≤ 255 bytes encoded), then encoded as a sequence of length-prefixed
 * labels ending in a zero byte. With compression, a suffix already written
 * earlier in the same data is replaced by a two-byte pointer (0xC0 | offset)
 * to where it was written; offsets count from the start of the option data,
 * as RFC 3397 §2 requires. Names are matched case-insensitively. The result
 * also lists where each name ends, so callers can keep a prefix of the list
 * when room is short (pointers only ever point backwards).
 */

/** Longest encoded name (RFC 1035 §2.3.4). */
export const DNS_NAME_MAX = 255;
export const DNS_LABEL_MAX = 63;

const enc = new TextEncoder();

/** A name with trailing dots removed, or null if it is root-only or invalid. */
export function normalizeDomain(name: string): string | null {
  const s = name.trim().replace(/\.+$/, '');
  if (s === '') return null;
  const labels = s.split('.');
  let total = 1;
  for (const l of labels) {
    const n = enc.encode(l).length;
    if (n === 0 || n > DNS_LABEL_MAX) return null;
    total += n + 1;
  }
  return total <= DNS_NAME_MAX ? s : null;
}

/** Encoded names and where each one ends in `data`. */
export interface EncodedNames {
  data: Uint8Array;
  /** ends[i] = length of the encoding of names[0..i]. */
  ends: number[];
}

/** Encodes already-normalised names, compressing repeated suffixes if asked. */
export function encodeDomainNames(names: readonly string[], compress: boolean): EncodedNames {
  const out: number[] = [];
  const ends: number[] = [];
  const seen = new Map<string, number>();
  for (const name of names) {
    const labels = name.split('.');
    let pointed = false;
    for (let i = 0; i < labels.length; i++) {
      if (compress) {
        const key = labels.slice(i).join('.').toLowerCase();
        const at = seen.get(key);
        if (at !== undefined) {
          out.push(0xc0 | (at >>> 8), at & 0xff);
          pointed = true;
          break;
        }
        if (out.length < 0x4000) seen.set(key, out.length);
      }
      const b = enc.encode(labels[i]);
      out.push(b.length, ...b);
    }
    if (!pointed) out.push(0);
    ends.push(out.length);
  }
  return { data: Uint8Array.from(out), ends };
}
