import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { slotTag } from "../../src/ledger/keys.js";
import calculateSlot from "cluster-key-slot";
import { keyCount, loadLibrary, loadScript } from "../../src/ledger/script-loader.js";
import { useTestRedis } from "../support/redis.js";

function folder(files: Record<string, string>): URL {
  const dir = mkdtempSync(join(tmpdir(), "lua-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, `${name}.lua`), text);
  }
  return pathToFileURL(`${dir}/`);
}

describe("the Lua loader", () => {
  it("inlines includes once, nested ones too", () => {
    const dir = folder({
      "op-1": '--- @include "inc/a"\n--- @include "inc/b"\nreturn a() + b()',
      "inc/a": "local function a() return 1 end",
      "inc/b": '--- @include "inc/a"\nlocal function b() return a() end',
    });
    const lua = loadScript(dir, "op-1");
    expect(lua.match(/local function a\(\)/g)).toHaveLength(1);
    expect(lua).toContain("local function b()");
    expect(lua.trim().endsWith("return a() + b()")).toBe(true);
    expect(lua).not.toContain("@include");
  });

  it("refuses a missing include; a cycle ends because each file comes in once", () => {
    expect(() => loadScript(folder({ "op-1": '--- @include "nope"' }), "op-1")).toThrow(/nope\.lua/);
    const cyclic = folder({ "op-1": '--- @include "x"\nreturn 1', x: '--- @include "y"\n-- x', y: '--- @include "x"\n-- y' });
    const lua = loadScript(cyclic, "op-1");
    expect(lua.match(/^-- x$/gm)).toHaveLength(1);
    expect(lua.match(/^-- y$/gm)).toHaveLength(1);
  });

  it("reads the key count from the name", () => {
    expect(keyCount("reserve-5")).toBe(5);
    expect(() => keyCount("reserve")).toThrow(/number of keys/);
  });

  it("every shipped script loads and declares its keys", () => {
    const dir = new URL("../../src/ledger/lua/", import.meta.url);
    const names = readdirSync(dir).filter((f) => f.endsWith(".lua")).map((f) => f.slice(0, -4));
    expect(names.length).toBeGreaterThanOrEqual(8);
    for (const name of names) {
      const lua = loadScript(dir, name);
      const used = [...lua.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1]));
      expect(Math.max(...used), name).toBe(keyCount(name));
    }
  });
});

describe("the Functions library", () => {
  const t = useTestRedis();

  it("defines the includes once and registers each script as a function of (KEYS, ARGV)", async () => {
    const dir = folder({
      "add-1": '--- @include "inc/a"\nreturn redis.call("INCRBY", KEYS[1], a(tonumber(ARGV[1])))',
      "echo-0": '--- @include "inc/a"\nreturn { a(1), ARGV[1] }',
      "inc/a": '--- @include "inc/base"\nlocal function a(n) return ten(n) end',
      "inc/base": "local function ten(n) return n * 10 end",
    });
    const lib = loadLibrary(dir, ["add-1", "echo-0"]);
    expect(lib.code.match(/local function a\(/g)).toHaveLength(1);
    // A nested include stands before the include that uses it.
    expect(lib.code.indexOf("local function ten(")).toBeLessThan(lib.code.indexOf("local function a("));
    expect(lib.code.startsWith(`#!lua name=${lib.name}\n`)).toBe(true);
    expect(await t.redis.call("FUNCTION", "LOAD", "REPLACE", lib.code)).toBe(lib.name);
    const key = "lib-test-counter";
    expect(await t.redis.fcall(lib.functionOf["add-1"]!, 1, key, "4")).toBe(40);
    expect(await t.redis.fcall(lib.functionOf["add-1"]!, 1, key, "1")).toBe(50);
    expect(await t.redis.fcall(lib.functionOf["echo-0"]!, 0, "x")).toEqual([10, "x"]);
  });

  it("names the library after its code, so two builds on one Redis never call each other's functions", () => {
    const one = loadLibrary(folder({ "op-0": "return 1" }), ["op-0"]);
    const same = loadLibrary(folder({ "op-0": "return 1" }), ["op-0"]);
    const other = loadLibrary(folder({ "op-0": "return 2" }), ["op-0"]);
    expect(same.name).toBe(one.name);
    expect(other.name).not.toBe(one.name);
    expect(one.functionOf["op-0"]).toBe(`${one.name}_op`);
  });

  it("every shipped script loads into Redis as one library", async () => {
    const dir = new URL("../../src/ledger/lua/", import.meta.url);
    const names = readdirSync(dir).filter((f) => f.endsWith(".lua")).map((f) => f.slice(0, -4));
    const lib = loadLibrary(dir, names);
    expect(await t.redis.call("FUNCTION", "LOAD", "REPLACE", lib.code)).toBe(lib.name);
    const listed = (await t.redis.call("FUNCTION", "LIST", "LIBRARYNAME", lib.name)) as unknown[];
    expect(JSON.stringify(listed)).toContain(lib.functionOf[names[0]!]!);
  });
});

describe("slot tags", () => {
  it("give every one of the 16384 slots a tag that hashes to it", () => {
    for (let slot = 0; slot < 16384; slot++) expect(calculateSlot(slotTag(slot))).toBe(slot);
    expect(() => slotTag(16384)).toThrow(RangeError);
  });
});
