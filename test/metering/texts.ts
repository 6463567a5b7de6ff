// Deterministic texts for the metering tests (a seeded generator; code comes from the pinned typescript package).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

function fill(bytes: number, next: () => string): string {
  let out = "";
  let size = 0;
  while (size < bytes) {
    const s = next();
    out += s;
    size += Buffer.byteLength(s);
  }
  return out;
}

const WORDS = (
  "the of and to in is that it was for on are as with his they at be this from have or by one had not but what " +
  "all were when we there can an your which their said if do will each about how up out them then she many some " +
  "reconciliation invoice subscription quarterly onboarding throughput latency idempotent reservation customer " +
  "workspace allowance generation inference prompt completion settlement refund ledger Kubernetes PostgreSQL " +
  "antidisestablishmentarianism Schwarzenegger Tchaikovsky Reykjavík naïve café coöperate résumé don't we'll I'm"
).split(" ");

export function english(bytes: number, seed = 1): string {
  const r = rng(seed);
  return fill(bytes, () => {
    const n = 4 + Math.floor(r() * 16);
    const ws: string[] = [];
    for (let i = 0; i < n; i++) ws.push(pick(r, WORDS));
    if (r() < 0.2) ws.push(String(Math.floor(r() * 1e7)));
    const s = ws.join(" ");
    return s[0]!.toUpperCase() + s.slice(1) + pick(r, [". ", ". ", "? ", "! ", ";\n", ".\n\n", ", "]);
  });
}

let tsSource: string | undefined;
export function code(bytes: number, offset = 0): string {
  tsSource ??= readFileSync(createRequire(import.meta.url).resolve("typescript/lib/typescript.js"), "utf8");
  return tsSource.slice(offset, offset + bytes);
}

const ZH = "人工智能 正在 改变 我们 处理 信息 的 方式 这个 季度 订阅 收入 增长 了 请 在 明天 提交 项目 报告 模型 生成 内容 客户 余额 不足 系统 拒绝 请求".split(" ");
const JA = "東京 の 天気 は 晴れ のち 曇り 画像 を 一枚 生成 する ごと に クレジット が 消費 され ます サポート まで お問い合わせ ください".split(" ");
const KO = "오늘 회의는 오후 두 시에 시작합니다 크레딧이 부족하면 요청이 거부됩니다 새로운 기능은 다음 달에 출시될 예정입니다".split(" ");

export function cjk(bytes: number, seed = 2): string {
  const r = rng(seed);
  return fill(bytes, () => {
    const n = 2 + Math.floor(r() * 8);
    const lang = r();
    const words = lang < 0.5 ? ZH : lang < 0.8 ? JA : KO;
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(pick(r, words));
    return parts.join(words === KO ? " " : "") + pick(r, ["，", "。", "、", "！", "？", ". ", "\n"]);
  });
}

const EMOJI = [
  "😀", "😂", "🥲", "🤔", "🥳", "👍", "👍🏽", "👋🏿", "🙏", "🔥", "✨", "❤️", "🚀", "🇫🇷", "🇯🇵", "🏳️‍🌈",
  "👨‍👩‍👧‍👦", "👩🏽‍💻", "🤷‍♀️", "😶‍🌫️", "❤️‍🔥", "🫠", "🫶🏼", "🪐", "©️", "™",
];

export function emoji(bytes: number, seed = 3): string {
  const r = rng(seed);
  return fill(bytes, () => {
    let s = "";
    const k = 1 + Math.floor(r() * 4);
    for (let i = 0; i < k; i++) s += pick(r, EMOJI);
    return s + (r() < 0.5 ? ` ${pick(r, WORDS)} ` : " ");
  });
}

/** Everything interleaved, plus special-token look-alikes, controls, odd whitespace and Unicode oddities. */
export function mixed(bytes: number, seed = 4): string {
  const r = rng(seed);
  const oddities = [
    "<|endoftext|>", "<|im_start|>user<|im_sep|>", "<|fim_prefix|>", "\u0000", "\u0007", "\r\n", "\t\t", "\u00a0",
    "\u200b", "ﬁ ǅ Ⅻ ①", "naïve".normalize("NFD"), "e\u0301\u0301", "1234567890123", "3.14159e-10", "$1,299.99",
    "https://example.com/a/b?c=d&e=f#g", "SGVsbG8gV29ybGQhIFRoaXMgaXMgYmFzZTY0Lg==", "    ", "\n\n\n",
  ];
  let n = 0;
  return fill(bytes, () => {
    n++;
    const k = r();
    const piece =
      k < 0.3 ? english(200, seed + n) : k < 0.5 ? code(300, (n * 7919) % 500_000) : k < 0.7 ? cjk(200, seed + n) : k < 0.85 ? emoji(120, seed + n) : "";
    return piece + pick(r, oddities);
  });
}

export function randomLetters(length: number, seed = 5): string {
  const r = rng(seed);
  let s = "";
  for (let i = 0; i < length; i++) s += String.fromCharCode(97 + Math.floor(r() * 26));
  return s;
}
