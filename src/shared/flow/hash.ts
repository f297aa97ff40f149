/**
 * Flow hash for spreading guest frames over TCP worker shards: a cheap,
 * symmetric-enough mix of addresses and ports (FNV-1a over the 5-tuple
 * bytes). Not the flow table's keyed SipHash: this only picks a shard.
 */

/**
 * Hash of a packet's IP addresses (source and destination back to back at
 * u8[addrOff, addrOff+addrLen): the IP view's srcOff, 8 or 32 bytes) and
 * its L4 ports (the first four bytes at l4Off).
 */
export function flowHash(u8: Uint8Array, addrOff: number, addrLen: number, l4Off: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < addrLen; i++) h = Math.imul(h ^ u8[addrOff + i], 0x01000193);
  for (let i = 0; i < 4; i++) h = Math.imul(h ^ u8[l4Off + i], 0x01000193);
  return h >>> 0;
}
