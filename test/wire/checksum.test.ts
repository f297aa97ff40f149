import test from 'ava';
import { testProp, fc } from '@fast-check/ava';
import {
  csum, finish, fold, l4Checksum4, l4Checksum6, NATIVE_CSUM_MIN, pseudo4, pseudo6, setNativeCsum, sum16,
} from '../../src/shared/wire/checksum';
import { refChecksum, ip4, ip6, be16, be32 } from '../helpers/frames';

test('RFC 1071 §3 numerical example', (t) => {
  const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
  t.is(fold(sum16(b, 0, 8)), 0xddf2);
  t.is(finish(sum16(b, 0, 8)), 0x220d);
});

test('odd length pads the last byte with zero', (t) => {
  t.is(sum16(Uint8Array.of(1, 2, 3), 0, 3), 0x0102 + 0x0300);
  t.is(sum16(Uint8Array.of(9, 1, 2, 3), 1, 3), 0x0102 + 0x0300);
});

test('fold handles carries and very large accumulators', (t) => {
  t.is(fold(0x1ffff), 0x0001);
  t.is(fold(0xffff), 0xffff);
  t.is(fold(2 ** 48), 1); // 2^16 ≡ 1 in one's complement arithmetic
  t.is(fold(2 ** 40), 256);
});

test('a checksum over data that includes its own checksum verifies to 0', (t) => {
  const b = Uint8Array.of(0x45, 0, 0, 0x54, 0, 0, 0x40, 0, 0x40, 1, 0, 0, 10, 0, 2, 15, 1, 1, 1, 1);
  const c = finish(sum16(b, 0, 20));
  b[10] = c >>> 8;
  b[11] = c & 0xff;
  t.is(finish(sum16(b, 0, 20)), 0);
  t.is(c, refChecksum(Uint8Array.of(0x45, 0, 0, 0x54, 0, 0, 0x40, 0, 0x40, 1, 0, 0, 10, 0, 2, 15, 1, 1, 1, 1)));
});

test('pseudo-headers match RFC 768 / RFC 8200 layouts', (t) => {
  const s4 = Uint8Array.from(ip4('10.0.2.15'));
  const d4 = Uint8Array.from(ip4('93.184.216.34'));
  const seg = Uint8Array.from({ length: 37 }, (_, i) => i * 7);
  t.is(l4Checksum4(s4, 0, d4, 0, 6, seg, 0, seg.length), refChecksum(s4, d4, [0, 6], be16(37), seg));
  t.is(fold(pseudo4(s4, 0, d4, 0, 17, 8)), fold(sum16(Uint8Array.from([...s4, ...d4, 0, 17, 0, 8]), 0, 12)));
  const s6 = Uint8Array.from(ip6('fe80::1'));
  const d6 = Uint8Array.from(ip6('2001:db8::5'));
  t.is(l4Checksum6(s6, 0, d6, 0, 58, seg, 0, seg.length), refChecksum(s6, d6, be32(37), [0, 0, 0, 58], seg));
  // lengths above 65535 contribute both halves
  t.is(fold(pseudo6(s6, 0, d6, 0, 17, 0x12345)), fold(sum16(Uint8Array.from([...s6, ...d6, ...be32(0x12345), 0, 0, 0, 17]), 0, 40)));
});

test('csum switches to native at NATIVE_CSUM_MIN and agrees with JS', (t) => {
  const b = new Uint8Array(new SharedArrayBuffer(70000));
  for (let i = 0; i < b.length; i++) b[i] = (i * 131 + 7) & 0xff;
  for (const [off, len] of [[0, NATIVE_CSUM_MIN], [1, 1501], [14, 65536], [3, 0], [0, 70000]]) {
    t.is(fold(csum(b, off, len, 5)), fold(sum16(b, off, len, 5)), `off ${off} len ${len}`);
  }
  setNativeCsum(false);
  t.is(fold(csum(b, 1, 3000)), fold(sum16(b, 1, 3000)));
  setNativeCsum(true);
});

testProp('sum16 equals the reference checksum for any bytes and offsets',
  [fc.uint8Array({ maxLength: 3000 }), fc.nat(20)], (t, data, pre) => {
    const b = new Uint8Array(pre + data.length);
    b.set(data, pre);
    t.is(finish(sum16(b, pre, data.length)), refChecksum(data));
    t.is(finish(csum(b, pre, data.length)), refChecksum(data));
  });

testProp('summing split at an even boundary equals summing at once',
  [fc.uint8Array({ minLength: 2, maxLength: 600 }), fc.nat()], (t, data, k) => {
    const cut = (k % (data.length >> 1)) * 2;
    t.is(fold(sum16(data, cut, data.length - cut, sum16(data, 0, cut))), fold(sum16(data, 0, data.length)));
  });
