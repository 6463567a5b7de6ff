/**
 * Where the ledger's scripts get the time. Every script compares expiry and deadlines with one `now`.
 * Production uses the Redis server's clock (TIME inside the script), so all sidecar replicas agree on every
 * expiry whatever their own clocks say; tests inject a clock they move by hand.
 */
export interface Clock {
  /** Milliseconds since the epoch, or undefined to let each script read the Redis server's clock. */
  nowMs(): number | undefined;
}

export const redisClock: Clock = { nowMs: () => undefined };

export class ManualClock implements Clock {
  constructor(private ms: number) {}
  nowMs(): number {
    return this.ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
