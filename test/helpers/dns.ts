/**
 * A DNS stand-in for tests: answers every A query with a fixed address, so
 * that DNS forwarding can be checked without any real resolver.
 */

/** The address every stand-in answer carries. */
export const STANDIN_ANSWER = '192.0.2.123';

/**
 * The response to a query: same ID and question, QR and RA set, one A
 * record (name pointer to the question) with STANDIN_ANSWER. null if the
 * query is shorter than a header.
 */
export function dnsAnswer(q: Uint8Array, answer = STANDIN_ANSWER): Buffer | null {
  if (q.length < 12) return null;
  const h = Buffer.from(q);
  h[2] = 0x81; // QR, RD
  h[3] = 0x80; // RA
  h.writeUInt16BE(1, 6); // ANCOUNT
  h.writeUInt16BE(0, 8);
  h.writeUInt16BE(0, 10);
  const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...answer.split('.').map(Number)]);
  return Buffer.concat([h, rr]);
}
