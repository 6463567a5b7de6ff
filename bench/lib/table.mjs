// The result table: one row per figure, with its baseline from the same run, the ratio and the target.

export class Table {
  rows = [];

  /**
   * @param row.section  "1 server CPU" …
   * @param row.figure   what was measured
   * @param row.unit     unit of value and baseline
   * @param row.value    number (NaN/null when not measured)
   * @param row.baseline number or null
   * @param row.baselineLabel what the baseline is
   * @param row.target   { ratioMax } | { ratioMin } | { valueMax } | undefined
   */
  add(row) {
    const ratio =
      row.baseline !== null && row.baseline !== undefined && Number.isFinite(row.baseline) && row.baseline !== 0 && Number.isFinite(row.value)
        ? row.value / row.baseline
        : null;
    let pass = null;
    let target = "";
    const t = row.target;
    if (t?.ratioMax !== undefined) {
      target = `≤ ${t.ratioMax}×`;
      pass = ratio === null ? false : ratio <= t.ratioMax;
    } else if (t?.ratioMin !== undefined) {
      target = `≥ ${t.ratioMin}×`;
      pass = ratio === null ? false : ratio >= t.ratioMin;
    } else if (t?.valueMax !== undefined) {
      target = `≤ ${fmt(t.valueMax)} ${row.unit}`;
      pass = Number.isFinite(row.value) ? row.value <= t.valueMax : false;
    }
    const full = { ...row, ratio, targetText: target, pass };
    this.rows.push(full);
    return full;
  }

  render() {
    const head = ["section", "figure", "value", "baseline", "ratio", "target", "result"];
    const lines = this.rows.map((r) => [
      r.section,
      r.figure,
      `${fmt(r.value)} ${r.unit}`.trim(),
      r.baseline === null || r.baseline === undefined ? (r.baselineLabel ?? "–") : `${fmt(r.baseline)} ${r.unit} (${r.baselineLabel})`,
      r.ratio === null ? "–" : `${fmt(r.ratio)}×`,
      r.targetText || "–",
      r.pass === null ? "" : r.pass ? "PASS" : "FAIL",
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
    const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join(" │ ").trimEnd();
    return [line(head), widths.map((w) => "─".repeat(w)).join("─┼─"), ...lines.map(line)].join("\n");
  }

  /** Markdown, for the README. */
  markdown() {
    const out = ["| section | figure | value | baseline | ratio | target | result |", "| --- | --- | --- | --- | --- | --- | --- |"];
    for (const r of this.rows) {
      out.push(
        `| ${[
          r.section,
          r.figure,
          `${fmt(r.value)} ${r.unit}`.trim(),
          r.baseline === null || r.baseline === undefined ? (r.baselineLabel ?? "–") : `${fmt(r.baseline)} ${r.unit} (${r.baselineLabel})`,
          r.ratio === null ? "–" : `${fmt(r.ratio)}×`,
          r.targetText || "–",
          r.pass === null ? "" : r.pass ? "PASS" : "**FAIL**",
        ].join(" | ")} |`,
      );
    }
    return out.join("\n");
  }
}

/** Three significant digits, thousands separated. */
export function fmt(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "n/a";
  if (!Number.isFinite(x)) return String(x);
  const abs = Math.abs(x);
  if (abs >= 100) return Math.round(x).toLocaleString("en-US");
  if (abs >= 10) return x.toFixed(1);
  if (abs >= 0.1) return x.toFixed(2);
  if (abs === 0) return "0";
  return x.toPrecision(2);
}
