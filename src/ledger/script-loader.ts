import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

const INCLUDE = /^--- @include "([^"]+)"[ \t]*$/gm;

/** A Lua file (relative to dir, without the .lua ending) with each `--- @include "path"` line replaced by each(path). */
function withIncludes(dir: URL, file: string, each: (target: string) => string): string {
  return readFileSync(new URL(`${file}.lua`, dir), "utf8").replace(INCLUDE, (_line, target: string) => each(target));
}

/**
 * Inlines a file's includes where they stand, recursively, each file once across every call sharing `included`:
 * the helpers are Lua `local function`s, a second copy would only shadow the first (and cycles end).
 */
function inliner(dir: URL, included: Set<string>): (file: string) => string {
  const inline = (file: string): string =>
    withIncludes(dir, file, (target) => {
      if (included.has(target)) return `-- (already included: ${target})`;
      included.add(target);
      return inline(target);
    });
  return inline;
}

/**
 * Reads a Lua script with its `--- @include "path"` lines resolved (relative to the script's folder, without the
 * .lua ending): each file once per script, however many times it is named (see inliner).
 */
export function loadScript(dir: URL, name: string): string {
  return inliner(dir, new Set([name]))(name);
}

/** The number of KEYS a script takes, from its file name (`reserve-5` takes 5), as BullMQ names them. */
export function keyCount(name: string): number {
  const match = /-(\d+)$/.exec(name);
  if (!match?.[1]) throw new Error(`lua script name must end in -<number of keys>: ${name}`);
  return Number(match[1]);
}

/** A Redis Functions library holding a set of scripts, and the function name each script is called by. */
export interface LuaLibrary {
  /** The library's name, `creditd_<hash of its code>`. */
  name: string;
  /** The FUNCTION LOAD payload. */
  code: string;
  /** Script name ("reserve-7") to its function name ("creditd_<hash>_reserve"). */
  functionOf: Record<string, string>;
}

/**
 * One Redis Functions library (Redis 7) holding every script. The includes are defined once, when the library
 * loads, and each script's body becomes a registered function taking (KEYS, ARGV), so a call runs only the body:
 * EVALSHA runs the whole script, re-creating every helper closure of the includes on each call (measured at 13-30
 * µs of Redis CPU per call for includes/account). Names carry a hash of the code, so two builds of creditd sharing
 * one Redis (a rolling deploy) each call their own code.
 */
export function loadLibrary(dir: URL, names: readonly string[]): LuaLibrary {
  const included = new Set<string>();
  const head: string[] = [];
  // An include's own includes are inlined where they stand (as loadScript does: later helpers use earlier ones);
  // a script's includes go to the library's head, once.
  const inline = inliner(dir, included);
  const resolve = (file: string): string =>
    withIncludes(dir, file, (target) => {
      if (!included.has(target)) {
        included.add(target);
        head.push(inline(target));
      }
      return `-- (included above: ${target})`;
    });
  const bodies = names.map((name) => [name, resolve(name)] as const);
  const hash = createHash("sha1");
  for (const part of head) hash.update(part);
  for (const [name, body] of bodies) hash.update(name).update(body);
  const lib = `creditd_${hash.digest("hex").slice(0, 12)}`;
  const functionOf: Record<string, string> = {};
  const parts = [`#!lua name=${lib}`, ...head];
  for (const [name, body] of bodies) {
    const base = name.replace(/-\d+$/, "");
    if (!/^[a-z][a-z0-9_-]*$/.test(base)) throw new Error(`lua script name must be lowercase letters, digits, - or _: ${name}`);
    const local = `script_${base.replace(/-/g, "_")}`;
    functionOf[name] = `${lib}_${base.replace(/-/g, "_")}`;
    // A script error names the registered function, so it still says which script failed.
    parts.push(`local function ${local}(KEYS, ARGV)\n${body}\nend\nredis.register_function('${functionOf[name]}', ${local})`);
  }
  return { name: lib, code: parts.join("\n"), functionOf };
}
