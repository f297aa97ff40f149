/**
 * Deadlines of the TCP worker's connections in one binary min-heap
 * (STYLE.md guideline 8: no setTimeout per connection; the worker's timer
 * pass pops what expired).
 *
 * Entries are (deadline, flow index). Moving a deadline later costs nothing:
 * the old entry stays and, when it pops, the owner finds its real deadline
 * still ahead and pushes it again. Moving it earlier pushes a new entry; the
 * owner remembers the earliest deadline it has in the heap (`heapedAt`) so
 * that an entry which no longer matches is recognised as stale and skipped.
 */
export class TimerHeap {
  private at = new Float64Array(64);
  private idx = new Int32Array(64);
  size = 0;

  /** Earliest deadline in the heap, or Infinity. */
  peekTime(): number {
    return this.size ? this.at[0] : Infinity;
  }

  /** Flow index of the earliest entry (heap not empty). */
  peekIndex(): number {
    return this.idx[0];
  }

  push(t: number, i: number): void {
    if (this.size === this.at.length) {
      const a = new Float64Array(this.size * 2);
      a.set(this.at);
      this.at = a;
      const b = new Int32Array(this.size * 2);
      b.set(this.idx);
      this.idx = b;
    }
    let n = this.size++;
    const at = this.at;
    const idx = this.idx;
    while (n > 0) {
      const p = (n - 1) >> 1;
      if (at[p] <= t) break;
      at[n] = at[p];
      idx[n] = idx[p];
      n = p;
    }
    at[n] = t;
    idx[n] = i;
  }

  /** Removes the earliest entry. */
  pop(): void {
    const n = --this.size;
    if (n <= 0) return;
    const at = this.at;
    const idx = this.idx;
    const t = at[n];
    const i = idx[n];
    let k = 0;
    for (;;) {
      let c = 2 * k + 1;
      if (c >= n) break;
      if (c + 1 < n && at[c + 1] < at[c]) c++;
      if (at[c] >= t) break;
      at[k] = at[c];
      idx[k] = idx[c];
      k = c;
    }
    at[k] = t;
    idx[k] = i;
  }
}
