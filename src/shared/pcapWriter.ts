/**
 * pcap capture (`-p FILE`, SPEC.md §1.7): the main thread creates the file
 * (mode 0600, truncated) and writes the global header; tap-RX and tap-TX
 * append one record per frame. The file is opened O_APPEND and each record
 * (16-byte header + frame) goes out in one write(), so records from the
 * two threads never interleave.
 */
import * as fs from 'node:fs';
import { native } from './native';
import { realtimeUs } from './time';
import { pcapGlobalHeader, writePcapRecordHeader, PCAP_RECORD_HEADER_LEN } from './pcap';

/** Creates the capture file and writes its global header; returns the fd (O_APPEND). */
export function openPcap(path: string): number {
  const fd = fs.openSync(path, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC |
    fs.constants.O_APPEND, 0o600);
  const h = pcapGlobalHeader();
  fs.writeSync(fd, h, 0, h.length);
  return fd;
}

export class PcapWriter {
  /** Record header and frame are assembled here and written with one write(). */
  private readonly rec = new Uint8Array(PCAP_RECORD_HEADER_LEN + 65536);
  errors = 0;

  constructor(readonly fd: number) {}

  /** Appends one record for the frame at u8[off, off+len). */
  write(u8: Uint8Array, off: number, len: number): void {
    if (this.fd < 0 || len > 65535) return;
    const [s, us] = realtimeUs();
    writePcapRecordHeader(this.rec, 0, s, us * 1000, len);
    this.rec.set(u8.subarray(off, off + len), PCAP_RECORD_HEADER_LEN);
    if (native.write(this.fd, this.rec, 0, PCAP_RECORD_HEADER_LEN + len) < 0) this.errors++;
  }
}
