import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { type Catalog, CatalogError } from "../../src/pricing/catalog.js";
import { DEFAULT_CATALOG_YAML, defaultCatalog } from "../../src/pricing/default-catalog.js";
import { priceRequest, priceUsage } from "../../src/pricing/price.js";
import { CATALOG_ENV, CatalogStore, type CatalogLogger, catalogPathFromEnv, loadCatalogFile } from "../../src/pricing/store.js";

const catalogText = (price: string): string => `name: v${price}\noperations:\n  op: { price: ${price} }\n`;
const C = 1_000_000n;

let dir: string;
let file: string;
const logs: Array<{ level: string; obj: object; msg: string }> = [];
const logger: CatalogLogger = {
  info: (obj, msg) => logs.push({ level: "info", obj, msg }),
  error: (obj, msg) => logs.push({ level: "error", obj, msg }),
};
const stores: CatalogStore[] = [];
const open = (opts: ConstructorParameters<typeof CatalogStore>[0] = {}): CatalogStore => {
  const s = new CatalogStore({ path: file, logger, ...opts });
  stores.push(s);
  return s;
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "creditd-catalog-"));
  file = join(dir, "catalog.yaml");
  writeFileSync(file, catalogText("1"));
  logs.length = 0;
});
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("loadCatalogFile", () => {
  test("reads, validates and remembers the absolute path", () => {
    const c = loadCatalogFile(file);
    expect(c.path).toBe(file);
    expect(c.source).toBe(catalogText("1"));
    expect(c.operations.get("op")!.priceMicros).toBe(C);
  });
  test("a missing file and a bad file are CatalogErrors naming the file", () => {
    expect(() => loadCatalogFile(join(dir, "nope.yaml"))).toThrow(/invalid catalog .*nope\.yaml: \(file\): cannot be read \(ENOENT\)/);
    writeFileSync(file, "operations: { op: { price: -1 } }\n");
    expect(() => loadCatalogFile(file)).toThrow(CatalogError);
    expect(() => loadCatalogFile(file)).toThrow(`invalid catalog ${file}: operations["op"].price: must be ≥ 0 (line 1)`);
  });
});

describe("CREDITD_CATALOG", () => {
  test("unset or empty: the documented default catalog", () => {
    expect(catalogPathFromEnv({})).toBeUndefined();
    expect(catalogPathFromEnv({ [CATALOG_ENV]: " " })).toBeUndefined();
    const s = CatalogStore.fromEnv({});
    expect(s.current).toBe(defaultCatalog());
    expect(s.current.source).toBe(DEFAULT_CATALOG_YAML);
    expect(s.reload()).toMatchObject({ ok: true, changed: false }); // nothing to reload
  });
  test("set: that file", () => {
    const s = CatalogStore.fromEnv({ [CATALOG_ENV]: file });
    expect(s.path).toBe(file);
    expect(s.current.name).toBe("v1");
  });
  test("a bad file stops the start", () => {
    writeFileSync(file, "operations: { op: {} }\n");
    expect(() => CatalogStore.fromEnv({ [CATALOG_ENV]: file })).toThrow(CatalogError);
  });
});

describe("reload", () => {
  test("an unchanged file is a no-op", () => {
    const s = open();
    const v1 = s.current.version;
    expect(s.reload()).toEqual({ ok: true, changed: false, catalog: s.current, previousVersion: v1 });
    expect(s.versions()).toEqual([v1]);
  });

  test("a good new file becomes current; the old version stays retrievable by id", () => {
    const s = open();
    const v1 = s.current.version;
    writeFileSync(file, catalogText("2"));
    const r = s.reload();
    expect(r).toMatchObject({ ok: true, changed: true, previousVersion: v1 });
    const v2 = s.current.version;
    expect(v2).not.toBe(v1);
    expect(s.current.name).toBe("v2");
    expect(s.get(v1)!.name).toBe("v1");
    expect(s.get(v2)).toBe(s.current);
    expect(s.versions()).toEqual([v2, v1]);
    expect(logs.at(-1)).toMatchObject({ level: "info", msg: "catalog loaded", obj: { catalog_version: v2, previous_version: v1 } });
  });

  test("a bad new file is refused, logged, and the old catalog keeps serving", () => {
    const s = open();
    const before = s.current;
    writeFileSync(file, "operations:\n  op: { price: -2 }\n  other: { prise: 1 }\n");
    const r = s.reload();
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error).toBeInstanceOf(CatalogError);
    expect(r.error.problems.map((p) => p.path)).toEqual(['operations["op"].price', 'operations["other"].prise', 'operations["other"]']);
    expect(r.catalog).toBe(before);
    expect(s.current).toBe(before);
    expect(priceRequest(s.current, { operation: "op" }).totalMicros).toBe(C);
    expect(logs.at(-1)).toMatchObject({ level: "error", msg: "catalog reload refused; the current catalog keeps serving" });
    expect((logs.at(-1)!.obj as { problems: string[] }).problems[0]).toBe('operations["op"].price: must be ≥ 0');
    // a deleted file too
    rmSync(file);
    expect(s.reload()).toMatchObject({ ok: false, catalog: before });
    // and a fixed file is taken
    writeFileSync(file, catalogText("3"));
    expect(s.reload()).toMatchObject({ ok: true, changed: true });
    expect(s.current.name).toBe("v3");
  });

  test("a Settle prices with the version its hold was made with", () => {
    const s = open();
    const held = priceRequest(s.current, { operation: "op" });
    writeFileSync(file, catalogText("5"));
    s.reload();
    const atSettle = s.get(held.catalogVersion)!;
    expect(priceUsage(atSettle, { operation: "op" }, {}).totalMicros).toBe(C);
    expect(priceUsage(s.current, { operation: "op" }, {}).totalMicros).toBe(5n * C);
  });

  test("older versions are bounded: the oldest is dropped first", () => {
    const s = open({ maxOlderVersions: 2 });
    const versions = [s.current.version];
    for (const p of ["2", "3", "4"]) {
      writeFileSync(file, catalogText(p));
      s.reload();
      versions.push(s.current.version);
    }
    expect(s.versions()).toEqual([versions[3], versions[2], versions[1]]);
    expect(s.get(versions[0]!)).toBeUndefined();
    expect(s.get(versions[1]!)!.name).toBe("v2");
  });

  test("going back to an older version makes it current without keeping it twice", () => {
    const s = open();
    const v1 = s.current.version;
    writeFileSync(file, catalogText("2"));
    s.reload();
    const v2 = s.current.version;
    writeFileSync(file, catalogText("1"));
    expect(s.reload()).toMatchObject({ ok: true, changed: true });
    expect(s.current.version).toBe(v1);
    expect(s.versions()).toEqual([v1, v2]);
  });

  test("onChange listeners hear every change, install() takes a parsed catalog", () => {
    const s = open({ initial: defaultCatalog() });
    const seen: Array<[string, string]> = [];
    const off = s.onChange((next, prev) => seen.push([next.version, prev.version]));
    s.install(loadCatalogFile(file));
    expect(seen).toEqual([[s.current.version, defaultCatalog().version]]);
    off();
    writeFileSync(file, catalogText("2"));
    s.reload();
    expect(seen).toHaveLength(1);
  });

  test("SIGHUP reloads", () => {
    const s = open();
    const stop = s.installSighupHandler();
    writeFileSync(file, catalogText("7"));
    process.emit("SIGHUP", "SIGHUP");
    expect(s.current.name).toBe("v7");
    stop();
    writeFileSync(file, catalogText("8"));
    process.emit("SIGHUP", "SIGHUP");
    expect(s.current.name).toBe("v7");
    expect(s.handleSighup()).toMatchObject({ ok: true, changed: true });
    expect(s.current.name).toBe("v8");
  });
});

describe("watching the file", () => {
  const nextChange = (s: CatalogStore): Promise<Catalog> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("no reload within 2 s")), 2000);
      const off = s.onChange((c) => {
        clearTimeout(t);
        off();
        resolve(c);
      });
    });

  test("a change is picked up (debounced); a bad change is refused and logged", async () => {
    const s = open();
    s.watch({ debounceMs: 20 });
    const changed = nextChange(s);
    writeFileSync(file, catalogText("2"));
    expect((await changed).name).toBe("v2");

    writeFileSync(file, "operations: [oops\n");
    await new Promise((r) => setTimeout(r, 150));
    expect(s.current.name).toBe("v2");
    expect(logs.some((l) => l.level === "error")).toBe(true);

    // an editor's save-by-rename is seen too (the folder is watched)
    const renamed = nextChange(s);
    writeFileSync(join(dir, "tmp.yaml"), catalogText("3"));
    const { renameSync } = await import("node:fs");
    renameSync(join(dir, "tmp.yaml"), file);
    expect((await renamed).name).toBe("v3");
  });

  test("stop() ends watching", async () => {
    const s = open();
    const stop = s.watch({ debounceMs: 10 });
    stop();
    writeFileSync(file, catalogText("2"));
    await new Promise((r) => setTimeout(r, 100));
    expect(s.current.name).toBe("v1");
  });
});
