/**
 * epoll user data as a packed 32-bit integer (STYLE.md guideline 12): the
 * event type in the top 8 bits, an index (flow, listener, side) below.
 * Dispatch switches on the type directly, with no lookup per event.
 */

export const EpollType = {
  /** The worker's waker eventfd (rings and control messages). */
  WAKER: 1,
  /** The tap device or passt's connected socket. */
  TAP: 2,
  /** passt's listening UNIX socket. */
  TAP_LISTEN: 3,
  /** A TCP listening socket (forwarded port); index = listener. */
  TCP_LISTEN: 4,
  /** A TCP socket of a tap-side connection; index = flow. */
  TCP: 5,
  /** A spliced TCP socket; index = flow << 1 | side. */
  TCP_SPLICE: 6,
  /** A UDP listening socket; index = listener. */
  UDP_LISTEN: 7,
  /** A UDP reply socket; index = flow << 1 | side. */
  UDP_REPLY: 8,
  /** A ping socket; index = flow. */
  PING: 9,
  /** A pipe of a spliced connection; index = flow << 1 | side. */
  SPLICE_PIPE: 10,
} as const;

export type EpollType = (typeof EpollType)[keyof typeof EpollType];

export const EPOLL_TYPE_NAMES = {
  1: 'waker', 2: 'tap', 3: 'tap listen', 4: 'tcp listen', 5: 'tcp', 6: 'tcp splice', 7: 'udp listen', 8: 'udp reply',
  9: 'ping', 10: 'splice pipe',
} satisfies Record<EpollType, string>;

const INDEX_MASK = 0xffffff;

export function packRef(type: EpollType, index = 0): number {
  return ((type << 24) | (index & INDEX_MASK)) >>> 0;
}

export function refType(ref: number): EpollType {
  return ((ref >>> 24) & 0xff) as EpollType;
}

export function refIndex(ref: number): number {
  return ref & INDEX_MASK;
}
