import test from 'ava';
import {
  TCP_FLAG, TCP_HEADER_LEN, TCP_SYN_OPTIONS_LEN, TcpView, writeTcpHeader, writeTcpSynOptions,
} from '../../src/shared/wire/tcp';
import { l4Checksum4 } from '../../src/shared/wire/checksum';
import { TCP_SYN_SEGMENT } from '../helpers/fixtures';
import { canariesIntact, concat, hex, ip4, refChecksum, shared } from '../helpers/frames';

test('deconstruct a Linux SYN', (t) => {
  const u8 = shared(TCP_SYN_SEGMENT);
  const v = TcpView.check(u8, 0, u8.length)!;
  t.is(v.srcPort, 45678);
  t.is(v.dstPort, 80);
  t.is(v.seqNumber, 0x7a3c1f00);
  t.is(v.ackNumber, 0);
  t.is(v.dataOffset, 10);
  t.is(v.headerLen, 40);
  t.is(v.flags, TCP_FLAG.SYN);
  t.is(v.window, 64240);
  t.is(v.urgentPointer, 0);
  t.is(v.optionsOff, 20);
  t.is(v.optionsLen, 20);
  t.is(v.payloadOff, 40);
  t.is(v.payloadLen, 0);
  t.is(v.optMss, -1, 'options are parsed on request only');
  t.true(v.parseOptions());
  t.is(v.optMss, 1460);
  t.is(v.optWs, 7);
  t.true(v.optSackPermitted);
  t.true(v.optTimestamp);
  t.is(v.optTsVal, 0x000b8f3c);
  t.is(v.optTsEcr, 0);
  const s = Uint8Array.from(ip4('10.0.2.15'));
  const d = Uint8Array.from(ip4('93.184.216.34'));
  t.is(l4Checksum4(s, 0, d, 0, 6, u8, 0, u8.length), 0, 'the fixture checksum verifies');
});

test('construct our SYN+ACK into a 0xa5 buffer', (t) => {
  const b = new Uint8Array(40).fill(0xa5);
  const hl = writeTcpHeader(b, 4, 80, 45678, 0x11223344, 0x7a3c1f01, TCP_FLAG.SYN | TCP_FLAG.ACK, 65535, TCP_SYN_OPTIONS_LEN);
  t.is(hl, 28);
  t.is(writeTcpSynOptions(b, 4 + TCP_HEADER_LEN, 61440, 8), 8);
  t.deepEqual(b.subarray(4, 32), hex(`
    00 50 b2 6e  11 22 33 44  7a 3c 1f 01  70 12 ff ff  00 00 00 00
    02 04 f0 00  01  03 03 08`));
  t.true(canariesIntact(b, 4, 28));
  const v = TcpView.check(b, 4, 28)!;
  t.true(v.parseOptions());
  t.is(v.optMss, 61440);
  t.is(v.optWs, 8);
  t.false(v.optSackPermitted);
  t.false(v.optTimestamp);
});

test('setters', (t) => {
  const u8 = shared(TCP_SYN_SEGMENT);
  const v = TcpView.check(u8, 0, u8.length)!;
  v.setSrcPort(1); v.setDstPort(2); v.setSeqNumber(-1); v.setAckNumber(2 ** 32 + 5);
  v.setFlags(TCP_FLAG.ACK | TCP_FLAG.FIN); v.setWindow(3); v.setChecksum(4); v.setUrgentPointer(5);
  t.deepEqual([v.srcPort, v.dstPort, v.seqNumber, v.ackNumber, v.flags, v.window, v.checksum, v.urgentPointer],
    [1, 2, 0xffffffff, 5, 0x11, 3, 4, 5]);
  v.setDataOffset(5);
  t.is(v.headerLen, 20);
  t.is(u8[12] & 0x0f, 0, 'reserved bits untouched');
});

test('data offset checks', (t) => {
  const u8 = shared(TCP_SYN_SEGMENT);
  const v = new TcpView(u8);
  t.false(v.reset(0, 19));
  t.false(v.reset(0, 39), 'header (40) longer than the segment');
  t.true(v.reset(0, 40));
  const b = u8.slice();
  b[12] = 0x40; // 16 bytes < 20
  t.is(TcpView.check(b, 0, 40), null);
  b[12] = 0xf0; // 60 bytes > 40
  t.is(TcpView.check(b, 0, 40), null);
});

function optsSeg(opts: number[]): Uint8Array {
  const pad = (4 - (opts.length % 4)) % 4;
  const all = [...opts, ...new Array(pad).fill(0)];
  const h = hex('0001 0002 00000000 00000000 0002 ffff 0000 0000');
  h[12] = ((20 + all.length) / 4) << 4;
  return concat(h, all);
}
function walk(opts: number[]): { ok: boolean; v: TcpView } {
  const s = optsSeg(opts);
  const v = TcpView.check(s, 0, s.length)!;
  return { ok: v.parseOptions(), v };
}

test('options walk: EOL stops, NOP is one byte', (t) => {
  let r = walk([1, 1, 1, 2, 4, 0x05, 0xb4]);
  t.true(r.ok);
  t.is(r.v.optMss, 1460);
  r = walk([0, 2, 4, 0x05, 0xb4]);
  t.true(r.ok);
  t.is(r.v.optMss, -1, 'after EOL');
});

test('options walk: bad lengths abort, earlier finds are kept', (t) => {
  let r = walk([2, 4, 0x01, 0x00, 0x22, 1, 3, 3, 5]); // unknown kind 0x22 with length 1
  t.false(r.ok);
  t.is(r.v.optMss, 256);
  t.is(r.v.optWs, -1);
  r = walk([3, 3, 2, 0x22, 0]); // kind 0x22, length 0
  t.false(r.ok);
  t.is(r.v.optWs, 2);
  r = walk([3, 3, 2, 8, 10, 0, 0]); // timestamp running past the area (padded to 8 bytes)
  t.false(r.ok);
  t.is(r.v.optWs, 2);
  t.false(r.v.optTimestamp);
  r = walk([1, 1, 1, 2]); // kind without length byte at the very end
  t.false(r.ok);
});

test('options walk: wrong lengths for known kinds are skipped, unknown kinds too, first wins', (t) => {
  const r = walk([2, 3, 9, 0x99, 4, 1, 2, 2, 4, 0x02, 0x18, 3, 3, 14, 3, 3, 9, 2, 4, 0x00, 0x10]);
  t.true(r.ok);
  t.is(r.v.optMss, 0x0218);
  t.is(r.v.optWs, 14);
});

test('window scale values above 14 are reported raw', (t) => {
  const r = walk([3, 3, 200]);
  t.is(r.v.optWs, 200);
});

test('payload follows the options; checksum covers it', (t) => {
  const seg = concat(optsSeg([2, 4, 5, 0xb4]), hex('48656c6c6f'));
  const v = TcpView.check(seg, 0, seg.length)!;
  t.is(v.payloadOff, 24);
  t.is(v.payloadLen, 5);
  const s = Uint8Array.from(ip4('1.2.3.4'));
  t.is(l4Checksum4(s, 0, s, 0, 6, seg, 0, seg.length), refChecksum(ip4('1.2.3.4'), ip4('1.2.3.4'), [0, 6, 0, seg.length], seg));
});
