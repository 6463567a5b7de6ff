import { readFileSync } from "node:fs";

/**
 * Reads a Lua script and resolves its `--- @include "path"` lines (relative to the script's folder, without the
 * .lua ending). Each file is included once per script, however many times it is named (so include cycles end
 * too): the helpers are Lua `local function`s, and a second copy would only shadow the first.
 */
export function loadScript(dir: URL, name: string): string {
  const included = new Set<string>([name]);
  const resolve = (file: string): string =>
    readFileSync(new URL(`${file}.lua`, dir), "utf8").replace(
      /^--- @include "([^"]+)"[ \t]*$/gm,
      (_line, target: string) => {
        if (included.has(target)) return `-- (already included: ${target})`;
        included.add(target);
        return resolve(target);
      },
    );
  return resolve(name);
}

/** The number of KEYS a script takes, from its file name (`reserve-5` takes 5), as BullMQ names them. */
export function keyCount(name: string): number {
  const match = /-(\d+)$/.exec(name);
  if (!match?.[1]) throw new Error(`lua script name must end in -<number of keys>: ${name}`);
  return Number(match[1]);
}
