/**
 * pcap capture format (SPEC §1.7): the classic libpcap file, in host byte
 * order, as read by `tcpdump -r`.
 *
 * Theory of operation: a file is one 24-byte global header (magic
 * 0xa1b2c3d4, version 2.4, thiszone 0, sigfigs 0, snaplen 65535, linktype 1
 * = Ethernet) followed by one 16-byte record header (seconds, microseconds,
 * captured length, original length) and the frame bytes per frame. Frames
 * are at most 65535 bytes, so captured length = original length = the
 * Ethernet frame length (never the passt 4-byte length prefix). This module
 * only produces the header bytes; the tap-TX worker writes them.
 */
import { endianness } from 'node:os';

export const PCAP_MAGIC = 0xa1b2c3d4;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
export const PCAP_SNAPLEN = 65535;
export const PCAP_LINKTYPE_ETHERNET = 1;
export const PCAP_GLOBAL_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;

const LE = endianness() === 'LE';

/** Writes the 24-byte global header at out[off]; returns 24. */
export function writePcapGlobalHeader(out: Uint8Array, off: number): number {
  const dv = new DataView(out.buffer, out.byteOffset + off, PCAP_GLOBAL_HEADER_LEN);
  dv.setUint32(0, PCAP_MAGIC, LE);
  dv.setUint16(4, PCAP_VERSION_MAJOR, LE);
  dv.setUint16(6, PCAP_VERSION_MINOR, LE);
  dv.setInt32(8, 0, LE); // thiszone
  dv.setUint32(12, 0, LE); // sigfigs
  dv.setUint32(16, PCAP_SNAPLEN, LE);
  dv.setUint32(20, PCAP_LINKTYPE_ETHERNET, LE);
  return PCAP_GLOBAL_HEADER_LEN;
}

/** The 24 bytes of the global header. */
export function pcapGlobalHeader(): Uint8Array {
  const b = new Uint8Array(PCAP_GLOBAL_HEADER_LEN);
  writePcapGlobalHeader(b, 0);
  return b;
}

/**
 * Writes a 16-byte record header at out[off] for a frame of `len` bytes
 * captured at sec + nsec (CLOCK_REALTIME); microseconds rounded to nearest.
 * Returns 16.
 */
export function writePcapRecordHeader(out: Uint8Array, off: number, sec: number, nsec: number, len: number): number {
  let s = Math.floor(sec);
  let us = Math.round(nsec / 1000);
  if (us >= 1000000) { s += Math.floor(us / 1000000); us %= 1000000; }
  const dv = new DataView(out.buffer, out.byteOffset + off, PCAP_RECORD_HEADER_LEN);
  dv.setUint32(0, s >>> 0, LE);
  dv.setUint32(4, us, LE);
  const cap = Math.min(len, PCAP_SNAPLEN);
  dv.setUint32(8, cap, LE);
  dv.setUint32(12, len, LE);
  return PCAP_RECORD_HEADER_LEN;
}

/** A record header for a frame of len bytes at a time in ms since the epoch (e.g. Date.now()). */
export function pcapRecordHeader(timeMs: number, len: number): Uint8Array {
  const b = new Uint8Array(PCAP_RECORD_HEADER_LEN);
  const sec = Math.floor(timeMs / 1000);
  writePcapRecordHeader(b, 0, sec, Math.round((timeMs - sec * 1000) * 1e6), len);
  return b;
}
