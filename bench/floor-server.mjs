// The floor of section 1: what one Redis round trip costs a gRPC call on creditd's stack, with none of creditd's own
// code. grpc-js with creditd's server options and grpc-health-check (the no-op), ioredis with creditd's client options
// (src/redis/connect.ts); `/bench.Floor/Hold` awaits the minimal hold script (bench/lua/min-hold.lua, by EVALSHA) on
// one of 1,000 balances and answers an empty message. No protobuf, no validation, no log line: whatever creditd's
// Reserve does, it does at least this, so Hold against Health/Check here bounds what section 1's target can ask.
//
//   node bench/floor-server.mjs <port> <redis url>     (started by bench/run.mjs; ready when Health/Check answers)
import { readFileSync } from "node:fs";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { createRedisClient } from "../dist/redis/connect.js";

const [port, redisUrl] = process.argv.slice(2);
const redis = createRedisClient({ url: redisUrl }, { connectionName: "bench-floor" });
redis.defineCommand("minHold", { numberOfKeys: 1, lua: readFileSync(new URL("lua/min-hold.lua", import.meta.url), "utf8") });
const ACCOUNTS = 1000;
const pipe = redis.pipeline();
for (let i = 0; i < ACCOUNTS; i++) pipe.hset(`floor-min:{a${i}}`, "avail", 1e15, "held", 0);
await pipe.exec();

const raw = (b) => b;
const EMPTY = Buffer.alloc(0);
const unary = (name) => ({ path: `/bench.Floor/${name}`, requestStream: false, responseStream: false,
  requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw });
const server = new Server({ "grpc.keepalive_time_ms": 30_000, "grpc.keepalive_timeout_ms": 10_000 });
let n = 0;
server.addService({ Hold: unary("Hold") }, {
  Hold: (_call, done) => {
    redis.minHold(`floor-min:{a${n++ % ACCOUNTS}}`, 1).then((left) => (left < 0 ? done(new Error("refused")) : done(null, EMPTY)), done);
  },
});
new HealthImplementation({ "": "SERVING" }).addToServer(server);
server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
});
process.on("SIGTERM", () => {
  server.forceShutdown();
  redis.disconnect();
  process.exit(0);
});
