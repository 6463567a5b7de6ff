// One webhook attempt: the signed POST and what came of it. The dispatcher (webhooks.ts) decides what happens next.
import { createHmac } from "node:crypto";

/** What the receiver sees of an event besides the body (lower-case, as node:http presents them). */
export const WEBHOOK_HEADERS = {
  eventId: "creditd-event-id",
  eventType: "creditd-event-type",
  signature: "creditd-signature",
} as const;

/**
 * The creditd-signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (Stripe's scheme).
 * The timestamp is signed with the body, so a receiver that refuses old timestamps refuses replays of a captured
 * request; each attempt is signed afresh.
 */
export function webhookSignature(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac("sha256", secret).update(`${unixSeconds}.`).update(body).digest("hex");
  return `t=${unixSeconds},v1=${mac}`;
}

export type AttemptOutcome =
  | { ok: true; status: number }
  /** status 0: no HTTP answer (timeout, refused connection, reset, DNS). */
  | { ok: false; status: number; error: string }
  /** Aborted because the dispatcher is stopping: neither a success nor a failure. */
  | { ok: false; stopped: true };

class AttemptTimeout extends Error {}

/**
 * POSTs one event. Never throws: every way an attempt can end is an outcome. Only 2xx is success; a redirect is a
 * failure (not followed: following would turn the POST into a GET elsewhere). The response body is never read,
 * so a receiver cannot make creditd hold a large answer in memory.
 */
export async function postWebhook(opts: {
  url: string;
  secret: string;
  body: string;
  eventId: string;
  eventType: string;
  timeoutMs: number;
  /** Aborts the attempt when the dispatcher stops. */
  stop: AbortSignal;
  nowMs?: () => number;
}): Promise<AttemptOutcome> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new AttemptTimeout()), opts.timeoutMs);
  const onStop = () => controller.abort(opts.stop.reason);
  if (opts.stop.aborted) onStop();
  else opts.stop.addEventListener("abort", onStop, { once: true });
  try {
    const unixSeconds = Math.floor((opts.nowMs?.() ?? Date.now()) / 1000);
    const res = await fetch(opts.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "user-agent": "creditd",
        [WEBHOOK_HEADERS.eventId]: opts.eventId,
        [WEBHOOK_HEADERS.eventType]: opts.eventType,
        [WEBHOOK_HEADERS.signature]: webhookSignature(opts.secret, opts.body, unixSeconds),
      },
      body: opts.body,
      redirect: "manual",
      signal: controller.signal,
    });
    // Frees the connection without reading what the receiver sent.
    await res.body?.cancel().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
    return { ok: false, status: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    if (controller.signal.aborted) {
      if (controller.signal.reason instanceof AttemptTimeout) {
        return { ok: false, status: 0, error: `timeout after ${opts.timeoutMs} ms` };
      }
      return { ok: false, stopped: true };
    }
    return { ok: false, status: 0, error: networkError(err) };
  } finally {
    clearTimeout(timer);
    opts.stop.removeEventListener("abort", onStop);
  }
}

/**
 * A short reason for a failed connection: undici's "fetch failed" says nothing, its cause's code says what
 * (ECONNREFUSED, ENOTFOUND, ECONNRESET, UND_ERR_SOCKET, ...). The code rather than the message, which names the
 * receiver's address: the URL stays out of logs and dead letters.
 */
function networkError(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return (cause as NodeJS.ErrnoException).code ?? cause.message;
  return err instanceof Error ? err.message : String(err);
}
