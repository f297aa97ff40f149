/**
 * Flow hash for spreading guest frames over TCP worker shards: a cheap,
 * symmetric-enough mix of addresses and ports (FNV-1a over the 5-tuple
 * bytes). Not the flow table's keyed SipHash: this only picks a shard.
 */

/** Hash of the IP addresses and L4 ports of the packet at l3Off/l4Off. */
export function flowHash(u8: Uint8Array, l3Off: number, l4Off: number, v4: boolean): number {
  let h = 0x811c9dc5;
  const a = v4 ? l3Off + 12 : l3Off + 8;
  const n = v4 ? 8 : 32;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ u8[a + i], 0x01000193);
  for (let i = 0; i < 4; i++) h = Math.imul(h ^ u8[l4Off + i], 0x01000193);
  return h >>> 0;
}
