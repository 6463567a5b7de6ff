// Summarizes a V8 .cpuprofile (node --cpu-prof): self time per function (name, file:line), and inclusive time of
// chosen frames. Used by bench/profile.mjs; also runs on its own: node bench/lib/cpuprofile.mjs file.cpuprofile [N]
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export function summarizeProfile(path, top = 25) {
  const prof = JSON.parse(readFileSync(path, "utf8"));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Sample weights: timeDeltas[i] belongs to samples[i].
  const selfUs = new Map();
  let total = 0;
  let idle = 0;
  prof.samples.forEach((id, i) => {
    const dt = prof.timeDeltas[i] ?? 0;
    total += dt;
    const node = byId.get(id);
    const name = node.callFrame.functionName;
    if (name === "(idle)") idle += dt;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  });
  const label = (cf) => {
    const url = cf.url.replace(/^file:\/\//, "").replace(/^.*\/node_modules\//, "~/").replace(/^.*\/work\/main\//, "");
    return `${cf.functionName || "(anonymous)"} ${url ? `${url}:${cf.lineNumber + 1}` : ""}`.trim();
  };
  const self = new Map();
  const incl = new Map();
  for (const [id, us] of selfUs) {
    const l = label(byId.get(id).callFrame);
    self.set(l, (self.get(l) ?? 0) + us);
    // inclusive: every distinct label on the path to the root
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const lab = label(byId.get(cur).callFrame);
      if (seen.has(lab)) continue;
      seen.add(lab);
      incl.set(lab, (incl.get(lab) ?? 0) + us);
    }
  }
  const busy = total - idle;
  const rows = [...self.entries()].filter(([l]) => !l.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, top);
  // Self time grouped by package / area.
  const areas = new Map();
  for (const [l, us] of self) {
    if (l.startsWith("(idle)")) continue;
    const m = /~\/((?:@[^/]+\/)?[^/]+)/.exec(l);
    const area = m ? m[1] : /\bdist\/(\w+)/.exec(l)?.[1] ? `creditd ${/\bdist\/(\w+)/.exec(l)[1]}` : l.startsWith("(garbage collector)") ? "(gc)" : /node:/.test(l) ? "node internals" : l.startsWith("(program)") ? "(program)" : "other";
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  return {
    totalMs: total / 1000,
    busyMs: busy / 1000,
    top: rows.map(([l, us]) => ({ fn: l, selfMs: us / 1000, pctBusy: (100 * us) / busy })),
    areas: [...areas.entries()].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, selfMs: us / 1000, pctBusy: (100 * us) / busy })),
    inclusive: (names) =>
      names.map((n) => {
        const hits = [...incl.entries()].filter(([l]) => l.includes(n));
        const us = hits.reduce((a, [, v]) => Math.max(a, v), 0);
        return { fn: n, inclMs: us / 1000, pctBusy: (100 * us) / busy };
      }),
    inclusiveAll: incl,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const s = summarizeProfile(process.argv[2], Number(process.argv[3] ?? 25));
  console.log(`busy ${s.busyMs.toFixed(0)} ms of ${s.totalMs.toFixed(0)} ms sampled`);
  console.log("\nself time by area:");
  for (const a of s.areas.slice(0, 15)) console.log(`  ${a.pctBusy.toFixed(1).padStart(5)}%  ${a.selfMs.toFixed(0).padStart(7)} ms  ${a.area}`);
  console.log("\ntop self time:");
  for (const r of s.top) console.log(`  ${r.pctBusy.toFixed(1).padStart(5)}%  ${r.selfMs.toFixed(0).padStart(7)} ms  ${r.fn}`);
}
