// What a priced chat Reserve costs creditd's main thread outside the RPC stack and Redis, by stage, for a chat whose
// history was counted before (51 messages, the last one new) against a one-message chat: decoding the request
// (protobuf-es), the Meter's count (history from the cache, the new message tokenized inline) and the idempotency
// fingerprint. One process, no server; prints µs per request per stage for each build given.
//
//   npm run build && node bench/chat-parts.mjs [--dist=dist,bench/results/base-dist] [--convs=300] [--rounds=4]
//
// A build is a compiled dist/ folder (an older one can be kept under bench/results/, which is git-ignored). Builds
// whose Meter returns `digests` (a map, before 2026-11-22) get their fingerprint from that map.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chatMessages, prose } from "./lib/texts.mjs";
import { arg } from "./lib/args.mjs";

const dists = arg("dist", "dist").split(",");
const convs = Number(arg("convs", "300"));
const rounds = Number(arg("rounds", "4"));
const SPEC = { encoding: "o200k_base" };

for (const dist of dists) {
  const load = (p) => import(pathToFileURL(resolve(dist, p)).href);
  const { ReserveRequestSchema } = await load("gen/creditd/v1/credit_service_pb.js");
  const { Meter } = await load("metering/index.js");
  const { fingerprintOf } = await load("service/pricing.js");
  const meter = new Meter({ workers: 1, cacheEntries: 50_000 });
  let gen = 0;
  const frame = (messages, c) =>
    toBinary(
      ReserveRequestSchema,
      create(ReserveRequestSchema, {
        accountId: `acct-${c}`,
        requestId: `r-${++gen}`,
        cost: { case: "priced", value: { operation: "chat", model: "gpt-4o-mini", maxOutputTokens: 256n, input: { case: "chat", value: { messages } } } },
      }),
    );
  const longChats = () =>
    Array.from({ length: convs }, (_, c) => frame([...chatMessages(c, 50), { role: "user", content: prose(200, 1e6 * gen + c) }], c));
  const oneMessage = () => Array.from({ length: convs }, (_, c) => frame([{ role: "user", content: prose(200, 7e9 + 1e6 * gen + c) }], c));

  async function run(frames) {
    const t = { decode: 0, count: 0, fingerprint: 0 };
    for (const f of frames) {
      let t0 = performance.now();
      const req = fromBinary(ReserveRequestSchema, f);
      let t1 = performance.now();
      t.decode += t1 - t0;
      const p = req.cost.value;
      const messages = p.input.value.messages.map((m) => (m.name ? { role: m.role, content: m.content, name: m.name } : { role: m.role, content: m.content }));
      t0 = t1;
      const c = await meter.countChat("priced.chat.messages", messages, [], SPEC, { scope: req.accountId });
      t1 = performance.now();
      t.count += t1 - t0;
      t0 = t1;
      fingerprintOf(p, c.digest ?? c.digests);
      t.fingerprint += performance.now() - t0;
    }
    return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, (v * 1000) / frames.length]));
  }

  await run(Array.from({ length: convs }, (_, c) => frame(chatMessages(c, 50), c))); // the histories, counted once
  const rows = { long: [], one: [] };
  for (let r = 0; r < rounds; r++) {
    rows.long.push(await run(longChats()));
    rows.one.push(await run(oneMessage()));
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const line = (label, rs) => {
    const m = Object.fromEntries(Object.keys(rs[0]).map((k) => [k, med(rs.map((x) => x[k]))]));
    const total = m.decode + m.count + m.fingerprint;
    console.log(`${dist.padEnd(24)} ${label.padEnd(28)} decode ${m.decode.toFixed(1).padStart(6)} µs  count ${m.count.toFixed(1).padStart(6)} µs  fingerprint ${m.fingerprint.toFixed(1).padStart(5)} µs  total ${total.toFixed(1).padStart(6)} µs`);
    return total;
  };
  const a = line("51 messages, history seen", rows.long);
  const b = line("1 message", rows.one);
  console.log(`${dist.padEnd(24)} 51-message chat over 1-message: +${(a - b).toFixed(1)} µs (medians of ${rounds} rounds × ${convs} requests)`);
  await meter.close();
}
