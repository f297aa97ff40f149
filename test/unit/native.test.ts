import test from 'ava';
import { native, E } from '../../src/shared/native';
import { EFD_CLOEXEC, EFD_NONBLOCK } from '../../src/shared/linux';

test('csum sums big-endian words with an odd tail', (t) => {
  t.is(native.csum(new Uint8Array([1, 2, 3]), 0, 3), 0x0402);
  t.is(native.csum(new Uint8Array([0xff, 0xff, 0x00, 0x01]), 0, 4), 0x0001);
  t.is(native.csum(new Uint8Array(4), 2, 4), -E.EINVAL);
});

test('eventfd counts writes and reports EAGAIN when empty', (t) => {
  const fd = native.eventfdCreate(0, EFD_CLOEXEC | EFD_NONBLOCK);
  t.true(fd > 2);
  t.is(native.eventfdRead(fd), -E.EAGAIN);
  native.eventfdWrite(fd, 1);
  native.eventfdWrite(fd, 2);
  t.is(native.eventfdRead(fd), 3);
  t.is(native.close(fd), 0);
});
