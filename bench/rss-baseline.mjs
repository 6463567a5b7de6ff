// Baseline for creditd's idle RSS: a bare Node process with only tiktoken's two encodings loaded (what creditd's
// Meter preloads at startup). Prints {"rss": bytes} as JSON.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { get_encoding } from "tiktoken";

const encoders = [get_encoding("o200k_base"), get_encoding("cl100k_base")];
encoders[0].encode_ordinary("warm up");
await sleep(1000);
const status = readFileSync("/proc/self/status", "utf8");
const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)[1]) * 1024;
process.stdout.write(JSON.stringify({ rss, encoders: encoders.length }) + "\n");
