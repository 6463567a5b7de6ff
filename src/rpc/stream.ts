// What both edges (and instrument()) share about server-streaming calls: how a stream ends when its signal
// aborts, reading a handler's next message without outliving the call, and the signal a streaming call gets.
import { Code, ConnectError } from "@connectrpc/connect";

/** The message of the UNAVAILABLE that ends open streams when a graceful shutdown begins. */
export const SHUTTING_DOWN = "server shutting down";

/**
 * Streams end with UNAVAILABLE, not OK, when the server shuts down: it tells a client (grpcurl, a watcher's
 * reconnect loop) that the stream did not end by itself and that another replica, or this one restarted, will
 * serve it again, which is what gRPC clients' retry policies key on.
 */
export function shuttingDown(): ConnectError {
  return new ConnectError(SHUTTING_DOWN, Code.Unavailable);
}

/** The error of a call whose signal aborted: the reason when it is a ConnectError (as the edges abort), else CANCELED. */
export function abortedError(signal: AbortSignal): ConnectError {
  const reason: unknown = signal.reason;
  return reason instanceof ConnectError ? reason : new ConnectError("the call was cancelled", Code.Canceled);
}

export const ABORTED = Symbol("aborted");

/**
 * it.next(), or ABORTED as soon as the signal aborts, whichever comes first: a handler that is slow to notice
 * its signal cannot keep a call open. Promise.race against one promise per call would pin a reaction per message
 * for the life of the stream; this adds one listener per next() and removes it. A next() that settles after the
 * abort is still observed (its rejection caught), so nothing is left unhandled.
 */
export function nextOrAborted<T>(it: AsyncIterator<T>, signal: AbortSignal): Promise<IteratorResult<T> | typeof ABORTED> {
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(ABORTED);
    signal.addEventListener("abort", onAbort, { once: true });
    let pending: Promise<IteratorResult<T>>;
    try {
      pending = it.next();
    } catch (err) {
      signal.removeEventListener("abort", onAbort);
      reject(err);
      return;
    }
    pending.then(
      (r) => {
        signal.removeEventListener("abort", onAbort);
        resolve(r);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/**
 * Stops an iterator the edge no longer reads. For an async generator suspended inside an await, return() is
 * queued and runs its `finally` blocks at its next yield (or it just finishes); errors there have nowhere to go.
 */
export function stopIterator(it: AsyncIterator<unknown> | undefined): void {
  if (it?.return === undefined) return;
  try {
    it.return().catch(() => {});
  } catch {
    // A return() that throws synchronously: the iterator is done either way.
  }
}

/**
 * A controller whose signal also aborts when any of `parents` does, with the parent's reason as a ConnectError
 * (abortedError: connect aborts a request whose connection closed with a bare DOMException, which is a CANCELED
 * for the handler); dispose() detaches it from them. (AbortSignal.any would do without the mapping, but keeps
 * the parents' listeners until garbage collection.)
 */
export function linkedController(parents: readonly AbortSignal[]): { controller: AbortController; dispose(): void } {
  const controller = new AbortController();
  const detach: Array<() => void> = [];
  const dispose = (): void => {
    for (const f of detach) f();
    detach.length = 0;
  };
  for (const parent of parents) {
    if (parent.aborted) {
      controller.abort(abortedError(parent));
      dispose();
      return { controller, dispose };
    }
    const onAbort = (): void => {
      controller.abort(abortedError(parent));
      dispose();
    };
    parent.addEventListener("abort", onAbort, { once: true });
    detach.push(() => parent.removeEventListener("abort", onAbort));
  }
  return { controller, dispose };
}
