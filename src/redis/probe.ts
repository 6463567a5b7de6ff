// A one-shot raw RESP2 client used to check whether a redis-server is up, and whose it is,
// without the reconnect loop and error events of a full ioredis client.

import { connect } from "node:net";

export type RespValue = string | number | null | RespError | RespValue[];

export class RespError {
  constructor(readonly message: string) {}
}

/**
 * Sends one command on a fresh connection and returns the reply (errors come back as RespError,
 * not thrown). Rejects on connection failure, on a closed connection or after timeoutMs.
 */
export function redisCommand(host: string, port: number, args: readonly string[], timeoutMs: number): Promise<RespValue> {
  return new Promise((resolvePromise, reject) => {
    const socket = connect({ host, port });
    let buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | null, value?: RespValue): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolvePromise(value ?? null);
    };
    const timer = setTimeout(() => finish(new Error(`no reply from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    socket.setNoDelay(true);
    socket.on("connect", () => socket.write(encodeCommand(args)));
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      try {
        const parsed = parseReply(buffer, 0);
        if (parsed !== undefined) finish(null, parsed.value);
      } catch (err) {
        finish(err as Error);
      }
    });
    socket.on("error", (err) => finish(err));
    socket.on("close", () => finish(new Error(`connection to ${host}:${port} closed before a reply`)));
  });
}

function encodeCommand(args: readonly string[]): Buffer {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
  return Buffer.from(parts.join(""));
}

/** Parses one reply starting at offset; undefined when more bytes are needed. */
function parseReply(buf: Buffer, offset: number): { value: RespValue; end: number } | undefined {
  const lineEnd = buf.indexOf("\r\n", offset);
  if (lineEnd === -1) return undefined;
  const type = String.fromCharCode(buf[offset]!);
  const line = buf.toString("utf8", offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case "+":
      return { value: line, end: next };
    case "-":
      return { value: new RespError(line), end: next };
    case ":":
      return { value: Number(line), end: next };
    case "$": {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buf.length < next + length + 2) return undefined;
      return { value: buf.toString("utf8", next, next + length), end: next + length + 2 };
    }
    case "*": {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RespValue[] = [];
      let position = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, position);
        if (item === undefined) return undefined;
        items.push(item.value);
        position = item.end;
      }
      return { value: items, end: position };
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`);
  }
}

export type ProbeResult =
  | { state: "ready"; pid: number | undefined }
  /** Alive but loading its data set (AOF/RDB) into memory. */
  | { state: "loading"; pid: number | undefined }
  /** Something answered, but not with PONG (e.g. NOAUTH). */
  | { state: "refused"; reason: string }
  | { state: "down"; reason: string };

/** PING, then INFO server for the process id (so a caller can tell whose redis-server answered). */
export async function probeRedis(host: string, port: number, timeoutMs = 1000): Promise<ProbeResult> {
  let pong: RespValue;
  try {
    pong = await redisCommand(host, port, ["PING"], timeoutMs);
  } catch (err) {
    return { state: "down", reason: (err as Error).message };
  }
  const loading = pong instanceof RespError && pong.message.startsWith("LOADING");
  if (!loading && pong !== "PONG") {
    return { state: "refused", reason: pong instanceof RespError ? pong.message : `unexpected reply ${JSON.stringify(pong)}` };
  }
  let pid: number | undefined;
  try {
    const info = await redisCommand(host, port, ["INFO", "server"], timeoutMs);
    const match = typeof info === "string" ? /^process_id:(\d+)/m.exec(info) : null;
    if (match) pid = Number(match[1]);
  } catch (err) {
    return { state: "down", reason: (err as Error).message };
  }
  return { state: loading ? "loading" : "ready", pid };
}
