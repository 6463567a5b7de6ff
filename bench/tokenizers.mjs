// Tokenizer throughput: tiktoken (Rust compiled to WASM) against gpt-tokenizer (pure JavaScript), on the same
// texts, for both encodings creditd counts with (o200k_base and cl100k_base), in one run.
//
//   node bench/tokenizers.mjs            # full run, about a minute on 2 cores
//   node bench/tokenizers.mjs --quick    # shorter timing windows (numbers are noisier)
//
// Plain JavaScript so that it runs without a build step on Node 20 (no type stripping there).
// Every text is generated here from a fixed seed (code comes from the pinned typescript package), so two runs
// measure the same bytes. Before timing, the token ids of both engines are compared on every text: a throughput
// figure is only meaningful if both engines produce the same tokens.
//
// gpt-tokenizer keeps an in-process LRU "merge cache" of word pieces it has BPE-merged (100,000 entries by
// default). Timing the same text over and over lets that cache answer everything after the first pass, which a
// server counting different prompts never sees, so it is measured three ways:
//   gpt-tok cold   the cache is cleared before every pass (every pass does all its merges: the fair comparison);
//   gpt-tok nocache  the cache is disabled (setMergeCacheSize(0)), which is how creditd runs it, see
//                  src/metering/README.md (the cache would hold fragments of customers' prompts);
//   gpt-tok warm   the default, cache kept between passes (an upper bound, shown for reference only).
import { performance } from "node:perf_hooks";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { rng } from "./lib/texts.mjs";

const require = createRequire(import.meta.url);
const quick = process.argv.includes("--quick");
const versionOf = (pkg) =>
  JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), "utf8")).version;
const MIN_SECONDS = quick ? 0.3 : 1.0;
const MIN_PASSES = 3;

// ---------------------------------------------------------------- texts (deterministic)

const pick = (r, xs) => xs[Math.floor(r() * xs.length)];

function fill(size, next) {
  const parts = [];
  let n = 0;
  while (n < size) {
    const s = next();
    parts.push(s);
    n += Buffer.byteLength(s);
  }
  return parts.join("");
}

const WORDS = (
  "the of and to in is that it was for on are as with his they at be this from have or by one had not but what " +
  "all were when we there can an your which their said if do will each about how up out them then she many some " +
  "so these would other into has more her two like him see time could no make than first been its who now people " +
  "my made over did down only way find use may water long little very after words called just where most know get " +
  "through back much before go good new write our used me man too any day same right look think also around another " +
  "came come work three word must because does part even place well such here take why things help put years " +
  "different away again off went old number great tell men say small every found still between name should home " +
  "big give air line set own under read last never us left end along while might next sound below saw something " +
  "thought both few those always looked show large often together asked house world going want school important " +
  "until form food keep children feet land side without boy once animals life enough took sometimes four head above " +
  "kind began almost live page got earth need far hand high year mother light parts country father let night " +
  "following picture being study second eyes soon times story boys since white days ever paper hard near sentence " +
  "better best across during today others however sure means knew its try told young miles sun ways thing whole " +
  "hear example heard several change answer room sea against top turned learn point city play toward five using " +
  "himself usually reconciliation invoice subscription quarterly onboarding throughput latency idempotent " +
  "reservation customer workspace allowance generation inference prompt completion settlement refund ledger " +
  "Kubernetes PostgreSQL microservices observability extraordinarily misunderstanding photosynthesis " +
  "antidisestablishmentarianism Schwarzenegger Tchaikovsky Reykjavík naïve café coöperate résumé"
).split(" ");

function englishProse(size, seed) {
  const r = rng(seed);
  const sentence = () => {
    const n = 6 + Math.floor(r() * 18);
    const ws = [];
    for (let i = 0; i < n; i++) ws.push(pick(r, WORDS));
    if (r() < 0.15) ws.splice(Math.floor(r() * ws.length), 0, String(Math.floor(r() * 100000)));
    if (r() < 0.1) ws.splice(Math.floor(r() * ws.length), 0, `"${pick(r, WORDS)}"`);
    let s = ws.join(" ");
    s = s[0].toUpperCase() + s.slice(1);
    if (r() < 0.2) s = s.replace(" ", ", ");
    return s + pick(r, [".", ".", ".", "?", "!", ";"]) + (r() < 0.12 ? "\n\n" : " ");
  };
  return fill(size, sentence);
}

function code(size) {
  // Real source code: the start of the TypeScript compiler (pinned by package-lock.json).
  const src = readFileSync(require.resolve("typescript/lib/typescript.js"), "utf8");
  let out = src.slice(0, size);
  while (Buffer.byteLength(out) < size) out += src.slice(0, size);
  return out;
}

// Real CJK text is mostly unique clauses (a clause between two punctuation marks is one pre-token), so the clauses
// are assembled from words at random rather than repeated from a few fixed sentences.
const ZH = (
  "人工智能 正在 改变 我们 处理 信息 的 方式 这个 季度 订阅 收入 比 去年 同期 增长 了 百分之 二十三 请 在 明天 " +
  "下午 三点 之前 提交 项目 最终 报告 模型 生成 内容 需要 经过 人工 审核 才能 发布 团队 分布 北京 上海 深圳 城市 " +
  "如果 余额 不足 系统 会 拒绝 这次 请求 并 返回 错误 信息 客户 工作区 额度 图片 视频 秒 免费 高级 用户 数据 安全 " +
  "服务器 网络 延迟 吞吐量 计费 账单 退款 预留 结算 微服务 可观测性 数据库 缓存 线程 事件 循环"
).split(" ");
const JA = (
  "東京 の 天気 は 晴れ のち 曇り 最高 気温 二十六 度 予想 です この サービス では 画像 を 一枚 生成 する ごと に " +
  "クレジット が 消費 され ます ご不明 な 点 ございましたら サポート まで お問い合わせ ください カスタマー サクセス " +
  "チーム 毎週 月曜日 定例 会議 行って います 請求書 残高 予約 払い戻し 動画 秒数 無料 プレミアム"
).split(" ");
const KO = (
  "오늘 회의는 오후 두 시에 시작합니다 크레딧이 부족하면 요청이 거부됩니다 새로운 기능은 다음 달에 출시될 예정입니다 " +
  "고객 작업 공간 이미지 생성 동영상 무료 프리미엄 결제 환불 예약 정산 서버 지연 처리량"
).split(" ");
const ZH_PUNCT = ["，", "，", "。", "、", "；", "？", "！", "：", "“", "”", "（", "）"];

function cjk(size, seed) {
  const r = rng(seed);
  return fill(size, () => {
    const lang = r();
    const n = 2 + Math.floor(r() * 8);
    if (lang < 0.5) {
      let s = "";
      for (let i = 0; i < n; i++) s += pick(r, ZH);
      return s + pick(r, ZH_PUNCT) + (r() < 0.05 ? "\n" : "");
    }
    if (lang < 0.8) {
      let s = "";
      for (let i = 0; i < n; i++) s += pick(r, JA);
      return s + pick(r, ["、", "。", "。", "！", "？"]) + (r() < 0.05 ? "\n" : "");
    }
    const ws = [];
    for (let i = 0; i < n; i++) ws.push(pick(r, KO));
    return ws.join(" ") + pick(r, [". ", ", ", "? "]) + (r() < 0.05 ? "\n" : "");
  });
}

const EMOJI = [
  "😀", "😂", "🥲", "😍", "🤔", "🙄", "😴", "🤯", "🥳", "😎", "👍", "👍🏽", "👋🏿", "🙏", "💪🏻", "🔥", "✨", "🎉",
  "❤️", "💔", "🚀", "🌍", "🍕", "☕", "🐍", "🦀", "📈", "📉", "✅", "❌", "⚠️", "🇫🇷", "🇯🇵", "🇧🇷", "🏳️‍🌈",
  "👨‍👩‍👧‍👦", "👩🏽‍💻", "🧑‍🚀", "🤷‍♀️", "🙋🏾‍♂️", "😶‍🌫️", "❤️‍🔥", "🫠", "🫶🏼", "🪐",
];

function emoji(size, seed) {
  const r = rng(seed);
  return fill(size, () => {
    const k = 1 + Math.floor(r() * 4);
    let s = "";
    for (let i = 0; i < k; i++) s += pick(r, EMOJI);
    return s + (r() < 0.5 ? " " + pick(r, WORDS) + " " : r() < 0.1 ? "\n" : " ");
  });
}

function mixed(size, seed) {
  const r = rng(seed);
  const chunk = 2048;
  const en = englishProse(size, seed + 1);
  const cd = code(size);
  const cj = cjk(size, seed + 2);
  const em = emoji(size, seed + 3);
  const sources = [en, en, cd, cj, em];
  let pos = [0, 0, 0, 0, 0];
  return fill(size, () => {
    const i = Math.floor(r() * sources.length);
    const s = sources[i].slice(pos[i], pos[i] + chunk);
    pos[i] += chunk;
    // special-token look-alikes are ordinary text for metering
    return s + (r() < 0.05 ? " <|endoftext|> " : "\n");
  });
}

function randomLetters(size, seed) {
  const r = rng(seed);
  let s = "";
  for (let i = 0; i < size; i++) s += String.fromCharCode(97 + Math.floor(r() * 26));
  return s;
}

const KB = 1024;
const TEXTS = [
  ["english prose", englishProse(256 * KB, 1)],
  ["code (typescript.js)", code(256 * KB)],
  ["CJK (zh/ja/ko)", cjk(256 * KB, 2)],
  ["emoji + words", emoji(256 * KB, 3)],
  ["mixed ~1 MiB", mixed(1024 * KB, 4)],
  // Adversarial: one 16 KiB pre-token (lowercase letters, no space). BPE merging is quadratic in the length of a
  // pre-token in both engines, see src/metering/README.md.
  ["16 KiB no-space letters", randomLetters(16 * KB, 5)],
];

// ---------------------------------------------------------------- engines

const { get_encoding } = await import("tiktoken");

async function loadGpt(encoding) {
  const t0 = performance.now();
  const mod = await import(`gpt-tokenizer/encoding/${encoding}`);
  const ms = performance.now() - t0;
  return { mod, ms };
}

const ORDINARY = { disallowedSpecial: new Set() };

function time(fn, bytes, before) {
  fn(); // warm-up (JIT, WASM, lazy tables)
  let passes = 0;
  let spent = 0;
  while (spent < MIN_SECONDS * 1000 || passes < MIN_PASSES) {
    before?.();
    const t0 = performance.now();
    fn();
    spent += performance.now() - t0;
    passes++;
  }
  return (bytes * passes) / (spent / 1000) / 1e6; // MB/s (10^6 bytes)
}

function sameIds(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------- run

console.log(`# tokenizer throughput, ${new Date().toISOString()}`);
console.log(
  `node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ` +
    `tiktoken ${versionOf("tiktoken")}, gpt-tokenizer ${versionOf("gpt-tokenizer")}, ` +
    `timing window ≥ ${MIN_SECONDS} s and ≥ ${MIN_PASSES} passes per cell`,
);
console.log("MB/s = 10^6 UTF-8 bytes per second, single thread; ratio = gpt-tok cold / tiktoken\n");

const rows = [];
for (const encoding of ["o200k_base", "cl100k_base"]) {
  let t0 = performance.now();
  const tk = get_encoding(encoding);
  const tkLoad = performance.now() - t0;
  const { mod: gpt, ms: gptLoad } = await loadGpt(encoding);
  console.log(`${encoding}: load tiktoken ${tkLoad.toFixed(0)} ms, gpt-tokenizer ${gptLoad.toFixed(0)} ms`);

  for (const [name, text] of TEXTS) {
    const bytes = Buffer.byteLength(text);
    const idsTk = tk.encode_ordinary(text);
    const idsGpt = gpt.encode(text, ORDINARY);
    const same = sameIds(idsTk, idsGpt);
    const countGpt = gpt.countTokens(text, ORDINARY);

    const tkMBs = time(() => tk.encode_ordinary(text).length, bytes);
    gpt.setMergeCacheSize(100_000);
    const cold = time(() => gpt.countTokens(text, ORDINARY), bytes, () => gpt.clearMergeCache());
    const warm = time(() => gpt.countTokens(text, ORDINARY), bytes);
    gpt.setMergeCacheSize(0);
    const nocache = time(() => gpt.countTokens(text, ORDINARY), bytes);
    gpt.setMergeCacheSize(100_000);

    rows.push({
      encoding,
      text: name,
      KiB: Math.round(bytes / 1024),
      tokens: idsTk.length,
      "same ids": same && countGpt === idsTk.length ? "yes" : "NO",
      "tiktoken": tkMBs.toFixed(2),
      "gpt-tok cold": cold.toFixed(2),
      "gpt-tok nocache": nocache.toFixed(2),
      "gpt-tok warm": warm.toFixed(2),
      ratio: (cold / tkMBs).toFixed(2) + "×",
      "ratio nocache": (nocache / tkMBs).toFixed(2) + "×",
    });
    process.stderr.write(".");
  }
  tk.free();
}
process.stderr.write("\n");

// markdown table, ready to paste into src/metering/README.md
const cols = Object.keys(rows[0]);
console.log("| " + cols.join(" | ") + " |");
console.log("| " + cols.map(() => "---").join(" | ") + " |");
for (const row of rows) console.log("| " + cols.map((c) => row[c]).join(" | ") + " |");

const mismatches = rows.filter((r) => r["same ids"] !== "yes");
if (mismatches.length > 0) {
  console.error(`token ids differ on ${mismatches.length} text(s)`);
  process.exitCode = 1;
}
