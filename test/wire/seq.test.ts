import test from 'ava';
import { testProp, fc } from '@fast-check/ava';
import { SEQ_HORIZON, seqAdd, seqAfter, seqAfterEq, seqBefore, seqBeforeEq, seqDiff, seqMax } from '../../src/shared/wire/seq';

test('before/after with wrap-around', (t) => {
  t.true(seqBefore(1, 2));
  t.false(seqBefore(2, 2));
  t.true(seqBeforeEq(2, 2));
  t.true(seqBefore(0xffffffff, 0));
  t.true(seqAfter(5, 0xfffffff0));
  t.true(seqAfterEq(7, 7));
  t.is(seqAdd(0xffffffff, 2), 1);
  t.is(seqDiff(1, 0xffffffff), 2);
  t.is(seqMax(0xfffffff0, 5), 5);
});

test('the horizon is 2^24: numbers further apart are neither before nor after', (t) => {
  t.true(seqBefore(0, SEQ_HORIZON - 1));
  t.false(seqBefore(0, SEQ_HORIZON));
  t.false(seqAfter(0, SEQ_HORIZON));
  t.false(seqAfter(SEQ_HORIZON, 0) && seqBefore(SEQ_HORIZON, 0));
});

testProp('a before b iff (b − a) mod 2^32 in (0, 2^24)', [fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff })],
  (t, a, b) => {
    const d = Number((BigInt(b) - BigInt(a) + (1n << 32n)) % (1n << 32n));
    t.is(seqBefore(a, b), d > 0 && d < 2 ** 24);
    t.is(seqAfter(b, a), seqBefore(a, b));
    t.is(seqAdd(a, seqDiff(b, a)), b);
  });
