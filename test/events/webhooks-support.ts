// A real HTTP receiver for webhook tests (node:http on a free port), and the README's signature check, loaded from
// README.md itself so the tests verify deliveries with exactly the code users copy.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { type IncomingHttpHeaders, type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Logger } from "pino";
import { pino } from "pino";

export interface Received {
  headers: IncomingHttpHeaders;
  /** The raw body. */
  body: Buffer;
  /** The body parsed. */
  json: Record<string, unknown>;
  id: string;
  at: number;
}

/** What the receiver answers: a status, or "hang" (never answers; the connection is closed at stop). */
export type Answer = number | "hang";

export interface Receiver {
  url: string;
  received: Received[];
  /** Requests being answered right now, and the most there ever were. */
  open: number;
  maxOpen: number;
  ids(): string[];
  count(id: string): number;
  /** Ends every request left hanging (the sender sees its connection close). */
  release(): void;
  close(): Promise<void>;
}

export async function startReceiver(answer: (req: Received, nth: number) => Answer = () => 200): Promise<Receiver> {
  const received: Received[] = [];
  const perId = new Map<string, number>();
  const hanging = new Set<() => void>();
  const r: Receiver = {
    url: "",
    received,
    open: 0,
    maxOpen: 0,
    ids: () => received.map((x) => x.id),
    count: (id) => perId.get(id) ?? 0,
    release: () => {
      for (const end of hanging) end();
    },
    close: async () => {
      for (const end of hanging) end();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    r.open += 1;
    r.maxOpen = Math.max(r.maxOpen, r.open);
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const json = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
      const got: Received = { headers: req.headers, body, json, id: String(json["id"]), at: Date.now() };
      received.push(got);
      const nth = (perId.get(got.id) ?? 0) + 1;
      perId.set(got.id, nth);
      const a = answer(got, nth);
      if (a === "hang") {
        const end = () => res.destroy();
        hanging.add(end);
        // Closed by release(), or by the sender giving up (its timeout).
        res.on("close", () => {
          r.open -= 1;
          hanging.delete(end);
        });
        return;
      }
      r.open -= 1;
      res.writeHead(a, { "content-type": "text/plain" }).end(a >= 200 && a < 300 ? "ok" : "no");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/creditd`;
  return r;
}

export type Verify = (rawBody: Buffer | string, signatureHeader: unknown, secret: string, toleranceSeconds?: number) => boolean;

/** verifyCreditdSignature from the README's "verify-creditd-signature.mjs" block. */
export async function readmeVerifier(): Promise<Verify> {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const code = /```js\n(\/\/ verify-creditd-signature\.mjs\n[\s\S]*?)```/.exec(readme)?.[1];
  if (!code) throw new Error("README.md has no verify-creditd-signature.mjs block");
  const file = join(mkdtempSync(join(tmpdir(), "creditd-verify-")), "verify-creditd-signature.mjs");
  writeFileSync(file, code);
  const mod = (await import(/* @vite-ignore */ pathToFileURL(file).href)) as { verifyCreditdSignature?: Verify };
  if (typeof mod.verifyCreditdSignature !== "function") throw new Error("the README block exports no verifyCreditdSignature");
  return mod.verifyCreditdSignature;
}

/** A pino logger whose lines the test can read. */
export function captureLogger(): { logger: Logger; lines: () => Array<Record<string, unknown>>; text: () => string } {
  const out: string[] = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => void out.push(s) });
  return {
    logger,
    lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>),
    text: () => out.join(""),
  };
}

/** Polls until f() is true (or fails after timeoutMs, with what f last saw). */
export async function until(f: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
