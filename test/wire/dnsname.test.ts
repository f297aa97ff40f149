import test from 'ava';
import { encodeDomainNames, normalizeDomain } from '../../src/shared/wire/dnsname';
import { hex } from '../helpers/frames';

test('normalise: trailing dots dropped, root and invalid names rejected', (t) => {
  t.is(normalizeDomain('example.com.'), 'example.com');
  t.is(normalizeDomain(' example.com.. '), 'example.com');
  t.is(normalizeDomain('.'), null);
  t.is(normalizeDomain(''), null);
  t.is(normalizeDomain('a..b'), null);
  t.is(normalizeDomain('x'.repeat(63) + '.com'), 'x'.repeat(63) + '.com');
  t.is(normalizeDomain('x'.repeat(64) + '.com'), null);
  const long = Array(4).fill('y'.repeat(63)).join('.'); // 4·64 + 1 = 257 > 255
  t.is(normalizeDomain(long), null);
});

test('plain label encoding', (t) => {
  const e = encodeDomainNames(['example.com', 'eng.example.com'], false);
  t.deepEqual(e.data, hex('07 6578616d706c65 03 636f6d 00  03 656e67 07 6578616d706c65 03 636f6d 00'));
  t.deepEqual(e.ends, [13, 30]);
});

test('RFC 1035 compression: suffixes become pointers to earlier offsets', (t) => {
  const e = encodeDomainNames(['example.com', 'eng.example.com', 'example.com', 'corp.org', 'a.corp.ORG'], true);
  t.deepEqual(e.data, hex(`
    07 6578616d706c65 03 636f6d 00
    03 656e67 c0 00
    c0 00
    04 636f7270 03 6f7267 00
    01 61 c0 15`));
  t.deepEqual(e.ends, [13, 19, 21, 31, 35]);
});

test('RFC 3397 §3 example (offsets from the option data start)', (t) => {
  const e = encodeDomainNames(['eng.apple.com', 'marketing.apple.com'], true);
  t.deepEqual(e.data, hex('03 656e67 05 6170706c65 03 636f6d 00  09 6d61726b6574696e67 c0 04'));
});
