// Loading and reloading the catalog without a restart.
//
// CatalogStore holds the current Catalog and a bounded set of older versions by version id, so a Settle
// prices with the version its hold was made with (store.get(hold.catalogVersion)) even after a reload.
// reload() reads the file again: a bad file is refused (the error is logged and returned) and the
// current catalog keeps serving; an unchanged file is a no-op. watch() reloads on file changes; the
// process calls store.reload() (or installSighupHandler()) on SIGHUP.

import { type FSWatcher, readFileSync, watch as fsWatch } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { type Catalog, CatalogError, parseCatalog } from "./catalog.js";
import { defaultCatalog } from "./default-catalog.js";

/** Environment variable naming the catalog file. Unset or empty: the default catalog. */
export const CATALOG_ENV = "CREDITD_CATALOG";

/** Reads and validates a catalog file (relative paths resolve against the working directory). Throws CatalogError. */
export function loadCatalogFile(path: string): Catalog {
  const abs = resolve(path);
  let text: string;
  try {
    text = readFileSync(abs, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new CatalogError([{ path: "(file)", message: `cannot be read (${code})`, line: undefined }], abs);
  }
  return parseCatalog(text, { file: abs });
}

/** The catalog path CREDITD_CATALOG names (absolute), or undefined for the default catalog. */
export function catalogPathFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env[CATALOG_ENV];
  return v === undefined || v.trim() === "" ? undefined : resolve(v);
}

/** Minimal logger (pino's signature). */
export interface CatalogLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type ReloadResult =
  | { readonly ok: true; readonly changed: boolean; readonly catalog: Catalog; readonly previousVersion: string }
  | { readonly ok: false; readonly error: CatalogError; readonly catalog: Catalog };

export interface CatalogStoreOptions {
  /** File to load and reload. Undefined: the default catalog (reload() then reports no change). */
  readonly path?: string | undefined;
  /** Use this as the first catalog instead of reading `path` now. */
  readonly initial?: Catalog | undefined;
  /** How many older versions to keep besides the current one (default 16, at least 1). */
  readonly maxOlderVersions?: number | undefined;
  readonly logger?: CatalogLogger | undefined;
}

export class CatalogStore {
  readonly path: string | undefined;
  private currentCatalog: Catalog;
  /** Older versions, oldest first (Map insertion order). */
  private readonly older = new Map<string, Catalog>();
  private readonly maxOlder: number;
  private readonly logger: CatalogLogger | undefined;
  private readonly listeners = new Set<(catalog: Catalog, previous: Catalog) => void>();
  private readonly stoppers = new Set<() => void>();

  /** Loads `path` now (throws CatalogError when it is bad) unless `initial` is given. */
  constructor(opts: CatalogStoreOptions = {}) {
    this.path = opts.path === undefined ? undefined : resolve(opts.path);
    this.maxOlder = Math.max(1, opts.maxOlderVersions ?? 16);
    this.logger = opts.logger;
    this.currentCatalog = opts.initial ?? (this.path ? loadCatalogFile(this.path) : defaultCatalog());
  }

  /** The store for CREDITD_CATALOG (or the default catalog). Throws CatalogError on a bad file. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, opts: Omit<CatalogStoreOptions, "path"> = {}): CatalogStore {
    return new CatalogStore({ ...opts, path: catalogPathFromEnv(env) });
  }

  /** The catalog new requests are priced with. */
  get current(): Catalog {
    return this.currentCatalog;
  }

  /** The catalog with this version: the current one or a kept older one; undefined when not (or no longer) kept. */
  get(version: string): Catalog | undefined {
    return this.currentCatalog.version === version ? this.currentCatalog : this.older.get(version);
  }

  /** Versions held: the current first, then older ones, newest first. */
  versions(): string[] {
    return [this.currentCatalog.version, ...[...this.older.keys()].reverse()];
  }

  /** Called after the current catalog changed (reload or install). Returns an unsubscribe function. */
  onChange(listener: (catalog: Catalog, previous: Catalog) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Reads the file again. A bad file is refused: logged, returned, and the current catalog stays. */
  reload(): ReloadResult {
    if (!this.path) return { ok: true, changed: false, catalog: this.currentCatalog, previousVersion: this.currentCatalog.version };
    let next: Catalog;
    try {
      next = loadCatalogFile(this.path);
    } catch (e) {
      const error = e instanceof CatalogError ? e : new CatalogError([{ path: "(file)", message: String(e), line: undefined }], this.path);
      this.logger?.error(
        { catalog_path: this.path, current_version: this.currentCatalog.version, problems: error.problems.map((p) => `${p.path}: ${p.message}`) },
        "catalog reload refused; the current catalog keeps serving",
      );
      return { ok: false, error, catalog: this.currentCatalog };
    }
    return this.install(next);
  }

  /** Makes `next` current (the previous one is kept as an older version). Same version: no change. */
  install(next: Catalog): ReloadResult & { ok: true } {
    const previous = this.currentCatalog;
    if (next.version === previous.version) return { ok: true, changed: false, catalog: previous, previousVersion: previous.version };
    this.older.delete(next.version);
    this.older.delete(previous.version);
    this.older.set(previous.version, previous);
    while (this.older.size > this.maxOlder) this.older.delete(this.older.keys().next().value!);
    this.currentCatalog = next;
    this.logger?.info(
      { catalog_path: next.path, catalog_version: next.version, previous_version: previous.version, catalog_name: next.name },
      "catalog loaded",
    );
    for (const l of this.listeners) {
      try {
        l(next, previous);
      } catch (e) {
        this.logger?.error({ err: e }, "catalog change listener failed");
      }
    }
    return { ok: true, changed: true, catalog: next, previousVersion: previous.version };
  }

  /**
   * Reloads when the file changes, debounced (default 250 ms). Watches the file's folder, not the file,
   * so editors that save by rename and Kubernetes ConfigMap updates (a symlink swap) are seen; any event
   * in the folder triggers a reload, which is a no-op when the content is unchanged. The watcher does not
   * keep the process alive. Returns a function that stops watching.
   */
  watch(opts: { debounceMs?: number } = {}): () => void {
    if (!this.path) return () => {};
    const debounceMs = opts.debounceMs ?? 250;
    const dir = dirname(this.path);
    let timer: NodeJS.Timeout | undefined;
    let watcher: FSWatcher | undefined;
    const fire = (): void => {
      timer = undefined;
      this.reload();
    };
    try {
      watcher = fsWatch(dir, { persistent: false }, () => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(fire, debounceMs);
        timer.unref();
      });
      watcher.on("error", (err) => this.logger?.error({ err, catalog_path: this.path }, "catalog watch failed; reload with SIGHUP"));
    } catch (err) {
      this.logger?.error({ err, catalog_path: this.path, file: basename(this.path) }, "cannot watch the catalog; reload with SIGHUP");
    }
    const stop = (): void => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      watcher?.close();
      this.stoppers.delete(stop);
    };
    this.stoppers.add(stop);
    return stop;
  }

  /** What the process calls on SIGHUP. */
  handleSighup(): ReloadResult {
    return this.reload();
  }

  /** Installs process.on("SIGHUP") → reload(). Returns a function that removes it. */
  installSighupHandler(): () => void {
    const handler = (): void => {
      this.handleSighup();
    };
    process.on("SIGHUP", handler);
    const stop = (): void => {
      process.off("SIGHUP", handler);
      this.stoppers.delete(stop);
    };
    this.stoppers.add(stop);
    return stop;
  }

  /** Stops watching and removes the SIGHUP handler. */
  close(): void {
    for (const stop of [...this.stoppers]) stop();
  }
}
