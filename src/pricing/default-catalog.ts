// The catalog creditd uses when CREDITD_CATALOG is not set. It is kept as text in a .ts module (not a
// .yaml file) so that the build's output in dist/ carries it without a copy step.
//
// What it prices: 1 credit = US$0.01 at the providers' list prices (no margin), so a deployment that
// sells credits at one cent runs at cost until it ships its own catalog. It declares:
//   - operation `chat` (token-priced, default model gpt-4o-mini) and `embedding` (token-priced,
//     text-embedding-3-small), `image.generate` (gpt-image-1 list prices by size and quality) and
//     `video.generate` (per second, tiers named after the models sora-2 and sora-2-pro);
//   - OpenAI models (o200k_base / cl100k_base, exact counts) and Claude models, whose tokenizer is not
//     shipped: counted with { fallback: cl100k_base, multiplier: 1.15 } and flagged as estimates. Why 1.15:
//     a published comparison (2025) found Claude 3.5 Sonnet's tokenizer gives ~16% more tokens than
//     GPT-4o's o200k_base on English prose (~21% on math, ~30% on Python code), and cl100k_base counts
//     English prose within 1% of o200k_base (measured on this repository's READMEs). cl100k_base rather
//     than o200k_base because it loads in ~60 ms instead of ~200 ms. Code-heavy traffic is under-estimated
//     by ~10%; a catalog for it should raise the multiplier (about 1.3);
//   - unknown_models: refuse — a model nobody priced is not guessed at (a cheap default would let an
//     expensive model through at the wrong price);
//   - rounding: none (micro-credit precision);
//   - three plans, refilled monthly: `free` (100 credits = US$1 of usage), `pro` (2,000 credits, plus an
//     `extra` add-on of 1,000 credits per unit, up to 100 units) and `unlimited` (never refuses for credits).
//     They are starting points for trying plans out, not anyone's prices.
// Requests without an operation are priced by what they name (a model → tokens, an image, a video).

import type { Catalog } from "./catalog.js";
import { parseCatalog } from "./catalog.js";

export const DEFAULT_CATALOG_YAML = `# creditd default catalog: 1 credit = US$0.01 at provider list prices (no margin).
name: creditd default catalog
rounding: none
unknown_models: refuse

operations:
  chat:
    description: Chat or text completion, priced by the model's tokens
    tokens: true
    model: gpt-4o-mini
  embedding:
    description: Embeddings, priced by input tokens
    tokens: true
    model: text-embedding-3-small
  image.generate:
    description: Image generation, priced by size and quality
    image: true
  video.generate:
    description: Video generation, priced per second
    video: true

models:
  gpt-4o:
    input_per_1m: 250
    cached_input_per_1m: 125
    output_per_1m: 1000
    patterns: ["gpt-4o*", "chatgpt-4o*"]
    encoding: o200k_base
    default_output_tokens: 4096
    max_output_tokens: 16384
  gpt-4o-mini:
    input_per_1m: 15
    cached_input_per_1m: 7.5
    output_per_1m: 60
    patterns: ["gpt-4o-mini*"]
    encoding: o200k_base
    default_output_tokens: 4096
    max_output_tokens: 16384
  gpt-4.1:
    input_per_1m: 200
    cached_input_per_1m: 50
    output_per_1m: 800
    patterns: ["gpt-4.1*"]
    encoding: o200k_base
    default_output_tokens: 4096
    max_output_tokens: 32768
  gpt-4.1-mini:
    input_per_1m: 40
    cached_input_per_1m: 10
    output_per_1m: 160
    patterns: ["gpt-4.1-mini*"]
    encoding: o200k_base
    default_output_tokens: 4096
    max_output_tokens: 32768
  gpt-4.1-nano:
    input_per_1m: 10
    cached_input_per_1m: 2.5
    output_per_1m: 40
    patterns: ["gpt-4.1-nano*"]
    encoding: o200k_base
    default_output_tokens: 4096
    max_output_tokens: 32768
  gpt-5:
    input_per_1m: 125
    cached_input_per_1m: 12.5
    output_per_1m: 1000
    patterns: ["gpt-5*"]
    encoding: o200k_base
    default_output_tokens: 16384
    max_output_tokens: 128000
  gpt-5-mini:
    input_per_1m: 25
    cached_input_per_1m: 2.5
    output_per_1m: 200
    patterns: ["gpt-5-mini*"]
    encoding: o200k_base
    default_output_tokens: 16384
    max_output_tokens: 128000
  gpt-5-nano:
    input_per_1m: 5
    cached_input_per_1m: 0.5
    output_per_1m: 40
    patterns: ["gpt-5-nano*"]
    encoding: o200k_base
    default_output_tokens: 16384
    max_output_tokens: 128000
  o3:
    input_per_1m: 200
    cached_input_per_1m: 50
    output_per_1m: 800
    patterns: ["o3-2*"]
    encoding: o200k_base
    default_output_tokens: 16384
    max_output_tokens: 100000
  o4-mini:
    input_per_1m: 110
    cached_input_per_1m: 27.5
    output_per_1m: 440
    patterns: ["o4-mini*"]
    encoding: o200k_base
    default_output_tokens: 16384
    max_output_tokens: 100000
  gpt-4-turbo:
    input_per_1m: 1000
    output_per_1m: 3000
    patterns: ["gpt-4-turbo*"]
    encoding: cl100k_base
    max_output_tokens: 4096
  gpt-3.5-turbo:
    input_per_1m: 50
    output_per_1m: 150
    patterns: ["gpt-3.5-turbo*"]
    encoding: cl100k_base
    max_output_tokens: 4096
  text-embedding-3-small:
    input_per_1m: 2
    output_per_1m: 0
    encoding: cl100k_base
    max_output_tokens: 0
  text-embedding-3-large:
    input_per_1m: 13
    output_per_1m: 0
    encoding: cl100k_base
    max_output_tokens: 0
  claude-sonnet-4:
    input_per_1m: 300
    cached_input_per_1m: 30
    output_per_1m: 1500
    patterns: ["claude-sonnet-4*"]
    encoding: { fallback: cl100k_base, multiplier: 1.15 }
    default_output_tokens: 8192
    max_output_tokens: 64000
  claude-opus-4:
    input_per_1m: 1500
    cached_input_per_1m: 150
    output_per_1m: 7500
    patterns: ["claude-opus-4*"]
    encoding: { fallback: cl100k_base, multiplier: 1.15 }
    default_output_tokens: 8192
    max_output_tokens: 32000
  claude-3-5-haiku:
    input_per_1m: 80
    cached_input_per_1m: 8
    output_per_1m: 400
    patterns: ["claude-3-5-haiku*"]
    encoding: { fallback: cl100k_base, multiplier: 1.15 }
    max_output_tokens: 8192

images:
  qualities: [medium, low, high]
  max_count: 10
  sizes:
    1024x1024: { low: 1.1, medium: 4.2, high: 16.7 }
    1024x1536: { low: 1.6, medium: 6.3, high: 25 }
    1536x1024: { low: 1.6, medium: 6.3, high: 25 }

video:
  tiers:
    sora-2: { per_second: 10 }
    sora-2-pro: { per_second: 30 }
  default_tier: sora-2
  max_seconds: 60

plans:
  free:
    name: Free
    credits: 100
  pro:
    name: Pro
    credits: 2000
    addons:
      extra: { name: Extra credits, credits: 1000, max_units: 100 }
  unlimited:
    name: Unlimited
    unlimited: true
`;

let parsed: Catalog | undefined;

/** The default catalog, parsed once. */
export function defaultCatalog(): Catalog {
  parsed ??= parseCatalog(DEFAULT_CATALOG_YAML);
  return parsed;
}
