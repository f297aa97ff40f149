import test from 'ava';
import { endianness } from 'node:os';
import { pcapGlobalHeader, pcapRecordHeader, writePcapRecordHeader } from '../../src/shared/pcap';
import { hex } from '../helpers/frames';

const le = endianness() === 'LE';

test('global header: magic, 2.4, snaplen 65535, linktype 1, host order', (t) => {
  const h = pcapGlobalHeader();
  t.is(h.length, 24);
  if (le) t.deepEqual(h, hex('d4c3b2a1 0200 0400 00000000 00000000 ffff0000 01000000'));
  else t.deepEqual(h, hex('a1b2c3d4 0002 0004 00000000 00000000 0000ffff 00000001'));
});

test('record header: seconds, rounded microseconds, lengths', (t) => {
  const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  const b = new Uint8Array(20).fill(0xa5);
  t.is(writePcapRecordHeader(b, 2, 1736380800, 999999600, 42), 16);
  const d = dv(b);
  t.is(d.getUint32(2, le), 1736380801, 'microseconds rounded up to the next second');
  t.is(d.getUint32(6, le), 0);
  t.is(d.getUint32(10, le), 42);
  t.is(d.getUint32(14, le), 42);
  t.is(b[0], 0xa5);
  t.is(b[18], 0xa5);
  const r = pcapRecordHeader(1736380800123.4567, 65535);
  t.is(dv(r).getUint32(0, le), 1736380800);
  t.is(dv(r).getUint32(4, le), 123457);
});
